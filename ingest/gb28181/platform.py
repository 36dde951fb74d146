"""SharpEye as a GB/T 28181 platform: devices register, keep alive, report catalogs and alarms.

Transport is ``ingest.sip``; this module is the GB/T 28181 logic only. Every request is answered at
once (MESSAGE with 200 OK); the real answers to SharpEye's queries are separate ``Response`` MESSAGEs,
matched by (device id, CmdType, SN), never by Call-ID, and catalog pages are merged until ``SumNum``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sharpeye.config.gb28181 import GbSettings
from sharpeye.ingest.gb28181.config import GbDeviceConfig
from sharpeye.ingest.gb28181.driver import readings_of
from sharpeye.ingest.gb28181.manscdp import CONTENT_TYPE, Manscdp, ManscdpError, Node, build, info_ids, parse_body
from sharpeye.ingest.gb28181.media import MediaSession, SessionKey
from sharpeye.ingest.gb28181.registrations import RegistrationStore
from sharpeye.ingest.reading import DecodeError, Reading
from sharpeye.ingest.transport.rtp import PortRange, RtpError, RtpMode, RtpReceiver
from sharpeye.ingest.transport.sip.background import Background
from sharpeye.ingest.transport.sip.dialog import Dialog, cancel_of
from sharpeye.ingest.transport.sip.digest import DigestServer
from sharpeye.ingest.transport.sip.endpoint import GarbageHandler, Peer, SipEndpoint, TransactionTimeout
from sharpeye.ingest.transport.sip.message import SipMessage, new_call_id, new_tag, uri_of
from sharpeye.ingest.transport.sip.sdp import MediaDescription, SdpError, parse_sdp, ssrc_for

from sharpeye.clock import Clock, SystemClock

log = logging.getLogger(__name__)

Emit = Callable[[list[Reading]], None]
Reject = Callable[[str, str, bytes], None]


@dataclass(frozen=True, slots=True)
class Channel:
    """One catalog item of a device: a camera (or alarm input...) that becomes a SharpEye camera."""

    device_id: str
    channel_id: str
    name: str
    manufacturer: str = ""
    model: str = ""
    status: str = "ON"
    parent_id: str = ""
    civil_code: str = ""
    address: str = ""
    longitude: float | None = None
    latitude: float | None = None
    media_url: str | None = None

    @property
    def online(self) -> bool:
        return self.status.upper() in ("ON", "ONLINE", "OK")


@dataclass(slots=True)
class DeviceState:
    config: GbDeviceConfig
    registered: bool = False
    online: bool = False
    peer: Peer | None = None
    contact: str = ""
    expires_at: datetime | None = None
    registered_at: datetime | None = None
    last_keepalive: datetime | None = None
    last_seen: datetime | None = None
    catalog_at: datetime | None = None
    catalog_due: datetime | None = None
    catalog_complete: bool = False
    catalog_busy: bool = False
    catalog_again: bool = False
    info: dict[str, str] = field(default_factory=dict)
    channels: dict[str, Channel] = field(default_factory=dict)
    faulty: set[str] = field(default_factory=set)  # channels its last keepalive listed as faulty (set OFF by it)

    def snapshot(self) -> dict[str, Any]:
        return {
            "id": self.config.id,
            "name": self.config.name,
            "registered": self.registered,
            "online": self.online,
            "transport": self.peer.transport if self.peer else None,
            "address": f"{self.peer.host}:{self.peer.port}" if self.peer else None,
            "registered_at": self.registered_at,
            "expires_at": self.expires_at,
            "last_keepalive": self.last_keepalive,
            "channels": len(self.channels),
            "manufacturer": self.info.get("manufacturer", ""),
            "model": self.info.get("model", ""),
            "firmware": self.info.get("firmware", ""),
        }


class _Query:
    """An outstanding query: the future and, for catalogs, the pages merged so far."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.future: asyncio.Future[list[Manscdp]] = loop.create_future()
        self.pages: list[Manscdp] = []
        self.items: dict[str, dict[str, str]] = {}

    def add(self, body: Manscdp) -> None:
        self.pages.append(body)
        cmd = body.cmd_type.lower()
        for item in body.items:
            key = item.get("deviceid", "")
            if key and cmd == "recordinfo":  # every record names its channel: a record is its file and times
                key = "|".join(item.get(k, "") for k in ("deviceid", "starttime", "endtime", "filepath", "type"))
            if key:
                self.items[key] = item
        total = body.sum_num if body.sum_num is not None else len(body.items)
        paged = cmd in ("catalog", "recordinfo")  # answered in pages until SumNum items came
        if not self.future.done() and (not paged or len(self.items) >= total):
            self.future.set_result(self.pages)


