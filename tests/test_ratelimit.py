"""The token bucket behind the login rate limit, on a clock the test moves."""

from __future__ import annotations

from hatd.ratelimit import RateLimiter, retry_after


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_of_ten_refilled_one_every_two_seconds():
    clock = Clock()
    limiter = RateLimiter(burst=10, refill_seconds=2.0, clock=clock)
    assert [limiter.take("k") for _ in range(10)] == [0.0] * 10
    assert limiter.take("k") == 2.0
    clock.now += 1.0
    assert limiter.take("k") == 1.0
    clock.now += 1.0
    assert limiter.take("k") == 0.0
    assert limiter.take("k") == 2.0
    clock.now += 3600
    assert [limiter.take("k") for _ in range(10)] == [0.0] * 10
    assert limiter.take("k") > 0


def test_all_keys_must_have_a_token_and_a_refusal_takes_nothing():
    clock = Clock()
    limiter = RateLimiter(burst=2, refill_seconds=1.0, clock=clock)
    assert limiter.take("client", "alice") == 0
    assert limiter.take("client", "bob") == 0
    assert limiter.take("client", "carol") == 1.0
    # carol's bucket was not charged by the refusal
    assert limiter.take("other-client", "carol") == 0
    assert limiter.take("other-client", "carol") == 0


def test_retry_after_is_whole_seconds_at_least_one():
    assert retry_after(0.01) == "1"
    assert retry_after(2.0) == "2"
    assert retry_after(2.1) == "3"


def test_idle_keys_are_forgotten_when_there_are_too_many(monkeypatch):
    import hatd.ratelimit as module

    monkeypatch.setattr(module, "MAX_KEYS", 3)
    clock = Clock()
    limiter = RateLimiter(burst=1, refill_seconds=1.0, clock=clock)
    for key in "abc":
        limiter.take(key)
    clock.now += 10
    limiter.take("d")
    assert set(limiter._buckets) == {"d"}
