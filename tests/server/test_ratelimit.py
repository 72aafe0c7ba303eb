"""The token bucket and the keyed limiter, on a hand-driven clock."""

from __future__ import annotations

from rtmcall.server.ratelimit import RateLimiter, TokenBucket


def test_bucket_burst_then_rate() -> None:
    bucket = TokenBucket(180, 3.0, now=0.0)
    assert all(bucket.take(0.0) for _ in range(180))
    assert not bucket.take(0.0)
    assert bucket.take(1 / 60)  # 60 per second refill
    assert not bucket.take(1 / 60)
    assert all(bucket.take(100.0) for _ in range(180))  # capped at capacity
    assert not bucket.take(100.0)


def test_limiter_per_key_and_bounded() -> None:
    now = [0.0]
    limiter = RateLimiter(2, 1.0, lambda: now[0], max_keys=10)
    assert limiter.allow("a") and limiter.allow("a") and not limiter.allow("a")
    assert limiter.allow("b")
    for i in range(100):
        limiter.allow(f"user{i}")
    assert len(limiter) <= 10
    now[0] = 1.0
    assert limiter.allow("a")
