"""Token buckets, keyed by user id, with bounded memory.

The clock is passed in (``trio.current_time`` in the server) so tests run on trio's
MockClock and the limiter itself stays free of I/O.
"""

from __future__ import annotations

from collections.abc import Callable

Clock = Callable[[], float]


class TokenBucket:
    """``capacity`` tokens, refilled continuously at ``capacity / per`` per second.

    A full bucket allows a burst of ``capacity``; the long-run rate is ``capacity / per``.
    """

    __slots__ = ("capacity", "rate", "tokens", "stamp")

    def __init__(self, capacity: float, per: float, now: float) -> None:
        self.capacity = float(capacity)
        self.rate = self.capacity / per
        self.tokens = self.capacity
        self.stamp = now

    def take(self, now: float) -> bool:
        """Take one token if there is one; False means the caller is over its rate."""
        tokens = self.tokens + (now - self.stamp) * self.rate
        if tokens > self.capacity:
            tokens = self.capacity
        self.stamp = now
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return True
        self.tokens = tokens
        return False

    def full(self, now: float) -> bool:
        return self.tokens + (now - self.stamp) * self.rate >= self.capacity


class RateLimiter:
    """One :class:`TokenBucket` per key (a user id).

    Keys are arbitrary client input (login attempts for made-up user ids), so the table is
    bounded: past ``max_keys`` it forgets buckets that are full again (forgetting them
    loses nothing), and if every bucket is busy it forgets the oldest.
    """

    def __init__(self, capacity: float, per: float, clock: Clock, *, max_keys: int = 100_000):
        self.capacity = capacity
        self.per = per
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, TokenBucket] = {}

    def allow(self, key: str) -> bool:
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._prune(now)
            bucket = self._buckets[key] = TokenBucket(self.capacity, self.per, now)
        return bucket.take(now)

    def _prune(self, now: float) -> None:
        for key in [k for k, b in self._buckets.items() if b.full(now)]:
            del self._buckets[key]
        while len(self._buckets) >= self.max_keys:
            del self._buckets[next(iter(self._buckets))]

    def __len__(self) -> int:
        return len(self._buckets)
