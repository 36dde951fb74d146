"""The one MQTT transport every MQTT device kind shares.

paho-mqtt runs its network loop in its own thread; ``on_message`` only appends to a buffer, and the
asyncio side takes whole batches, so the hot path pays no per-message asyncio cost. Sessions are
persistent (clean_session=False, QoS 1) and messages are acknowledged only after their batch has
been handled (manual ack), so nothing published while the hub was down, or in flight when it died, is
lost: the broker redelivers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

log = logging.getLogger(__name__)

TOPIC_ROOT = "sharpeye"
SUBSCRIPTIONS = (f"{TOPIC_ROOT}/+/+/+", f"{TOPIC_ROOT}/discovery/+/+/config")


@dataclass(frozen=True, slots=True)
class Message:
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
    """Subscribes to every device topic and hands batches of messages to ``handler``."""

    def __init__(
        self, url: str, client_id: str, handler: Handler, max_batch: int = 500, stage: Stage | None = None
    ) -> None:
        self.url = url
        self.client_id = client_id
        self.handler = handler
        self.stage = stage
        self.max_batch = max_batch
        self.connected = threading.Event()
        self.last_error: str | None = None
        self.received = 0
        self._buffer: list[Message] = []
        self._lock = threading.Lock()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._client = make_client(url, client_id, persistent=True, manual_ack=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message

    # --- paho thread ---------------------------------------------------------------------------
    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self.last_error = f"connect refused: {reason}"
            log.warning("MQTT %s", self.last_error)
            return
        client.subscribe([(topic, 1) for topic in SUBSCRIPTIONS])
        self.last_error = None
        self.connected.set()
        log.info(
            "MQTT connected to %s (session present: %s)", BrokerAddress.parse(self.url).host, flags.session_present
        )

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connected.clear()
        if reason.is_failure:
            self.last_error = f"disconnected: {reason}"
            log.warning("MQTT %s; reconnecting", self.last_error)

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        message = Message(msg.topic, bytes(msg.payload), bool(msg.retain), msg.mid, msg.qos, time.time())
        with self._lock:
            self._buffer.append(message)
            first = len(self._buffer) == 1
        if first and self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    # --- asyncio side --------------------------------------------------------------------------
    @property
    def backlog(self) -> int:
        return len(self._buffer)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        address = BrokerAddress.parse(self.url)
        self._client.connect_async(address.host, address.port, keepalive=30)
        self._client.loop_start()
        self._task = asyncio.create_task(self._drain(), name="mqtt-drain")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._client.disconnect()
        self._client.loop_stop()

    def _take(self) -> list[Message]:
        with self._lock:
            batch = self._buffer[: self.max_batch]
            del self._buffer[: self.max_batch]
        self.received += len(batch)
        return batch

    def _ack(self, batch: list[Message]) -> None:
        ack = self._client.ack
        for message in batch:
            if message.qos > 0:
                ack(message.mid, message.qos)

    async def _drain(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self.stage is not None:
                await self._drain_staged(self.stage)
                continue
            while batch := self._take():
                await self._handle_until_done(batch)
                self._ack(batch)

    async def _drain_staged(self, stage: Stage) -> None:
        """Prepare batch n+1 while batch n's I/O runs; commits run one at a time in batch order, and a batch
        is acknowledged only after its commit succeeded."""
        in_flight: tuple[asyncio.Task[None], list[Message]] | None = None
        try:
            while True:
                batch = self._take()
                if not batch:
                    if in_flight is None:
                        return
                    await in_flight[0]
                    self._ack(in_flight[1])
                    in_flight = None
                    continue  # more may have arrived meanwhile
                commit = await self._stage_until_done(stage, batch)
                if in_flight is not None:
                    await in_flight[0]
                    self._ack(in_flight[1])
                task = asyncio.create_task(self._commit_until_done(commit, len(batch)))
                in_flight = (task, batch)
                await asyncio.sleep(0)  # let the commit start its I/O before the next batch is prepared
        finally:
            if in_flight is not None and not in_flight[0].done():
                in_flight[0].cancel()

    async def _stage_until_done(self, stage: Stage, batch: list[Message]) -> Commit:
        delay = 0.1
        while True:
            try:
                return stage(batch)
            except Exception as exc:
                self.last_error = f"handler: {exc}"
                log.warning("preparing %d MQTT messages failed (%s); retrying in %.1fs", len(batch), exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _commit_until_done(self, commit: Commit, size: int) -> None:
        delay = 0.1
        while True:
            try:
                await commit()
                return
            except Exception as exc:
                self.last_error = f"handler: {exc}"
                log.warning("handling %d MQTT messages failed (%s); retrying in %.1fs", size, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _handle_until_done(self, batch: list[Message]) -> None:
        """Retry a failed batch (Redis down, say) with backoff; it stays unacknowledged meanwhile, so
        the broker holds back further QoS 1 deliveries once its in-flight window is full."""
        delay = 0.1
        while True:
            try:
                await self.handler(batch)
                return
            except Exception as exc:
                self.last_error = f"handler: {exc}"
                log.warning("handling %d MQTT messages failed (%s); retrying in %.1fs", len(batch), exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self._client.publish(topic, payload, qos=qos, retain=retain)
