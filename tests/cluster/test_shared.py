"""Shared subscriptions on Mosquitto 2: two transports in one share group (two nodes) receive every device
message exactly once between them; discovery (retained) still reaches each."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable

from sharpeye.ingest.transport.mqtt import Message, MqttTransport, subscriptions

from sharpeye.node.embedded import EmbeddedMosquitto
from tests.ingest.test_transport import publish, until


def test_subscriptions_share_devices_but_not_discovery() -> None:
    assert subscriptions() == ["sharpeye/+/+/+", "sharpeye/discovery/+/+/config"]
    assert subscriptions("hubs") == ["$share/hubs/sharpeye/+/+/+", "sharpeye/discovery/+/+/config"]


async def test_a_share_group_delivers_each_message_to_one_node(mqtt_broker: EmbeddedMosquitto) -> None:
    group = f"g{uuid.uuid4().hex[:8]}"
    got: dict[str, list[bytes]] = {"a": [], "b": []}

    def handler(name: str) -> Callable[[list[Message]], Awaitable[None]]:
        async def handle(batch: list[Message]) -> None:
            got[name].extend(m.payload for m in batch if not m.topic.startswith("sharpeye/discovery/"))

        return handle

    nodes = [MqttTransport(mqtt_broker.url, f"{group}-{n}", handler(n), share_group=group) for n in got]
    for node in nodes:
        await node.start()
    try:
        await until(lambda: all(n.connected.is_set() for n in nodes))
        probes = 0
        while not (b"probe" in got["a"] and b"probe" in got["b"]):  # SUBACK follows CONNACK: wait for both
            assert probes < 400, "a share group member never received anything"
            await asyncio.to_thread(publish, mqtt_broker.port, [("sharpeye/fence/probe/event", b"probe")] * 4)
            probes += 4
            await until(lambda n=probes: (got["a"] + got["b"]).count(b"probe") >= n, 10)  # type: ignore[misc]
        got["a"].clear()
        got["b"].clear()
        sent = [(f"sharpeye/fence/f{i % 20}/event", f"{group}-{i}".encode()) for i in range(1000)]
        await asyncio.to_thread(publish, mqtt_broker.port, sent)
        await until(lambda: len(got["a"]) + len(got["b"]) >= len(sent))
        assert Counter(got["a"] + got["b"]) == Counter(p for _, p in sent)  # each once, none lost
        assert got["a"] and got["b"]  # both nodes took a share
    finally:
        for node in nodes:
            await node.stop()
