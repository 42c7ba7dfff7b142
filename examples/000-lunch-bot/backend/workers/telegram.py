"""Sending to Telegram: a stand-in bot, the 30 messages/s throttle, and retries with backoff.

`FakeTelegramBot` has the shape of aiogram's `Bot.send_message(chat_id, text)`; swap it for the real
bot (TELEGRAM_BOT_TOKEN) and keep the rest. It records every call it would make as one JSON line in
TELEGRAM_OUTBOX:

    {"ts": 1765100000.123, "mono": 81234.567, "chat_id": 456789, "ok": true, "text": "..."}

`ts` is wall-clock time; `mono` is time.monotonic() (system-wide on Linux), for measuring the rate
and the backoff without wall-clock jumps.
"""
import asyncio
import json
import logging
import time
from collections import deque

logger = logging.getLogger("notifications.telegram")


class TelegramNetworkError(Exception):
    """A network-level failure (timeout, connection reset): worth retrying."""


def parse_failures(spec: str) -> dict[int, int]:
    """"456789:3,111:1" -> {456789: 3, 111: 1}."""
    out: dict[int, int] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        chat, count = part.split(":")
        out[int(chat)] = int(count)
    return out


class FakeTelegramBot:
    def __init__(self, outbox_path: str, failures: dict[int, int] | None = None):
        self._outbox_path = outbox_path
        self._failures_left = dict(failures or {})

    async def send_message(self, chat_id: int, text: str) -> None:
        # Timestamp and record before any await, so the time written is the time the rate limiter
        # let this call through.
        record = {"ts": time.time(), "mono": time.monotonic(), "chat_id": chat_id, "ok": True, "text": text}
        left = self._failures_left.get(chat_id, 0)
        if left > 0:
            self._failures_left[chat_id] = left - 1
            record.update(ok=False, error="ConnectionResetError (injected by TELEGRAM_FAKE_FAILURES)")
        with open(self._outbox_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        if not record["ok"]:
            raise TelegramNetworkError(record["error"])
        await asyncio.sleep(0)  # where the real HTTP request would be awaited


class SlidingWindowRateLimiter:
    """At most `max_calls` in any window of `period_s` seconds.

    A token bucket of 30/s with a burst of 30 lets up to 60 calls into one second (a full bucket
    plus a second's refill); Telegram counts per second, so the last `max_calls` call times are
    kept and a caller waits until the oldest is `period_s` old.
    """

    def __init__(self, max_calls: int, period_s: float = 1.0):
        self.max_calls = max_calls
        self.period_s = period_s
        self._calls: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                while self._calls and now - self._calls[0] >= self.period_s:
                    self._calls.popleft()
                if len(self._calls) < self.max_calls:
                    self._calls.append(now)
                    return
                await asyncio.sleep(self._calls[0] + self.period_s - now)


async def send_with_retry(bot, limiter: SlidingWindowRateLimiter, chat_id: int, text: str, *,
                          max_attempts: int, base_s: float, max_s: float) -> int:
    """Sends through the rate limit; on a network error waits base_s * 2^(attempt-1) (capped at
    max_s) and tries again, at most max_attempts calls. Returns the number of calls made; raises
    the last TelegramNetworkError when every attempt failed."""
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")
    for attempt in range(1, max_attempts + 1):
        await limiter.acquire()  # every attempt is an API call and counts against the limit
        try:
            await bot.send_message(chat_id, text)
            return attempt
        except TelegramNetworkError as e:
            if attempt == max_attempts:
                raise
            delay_s = min(base_s * 2 ** (attempt - 1), max_s)
            logger.warning("Telegram send failed, retrying",
                           extra={"chat_id": chat_id, "attempt": attempt, "retry_in_s": delay_s, "error": str(e)})
            await asyncio.sleep(delay_s)
    raise AssertionError("unreachable: the last attempt returns or raises")
