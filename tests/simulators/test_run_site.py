"""``run_site`` against a real private Mosquitto: the demo drill, hundreds of devices, a broker restart."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sharpeye.config.site import SiteConfig
from sharpeye.ingest.driver import Payload, StatefulDriver
from sharpeye.ingest.reading import DecodeError, Reading
from sharpeye.ingest.registry import installed
from sharpeye.simulators.scenario import scenario_dir
from sharpeye.simulators.site import run_site

from sharpeye.node.embedded import EmbeddedMosquitto


@dataclass
class Subscriber:
    """A plain paho subscriber on ``sharpeye/#`` that records what arrives and when."""

    url: str
    client_id: str = "test-sub"
    messages: list[tuple[float, str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    subscribed: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        host, port = self.url.removeprefix("mqtt://").split(":")
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv311)
        self.client.on_connect = lambda c, *_: c.subscribe("sharpeye/#", qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, int(port))
        self.client.loop_start()
        assert self.subscribed.wait(10), "subscriber never subscribed"

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((time.monotonic(), msg.topic, bytes(msg.payload)))

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def snapshot(self) -> list[tuple[float, str, bytes]]:
        with self.lock:
            return list(self.messages)

    def wait_for(self, predicate: Callable[[list[tuple[float, str, bytes]]], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.snapshot()):
                return
            time.sleep(0.05)
        raise AssertionError(f"condition not met within {timeout}s ({len(self.snapshot())} messages)")


@pytest.fixture
def subscriber(mqtt_broker: EmbeddedMosquitto) -> Iterator[Subscriber]:
    sub = Subscriber(mqtt_broker.url)
    sub.start()
    yield sub
    sub.stop()


class SiteThread:
    def __init__(self, site: SiteConfig, url: str, scenario: str | None, speed: float) -> None:
        self.stop = threading.Event()
        path = scenario_dir() / scenario if scenario else None
        self.thread = threading.Thread(target=run_site, args=(site, url, path, self.stop, speed), daemon=True)

    def __enter__(self) -> SiteThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive(), "run_site did not return after stop was set"


def decode_all(site: SiteConfig, messages: list[tuple[float, str, bytes]]) -> tuple[list[Reading], list[str]]:
    devices = {d.id: d for d in site.devices}
    states: dict[str, object] = {}
    readings: list[Reading] = []
    errors: list[str] = []
    for _, topic, data in messages:
        if topic.startswith("sharpeye/discovery/"):
            continue
        _, kind, device_id, channel = topic.split("/")
        driver, device = installed().get(kind), devices[device_id]
        payload = Payload(device_id, channel, data, datetime.now(UTC))
        try:
            if isinstance(driver, StatefulDriver):
                readings += driver.decode(device, payload, states.setdefault(device_id, driver.new_state(device)))
            else:
                readings += driver.decode(device, payload)
        except DecodeError as exc:
            errors.append(f"{topic}: {exc}")
    return readings, errors


def _intrusions(messages: list[tuple[float, str, bytes]]) -> list[tuple[float, bytes]]:
    return [(t, d) for t, topic, d in messages if topic == "sharpeye/fence/fence-reservoir/event" and b'"z1"' in d]


def test_demo_drill_over_mqtt(mqtt_broker: EmbeddedMosquitto, subscriber: Subscriber, demo_site: SiteConfig) -> None:
    speed = 10.0
    started = time.monotonic()
    with SiteThread(demo_site, mqtt_broker.url, "demo.yaml", speed):
        subscriber.wait_for(lambda m: len(_intrusions(m)) >= 2, timeout=30)
    events = _intrusions(subscriber.snapshot())
    assert b'"alarm"' in events[0][1] and b'"restore"' in events[1][1]
    # The steps at 3 s and 63 s of simulated time: the messages' timestamps follow the simulated clock, 60 s apart
    alarm_ms, restore_ms = (orjson.loads(data)["ts"] for _, data in events[:2])  # epoch milliseconds
    assert restore_ms - alarm_ms == pytest.approx(60_000, abs=500)
    # At 10x the restore is due 6.3 s of real time after the start: never earlier, and far sooner than the 63 s of
    # real time (a loose bound: a loaded machine delays a step, it cannot advance one)
    assert 6.3 <= events[1][0] - started < 31.5

    readings, errors = decode_all(demo_site, subscriber.snapshot())
    assert errors == []
    kinds = {(r.device_id, r.kind) for r in readings}
    for expected in [
        ("fence-reservoir", "device.heartbeat"),
        ("fence-school", "device.heartbeat"),
        ("thermal-hillside", "thermal.roi"),
        ("thermal-reservoir", "thermal.roi"),
        ("gauge-reservoir", "water_level.level"),
    ]:
        assert expected in kinds


def test_hundreds_of_devices_over_one_connection(
    mqtt_broker: EmbeddedMosquitto, subscriber: Subscriber, fence_fleet: Callable[[int, float], SiteConfig]
) -> None:
    site = fence_fleet(300, 1.0)

    def every_device_twice(messages: list[tuple[float, str, bytes]]) -> bool:
        seen: dict[str, int] = {}
        for _, topic, _ in messages:
            seen[topic] = seen.get(topic, 0) + 1
        return len(seen) == 300 and min(seen.values()) >= 2

    with SiteThread(site, mqtt_broker.url, None, 1.0):
        subscriber.wait_for(every_device_twice, timeout=20)
    readings, errors = decode_all(site, subscriber.snapshot())
    assert errors == [] and {r.kind for r in readings} == {"device.heartbeat"}


def test_simulator_reconnects_after_broker_restart(
    mqtt_broker: EmbeddedMosquitto, subscriber: Subscriber, fence_fleet: Callable[[int, float], SiteConfig]
) -> None:
    site = fence_fleet(5, 0.5)
    with SiteThread(site, mqtt_broker.url, None, 1.0):
        subscriber.wait_for(lambda m: len(m) >= 10, timeout=10)
        mqtt_broker.restart()
        restarted = time.monotonic()
        subscriber.wait_for(lambda m: any(t > restarted + 0.5 for t, _, _ in m), timeout=30)


def test_fence_command_over_mqtt_is_confirmed(
    mqtt_broker: EmbeddedMosquitto, subscriber: Subscriber, demo_site: SiteConfig
) -> None:
    from sharpeye.ingest.fence.command import FenceCommand, encode_command

    with SiteThread(demo_site, mqtt_broker.url, None, 1.0):
        subscriber.wait_for(lambda m: any(t.endswith("fence-school/heartbeat") for _, t, _ in m), timeout=10)
        payload = encode_command(FenceCommand(id="c-9", command="disarm", zone="z1"))
        subscriber.client.publish("sharpeye/fence/fence-school/command", payload, qos=1)
        subscriber.wait_for(
            lambda m: any(t == "sharpeye/fence/fence-school/arming" and b'"c-9"' in d for _, t, d in m), timeout=10
        )


def test_announced_device_config_is_retained_for_late_subscribers(
    mqtt_broker: EmbeddedMosquitto, subscriber: Subscriber, demo_site: SiteConfig, tmp_path: Path
) -> None:
    scenario = tmp_path / "announce.yaml"
    scenario.write_text("name: announce\nsteps:\n  - {at: 0, device: gauge-reservoir, action: announce}\n")
    stop = threading.Event()
    thread = threading.Thread(target=run_site, args=(demo_site, mqtt_broker.url, scenario, stop, 1.0), daemon=True)
    thread.start()
    topic = "sharpeye/discovery/water_level/gauge-reservoir/config"
    try:
        subscriber.wait_for(lambda m: any(t == topic for _, t, _ in m), timeout=10)
    finally:
        stop.set()
        thread.join(10)
    late = Subscriber(mqtt_broker.url, client_id="late-sub")
    late.start()
    try:
        late.wait_for(lambda m: any(t == topic for _, t, _ in m), timeout=10)
        config = installed().device_adapter().validate_json(next(d for _, t, d in late.snapshot() if t == topic))
        assert config.id == "gauge-reservoir" and config.kind == "water_level"
    finally:
        late.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(10)  # leave nothing retained
        late.stop()
