"""The MQTT receiver process: paho's network loop in a process of its own, so that reading packets from
the broker does not share the hub's GIL with decoding and rules.

Run by ``MqttTransport`` as ``python -m ingest.receiver``; it speaks length-prefixed msgpack frames:
stdin carries the settings first, then acknowledgements and publishes; stdout carries connection events
and batches of messages. A batch's messages are acknowledged to the broker (manual ack, QoS 1) only when
the hub says it has been handled, so nothing is lost if the hub dies: when stdin closes, the receiver
exits without acknowledging and the broker redelivers to the next session.

Frames from the hub: ``["settings", url, client_id, max_batch, window, subscriptions]``, ``["ack", seq]``,
``["publish", topic, payload, qos, retain]``. Frames to the hub: ``["connected", session_present]``,
``["disconnected", error or None]``, ``["batch", seq, backlog, [[topic, payload, retain, qos, received], ...]]``.
"""

from __future__ import annotations

import logging
import os
import signal
import struct
import sys
import threading
import time
from typing import IO, Any

import msgspec
import paho.mqtt.client as paho
from sharpeye.ingest.transport.mqtt import BrokerAddress, make_client

from sharpeye import heap

log = logging.getLogger(__name__)

HEADER = struct.Struct(">I")
MAX_FRAME = 64 << 20

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder()


def write_frame(out: IO[bytes], frame: Any) -> None:
    body = _encoder.encode(frame)
    out.write(HEADER.pack(len(body)) + body)
    out.flush()


def read_frame(source: IO[bytes]) -> Any:
    """The next frame, or None at end of input."""
    head = source.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    (size,) = HEADER.unpack(head)
    if size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes")
    body = source.read(size)
    if len(body) < size:
        return None
    return _decoder.decode(body)


class Receiver:
    def __init__(self, url: str, client_id: str, max_batch: int, window: int, subscriptions: list[str]) -> None:
        self.url = url
        self.max_batch = max_batch
        self.window = window
        self.subscriptions = subscriptions
        self._buffer: list[tuple[str, bytes, bool, int, float]] = []
        self._mids: list[tuple[int, int]] = []
        self._outstanding: dict[int, list[tuple[int, int]]] = {}
        self._seq = 0
        self._ready = threading.Condition()
        self._out_lock = threading.Lock()
        self._out = sys.stdout.buffer
        self.client = make_client(url, client_id, persistent=True, manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    def _send(self, frame: Any) -> None:
        with self._out_lock:
            try:
                write_frame(self._out, frame)
            except (BrokenPipeError, ValueError, OSError):
                os._exit(0)  # the hub is gone: leave everything unacknowledged

    # --- paho thread ---------------------------------------------------------------------------
    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self._send(["disconnected", f"connect refused: {reason}"])
            return
        client.subscribe([(topic, 1) for topic in self.subscriptions])
        self._send(["connected", bool(flags.session_present)])

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self._send(["disconnected", f"disconnected: {reason}" if reason.is_failure else None])

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        item = (msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos, time.time())
        with self._ready:
            self._buffer.append(item)
            self._mids.append((msg.mid, msg.qos))
            if len(self._buffer) == 1:
                self._ready.notify()

    # --- sender thread: batches to the hub, at most ``window`` unacknowledged ------------------
    def _sender(self) -> None:
        while True:
            with self._ready:
                while not self._buffer or len(self._outstanding) >= self.window:
                    self._ready.wait()
                batch = self._buffer[: self.max_batch]
                del self._buffer[: self.max_batch]
                mids = self._mids[: self.max_batch]
                del self._mids[: self.max_batch]
                self._seq += 1
                seq = self._seq
                self._outstanding[seq] = mids
                backlog = len(self._buffer)
            self._send(["batch", seq, backlog, batch])

    # --- main thread: frames from the hub ------------------------------------------------------
    def _ack(self, seq: int) -> None:
        with self._ready:
            mids = self._outstanding.pop(seq, [])
            self._ready.notify()
        ack = self.client.ack
        for mid, qos in mids:
            if qos > 0:
                ack(mid, qos)

    def run(self, source: IO[bytes]) -> None:
        address = BrokerAddress.parse(self.url)
        self.client.connect_async(address.host, address.port, keepalive=30)
        self.client.loop_start()
        threading.Thread(target=self._sender, name="mqtt-sender", daemon=True).start()
        while (frame := read_frame(source)) is not None:
            if frame[0] == "ack":
                self._ack(frame[1])
            elif frame[0] == "publish":
                self.client.publish(frame[1], frame[2], qos=frame[3], retain=frame[4])
            elif frame[0] == "stop":
                break
        self.client.disconnect()
        self.client.loop_stop()


def main() -> None:
    # The hub stops its receiver ("stop", or the pipe's end); a Ctrl-C at the terminal is the hub's to handle.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=os.environ.get("SHARPEYE_LOG_LEVEL", "WARNING"), stream=sys.stderr)
    source = sys.stdin.buffer
    settings = read_frame(source)
    if settings is None or settings[0] != "settings":
        raise SystemExit("receiver: expected settings first")
    _, url, client_id, max_batch, window, subscriptions = settings
    receiver = Receiver(url, client_id, max_batch, window, list(subscriptions))
    heap.settle()
    receiver.run(source)
    os._exit(0)  # daemon threads may sit in blocking calls


if __name__ == "__main__":
    main()