class QueryError(RuntimeError):
    """A query got no (complete) answer."""


class MediaError(RuntimeError):
    """A channel could not be pulled. ``reason`` is short and groupable (the /metrics label)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def gb_date(when: datetime, zone: str) -> str:
    """The ``Date`` header value: local time ``yyyy-MM-ddTHH:mm:ss.SSS``."""
    local = when.astimezone(ZoneInfo(zone))
    return local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}"


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value != 0.0 else None


def _add_media_stats(into: Counter[str], session: MediaSession) -> None:
    for key, value in session.receiver.stats.items():
        into[f"rtp.{key}"] += value
    into["rtp.lost"] += session.receiver.lost
    for key, value in session.demuxer.stats.items():
        into[f"ps.{key}"] += value
    for key, value in session.stats.items():
        into[f"media.{key}"] += value


class GbPlatform:
    """The SIP server devices register to. Construct, ``await start()``, ``await stop()``."""

    def __init__(
        self,
        settings: GbSettings,
        devices: list[GbDeviceConfig],
        emit: Emit,
        clock: Clock | None = None,
        *,
        reject: Reject | None = None,
        device_secret: str | None = None,
        garbage: GarbageHandler | None = None,
        registrations: RegistrationStore | None = None,
    ) -> None:
        """``reject(reason, device_id, raw)`` is told of every refused request (for a dead-letter log). Devices
        without a password of their own use the one derived from ``device_secret`` (SHARPEYE_DEVICE_SECRET).
        ``garbage(reason, detail, data, peer)`` is told of every datagram that is not SIP at all. ``registrations``
        keeps accepted registrations in Redis for the next signalling node (``restore``)."""
        self.registrations = registrations
        self.settings = settings
        self._device_secret = device_secret
        self.clock: Clock = clock or SystemClock()
        self._emit = emit
        self._reject_hook = reject
        self._devices = {d.id: DeviceState(d) for d in devices if d.enabled}
        self._digest = DigestServer(settings.sip_realm)
        self.endpoint = SipEndpoint(
            self._on_request,
            host=settings.host,
            port=settings.port,
            tcp=settings.tcp,
            t1=settings.sip_t1_s,
            advertise=settings.sip_ip,
            on_garbage=garbage,
        )
        self.stats: Counter[str] = Counter()
        self._sn = itertools.count(random.randint(1, 100_000))
        self._cseq = itertools.count(1)
        self._queries: dict[tuple[str, str, int], _Query] = {}
        self._background = Background(self.stats)
        self._ports = PortRange(settings.media_port_min, settings.media_port_max)
        self._ssrc_serial = itertools.count(random.randint(1, 9999))
        self.sessions: dict[str, MediaSession] = {}  # by Call-ID
        self._by_ssrc: dict[int, MediaSession] = {}
        self._inviting = 0
        # other Notify bodies (MobilePosition...) by lower-case CmdType: ``hook(device state, body)`` returns the
        # reason it refuses the body for (a dead letter and 400), or None
        self.notify_hooks: dict[str, Callable[[DeviceState, Manscdp], str | None]] = {}

    # --- public interface -------------------------------------------------------------------
    async def start(self) -> None:
        await self.endpoint.start()
        self._background.spawn(self._watch(), "gb28181-watch")

    async def stop(self) -> None:
        await asyncio.gather(*(session.close("stopped") for session in list(self.sessions.values())))
        await self._background.stop()
        await self.endpoint.stop()

    @property
    def port(self) -> int:
        return self.endpoint.port

    def devices_state(self) -> list[dict[str, Any]]:
        """Registered/online/last keepalive/channel count of every configured device."""
        return [state.snapshot() for state in self._devices.values()]

    def channels(self) -> list[Channel]:
        """Every catalog item of every device (the cameras SharpEye gains from GB/T 28181)."""
        return [channel for state in self._devices.values() for channel in state.channels.values()]

    def device(self, device_id: str) -> DeviceState:
        return self._devices[device_id]

    def add_device(self, config: GbDeviceConfig) -> None:
        """Add a device at run time (API, discovery), or replace its config keeping its live state."""
        state = self._devices.get(config.id)
        if state is None:
            self._devices[config.id] = DeviceState(config)
        else:
            state.config = config

    def restore(self, device_id: str, peer: Peer, contact: str, expires_at: datetime, registered_at: datetime) -> bool:
        """Take over a registration another node accepted (``ingest/gb28181/registrations.py``): the device counts
        as registered (its keepalives bring it online) and its catalog is asked for once it is heard from. Call it
        before ``start`` so that no request finds the registration missing."""
        state = self._devices.get(device_id)
        if state is None or state.registered or expires_at <= self.clock.now():
            return False
        state.registered, state.peer, state.contact = True, peer, contact
        state.expires_at, state.registered_at, state.last_seen = expires_at, registered_at, registered_at
        state.catalog_due = self.clock.now()  # the liveness check asks for it (after start)
        self.stats["registration.restored"] += 1
        return True

    def remove_device(self, device_id: str) -> None:
        """Forget a device; its next message or REGISTER gets 403."""
        state = self._devices.pop(device_id, None)
        if state is not None:
            self._set_offline(state, "removed")

    async def query_catalog(self, device_id: str) -> list[Channel]:
        """Query a device's catalog and replace its channels with the merged pages.

        When the pages stop before ``SumNum`` (a lost datagram, a device that miscounts), the items
        received are kept and the catalog is marked incomplete, so that it is asked again soon.
        """
        pages, complete = await self._query(device_id, "Catalog", partial=True)
        state = self._devices[device_id]
        merged: dict[str, dict[str, str]] = {}
        for page in pages:
            for item in page.items:
                if item.get("deviceid"):
                    merged[item["deviceid"]] = item
        overrides = {c.id: c for c in state.config.channels}
        channels: dict[str, Channel] = {}
        for cid, item in merged.items():
            channels[cid] = self._channel(device_id, cid, item, overrides)
        state.channels = channels
        state.catalog_at = self.clock.now()
        state.catalog_complete = complete
        self.stats["catalogs" if complete else "catalogs_partial"] += 1
        return list(channels.values())

    async def query_device_info(self, device_id: str) -> dict[str, str]:
        pages, _ = await self._query(device_id, "DeviceInfo")
        info = dict(pages[0].fields)
        self._devices[device_id].info = info
        return info

    async def query_device_status(self, device_id: str) -> dict[str, str]:
        pages, _ = await self._query(device_id, "DeviceStatus")
        return dict(pages[0].fields)

    async def subscribe(
        self,
        device_id: str,
        event: str = "Catalog",
        expires: int = 3600,
        *,
        fields: list[Node] | None = None,
        limit_s: float | None = None,
        granted: dict[str, int] | None = None,
    ) -> int:
        """SUBSCRIBE to a device's catalog changes, alarms or mobile positions; returns the final status code.
        ``fields``: more of the query body (MobilePosition's ``Interval``); ``granted`` gets the answer's Expires."""
        state = self._require(device_id)
        sn = next(self._sn)
        body = build("Query", event, sn, device_id, fields, charset=state.config.charset)
        msg = self._request("SUBSCRIBE", state, body)
        msg.add("Event", f"{event};id={sn}")
        msg.add("Expires", str(expires))
        msg.add("Contact", self.endpoint.contact(self.settings.sip_id, state.peer.transport if state.peer else "udp"))
        assert state.peer is not None
        response = await self.endpoint.request(msg, state.peer, limit_s=limit_s)
        if granted is not None and response.expires is not None:
            granted[event] = response.expires
        return response.status

    # --- media ------------------------------------------------------------------------------
    def owner_of(self, channel_id: str) -> DeviceState:
        """The registered device (IPC, NVR or lower platform) whose catalog holds the channel."""
        for state in self._devices.values():
            owns = channel_id in state.channels or state.config.id == channel_id
            if owns and state.registered and state.peer is not None:
                return state
        raise MediaError("unknown_channel", f"no registered device has channel {channel_id}")

    async def invite(
        self,
        channel_id: str,
        *,
        stream_number: int = 0,
        transport: RtpMode | None = None,
        device_id: str | None = None,
        history: MediaDescription | None = None,
    ) -> MediaSession:
        """Pull a channel: INVITE its device (or the NVR / lower platform that owns it) and receive its RTP.
        ``history`` asks for a recording instead of live video: its ``session`` (Playback, Download), ``time``,
        ``uri`` and ``download_speed`` go into the offer, with a history SSRC (``gb28181/playback.py``).

        Raises ``MediaError`` (counted as ``invite.<reason>``) when the device refuses, does not answer, answers
        with an SDP that cannot be used, or too many sessions are open.
        """
        try:
            return await self._invite(channel_id, stream_number, transport, device_id, history)
        except MediaError as exc:
            self.stats[f"invite.{exc.reason}"] += 1
            raise

    async def _invite(
        self,
        channel_id: str,
        stream_number: int,
        transport: RtpMode | None,
        device_id: str | None,
        history: MediaDescription | None = None,
    ) -> MediaSession:
        settings = self.settings
        if len(self.sessions) + self._inviting >= settings.max_media_sessions:
            raise MediaError("too_many_sessions", f"{settings.max_media_sessions} media sessions open")
        try:
            state = self._require(device_id) if device_id else self.owner_of(channel_id)
        except KeyError:
            raise MediaError("unknown_device", f"no GB/T 28181 device {device_id}") from None
        except QueryError as exc:
            raise MediaError("not_registered", str(exc)) from None
        assert state.peer is not None
        mode: RtpMode = transport or settings.media_transport
        try:
            port = self._ports.take() if mode != "tcp-active" else 0
        except RtpError as exc:
            raise MediaError("no_port", str(exc)) from None
        past = history is not None
        ssrc = ssrc_for(settings.sip_domain, next(self._ssrc_serial), history=past)
        while int(ssrc) in self._by_ssrc:
            ssrc = ssrc_for(settings.sip_domain, next(self._ssrc_serial), history=past)
        receiver = RtpReceiver(lambda _: None, mode=mode, host=settings.media_host or settings.host, port=port,
                               expect_ssrc=int(ssrc))  # fmt: skip
        offer = MediaDescription(
            owner=settings.sip_id,
            ip=settings.advertised_media_ip,
            port=port or 9,  # RFC 4145: the side that connects (tcp-active) writes the discard port
            session="Play",
            transport="udp" if mode == "udp" else "tcp",
            setup=None if mode == "udp" else ("passive" if mode == "tcp-passive" else "active"),
            payloads={96: "PS"},
            ssrc=ssrc,
            stream_number=stream_number,
        )
        if history is not None:
            offer.session, offer.time = history.session, history.time
            offer.uri, offer.download_speed = history.uri, history.download_speed
        key = SessionKey(state.config.id, channel_id, stream_number)
        session = MediaSession(key, receiver, offer, self._release)
        receiver.on_packet = session.on_packet
        self._inviting += 1
        try:
            if mode != "tcp-active":
                try:
                    await receiver.start()
                except OSError as exc:
                    raise MediaError("bind", f"media port {port}: {exc}") from None
                offer.port = receiver.port
            invite = self._invite_message(state, channel_id, offer)
            try:
                response = await self.endpoint.invite(invite, state.peer, limit_s=settings.invite_timeout_s)
            except TransactionTimeout:
                with contextlib.suppress(Exception):
                    await self.endpoint.request(cancel_of(invite), state.peer, keep_via=True, limit_s=2)
                raise MediaError("timeout", f"no answer to INVITE for {channel_id}") from None
            if response.status >= 300 or response.status < 200:
                raise MediaError(f"refused_{response.status}", f"{channel_id}: {response.status} {response.reason}")
            dialog = Dialog.as_caller(invite, response, state.peer)
            session.dialog = dialog
            await self.endpoint.ack(dialog.request("ACK"), state.peer)
            try:
                answer = parse_sdp(response.body)
            except SdpError as exc:
                await self._bye(dialog)
                raise MediaError(f"bad_sdp.{exc.reason}", f"answer of {channel_id}: {exc}") from None
            session.answer = answer
            if answer.ssrc_value:
                receiver.expect_ssrc = answer.ssrc_value  # the device says what it sends with
            if mode == "tcp-active":
                receiver.peer = (answer.ip, answer.port)
                await receiver.start()
        except BaseException:
            await receiver.stop()
            self._ports.give(port)
            raise
        finally:
            self._inviting -= 1
        session.opened_at = time.monotonic()  # the start limit counts from the answer, not from the INVITE
        self.sessions[dialog.call_id] = session
        self._by_ssrc[int(ssrc)] = session
        self.stats["invite.ok"] += 1
        self._spawn(
            session.watch(settings.media_start_timeout_s, settings.media_timeout_s), f"gb28181-media-{channel_id}"
        )
        return session

    def _invite_message(self, state: DeviceState, channel_id: str, offer: MediaDescription) -> SipMessage:
        assert state.peer is not None
        domain = self.settings.sip_domain
        msg = SipMessage(method="INVITE", uri=f"sip:{channel_id}@{state.peer.host}:{state.peer.port}")
        msg.add("From", f"<sip:{self.settings.sip_id}@{domain}>;tag={new_tag()}")
        msg.add("To", f"<sip:{channel_id}@{domain}>")
        msg.add("Call-ID", new_call_id(self.endpoint.host))
        msg.add("CSeq", f"{next(self._cseq)} INVITE")
        msg.add("Contact", self.endpoint.contact(self.settings.sip_id, state.peer.transport))
        msg.add("Subject", f"{channel_id}:{offer.ssrc},{self.settings.sip_id}:0")
        msg.add("Content-Type", "application/sdp")
        msg.body = offer.to_bytes()
        return msg

    async def _bye(self, dialog: Dialog) -> None:
        with contextlib.suppress(TransactionTimeout, ConnectionError, OSError):
            await self.endpoint.request(dialog.request("BYE"), dialog.peer, limit_s=4 * self.settings.sip_t1_s + 2)

    def _release(self, session: MediaSession, reason: str) -> asyncio.Future[None]:
        self.stats[f"media.closed.{reason}"] += 1
        _add_media_stats(self.stats, session)
        if session.dialog is not None:
            self.sessions.pop(session.dialog.call_id, None)
        self._by_ssrc.pop(session.ssrc, None)

        async def end() -> None:
            if session.dialog is not None and reason != "device_bye":
                await self._bye(session.dialog)
            await session.receiver.stop()
            if session.receiver.mode != "tcp-active":
                self._ports.give(session.offer.port)

        return asyncio.ensure_future(end())

    def media_totals(self) -> Counter[str]:
        """Media counters: closed sessions' RTP/PS counts (kept in ``stats``) plus the open ones'."""
        totals = Counter(self.stats)
        for session in self.sessions.values():
            _add_media_stats(totals, session)
        return totals

    def media_state(self) -> list[dict[str, object]]:
        return [session.snapshot() for session in self.sessions.values()]

    # --- outgoing ---------------------------------------------------------------------------
    def _require(self, device_id: str) -> DeviceState:
        state = self._devices.get(device_id)
        if state is None:
            raise KeyError(f"unknown GB/T 28181 device {device_id}")
        if not state.registered or state.peer is None:
            raise QueryError(f"device {device_id} is not registered")
        return state

    def _request(self, method: str, state: DeviceState, body: bytes) -> SipMessage:
        assert state.peer is not None
        domain = self.settings.sip_domain
        uri = uri_of(state.contact) if state.contact.lower().startswith(("<sip", "sip")) else ""
        if not uri:
            uri = f"sip:{state.config.id}@{state.peer.host}:{state.peer.port}"
        msg = SipMessage(method=method, uri=uri)
        msg.add("From", f"<sip:{self.settings.sip_id}@{domain}>;tag={new_tag()}")
        msg.add("To", f"<sip:{state.config.id}@{domain}>")
        msg.add("Call-ID", new_call_id(self.endpoint.host))
        msg.add("CSeq", f"{next(self._cseq)} {method}")
        msg.add("Content-Type", CONTENT_TYPE)
        msg.body = body
        return msg

    async def _send_message(self, state: DeviceState, body: bytes) -> int:
        assert state.peer is not None
        response = await self.endpoint.request(self._request("MESSAGE", state, body), state.peer)
        return response.status

    async def send_message(self, device_id: str, body: bytes, limit_s: float | None = None) -> int:
        """Send a MESSAGE (a DeviceControl...) to a registered device; its final status. Raises ``QueryError``
        (unknown or unregistered device) or ``TransactionTimeout`` (no answer within ``limit_s``)."""
        state = self._require(device_id)
        assert state.peer is not None
        response = await self.endpoint.request(self._request("MESSAGE", state, body), state.peer, limit_s=limit_s)
        return response.status

    async def query(
        self, device_id: str, cmd_type: str, target: str, *, root: str = "Query", fields: list[Node] | None = None
    ) -> list[Manscdp]:
        """A query (or a ``Control`` answered with a Response: GuardCmd, RecordCmd) about ``target`` (a channel)
        sent to the device that owns it; its Response pages. Raises ``QueryError``."""
        pages, _ = await self._query(device_id, cmd_type, target=target, root=root, fields=fields)
        return pages

    async def query_pages(
        self, device_id: str, cmd_type: str, *, target: str, fields: list[Node], timeout_s: float | None = None
    ) -> tuple[list[Manscdp], bool]:
        """A query about ``target`` (a channel of the device: RecordInfo) with ``fields`` in its body; the Response
        pages and whether they are complete (pages received before the timeout are returned marked incomplete)."""
        return await self._query(device_id, cmd_type, partial=True, target=target, fields=fields, timeout_s=timeout_s)

    async def _query(
        self,
        device_id: str,
        cmd_type: str,
        *,
        partial: bool = False,
        target: str | None = None,
        root: str = "Query",
        fields: list[Node] | None = None,
        timeout_s: float | None = None,
    ) -> tuple[list[Manscdp], bool]:
        """Send a query (about ``target``, default the device); return its Response pages and whether complete."""
        state = self._require(device_id)
        sn = next(self._sn)
        key = (target or device_id, cmd_type.lower(), sn)
        query = _Query(asyncio.get_running_loop())
        self._queries[key] = query
        try:
            body = build(root, cmd_type, sn, target or device_id, fields, charset=state.config.charset)
            status = await self._send_message(state, body)
            if status != 200:
                raise QueryError(f"{cmd_type} query to {device_id}: {status}")
            try:
                limit = self.settings.query_timeout_s if timeout_s is None else timeout_s
                done, _ = await asyncio.wait({query.future}, timeout=limit)
                if not done:
                    raise TimeoutError
                return query.future.result(), True
            except TimeoutError:
                self.stats[f"query_timeout.{cmd_type}"] += 1
                if partial and query.pages:
                    return query.pages, False
                got = len(query.items)
                raise QueryError(f"{cmd_type} query to {device_id}: incomplete answer ({got} items)") from None
        except TransactionTimeout as exc:
            raise QueryError(str(exc)) from None
        finally:
            self._queries.pop(key, None)

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        self._background.spawn(coro, name)

    async def _after_register(self, device_id: str, sent: asyncio.Future[None] | None = None) -> None:
        """Catalog, then DeviceInfo. ``sent``: the 200 OK to the REGISTER, which must reach the device first (a
        strict device refuses queries from a platform it is not registered to yet)."""
        if sent is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await asyncio.shield(sent)
        state = self._devices.get(device_id)
        if state is None:
            return
        if state.catalog_busy:
            state.catalog_again = True  # registered anew while a query runs: ask again once it is done
            return
        state.catalog_busy = True
        retry = timedelta(seconds=min(self.settings.catalog_retry_s, self.settings.catalog_interval_s))
        try:
            again = True
            while again:
                state.catalog_again = False
                try:
                    await self.query_catalog(device_id)
                except QueryError as exc:
                    log.info("device %s: %s", device_id, exc)
                    state.catalog_complete = False
                if not state.info:  # its failure says nothing of the catalog: no early re-query for it
                    try:
                        await self.query_device_info(device_id)
                    except QueryError as exc:
                        log.info("device %s: %s", device_id, exc)
                again = state.catalog_again and state.registered
        finally:
            state.catalog_busy = False
            interval = timedelta(seconds=self.settings.catalog_interval_s)
            state.catalog_due = self.clock.now() + (interval if state.catalog_complete else retry)

    async def _answer_alarm(self, state: DeviceState, body: Manscdp) -> None:
        reply = build("Response", "Alarm", body.sn, body.device_id, [("Result", "OK")], charset=state.config.charset)
        with contextlib.suppress(TransactionTimeout):
            await self._send_message(state, reply)

    # --- incoming ---------------------------------------------------------------------------
    def _on_request(self, msg: SipMessage, peer: Peer) -> SipMessage | None:
        if msg.method == "REGISTER":
            return self._on_register(msg, peer)
        if msg.method in ("MESSAGE", "NOTIFY"):
            return self._on_message(msg, peer)
        if msg.method == "OPTIONS":
            return msg.response(200)
        if msg.method == "ACK":
            return None
        if msg.method == "BYE":
            session = self.sessions.get(msg.call_id)
            if session is None:
                self.stats["bye.unknown_dialog"] += 1
                return msg.response(481)
            self._spawn(session.close("device_bye"), f"gb28181-bye-{msg.call_id}")
            return msg.response(200)
        if msg.method in ("CANCEL", "INFO", "SUBSCRIBE"):
            return msg.response(481 if msg.method == "CANCEL" else 501)
        reply = msg.response(405)
        reply.add("Allow", "REGISTER, MESSAGE, NOTIFY, OPTIONS, ACK, BYE")
        return reply

    def _reject(self, reason: str, device_id: str, msg: SipMessage) -> None:
        self.stats[reason] += 1
        if self._reject_hook is not None:
            try:
                self._reject_hook(reason, device_id, msg.to_bytes())
            except Exception:
                log.exception("reject hook failed")

    def _on_register(self, msg: SipMessage, peer: Peer) -> SipMessage | None:
        device_id = msg.from_user or msg.to_user
        state = self._devices.get(device_id)
        if state is None:
            self._reject("register.unknown_device", device_id, msg)
            log.info("REGISTER from unknown device %r at %s:%d", device_id, peer.host, peer.port)
            return msg.response(403, "Unknown Device")
        auth = msg.get("Authorization")
        if not auth:
            self.stats["register.challenged"] += 1
            reply = msg.response(401)
            reply.add("WWW-Authenticate", self._digest.challenge())
            return reply
        password = state.config.digest_password(self._device_secret)
        if password is None:
            self._reject("register.no_password", device_id, msg)
            log.warning("device %s has no password and no device secret is set: refused", device_id)
            return msg.response(403, "No Password Configured")
        reason = self._digest.check(auth, method="REGISTER", password=password, username=device_id)
        if reason in ("stale_nonce", "unknown_nonce", "replayed_nc"):
            self.stats[f"register.{reason}"] += 1
            reply = msg.response(401)
            reply.add(
                "WWW-Authenticate", self._digest.challenge() + (", stale=true" if reason == "stale_nonce" else "")
            )
            return reply
        if reason:
            self._reject(f"register.{reason}", device_id, msg)
            log.warning("REGISTER of %s from %s:%d refused: %s", device_id, peer.host, peer.port, reason)
            return msg.response(403)
        now = self.clock.now()
        expires = msg.expires
        if expires is None:
            expires = self.settings.register_expires_max_s
        reply = msg.response(200)
        reply.add("Date", gb_date(now, state.config.timezone))
        if expires == 0:
            self.stats["unregistered"] += 1
            reply.add("Expires", "0")
            self._set_offline(state, "unregister")
            state.registered = False
            if self.registrations is not None:
                self.registrations.unregistered(device_id)
            return reply
        expires = max(self.settings.register_expires_min_s, min(expires, self.settings.register_expires_max_s))
        reply.add("Expires", str(expires))
        contact = msg.get("Contact")
        if contact:
            reply.add("Contact", f"{contact.split(';expires')[0]};expires={expires}")
        fresh = not state.registered or state.peer != peer
        state.registered = True
        state.peer = peer
        state.contact = contact
        state.expires_at = now + timedelta(seconds=expires)
        state.last_seen = now
        self.stats["registered"] += 1
        if fresh:
            state.registered_at = now
        if self.registrations is not None:
            self.registrations.registered(device_id, peer, contact, state.expires_at, state.registered_at or now)
        if fresh:
            state.last_keepalive = now
            self._set_online(state, "register")
            sent = self.endpoint.send_response(reply, msg, peer)  # the 200 OK first, then the queries
            self._spawn(self._after_register(device_id, sent), f"gb28181-catalog-{device_id}")
            return None
        return reply

    def _on_message(self, msg: SipMessage, peer: Peer) -> SipMessage:
        device_id = msg.from_user
        state = self._devices.get(device_id)
        if state is None:
            self._reject("message.unknown_device", device_id, msg)
            return msg.response(403, "Unknown Device")
        if not state.registered:
            self._reject("message.unregistered", device_id, msg)
            return msg.response(403, "Not Registered")
        try:
            body = parse_body(msg.body)
        except ManscdpError as exc:
            self._reject(f"bad_body.{exc.reason}", device_id, msg)
            log.info("bad %s body from %s: %s", msg.method, device_id, exc)
            return msg.response(400, f"Bad Body ({exc.reason})")
        now = self.clock.now()
        state.last_seen = now
        try:
            readings = readings_of(state.config, body, now)
        except DecodeError as exc:
            self._reject(f"bad_body.{exc.reason}", device_id, msg)
            log.info("bad %s from %s: %s", body.cmd_type, device_id, exc)
            return msg.response(400, f"Bad Body ({exc.reason})")
        cmd = body.cmd_type.lower()
        if body.root == "notify" and cmd == "keepalive":
            self.stats["keepalives"] += 1
            state.last_keepalive = now
            if not state.online:
                self._set_online(state, "keepalive")
            self._keepalive_faults(state, body)
        elif body.root == "notify" and cmd == "alarm":
            self.stats["alarms"] += 1
            self._spawn(self._answer_alarm(state, body), f"gb28181-alarm-ack-{device_id}")
        elif body.root == "notify" and cmd == "catalog":
            self._catalog_change(state, body)
        elif body.root == "notify" and cmd in self.notify_hooks:
            refused = self.notify_hooks[cmd](state, body)
            self.stats[f"notify.{cmd}"] += 1
            if refused:
                self._reject(f"bad_body.{refused}", device_id, msg)
                return msg.response(400, f"Bad Body ({refused})")
        elif body.root == "response":
            self._on_response(device_id, body)
        else:
            self.stats[f"ignored.{body.root}.{cmd}"] += 1
        if readings:
            self._emit(readings)
        return msg.response(200)

    def _on_response(self, device_id: str, body: Manscdp) -> None:
        query = self._queries.get((body.device_id, body.cmd_type.lower(), body.sn))
        if query is None:
            query = self._queries.get((device_id, body.cmd_type.lower(), body.sn))
        if query is None:
            self.stats["stray_response"] += 1
            return
        query.add(body)

    def _catalog_change(self, state: DeviceState, body: Manscdp) -> None:
        overrides = {c.id: c for c in state.config.channels}
        for item in body.items:
            cid = item.get("deviceid", "")
            if not cid:
                continue
            event = item.get("event", "UPDATE").upper()
            if event in ("DEL", "DELETE"):
                state.channels.pop(cid, None)
            elif event in ("ON", "OFF", "VLOST", "DEFECT") and cid in state.channels:
                state.channels[cid] = replace(state.channels[cid], status="ON" if event == "ON" else "OFF")
            else:
                state.channels[cid] = self._channel(state.config.id, cid, item, overrides)
        self.stats["catalog_changes"] += 1

    def _keepalive_faults(self, state: DeviceState, body: Manscdp) -> None:
        """A keepalive's ``<Info>`` lists the device's faulty channels (GB/T 28181-2016, Keepalive): each listed
        channel goes OFF, and one this way set OFF goes back ON when a later keepalive no longer lists it (a channel a
        catalog change set OFF stays OFF)."""
        listed = {cid for cid in info_ids(body) if cid in state.channels}
        for cid in listed - state.faulty:
            if state.channels[cid].status == "ON":
                state.channels[cid] = replace(state.channels[cid], status="OFF")
                state.faulty.add(cid)
                self.stats["keepalive_faulty_channels"] += 1
        for cid in state.faulty - listed:
            state.faulty.discard(cid)
            if cid in state.channels and state.channels[cid].status == "OFF":
                state.channels[cid] = replace(state.channels[cid], status="ON")

    def _channel(self, device_id: str, cid: str, item: dict[str, str], overrides: dict[str, Any]) -> Channel:
        override = overrides.get(cid)
        return Channel(
            device_id=device_id,
            channel_id=cid,
            name=(override.name if override and override.name else item.get("name", "")) or cid,
            manufacturer=item.get("manufacturer", ""),
            model=item.get("model", ""),
            status=item.get("status", "ON").upper() or "ON",
            parent_id=item.get("parentid", ""),
            civil_code=item.get("civilcode", ""),
            address=item.get("address", ""),
            longitude=_float(item.get("longitude", "")),
            latitude=_float(item.get("latitude", "")),
            media_url=override.media_url if override else None,
        )

    # --- online state -----------------------------------------------------------------------
    def _set_online(self, state: DeviceState, reason: str) -> None:
        state.online = True
        self._emit_online(state, True, reason)

    def _set_offline(self, state: DeviceState, reason: str) -> None:
        if not state.online:
            return
        state.online = False
        self.stats[f"offline.{reason}"] += 1
        self._emit_online(state, False, reason)

    def _emit_online(self, state: DeviceState, online: bool, reason: str) -> None:
        reading = Reading(
            device_id=state.config.id, kind="device.online", value=online, ts=self.clock.now(), attrs={"reason": reason}
        )
        self._emit([reading])

    def check_liveness(self) -> None:
        """Mark offline every device whose keepalives stopped or whose registration lapsed;
        start the periodic catalog re-query. Called by the watch loop (and by tests)."""
        now = self.clock.now()
        for state in self._devices.values():
            if not state.registered:
                continue
            cfg = state.config
            last = state.last_keepalive or state.registered_at or now
            if (now - last).total_seconds() > cfg.heartbeat_s * cfg.offline_after:
                # Still registered: a late keepalive brings it back online, a re-REGISTER too.
                self._set_offline(state, "keepalive_timeout")
            elif state.expires_at is not None and now > state.expires_at:
                self._set_offline(state, "registration_expired")
                state.registered = False
                if self.registrations is not None:
                    self.registrations.unregistered(cfg.id)
            elif state.catalog_due is not None and not state.catalog_busy and now >= state.catalog_due:
                state.catalog_due = None
                self._spawn(self._after_register(cfg.id), f"gb28181-catalog-{cfg.id}")

    async def _watch(self) -> None:
        shortest = min((d.config.heartbeat_s for d in self._devices.values()), default=60.0)
        period = max(0.2, min(5.0, shortest / 4))
        while True:
            await asyncio.sleep(period)
            try:
                self.check_liveness()
            except Exception:
                log.exception("liveness check failed")
