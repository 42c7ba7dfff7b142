"""examples/004-price-tracker (the Keeper price tracker) on Vltava, end to end.

The example's own aiokafka producers send price updates (key = ASIN) and deals (no key); its
consumers run as subprocesses in groups keeper-consumer-group and keeper-consumer-group-deals and
write to a throwaway PostgreSQL this test starts (initdb into a temp dir, a free port on 127.0.0.1,
its socket in the temp dir; as a non-root user when the test runs as root). Vltava is restarted
(SIGTERM, then the same port and data dir) in the middle, while the consumers run. Checked: every
acknowledged event is in PostgreSQL once, per-ASIN order, the price alerts, the deals, and the
team's CLI checks done with `vltava` (checks.sh).

PostgreSQL is required, not optional: without it the test fails and says what to install.
"""
import asyncio
import glob
import json
import os
import pwd
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from conftest import BIN, REPO, free_port, wait_until

pytestmark = pytest.mark.timeout(120)

EXAMPLE = os.path.join(REPO, "examples", "004-price-tracker")
PRICES, DEALS = "price-updates", "deal-updates"
GROUP, DEALS_GROUP = "keeper-consumer-group", "keeper-consumer-group-deals"

WATCHED = 8            # watched ASINs
ROUNDS = 30            # price updates per watched ASIN (half before the restart, half after)
UNWATCHED_EVERY = 3    # an update for a product nobody watches every third round
DEAL_ASINS = 4
DEALS_PER_ASIN = 6


# ---------------------------------------------------------------------------------------------
# A throwaway PostgreSQL


def _pg_binaries():
    """{'initdb': path, 'postgres': path}: the newest /usr/lib/postgresql/*/bin, else PATH."""
    def version(d):
        m = re.search(r"/postgresql/(\d+)", d)
        return int(m.group(1)) if m else 0

    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        found = {n: os.path.join(d, n) for n in ("initdb", "postgres")}
        if all(os.access(p, os.X_OK) for p in found.values()):
            return found
    found = {n: shutil.which(n) for n in ("initdb", "postgres")}
    if all(found.values()):
        return found
    pytest.fail("PostgreSQL server binaries (initdb, postgres) not found in /usr/lib/postgresql/*/bin "
                "or on PATH: install them, e.g. `apt-get install -y postgresql`", pytrace=False)


def _pg_user():
    """PostgreSQL refuses to run as root: then run it as `postgres` (Debian's package creates it)
    or `nobody`. None when the test does not run as root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.fail("running as root, and there is neither a `postgres` nor a `nobody` user to run "
                "PostgreSQL as", pytrace=False)


class Postgres:
    def __init__(self):
        self.bins = _pg_binaries()
        self.user = _pg_user()
        self.dir = tempfile.mkdtemp(prefix="vltava-pg-")
        self.data = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "postgres.log")
        self.port = free_port()
        self.proc = None
        if self.user is not None:
            os.chown(self.dir, self.user.pw_uid, self.user.pw_gid)

    def _as_user(self):
        kw = {"cwd": self.dir, "env": {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                                        "LC_ALL": "C", "TZ": "UTC"}}
        if self.user is not None:
            kw.update(user=self.user.pw_uid, group=self.user.pw_gid, extra_groups=[])
        return kw

    def dsn(self, db="postgres"):
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def start(self):
        r = subprocess.run([self.bins["initdb"], "-D", self.data, "-U", "postgres", "--auth=trust",
                            "-E", "UTF8", "--no-locale", "--no-sync"],
                           capture_output=True, text=True, timeout=60, **self._as_user())
        assert r.returncode == 0, f"initdb failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.bins["postgres"], "-D", self.data, "-p", str(self.port), "-k", self.dir,
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off"],
            stdout=log, stderr=log, **self._as_user())
        log.close()

        async def ping():
            conn = await asyncpg.connect(self.dsn(), timeout=2)
            await conn.close()

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"postgres exited with {self.proc.returncode}:\n{self.log()}")
            try:
                asyncio.run(ping())
                return True
            except (OSError, asyncio.TimeoutError, asyncpg.PostgresError):
                return False

        wait_until(ready, 30, interval_s=0.1, what="PostgreSQL accepting connections")
        return self

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def postgres(request):
    pg = Postgres()
    try:
        yield pg.start()
        if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
            print(f"--- postgres log ---\n{pg.log()}")
    finally:
        pg.stop()


@pytest.fixture
def processes(request):
    """Subprocesses the test starts: (Popen, log path); stopped by PID at teardown."""
    started = []
    yield started
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for proc, log_path in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if failed:
            with open(log_path, errors="replace") as f:
                print(f"--- {' '.join(proc.args[-2:])} log ---\n{f.read()[-6000:]}")
        os.remove(log_path)


# ---------------------------------------------------------------------------------------------
# Helpers


def _load_producer_module():
    """examples/004-price-tracker/kafka_producer.py under a name no other example uses."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "example_004_kafka_producer", os.path.join(EXAMPLE, "kafka_producer.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def vltava(broker, *args, json_out=True):
    cmd = [BIN, *args, "--bootstrap", broker.bootstrap] + (["--output", "json"] if json_out else [])
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"{cmd} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return json.loads(r.stdout) if json_out else r.stdout


