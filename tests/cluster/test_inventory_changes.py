"""The inventory change feed between two inventories on one real Redis (two nodes' views, in one process): changes
carry increasing versions, the other side applies them and hears of them once, its own changes are not applied
twice, and a side that fell behind the trimmed stream reloads every stored device."""

from __future__ import annotations

import asyncio
import contextlib

import redis.asyncio as aioredis
from sharpeye.config.loader import demo_path, load_file
from sharpeye.ingest.inventory import DeviceInventory
from sharpeye.ingest.registry import installed

from sharpeye.keys import Keys


def fence(device_id: str, name: str = "围界") -> dict[str, object]:
    return {"id": device_id, "kind": "fence", "name": name, "grid": "shanxia-g1", "zones": [{"id": "z1", "name": "北"}]}


async def until(check: object, what: str, limit_s: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit_s
    while not check():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def stop(follower: asyncio.Task[None], limit_s: float = 5.0) -> None:
    """Cancel a follower and see it end: one that runs on after its cancel fails here rather than hanging."""
    follower.cancel()
    done, _ = await asyncio.wait({follower}, timeout=limit_s)
    if not done:
        for _ in range(10):  # cancel it again so that no task outlives the test, then fail
            follower.cancel()
            if (await asyncio.wait({follower}, timeout=1.0))[0]:
                break
        raise AssertionError(f"the follower still ran {limit_s} s after it was cancelled")
    with contextlib.suppress(asyncio.CancelledError):
        await follower


async def test_two_inventories_follow_each_other(redis_client: aioredis.Redis, keys: Keys) -> None:
    site = load_file(demo_path(), installed())
    a = DeviceInventory(site, installed(), redis_client, keys)
    b = DeviceInventory(site, installed(), redis_client, keys)
    a.origin, b.origin = "a", "b"
    await a.load_runtime()
    await b.load_runtime()
    heard: list[tuple[int, list[str]]] = []

    async def on_change(version: int, changed: list[str]) -> None:
        heard.append((version, changed))

    follower = asyncio.create_task(b.follow(on_change, block_ms=50))
    try:
        await a.upsert(fence("fence-x"), "api")
        await until(lambda: b.get("fence-x") is not None, "b learning of fence-x")
        assert (a.version, b.version, b.source("fence-x")) == (1, 1, "api")
        await a.upsert(fence("fence-x", "改名"), "api")
        await until(lambda: b.get("fence-x") is not None and b.get("fence-x").name == "改名", "the rename")  # type: ignore[union-attr]
        await b.remove("fence-x")  # b's own change: stored, published, not applied again by b's follower
        await until(lambda: b.version == 3, "b at its own change's version")
        assert a.get("fence-x") is not None  # a does not follow in this test
        assert [changed for _, changed in heard if changed] == [["fence-x"], ["fence-x"]]
        assert b.applied == 2

        # b falls behind: its follower stops, a makes changes, the stream is trimmed past b's position
        await stop(follower)
        for i in range(3):
            await a.upsert(fence(f"fence-y{i}"), "discovery")
        await redis_client.xtrim(keys.inventory_changes, maxlen=1)
        follower = asyncio.create_task(b.follow(on_change, block_ms=50))
        await until(lambda: all(b.get(f"fence-y{i}") is not None for i in range(3)), "b reloading every device")
        assert b.get("fence-x") is None and b.version == 6
    finally:
        await stop(follower)


async def test_a_cancelled_follower_stops_whenever_the_cancel_lands(redis_client: aioredis.Redis, keys: Keys) -> None:
    """Cancelled at any point of its blocking read (before, during, as the empty reply comes back), the follower
    ends: a cancel the client swallows (asyncio.wait_for on Python 3.11) does not leave it reading for ever."""
    inventory = DeviceInventory(load_file(demo_path(), installed()), installed(), redis_client, keys)
    await inventory.load_runtime()
    for i in range(60):
        follower = asyncio.create_task(inventory.follow(block_ms=20))
        await asyncio.sleep(0.02 * (1 + i % 3) + (i % 7) * 0.0005)  # near the moments an empty reply comes back
        await stop(follower, limit_s=3.0)
        assert follower.cancelled(), f"round {i}: the follower ended without being cancelled"
