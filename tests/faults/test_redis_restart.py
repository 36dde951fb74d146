"""What the hub keeps doing after its Redis restarts: Redis forgets loaded Lua scripts, so every EVALSHA user must
load its script again. The Redis fault case's root cause: the lease round matched "NOSCRIPT" in the error text,
which redis-py strips ("No matching script."), so after a Redis restart every lease round failed for ever, health
stayed degraded and the node's leases (the MQTT reader role among them) would run out."""

from __future__ import annotations

import contextlib
from pathlib import Path

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from sharpeye.ingest.ownership import Ownership

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedRedis


async def test_lease_rounds_go_on_after_redis_restarts(tmp_path: Path) -> None:
    server = EmbeddedRedis(workdir=tmp_path / "redis")
    server.start()
    client = aioredis.Redis.from_url(server.url)
    units = {"mqtt-reader": 1.0, "cam-1": 1.0}
    node = Ownership(client, Keys("tr"), "node-a", lambda: units, ttl_s=30, period_s=1)
    try:
        await node.round()
        assert set(node.owned) == set(units) and node.last_error is None
        server.kill()
        server.start()  # same port and files: the leases are back from the AOF, the script is not
        with contextlib.suppress(RedisConnectionError):  # the pool's connection to the dead server, found closed
            await node.round()
        await node.round()
        assert node.last_error is None, node.last_error
        assert set(node.owned) == set(units)
        await node.round()  # and with the script loaded again
        assert node.last_error is None, node.last_error
    finally:
        await client.aclose()
        server.stop()
