"""SIP transport: UDP and TCP on one port, client and server transactions, UDP retransmission.

The endpoint knows nothing of GB/T 28181. Incoming requests go to one handler that returns the final
response at once (the endpoint sends it and replays it to retransmitted requests); outgoing requests
are client transactions that retransmit over UDP (Timer E: T1 doubling to T2) until a final response
or Timer F (64*T1), matched by the top Via branch and the CSeq method (RFC 3261 section 17.1.2).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sharpeye.ingest.transport.sip.message import SipMessage, SipParseError, StreamFramer, new_branch, parse

log = logging.getLogger(__name__)

Protocol = Literal["udp", "tcp"]
Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Peer:
    """Where a message came from, or goes to."""

    transport: Protocol
    host: str
    port: int

    @property
    def address(self) -> Address:
        return (self.host, self.port)


RequestHandler = Callable[[SipMessage, Peer], SipMessage | None]
GarbageHandler = Callable[[str, str, bytes, Peer], None]
"""Told of every datagram or stream segment that is not SIP: ``(reason, detail, data, peer)``."""


class TransactionTimeout(TimeoutError):
    """No final response before Timer F."""


class SipEndpoint:
    """One SIP listening point (UDP and TCP on the same port) with its transactions."""

    def __init__(
        self,
        handler: RequestHandler,
        *,
        host: str = "127.0.0.1",
        port: int = 5060,
        tcp: bool = True,
        t1: float = 0.5,
        t2: float = 4.0,
        user_agent: str = "SharpEye",
        on_garbage: GarbageHandler | None = None,
        advertise: str = "",
    ) -> None:
        """``advertise``: the address put in Via and Contact when it differs from the bound ``host`` (NAT, 0.0.0.0)."""
        self._handler = handler
        self._on_garbage = on_garbage
        self.host = host
        self.advertise = advertise
        self.port = port
        self._tcp_enabled = tcp
        self.t1 = t1
        self.t2 = t2
        self.user_agent = user_agent
        self.stats: Counter[str] = Counter()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp_server: asyncio.Server | None = None
        self._tcp_writers: dict[Address, asyncio.StreamWriter] = {}
        self._tcp_tasks: set[asyncio.Task[None]] = set()
        self._pending: dict[tuple[str, str], asyncio.Future[SipMessage]] = {}
        self._answered: OrderedDict[tuple[str, str, str], tuple[float, bytes]] = OrderedDict()
        self._answer_ttl = 64 * t1
        self._proceeding: set[tuple[str, str]] = set()
        self._unacked: dict[tuple[str, int], asyncio.Event] = {}
        self._acks: OrderedDict[tuple[str, int], tuple[float, bytes]] = OrderedDict()

    # --- life cycle -------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for attempt in range(20):
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Datagram(self), local_addr=(self.host, self.port)
            )
            self._udp = transport
            bound = transport.get_extra_info("sockname")[1]
            if not self._tcp_enabled:
                self.port = bound
                break
            try:
                self._tcp_server = await asyncio.start_server(self._serve_tcp, self.host, bound)
            except OSError:
                transport.close()
                if self.port != 0 or attempt == 19:
                    raise
                continue
            self.port = bound
            break
        log.info("SIP endpoint on %s:%d (udp%s)", self.host, self.port, ", tcp" if self._tcp_enabled else "")

    async def stop(self) -> None:
        for future in self._pending.values():
            if not future.done():
                future.cancel()
        self._pending.clear()
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp_server is not None:
            self._tcp_server.close()
        for writer in list(self._tcp_writers.values()):
            writer.close()
        self._tcp_writers.clear()
        for task in list(self._tcp_tasks):
            task.cancel()
        if self._tcp_tasks:
            await asyncio.gather(*self._tcp_tasks, return_exceptions=True)
        if self._tcp_server is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self._tcp_server.wait_closed()
            self._tcp_server = None

    @property
    def running(self) -> bool:
        """Listening (UDP bound, and TCP when enabled)."""
        return self._udp is not None and (not self._tcp_enabled or self._tcp_server is not None)

    # --- sending ----------------------------------------------------------------------------
    def via(self, transport: Protocol) -> str:
        return f"SIP/2.0/{transport.upper()} {self.advertise or self.host}:{self.port};rport;branch={new_branch()}"

    def contact(self, user: str, transport: Protocol = "udp") -> str:
        suffix = ";transport=tcp" if transport == "tcp" else ""
        return f"<sip:{user}@{self.advertise or self.host}:{self.port}{suffix}>"

    async def _send(self, data: bytes, peer: Peer) -> None:
        if peer.transport == "udp":
            if self._udp is None:
                raise ConnectionError("endpoint is stopped")
            self._udp.sendto(data, peer.address)
        else:
            writer = self._tcp_writers.get(peer.address)
            if writer is None or writer.is_closing():
                async with asyncio.timeout(5):
                    reader, new_writer = await asyncio.open_connection(peer.host, peer.port)
                self._tcp_writers[peer.address] = new_writer
                self._spawn_reader(reader, new_writer, peer.address)
                writer = new_writer
            writer.write(data)
            await writer.drain()
        self.stats["sent"] += 1

    def send_response(self, response: SipMessage, request: SipMessage, peer: Peer) -> asyncio.Future[None]:
        """Send (and keep for retransmitted requests) a response; the returned future is done once it is sent."""
        if not response.get("User-Agent"):
            response.add("User-Agent", self.user_agent)
        data = response.to_bytes()
        key = (request.branch, request.cseq[1], request.from_tag)
        if request.branch and response.status >= 200:
            self._answered[key] = (time.monotonic() + self._answer_ttl, data)
            self._expire_answers()
        task = asyncio.ensure_future(self._send(data, peer))
        task.add_done_callback(_log_failure)
        if request.method == "INVITE" and 200 <= response.status < 300 and peer.transport == "udp":
            # RFC 3261 13.3.1.4: the UAS retransmits its 2xx until the ACK comes (T1 doubling to T2, 64*T1)
            dialog_key = (request.call_id, request.cseq[0])
            self._unacked[dialog_key] = asyncio.Event()
            retransmit = asyncio.ensure_future(self._retransmit_2xx(dialog_key, data, peer))
            self._tcp_tasks.add(retransmit)
            retransmit.add_done_callback(self._tcp_tasks.discard)
        return task

    async def _retransmit_2xx(self, key: tuple[str, int], data: bytes, peer: Peer) -> None:
        acked = self._unacked[key]
        interval, deadline = self.t1, time.monotonic() + 64 * self.t1
        try:
            while time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(interval, deadline - time.monotonic())):
                        await acked.wait()
                if acked.is_set():
                    return
                if time.monotonic() >= deadline:
                    break
                self.stats["2xx_retransmissions"] += 1
                await self._send(data, peer)
                interval = min(interval * 2, self.t2)
            self.stats["2xx_unacknowledged"] += 1
        except (ConnectionError, OSError):
            pass
        finally:
            self._unacked.pop(key, None)

    async def request(
        self, msg: SipMessage, peer: Peer, *, limit_s: float | None = None, keep_via: bool = False
    ) -> SipMessage:
        """Send a request and return its final response (retransmitting over UDP).

        A top Via with a fresh branch is added (``keep_via``: the message has its own, as a CANCEL must).
        Raises ``TransactionTimeout`` after Timer F (64*T1) or ``limit_s`` seconds. An INVITE stops
        retransmitting at its first provisional response (RFC 3261 17.1.1.2) and a non-2xx final answer to
        it is acknowledged here; a 2xx is the dialog's to acknowledge (``ack``).
        """
        if not (keep_via and msg.get("Via")):
            msg.headers.insert(0, ("Via", self.via(peer.transport)))
        if not msg.get("Max-Forwards"):
            msg.add("Max-Forwards", "70")
        if not msg.get("User-Agent"):
            msg.add("User-Agent", self.user_agent)
        key = (msg.branch, msg.cseq[1])
        future: asyncio.Future[SipMessage] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        data = msg.to_bytes()
        deadline = time.monotonic() + (limit_s if limit_s is not None else 64 * self.t1)
        interval = self.t1
        try:
            await self._send(data, peer)
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.stats["timeouts"] += 1
                    raise TransactionTimeout(f"{msg.method} to {peer.host}:{peer.port}: no final response")
                wait = min(interval, remaining) if peer.transport == "udp" else remaining
                # asyncio.wait, not wait_for: it never swallows a cancellation of this task
                done, _ = await asyncio.wait({future}, timeout=wait)
                if done:
                    return future.result()
                if peer.transport == "udp" and time.monotonic() < deadline and key not in self._proceeding:
                    self.stats["retransmissions"] += 1
                    await self._send(data, peer)
                    interval = min(interval * 2, self.t2)
        finally:
            self._pending.pop(key, None)
            self._proceeding.discard(key)

    async def invite(self, msg: SipMessage, peer: Peer, *, limit_s: float = 10.0) -> SipMessage:
        """An INVITE client transaction: the final response (non-2xx already acknowledged)."""
        response = await self.request(msg, peer, limit_s=limit_s)
        if response.status >= 300:
            ack = SipMessage(method="ACK", uri=msg.uri)
            ack.add("Via", msg.get_all("Via")[0])
            for name in ("From", "Call-ID"):
                ack.add(name, msg.get(name))
            ack.add("To", response.get("To"))
            ack.add("CSeq", f"{msg.cseq[0]} ACK")
            ack.add("Max-Forwards", "70")
            await self._send(ack.to_bytes(), peer)
        return response

    async def ack(self, ack: SipMessage, peer: Peer) -> None:
        """Send the ACK of a 2xx (its own transaction); kept to answer retransmitted 2xx responses."""
        ack.headers.insert(0, ("Via", self.via(peer.transport)))
        if not ack.get("Max-Forwards"):
            ack.add("Max-Forwards", "70")
        data = ack.to_bytes()
        self._acks[(ack.call_id, ack.cseq[0])] = (time.monotonic() + self._answer_ttl, data)
        while len(self._acks) > 10_000:
            self._acks.popitem(last=False)
        await self._send(data, peer)

    # --- receiving --------------------------------------------------------------------------
    def _expire_answers(self) -> None:
        now = time.monotonic()
        while self._answered:
            key, (expiry, _) = next(iter(self._answered.items()))
            if expiry > now and len(self._answered) < 100_000:
                break
            del self._answered[key]

    def receive(self, data: bytes, peer: Peer, *, stream: bool = False) -> None:
        """Handle one datagram or one framed stream segment. Never raises."""
        self.stats["received"] += 1
        try:
            msg = parse(data, stream=stream)
        except SipParseError as exc:
            self._garbage(exc, data, peer)
            log.debug("dropped %d bytes from %s:%d: %s", len(data), peer.host, peer.port, exc)
            return
        if not msg.is_request:
            future = self._pending.get((msg.branch, msg.cseq[1]))
            if future is None or future.done():
                ack = self._acks.get((msg.call_id, msg.cseq[0])) if msg.cseq[1] == "INVITE" else None
                if ack is not None and 200 <= msg.status < 300:  # a retransmitted 2xx: our ACK was lost
                    self.stats["ack_retransmissions"] += 1
                    task = asyncio.ensure_future(self._send(ack[1], peer))
                    task.add_done_callback(_log_failure)
                    return
                self.stats["stray_responses"] += 1
                return
            if msg.status >= 200:
                future.set_result(msg)
            else:
                self._proceeding.add((msg.branch, msg.cseq[1]))
            return
        if msg.method == "ACK":  # no response, ever; the handler learns the dialog is confirmed
            acked = self._unacked.get((msg.call_id, msg.cseq[0]))
            if acked is not None:
                acked.set()
            try:
                self._handler(msg, peer)
            except Exception:
                self.stats["handler_errors"] += 1
                log.exception("SIP handler failed on ACK from %s:%d", peer.host, peer.port)
            return
        key = (msg.branch, msg.cseq[1], msg.from_tag)
        cached = self._answered.get(key)
        if cached is not None:
            self.stats["request_retransmissions"] += 1
            task = asyncio.ensure_future(self._send(cached[1], peer))
            task.add_done_callback(_log_failure)
            return
        try:
            response = self._handler(msg, peer)
        except Exception:
            self.stats["handler_errors"] += 1
            log.exception("SIP handler failed on %s from %s:%d", msg.method, peer.host, peer.port)
            response = msg.response(500)
        if response is not None:
            if not response.get("User-Agent"):
                response.add("User-Agent", self.user_agent)
            self.send_response(response, msg, peer)

    def _garbage(self, exc: SipParseError, data: bytes, peer: Peer) -> None:
        reason = f"parse_error.{exc.reason}"
        self.stats[reason] += 1
        if self._on_garbage is not None:
            try:
                self._on_garbage(reason, str(exc), data, peer)
            except Exception:
                log.exception("SIP garbage hook failed")

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        address = writer.get_extra_info("peername")[:2]
        self._tcp_writers[address] = writer
        await self._read_tcp(reader, writer, address)

    def _spawn_reader(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: Address) -> None:
        task = asyncio.ensure_future(self._read_tcp(reader, writer, address))
        self._tcp_tasks.add(task)
        task.add_done_callback(self._tcp_tasks.discard)

    async def _read_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, address: Address) -> None:
        framer = StreamFramer()
        peer = Peer("tcp", address[0], address[1])
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                for segment in framer.feed(chunk):
                    self.receive(segment, peer, stream=True)
        except SipParseError as exc:
            self._garbage(exc, b"", peer)
            log.info("closing TCP connection from %s:%d: %s", address[0], address[1], exc)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if self._tcp_writers.get(address) is writer:
                del self._tcp_writers[address]
            writer.close()


class _Datagram(asyncio.DatagramProtocol):
    def __init__(self, endpoint: SipEndpoint) -> None:
        self._endpoint = endpoint

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._endpoint.receive(data, Peer("udp", str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        self._endpoint.stats["udp_errors"] += 1


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("SIP send failed: %s", task.exception())
