"""GB/T 28181 device simulator: a fleet of IPCs and NVRs sharing one SIP socket in one process.

Each device registers with Digest, keeps alive, answers Catalog (in pages, Chinese names in GB2312),
DeviceInfo and DeviceStatus queries, sends alarms, and can be told to misbehave: skip keepalives,
send malformed XML. Requests from the platform are routed to a device by the Request-URI user.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import random
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sharpeye.ingest.credential import device_password
from sharpeye.ingest.gb28181.manscdp import CONTENT_TYPE, Manscdp, ManscdpError, Node, build, parse_body
from sharpeye.ingest.transport.rtp import RtpMode, RtpSender
from sharpeye.ingest.transport.sip.background import Background
from sharpeye.ingest.transport.sip.digest import Challenge
from sharpeye.ingest.transport.sip.endpoint import Peer, SipEndpoint, TransactionTimeout
from sharpeye.ingest.transport.sip.message import SipMessage, new_call_id, new_tag
from sharpeye.ingest.transport.sip.sdp import MediaDescription, SdpError, parse_sdp
from sharpeye.simulators.gb28181.control import ControlState
from sharpeye.simulators.gb28181.media import MediaFaults, encode_clip, load_clip, stream_clip
from sharpeye.simulators.gb28181.notify import Route, catalog_change, device_time, mobile_position, sync_offset
from sharpeye.simulators.gb28181.playback import MansrtspError, PlaybackControl, apply_mansrtsp, stream_history
from sharpeye.simulators.gb28181.record import RecordPlan, record_pages

log = logging.getLogger(__name__)

PLACES = ("东门", "西门", "南广场", "北侧围墙", "村委会", "停车场", "学校路口", "菜市场", "河堤", "卫生院")


def code(civil: str, type_code: int, serial: int) -> str:
    """A 20-digit code: 8-digit centre, industry 00, 3-digit type, 7-digit serial."""
    return f"{civil[:8]:0<8}00{type_code:03d}{serial:07d}"


@dataclass(slots=True)
class SimDevice:
    """One simulated device and its behaviour switches."""

    id: str
    password: str
    kind: Literal["ipc", "nvr"] = "ipc"
    channel_count: int = 1
    name: str = ""
    keepalive_s: float = 60.0
    expires: int = 3600
    charset: str = "GB2312"
    catalog_page: int = 2
    catalog_overcount: int = 0  # fault: SumNum larger than the items sent
    skip_keepalives: bool = False
    malformed_keepalive: bool = False
    faulty_channels: list[str] = field(default_factory=list)  # listed in each keepalive's <Info> as faulty
    registered: bool = False
    register_status: int = 0
    alarm_acks: list[int] = field(default_factory=list)
    channels: list[tuple[str, str]] = field(default_factory=list)
    codecs: dict[str, str] = field(default_factory=dict)  # channel id -> "h264" (default) or "hevc"
    scenario: str = "intrusion"  # camera simulator scenario streamed on INVITE
    media_size: tuple[int, int] = (320, 180)
    media_seconds: float = 4.0  # length of the looped clip
    media_file: str | None = None  # stream this recording (H.264/H.265 in MPEG-TS) instead of a rendered scene
    faults: MediaFaults = field(default_factory=MediaFaults)
    answer_device_info: bool = True  # fault: never answer DeviceInfo
    refuse_invite: int = 0  # fault: answer INVITE with this status
    answer_sdp: bytes | None = None  # fault: answer INVITE with this body instead of a real SDP
    answer_control: bool = True  # fault: never answer DeviceControl (nor PresetQuery)
    control: ControlState = field(default_factory=ControlState)  # PTZ heads, presets, guard, recording
    refuse_subscribe: dict[str, int] = field(default_factory=dict)  # fault: event -> status to refuse it with
    subscriptions: dict[str, float] = field(default_factory=dict)  # event -> until (loop time); for tests
    subscribe_count: Counter[str] = field(default_factory=Counter)  # SUBSCRIBEs received per event
    mobile: bool = False  # reports MobilePosition (a patrol car, a body camera); others refuse it with 489
    route: Route = field(default_factory=Route)  # where MobilePosition NOTIFYs put it
    clock_offset_s: float = 0.0  # its clock's error (DeviceTime in DeviceStatus); set by the Date of REGISTER's 200
    records: RecordPlan = field(default_factory=RecordPlan)  # recording index and RecordInfo faults (record.py)

    def __post_init__(self) -> None:
        if not self.name:
            self.name = f"{PLACES[int(self.id[-3:]) % len(PLACES)]}{'录像机' if self.kind == 'nvr' else '摄像机'}"
        if not self.channels:
            if self.kind == "ipc":
                self.channels = [(self.id[:10] + "131" + self.id[13:], self.name)]
            else:
                base = int(self.id[13:]) * 1000
                self.channels = [
                    (code(self.id[:8], 131, (base + i) % 10_000_000), f"{PLACES[i % len(PLACES)]}通道{i + 1:02d}")
                    for i in range(self.channel_count)
                ]


class DeviceFleet:
    """Many simulated devices behind one SIP endpoint, registering to one platform."""

    def __init__(
        self,
        devices: list[SimDevice],
        *,
        platform_id: str,
        platform_host: str = "127.0.0.1",
        platform_port: int = 5060,
        host: str = "127.0.0.1",
        port: int = 0,
        transport: Literal["udp", "tcp"] = "udp",
        t1: float = 0.5,
        concurrency: int = 64,
    ) -> None:
        self.devices = {d.id: d for d in devices}
        self._channel_owner = {cid: d for d in devices for cid, _ in d.channels}
        self.platform_id = platform_id
        self.domain = platform_id[:10]
        self._peer = Peer(transport, platform_host, platform_port)
        self.endpoint = SipEndpoint(self._on_request, host=host, port=port, tcp=transport == "tcp", t1=t1)
        self._transport = transport
        self._cseq = itertools.count(1)
        self._sn = itertools.count(1)
        self._limit = asyncio.Semaphore(concurrency)
        self.stats: Counter[str] = Counter()
        self._background = Background(self.stats)
        self.queries: list[Manscdp] = []
        self.invites: list[MediaDescription] = []  # offers received, for tests
        self._preparing: dict[str, tuple[SipMessage, Peer]] = {}
        self.streams: dict[str, tuple[RtpSender, asyncio.Task[None] | None]] = {}  # by Call-ID
        self._clips: dict[str, tuple[Any, MediaFaults]] = {}
        self.key_frame_requests: Counter[str] = Counter()  # IFameCmd received, by channel
        self._key_wanted: set[str] = set()
        self._channel_of: dict[str, str] = {}  # streams' channels, by Call-ID
        self.controls: dict[str, PlaybackControl] = {}  # Playback/Download sessions by Call-ID (playback.py)

    # --- life cycle -------------------------------------------------------------------------
    async def start(self) -> None:
        await self.endpoint.start()
        for device in self.devices.values():
            device.registered = False  # a fleet starting is registered nowhere yet (a device may have been reused)
            self._spawn(self._life(device))

    async def stop(self, *, unregister: bool = False) -> None:
        for call_id in list(self.streams):
            await self._end_stream(call_id)
        await self._background.stop()
        if unregister:
            await asyncio.gather(
                *(self.register(d, expires=0) for d in self.devices.values() if d.registered), return_exceptions=True
            )
        await self.endpoint.stop()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self._background.spawn(coro, "gb28181-sim")

    @property
    def registered(self) -> int:
        return sum(1 for d in self.devices.values() if d.registered)

    # --- device behaviour -------------------------------------------------------------------
    def _request(self, device: SimDevice, method: str, uri: str, *, call_id: str = "", tag: str = "") -> SipMessage:
        msg = SipMessage(method=method, uri=uri)
        msg.add("From", f"<sip:{device.id}@{self.domain}>;tag={tag or new_tag()}")
        to = device.id if method == "REGISTER" else self.platform_id
        msg.add("To", f"<sip:{to}@{self.domain}>")
        msg.add("Call-ID", call_id or new_call_id(self.endpoint.host))
        msg.add("CSeq", f"{next(self._cseq)} {method}")
        return msg

    async def register(self, device: SimDevice, *, expires: int | None = None, password: str | None = None) -> int:
        """REGISTER with the digest round trip; returns the final status."""
        expires = device.expires if expires is None else expires
        uri = f"sip:{self.platform_id}@{self.domain}"
        call_id, tag = new_call_id(self.endpoint.host), new_tag()
        authorization = ""
        status = 0
        for _ in range(3):
            msg = self._request(device, "REGISTER", uri, call_id=call_id, tag=tag)
            msg.add("Contact", self.endpoint.contact(device.id, self._transport))
            msg.add("Expires", str(expires))
            if authorization:
                msg.add("Authorization", authorization)
            async with self._limit:
                response = await self.endpoint.request(msg, self._peer)
            status = response.status
            if status == 401:
                challenge = Challenge.parse(response.get("WWW-Authenticate"))
                authorization = challenge.authorization(
                    username=device.id, password=password or device.password, method="REGISTER", uri=uri
                )
                continue
            break
        device.register_status = status
        if status == 200 and response.get("Date"):
            device.clock_offset_s = sync_offset(response.get("Date"))
        device.registered = status == 200 and expires > 0
        self.stats[f"register.{status}"] += 1
        return status

    async def message(self, device: SimDevice, body: bytes) -> int:
        msg = self._request(device, "MESSAGE", f"sip:{self.platform_id}@{self.domain}")
        msg.add("Content-Type", CONTENT_TYPE)
        msg.body = body
        async with self._limit:
            response = await self.endpoint.request(msg, self._peer)
        return response.status

    async def keepalive(self, device: SimDevice) -> int:
        if device.malformed_keepalive:
            body = b'<?xml version="1.0"?><Notify><CmdType>Keepalive</CmdType><SN>x</SN><DeviceID>' + device.id.encode()
        else:
            fields: list[Node] = [("Status", "OK")]
            if device.faulty_channels:
                fields.append(("Info", [("DeviceID", cid) for cid in device.faulty_channels]))
            body = build("Notify", "Keepalive", next(self._sn), device.id, fields, charset=device.charset)
        status = await self.message(device, body)
        self.stats[f"keepalive.{status}"] += 1
        return status

    async def alarm(
        self,
        device_id: str,
        *,
        priority: int = 1,
        method: int = 5,
        alarm_type: int | None = 6,
        description: str = "区域入侵",
        channel: str | None = None,
        position: tuple[float, float] | None = None,
    ) -> int:
        """Send an alarm notification from a device (or one of its channels)."""
        device = self.devices[device_id]
        now = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%dT%H:%M:%S")
        body: list[Node] = [
            ("AlarmPriority", priority),
            ("AlarmMethod", method),
            ("AlarmTime", now),
            ("AlarmDescription", description),
        ]
        if position is not None:
            body += [("Longitude", position[0]), ("Latitude", position[1])]
        if alarm_type is not None:
            body.append(("Info", [("AlarmType", alarm_type)]))
        payload = build("Notify", "Alarm", next(self._sn), channel or device.id, body, charset=device.charset)
        status = await self.message(device, payload)
        self.stats[f"alarm.{status}"] += 1
        return status

    async def _life(self, device: SimDevice) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(random.uniform(0, min(1.0, device.keepalive_s)))
        while True:
            try:
                if not device.registered:
                    status = await self.register(device)
                    if status != 200:
                        await asyncio.sleep(min(30.0, device.keepalive_s))
                        continue
                    registered_at = loop.time()
                await asyncio.sleep(device.keepalive_s * random.uniform(0.95, 1.0))
                if loop.time() - registered_at > device.expires * 0.75:
                    device.registered = False
                    continue
                if device.skip_keepalives:
                    self.stats["keepalive.skipped"] += 1
                    continue
                status = await self.keepalive(device)
                if status == 403:  # the platform forgot us: register again
                    device.registered = False
            except TransactionTimeout:
                self.stats["timeouts"] += 1
                device.registered = False
                await asyncio.sleep(1.0)

    # --- requests from the platform ---------------------------------------------------------
    def _on_request(self, msg: SipMessage, peer: Peer) -> SipMessage | None:
        user = msg.uri.split("@")[0].split(":")[-1]
        device = self.devices.get(user) or self.devices.get(msg.to_user) or self._channel_owner.get(user)
        if device is None:
            return msg.response(404)
        if msg.method in ("INVITE", "ACK", "BYE", "CANCEL"):
            return self._on_media_request(device, msg, peer)
        if msg.method == "SUBSCRIBE":
            return self._on_subscribe(device, msg)
        if msg.method == "INFO":  # MANSRTSP: pause, resume, speed, seek of a Playback
            control = self.controls.get(msg.call_id)
            if control is None:
                return msg.response(481)
            try:
                apply_mansrtsp(control, msg.body)
            except MansrtspError as exc:
                self.stats["info.bad"] += 1
                return msg.response(400, f"Bad MANSRTSP ({exc})")
            self.stats["info"] += 1
            return msg.response(200)
        if msg.method != "MESSAGE":
            return msg.response(501)
        try:
            body = parse_body(msg.body)
        except ManscdpError:
            self.stats["bad_body"] += 1
            return msg.response(400)
        if body.root == "response" and body.cmd_type.lower() == "alarm":
            device.alarm_acks.append(body.sn)
            self.stats["alarm_acks"] += 1
        elif body.root == "query":
            if not device.answer_control and body.cmd_type.lower() == "presetquery":
                return None
            self.queries.append(body)
            self._spawn(self._answer(device, body))
        elif body.root == "control" and body.fields.get("ifamecmd", "").lower() == "send":
            self.key_frame_requests[body.device_id] += 1  # forced key frame: the next frame sent is one
            self._key_wanted.add(body.device_id)
        elif body.root == "control" and body.cmd_type.lower() == "devicecontrol":
            if not device.answer_control:
                return None
            status, result = device.control.handle(body)
            if result is not None:
                answer = build("Response", "DeviceControl", body.sn, body.device_id, [("Result", result)])
                self._spawn(self._send_quietly(device, answer))
            return msg.response(status)
        return msg.response(200)

    def _on_subscribe(self, device: SimDevice, msg: SipMessage) -> SipMessage:
        event = msg.get("Event").split(";")[0].strip()
        refused = device.refuse_subscribe.get(event) or (489 if event == "MobilePosition" and not device.mobile else 0)
        if refused:
            self.stats["subscribe.refused"] += 1
            return msg.response(refused, "Bad Event" if refused == 489 else "")
        self.stats["subscribed"] += 1
        expires = int(msg.get("Expires") or "3600")
        loop = asyncio.get_running_loop()
        fresh = device.subscriptions.get(event, 0.0) < loop.time()
        device.subscriptions[event] = loop.time() + expires
        device.subscribe_count[event] += 1
        if event == "MobilePosition" and fresh and expires > 0:
            interval = 5.0
            with contextlib.suppress(ManscdpError, ValueError):
                interval = float(parse_body(msg.body).fields.get("interval", "5") or 5)
            self._spawn(self._report_positions(device, max(0.2, interval)))
        reply = msg.response(200)
        reply.add("Expires", str(expires))
        return reply

    async def _report_positions(self, device: SimDevice, interval: float) -> None:
        """MobilePosition NOTIFYs every ``interval`` while the subscription lasts."""
        loop = asyncio.get_running_loop()
        while device.subscriptions.get("MobilePosition", 0.0) > loop.time():
            lon, lat, speed, direction = device.route.step()
            body = mobile_position(next(self._sn), device.id, lon, lat, speed, direction, charset=device.charset)
            with contextlib.suppress(TransactionTimeout):
                await self.notify(device, body)
            await asyncio.sleep(interval)

    async def notify(self, device: SimDevice, body: bytes) -> int:
        """A NOTIFY to the platform (what a subscription brings)."""
        msg = self._request(device, "NOTIFY", f"sip:{self.platform_id}@{self.domain}")
        msg.add("Event", parse_body(body).cmd_type)
        msg.add("Subscription-State", "active")
        msg.add("Content-Type", CONTENT_TYPE)
        msg.body = body
        async with self._limit:
            response = await self.endpoint.request(msg, self._peer)
        self.stats[f"notify.{response.status}"] += 1
        return response.status

    async def catalog_notify(self, device_id: str, items: list[tuple[str, str, str]]) -> int:
        """Tell the platform of catalog changes: (channel, name, ADD/DEL/ON/OFF/UPDATE); the device's own channel
        list follows (ADD appends, DEL removes)."""
        device = self.devices[device_id]
        for cid, name, event in items:
            if event == "ADD" and cid not in dict(device.channels):
                device.channels.append((cid, name))
                self._channel_owner[cid] = device
            elif event == "DEL":
                device.channels = [c for c in device.channels if c[0] != cid]
        return await self.notify(device, catalog_change(next(self._sn), device.id, items, charset=device.charset))

    async def _send_quietly(self, device: SimDevice, body: bytes) -> None:
        with contextlib.suppress(TransactionTimeout):
            await self.message(device, body)

    # --- media (INVITE / ACK / BYE / CANCEL) ------------------------------------------------------
    def _on_media_request(self, device: SimDevice, msg: SipMessage, peer: Peer) -> SipMessage | None:
        call_id = msg.call_id
        if msg.method == "INVITE":
            if call_id in self._preparing or call_id in self.streams:
                return msg.response(100)  # a retransmission while the answer is being prepared
            channel = msg.uri.split("@")[0].split(":")[-1]
            if device.refuse_invite:
                self.stats[f"invite.refused_{device.refuse_invite}"] += 1
                return msg.response(device.refuse_invite)
            try:
                offer = parse_sdp(msg.body)
            except SdpError as exc:
                self.stats[f"invite.bad_sdp.{exc.reason}"] += 1
                return msg.response(400, f"Bad SDP ({exc.reason})")
            if 96 not in offer.payloads or channel not in {cid for cid, _ in device.channels} | {device.id}:
                self.stats["invite.not_acceptable"] += 1
                return msg.response(488 if 96 not in offer.payloads else 404)
            self.invites.append(offer)
            self._preparing[call_id] = (msg, peer)
            self._spawn(self._prepare(device, channel, offer, msg, peer))
            return msg.response(100)
        if msg.method == "CANCEL":
            pending = self._preparing.pop(call_id, None)
            if pending is None:
                return msg.response(481)
            self.stats["invite.cancelled"] += 1
            invite, invite_peer = pending
            self.endpoint.send_response(invite.response(487), invite, invite_peer)
            return msg.response(200)
        if msg.method == "ACK":
            stream = self.streams.get(call_id)
            if stream is not None and stream[1] is None:
                self.stats["acks"] += 1
                sender = stream[0]
                device_clip = self._clips.get(call_id)
                control = self.controls.get(call_id)
                if device_clip is not None and control is not None:
                    history = self._stream_history(device, sender, device_clip[0], control)
                    self.streams[call_id] = (sender, asyncio.ensure_future(history))
                elif device_clip is not None:
                    want_key = functools.partial(self._take_key_request, call_id)
                    task = asyncio.ensure_future(self._stream(sender, *device_clip, want_key=want_key))
                    self.streams[call_id] = (sender, task)
            return None
        # BYE
        if call_id not in self.streams:
            return msg.response(481)
        self.stats["byes"] += 1
        self._spawn(self._end_stream(call_id))
        return msg.response(200)

    async def _prepare(
        self, device: SimDevice, channel: str, offer: MediaDescription, invite: SipMessage, peer: Peer
    ) -> None:
        codec = device.codecs.get(channel, "h264")
        width, height = device.media_size
        if device.media_file is not None:
            clip = await asyncio.to_thread(load_clip, device.media_file)
        else:
            clip = await asyncio.to_thread(encode_clip, device.scenario, codec, width, height, device.media_seconds)
        if offer.transport == "udp":
            mode: RtpMode = "udp"
        else:  # the platform listens (setup:passive) and we connect, or the other way round
            mode = "tcp-passive" if offer.setup == "active" else "tcp-active"
        sender = RtpSender(mode=mode, ssrc=offer.ssrc_value, peer=(offer.ip, offer.port), host=self.endpoint.host)
        if mode != "tcp-active":
            await sender.start()
        if self._preparing.pop(invite.call_id, None) is None:  # cancelled meanwhile
            await sender.stop()
            return
        answer = MediaDescription(
            owner=channel,
            ip=self.endpoint.host,
            port=sender.port if mode != "tcp-active" else 9,  # RFC 4145: the connecting side writes the discard port
            session=offer.session,
            transport=offer.transport,
            setup=None if mode == "udp" else ("active" if mode == "tcp-active" else "passive"),
            direction="sendonly",
            payloads={96: "PS"},
            ssrc=offer.ssrc,
            media_format=f"v/{'2' if codec == 'h264' else '5'}/////a///",
        )
        reply = invite.response(200)
        reply.add("Contact", self.endpoint.contact(channel, peer.transport))
        reply.add("Content-Type", "application/sdp")
        reply.body = answer.to_bytes() if device.answer_sdp is None else device.answer_sdp
        self.streams[invite.call_id] = (sender, None)
        self._clips[invite.call_id] = (clip, device.faults)
        self._channel_of[invite.call_id] = channel
        if offer.session in ("Playback", "Download"):
            speed = float(offer.download_speed or 1) if offer.session == "Download" else 1.0
            self.controls[invite.call_id] = PlaybackControl(offer.session, offer.time[0], offer.time[1], scale=speed)
        self.stats["invite.answered"] += 1
        self.endpoint.send_response(reply, invite, peer)

    def _take_key_request(self, call_id: str) -> bool:
        channel = self._channel_of.get(call_id, "")
        if channel in self._key_wanted:
            self._key_wanted.discard(channel)
            return True
        return False

    async def _stream(
        self, sender: RtpSender, clip: Any, faults: MediaFaults, want_key: Callable[[], bool] | None = None
    ) -> None:
        try:
            if sender.mode == "tcp-active":
                await sender.start()
            elif sender.mode == "tcp-passive":
                await asyncio.wait_for(sender.connected.wait(), 10)
            await stream_clip(sender, clip, faults, want_key=want_key)
        except (OSError, TimeoutError) as exc:
            self.stats["stream.failed"] += 1
            log.info("simulated stream failed: %s", exc)

    async def _stream_history(self, device: SimDevice, sender: RtpSender, clip: Any, control: PlaybackControl) -> None:
        async def ended() -> None:  # MediaStatus 121: the recording's end was sent
            self.stats["playback.ended"] += 1
            with contextlib.suppress(TransactionTimeout):
                await self.message(device, build("Notify", "MediaStatus", next(self._sn), device.id,
                                                 [("NotifyType", 121)]))  # fmt: skip

        try:
            if sender.mode == "tcp-active":
                await sender.start()
            elif sender.mode == "tcp-passive":
                await asyncio.wait_for(sender.connected.wait(), 10)
            await stream_history(sender, clip, control, ended)
        except (OSError, TimeoutError) as exc:
            self.stats["stream.failed"] += 1
            log.info("simulated playback failed: %s", exc)

    async def _end_stream(self, call_id: str) -> None:
        sender, task = self.streams.pop(call_id, (None, None))
        self._clips.pop(call_id, None)
        self._channel_of.pop(call_id, None)
        self.controls.pop(call_id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if sender is not None:
            await sender.stop()

    async def _answer(self, device: SimDevice, query: Manscdp) -> None:
        cmd = query.cmd_type.lower()
        with contextlib.suppress(TransactionTimeout):
            if cmd == "catalog":
                total = len(device.channels)
                for start in range(0, max(total, 1), device.catalog_page):
                    page = device.channels[start : start + device.catalog_page]
                    items: list[list[Node]] = [
                        [
                            ("DeviceID", cid),
                            ("Name", name),
                            ("Manufacturer", "模拟厂商"),
                            ("Model", "SIM-IPC"),
                            ("Owner", "Owner"),
                            ("CivilCode", cid[:6]),
                            ("Address", name),
                            ("Parental", 0),
                            ("ParentID", device.id),
                            ("SafetyWay", 0),
                            ("RegisterWay", 1),
                            ("Secrecy", 0),
                            ("Status", "ON"),
                        ]
                        for cid, name in page
                    ]
                    body = build(
                        "Response",
                        "Catalog",
                        query.sn,
                        device.id,
                        [("SumNum", total + device.catalog_overcount)],
                        charset=device.charset,
                        device_list=("DeviceList", items),
                    )
                    await self.message(device, body)
            elif cmd == "deviceinfo" and device.answer_device_info:
                fields: list[Node] = [
                    ("DeviceName", device.name),
                    ("Result", "OK"),
                    ("Manufacturer", "模拟厂商"),
                    ("Model", "SIM-NVR" if device.kind == "nvr" else "SIM-IPC"),
                    ("Firmware", "V1.0"),
                    ("Channel", len(device.channels)),
                ]
                await self.message(device, build("Response", "DeviceInfo", query.sn, device.id, fields))
            elif cmd == "presetquery":
                presets = device.control.preset_items(query.device_id)
                rows: list[list[Node]] = [[("PresetID", n), ("PresetName", name)] for n, name in presets]
                body = build("Response", "PresetQuery", query.sn, query.device_id, [("SumNum", len(rows))],
                             charset=device.charset, device_list=("PresetList", rows))  # fmt: skip
                await self.message(device, body)
            elif cmd == "recordinfo":
                names = dict(device.channels)
                bodies = record_pages(device.records, device.id, names.get(query.device_id, device.name), query,
                                      device.charset)  # fmt: skip
                for body in bodies or []:
                    await self.message(device, body)
            elif cmd == "devicestatus":
                fields = [("Result", "OK"), ("Online", "ONLINE"), ("Status", "OK"), ("Encode", "ON"), ("Record", "OFF"),
                          ("DeviceTime", device_time(device.clock_offset_s))]  # fmt: skip
                await self.message(device, build("Response", "DeviceStatus", query.sn, device.id, fields))


def fleet_devices(
    count: int,
    *,
    civil: str = "34020000",
    password: str = "12345678",
    secret: str | None = None,
    nvr_every: int = 10,
    nvr_channels: int = 16,
    keepalive_s: float = 60.0,
    expires: int = 3600,
) -> list[SimDevice]:
    """``count`` devices: every ``nvr_every``-th an NVR with ``nvr_channels`` channels, the rest IPCs. Each uses
    ``password``, or given the site's device ``secret``, its own password derived from it (as the hub expects of
    devices configured without a password of their own)."""
    out: list[SimDevice] = []
    for i in range(1, count + 1):
        nvr = nvr_every > 0 and i % nvr_every == 0
        device_id = code(civil, 118 if nvr else 132, i)
        out.append(
            SimDevice(
                id=device_id,
                password=device_password(secret, device_id, "sip") if secret else password,
                kind="nvr" if nvr else "ipc",
                channel_count=nvr_channels if nvr else 1,
                keepalive_s=keepalive_s,
                expires=expires,
            )
        )
    return out
