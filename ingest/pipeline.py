"""From MQTT messages to readings: route by topic, decode, discover, rate-limit, dead-letter.

Topic layout: ``sharpeye/<kind>/<device_id>/<channel>`` from devices, and
``sharpeye/discovery/<kind>/<device_id>/config`` (retained) for discovery. ``command`` channels go from
the hub to devices and are ignored here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
import redis.asyncio as aioredis
import redis.exceptions
from prometheus_client import Counter
from sharpeye.ingest.deadletter import DeadLetter, add_many
from sharpeye.ingest.driver import DeviceStates, Payload
from sharpeye.ingest.health import HealthTracker
from sharpeye.ingest.inventory import DeviceInventory, InventoryError
from sharpeye.ingest.reading import DecodeError, Reading
from sharpeye.ingest.registry import Registry
from sharpeye.ingest.transport.mqtt import TOPIC_ROOT, Message

from sharpeye.keys import Keys
from sharpeye.metrics import Metrics

log = logging.getLogger(__name__)

Sink = Callable[[Sequence[Reading]], Awaitable[object]]

MAX_MESSAGE = 1 << 20  # 1 MiB: anything bigger is rejected before decoding


def transient(exc: BaseException) -> bool:
    """An error of the hub's own services (Redis unreachable or still loading, a timeout), not of a message: its
    batch waits, unacknowledged, instead of being dead-lettered."""
    return isinstance(exc, OSError | TimeoutError | redis.exceptions.ConnectionError | redis.exceptions.TimeoutError)


def _topic_device(topic: str) -> tuple[str, str]:
    """(kind, device id) that a topic names, as far as it names them (``discovery`` for discovery topics)."""
    parts = topic.split("/")
    if len(parts) == 5 and parts[1] == "discovery":
        return "discovery", parts[3]
    if len(parts) == 4:
        return parts[1], parts[2]
    return "", ""


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """Token bucket per device: a flooding device is cut to ``rate`` msg/s without starving others.

    The bucket is deep (``burst``) because a backlog the broker kept for the hub while it was down arrives all at
    once: a device's hour of queued messages must pass, a device that floods for minutes must not."""

    def __init__(self, rate: float = 200.0, burst: float = 2000.0) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}

    def allow(self, device_id: str, now: float) -> bool:
        bucket = self._buckets.get(device_id)
        if bucket is None:
            bucket = self._buckets[device_id] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True


