"""examples/000-lunch-bot against Vltava: the FastStream (aiokafka) notifications and
recommendations workers, fed deadline.passed events by the example's own producer (FastStream,
acks=all) and then, across a broker restart, by librdkafka (acks=all) with the seed's JSON.

Asserts: each cafe gets one message with its orders for that date aggregated in the seed's format;
sends (attempts included) never exceed 30 in any second; a failing send is retried with
exponential backoff, and one that keeps failing is recorded as failed; the daily task caches
recommendations for active users; nothing acknowledged before or after the restart is lost.
"""
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter

import pytest
from confluent_kafka import Producer

from conftest import REPO, wait_until

pytestmark = pytest.mark.timeout(90)

EXAMPLE = os.path.join(REPO, "examples", "000-lunch-bot", "backend")
DATE = "2025-12-08"
CAFES_BEFORE = range(1, 46)    # deadline events published before the restart
CAFES_AFTER = range(46, 71)    # ... and after it
RATE_LIMIT = 30
RETRY_BASE_S, MAX_ATTEMPTS = 0.2, 4
FLAKY_CHAT, FLAKY_FAILURES = 100050, 3   # fails 3 times, then accepts
DEAD_CHAT = 100060                      # never accepts

# The seed's message for Столовая №1, with a second order to show the aggregation.
CAFE_1_TEXT = """📋 Столовая №1 — Заказ на 2025-12-08
━━━━━━━━━━━━━━━━━━━━━

👤 Анна Смирнова:
  • Суп + Основное блюдо (450₽)
    - Борщ с курицей (суп)
    - Плов (основное)
  📍 Доставить к 13:00

👤 Иван Петров:
  • Салат + Суп + Основное блюдо (550₽)
    - Салат с курицей (салат)
    - Борщ с курицей (суп)
    - Котлета с пюре (основное)
  • Фокачча с пряным маслом ×1 (50₽)
  📍 Доставить к 12:30

━━━━━━━━━━━━━━━━━━━━━
Итого: 2 заказа, 1050₽"""
ORDERS_WORD = {1: "заказ", 2: "заказа", 3: "заказа", 4: "заказа", 5: "заказов"}
COMBO = ["Суп + Основное блюдо", 400, [["Щи", "суп"], ["Гуляш", "основное"]]]


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.endswith("\n")]


