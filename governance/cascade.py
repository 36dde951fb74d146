"""SharpEye as a lower platform (级联): registers to an upper platform and serves it.

Registration with Digest (qop=auth when offered), refreshed at ``refresh_ratio`` of the granted period;
keepalives every ``keepalive_interval_s``, and ``keepalive_count`` unanswered in a row mean the link is
dead: register again at once, then back off (``retry_s`` doubling to 10 minutes) while it fails.
The upper platform's Catalog query is answered in pages of ``catalog_page_size`` items, each with the
total as ``SumNum``; DeviceInfo and DeviceStatus are answered; a Catalog SUBSCRIBE makes a dialog in
which changes of the published channels (ADD/DEL/ON/OFF/UPDATE, checked every ``catalog_watch_s``) are
sent as NOTIFY until it expires; alarms are forwarded from a bounded queue that survives re-registration:
as in-dialog NOTIFYs (``Notify``/``Alarm``) to the live Alarm subscriptions whose conditions they meet, or as
``Notify``/``Alarm`` MESSAGEs when the upper platform holds no Alarm subscription (what GB/T 28181-2016 peers
expect). A MobilePosition subscription gets the subscribed channel's (or, for SharpEye's own id, every published
channel's) latest position every ``Interval`` seconds: the track kept from the device's MobilePosition NOTIFYs,
else the channel's catalog position. Subscriptions end at their expiry or ``Expires: 0`` (with a NOTIFY saying
``terminated``), and when the upper platform leaves ``notify_failures`` NOTIFYs in a row unanswered.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sharpeye.alarms.alarm import Alarm
from sharpeye.alarms.notification import BatchHandler, Event
from sharpeye.alarms.store import AlarmStore
from sharpeye.config.gb28181 import CascadeSettings, GbSettings
from sharpeye.config.gb_code import CodeError, type_of
from sharpeye.governance.alarm_class import classify
from sharpeye.governance.cascade_control import UpwardControl
from sharpeye.governance.cascade_record import RecordSource, answer_record_info
from sharpeye.governance.cascade_subscription import (
    EVENTS,
    AlarmFilter,
    SubscribeError,
    SubscriptionQuery,
    event_of,
    subscription_query,
)
from sharpeye.ingest.gb28181.manscdp import CONTENT_TYPE, Manscdp, ManscdpError, Node, build, parse_body
from sharpeye.ingest.gb28181.platform import Channel, gb_date
from sharpeye.ingest.gb28181.subscription import Position
from sharpeye.ingest.recording.playback import ControlError, parse_mansrtsp
from sharpeye.ingest.transport.ps import AnnexB, PsMuxer, rtp_payloads
from sharpeye.ingest.transport.rtp import RtpError, RtpMode, RtpSender
from sharpeye.ingest.transport.sip.background import Background
from sharpeye.ingest.transport.sip.dialog import Dialog
from sharpeye.ingest.transport.sip.digest import Challenge
from sharpeye.ingest.transport.sip.endpoint import Peer, SipEndpoint, TransactionTimeout
from sharpeye.ingest.transport.sip.message import SipMessage, new_call_id, new_tag, uri_user
from sharpeye.ingest.transport.sip.sdp import MediaDescription, SdpError, parse_sdp
from sharpeye.ingest.transport.video.subscription import PacketSubscription

from sharpeye.clock import Clock, SystemClock

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 600.0
KEEPALIVE_FAULTY_MAX = 20  # faulty channels listed in one keepalive (its body stays under 1,500 bytes for UDP)
ALARM_QUEUE = 1000
EVENT_NAMES = tuple(EVENTS.values())  # Catalog, Alarm, MobilePosition
POSITIONS_PER_ROUND = 1000  # MobilePosition NOTIFYs sent at most per subscription and Interval
NOTIFY_LIMIT_S = 4.0  # a NOTIFY unanswered this long counts as failed


def gb_time(when: datetime, zone: str) -> str:
    """``yyyy-MM-ddTHH:mm:ss`` in local time (AlarmTime, DeviceTime)."""
    return when.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass(slots=True, eq=False)
class Subscription:
    """A SUBSCRIBE dialog from the upper platform."""

    event: str
    call_id: str
    remote: str  # their From header (with its tag): our NOTIFYs' To
    local_tag: str
    peer: Peer
    uri: str
    sn: int
    expires_at: float  # loop time
    target: str = ""  # the DeviceID subscribed: SharpEye's own id (everything) or one channel
    alarms: AlarmFilter = field(default_factory=AlarmFilter)
    interval_s: int = 5  # MobilePosition: seconds between reports
    since: datetime | None = None
    cseq: int = 0
    sent: int = 0  # NOTIFYs answered 2xx
    failures: int = 0  # NOTIFYs in a row not answered 2xx
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one NOTIFY at a time: CSeq in order
    task: asyncio.Future[None] | None = None  # MobilePosition reports


MediaSource = Callable[[str], Awaitable[PacketSubscription]]


class HistoryPlayback(Protocol):
    """A recording played to the upper platform: the device's forwarded (``ForwardedPlayback``) or SharpEye's own
    (``RecordedPlayback``); MANSRTSP bodies from the upper platform go to ``control``."""

    subscription: PacketSubscription

    async def control(self, body: bytes) -> None: ...


HistorySource = Callable[[str, MediaDescription], Awaitable[HistoryPlayback]]  # (channel, the upper's offer)
PositionSource = Callable[[list[str]], Awaitable[dict[str, Position]]]  # newest position by device or channel code


@dataclass(slots=True, eq=False)
class _Upstream:
    """One channel the upper platform watches: its INVITE, our RTP sender and the packets we re-mux."""

    channel: str
    offer: MediaDescription
    invite: SipMessage
    peer: Peer
    subscription: PacketSubscription | None = None
    sender: RtpSender | None = None
    codec: str = ""
    answered: bool = False
    prepare: asyncio.Future[None] | None = None
    task: asyncio.Future[None] | None = None
    control: HistoryPlayback | None = None  # a Playback/Download (MANSRTSP goes there)
    paused: asyncio.TimerHandle | None = None  # while paused: ends the playback after ``pause_limit_s``


class GbCascade:
    """Lower-platform client. ``catalog`` returns the channels to publish upward (e.g. ``platform.channels``)."""

    def __init__(
        self,
        settings: GbSettings,
        catalog: Callable[[], Sequence[Channel]],
        clock: Clock | None = None,
        *,
        name: str = "SharpEye",
        media: MediaSource | None = None,
        control: UpwardControl | None = None,
        records: RecordSource | None = None,
        history: HistorySource | None = None,
        upper: CascadeSettings | None = None,
        positions: PositionSource | None = None,
    ) -> None:
        """``media(channel_id)`` gives a subscription to a channel's packets (e.g. ``ChannelPuller.subscribe``);
        without it the upper platform's INVITE is answered 501. ``control`` carries out the upper platform's
        DeviceControl and PresetQuery of our channels; without it they are answered 200 and ignored. ``upper`` is
        the upper platform this client serves (one of ``settings.uppers``; default the first). ``positions`` gives the
        newest tracked position of devices and channels (``PositionStore.latest``) for MobilePosition subscriptions;
        without it only catalog positions are reported."""
        if upper is None:
            if not settings.uppers:
                raise ValueError("GbSettings has no cascades")
            upper = settings.uppers[0]
        self.settings = settings
        self.upper: CascadeSettings = upper
        self.clock: Clock = clock or SystemClock()
        self.name = name
        self._all_channels = catalog
        self._records = records  # RecordInfo upward (cascade_record.py)
        self._history = history  # Playback/Download upward, forwarded to the channel's device
        self._positions = positions
        self.endpoint = SipEndpoint(
            self._on_request,
            host=settings.host,
            port=self.upper.local_port,
            tcp=self.upper.transport == "tcp",
            t1=settings.sip_t1_s,
        )
        self._peer = Peer(self.upper.transport, self.upper.upper_host, self.upper.upper_port)
        self._call_id = ""
        self._from_tag = new_tag()
        self._cseq = itertools.count(random.randint(1, 1000))
        self._sn = itertools.count(random.randint(1, 100_000))
        self.stats: Counter[str] = Counter()
        self.registered = asyncio.Event()
        self.expires_at: float | None = None
        self.subscriptions: dict[str, Subscription] = {}  # by Call-ID
        self.notify_failures: Counter[str] = Counter()  # by event
        self.registered_since: datetime | None = None
        self.last_keepalive: datetime | None = None  # the last keepalive the upper platform answered 200
        self.last_error = ""  # what last went wrong on the link (registration, keepalive, NOTIFY, alarm), and when
        self.last_error_at: datetime | None = None
        self._alarms: asyncio.Queue[Alarm] = asyncio.Queue(ALARM_QUEUE)
        self._background = Background(self.stats)
        self._media = media
        self.control = control
        self.streams: dict[str, _Upstream] = {}  # by Call-ID
        self._info_pending: set[tuple[str, int]] = set()  # MANSRTSP INFOs being carried out (Call-ID, CSeq)

    @property
    def domain(self) -> str:
        return self.upper.upper_domain or self.upper.upper_id[:10]

    @property
    def id(self) -> str:
        """The upper platform's name in metrics and health (its ``id``, else its SIP id)."""
        return self.upper.name

    def _catalog(self) -> list[Channel]:
        """The channels this upper platform may see (its ``channels`` filter applied)."""
        return [c for c in self._all_channels() if self.upper.allows(c.channel_id)]

    def sees(self, alarm: Alarm) -> bool:
        """Whether an alarm goes to this upper platform: always without a channel filter, else only an alarm of a
        channel (or device code) the filter lets through."""
        if not self.upper.channels:
            return True
        return any(self.upper.allows(code) for code in (alarm.channel or "", alarm.device_id) if code)

    # --- public interface -------------------------------------------------------------------
    async def start(self) -> None:
        await self.endpoint.start()
        self._call_id = new_call_id(self.endpoint.host)
        self._spawn(self._run(), "gb28181-cascade-register")
        self._spawn(self._forward(), "gb28181-cascade-alarms")
        self._spawn(self._watch_catalog(), "gb28181-cascade-catalog-watch")
        self._spawn(self._sweep_subscriptions(), "gb28181-cascade-subscriptions")

    async def stop(self, *, unregister: bool = True) -> None:
        """Stop; unregister first (``Expires: 0``, at most 3 s) unless told not to. Safe to call twice."""
        for call_id in list(self.streams):
            await self._end_upstream(call_id, "stopped", bye=True)
        for sub in list(self.subscriptions.values()):
            self._drop_subscription(sub, "stopped")
        if self.control is not None:
            await self.control.stop()
        await self._background.stop()
        if unregister and self.registered.is_set():
            with contextlib.suppress(TimeoutError, ConnectionError, OSError):
                async with asyncio.timeout(3):
                    await self._register(0)
        self.registered.clear()
        await self.endpoint.stop()

    def health(self) -> tuple[bool, str]:
        """(ok, detail) for the hub's health report: ok while registered to the upper platform."""
        peer = f"{self.upper.upper_id}@{self.upper.upper_host}:{self.upper.upper_port}"
        if not self.registered.is_set():
            failures = self.stats["register_failures"]
            return False, f"not registered to {peer} ({failures} failed attempts)"
        return True, (
            f"registered to {peer}; {len(self._catalog())} channels published, {len(self.streams)} streams up, "
            f"{len(self.subscriptions)} subscriptions, {self.alarms_forwarded} alarms forwarded"
        )

    def _failed(self, what: str) -> None:
        self.last_error, self.last_error_at = what[:200], self.clock.now()

    @property
    def errors(self) -> int:
        """Failures on the link: registrations and refreshes, unanswered keepalives, alarms given up, NOTIFYs."""
        keys = ("register_failures", "refresh_failures", "keepalive_misses", "alarms_failed", "alarms_dropped")
        return sum(self.stats[k] for k in keys) + sum(self.notify_failures.values())

    @property
    def alarms_forwarded(self) -> int:
        """Alarms the upper platform took: MESSAGEs answered 200 and NOTIFYs in its Alarm subscriptions."""
        return self.stats["alarms_forwarded.200"] + self.stats["alarms_notified"]

    def channel_count(self) -> int:
        """The channels this upper platform sees (its filter applied)."""
        return len(self._catalog())

    def forward_alarm(self, alarm: Alarm) -> None:
        """Queue an alarm for the upper platform (never blocks; the oldest is dropped when full). An alarm the
        platform's channel filter keeps from it is counted (``alarms_filtered``) and not sent."""
        if not self.sees(alarm):
            self.stats["alarms_filtered"] += 1
            return
        if self._alarms.full():
            self._alarms.get_nowait()
            self.stats["alarms_dropped"] += 1
        self._alarms.put_nowait(alarm)

    # --- registration -----------------------------------------------------------------------
    def _base(self, method: str, uri: str) -> SipMessage:
        msg = SipMessage(method=method, uri=uri)
        me = self.settings.sip_id
        tag = self._from_tag if method == "REGISTER" else new_tag()
        msg.add("From", f"<sip:{me}@{self.settings.sip_domain}>;tag={tag}")
        to_user = me if method == "REGISTER" else self.upper.upper_id
        msg.add("To", f"<sip:{to_user}@{self.settings.sip_domain if method == 'REGISTER' else self.domain}>")
        msg.add("Call-ID", self._call_id if method == "REGISTER" else new_call_id(self.endpoint.host))
        msg.add("CSeq", f"{next(self._cseq)} {method}")
        return msg

    async def _register(self, expires: int) -> int:
        """One REGISTER exchange (with the digest round trip). Returns the granted period, or raises."""
        uri = f"sip:{self.upper.upper_id}@{self.domain}"
        authorization = ""
        for _ in range(3):
            msg = self._base("REGISTER", uri)
            msg.add("Contact", self.endpoint.contact(self.settings.sip_id, self.upper.transport))
            msg.add("Expires", str(expires))
            if authorization:
                msg.add("Authorization", authorization)
            response = await self.endpoint.request(msg, self._peer)
            if response.status == 401 and response.get("WWW-Authenticate"):
                challenge = Challenge.parse(response.get("WWW-Authenticate"))
                authorization = challenge.authorization(
                    username=self.settings.sip_id,
                    password=self.upper.password.get_secret_value(),
                    method="REGISTER",
                    uri=uri,
                )
                continue
            if response.status != 200:
                self.stats[f"register.{response.status}"] += 1
                raise PermissionError(f"upper platform answered REGISTER with {response.status} {response.reason}")
            granted = response.expires
            if response.get("Date"):
                log.debug("upper platform time %s", response.get("Date"))
            return expires if granted is None else granted
        raise PermissionError("upper platform keeps challenging")

    async def _keepalive(self) -> int:
        """Send one keepalive; its final status, or 0 when unanswered."""
        faulty: list[Node] = [("DeviceID", c.channel_id) for c in self._catalog() if not c.online]
        fields: list[Node] = [("Status", "OK")]
        if faulty:  # the published channels that are down (GB/T 28181-2016 Keepalive <Info>)
            fields.append(("Info", faulty[:KEEPALIVE_FAULTY_MAX]))
        body = build("Notify", "Keepalive", next(self._sn), self.settings.sip_id, fields, charset=self.upper.charset)
        try:
            limit = min(self.upper.keepalive_interval_s, 64 * self.settings.sip_t1_s)
            return await self._message(body, limit_s=limit)
        except (TransactionTimeout, ConnectionError, OSError):
            return 0

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = self.upper.retry_s
        while True:
            try:
                granted = await self._register(self.upper.register_expires_s)
            except (PermissionError, TransactionTimeout, ConnectionError, OSError, ValueError) as exc:
                self.stats["register_failures"] += 1
                self._failed(f"registration failed: {exc}")
                self.registered.clear()
                self.registered_since = None
                log.warning("cascade registration to %s failed: %s; retry in %.0f s", self.upper.upper_id, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            backoff = self.upper.retry_s
            self.stats["registrations"] += 1
            self.registered.set()
            self.registered_since = self.clock.now()
            self.expires_at = loop.time() + granted
            refresh_at = loop.time() + max(1.0, granted * self.upper.refresh_ratio)
            next_keepalive = loop.time() + self.upper.keepalive_interval_s
            misses = 0
            while True:
                await asyncio.sleep(max(0.0, min(refresh_at, next_keepalive) - loop.time()))
                if loop.time() >= refresh_at:
                    try:
                        granted = await self._register(self.upper.register_expires_s)
                    except (PermissionError, TransactionTimeout, ConnectionError, OSError, ValueError) as exc:
                        log.warning("cascade refresh failed: %s", exc)
                        self.stats["refresh_failures"] += 1
                        self._failed(f"registration refresh failed: {exc}")
                        break
                    self.stats["refreshes"] += 1
                    self.expires_at = loop.time() + granted
                    refresh_at = loop.time() + max(1.0, granted * self.upper.refresh_ratio)
                    continue
                next_keepalive = loop.time() + self.upper.keepalive_interval_s
                status = await self._keepalive()
                if status == 200:
                    misses = 0
                    self.stats["keepalives"] += 1
                    self.last_keepalive = self.clock.now()
                    continue
                if status in (401, 403, 404, 481):  # the upper platform no longer knows us
                    self.stats[f"keepalive_refused.{status}"] += 1
                    log.warning("upper platform refused a keepalive (%d): registering again", status)
                    break
                misses += 1
                self.stats["keepalive_misses"] += 1
                self._failed("keepalive unanswered" if status == 0 else f"keepalive answered {status}")
                if misses >= self.upper.keepalive_count:
                    log.warning("upper platform missed %d keepalives: registering again", misses)
                    break
            self.registered.clear()
            self.registered_since = None
            self._call_id = new_call_id(self.endpoint.host)

    # --- messages upward --------------------------------------------------------------------
    async def _message(self, body: bytes, *, limit_s: float | None = None) -> int:
        msg = self._base("MESSAGE", f"sip:{self.upper.upper_id}@{self.domain}")
        msg.add("Content-Type", CONTENT_TYPE)
        msg.body = body
        response = await self.endpoint.request(msg, self._peer, limit_s=limit_s)
        return response.status

    def _alarm_body(self, alarm: Alarm) -> bytes:
        cls = classify(alarm)
        device_id = self.settings.sip_id
        for candidate in (alarm.channel or "", alarm.device_id):
            with contextlib.suppress(CodeError):
                type_of(candidate)
                device_id = candidate
                break
        description = alarm.title + (f" @ {alarm.place}" if alarm.place else "")
        body: list[Node] = [
            ("AlarmPriority", alarm.severity.priority),
            ("AlarmMethod", cls.method),
            ("AlarmTime", gb_time(alarm.first_seen, self.settings.timezone)),
            ("AlarmDescription", description[:128]),
        ]
        if cls.type is not None:
            body.append(("Info", [("AlarmType", cls.type)]))
        return build("Notify", "Alarm", next(self._sn), device_id, body, charset=self.upper.charset)

    async def _forward(self) -> None:
        while True:
            alarm = await self._alarms.get()
            body = self._alarm_body(alarm)
            for attempt in range(5):
                await self.registered.wait()
                subscriptions = self.live("Alarm")
                if subscriptions:  # the upper platform subscribed: NOTIFYs in the dialogs whose conditions it meets
                    wanted = [sub for sub in subscriptions if self._wants(sub, alarm)]
                    if not wanted:
                        self.stats["alarms_not_subscribed"] += 1
                        break
                    delivered = [await self._send_notify(sub, body) for sub in wanted]
                    if any(delivered):
                        self.stats["alarms_notified"] += 1
                        break
                    continue  # not answered: again, by MESSAGE once those subscriptions have ended
                try:
                    status = await self._message(body)
                except (TransactionTimeout, ConnectionError, OSError) as exc:
                    log.info("alarm %s not delivered (attempt %d): %s", alarm.id, attempt + 1, exc)
                    continue
                self.stats[f"alarms_forwarded.{status}"] += 1
                break
            else:
                self.stats["alarms_failed"] += 1
                self._failed(f"alarm {alarm.id} not delivered after 5 attempts")

    def _wants(self, sub: Subscription, alarm: Alarm) -> bool:
        """Whether an Alarm subscription asked for this alarm: its DeviceID (SharpEye: all) and its conditions."""
        if sub.target != self.settings.sip_id and sub.target not in (alarm.channel, alarm.device_id):
            return False
        cls = classify(alarm)
        return sub.alarms.matches(alarm.severity.priority, cls.method, alarm.first_seen, cls.type)

    # --- requests from the upper platform ---------------------------------------------------
    def _on_request(self, msg: SipMessage, peer: Peer) -> SipMessage | None:
        if msg.from_user != self.upper.upper_id:
            self.stats["request.foreign"] += 1
            return msg.response(403)
        if msg.method == "OPTIONS":
            return msg.response(200)
        if msg.method == "SUBSCRIBE":
            return self._on_subscribe(msg, peer)
        if msg.method in ("INVITE", "ACK", "BYE", "CANCEL"):
            return self._on_media(msg, peer)
        if msg.method == "INFO":
            return self._on_info(msg, peer)
        if msg.method not in ("MESSAGE", "NOTIFY"):
            return msg.response(501)
        try:
            body = parse_body(msg.body)
        except ManscdpError as exc:
            self.stats[f"bad_body.{exc.reason}"] += 1
            return msg.response(400, f"Bad Body ({exc.reason})")
        cmd = body.cmd_type.lower()
        if body.root == "query" and cmd in ("catalog", "deviceinfo", "devicestatus"):
            self.stats[f"query.{cmd}"] += 1
            self._spawn(self._answer(body), f"gb28181-cascade-{cmd}")
        elif body.root == "query" and cmd == "recordinfo":
            self.stats["query.recordinfo"] += 1
            self._spawn(answer_record_info(self, body, self._records), "gb28181-cascade-recordinfo")
        elif body.root == "response" and cmd == "alarm":
            self.stats["alarm_acks"] += 1
        elif self.control is not None and self.control.handles(body):
            if body.device_id != self.settings.sip_id and not self.upper.allows(body.device_id):
                self.stats["control.not_allowed"] += 1
                return msg.response(403)
            return msg.response(self.control.accept(body, self._message))
        else:
            self.stats[f"ignored.{body.root}.{cmd}"] += 1
        return msg.response(200)

    # --- media upward: the upper platform INVITEs one of our channels -------------------------------
    def _on_media(self, msg: SipMessage, peer: Peer) -> SipMessage | None:
        call_id = msg.call_id
        stream = self.streams.get(call_id)
        if msg.method == "INVITE":
            if stream is not None:
                return msg.response(100) if stream.task is None and not stream.answered else None
            channel = uri_user(msg.uri) or msg.to_user
            if not self.upper.allows(channel):
                self.stats["invite.not_allowed"] += 1
                return msg.response(404)
            if self._media is None:
                self.stats["invite.no_media"] += 1
                return msg.response(501)
            if len(self.streams) >= self.settings.max_media_sessions:
                self.stats["invite.too_many"] += 1
                return msg.response(486)
            try:
                offer = parse_sdp(msg.body)
            except SdpError as exc:
                self.stats[f"invite.bad_sdp.{exc.reason}"] += 1
                return msg.response(400, f"Bad SDP ({exc.reason})")
            if 96 not in offer.payloads or (not offer.ssrc_value and offer.ssrc not in ("", "0")):
                self.stats["invite.not_acceptable"] += 1
                return msg.response(488)
            upstream = _Upstream(channel, offer, msg, peer)
            self.streams[call_id] = upstream
            upstream.prepare = asyncio.ensure_future(self._prepare_upstream(upstream))
            return msg.response(100)
        if msg.method == "ACK":
            if stream is not None and stream.answered and stream.task is None:
                stream.task = asyncio.ensure_future(self._send_upstream(stream))
            return None
        if msg.method == "CANCEL":
            if stream is None or stream.answered:
                return msg.response(481)
            self.stats["invite.cancelled"] += 1
            self._spawn(self._end_upstream(call_id, "cancelled"), "gb28181-cascade-cancel")
            self.endpoint.send_response(stream.invite.response(487), stream.invite, stream.peer)
            return msg.response(200)
        if stream is None:  # BYE
            return msg.response(481)
        self.stats["bye"] += 1
        self._spawn(self._end_upstream(call_id, "bye"), "gb28181-cascade-bye")
        return msg.response(200)

    async def _source(self, up: _Upstream) -> PacketSubscription:
        """Live packets of the channel, or for ``s=Playback``/``Download`` the device's recording forwarded."""
        if up.offer.session in ("Playback", "Download"):
            if self._history is None:
                raise RuntimeError("no playback source")
            up.control = await self._history(up.channel, up.offer)
            return up.control.subscription
        assert self._media is not None
        return await self._media(up.channel)

    def _on_info(self, msg: SipMessage, peer: Peer) -> SipMessage | None:
        """MANSRTSP from the upper platform for a Playback: passed on to the device, or carried out on SharpEye's own
        recording; answered once done: 200, 400 for a request that is malformed or asks what the recording cannot
        do, 503 when the device refused it or did not answer."""
        up = self.streams.get(msg.call_id)
        if up is None or up.control is None:
            self.stats["info.no_session"] += 1
            return msg.response(481)
        control = up.control
        try:
            method, _ = parse_mansrtsp(msg.body)
        except ControlError as exc:
            self.stats["info.bad"] += 1
            return msg.response(400, f"Bad MANSRTSP ({exc})"[:120])
        key = (msg.call_id, msg.cseq[0])
        if key in self._info_pending:  # a retransmission while the first is carried out: answered with it
            return None
        self._info_pending.add(key)

        async def carry_out() -> None:
            status, reason = 200, ""
            try:
                await control.control(msg.body)
                self.stats["info.forwarded"] += 1
                self._pause_watch(up, method)
            except ControlError as exc:
                self.stats["info.bad"] += 1
                status, reason = 400, f"Bad MANSRTSP ({exc})"[:120]
            except Exception as exc:
                self.stats["info.refused"] += 1
                log.info("MANSRTSP for %s not carried out: %s", up.channel, exc)
                status = 503
            finally:
                self._info_pending.discard(key)
            self.endpoint.send_response(msg.response(status, reason), msg, peer)

        self._spawn(carry_out(), "gb28181-cascade-info")
        return None

    def _pause_watch(self, up: _Upstream, method: str) -> None:
        """A PAUSE carried out starts the pause limit (a PAUSE again does not restart it); PLAY stops it. A playback
        paused past ``pause_limit_s`` is ended with a BYE: it holds a recording reader or the device's stream."""
        if method == "PLAY" and up.paused is not None:
            up.paused.cancel()
            up.paused = None
        if method != "PAUSE" or up.paused is not None:
            return
        limit = self.upper.pause_limit_s

        def expire() -> None:
            up.paused = None
            if self.streams.get(up.invite.call_id) is not up:
                return
            log.info("upper platform %s left the playback of %s paused over %.0f s: ended with a BYE",
                     self.id, up.channel, limit)  # fmt: skip
            self._spawn(self._end_upstream(up.invite.call_id, "paused_too_long", bye=True), "gb28181-cascade-end")

        up.paused = asyncio.get_running_loop().call_later(limit, expire)

    async def _prepare_upstream(self, up: _Upstream) -> None:
        """Subscribe to the channel's packets (pulling it if needed), open the RTP sender, answer 200 with SDP."""
        assert self._media is not None
        offer = up.offer
        try:
            async with asyncio.timeout(self.settings.invite_timeout_s + 5):
                up.subscription = await self._source(up)
        except Exception as exc:
            reason = getattr(exc, "reason", type(exc).__name__)
            self.stats[f"invite.unavailable.{reason}"] += 1
            log.info("upper platform's INVITE for %s: no stream (%s)", up.channel, exc)
            self.streams.pop(up.invite.call_id, None)
            self.endpoint.send_response(
                up.invite.response(404 if reason == "unknown_channel" else 503), up.invite, up.peer
            )
            return
        info = up.subscription.info
        codec = str(getattr(info, "codec", "")).lower()
        if codec not in ("h264", "hevc"):
            self.stats["invite.codec"] += 1
            up.subscription.close()
            self.streams.pop(up.invite.call_id, None)
            self.endpoint.send_response(up.invite.response(488, "Codec Not Carried In PS"), up.invite, up.peer)
            return
        if offer.transport == "udp":
            mode: RtpMode = "udp"
        else:
            mode = "tcp-passive" if offer.setup == "active" else "tcp-active"
        up.sender = RtpSender(mode=mode, ssrc=offer.ssrc_value, peer=(offer.ip, offer.port),
                              host=self.settings.media_host or self.settings.host)  # fmt: skip
        try:
            if mode != "tcp-active":
                await up.sender.start()
        except OSError as exc:
            self.stats["invite.bind"] += 1
            log.warning("upstream media port: %s", exc)
            up.subscription.close()
            self.streams.pop(up.invite.call_id, None)
            self.endpoint.send_response(up.invite.response(500), up.invite, up.peer)
            return
        if up.invite.call_id not in self.streams:  # cancelled meanwhile
            up.subscription.close()
            await up.sender.stop()
            return
        up.codec = codec
        answer = MediaDescription(
            owner=up.channel,
            ip=self.settings.advertised_media_ip,
            port=up.sender.port if mode != "tcp-active" else 9,
            session=offer.session,
            transport=offer.transport,
            setup=None if mode == "udp" else ("active" if mode == "tcp-active" else "passive"),
            direction="sendonly",
            payloads={96: "PS"},
            ssrc=offer.ssrc,
        )
        reply = up.invite.response(200)
        reply.add("Contact", self.endpoint.contact(up.channel, self.upper.transport))
        reply.add("Content-Type", "application/sdp")
        reply.body = answer.to_bytes()
        up.answered = True
        self.stats["invite.answered"] += 1
        self.endpoint.send_response(reply, up.invite, up.peer)

    async def _send_upstream(self, up: _Upstream) -> None:
        """Re-mux the channel's access units into PS (with a PSM) over RTP, no re-encoding, until BYE."""
        assert up.sender is not None and up.subscription is not None
        try:
            if up.sender.mode == "tcp-active":
                await up.sender.start()
            elif up.sender.mode == "tcp-passive":
                async with asyncio.timeout(10):
                    await up.sender.connected.wait()
            muxer = PsMuxer(up.codec)
            info = up.subscription.info
            annexb, generation = AnnexB(up.codec, getattr(info, "extradata", None)), getattr(info, "generation", 0)
            num, den = getattr(info, "time_base", (1, 90000))
            while True:
                packet = await up.subscription.get()
                info = up.subscription.info
                if info is not None and packet.generation != generation:  # the camera reconnected
                    generation, (num, den) = packet.generation, info.time_base
                    annexb = AnnexB(up.codec, info.extradata)
                try:
                    data = annexb(packet.data, packet.key)
                except ValueError as exc:
                    self.stats["upstream.bad_packet"] += 1
                    log.debug("upstream of %s: packet skipped: %s", up.channel, exc)
                    continue
                ts = round((packet.pts or 0) * num * 90000 / den)
                up.sender.send(rtp_payloads(muxer.mux(data, ts, packet.key)), ts)
        except EOFError:
            self.stats["upstream.source_ended"] += 1
            if up.offer.session in ("Playback", "Download"):  # the range is played: MediaStatus 121, then BYE
                self._spawn(self._media_ended(up), "gb28181-cascade-media-status")
            self._spawn(self._end_upstream(up.invite.call_id, "source_ended", bye=True), "gb28181-cascade-end")
        except (OSError, TimeoutError, RtpError, ValueError) as exc:
            self.stats["upstream.failed"] += 1
            log.info("upstream of %s failed: %s", up.channel, exc)
            self._spawn(self._end_upstream(up.invite.call_id, "failed", bye=True), "gb28181-cascade-end")

    async def _media_ended(self, up: _Upstream) -> None:
        """Tell the upper platform a Playback/Download reached the end of its range (``MediaStatus``, NotifyType
        121), as a device does, before the BYE."""
        body = build("Notify", "MediaStatus", next(self._sn), up.channel, [("NotifyType", 121)],
                     charset=self.upper.charset)  # fmt: skip
        try:
            status = await self._message(body, limit_s=4)
            self.stats[f"media_status.{status}"] += 1
        except (TransactionTimeout, ConnectionError, OSError) as exc:
            self.stats["media_status.failed"] += 1
            log.info("MediaStatus for %s not delivered: %s", up.channel, exc)

    async def _end_upstream(self, call_id: str, reason: str, *, bye: bool = False) -> None:
        up = self.streams.pop(call_id, None)
        if up is None:
            return
        self.stats[f"upstream.closed.{reason}"] += 1
        if up.paused is not None:
            up.paused.cancel()
            up.paused = None
        if up.task is not None and up.task is not asyncio.current_task():
            up.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await up.task
        if up.subscription is not None:
            up.subscription.close()
        if up.sender is not None:
            await up.sender.stop()
        if bye and up.answered:  # our side ends the dialog (the channel went away)
            dialog = Dialog.as_callee(up.invite, up.invite.response(200), up.peer)
            with contextlib.suppress(TransactionTimeout, ConnectionError, OSError):
                await self.endpoint.request(dialog.request("BYE"), up.peer, limit_s=4)

    # --- subscriptions from the upper platform ------------------------------------------------
    def live(self, event: str) -> list[Subscription]:
        """The upper platform's unexpired subscriptions to ``event``."""
        now = asyncio.get_running_loop().time()
        return [s for s in self.subscriptions.values() if s.event == event and s.expires_at > now]

    def _on_subscribe(self, msg: SipMessage, peer: Peer) -> SipMessage | None:
        """A SUBSCRIBE (new, refresh in its dialog, or ``Expires: 0`` ending it): validated, answered at once."""
        event = event_of(msg.get("Event"))
        if not event:
            self.stats["subscribe.bad_event"] += 1
            return msg.response(489, "Bad Event")
        existing = self.subscriptions.get(msg.call_id)
        expires = msg.expires if msg.expires is not None else 3600
        if expires == 0:
            reply = msg.response(200, to_tag=existing.local_tag if existing else None)
            reply.add("Expires", "0")
            if existing is None:
                return reply
            self.stats[f"unsubscribed.{event}"] += 1
            sent = self.endpoint.send_response(reply, msg, peer)  # the 200 first, then the NOTIFY ending it
            self._drop_subscription(existing, "unsubscribed", notify=True, after=sent)
            return None
        try:
            body = parse_body(msg.body) if msg.body.strip() else None
            query = subscription_query(event, body, self.settings.sip_id, self.settings.timezone)
        except ManscdpError as exc:
            self.stats[f"subscribe.bad_body.{exc.reason}"] += 1
            return msg.response(400, f"Bad Body ({exc.reason})")
        except SubscribeError as exc:
            self.stats[f"subscribe.bad_body.{exc.reason}"] += 1
            return msg.response(400, f"Bad Body ({exc.detail})"[:120])
        refused = self._refuse_target(query)
        if refused:
            return msg.response(refused)
        local_tag = existing.local_tag if existing is not None else new_tag()
        reply = msg.response(200, to_tag=local_tag)
        reply.add("Expires", str(expires))
        reply.add("Contact", self.endpoint.contact(self.settings.sip_id, self.upper.transport))
        expires_at = asyncio.get_running_loop().time() + expires
        if existing is not None and existing.event == event:  # a refresh, maybe with new conditions
            existing.expires_at, existing.sn = expires_at, query.sn or existing.sn
            if body is not None:  # a refresh without a body keeps the conditions
                existing.target, existing.alarms, existing.interval_s = query.target, query.alarms, query.interval_s
            self.stats[f"refreshed.{event}"] += 1
            return reply
        stale = [s for s in self.subscriptions.values() if (s.event, s.target) == (event, query.target)]
        for other in [*stale, *([existing] if existing is not None else [])]:  # (another event in this dialog)
            self._drop_subscription(other, "replaced")  # the upper platform subscribed anew (e.g. restarted)
        contact = msg.get("Contact")
        uri = contact[contact.find("<") + 1 : contact.find(">")] if "<" in contact else contact.split(";")[0]
        sub = Subscription(
            event=event,
            call_id=msg.call_id,
            remote=msg.get("From"),
            local_tag=local_tag,
            peer=peer,
            uri=uri.strip() or f"sip:{self.upper.upper_id}@{peer.host}:{peer.port}",
            sn=query.sn,
            expires_at=expires_at,
            target=query.target,
            alarms=query.alarms,
            interval_s=query.interval_s,
            since=self.clock.now(),
        )
        self.subscriptions[msg.call_id] = sub
        self.stats[f"subscribed.{event}"] += 1
        log.info("upper platform %s subscribed to %s of %s for %d s", self.id, event, query.target, expires)
        if event == "MobilePosition":  # the 200 first, then the first report
            sent = self.endpoint.send_response(reply, msg, peer)
            sub.task = asyncio.ensure_future(self._report_positions(sub, sent))
            return None
        return reply

    def _refuse_target(self, query: SubscriptionQuery) -> int:
        """0 when the subscribed DeviceID is SharpEye's own or a published channel this platform may see; else the
        status to answer (403 filtered out, 404 unknown), counted."""
        if query.target == self.settings.sip_id or query.event == "Catalog":
            return 0
        if not self.upper.allows(query.target):
            self.stats[f"subscribe.not_allowed.{query.event}"] += 1
            return 403
        if not any(c.channel_id == query.target for c in self._catalog()):
            self.stats[f"subscribe.unknown_channel.{query.event}"] += 1
            return 404
        return 0

    def _drop_subscription(
        self, sub: Subscription, reason: str, *, notify: bool = False, after: asyncio.Future[None] | None = None
    ) -> None:
        """End a subscription; with ``notify`` a last NOTIFY says so (``Subscription-State: terminated``)."""
        if self.subscriptions.get(sub.call_id) is not sub:
            return
        del self.subscriptions[sub.call_id]
        self.stats[f"subscription_ended.{sub.event}.{reason}"] += 1
        log.info("upper platform %s: %s subscription of %s ended (%s)", self.id, sub.event, sub.target, reason)
        if sub.task is not None and sub.task is not asyncio.current_task():
            sub.task.cancel()
        if notify:

            async def last_notify() -> None:
                if after is not None:
                    with contextlib.suppress(Exception):
                        await after
                await self._send_notify(sub, b"", terminated=True)

            self._spawn(last_notify(), "gb28181-cascade-notify-end")

    async def _sweep_subscriptions(self) -> None:
        """End the subscriptions whose time has run out (a NOTIFY tells the upper platform)."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            for sub in [s for s in self.subscriptions.values() if s.expires_at <= loop.time()]:
                self._drop_subscription(sub, "expired", notify=True)

    async def _send_notify(self, sub: Subscription, body: bytes, *, terminated: bool = False) -> bool:
        """One NOTIFY in the subscription's dialog; whether it was answered 2xx. ``notify_failures`` unanswered in a
        row, or a 481 (the upper platform has forgotten the dialog), end the subscription."""
        async with sub.lock:
            if not terminated and self.subscriptions.get(sub.call_id) is not sub:
                return False  # ended meanwhile
            loop = asyncio.get_running_loop()
            msg = SipMessage(method="NOTIFY", uri=sub.uri)
            msg.add("From", f"<sip:{self.settings.sip_id}@{self.settings.sip_domain}>;tag={sub.local_tag}")
            msg.add("To", sub.remote)
            msg.add("Call-ID", sub.call_id)
            sub.cseq += 1
            msg.add("CSeq", f"{sub.cseq} NOTIFY")
            msg.add("Event", f"{sub.event};id={sub.sn}")
            left = max(0, int(sub.expires_at - loop.time()))
            msg.add("Subscription-State", "terminated;reason=timeout" if terminated else f"active;expires={left}")
            if body:
                msg.add("Content-Type", CONTENT_TYPE)
                msg.body = body
            try:
                limit = min(NOTIFY_LIMIT_S, 16 * self.settings.sip_t1_s)
                status = (await self.endpoint.request(msg, sub.peer, limit_s=limit)).status
            except (TransactionTimeout, ConnectionError, OSError):
                status = 0
            self.stats[f"notify.{sub.event}.{status or 'timeout'}"] += 1
            if 200 <= status < 300:
                sub.sent += 1
                sub.failures = 0
                return True
            self.notify_failures[sub.event] += 1
            self._failed(f"{sub.event} NOTIFY " + (f"answered {status}" if status else "unanswered"))
            sub.failures += 1
            if not terminated and (status == 481 or sub.failures >= self.upper.notify_failures):
                log.warning("upper platform %s left %d %s NOTIFYs unanswered (last: %s): subscription ended",
                            self.id, sub.failures, sub.event, status or "timeout")  # fmt: skip
                self._drop_subscription(sub, "gone" if status == 481 else "unanswered")
            return False

    async def _report_positions(self, sub: Subscription, answered: asyncio.Future[None]) -> None:
        """Every ``Interval`` seconds, a MobilePosition NOTIFY per subscribed channel whose position is known (the
        first once the SUBSCRIBE's 200 is on its way)."""
        with contextlib.suppress(Exception):
            await answered
        while self.subscriptions.get(sub.call_id) is sub:
            for body in await self._position_bodies(sub):
                if not await self._send_notify(sub, body) and self.subscriptions.get(sub.call_id) is not sub:
                    return
            await asyncio.sleep(sub.interval_s)

    async def _position_bodies(self, sub: Subscription) -> list[bytes]:
        channels = [c for c in self._catalog() if sub.target in (self.settings.sip_id, c.channel_id)]
        if len(channels) > POSITIONS_PER_ROUND:
            self.stats["positions.truncated"] += 1
            channels = channels[:POSITIONS_PER_ROUND]
        tracked: dict[str, Position] = {}
        if self._positions is not None and channels:
            codes = sorted({c.channel_id for c in channels} | {c.device_id for c in channels})
            try:
                tracked = await self._positions(codes)
            except Exception as exc:
                self.stats["positions.read_failed"] += 1
                log.info("positions for the upper platform not read: %s", exc)
        zone, now = self.settings.timezone, self.clock.now()
        bodies: list[bytes] = []
        for channel in channels:
            found = tracked.get(channel.channel_id) or tracked.get(channel.device_id)
            if found is not None:
                fields: list[Node] = [
                    ("Time", gb_time(found.ts, zone)),
                    ("Longitude", f"{found.longitude:.6f}"),
                    ("Latitude", f"{found.latitude:.6f}"),
                    ("Speed", f"{found.speed or 0:g}"),
                    ("Direction", f"{found.direction or 0:g}"),
                    ("Altitude", f"{found.altitude or 0:g}"),
                ]
                self.stats["positions.tracked"] += 1
            elif channel.longitude is not None and channel.latitude is not None:  # a fixed channel: where it stands
                fields = [("Time", gb_time(now, zone)), ("Longitude", f"{channel.longitude:.6f}"),
                          ("Latitude", f"{channel.latitude:.6f}"), ("Speed", 0), ("Direction", 0),
                          ("Altitude", 0)]  # fmt: skip
                self.stats["positions.catalog"] += 1
            else:
                continue
            bodies.append(build("Notify", "MobilePosition", next(self._sn), channel.channel_id, fields,
                                charset=self.upper.charset))  # fmt: skip
        return bodies

    async def _watch_catalog(self) -> None:
        """Send NOTIFYs of channel changes to the live Catalog subscriptions."""
        before = {c.channel_id: c for c in self._catalog()}
        while True:
            await asyncio.sleep(self.upper.catalog_watch_s)
            now = {c.channel_id: c for c in self._catalog()}
            changes: list[tuple[Channel, str]] = [(c, "ADD") for cid, c in now.items() if cid not in before]
            changes += [(c, "DEL") for cid, c in before.items() if cid not in now]
            for cid, c in now.items():
                old = before.get(cid)
                if old is None or old == c:
                    continue
                changes.append((c, ("ON" if c.online else "OFF") if old.online != c.online else "UPDATE"))
            before = now
            if not changes:
                continue
            for sub in self.live("Catalog"):
                await self._notify(sub, changes)

    async def _notify(self, sub: Subscription, changes: list[tuple[Channel, str]]) -> bool:
        items = [[*self._item(channel), ("Event", event)] for channel, event in changes]
        body = build(
            "Notify",
            "Catalog",
            next(self._sn),
            self.settings.sip_id,
            [("SumNum", len(items))],
            charset=self.upper.charset,
            device_list=("DeviceList", items),
        )
        return await self._send_notify(sub, body)

    async def _answer(self, query: Manscdp) -> None:
        cmd = query.cmd_type.lower()
        charset = self.upper.charset
        me = self.settings.sip_id
        if cmd == "catalog":
            channels = list(self._catalog())
            size = self.upper.catalog_page_size
            pages = [channels[i : i + size] for i in range(0, len(channels), size)] or [[]]
            for page in pages:
                body = build(
                    "Response",
                    "Catalog",
                    query.sn,
                    query.device_id,
                    [("SumNum", len(channels))],
                    charset=charset,
                    device_list=("DeviceList", [self._item(c) for c in page]),
                )
                if await self._message(body) != 200:
                    self.stats["catalog_page_refused"] += 1
                    return
            self.stats["catalog_answers"] += 1
            return
        if cmd == "deviceinfo":
            fields: list[Node] = [
                ("DeviceName", self.name),
                ("Result", "OK"),
                ("Manufacturer", "SharpEye"),
                ("Model", "SharpEye hub"),
                ("Firmware", "0.1.0"),
                ("Channel", len(self._catalog())),
            ]
        else:
            now = gb_time(self.clock.now(), self.settings.timezone)
            fields = [("Result", "OK"), ("Online", "ONLINE"), ("Status", "OK"), ("DeviceTime", now)]
        await self._message(build("Response", query.cmd_type, query.sn, me, fields, charset=charset))

    def _item(self, channel: Channel) -> list[Node]:
        item: list[Node] = [
            ("DeviceID", channel.channel_id),
            ("Name", channel.name),
            ("Manufacturer", channel.manufacturer or "SharpEye"),
            ("Model", channel.model or "Camera"),
            ("Owner", "Owner"),
            ("CivilCode", channel.civil_code or channel.channel_id[:6]),
            ("Address", channel.address or "Address"),
            ("Parental", 0),
            ("ParentID", self.settings.sip_id),
            ("SafetyWay", 0),
            ("RegisterWay", 1),
            ("Secrecy", 0),
            ("Status", "ON" if channel.online else "OFF"),
        ]
        if channel.longitude is not None and channel.latitude is not None:
            item += [("Longitude", f"{channel.longitude:.6f}"), ("Latitude", f"{channel.latitude:.6f}")]
        return item

    # --- tasks ------------------------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        self._background.spawn(coro, name)


__all__ = ["CascadeCollector", "GbCascade", "gb_date", "gb_time"]


class CascadeCollector(Collector):
    """Per upper platform, read at scrape time: ``sharpeye_gb_cascade_registered{platform}`` (1 while registered),
    ``sharpeye_gb_cascade_streams{platform}`` (channels it watches now) and
    ``sharpeye_gb_cascade_events_total{platform,event}`` (registrations, keepalives, queries, alarms forwarded and
    filtered, INVITEs and their outcomes...), ``sharpeye_gb_cascade_subscriptions{platform,event}`` (its live
    Catalog, Alarm and MobilePosition subscriptions) and ``sharpeye_gb_cascade_notify_failures_total{platform,event}``
    (NOTIFYs it left unanswered or refused)."""

    def __init__(self, cascades: Callable[[], Sequence[GbCascade]]) -> None:
        self._cascades = cascades

    def collect(self) -> Iterator[Any]:
        registered = GaugeMetricFamily(
            "sharpeye_gb_cascade_registered", "1 while registered to the upper platform", labels=["platform"]
        )
        streams = GaugeMetricFamily(
            "sharpeye_gb_cascade_streams", "Channels the upper platform watches now", labels=["platform"]
        )
        events = CounterMetricFamily(
            "sharpeye_gb_cascade_events", "Events of the link to each upper platform", labels=["platform", "event"]
        )
        subscriptions = GaugeMetricFamily(
            "sharpeye_gb_cascade_subscriptions", "The upper platform's live subscriptions", labels=["platform", "event"]
        )
        failures = CounterMetricFamily(
            "sharpeye_gb_cascade_notify_failures",
            "NOTIFYs the upper platform left unanswered or refused",
            labels=["platform", "event"],
        )
        for cascade in self._cascades():
            registered.add_metric([cascade.id], 1 if cascade.registered.is_set() else 0)
            streams.add_metric([cascade.id], len(cascade.streams))
            for key, value in sorted(cascade.stats.items()):
                events.add_metric([cascade.id, key], value)
            live = Counter(s.event for s in cascade.subscriptions.values())
            for event in EVENT_NAMES:
                subscriptions.add_metric([cascade.id, event], live[event])
                failures.add_metric([cascade.id, event], cascade.notify_failures[event])
        yield registered
        yield streams
        yield events
        yield subscriptions
        yield failures


def alarm_forwarder(cascades: GbCascade | Sequence[GbCascade], store: AlarmStore) -> BatchHandler:
    """A handler of alarm notifications (``alarms.notification.consume``): raised alarms go to each upper platform
    (whose channel filter lets them through) as GB/T 28181 alarm notifications."""
    targets = [cascades] if isinstance(cascades, GbCascade) else list(cascades)

    async def forward(events: list[Event]) -> None:
        for event in events:
            if event.get("type") == "raised":
                alarm = await store.get(event["alarm"])
                if alarm is not None:
                    for cascade in targets:
                        cascade.forward_alarm(alarm)

    return forward
