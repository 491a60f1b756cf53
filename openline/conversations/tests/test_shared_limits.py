"""Rate limiters count in Redis when the cache is Redis, and per process when it is not or is down.

The promise across real server processes is shown in ``livechat/tests/test_shared_limits.py``;
these tests pin the limiter itself against a real Redis: the bucket's numbers, its expiry, the
fallback when Redis does not answer and the return to shared counting when it answers again.
"""

from __future__ import annotations

import socket
import time
import uuid

import pytest
import redis
from django.core.cache.backends.redis import RedisCache

from openline.conversations import limits
from openline.conversations.limits import RateLimiter

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_cache(settings, redis_url):
    """Point the default cache at Redis under a prefix of this test's own."""
    prefix = f"ss_test-{uuid.uuid4().hex[:12]}"
    settings.CACHES = {
        "default": {
            "BACKEND": limits.REDIS_CACHE,
            "LOCATION": redis_url,
            "KEY_PREFIX": prefix,
        }
    }
    client = redis.Redis.from_url(redis_url)
    yield client, prefix
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def dead_redis_cache(settings):
    """Point the default cache at a port where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"redis://127.0.0.1:{port}/0"
    settings.CACHES = {"default": {"BACKEND": limits.REDIS_CACHE, "LOCATION": url}}
    yield url
    limits._STORE._down_until.pop(url, None)


def test_two_limiters_of_one_name_draw_from_one_bucket_in_redis(redis_cache):
    client, prefix = redis_cache
    # Two instances stand for two processes: they agree only through Redis.
    here, there = RateLimiter(3, 0.01, name="starts"), RateLimiter(3, 0.01, name="starts")
    assert [here.allow("203.0.113.5"), there.allow("203.0.113.5"), here.allow("203.0.113.5")] == [
        True
    ] * 3
    assert there.allow("203.0.113.5") is False
    assert here.allow("203.0.113.5") is False
    # Another key has its own bucket, and nothing was counted in either process.
    assert there.allow("203.0.113.6") is True
    assert here.buckets == {} and there.buckets == {}
    key = f"{prefix}:rl:starts:3/0.01:203.0.113.5"
    assert client.exists(key)
    # The bucket expires once it would be full again (3 tokens at 0.01/s = 300 s), plus 1 s.
    assert 290_000 < client.pttl(key) <= 301_000


def test_the_shared_bucket_refills_at_its_rate(redis_cache):
    limiter = RateLimiter(2, 10, name="refill")  # one token per 100 ms
    assert [limiter.allow("k") for _ in range(3)] == [True, True, False]
    time.sleep(0.12)
    assert [limiter.allow("k") for _ in range(2)] == [True, False]
    time.sleep(0.22)
    assert [limiter.allow("k") for _ in range(3)] == [True, True, False]


def test_a_changed_limit_starts_fresh_buckets(redis_cache):
    assert [RateLimiter(1, 0.01, name="same").allow("k") for _ in range(2)] == [True, False]
    assert RateLimiter(2, 0.01, name="same").allow("k") is True


def test_a_limiter_without_a_name_never_asks_redis(redis_cache):
    client, prefix = redis_cache
    frames = RateLimiter(2, 0.01)
    assert [frames.allow("channel.abc") for _ in range(3)] == [True, True, False]
    assert "channel.abc" in frames.buckets
    assert not list(client.scan_iter(match=f"{prefix}:*"))


def test_without_a_redis_cache_named_limiters_count_in_the_process(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    limiter = RateLimiter(2, 0.01, name="local")
    assert [limiter.allow("k") for _ in range(3)] == [True, True, False]
    assert "k" in limiter.buckets


def test_unreachable_redis_falls_back_to_counting_in_the_process_quickly(dead_redis_cache, caplog):
    limiter = RateLimiter(2, 0.01, name="fallback")
    started = time.monotonic()
    answers = [limiter.allow("k") for _ in range(3)]
    # Never an exception, and the limit still holds in this process.
    assert answers == [True, True, False]
    assert time.monotonic() - started < 1.0
    assert "counting in this process" in caplog.text
    # While Redis is marked down, no check waits for it again.
    started = time.monotonic()
    for _ in range(200):
        limiter.allow("other")
    assert time.monotonic() - started < 0.5


def test_counting_is_shared_again_once_redis_answers(settings, redis_cache, monkeypatch):
    client, prefix = redis_cache
    good = settings.CACHES["default"]["LOCATION"]
    limiter = RateLimiter(2, 0.01, name="recovery")
    # The limiter's client for the good URL fails as if Redis were down…
    real_take = limits._STORE.take

    def refused(*args, **kwargs):
        raise redis.ConnectionError("down")

    monkeypatch.setattr(limits._STORE, "take", refused)
    monkeypatch.setattr(limits, "REDIS_RETRY_AFTER", 0.2)
    assert limiter.allow("k") is True
    assert "k" in limiter.buckets  # counted here
    # …then answers again: after the pause the limiter counts in Redis once more.
    monkeypatch.setattr(limits._STORE, "take", real_take)
    time.sleep(0.25)
    assert limiter.allow("k") is True
    assert client.exists(f"{prefix}:rl:recovery:2/0.01:k")
    assert good not in limits._STORE._down_until


def test_reset_empties_this_limiters_shared_buckets_only(redis_cache):
    client, prefix = redis_cache
    one, other = RateLimiter(1, 0.01, name="one"), RateLimiter(1, 0.01, name="other")
    assert one.allow("k") and other.allow("k")
    one.reset()
    assert one.allow("k") is True
    assert other.allow("k") is False
    assert client.exists(f"{prefix}:rl:other:1/0.01:k")


def test_long_keys_become_short_redis_keys(redis_cache):
    client, prefix = redis_cache
    limiter = RateLimiter(1, 0.01, name="long")
    assert limiter.allow("x" * 10_000) is True
    assert limiter.allow("x" * 10_000) is False
    (key,) = client.scan_iter(match=f"{prefix}:rl:long:*")
    assert len(key) < 120


class SubclassedRedisCache(RedisCache):
    """A project's own Redis cache class (settings may wrap Django's)."""


def test_a_subclass_of_djangos_redis_cache_counts_in_redis_too(settings, redis_cache):
    client, prefix = redis_cache
    settings.CACHES["default"]["BACKEND"] = f"{__name__}.SubclassedRedisCache"
    limiter = RateLimiter(1, 0.01, name="subclass")
    assert [limiter.allow("k"), limiter.allow("k")] == [True, False]
    assert client.exists(f"{prefix}:rl:subclass:1/0.01:k")
    assert limiter.buckets == {}


def test_aallow_draws_from_the_same_shared_bucket_without_blocking(redis_cache):
    import asyncio

    client, prefix = redis_cache
    limiter = RateLimiter(3, 0.01, name="async")

    async def take_two() -> list[bool]:
        return [await limiter.aallow("k"), await limiter.aallow("k")]

    # Each asyncio.run is a new event loop: each gets its own asynchronous client.
    assert asyncio.run(take_two()) == [True, True]
    assert limiter.allow("k") is True
    assert asyncio.run(take_two()) == [False, False]
    assert limiter.buckets == {}
    assert client.exists(f"{prefix}:rl:async:3/0.01:k")


def test_aallow_falls_back_to_the_process_when_redis_is_unreachable(dead_redis_cache):
    import asyncio

    limiter = RateLimiter(2, 0.01, name="async-fallback")

    async def take_three() -> list[bool]:
        return [await limiter.aallow("k") for _ in range(3)]

    started = time.monotonic()
    assert asyncio.run(take_three()) == [True, True, False]
    assert time.monotonic() - started < 1.0


def test_aallow_all_asks_both_buckets_in_one_round_trip_and_stops_at_a_refusal(
    redis_cache, monkeypatch
):
    import asyncio

    client, prefix = redis_cache
    visitor = RateLimiter(2, 0.01, name="pair-visitor")
    ip = RateLimiter(3, 0.01, name="pair-ip")
    calls: list[int] = []
    real = limits._STORE.atake

    async def counted(url, buckets):
        calls.append(len(buckets))
        return await real(url, buckets)

    monkeypatch.setattr(limits._STORE, "atake", counted)

    async def sends() -> list[bool]:
        return [await limits.aallow_all([(visitor, "v"), (ip, "i")]) for _ in range(3)]

    # The third message is refused by the visitor's bucket: the IP's keeps its third token.
    assert asyncio.run(sends()) == [True, True, False]
    assert calls == [2, 2, 2]
    assert ip.allow("i") is True
    assert ip.allow("i") is False
    assert client.exists(f"{prefix}:rl:pair-visitor:2/0.01:v")


def test_aallow_all_counts_in_the_process_in_the_same_order_while_redis_is_down(
    dead_redis_cache,
):
    import asyncio

    visitor = RateLimiter(2, 0.01, name="pair-visitor-down")
    ip = RateLimiter(1, 0.01, name="pair-ip-down")

    async def sends() -> list[bool]:
        return [await limits.aallow_all([(visitor, "v"), (ip, "i")]) for _ in range(2)]

    # The IP's bucket refuses the second; the visitor's had given its token first.
    assert asyncio.run(sends()) == [True, False]
    assert visitor._allow_here("v", time.monotonic()) is False
