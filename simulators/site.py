"""Run every MQTT device of a site from one process, scripted by a scenario.

``SiteSimulation`` is the pure core: given elapsed simulated seconds it returns the (topic, payload)
pairs due, so tests and the contract suite can drive decoders without a broker. ``run_site`` wraps it
with paho clients (QoS 1) and real time scaled by ``speed``: one connection for every device (with the URL's
credentials, if any), or, given the site's device secret, one connection per device logged in with its own derived
password, as real devices do on a broker that confines each device to its own topics.
"""

from __future__ import annotations

import heapq
import logging
import queue
import socket
import threading
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sharpeye.config.device import DeviceConfig
from sharpeye.config.site import SiteConfig
from sharpeye.ingest.credential import device_password
from sharpeye.ingest.driver import Message, SimulatedDevice
from sharpeye.ingest.reading import DecodeError
from sharpeye.ingest.registry import Registry, installed
from sharpeye.simulators.fault import FAULTS, FaultState
from sharpeye.simulators.scenario import Scenario, Step, load_scenario

log = logging.getLogger(__name__)

TOPIC_ROOT = "sharpeye"
DISCOVERY_ROOT = f"{TOPIC_ROOT}/discovery"
DISCOVERY = ("announce", "withdraw")
"""Scenario actions for every device: publish its config as a retained discovery message, or remove it."""
MAX_QUEUED = 20_000
MIN_TICK_S = 0.01  # a simulator never asks to be ticked more often than this


@runtime_checkable
class CommandableDevice(Protocol):
    """A simulated device that obeys hub commands published on ``sharpeye/<kind>/<id>/command``."""

    def command(self, data: bytes, now: datetime) -> list[Message]: ...


class ScenarioError(ValueError):
    """A scenario step names a device or action the site's simulators do not have."""


def topic(kind: str, device_id: str, channel: str) -> str:
    """Device → hub topic: ``sharpeye/<kind>/<device_id>/<channel>``."""
    return f"{TOPIC_ROOT}/{kind}/{device_id}/{channel}"


def discovery_topic(kind: str, device_id: str) -> str:
    """Retained discovery topic: ``sharpeye/discovery/<kind>/<device_id>/config``."""
    return f"{DISCOVERY_ROOT}/{kind}/{device_id}/config"


def discovery_payload(config: DeviceConfig) -> bytes:
    """The device's config as the hub's discovery expects it: the YAML object, as JSON (defaults left out)."""
    return config.model_dump_json(exclude_defaults=True).encode("utf-8")


def retained(topic_name: str) -> bool:
    """Discovery messages are retained, so a hub that connects later still learns the device."""
    return topic_name.startswith(DISCOVERY_ROOT + "/")


@dataclass(slots=True)
class SimulatedEntry:
    config: DeviceConfig
    device: SimulatedDevice
    faults: FaultState