class IngestPipeline:
    def __init__(
        self,
        registry: Registry,
        inventory: DeviceInventory,
        health: HealthTracker,
        redis: aioredis.Redis,
        keys: Keys,
        metrics: Metrics,
        sink: Sink,
        limiter: RateLimiter | None = None,
    ) -> None:
        self.registry = registry
        self.inventory = inventory
        self.health = health
        self.redis = redis
        self.keys = keys
        self.metrics = metrics
        self.sink = sink
        self.limiter = limiter or RateLimiter()
        self._dropped_since_letter: dict[str, int] = {}
        # per-device decoding state of stateful kinds (thermal history); renewed when a device's config changes
        self.states = DeviceStates()
        self._children: dict[tuple[int, str], Counter] = {}
        self._tallies: dict[tuple[int, str], int] = {}
        inventory.listeners.append(self._forget_state)

    def _count(self, counter: Counter, label: str) -> None:
        """Count one for a labelled counter; added to the counter once per batch (``_tally``), since
        ``labels()`` and ``inc()`` are slow per message."""
        key = (id(counter), label)
        n = self._tallies.get(key)
        if n is None:
            if key not in self._children:
                self._children[key] = counter.labels(label)
            n = 0
        self._tallies[key] = n + 1

    def _tally(self) -> None:
        for key, n in self._tallies.items():
            self._children[key].inc(n)
        self._tallies.clear()

    def _forget_state(self, device_id: str, _device: object) -> None:
        self.states.forget(device_id)

    async def handle(self, batch: list[Message]) -> None:
        await self.stage(batch)()

    def stage(self, batch: list[Message]) -> Callable[[], Awaitable[None]]:
        """Decode a batch now (CPU only, no I/O); return the I/O that stores its results, to be awaited in
        batch order (``MqttTransport`` prepares the next batch meanwhile)."""
        started = time.perf_counter()
        readings: list[Reading] = []
        letters: list[DeadLetter] = []
        discovered: list[str] = []
        try:
            for message in batch:
                try:
                    self._one(message, readings, letters, discovered)
                except Exception as exc:  # a bug on one message must not hold its batch (or every later one)
                    log.exception("ingest failed on a message on %s", message.topic)
                    kind, device_id = _topic_device(message.topic)
                    self._reject(letters, message, device_id, kind, DecodeError("internal_error", repr(exc)))
        finally:
            self._tally()
        spent = time.perf_counter() - started

        async def commit() -> None:
            begun = time.perf_counter()
            if discovered:
                await self.inventory.persist(discovered)
            if letters:
                pipe = self.redis.pipeline(transaction=False)
                add_many(pipe, self.keys, letters)
                await pipe.execute()
            if readings:
                await self.sink(readings)
            self.metrics.ingest_batch.observe(spent + time.perf_counter() - begun)

        return commit

    async def reject(self, failures: list[tuple[Message, str]]) -> None:
        """Dead-letter messages whose readings could not be applied even one at a time (``MqttTransport`` calls
        this once a batch has failed its bounded retries), so that the rest of the batch goes on."""
        letters: list[DeadLetter] = []
        for message, why in failures:
            kind, device_id = _topic_device(message.topic)
            self._reject(letters, message, device_id, kind, DecodeError("unprocessable", why))
        pipe = self.redis.pipeline(transaction=False)
        add_many(pipe, self.keys, letters)
        await pipe.execute()

    def _reject(self, letters: list[DeadLetter], message: Message, device_id: str, kind: str, exc: DecodeError) -> None:
        letters.append(
            DeadLetter(
                source="mqtt",
                origin=message.topic,
                device_id=device_id,
                kind=kind,
                reason=exc.reason,
                detail=exc.detail,
                payload=message.payload,
                received=datetime.fromtimestamp(message.received, UTC),
            )
        )
        self.metrics.deadletters.labels(kind or "-", exc.reason).inc()
        if device_id:
            self.health.error(device_id, exc.reason)

    def _one(self, message: Message, readings: list[Reading], letters: list[DeadLetter], discovered: list[str]) -> None:
        parts = message.topic.split("/")
        if len(parts) == 5 and parts[1] == "discovery":
            changed = self._discovery(message, parts[2], parts[3], letters)
            if changed is not None:
                discovered.append(changed)
            return
        if len(parts) != 4 or parts[0] != TOPIC_ROOT:
            self._reject(letters, message, "", "", DecodeError("bad_topic", message.topic))
            return
        _, kind, device_id, channel = parts
        if channel == "command":
            return
        self._count(self.metrics.messages, kind)
        if kind not in self.registry.drivers:
            self._reject(letters, message, device_id, kind, DecodeError("unknown_kind", f"no driver for {kind!r}"))
            return
        device = self.inventory.get(device_id)
        if device is None:
            self._reject(letters, message, device_id, kind, DecodeError("unknown_device", f"no device {device_id!r}"))
            return
        if device.kind != kind:
            detail = f"device {device_id!r} is a {device.kind}, topic says {kind}"
            self._reject(letters, message, device_id, kind, DecodeError("kind_mismatch", detail))
            return
        if not self.limiter.allow(device_id, message.received):
            self.metrics.rate_limited.labels(kind).inc()
            self.health.error(device_id, "rate_limited")
            dropped = self._dropped_since_letter.get(device_id, 0) + 1
            self._dropped_since_letter[device_id] = dropped
            if dropped == 1 or dropped % 1000 == 0:  # keep a sample, not the flood
                detail = f"over {self.limiter.rate:g} msg/s; {dropped} dropped so far"
                self._reject(letters, message, device_id, kind, DecodeError("rate_limited", detail))
            return
        if len(message.payload) > MAX_MESSAGE:
            detail = f"{len(message.payload)} bytes > {MAX_MESSAGE}"
            self._reject(letters, message, device_id, kind, DecodeError("oversize", detail))
            return
        payload = Payload(device_id, channel, message.payload, datetime.fromtimestamp(message.received, UTC))
        try:
            decoded = self.states.decode(self.registry.drivers[kind], device, payload)
        except DecodeError as exc:
            self._reject(letters, message, device_id, kind, exc)
            return
        except Exception as exc:  # a driver bug must not stop other devices
            log.exception("driver %s failed on a message from %s", kind, device_id)
            self._reject(letters, message, device_id, kind, DecodeError("driver_error", repr(exc)))
            return
        back = self.health.seen(device_id, message.received)
        if back is not None:
            readings.append(back)
        for reading in decoded:
            self._count(self.metrics.readings, reading.kind)
        readings.extend(decoded)

    def _discovery(self, message: Message, kind: str, device_id: str, letters: list[DeadLetter]) -> str | None:
        """Apply a discovery message to the in-memory inventory at once (later messages of the same batch
        may come from the new device); return the device id to persist."""
        self.metrics.messages.labels("discovery").inc()
        try:
            if not message.payload:
                return self._remove(device_id)
            try:
                data = orjson.loads(message.payload)
            except orjson.JSONDecodeError as exc:
                raise DecodeError("bad_json", str(exc)) from None
            if not isinstance(data, dict):
                raise DecodeError("bad_payload", "config must be a JSON object")
            data.setdefault("kind", kind)
            data.setdefault("id", device_id)
            if data["kind"] != kind or data["id"] != device_id:
                detail = f"payload names {data['kind']}/{data['id']}, topic {kind}/{device_id}"
                raise DecodeError("topic_mismatch", detail)
            try:
                self.inventory.put(self.inventory.validate(data), "discovery")
            except InventoryError as exc:
                raise DecodeError("bad_config", str(exc)) from None
        except DecodeError as exc:
            self._reject(letters, message, device_id, "discovery", exc)
            return None
        log.info("discovery: device %s/%s %s", kind, device_id, "updated" if message.payload else "removed")
        return device_id

    def _remove(self, device_id: str) -> str:
        """An empty discovery message removes a device that discovery added (or none); one from the site YAML or
        the API stays, and the message is dead-lettered saying where to remove it."""
        source = self.inventory.source(device_id)
        if source == "config":
            raise DecodeError("config_device", f"device {device_id!r} is defined in the site config; remove it there")
        if source not in (None, "discovery"):
            raise DecodeError("not_discovered", f"device {device_id!r} was added by {source}; remove it there")
        try:
            self.inventory.forget(device_id)
        except InventoryError as exc:
            raise DecodeError("config_device", str(exc)) from None
        log.info("discovery: device %s removed", device_id)
        return device_id