def record_count(broker, topic):
    return sum(p["records"] for p in vltava(broker, "offsets", topic))


def start_consumer(processes, which, broker, database_url):
    fd, log_path = tempfile.mkstemp(prefix=f"keeper-consumer-{which}-", suffix=".log")
    os.close(fd)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "VLTAVA_"))}
    env.update(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap, DATABASE_URL=database_url,
               KEEPER_RETRY_SECONDS="1", PYTHONUNBUFFERED="1", LOG_LEVEL="INFO")
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, os.path.join(EXAMPLE, "kafka_consumer.py"), which],
                                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=EXAMPLE)
    processes.append((proc, log_path))
    return proc


def make_plan(rng):
    """Per watched ASIN: a target price and ROUNDS prices around it, none within a hair of the
    alert threshold (so float rounding cannot decide the expectation)."""
    def asin():
        return "B0" + "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(8))

    watched = {}
    while len(watched) < WATCHED:
        target = rng.randint(1500, 25000) / 100
        prices = []
        for _ in range(ROUNDS):
            price = round(target * rng.uniform(0.85, 1.25), 2)
            if abs(price - target * 1.01) < 0.005:
                price = round(price + 0.05, 2)
            prices.append(price)
        watched[asin()] = (target, prices)
    unwatched = asin()
    deal_asins = [asin() for _ in range(DEAL_ASINS)]
    return watched, unwatched, deal_asins


# ---------------------------------------------------------------------------------------------


