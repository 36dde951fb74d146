"""``HealthTracker.flush``: device statuses reach Redis in one script call per chunk, and only changed ones."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis
from sharpeye.ingest import health as health_module
from sharpeye.ingest.health import HealthTracker

from sharpeye.keys import Keys


def tracker(redis_client: aioredis.Redis, keys: Keys) -> HealthTracker:
    inventory: Any = None  # flush and seen never consult the inventory
    return HealthTracker(inventory, redis_client, keys, now=lambda: 1000.0)


async def test_flush_writes_every_changed_device_and_clears_the_dirty_marks(
    redis_client: aioredis.Redis, keys: Keys, monkeypatch: Any
) -> None:
    monkeypatch.setattr(health_module, "FLUSH_CHUNK", 2)  # three devices: two script calls
    health = tracker(redis_client, keys)
    health.seen("f1", 1001.5)
    health.seen("f1", 1002.25)
    health.seen("f2", 1003.0)
    health.error("f3", "bad_json")
    await health.flush()

    f1 = await redis_client.hgetall(keys.device("f1"))
    assert f1 == {b"state": b"online", b"last_seen": b"1002.25", b"messages": b"2", b"errors": b"0",
                  b"last_error": b"", b"since": b"1001.5"}  # fmt: skip
    f3 = await redis_client.hgetall(keys.device("f3"))
    assert f3[b"state"] == b"unknown" and f3[b"last_seen"] == b"" and f3[b"errors"] == b"1"
    assert f3[b"last_error"] == b"bad_json"
    assert await redis_client.smembers(keys.devices) == {b"f1", b"f2", b"f3"}
    assert not any(s.dirty for s in health.status.values())

    await redis_client.delete(keys.device("f1"), keys.device("f2"))
    health.seen("f2", 1004.0)
    await health.flush()
    assert await redis_client.exists(keys.device("f1")) == 0, "an unchanged device is not written again"
    assert (await redis_client.hget(keys.device("f2"), "messages")) == b"2"


async def test_a_failed_flush_keeps_the_devices_dirty(redis_client: aioredis.Redis, keys: Keys) -> None:
    health = tracker(redis_client, keys)
    health.seen("f1", 1001.0)

    async def broken(**_: object) -> None:
        raise ConnectionError("redis went away")

    health._write = broken  # type: ignore[assignment]
    with pytest.raises(ConnectionError):  # reaches the caller: housekeeping logs it and retries
        await health.flush()
    assert health.status["f1"].dirty
