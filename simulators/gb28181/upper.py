"""Upper-platform simulator: challenges the lower platform's REGISTER, queries its catalog (merging the
pages by SumNum), answers keepalives, and records the alarms forwarded to it (answering each). It subscribes
(``open_subscription``: refresh and end in the dialog) and keeps every NOTIFY it gets (``notifies``); with
``answer_notifies`` false it leaves them unanswered, as an upper platform that went away."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from dataclasses import dataclass, field

from sharpeye.ingest.gb28181.manscdp import CONTENT_TYPE, Manscdp, ManscdpError, Node, build, info_ids, parse_body
from sharpeye.ingest.transport.ps import AccessUnit, PsDemuxer
from sharpeye.ingest.transport.rtp import RtpMode, RtpPacket, RtpReceiver
from sharpeye.ingest.transport.sip.background import Background
from sharpeye.ingest.transport.sip.dialog import Dialog
from sharpeye.ingest.transport.sip.digest import DigestServer
from sharpeye.ingest.transport.sip.endpoint import Peer, SipEndpoint
from sharpeye.ingest.transport.sip.message import SipMessage, new_call_id, new_tag
from sharpeye.ingest.transport.sip.sdp import MediaDescription, parse_sdp

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Lower:
    """What the upper platform knows of one lower platform."""

    id: str
    peer: Peer
    expires: int
    registrations: int = 0
    keepalives: int = 0
    faulty: list[str] = field(default_factory=list)  # the channels its last keepalive listed as faulty (<Info>)
    alarms: list[Manscdp] = field(default_factory=list)


@dataclass(slots=True)
class Notified:
    """One NOTIFY received: its event, Subscription-State, Call-ID and body (None when it had none)."""

    event: str
    state: str
    call_id: str
    body: Manscdp | None


@dataclass(slots=True)
class UpperSubscription:
    """A SUBSCRIBE dialog this upper platform opened; ``status`` is the answer to the last SUBSCRIBE."""

    event: str
    status: int
    reason: str
    dialog: Dialog | None
    call_id: str
    target: str
    expires: int = 0


class Watch:
    """What the upper platform receives of one INVITEd channel: RTP in order, demuxed into access units."""

    def __init__(self, mode: RtpMode, host: str) -> None:
        self.receiver = RtpReceiver(self._on_packet, mode=mode, host=host)
        self.demuxer = PsDemuxer()
        self.units: list[AccessUnit] = []
        self.status = 0
        self.dialog: Dialog | None = None
        self.answer: MediaDescription | None = None
        self._ts: int | None = None

    def _on_packet(self, packet: RtpPacket) -> None:
        if self._ts is not None and packet.timestamp != self._ts:
            self.units += self.demuxer.flush()
        self._ts = packet.timestamp
        self.units += self.demuxer.feed(packet.payload)
        if packet.marker:
            self.units += self.demuxer.flush()


class UpperPlatformSimulator:
    def __init__(
        self,
        sip_id: str,
        password: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        grant_expires: int | None = None,
        t1: float = 0.5,
    ) -> None:
        self.sip_id = sip_id
        self.domain = sip_id[:10]
        self.password = password
        self.grant_expires = grant_expires
        self.digest = DigestServer(self.domain)
        self.endpoint = SipEndpoint(self._on_request, host=host, port=port, t1=t1)
        self.lowers: dict[str, Lower] = {}
        self.stats: Counter[str] = Counter()
        self.answer_keepalives = True
        self.catalog_notifies: list[Manscdp] = []
        self.notifies: list[Notified] = []  # every NOTIFY, in order
        self.answer_notifies = True
        self.byes: list[str] = []  # Call-IDs of the streams the lower platform ended with a BYE
        self.media_status: list[Manscdp] = []  # MediaStatus notifications (NotifyType 121: a playback ended)
        self.changed = asyncio.Event()
        self._sn = itertools.count(100)
        self._cseq = itertools.count(1)
        self._catalogs: dict[tuple[str, int], list[Manscdp]] = {}
        self._background = Background(self.stats)
        self._waiters: dict[tuple[str, str, int], asyncio.Future[list[Manscdp]]] = {}

    @property
    def port(self) -> int:
        return self.endpoint.port

    async def start(self) -> None:
        await self.endpoint.start()

    def forget(self, lower_id: str) -> None:
        """Forget a lower platform, as a restarted upper platform would."""
        self.lowers.pop(lower_id, None)

    async def stop(self) -> None:
        await self._background.stop()
        await self.endpoint.stop()

    def _changed(self) -> None:
        self.changed.set()

    async def wait_for(self, predicate: object, limit_s: float = 10.0) -> None:
        """Wait until ``predicate()`` is true (re-checked at each change), or raise TimeoutError."""
        assert callable(predicate)
        async with asyncio.timeout(limit_s):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    # --- queries ----------------------------------------------------------------------------
    async def query(
        self,
        lower_id: str,
        cmd_type: str = "Catalog",
        limit_s: float = 10.0,
        *,
        target: str | None = None,
        root: str = "Query",
        fields: list[Node] | None = None,
    ) -> list[Manscdp]:
        """Send a query (about ``target``, a channel: PresetQuery; or a ``Control`` answered with a Response) and
        return every Response page (merged until SumNum for Catalog)."""
        lower = self.lowers[lower_id]
        sn = next(self._sn)
        future: asyncio.Future[list[Manscdp]] = asyncio.get_running_loop().create_future()
        self._waiters[(target or lower_id, cmd_type.lower(), sn)] = future
        msg = SipMessage(method="MESSAGE", uri=f"sip:{lower_id}@{lower.peer.host}:{lower.peer.port}")
        msg.add("From", f"<sip:{self.sip_id}@{self.domain}>;tag={new_tag()}")
        msg.add("To", f"<sip:{lower_id}@{self.domain}>")
        msg.add("Call-ID", new_call_id(self.endpoint.host))
        msg.add("CSeq", f"{next(self._cseq)} MESSAGE")
        msg.add("Content-Type", CONTENT_TYPE)
        msg.body = build(root, cmd_type, sn, target or lower_id, fields)
        try:
            response = await self.endpoint.request(msg, lower.peer)
            if response.status != 200:
                raise RuntimeError(f"query answered {response.status}")
            async with asyncio.timeout(limit_s):
                return await future
        finally:
            self._waiters.pop((target or lower_id, cmd_type.lower(), sn), None)

    async def control(self, lower_id: str, channel_id: str, fields: list[Node]) -> int:
        """A DeviceControl (PTZCmd...) of a lower platform's channel; the MESSAGE's final status."""
        lower = self.lowers[lower_id]
        msg = SipMessage(method="MESSAGE", uri=f"sip:{lower_id}@{lower.peer.host}:{lower.peer.port}")
        msg.add("From", f"<sip:{self.sip_id}@{self.domain}>;tag={new_tag()}")
        msg.add("To", f"<sip:{lower_id}@{self.domain}>")
        msg.add("Call-ID", new_call_id(self.endpoint.host))
        msg.add("CSeq", f"{next(self._cseq)} MESSAGE")
        msg.add("Content-Type", CONTENT_TYPE)
        msg.body = build("Control", "DeviceControl", next(self._sn), channel_id, fields)
        return (await self.endpoint.request(msg, lower.peer)).status

    async def subscribe(self, lower_id: str, event: str = "Catalog") -> int:
        """SUBSCRIBE to ``event`` of the lower platform and answer only its status (no dialog kept)."""
        return (await self.open_subscription(lower_id, event)).status

    async def open_subscription(
        self,
        lower_id: str,
        event: str,
        *,
        target: str | None = None,
        fields: list[Node] | None = None,
        expires: int = 3600,
        body: bytes | None = None,
    ) -> UpperSubscription:
        """SUBSCRIBE to ``event`` of the lower platform (the query about ``target``, with ``fields``; ``body``
        replaces it as is) and keep the dialog for ``refresh`` and ``unsubscribe``."""
        lower = self.lowers[lower_id]
        sn = next(self._sn)
        msg = SipMessage(method="SUBSCRIBE", uri=f"sip:{lower_id}@{lower.peer.host}:{lower.peer.port}")
        msg.add("From", f"<sip:{self.sip_id}@{self.domain}>;tag={new_tag()}")
        msg.add("To", f"<sip:{lower_id}@{self.domain}>")
        msg.add("Call-ID", new_call_id(self.endpoint.host))
        msg.add("CSeq", f"{next(self._cseq)} SUBSCRIBE")
        msg.add("Event", f"{event};id={sn}")
        msg.add("Expires", str(expires))
        msg.add("Contact", self.endpoint.contact(self.sip_id))
        msg.add("Content-Type", CONTENT_TYPE)
        msg.body = body if body is not None else build("Query", event, sn, target or lower_id, fields)
        response = await self.endpoint.request(msg, lower.peer)
        dialog = Dialog.as_caller(msg, response, lower.peer) if response.status == 200 else None
        return UpperSubscription(event, response.status, response.reason, dialog, msg.call_id, target or lower_id,
                                 response.expires or 0)  # fmt: skip

    async def refresh(
        self, sub: UpperSubscription, expires: int, fields: list[Node] | None = None, *, body: bool = True
    ) -> int:
        """SUBSCRIBE again in the dialog (``expires`` 0 ends it; ``body`` False: without a query); the status."""
        assert sub.dialog is not None
        msg = sub.dialog.request("SUBSCRIBE")
        sn = next(self._sn)
        msg.add("Event", f"{sub.event};id={sn}")
        msg.add("Expires", str(expires))
        msg.add("Contact", self.endpoint.contact(self.sip_id))
        if body:
            msg.add("Content-Type", CONTENT_TYPE)
            msg.body = build("Query", sub.event, sn, sub.target, fields)
        response = await self.endpoint.request(msg, sub.dialog.peer)
        sub.status, sub.expires = response.status, response.expires or 0
        return response.status

    async def unsubscribe(self, sub: UpperSubscription) -> int:
        return await self.refresh(sub, 0)

    def notified(self, event: str, call_id: str | None = None) -> list[Notified]:
        """The NOTIFYs of ``event`` received (in one dialog with ``call_id``)."""
        return [n for n in self.notifies if n.event == event and (call_id is None or n.call_id == call_id)]

    async def invite(
        self,
        lower_id: str,
        channel_id: str,
        *,
        mode: RtpMode = "udp",
        ssrc: str = "0100000001",
        session: str = "Play",
        time: tuple[int, int] = (0, 0),
        download_speed: int | None = None,
    ) -> Watch:
        """INVITE a channel of the lower platform and receive its PS over RTP; ``Watch.units`` fill up."""
        lower = self.lowers[lower_id]
        watch = Watch(mode, self.endpoint.host)
        receiver = watch.receiver
        if mode != "tcp-active":
            await receiver.start()
        offer = MediaDescription(owner=self.sip_id, ip=self.endpoint.host, port=receiver.port or 9,
                                 transport="udp" if mode == "udp" else "tcp",
                                 setup=None if mode == "udp" else ("passive" if mode == "tcp-passive" else "active"),
                                 ssrc=ssrc, session=session, time=time,
                                 uri=f"{channel_id}:0" if session != "Play" else "",
                                 download_speed=download_speed)  # fmt: skip
        msg = SipMessage(method="INVITE", uri=f"sip:{channel_id}@{lower.peer.host}:{lower.peer.port}")
        msg.add("From", f"<sip:{self.sip_id}@{self.domain}>;tag={new_tag()}")
        msg.add("To", f"<sip:{channel_id}@{self.domain}>")
        msg.add("Call-ID", new_call_id(self.endpoint.host))
        msg.add("CSeq", f"{next(self._cseq)} INVITE")
        msg.add("Contact", self.endpoint.contact(self.sip_id))
        msg.add("Subject", f"{channel_id}:{ssrc},{self.sip_id}:0")
        msg.add("Content-Type", "application/sdp")
        msg.body = offer.to_bytes()
        response = await self.endpoint.invite(msg, lower.peer, limit_s=20)
        watch.status = response.status
        if response.status != 200:
            await receiver.stop()
            return watch
        watch.dialog = Dialog.as_caller(msg, response, lower.peer)
        await self.endpoint.ack(watch.dialog.request("ACK"), lower.peer)
        watch.answer = parse_sdp(response.body)
        if mode == "tcp-active":
            receiver.peer = (watch.answer.ip, watch.answer.port)
            await receiver.start()
        return watch

    async def info(self, watch: Watch, body: str) -> int:
        """MANSRTSP in the dialog of a Playback (PLAY / PAUSE ...); the status of the answer."""
        assert watch.dialog is not None
        msg = watch.dialog.request("INFO")
        msg.add("Content-Type", "Application/MANSRTSP")
        msg.body = body.encode("ascii")
        response = await self.endpoint.request(msg, watch.dialog.peer)
        return response.status

    async def bye(self, watch: Watch) -> int:
        assert watch.dialog is not None
        response = await self.endpoint.request(watch.dialog.request("BYE"), watch.dialog.peer)
        await watch.receiver.stop()
        return response.status

    # --- incoming ---------------------------------------------------------------------------
    def _on_request(self, msg: SipMessage, peer: Peer) -> SipMessage | None:
        if msg.method == "REGISTER":
            return self._on_register(msg, peer)
        if msg.method == "BYE":  # the lower platform ended a stream it sent
            self.byes.append(msg.call_id)
            self._changed()
            return msg.response(200)
        if msg.method not in ("MESSAGE", "NOTIFY"):
            return msg.response(501)
        lower = self.lowers.get(msg.from_user)
        if lower is None:
            self.stats["refused.unregistered"] += 1
            return msg.response(403)
        if msg.method == "NOTIFY":
            return self._on_notify(msg)
        try:
            body = parse_body(msg.body)
        except ManscdpError as exc:
            self.stats[f"bad_body.{exc.reason}"] += 1
            return msg.response(400)
        cmd = body.cmd_type.lower()
        if body.root == "notify" and cmd == "keepalive":
            if not self.answer_keepalives:
                self.stats["keepalives_ignored"] += 1
                return None
            lower.keepalives += 1
            lower.faulty = info_ids(body)
        elif body.root == "notify" and cmd == "alarm":
            lower.alarms.append(body)
            self.stats["alarms"] += 1
            self._background.spawn(self._ack_alarm(lower, body), "upper-alarm-ack")
        elif body.root == "response":
            self._on_response(lower, body)
        elif body.root == "notify" and cmd == "mediastatus":  # a Playback/Download reached its range's end
            self.media_status.append(body)
        self._changed()
        return msg.response(200)

    def _on_notify(self, msg: SipMessage) -> SipMessage | None:
        if not self.answer_notifies:
            self.stats["notifies_ignored"] += 1
            return None
        body: Manscdp | None = None
        if msg.body.strip():
            try:
                body = parse_body(msg.body)
            except ManscdpError as exc:
                self.stats[f"bad_body.{exc.reason}"] += 1
                return msg.response(400)
        event = msg.get("Event").split(";")[0].strip()
        self.notifies.append(Notified(event, msg.get("Subscription-State"), msg.call_id, body))
        if body is not None and body.cmd_type.lower() == "catalog":
            self.catalog_notifies.append(body)
        self._changed()
        return msg.response(200)

    def _on_register(self, msg: SipMessage, peer: Peer) -> SipMessage:
        user = msg.from_user
        auth = msg.get("Authorization")
        if not auth:
            reply = msg.response(401)
            reply.add("WWW-Authenticate", self.digest.challenge())
            self.stats["challenged"] += 1
            return reply
        reason = self.digest.check(auth, method="REGISTER", password=self.password, username=user)
        if reason:
            self.stats[f"refused.{reason}"] += 1
            self._changed()
            return msg.response(403)
        expires = msg.expires if msg.expires is not None else 3600
        granted = self.grant_expires if (self.grant_expires is not None and expires) else expires
        reply = msg.response(200)
        reply.add("Expires", str(granted))
        if expires == 0:
            self.lowers.pop(user, None)
            self.stats["unregistered"] += 1
        else:
            lower = self.lowers.get(user) or Lower(user, peer, granted)
            lower.peer, lower.expires = peer, granted
            lower.registrations += 1
            self.lowers[user] = lower
            self.stats["registered"] += 1
        self._changed()
        return reply

    def _on_response(self, lower: Lower, body: Manscdp) -> None:
        key = (body.device_id, body.cmd_type.lower(), body.sn)
        future = self._waiters.get(key) or self._waiters.get((lower.id, body.cmd_type.lower(), body.sn))
        if future is None or future.done():
            self.stats["stray_responses"] += 1
            return
        pages = self._catalogs.setdefault((lower.id, body.sn), [])
        pages.append(body)
        if body.cmd_type.lower() not in ("catalog", "recordinfo"):
            future.set_result(pages)
            return
        got = sum(len(p.items) for p in pages)
        if body.sum_num is not None and got >= body.sum_num:
            future.set_result(pages)

    async def _ack_alarm(self, lower: Lower, body: Manscdp) -> None:
        msg = SipMessage(method="MESSAGE", uri=f"sip:{lower.id}@{lower.peer.host}:{lower.peer.port}")
        msg.add("From", f"<sip:{self.sip_id}@{self.domain}>;tag={new_tag()}")
        msg.add("To", f"<sip:{lower.id}@{self.domain}>")
        msg.add("Call-ID", new_call_id(self.endpoint.host))
        msg.add("CSeq", f"{next(self._cseq)} MESSAGE")
        msg.add("Content-Type", CONTENT_TYPE)
        msg.body = build("Response", "Alarm", body.sn, body.device_id, [("Result", "OK")])
        try:
            await self.endpoint.request(msg, lower.peer)
        except TimeoutError:
            self.stats["alarm_ack_timeouts"] += 1
