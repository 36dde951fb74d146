"""The MQTT transport against the real broker: batches come from the receiver process in order, a batch
is acknowledged only once handled, and a receiver that dies is replaced without losing messages."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from sharpeye.ingest.transport.mqtt import Message, MqttTransport

from sharpeye.node.embedded import EmbeddedMosquitto
from sharpeye.tasks import cancel_and_wait


def publish(port: int, topics_payloads: list[tuple[str, bytes]]) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish(topic, payload, qos=1) for topic, payload in topics_payloads]
    for info in infos:
        info.wait_for_publish(30)
    client.loop_stop()
    client.disconnect()


async def until(check: Callable[[], bool], seconds: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def staged(seen: list[bytes], committed: list[bytes]) -> Callable[[list[Message]], Callable[[], Awaitable[None]]]:
    def stage(batch: list[Message]) -> Callable[[], Awaitable[None]]:
        payloads = [m.payload for m in batch]
        seen.extend(payloads)

        async def commit() -> None:
            await asyncio.sleep(0.001)
            committed.extend(payloads)

        return commit

    return stage


async def test_batches_arrive_in_order_and_staged_commits_keep_it(mqtt_broker: EmbeddedMosquitto) -> None:
    seen: list[bytes] = []
    committed: list[bytes] = []

    async def handler(batch: list[Message]) -> None:
        raise AssertionError("the staged path is used when stage is given")

    transport = MqttTransport(mqtt_broker.url, f"t-{uuid.uuid4().hex[:8]}", handler, max_batch=50,
                              stage=staged(seen, committed))  # fmt: skip
    await transport.start()
    try:
        await until(transport.connected.is_set)
        sent = [("sharpeye/fence/f1/event", str(i).encode()) for i in range(2000)]
        await asyncio.to_thread(publish, mqtt_broker.port, sent)
        await until(lambda: len(committed) >= len(sent))
        assert committed == [p for _, p in sent]  # one publisher, QoS 1: broker order, kept through batches
        assert seen == committed
        assert transport.received == len(sent)
        await until(lambda: transport.backlog == 0)
    finally:
        await transport.stop()


async def test_killed_receiver_is_replaced_and_unacknowledged_messages_come_again(
    mqtt_broker: EmbeddedMosquitto,
) -> None:
    handled: list[bytes] = []
    release = asyncio.Event()

    async def handler(batch: list[Message]) -> None:
        await release.wait()  # hold the first batches unacknowledged while the receiver is killed
        handled.extend(m.payload for m in batch)

    client_id = f"t-{uuid.uuid4().hex[:8]}"
    transport = MqttTransport(mqtt_broker.url, client_id, handler, max_batch=100)
    await transport.start()
    try:
        await until(transport.connected.is_set)
        sent = [("sharpeye/fence/f2/event", f"m{i}".encode()) for i in range(500)]
        await asyncio.to_thread(publish, mqtt_broker.port, sent)
        await until(lambda: transport.received > 0)
        first = transport._proc
        assert first is not None
        first.kill()  # nothing acknowledged yet: the broker keeps it all for the session
        await until(lambda: transport._proc is not first and transport.connected.is_set())
        release.set()
        await until(lambda: set(handled) >= {p for _, p in sent})
        assert transport.connected.is_set()
    finally:
        await transport.stop()


async def test_a_batch_that_keeps_failing_is_split_and_only_the_failing_message_is_rejected(
    mqtt_broker: EmbeddedMosquitto,
) -> None:
    committed: list[bytes] = []
    rejected: list[tuple[bytes, str]] = []
    tries = 0

    def stage(batch: list[Message]) -> Callable[[], Awaitable[None]]:
        payloads = [m.payload for m in batch]

        async def commit() -> None:
            nonlocal tries
            tries += 1
            if b"poison" in payloads:
                raise ValueError("cannot apply poison")
            committed.extend(payloads)

        return commit

    async def reject(failures: list[tuple[Message, str]]) -> None:
        rejected.extend((m.payload, why) for m, why in failures)

    async def handler(batch: list[Message]) -> None:
        raise AssertionError("staged")

    transport = MqttTransport(mqtt_broker.url, f"t-{uuid.uuid4().hex[:8]}", handler, stage=stage, reject=reject,
                              attempts=3, retry_delay=0.01)  # fmt: skip
    await transport.start()
    try:
        await until(transport.connected.is_set)
        sent = [("sharpeye/fence/f3/event", p) for p in (b"a", b"b", b"poison", b"c")]
        await asyncio.to_thread(publish, mqtt_broker.port, sent)
        await asyncio.to_thread(publish, mqtt_broker.port, [("sharpeye/fence/f3/event", b"later")])
        await until(lambda: b"later" in committed)
        assert sorted(committed) == [b"a", b"b", b"c", b"later"]
        assert rejected == [(b"poison", "ValueError: cannot apply poison")]
        assert transport.rejected == 1 and transport.stuck_since is None
        await until(lambda: transport.backlog == 0 and transport.lag_seconds() == 0)
    finally:
        await transport.stop()


async def test_a_transient_failure_keeps_the_batch_waiting_and_rejects_nothing(mqtt_broker: EmbeddedMosquitto) -> None:
    committed: list[bytes] = []
    rejected: list[bytes] = []
    down = True

    def stage(batch: list[Message]) -> Callable[[], Awaitable[None]]:
        async def commit() -> None:
            if down:
                raise ConnectionError("redis is down")
            committed.extend(m.payload for m in batch)

        return commit

    async def reject(failures: list[tuple[Message, str]]) -> None:
        rejected.extend(m.payload for m, _ in failures)

    async def handler(batch: list[Message]) -> None:
        raise AssertionError("staged")

    transport = MqttTransport(mqtt_broker.url, f"t-{uuid.uuid4().hex[:8]}", handler, stage=stage, reject=reject,
                              attempts=2, retry_delay=0.01)  # fmt: skip
    await transport.start()
    try:
        await until(transport.connected.is_set)
        await asyncio.to_thread(publish, mqtt_broker.port, [("sharpeye/fence/f4/event", b"x")])
        await until(lambda: transport.retries >= 5)  # well past ``attempts``: still waiting, not rejected
        assert transport.stuck_since is not None and transport.lag_seconds() > 0
        assert "redis is down" in (transport.last_error or "")
        down = False
        await until(lambda: committed == [b"x"])
        assert rejected == []
        await until(lambda: transport.stuck_since is None and transport.lag_seconds() == 0)
    finally:
        await transport.stop()


async def test_stop_ends_even_when_a_handler_swallows_the_cancellation(mqtt_broker: EmbeddedMosquitto) -> None:
    """Python 3.11's ``asyncio.wait_for`` (used by client libraries) returns its result instead of raising when a
    cancellation lands as its awaitable completes: the handler goes on, and so would the drain loop around it. A
    hub's teardown once hung there (one cancel, then an endless wait); stop cancels again until the tasks end."""
    handling = asyncio.Event()
    swallowed = 0

    async def handler(batch: list[Message]) -> None:
        nonlocal swallowed
        handling.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            swallowed += 1  # the library finished its call and returned normally

    transport = MqttTransport(mqtt_broker.url, f"t-{uuid.uuid4().hex[:8]}", handler, max_batch=10)
    await transport.start()
    try:
        await until(transport.connected.is_set)
        await asyncio.to_thread(publish, mqtt_broker.port, [("sharpeye/fence/f1/event", b"1")])
        await asyncio.wait_for(handling.wait(), 30)
    finally:
        stopping = asyncio.create_task(transport.stop())
        done, _ = await asyncio.wait({stopping}, timeout=30)  # not wait_for: it could swallow a cancel too
        if not done:
            await cancel_and_wait([*transport._tasks, stopping])  # leave no task behind the failure
    assert done, "stop() did not end: a swallowed cancellation left its drain task running"
    assert swallowed == 1
