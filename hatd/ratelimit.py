"""Token buckets kept in memory, for routes that are costly to call (a login runs bcrypt).

Hand-written rather than a library: the rule is one small bucket per key, refilled at a steady
rate, and the libraries on offer bring storage backends and window algorithms this does not need.
The buckets live in the process, which is the HAT: one process per HAT."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

# Beyond this many tracked keys, full buckets (idle clients) are forgotten.
MAX_KEYS = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, *, burst: int, refill_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.refill_seconds = refill_seconds
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def _level(self, key: str, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_KEYS:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        else:
            refill = (now - bucket.updated) / self.refill_seconds
            bucket.tokens = min(float(self.burst), bucket.tokens + refill)
            bucket.updated = now
        return bucket

    def wait(self, key: str) -> float:
        """0 if the key's bucket has a token (taking none), otherwise the seconds until it has."""
        bucket = self._level(key, self._clock())
        return 0.0 if bucket.tokens >= 1 else (1 - bucket.tokens) * self.refill_seconds

    def take(self, *keys: str) -> float:
        """Take one token from each key's bucket. Returns 0 if allowed, otherwise the seconds to
        wait before the emptiest bucket has a token again (and takes nothing)."""
        now = self._clock()
        buckets = [self._level(key, now) for key in keys]
        short = [b for b in buckets if b.tokens < 1]
        if short:
            return max((1 - b.tokens) * self.refill_seconds for b in short)
        for bucket in buckets:
            bucket.tokens -= 1
        return 0.0

    def give_back(self, key: str) -> None:
        """Return a token taken for an attempt that turned out not to count (a login that succeeded)."""
        bucket = self._level(key, self._clock())
        bucket.tokens = min(float(self.burst), bucket.tokens + 1)

    def _forget_full(self, now: float) -> None:
        for key in [
            k for k, b in self._buckets.items() if b.tokens + (now - b.updated) / self.refill_seconds >= self.burst
        ]:
            del self._buckets[key]


def retry_after(seconds: float) -> str:
    """A Retry-After header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
