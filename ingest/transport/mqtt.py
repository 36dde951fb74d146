"""The one MQTT transport every MQTT device kind shares.

paho-mqtt runs in a receiver process of its own (``ingest.receiver``), which hands whole batches to the
asyncio side over a pipe, so reading from the broker does not compete with decoding for the GIL and the
hot path pays no per-message asyncio cost. Sessions are
persistent (clean_session=False, QoS 1) and messages are acknowledged only after their batch has
been handled (manual ack), so nothing published while the hub was down, or in flight when it died, is
lost: the broker redelivers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import struct
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import msgspec
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from sharpeye.process import python_module
from sharpeye.tasks import cancel_and_wait

log = logging.getLogger(__name__)

TOPIC_ROOT = "sharpeye"
SUBSCRIPTIONS = (f"{TOPIC_ROOT}/+/+/+", f"{TOPIC_ROOT}/discovery/+/+/config")


def subscriptions(share_group: str | None = None) -> list[str]:
    """The hub's subscriptions; with ``share_group``, device traffic through the broker's shared subscription
    ``$share/<group>/...`` (each message to one node of the group), discovery still to every node (retained
    configs are not sent to shared subscriptions)."""
    devices, discovery = SUBSCRIPTIONS
    return [f"$share/{share_group}/{devices}", discovery] if share_group else list(SUBSCRIPTIONS)


# frames between the hub and its receiver process (ingest.receiver): 4-byte length, then msgpack
_HEADER = struct.Struct(">I")
_READ_LIMIT = 1 << 20
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


@dataclass(slots=True)
class Message:
    """One MQTT message as the receiver handed it over (not ``frozen``: one is made per message, and a frozen
    dataclass's ``__init__`` costs several times more; treat it as immutable)."""

    topic: str
    payload: bytes
    retain: bool
    mid: int
    qos: int
    received: float  # time.time()


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"MQTT URL must start with mqtt:// or mqtts://, got {url!r}")
        tls = parts.scheme in ("mqtts", "ssl")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
        )


Handler = Callable[[list[Message]], Awaitable[None]]
Commit = Callable[[], Awaitable[None]]
Stage = Callable[[list[Message]], Commit]
"""Handles a batch in two steps: the CPU work at once (decode, rules), returning the I/O to do after it
(store, in batch order). The transport prepares the next batch while the previous one's I/O runs."""
Reject = Callable[[list[tuple[Message, str]]], Awaitable[None]]
"""Keeps messages that failed even alone (a dead letter each, with the reason), so the rest can go on."""
Transient = Callable[[BaseException], bool]
"""True for a failure of the hub's own services (not of the messages): such a batch waits, unacknowledged."""

ATTEMPTS = 5  # tries of a batch (failures that are not transient) before its messages are tried one at a time


def _infrastructure(exc: BaseException) -> bool:
    return isinstance(exc, OSError | TimeoutError)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _nodelay(client: paho.Client, userdata: Any, sock: Any) -> None:
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Client(paho.Client):
    """paho's client, minus the per-message topic matching for ``message_callback_add`` callbacks, which
    the hub never adds: every message goes to ``on_message`` (until one is added)."""

    _filtered = False

    def message_callback_add(self, sub: str, callback: Any) -> None:
        self._filtered = True
        super().message_callback_add(sub, callback)

    def _handle_on_message(self, message: paho.MQTTMessage) -> None:
        if self._filtered:
            super()._handle_on_message(message)
            return
        on_message = self.on_message
        if on_message is None:
            return
        with self._in_callback_mutex:
            try:
                on_message(self, self._userdata, message)
            except Exception:
                log.exception("MQTT on_message failed")
                if not self.suppress_exceptions:
                    raise


def make_client(url: str, client_id: str, *, persistent: bool, manual_ack: bool = False) -> paho.Client:
    """A paho client for ``url`` (MQTT 3.1.1, which every broker we support speaks), TCP_NODELAY set."""
    address = BrokerAddress.parse(url)
    client = _Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=not persistent,
        protocol=paho.MQTTv311,
        manual_ack=manual_ack,
    )
    if address.username:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
    client.on_socket_open = _nodelay
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(50_000)
    client.user_data_set(address)
    return client


