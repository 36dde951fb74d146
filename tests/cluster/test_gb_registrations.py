"""The GB/T 28181 registration store on a real Redis: what the SIP server reports is written in the background
(the latest news per device wins), read back unexpired, expired ones dropped, and only UDP ones restorable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis
from sharpeye.ingest.gb28181.registrations import RegistrationStore
from sharpeye.ingest.transport.sip.endpoint import Peer

from sharpeye.keys import Keys


async def test_registrations_round_trip(redis_client: aioredis.Redis, keys: Keys) -> None:
    store = RegistrationStore(redis_client, keys, "node-a")
    now = datetime.now(UTC)
    udp, tcp = Peer("udp", "10.0.0.5", 5060), Peer("tcp", "10.0.0.6", 5060)
    store.registered("dev-1", udp, "<sip:dev-1@10.0.0.5:5060>", now + timedelta(hours=1), now)
    store.registered("dev-2", tcp, "<sip:dev-2@10.0.0.6:5060>", now + timedelta(hours=1), now)
    store.registered("dev-3", udp, "", now - timedelta(seconds=1), now - timedelta(hours=1))  # lapsed
    store.registered("dev-4", udp, "", now + timedelta(hours=1), now)
    store.unregistered("dev-4")  # the later news wins: never written
    assert await store.flush() == 4
    assert await redis_client.hexists(keys.gb_registrations, "dev-4") == 0

    other = RegistrationStore(redis_client, keys, "node-b")  # another node reads them
    loaded = await other.load()
    assert [r.device_id for r in loaded] == ["dev-1", "dev-2"]
    assert await redis_client.hexists(keys.gb_registrations, "dev-3") == 0  # the lapsed one is removed
    first = loaded[0]
    assert (first.peer, first.contact, first.node) == (udp, "<sip:dev-1@10.0.0.5:5060>", "node-a")
    assert abs(first.expires_at - (now + timedelta(hours=1)).timestamp()) < 1e-3
    assert [r.device_id for r in RegistrationStore.restorable(loaded)] == ["dev-1"]  # TCP reconnects by itself
    view = first.view()
    assert view["address"] == "10.0.0.5:5060" and view["signalling_node"] == "node-a"

    await redis_client.hset(keys.gb_registrations, "dev-9", b"{not json")
    assert [r.device_id for r in await other.load()] == ["dev-1", "dev-2"]  # a bad record is dropped, not fatal
    assert await redis_client.hexists(keys.gb_registrations, "dev-9") == 0
