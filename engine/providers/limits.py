"""Per-provider limits shared by every step of a run: concurrency and a token bucket.

``max_concurrency`` is an anyio CapacityLimiter; ``rate_limit`` is a requests- and
tokens-per-minute bucket. After a 429 the limiter adapts down: all callers pause until the
server's retry-after (capped), the concurrency drops by half and the request rate by a
quarter; each success then recovers a little, up to the configured values.

A call that has to wait longer than ``LOG_WAIT_AFTER`` seconds for the rate budget says so on
the ``plait.providers`` logger (which limit, how long), at most once per ``LOG_EVERY``
seconds per provider: after one large reply the token budget can be far below zero, and a
run that waits silently looks hung. The wait does not count against the step's timeout.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

from engine.deadlines import capacity_wait

_DEFAULT_PAUSE = 1.0
#: a wait for the rate budget longer than this (seconds) is logged ...
LOG_WAIT_AFTER = 1.0
#: ... at most once in this many seconds per provider
LOG_EVERY = 30.0
log = logging.getLogger("plait.providers")


@dataclass(slots=True)
class _Bucket:
    per_minute: float
    configured: float
    level: float
    stamp: float

    def refill(self, now: float) -> None:
        self.level = min(self.per_minute, self.level + (now - self.stamp) * self.per_minute / 60)
        self.stamp = now

    def wait_for(self, amount: float) -> float:
        """Seconds until ``amount`` is available (0 when it is)."""
        amount = min(amount, self.per_minute)
        if self.level >= amount:
            return 0.0
        return (amount - self.level) * 60 / self.per_minute


class ProviderLimiter:
    """Concurrency and rate limits of one provider (shared across parallel steps)."""

    def __init__(self, *, max_concurrency: int | None = None,
                 requests_per_minute: int | None = None,
                 tokens_per_minute: int | None = None, name: str | None = None) -> None:
        self.name = name
        """The provider's name, for the log line of a long wait."""
        self._logged_at = -math.inf
        self.max_concurrency = max_concurrency
        self._limiter = anyio.CapacityLimiter(max_concurrency) if max_concurrency else None
        now = anyio.current_time() if _in_async() else 0.0
        self._requests = (_Bucket(requests_per_minute, requests_per_minute,
                                  requests_per_minute, now) if requests_per_minute else None)
        self._tokens = (_Bucket(tokens_per_minute, tokens_per_minute, tokens_per_minute, now)
                        if tokens_per_minute else None)
        self._paused_until = 0.0
        self._lock: anyio.Lock | None = None
        self.throttled = 0

    @property
    def active(self) -> bool:
        return bool(self._limiter or self._requests or self._tokens or self._paused_until)

    @property
    def concurrency(self) -> float | None:
        return self._limiter.total_tokens if self._limiter else None

    @asynccontextmanager
    async def slot(self, estimated_tokens: int = 0) -> AsyncIterator[None]:
        """Hold one call's slot: waits for the pause, the buckets and a concurrency token."""
        if self._limiter is None:
            await self._admit(estimated_tokens)
            yield
            return
        try:
            self._limiter.acquire_nowait()
        except anyio.WouldBlock:
            async with capacity_wait():  # not the step's time, nor one of the run's slots
                await self._limiter.acquire()
        try:
            await self._admit(estimated_tokens)
            yield
        finally:
            self._limiter.release()

    async def _admit(self, tokens: int) -> None:
        if self._requests is None and self._tokens is None and not self._paused_until:
            return
        if self._lock is None:
            self._lock = anyio.Lock()
        if self._lock.locked():  # another call waits for the bucket: so will this one
            async with capacity_wait():
                await self._lock.acquire()
        else:
            await self._lock.acquire()
        try:  # one waiter at a time keeps the bucket fair (FIFO)
            for _ in range(10_000):
                now = anyio.current_time()
                wait = max(self._paused_until - now, 0.0)
                why = "the pause after a 429 (rate limited) from the server"
                for bucket, amount, limit in ((self._requests, 1, "requests_per_minute"),
                                              (self._tokens, tokens, "tokens_per_minute")):
                    if bucket is not None:
                        bucket.refill(now)
                        needs = bucket.wait_for(amount)
                        if needs > wait:
                            wait, why = needs, _budget(bucket, limit)
                if wait <= 0:
                    break
                if wait > LOG_WAIT_AFTER and now - self._logged_at >= LOG_EVERY:
                    self._logged_at = now
                    log.warning("provider %r: a call waits %.1fs for %s; the wait does "
                                "not count against the step's timeout", self.name or "?",
                                wait, why)
                async with capacity_wait():
                    await anyio.sleep(wait)
            if self._requests is not None:
                self._requests.level -= 1
            if self._tokens is not None:
                self._tokens.level -= min(tokens, self._tokens.per_minute)
        finally:
            self._lock.release()

    def record_tokens(self, estimated: int, actual: int) -> None:
        """Correct the token bucket once the real usage of a call is known."""
        if self._tokens is not None and actual != estimated:
            self._tokens.level -= actual - estimated

    def on_rate_limited(self, retry_after: float | None) -> float:
        """A 429: pause everyone, then go on more slowly. Returns the seconds the next call
        will wait for (the pause: Retry-After, else 1 s)."""
        self.throttled += 1
        now = anyio.current_time()
        self._paused_until = max(self._paused_until, now + (retry_after or _DEFAULT_PAUSE))
        if self._limiter is not None and self.max_concurrency:
            self._limiter.total_tokens = max(1, math.ceil(self._limiter.total_tokens / 2))
        if self._requests is not None:
            self._requests.per_minute = max(1.0, self._requests.per_minute * 0.75)
            self._requests.level = min(self._requests.level, 0.0)
        return self._paused_until - now

    def on_success(self) -> None:
        """Recover a step towards the configured limits."""
        if self._limiter is not None and self.max_concurrency:
            current = self._limiter.total_tokens
            if current < self.max_concurrency:
                self._limiter.total_tokens = min(self.max_concurrency, current + 1)
        if self._requests is not None and self._requests.per_minute < self._requests.configured:
            self._requests.per_minute = min(self._requests.configured,
                                            self._requests.per_minute * 1.05 + 1)


def _budget(bucket: _Bucket, limit: str) -> str:
    slowed = (f", slowed to {bucket.per_minute:.0f} after a 429"
              if bucket.per_minute < bucket.configured else "")
    spent = ""
    if bucket.level < 0:  # a reply used more tokens than estimated
        spent = f"; the budget is at {bucket.level:.0f}, spent by earlier calls"
    return f"its rate_limit {limit} ({bucket.configured:g}{slowed}{spent})"


def _in_async() -> bool:
    try:
        anyio.current_time()
    except Exception:
        return False
    return True
