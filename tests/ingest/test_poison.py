"""No poison batch: a message the pipeline cannot apply is dead-lettered with its reason and the rest of its batch,
and every later batch, goes on; on the real broker and Redis, with a real hub, and across a hub restart (the
broker redelivers what a stuck hub never acknowledged)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sharpeye.config.loader import demo_path, load_file
from sharpeye.ingest.deadletter import recent
from sharpeye.ingest.registry import installed

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from sharpeye.node.hub import Hub
from sharpeye.settings import Settings
from tests.helpers import Publisher

POISON = "sharpeye/discovery/fence/fence-reservoir/config"  # fence-reservoir is defined in the demo's site YAML


def event(seq: int, zone: str = "z1") -> dict[str, object]:
    return {"seq": seq, "ts": datetime.now(UTC).isoformat(), "event": "alarm", "cause": "intrusion", "zone": zone}


async def until(check: Callable[[], object], what: str, seconds: float = 15) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        done = check()
        if inspect.isawaitable(done):
            done = await done
        if done:
            return
        assert loop.time() < deadline, f"timed out after {seconds}s waiting for {what}"
        await asyncio.sleep(0.05)


class Rig:
    def __init__(self, tmp: Path, redis: EmbeddedRedis, broker: EmbeddedMosquitto, keys: Keys) -> None:
        self.settings = Settings(cameras=False, data_dir=tmp, redis_url=redis.url, mqtt_url=broker.url,  # type: ignore[arg-type]
                                 redis_prefix=keys.prefix, node_id=keys.prefix)  # fmt: skip
        self.keys = keys
        self.hub: Hub | None = None

    async def start(self) -> Hub:
        self.hub = Hub(self.settings, load_file(demo_path(), installed()))
        await self.hub.start()
        await until(self.hub.transport.connected.is_set, "MQTT connected")
        return self.hub

    async def stop(self) -> None:
        if self.hub is not None:
            await self.hub.stop()
            self.hub = None

    async def raised_for(self, device: str) -> bool:
        assert self.hub is not None
        for _, fields in await self.hub.redis.xrange(self.keys.alarm_events):
            if fields.get(b"type") == b"raised":
                alarm = await self.hub.alarm_store.get(fields[b"alarm"].decode())
                if alarm is not None and alarm.device_id == device:
                    return True
        return False


@pytest.fixture
async def rig(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> AsyncIterator[Rig]:
    made = Rig(tmp_path, redis_server, mqtt_broker, keys)
    yield made
    await made.stop()


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