class MqttTransport:
    """Subscribes to every device topic and hands batches of messages to ``handler`` (or, given ``stage``,
    prepares each batch while the previous one's I/O runs).

    paho runs in a receiver process of its own (``ingest.receiver``), so reading from the broker does not
    compete for this process's GIL; it sends batches over a pipe, at most ``window`` unacknowledged, and
    acknowledges a batch to the broker only when this side has handled it. If the receiver dies it is
    started again; the broker redelivers what was not acknowledged.

    A batch is never retried for ever: a failure that ``transient`` calls the hub's own (Redis unreachable)
    keeps it waiting, unacknowledged, with backoff; any other failure is retried ``attempts`` times, then the
    batch's messages are handled one at a time and those that still fail go to ``reject`` (dead letters), so
    the others, and every later batch, go on. ``stuck_since``, ``last_progress`` and ``lag_seconds()`` say how
    the consumer is doing (health, metrics).
    """

    def __init__(
        self,
        url: str,
        client_id: str,
        handler: Handler,
        max_batch: int = 500,
        stage: Stage | None = None,
        window: int = 2,
        reject: Reject | None = None,
        transient: Transient = _infrastructure,
        attempts: int = ATTEMPTS,
        retry_delay: float = 0.1,
        share_group: str | None = None,
    ) -> None:
        self.url = url
        self.subscriptions = subscriptions(share_group)
        self.client_id = client_id
        self.handler = handler
        self.stage = stage
        self.max_batch = max_batch
        self.window = window
        self.reject = reject
        self.transient = transient
        self.attempts = attempts
        self.retry_delay = retry_delay
        self.connected = threading.Event()
        self.last_error: str | None = None
        self.received = 0
        self.retries = 0  # failed tries of batches, since start
        self.rejected = 0  # messages handed to ``reject`` (or dropped, without one) after their batch failed
        self.stuck_since: float | None = None  # time.time() of the current batch's first failure
        self.last_progress: float | None = None  # time.time() when a batch was last handled (None: not yet)
        # (generation, seq) of each batch handed over and not acknowledged -> (receipt of its oldest message, size)
        self._unacked: dict[tuple[int, int], tuple[float, int]] = {}
        self._remote_backlog = 0
        self._queued = 0
        self._batches: asyncio.Queue[tuple[int, int, list[Message]]] = asyncio.Queue()
        self._generation = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def backlog(self) -> int:
        """Messages received from the broker and not handled yet."""
        return self._remote_backlog + self._queued

    @property
    def pending(self) -> int:
        """Messages received from the broker and not acknowledged yet (the backlog and the batches in hand)."""
        return self._remote_backlog + sum(size for _, size in self._unacked.values())

    def lag_seconds(self, now: float | None = None) -> float:
        """Age of the oldest message handed to this side and not acknowledged yet (0 when none waits)."""
        if not self._unacked:
            return 0.0
        oldest = min(first for first, _ in self._unacked.values())
        return max(0.0, (now if now is not None else time.time()) - oldest)

    async def start(self) -> None:
        self._stopping = False
        await self._spawn()
        self._tasks = [
            asyncio.create_task(self._read_forever(), name="mqtt-receiver"),
            asyncio.create_task(self._drain(), name="mqtt-drain"),
        ]

    async def stop(self) -> None:
        self._stopping = True
        await cancel_and_wait(self._tasks)  # a cancellation swallowed by a client library: cancelled again
        proc = self._proc
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(Exception):
                self._write(["stop"])
                assert proc.stdin is not None
                proc.stdin.close()
            try:
                async with asyncio.timeout(5):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        self.connected.clear()

    async def _spawn(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self._proc = await asyncio.create_subprocess_exec(
            *python_module("sharpeye.ingest.transport.receiver"),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
            limit=_READ_LIMIT,
        )  # fmt: skip
        self._generation += 1
        self._unacked.clear()  # batches of an earlier receiver come again from the broker
        self._write(["settings", self.url, self.client_id, self.max_batch, self.window, self.subscriptions])

    def _write(self, frame: Any) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.returncode is not None:
            return
        body = _encoder.encode(frame)
        proc.stdin.write(_HEADER.pack(len(body)) + body)

    async def _read_forever(self) -> None:
        while True:
            proc = self._proc
            assert proc is not None and proc.stdout is not None
            try:
                await self._read(proc.stdout)
            except (asyncio.IncompleteReadError, ConnectionError, msgspec.DecodeError, ValueError) as exc:
                log.debug("MQTT receiver output ended: %r", exc)
            if self._stopping:
                return
            self.connected.clear()
            self.last_error = "MQTT receiver process exited; restarting"
            log.warning("%s", self.last_error)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            await asyncio.sleep(1.0)
            await self._spawn()

    async def _read(self, stdout: asyncio.StreamReader) -> None:
        generation = self._generation
        while True:
            (size,) = _HEADER.unpack(await stdout.readexactly(_HEADER.size))
            frame = _decoder.decode(await stdout.readexactly(size))
            kind = frame[0]
            if kind == "batch":
                _, seq, backlog, items = frame
                self._remote_backlog = backlog
                batch = [Message(topic, payload, retain, 0, qos, received) for topic, payload, retain, qos, received
                         in items]  # fmt: skip
                self.received += len(batch)
                self._queued += len(batch)
                if batch:
                    self._unacked[(generation, seq)] = (min(m.received for m in batch), len(batch))
                self._batches.put_nowait((generation, seq, batch))
            elif kind == "connected":
                self.last_error = None
                self.connected.set()
                log.info("MQTT connected to %s (session present: %s)", BrokerAddress.parse(self.url).host, frame[1])
            elif kind == "disconnected":
                self.connected.clear()
                if frame[1]:
                    self.last_error = frame[1]
                    log.warning("MQTT %s; reconnecting", self.last_error)

    def _ack(self, generation: int, seq: int) -> None:
        """Tell the receiver a batch is handled; a batch from an earlier receiver is redelivered instead."""
        self._unacked.pop((generation, seq), None)
        if generation == self._generation:
            self._write(["ack", seq])

    async def _drain(self) -> None:
        in_flight: tuple[asyncio.Task[None], int, int] | None = None
        try:
            while True:
                if in_flight is not None and self._batches.empty():
                    await in_flight[0]  # nothing to prepare meanwhile: finish and acknowledge at once
                    self._ack(in_flight[1], in_flight[2])
                    in_flight = None
                generation, seq, batch = await self._batches.get()
                self._queued -= len(batch)
                if self.stage is None:
                    await self._settle(batch, self._prepare(batch))
                    self._ack(generation, seq)
                    continue
                commit = self._try_stage(self.stage, batch)
                if in_flight is not None:
                    await in_flight[0]
                    self._ack(in_flight[1], in_flight[2])
                task = asyncio.create_task(self._settle(batch, commit))
                in_flight = (task, generation, seq)
                await asyncio.sleep(0)  # let the commit start its I/O before the next batch is prepared
        finally:
            if in_flight is not None and not in_flight[0].done():
                in_flight[0].cancel()

    def _try_stage(self, stage: Stage, batch: list[Message]) -> Commit | None:
        """The batch staged, or None when staging failed (``_settle`` tries again)."""
        try:
            return stage(batch)
        except Exception as exc:
            self._failed(exc, len(batch), "preparing")
            return None

    def _prepare(self, batch: list[Message]) -> Commit:
        if self.stage is not None:
            return self.stage(batch)
        handler = self.handler
        return lambda: handler(batch)

    def _failed(self, exc: BaseException, size: int, doing: str) -> None:
        self.retries += 1
        self.last_error = f"handler: {_describe(exc)}"
        if self.stuck_since is None:
            self.stuck_since = time.time()
        log.warning("%s %d MQTT messages failed (%s)", doing, size, _describe(exc))

    async def _settle(self, batch: list[Message], commit: Commit | None) -> None:
        """Apply a batch (its staged ``commit`` when there is one), retrying with backoff; never for ever unless
        the failure is transient (the hub's own services are down: nothing could be kept anyway)."""
        failures = 0 if commit is not None else 1
        delay = self.retry_delay
        while True:
            if commit is None:
                if failures >= self.attempts and await self._one_at_a_time(batch):
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                try:
                    commit = self._prepare(batch)
                except Exception as exc:
                    self._failed(exc, len(batch), "preparing")
                    failures += 0 if self.transient(exc) else 1
                    continue
            try:
                await commit()
                break
            except Exception as exc:
                self._failed(exc, len(batch), "handling")
                if not self.transient(exc):
                    failures += 1
                    if failures >= self.attempts:
                        commit = None  # try its messages one at a time
                        continue
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.stuck_since = None
        self.last_progress = time.time()

    async def _one_at_a_time(self, batch: list[Message]) -> bool:
        """Handle each message of a failing batch alone; hand those that fail to ``reject``. False when a
        transient failure (or one of ``reject``) means the batch must wait and be tried again."""
        failed: list[tuple[Message, str]] = []
        for message in batch:
            try:
                await self._prepare([message])()
            except Exception as exc:
                if self.transient(exc):
                    self._failed(exc, 1, "handling")
                    return False
                failed.append((message, _describe(exc)))
        if not failed:
            return True
        if self.reject is None:
            for message, why in failed:
                log.error("dropped an MQTT message on %s that could not be handled: %s", message.topic, why)
        else:
            try:
                await self.reject(failed)
            except Exception as exc:
                self._failed(exc, len(failed), "dead-lettering")
                return False
        self.rejected += len(failed)
        log.warning("%d of %d MQTT messages could not be handled, even alone; dead-lettered", len(failed), len(batch))
        return True

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self._write(["publish", topic, payload, qos, retain])
