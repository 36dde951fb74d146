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
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
        for i in range(3):
            await a.upsert(fence(f"fence-y{i}"), "discovery")
        await redis_client.xtrim(keys.inventory_changes, maxlen=1)
        follower = asyncio.create_task(b.follow(on_change, block_ms=50))
        await until(lambda: all(b.get(f"fence-y{i}") is not None for i in range(3)), "b reloading every device")
        assert b.get("fence-x") is None and b.version == 6
    finally:
        follower.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follower
