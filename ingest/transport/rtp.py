"""RTP receive for GB/T 28181 media: UDP, and TCP with RFC 4571 framing (we listen, or we connect).

``RtpReceiver`` owns one media port. Every packet is checked (version, header length, payload type, SSRC, source
address); bad ones are dropped and counted by reason in ``stats``, never raised. Good ones go through a small
reordering buffer (by sequence number, with wrap-around) and reach ``on_packet`` in order; gaps that the buffer
gives up on are counted as lost. ``last_packet`` (monotonic) lets the owner notice a stream that stalls or never
starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any, Literal, NamedTuple

log = logging.getLogger(__name__)

RTP_HEADER = struct.Struct("!BBHII")
MAX_TCP_FRAME = 65535
RtpMode = Literal["udp", "tcp-passive", "tcp-active"]


class RtpError(ValueError):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class RtpPacket(NamedTuple):  # a tuple: the cheapest object to make per packet
    payload_type: int
    seq: int
    timestamp: int
    ssrc: int
    marker: bool
    payload: bytes


def parse_rtp(data: bytes) -> RtpPacket:
    """One RTP packet (RFC 3550 5.1); raises ``RtpError``."""
    if len(data) < 12:
        raise RtpError("short", f"{len(data)} bytes")
    first, second, seq, ts, ssrc = RTP_HEADER.unpack_from(data)
    if first >> 6 != 2:
        raise RtpError("version", f"version {first >> 6}")
    offset = 12 + 4 * (first & 0x0F)
    if first & 0x10:  # header extension
        if len(data) < offset + 4:
            raise RtpError("short", "extension header cut")
        (words,) = struct.unpack_from("!H", data, offset + 2)
        offset += 4 + 4 * words
    end = len(data)
    if first & 0x20:  # padding
        pad = data[-1]
        if pad == 0 or pad > end - offset:
            raise RtpError("padding", f"padding {pad}")
        end -= pad
    if offset > end:
        raise RtpError("short", "header longer than packet")
    return RtpPacket(second & 0x7F, seq, ts, ssrc, bool(second & 0x80), data[offset:end])


def build_rtp(payload_type: int, seq: int, timestamp: int, ssrc: int, payload: bytes, marker: bool = False) -> bytes:
    return (
        RTP_HEADER.pack(0x80, (0x80 if marker else 0) | payload_type, seq & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc)
        + payload
    )


def frame_4571(packet: bytes) -> bytes:
    """RFC 4571: a 16-bit length before each packet on a stream."""
    return struct.pack("!H", len(packet)) + packet


class Reorder:
    """Puts packets back in sequence order. Holds at most ``depth`` packets while waiting for a missing one;
    past that, or after ``wait_s``, the gap is declared lost and delivery resumes."""

    def __init__(self, depth: int = 64, wait_s: float = 0.2) -> None:
        self.depth = depth
        self.wait_s = wait_s
        self.expected: int | None = None
        self.lost = 0
        self.late = 0
        self.duplicates = 0
        self.reordered = 0
        self.held: dict[int, RtpPacket] = {}
        self._held_since = 0.0

    def push(self, packet: RtpPacket, now: float) -> list[RtpPacket]:
        if self.expected is None:
            self.expected = packet.seq
        delta = (packet.seq - self.expected) & 0xFFFF
        if delta >= 0x8000:  # behind what was delivered
            self.late += 1
            return []
        if delta == 0:
            out = [packet]
            self.expected = (packet.seq + 1) & 0xFFFF
            out += self._drain()
            return out
        if packet.seq in self.held:
            self.duplicates += 1
            return []
        if not self.held:
            self._held_since = now
        self.held[packet.seq] = packet
        self.reordered += 1
        if len(self.held) > self.depth or now - self._held_since > self.wait_s:
            return self._skip()
        return []

    def expire(self, now: float) -> list[RtpPacket]:
        """Give up on a gap that has waited ``wait_s`` (called on a timer when packets stop)."""
        if self.held and now - self._held_since > self.wait_s:
            return self._skip()
        return []

    def _skip(self) -> list[RtpPacket]:
        assert self.expected is not None
        nearest = min(self.held, key=lambda seq: (seq - self.expected) & 0xFFFF)  # type: ignore[operator]
        self.lost += (nearest - self.expected) & 0xFFFF
        self.expected = nearest
        return self._drain()

    def _drain(self) -> list[RtpPacket]:
        out: list[RtpPacket] = []
        assert self.expected is not None
        while self.expected in self.held:
            out.append(self.held.pop(self.expected))
            self.expected = (self.expected + 1) & 0xFFFF
        if self.held:
            self._held_since = time.monotonic()
        return out


class PortRange:
    """Media ports from config (``first..last``), handed out round robin; a port in use is skipped."""

    def __init__(self, first: int, last: int) -> None:
        if not 0 <= first <= last <= 65535:
            raise ValueError(f"bad media port range {first}-{last}")
        self.first = first
        self.last = last
        self._next = first
        self._used: set[int] = set()

    def take(self) -> int:
        """A port to bind (0 when the range is 0..0: any free port). Raises ``RtpError`` when all are used."""
        if self.first == 0:
            return 0
        size = self.last - self.first + 1
        for _ in range(size):
            port = self._next
            self._next = self.first + (self._next - self.first + 1) % size
            if port not in self._used:
                self._used.add(port)
                return port
        raise RtpError("no_port", f"all {size} media ports in use")

    def give(self, port: int) -> None:
        self._used.discard(port)


OnPacket = Callable[[RtpPacket], None]


class RtpReceiver:
    """Receives one RTP stream on one port (``start()``/``stop()``).

    ``expect_ssrc`` (when known) and ``expect_host`` (the peer's address from the SDP) filter what is accepted;
    ``payload_types`` lists those accepted (96 PS by default).
    """

    def __init__(
        self,
        on_packet: OnPacket,
        *,
        mode: RtpMode = "udp",
        host: str = "127.0.0.1",
        port: int = 0,
        peer: tuple[str, int] | None = None,
        expect_ssrc: int | None = None,
        expect_host: str | None = None,
        payload_types: tuple[int, ...] = (96,),
        reorder: Reorder | None = None,
    ) -> None:
        self.on_packet = on_packet
        self.mode = mode
        self.host = host
        self.port = port
        self.peer = peer
        self.expect_ssrc = expect_ssrc
        self.expect_host = expect_host
        self.payload_types = payload_types
        self.reorder = reorder or Reorder()
        self._stats: Counter[str] = Counter()
        self.packets = 0
        self.bytes = 0
        self.last_packet: float | None = None
        self.started_at = 0.0
        self.source: tuple[str, int] | None = None
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self._timer: asyncio.TimerHandle | None = None
        self.connected = asyncio.Event()

    @property
    def stats(self) -> Counter[str]:
        """Drops by reason (``drop.<reason>``), ``packets`` and ``bytes`` received."""
        self._stats["packets"] = self.packets
        self._stats["bytes"] = self.bytes
        return self._stats

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.started_at = time.monotonic()
        if self.mode == "udp":
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2 * 1024 * 1024)
            try:
                sock.bind((self.host, self.port))
            except OSError:
                sock.close()
                raise
            sock.setblocking(False)
            # A frame arrives as a burst of datagrams: read them all per wake-up instead of one per loop turn
            # (asyncio's datagram transport), which halves the CPU per channel.
            self._sock = sock
            self._loop = loop
            loop.add_reader(sock.fileno(), self._drain)
            self.port = sock.getsockname()[1]
        elif self.mode == "tcp-passive":
            self._server = await asyncio.start_server(self._serve, self.host, self.port)
            self.port = self._server.sockets[0].getsockname()[1]
        else:
            if self.peer is None:
                raise RtpError("no_peer", "active TCP needs the device's address")
            self._spawn(self._connect(self.peer))
        self._tick()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._sock is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await self._server.wait_closed()
            self._server = None

    def _tick(self) -> None:
        for packet in self.reorder.expire(time.monotonic()):
            self._deliver(packet)
        self._timer = asyncio.get_running_loop().call_later(0.1, self._tick)

    def _drain(self) -> None:
        sock = self._sock
        if sock is None:
            return
        for _ in range(256):
            try:
                data, addr = sock.recvfrom(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.stats["udp_errors"] += 1
                return
            self.receive(data, (str(addr[0]), int(addr[1])))

    # --- TCP ------------------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        address = writer.get_extra_info("peername")[:2]
        if self.expect_host is not None and address[0] != self.expect_host:
            self.stats["drop.wrong_source"] += 1
            writer.close()
            return
        if self.connected.is_set():
            self.stats["drop.second_connection"] += 1
            writer.close()
            return
        await self._read_stream(reader, writer, address)

    async def _connect(self, peer: tuple[str, int]) -> None:
        deadline = time.monotonic() + 10
        while True:
            try:
                async with asyncio.timeout(2):
                    reader, writer = await asyncio.open_connection(*peer)
                break
            except (OSError, TimeoutError):
                if time.monotonic() > deadline:
                    self.stats["tcp.connect_failed"] += 1
                    log.info("RTP: cannot connect to %s:%d", *peer)
                    return
                await asyncio.sleep(0.1)
        self.port = writer.get_extra_info("sockname")[1]
        await self._read_stream(reader, writer, peer)

    async def _read_stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: tuple[str, int]
    ) -> None:
        self._writers.append(writer)
        self.connected.set()
        try:
            while True:
                head = await reader.readexactly(2)
                (length,) = struct.unpack("!H", head)
                if length == 0:
                    continue
                self.receive(await reader.readexactly(length), address)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.stats["tcp.closed"] += 1
        finally:
            writer.close()

    # --- every packet -----------------------------------------------------------------------------
    def receive(self, data: bytes, address: tuple[str, int]) -> None:
        """Check one packet and pass it on in order. Never raises."""
        self.packets += 1
        if self.expect_host is not None and address[0] != self.expect_host:
            self.stats["drop.wrong_source"] += 1
            return
        try:
            packet = parse_rtp(data)
        except RtpError as exc:
            self.stats[f"drop.{exc.reason}"] += 1
            return
        if packet.payload_type not in self.payload_types:
            self.stats["drop.payload_type"] += 1
            return
        if self.expect_ssrc:
            if packet.ssrc != self.expect_ssrc:
                self.stats["drop.wrong_ssrc"] += 1
                return
        else:
            self.expect_ssrc = packet.ssrc  # latch the first one: a second sender on this port is dropped
        if self.source is None:
            self.source = address
        elif self.mode == "udp" and address != self.source:  # one sender per session: the first one
            self.stats["drop.wrong_source"] += 1
            return
        self.last_packet = time.monotonic()
        self.bytes += len(packet.payload)
        reorder = self.reorder
        if packet.seq == reorder.expected and not reorder.held:  # in order, nothing waiting: the usual case
            reorder.expected = (packet.seq + 1) & 0xFFFF
            self._deliver(packet)
            return
        for ordered in reorder.push(packet, self.last_packet):
            self._deliver(ordered)

    def _deliver(self, packet: RtpPacket) -> None:
        try:
            self.on_packet(packet)
        except Exception:
            self.stats["handler_errors"] += 1
            log.exception("RTP consumer failed")

    @property
    def lost(self) -> int:
        return self.reorder.lost


class RtpSender:
    """Sends one RTP stream: over UDP to ``peer``, or over TCP with RFC 4571 framing, connecting to ``peer``
    (``tcp-active``) or accepting the receiver's connection on ``port`` (``tcp-passive``).

    ``send`` never blocks the loop: over TCP a receiver that does not keep up loses whole packets (counted) once
    ``max_buffer`` bytes are waiting, instead of growing a queue.
    """

    def __init__(
        self,
        *,
        mode: RtpMode,
        ssrc: int,
        peer: tuple[str, int] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        payload_type: int = 96,
        max_buffer: int = 2 * 1024 * 1024,
    ) -> None:
        self.mode = mode
        self.ssrc = ssrc
        self.peer = peer
        self.host = host
        self.port = port
        self.payload_type = payload_type
        self.max_buffer = max_buffer
        self.seq = 0
        self.stats: Counter[str] = Counter()
        self.connected = asyncio.Event()
        self._udp: asyncio.DatagramTransport | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._server: asyncio.Server | None = None
        self.closed = asyncio.Event()

    async def start(self, connect_timeout: float = 5.0) -> None:
        loop = asyncio.get_running_loop()
        if self.mode == "udp":
            if self.peer is None:
                raise RtpError("no_peer", "UDP sending needs the receiver's address")
            self._udp, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=(self.host, self.port)
            )
            self.port = self._udp.get_extra_info("sockname")[1]
            self.connected.set()
        elif self.mode == "tcp-active":
            if self.peer is None:
                raise RtpError("no_peer", "active TCP needs the receiver's address")
            try:
                async with asyncio.timeout(connect_timeout):
                    reader, writer = await asyncio.open_connection(*self.peer)
            except (OSError, TimeoutError) as exc:
                raise RtpError("connect", f"{self.peer[0]}:{self.peer[1]}: {exc}") from exc
            self._attach(reader, writer)
        else:
            self._server = await asyncio.start_server(self._accept, self.host, self.port)
            self.port = self._server.sockets[0].getsockname()[1]

    def _attach(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._writer = writer
        self.connected.set()
        task = asyncio.ensure_future(self._watch_close(reader))
        task.add_done_callback(lambda _: self.closed.set())

    async def _watch_close(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(4096):
                pass

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._writer is not None:
            self.stats["drop.second_connection"] += 1
            writer.close()
            return
        self._attach(reader, writer)

    def send(self, payloads: list[bytes], timestamp: int) -> None:
        """One frame's payloads (the marker goes on the last one)."""
        last = len(payloads) - 1
        for i, payload in enumerate(payloads):
            packet = build_rtp(self.payload_type, self.seq, timestamp, self.ssrc, payload, marker=i == last)
            self.seq = (self.seq + 1) & 0xFFFF
            self.send_packet(packet)

    def send_packet(self, packet: bytes) -> None:
        if self._udp is not None:
            assert self.peer is not None
            self._udp.sendto(packet, self.peer)
        elif self._writer is not None and not self._writer.is_closing():
            transport = self._writer.transport
            if transport.get_write_buffer_size() > self.max_buffer:
                self.stats["drop.slow_receiver"] += 1
                return
            self._writer.write(frame_4571(packet))
        else:
            self.stats["drop.not_connected"] += 1
            return
        self.stats["packets"] += 1

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1):
                    await self._server.wait_closed()
            self._server = None