class SiteSimulation:
    """Every enabled MQTT device of a site with a simulator, plus the scenario's steps."""

    def __init__(
        self,
        site: SiteConfig,
        scenario: Scenario | None = None,
        *,
        start: datetime | None = None,
        registry: Registry | None = None,
        seed: int = 0,
    ) -> None:
        self.start = start or datetime.now(UTC)
        registry = registry or installed()
        self.entries: dict[str, SimulatedEntry] = {}
        for config in site.devices:
            if not config.enabled:
                continue
            factory = registry.simulator(config.kind)
            if registry.get(config.kind).transport != "mqtt" or factory is None:
                continue
            device = factory(config, seed=seed ^ zlib.crc32(config.id.encode()), start=self.start)
            self.entries[config.id] = SimulatedEntry(config, device, FaultState())
        self._wake: list[tuple[float, str]] = [
            (max(0.0, (e.device.next_tick() - self.start).total_seconds()), device_id)
            for device_id, e in self.entries.items()
        ]
        heapq.heapify(self._wake)
        if scenario is not None:
            self._check(scenario.steps)
        self.steps: list[Step] = sorted(scenario.steps, key=lambda s: s.at) if scenario else []
        self._next_step = 0
        self.published = 0
        self.failed_steps: list[str] = []

    def _targets(self, selector: str) -> list[SimulatedEntry]:
        if selector == "*":
            return list(self.entries.values())
        if selector.startswith("kind:"):
            return [e for e in self.entries.values() if e.config.kind == selector[5:]]
        entry = self.entries.get(selector)
        return [entry] if entry else []

    def _check(self, steps: list[Step]) -> None:
        for i, step in enumerate(steps):
            targets = self._targets(step.device)
            if not targets and step.optional:
                log.warning("steps[%d] (at %ss): no simulated device matches %r; skipped", i, step.at, step.device)
                continue
            if not targets:
                raise ScenarioError(f"steps[{i}] (at {step.at}s): no simulated device matches {step.device!r}")
            if step.action in FAULTS or step.action in DISCOVERY:
                continue
            for entry in targets:
                if step.action not in entry.device.actions():
                    raise ScenarioError(
                        f"steps[{i}] (at {step.at}s): {entry.config.kind} device {entry.config.id!r} has no action "
                        f"{step.action!r}; actions: {', '.join(entry.device.actions())}, "
                        f"faults: {', '.join(FAULTS)}, discovery: {', '.join(DISCOVERY)}"
                    )

    def next_wake(self) -> float:
        """Elapsed simulated seconds at which ``advance`` next has something to do."""
        candidates = [self._wake[0][0]] if self._wake else []
        if self._next_step < len(self.steps):
            candidates.append(self.steps[self._next_step].at)
        return min(candidates, default=float("inf"))

    def advance(self, elapsed_s: float) -> list[tuple[str, bytes]]:
        """Everything due up to ``elapsed_s`` simulated seconds after the start, as (topic, payload)."""
        out: list[tuple[str, bytes]] = []
        while self._next_step < len(self.steps) and self.steps[self._next_step].at <= elapsed_s:
            step = self.steps[self._next_step]
            self._next_step += 1
            now = self.start + timedelta(seconds=step.at)
            for entry in self._targets(step.device):
                try:
                    if step.action in DISCOVERY:
                        data = discovery_payload(entry.config) if step.action == "announce" else b""
                        out.append((discovery_topic(entry.config.kind, entry.config.id), data))
                    elif step.action in FAULTS:
                        kind, device_id = entry.config.kind, entry.config.id
                        for route, ch, data in entry.faults.start(step.action, step.args, now):
                            if route == "unknown_device":
                                out.append((topic(kind, f"{device_id}-ghost", ch), data))
                            elif route == "unknown_kind":
                                out.append((topic(f"{kind}_ghost", device_id, ch), data))
                            else:
                                out.append((topic(kind, device_id, ch), data))
                    else:
                        out.extend(self._emit(entry, entry.device.act(step.action, step.args, now), now))
                except (KeyError, TypeError, ValueError) as exc:  # bad args: skip the step, keep the drill going
                    self.failed_steps.append(f"at {step.at}s {step.action} on {entry.config.id}: {exc!r}")
                    log.error("scenario step failed: %s", self.failed_steps[-1])
        while self._wake and self._wake[0][0] <= elapsed_s:
            due, device_id = heapq.heappop(self._wake)
            entry = self.entries[device_id]
            now = self.start + timedelta(seconds=due)
            out.extend(self._emit(entry, entry.device.tick(now), now))
            next_due = (entry.device.next_tick() - self.start).total_seconds()
            heapq.heappush(self._wake, (max(next_due, due + MIN_TICK_S), device_id))
        self.published += len(out)
        return out

    def command(self, topic_name: str, data: bytes, elapsed_s: float) -> list[tuple[str, bytes]]:
        """Deliver a hub command to its device; returns the device's answers as (topic, payload)."""
        parts = topic_name.split("/")
        entry = self.entries.get(parts[2]) if len(parts) == 4 and parts[3] == "command" else None
        if entry is None or not isinstance(entry.device, CommandableDevice):
            log.warning("no simulated device takes commands on %s", topic_name)
            return []
        now = self.start + timedelta(seconds=elapsed_s)
        try:
            messages = entry.device.command(data, now)
        except DecodeError as exc:
            log.warning("simulated %s ignores a malformed command: %s", entry.config.id, exc)
            return []
        out = self._emit(entry, messages, now)
        self.published += len(out)
        return out

    def _emit(self, entry: SimulatedEntry, messages: list[tuple[str, bytes]], now: datetime) -> list[tuple[str, bytes]]:
        sent = entry.faults.apply(messages, now)
        return [(topic(entry.config.kind, entry.config.id, channel), data) for channel, data in sent]


