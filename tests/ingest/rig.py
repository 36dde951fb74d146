"""An in-process hub on the test session's Redis and Mosquitto (the demo site), for ingest tests through the hub."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sharpeye.config.loader import demo_path, load_file
from sharpeye.ingest.registry import installed

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from sharpeye.node.hub import Hub
from sharpeye.settings import Settings
from tests.conftest import own_mqtt_session


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
        # an MQTT session of its own (ended after the module): the demo site's default one may hold every device
        # message other tests published since a hub left it on the session's broker
        self.settings = Settings(cameras=False, data_dir=tmp, redis_url=redis.url, mqtt_url=broker.url,  # type: ignore[arg-type]
                                 redis_prefix=keys.prefix, node_id=keys.prefix,
                                 mqtt_client_id=own_mqtt_session(broker.url, keys.prefix))  # fmt: skip
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