def load_orders(db_path):
    """What the backend API would have stored: 70 cafes, their orders for DATE (1 to 5 each), one
    order for the next day that no notification may include, and Иван Петров with 7 orders in
    the 30 days to 2025-12-09 (an active user) while Анна Смирнова has 1. Returns {cafe_id: orders}."""
    conn = sqlite3.connect(db_path)
    conn.execute("INSERT INTO cafes VALUES (1, 'Столовая №1', 456789)")
    conn.execute("INSERT INTO users VALUES (1, 'Иван Петров'), (2, 'Анна Смирнова')")
    add = ("INSERT INTO orders (cafe_id, user_id, date, combo_name, combo_price, combo_items, extras, deliver_at)"
           " VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
    conn.execute(add, (1, 1, DATE, "Салат + Суп + Основное блюдо", 550, json.dumps(
        [["Салат с курицей", "салат"], ["Борщ с курицей", "суп"], ["Котлета с пюре", "основное"]]),
        json.dumps([["Фокачча с пряным маслом", 1, 50]]), "12:30"))
    conn.execute(add, (1, 2, DATE, "Суп + Основное блюдо", 450,
                       json.dumps([["Борщ с курицей", "суп"], ["Плов", "основное"]]), "[]", "13:00"))
    conn.execute(add, (1, 1, "2025-12-09", "Суп + Основное блюдо", 450,
                       json.dumps([["Солянка", "суп"], ["Плов", "основное"]]), "[]", "12:00"))
    orders = {1: 2}
    for cafe in range(2, 71):
        conn.execute("INSERT INTO cafes VALUES (?, ?, ?)", (cafe, f"Кафе №{cafe}", 100000 + cafe))
        n = 1 + cafe % 4
        for j in range(n):
            user = 1000 + cafe * 10 + j
            conn.execute("INSERT INTO users VALUES (?, ?)", (user, f"Гость {cafe}-{j}"))
            conn.execute(add, (cafe, user, DATE, COMBO[0], COMBO[1], json.dumps(COMBO[2]),
                               json.dumps([["Морс", j + 1, 60]]), None))
        if cafe <= 6:  # Иван Петров eats here too
            conn.execute(add, (cafe, 1, DATE, COMBO[0], COMBO[1], json.dumps(COMBO[2]), "[]", "12:30"))
            n += 1
        orders[cafe] = n
    conn.commit()
    conn.close()
    return orders


def expected_total(cafe, n):
    if cafe == 1:
        return 1050
    guests = n - (1 if cafe <= 6 else 0)
    return n * COMBO[1] + sum((j + 1) * 60 for j in range(guests))


def max_in_window(times, window_s):
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def test_lunch_bot_workers(broker_factory, procs, tmp_path):
    b = broker_factory("--default-partitions", "3")
    db_path = str(tmp_path / "lunch_bot.sqlite3")
    outbox = str(tmp_path / "telegram_outbox.jsonl")
    env = dict(os.environ, KAFKA_BROKER_URL=b.bootstrap, DATABASE_PATH=db_path, TELEGRAM_OUTBOX=outbox,
               TELEGRAM_FAKE_FAILURES=f"{FLAKY_CHAT}:{FLAKY_FAILURES},{DEAD_CHAT}:1000",
               TELEGRAM_RATE_LIMIT_PER_S=str(RATE_LIMIT), SEND_MAX_ATTEMPTS=str(MAX_ATTEMPTS),
               SEND_RETRY_BASE_S=str(RETRY_BASE_S), PYTHONUNBUFFERED="1")
    subprocess.run([sys.executable, "-m", "src.db"], cwd=EXAMPLE, env=env, check=True, timeout=30,
                   capture_output=True)
    orders = load_orders(db_path)

    workers = [procs.start(name, ["-m", f"workers.{name}"], env) for name in ("notifications", "recommendations")]
    for name, w in zip(("notifications", "recommendations"), workers):
        wait_until(lambda: "started successfully" in procs.log(name) or w.poll() is not None, 30,
                   what=f"{name} worker started")
        assert w.poll() is None, procs.log(name)

    # 1. Deadlines before the restart, from the example's producer (FastStream, acks="all").
    r = subprocess.run([sys.executable, "-m", "src.kafka.producer", "deadline", "--date", DATE,
                        *map(str, CAFES_BEFORE)], cwd=EXAMPLE, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"producer failed:\n{r.stdout}\n{r.stderr}"
    acked = {json.loads(line)["cafe_id"] for line in r.stdout.splitlines()}
    assert acked == set(CAFES_BEFORE)

    sent_ok = lambda: [rec for rec in read_jsonl(outbox) if rec["ok"]]
    wait_until(lambda: len(sent_ok()) >= 10, 30, what="the worker sending")

    # 2. Restart the broker while the worker is sending.
    b.restart()

    # 3. Deadlines and the daily task after the restart: librdkafka, acks=all, the seed's JSON.
    delivered, errors = [], []
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "message.timeout.ms": 30000})
    on_delivery = lambda err, msg: (errors if err else delivered).append(err or msg.key())
    for cafe in CAFES_AFTER:
        event = {"type": "deadline.passed", "cafe_id": cafe, "date": DATE, "timestamp": "2025-12-08T10:00:00Z"}
        p.produce("lunch-bot.deadlines", json.dumps(event).encode(), key=str(cafe), on_delivery=on_delivery)
    p.produce("lunch-bot.daily-tasks",
              json.dumps({"type": "generate_recommendations", "timestamp": "2025-12-09T03:00:00Z"}).encode(),
              on_delivery=on_delivery)
    assert p.flush(30) == 0 and not errors, errors
    acked |= {int(k) for k in delivered if k is not None}
    assert acked == set(CAFES_BEFORE) | set(CAFES_AFTER)

    def statuses():
        conn = sqlite3.connect(db_path, timeout=10)
        try:
            return dict(((c, s) for c, s in conn.execute(
                "SELECT cafe_id, status FROM cafe_notifications WHERE date = ?", (DATE,))))
        finally:
            conn.close()

    def cached():
        conn = sqlite3.connect(db_path, timeout=10)
        try:
            return {u: json.loads(p) for u, p in conn.execute("SELECT user_id, payload FROM recommendations_cache")}
        finally:
            conn.close()

    wait_until(lambda: set(statuses()) >= acked and cached(), 60, interval_s=0.2,
               what="every acknowledged deadline handled and recommendations cached")

    # Outcome per cafe: one message, its orders for DATE aggregated; the dead chat recorded as failed.
    records = read_jsonl(outbox)
    chat_of = {cafe: 456789 if cafe == 1 else 100000 + cafe for cafe in acked}
    ok_by_chat = Counter(rec["chat_id"] for rec in records if rec["ok"])
    dead_cafe = DEAD_CHAT - 100000
    assert statuses() == {cafe: "failed" if cafe == dead_cafe else "sent" for cafe in acked}
    for cafe in acked:
        want = 0 if cafe == dead_cafe else 1
        assert ok_by_chat[chat_of[cafe]] == want, f"cafe {cafe}: {ok_by_chat[chat_of[cafe]]} messages"
    texts = {rec["chat_id"]: rec["text"] for rec in records if rec["ok"]}
    assert texts[456789] == CAFE_1_TEXT
    assert "Солянка" not in texts[456789]  # the next day's order
    for cafe in acked - {1, dead_cafe}:
        text, n = texts[chat_of[cafe]], orders[cafe]
        assert text.startswith(f"📋 Кафе №{cafe} — Заказ на {DATE}\n"), text
        assert text.endswith(f"\nИтого: {n} {ORDERS_WORD[n]}, {expected_total(cafe, n)}₽"), text
        assert text.count("👤 ") == n
        assert ("👤 Иван Петров:" in text) == (cafe <= 6)

    # Rate limit: at most 30 calls (failed attempts included) in any second. The window is 10 ms
    # short of a second because the worker stamps a call a few microseconds after its limiter does.
    times = [rec["mono"] for rec in records]
    assert max_in_window(times, 1.0 - 0.01) <= RATE_LIMIT
    assert max_in_window(times, 1.0) >= RATE_LIMIT - 5, "the backlog never reached the limit: nothing was throttled"

    # Retries: the flaky chat failed 3 times then succeeded; the dead one failed MAX_ATTEMPTS times.
    # Waits between attempts are at least 0.2, 0.4, 0.8 s (exponential backoff).
    flaky = [rec for rec in records if rec["chat_id"] == FLAKY_CHAT]
    assert [rec["ok"] for rec in flaky] == [False] * FLAKY_FAILURES + [True]
    dead = [rec for rec in records if rec["chat_id"] == DEAD_CHAT]
    assert len(dead) >= MAX_ATTEMPTS and not any(rec["ok"] for rec in dead)
    for attempts in (flaky, dead[:MAX_ATTEMPTS]):
        gaps = [b_["mono"] - a["mono"] for a, b_ in zip(attempts, attempts[1:])]
        for i, gap in enumerate(gaps):
            assert gap >= RETRY_BASE_S * 2 ** i - 0.005, f"attempt {i + 2} came {gap:.3f}s after the previous one"

    # The daily task: Иван Петров (7 orders in the 30 days to 2025-12-09) is active, nobody else.
    recs = cached()
    assert set(recs) == {1}, recs
    assert recs[1]["favourites"][0] == "Гуляш" and recs[1]["generated_for"] == "2025-12-09"
    assert all(w.poll() is None for w in workers), "a worker exited"