def test_price_tracker(broker_factory, postgres, processes):
    rng = random.Random(4)
    watched, unwatched, deal_asins = make_plan(rng)
    assert len(set(watched) | {unwatched} | set(deal_asins)) == WATCHED + 1 + DEAL_ASINS
    base = datetime(2026, 2, 20, 12, 30, 0)

    broker = broker_factory("--no-registry")
    # The team's "create a topic by hand" command: 3 partitions, so the ASIN key matters.
    vltava(broker, "topics", "create", PRICES, "--partitions", "3", json_out=False)
    vltava(broker, "topics", "create", DEALS, "--partitions", "2", json_out=False)

    loop = asyncio.new_event_loop()
    arun = loop.run_until_complete
    db = None
    producers = []
    try:
        # Database and schema; the products users watch.
        admin = arun(asyncpg.connect(postgres.dsn()))
        arun(admin.execute("CREATE DATABASE keeper"))
        arun(admin.close())
        database_url = postgres.dsn("keeper")
        db = arun(asyncpg.connect(database_url))
        with open(os.path.join(EXAMPLE, "schema.sql")) as f:
            schema = f.read()
        arun(db.execute(schema))
        arun(db.execute(schema))  # idempotent
        arun(db.executemany(
            "INSERT INTO watched_products (asin, product_title, target_price) VALUES ($1, $2, $3)",
            [(a, f"Product {a}", Decimal(str(t))) for a, (t, _) in watched.items()]))

        def q(sql, *args):
            return arun(db.fetch(sql, *args))

        def qv(sql, *args):
            return arun(db.fetchval(sql, *args))

        price_consumer = start_consumer(processes, "prices", broker, database_url)
        deal_consumer = start_consumer(processes, "deals", broker, database_url)

        mod = _load_producer_module()
        price_producer = mod.PriceUpdateProducer(broker.bootstrap)
        deal_producer = mod.DealUpdateProducer(broker.bootstrap)
        for p in (price_producer, deal_producer):
            arun(p.start())
            producers.append(p)

        sent_prices = {a: [] for a in watched}       # asin -> [(price, event time)] in send order
        sent_deals = []                              # (asin, price, original, event time)
        alerts_expected = {a: [] for a in watched}   # asin -> [(price, event time)]
        unwatched_sent = 0
        deal_prices = {a: [] for a in deal_asins}

        async def send_rounds(first, last):
            nonlocal unwatched_sent
            for r in range(first, last):
                ts = base + timedelta(minutes=r)
                for a, (target, prices) in watched.items():
                    previous = prices[r - 1] if r else None
                    ok = await price_producer.send_price_update(
                        a, f"Product {a}", prices[r], target, previous, timestamp=ts)
                    assert ok, f"price update {a} #{r} not acknowledged"
                    sent_prices[a].append((Decimal(str(prices[r])), ts))
                    if prices[r] <= target * 1.01:
                        alerts_expected[a].append((Decimal(str(prices[r])), ts))
                if r % UNWATCHED_EVERY == 0:
                    ok = await price_producer.send_price_update(
                        unwatched, "Nobody watches this", 9.99, 10.0, timestamp=ts)
                    assert ok, f"price update {unwatched} #{r} not acknowledged"
                    unwatched_sent += 1
                if r % (ROUNDS // DEALS_PER_ASIN) == 0:
                    for i, a in enumerate(deal_asins):
                        price = round(19.99 + 10 * i + r / 10, 2)
                        original = round(price * 1.5, 2)
                        ok = await deal_producer.send_deal_update(
                            a, f"Deal {a}", price, original, rating=4.5, review_count=100 + r,
                            sales_rank=1000 + i, timestamp=ts)
                        assert ok, f"deal {a} #{r} not acknowledged"
                        sent_deals.append((a, Decimal(str(price)), Decimal(str(original)), ts))
                        deal_prices[a].append(Decimal(str(price)))

        # First half, then restart Vltava while the consumers are at work.
        arun(send_rounds(0, ROUNDS // 2))
        phase1_prices = record_count(broker, PRICES)
        phase1_deals = record_count(broker, DEALS)
        assert phase1_prices == sum(len(v) for v in sent_prices.values()) + unwatched_sent
        assert phase1_deals == len(sent_deals)
        wait_until(lambda: qv("SELECT count(*) FROM price_history WHERE source = 'price_update'") > 0
                   and qv("SELECT count(*) FROM deals") > 0, 30,
                   what="both consumers to store their first rows")

        broker.restart()
        # Acknowledged records survived the restart.
        assert record_count(broker, PRICES) == phase1_prices
        assert record_count(broker, DEALS) == phase1_deals

        # Second half through the same producers (they reconnect by themselves).
        arun(send_rounds(ROUNDS // 2, ROUNDS))
        total_prices = sum(len(v) for v in sent_prices.values())
        assert total_prices == WATCHED * ROUNDS
        assert len(sent_deals) == DEAL_ASINS * DEALS_PER_ASIN

        def stored():
            for proc in (price_consumer, deal_consumer):
                assert proc.poll() is None, f"consumer {proc.args[-1]} exited with {proc.returncode}"
            return (qv("SELECT count(*) FROM price_history WHERE source = 'price_update'") == total_prices
                    and qv("SELECT count(*) FROM deals") == len(sent_deals))

        wait_until(stored, 60, interval_s=0.2, what="every event in PostgreSQL")

        # --- PostgreSQL: every event once, per-ASIN order, the last price, alerts, deals ---
        for a, sent in sent_prices.items():
            rows = q("""SELECT price, event_time, kafka_partition FROM price_history
                        WHERE source = 'price_update' AND asin = $1 ORDER BY id""", a)
            assert [(r["price"], r["event_time"]) for r in rows] == sent, f"history of {a} differs"
            assert len({r["kafka_partition"] for r in rows}) == 1, f"{a} on several partitions"
            product = q("SELECT current_price, last_price_at FROM watched_products WHERE asin = $1", a)[0]
            assert (product["current_price"], product["last_price_at"]) == sent[-1], \
                f"last price of {a} is not the last one produced"
        assert qv("SELECT count(*) FROM price_history WHERE asin = $1", unwatched) == 0
        assert qv("SELECT count(*) FROM watched_products WHERE asin = $1", unwatched) == 0

        alerts = q("""SELECT a.asin, a.current_price, a.target_price, h.event_time, a.status
                      FROM price_alerts a JOIN price_history h ON h.id = a.price_history_id
                      ORDER BY a.id""")
        got_alerts = {a: [] for a in watched}
        for r in alerts:
            assert r["target_price"] == Decimal(str(watched[r["asin"]][0]))
            assert r["status"] == "pending"
            got_alerts[r["asin"]].append((r["current_price"], r["event_time"]))
        assert got_alerts == alerts_expected
        n_alerts = sum(len(v) for v in alerts_expected.values())
        assert 0 < n_alerts < total_prices, "the plan should have both alerts and non-alerts"

        deals = q("""SELECT d.asin, d.current_price, d.original_price, d.event_time, d.rating,
                            h.source, h.price
                     FROM deals d JOIN price_history h ON h.id = d.price_history_id""")
        assert sorted((r["asin"], r["current_price"], r["original_price"], r["event_time"])
                      for r in deals) == sorted(sent_deals)
        assert all(r["source"] == "deal" and r["price"] == r["current_price"] for r in deals)
        assert all(r["rating"] == Decimal("4.5") for r in deals)
        assert qv("SELECT count(*) FROM price_history WHERE source = 'deal'") == len(sent_deals)
        for a in deal_asins:  # record_deal_price() created the watched product
            product = q("SELECT current_price, target_price FROM watched_products WHERE asin = $1", a)
            assert len(product) == 1 and product[0]["target_price"] is None
            assert product[0]["current_price"] in deal_prices[a]

        # --- The team's CLI checks, with vltava ---
        topics = {t["name"]: t for t in vltava(broker, "topics", "list")}
        assert topics[PRICES]["partitions"] == 3 and topics[DEALS]["partitions"] == 2
        assert topics[PRICES]["records"] == total_prices + unwatched_sent
        assert topics[DEALS]["records"] == len(sent_deals)

        described = vltava(broker, "topics", "describe", PRICES)[0]
        assert described["name"] == PRICES and len(described["partitions"]) == 3
        assert all(p["leader"] == 1 for p in described["partitions"])
        assert sum(p["latest_offset"] - p["earliest_offset"] for p in described["partitions"]) \
            == total_prices + unwatched_sent

        # Count messages: offsets per partition, and reading them all back.
        assert record_count(broker, PRICES) == total_prices + unwatched_sent
        read_back = [json.loads(line) for line in vltava(
            broker, "consume", PRICES, "--from-beginning", "--output", "json",
            json_out=False).splitlines()]  # one object per line
        assert len(read_back) == total_prices + unwatched_sent
        assert all(json.loads(m["value"])["event_type"] == "price_update" for m in read_back)

        def caught_up(group, count):
            g = vltava(broker, "groups", "describe", group)[0]
            return (g["state"] == "Stable" and len(g["members"]) == 1
                    and g["total_lag"] == 0 and g["partitions"]
                    and all(p["lag"] == 0 for p in g["partitions"])
                    and sum(p["current_offset"] for p in g["partitions"]) == count)

        # aiokafka auto-commits every 5 s
        wait_until(lambda: caught_up(GROUP, total_prices + unwatched_sent), 30, interval_s=0.5,
                   what=f"{GROUP} at lag 0")
        wait_until(lambda: caught_up(DEALS_GROUP, len(sent_deals)), 30, interval_s=0.5,
                   what=f"{DEALS_GROUP} at lag 0")

        env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "VLTAVA_"))}
        env.update(VLTAVA_BIN=BIN, KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap)
        r = subprocess.run(["bash", os.path.join(EXAMPLE, "checks.sh")], capture_output=True,
                           text=True, timeout=60, env=env, cwd=EXAMPLE)
        assert r.returncode == 0, f"checks.sh failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
        out = r.stdout
        for needle in (PRICES, DEALS, "PartitionCount: 3", f"Group '{GROUP}'",
                       f"Group '{DEALS_GROUP}'", "total lag 0", '"event_type": "price_update"'):
            assert needle in out, f"checks.sh output lacks {needle!r}:\n{out}"
        first5 = [line for line in out.splitlines() if re.match(r"^\d+/\d+ key=B0", line)]
        assert len(first5) == 5, out

        # --- Clean shutdown: SIGTERM, offsets committed, exit 0 ---
        for proc in (price_consumer, deal_consumer):
            proc.send_signal(signal.SIGTERM)
        for proc in (price_consumer, deal_consumer):
            assert proc.wait(20) == 0, f"consumer {proc.args[-1]} exited with {proc.returncode}"
        g = vltava(broker, "groups", "describe", GROUP)[0]
        assert g["total_lag"] == 0 and g["state"] == "Empty", g
    finally:
        for p in producers:
            arun(p.stop())
        if db is not None:
            arun(db.close())
        loop.close()