def _client(
    mqtt_url: str, client_id: str, subscribe: str, login: tuple[str, str] | None = None
) -> tuple[mqtt.Client, str, int]:
    url = urlsplit(mqtt_url)
    if url.scheme not in ("mqtt", "tcp"):
        raise ValueError(f"unsupported MQTT URL scheme {url.scheme!r} (use mqtt://host:port)")
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311)
    if login is not None:
        client.username_pw_set(*login)
    elif url.username:
        client.username_pw_set(url.username, url.password)
    client.max_queued_messages_set(MAX_QUEUED)
    client.max_inflight_messages_set(1000)
    client.reconnect_delay_set(min_delay=1, max_delay=30)

    def on_connect(c: mqtt.Client, _userdata: object, _flags: object, reason: object, _props: object) -> None:
        sock = c.socket()
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.subscribe(subscribe, qos=1)
        log.info("simulator %s connected to %s:%s (%s)", client_id, url.hostname, url.port, reason)

    client.on_connect = on_connect
    return client, url.hostname or "127.0.0.1", url.port or 1883


COMMAND_TOPIC = f"{TOPIC_ROOT}/+/+/command"
MAX_COMMAND_WAIT_S = 0.1


def _publish(client: mqtt.Client, topic_name: str, data: bytes, stop: threading.Event) -> None:
    """Publish at QoS 1; when paho's queue is full, wait for it to drain (bounded memory, no loss)."""
    while not stop.is_set():
        info = client.publish(topic_name, data, qos=1, retain=retained(topic_name))
        if info.rc != mqtt.MQTT_ERR_QUEUE_SIZE:
            return
        stop.wait(0.01)


def device_of(topic_name: str) -> str:
    """The device a simulator topic belongs to (``sharpeye/<kind>/<id>/...`` or the discovery topic)."""
    parts = topic_name.split("/")
    return parts[3] if topic_name.startswith(DISCOVERY_ROOT + "/") else parts[2]


def run_site(
    site: SiteConfig,
    mqtt_url: str,
    scenario: Path | None,
    stop: threading.Event,
    speed: float = 1.0,
    device_secret: str | None = None,
) -> None:
    """Run every MQTT-kind device of ``site`` (heartbeats, frames, levels, plus the scenario) until ``stop``.

    ``speed`` scales simulated time (2.0: a 60 s scenario takes 30 s); message timestamps follow the
    simulated clock. Without ``device_secret`` one paho connection publishes everything at QoS 1; with it, each
    device has its own connection, user name (its id) and password derived from the secret, and reads only its
    own command topic.
    """
    if speed <= 0:
        raise ValueError("speed must be > 0")
    simulation = SiteSimulation(site, load_scenario(scenario) if scenario else None)
    suffix = threading.get_ident() % 100000
    commands: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
    clients: dict[str | None, mqtt.Client] = {}
    if device_secret:
        for device_id, entry in simulation.entries.items():
            login = (device_id, device_password(device_secret, device_id, "mqtt"))
            own = f"{TOPIC_ROOT}/{entry.config.kind}/{device_id}/command"
            clients[device_id], host, port = _client(mqtt_url, f"sharpeye-sim-{device_id}-{suffix}", own, login)
    else:
        clients[None], host, port = _client(mqtt_url, f"sharpeye-sim-{site.site.id}-{suffix}", COMMAND_TOPIC)
    for client in clients.values():
        client.on_message = lambda _c, _u, msg: commands.put((msg.topic, bytes(msg.payload)))
        client.connect_async(host, port, keepalive=30)
        client.loop_start()
    shared = clients.get(None)
    count = len(simulation.entries)
    log.info("simulating %d devices of site %s on %d connection(s)", count, site.site.id, len(clients))
    t0 = time.monotonic()
    try:
        while not stop.is_set():
            elapsed = (time.monotonic() - t0) * speed
            outgoing = simulation.advance(elapsed)
            while not commands.empty():
                outgoing += simulation.command(*commands.get(), elapsed)
            for topic_name, data in outgoing:
                _publish(shared or clients[device_of(topic_name)], topic_name, data, stop)
            wait = (simulation.next_wake() - (time.monotonic() - t0) * speed) / speed
            stop.wait(min(max(wait, 0.0), MAX_COMMAND_WAIT_S))
    finally:
        for client in clients.values():
            client.disconnect()
            client.loop_stop()
        log.info("simulator stopped after %d messages", simulation.published)
