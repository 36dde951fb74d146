"""No poison batch: a message the pipeline cannot apply is dead-lettered with its reason and the rest of its batch,
and every later batch, goes on; on the real broker and Redis, with a real hub, and across a hub restart (the
broker redelivers what a stuck hub never acknowledged)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import orjson
from sharpeye.ingest.deadletter import recent
from sharpeye.ingest.pipeline import RateLimiter
from sharpeye.ingest.reading import Reading
from sharpeye.ingest.transport.mqtt import Message

from sharpeye.node.embedded import EmbeddedMosquitto
from tests.helpers import Publisher
from tests.ingest.rig import Rig, event, rig, until

__all__ = ["rig"]  # the fixture

POISON = "sharpeye/discovery/fence/fence-reservoir/config"  # fence-reservoir is defined in the demo's site YAML


async def test_removing_a_site_yaml_device_by_discovery_is_dead_lettered_and_others_go_on(
    rig: Rig, mqtt_broker: EmbeddedMosquitto
) -> None:
    hub = await rig.start()
    pub = Publisher(mqtt_broker.url)
    try:
        await asyncio.to_thread(pub.publish, POISON, b"", True)
        await asyncio.to_thread(pub.publish, "sharpeye/fence/fence-school/event", event(1))
        await until(lambda: rig.raised_for("fence-school"), "fence-school's alarm after the poison message")
        letters = await recent(hub.redis, rig.keys, device="fence-reservoir")
        assert [(d["reason"], d["origin"]) for d in letters] == [("config_device", POISON)]
        assert "defined in the site config; remove it there" in letters[0]["detail"]
        assert hub.inventory.get("fence-reservoir") is not None  # still there: the site YAML is the record
        assert hub.metrics.deadletters.labels("discovery", "config_device")._value.get() == 1
        await until(lambda: hub.transport.backlog == 0, "the batch acknowledged")
    finally:
        pub.close()


async def test_a_poison_message_queued_while_the_hub_was_down_does_not_stop_it_after_a_restart(
    rig: Rig, mqtt_broker: EmbeddedMosquitto
) -> None:
    await rig.start()  # makes the hub's persistent session on the broker
    await rig.stop()
    pub = Publisher(mqtt_broker.url)
    try:  # queued by the broker for the hub's session, delivered in one batch at the next start
        await asyncio.to_thread(pub.publish, POISON, b"", True)
        await asyncio.to_thread(pub.publish, "sharpeye/fence/fence-school/event", event(1))
        hub = await rig.start()
        await until(lambda: rig.raised_for("fence-school"), "fence-school's alarm after a restart")
        await rig.stop()
        hub = await rig.start()  # and the poison is not redelivered: it was acknowledged with its batch
        await asyncio.to_thread(pub.publish, "sharpeye/fence/fence-reservoir/event", event(1))
        await until(lambda: rig.raised_for("fence-reservoir"), "the YAML device still works")
        letters = await recent(hub.redis, rig.keys, device="fence-reservoir")
        assert [d["reason"] for d in letters] == ["config_device"]
    finally:
        pub.close()


class _BrokenLimiter(RateLimiter):
    def allow(self, device_id: str, now: float) -> bool:
        if device_id == "fence-reservoir":
            raise RuntimeError("limiter bug")
        return super().allow(device_id, now)


def _message(topic: str, payload: bytes) -> Message:
    return Message(topic, payload, False, 0, 1, time.time())


async def test_only_discovered_devices_are_removed_by_discovery_and_a_bug_costs_one_message(rig: Rig) -> None:
    hub = await rig.start()
    fence = {"kind": "fence", "name": "接口添加", "grid": "hedong-g2", "zones": [{"id": "z1", "name": "东墙"}]}
    await hub.inventory.upsert({**fence, "id": "api-fence"}, "api")
    await hub.inventory.upsert({**fence, "id": "found-fence"}, "discovery")
    hub.pipeline.limiter = _BrokenLimiter()
    await hub.pipeline.handle([
        _message("sharpeye/discovery/fence/api-fence/config", b""),
        _message("sharpeye/discovery/fence/found-fence/config", b""),
        _message("sharpeye/fence/fence-reservoir/event", orjson.dumps(event(1))),
        _message("sharpeye/fence/fence-school/event", orjson.dumps(event(1))),
    ])  # fmt: skip
    assert hub.inventory.get("api-fence") is not None and hub.inventory.get("found-fence") is None
    assert not await hub.redis.hexists(rig.keys.device_configs, "found-fence")
    letters = {d["device"]: d for d in await recent(hub.redis, rig.keys)}
    assert letters["api-fence"]["reason"] == "not_discovered" and "remove it there" in letters["api-fence"]["detail"]
    assert letters["fence-reservoir"]["reason"] == "internal_error"
    assert "limiter bug" in letters["fence-reservoir"]["detail"]
    assert await rig.raised_for("fence-school")  # the rest of the batch was applied


async def test_a_reading_the_engine_cannot_apply_is_dead_lettered_after_bounded_retries(
    rig: Rig, mqtt_broker: EmbeddedMosquitto
) -> None:
    hub = await rig.start()
    apply = hub.pipeline.sink

    async def sink(readings: Sequence[Reading]) -> object:  # a fault in the alarm path for one device only
        if any(r.device_id == "fence-reservoir" for r in readings):
            raise ValueError("rule blew up on fence-reservoir")
        return await apply(readings)

    hub.pipeline.sink = sink
    pub = Publisher(mqtt_broker.url)
    try:
        await asyncio.to_thread(pub.publish, "sharpeye/fence/fence-reservoir/event", event(1))
        await asyncio.to_thread(pub.publish, "sharpeye/fence/fence-school/event", event(1))
        await until(lambda: rig.raised_for("fence-school"), "fence-school's alarm", seconds=30)
        letters = await recent(hub.redis, rig.keys, device="fence-reservoir")
        assert [d["reason"] for d in letters] == ["unprocessable"]
        assert "ValueError: rule blew up on fence-reservoir" in letters[0]["detail"]
        assert hub.transport.rejected == 1
        assert hub.metrics.deadletters.labels("fence", "unprocessable")._value.get() == 1
        await until(lambda: hub.transport.pending == 0, "everything acknowledged")
    finally:
        pub.close()
