"""SDP as GB/T 28181 uses it for media sessions (RFC 4566 plus the standard's ``y=`` and ``f=`` lines).

A platform's INVITE offers where it receives (``c=``/``m=``), how (``RTP/AVP`` over UDP, or ``TCP/RTP/AVP`` with
``a=setup`` and ``a=connection``, RFC 4145), the payload types (96 PS, 98 H264, 97 MPEG4, 99 H265), the session
kind (``s=Play``/``Playback``/``Download``) and the SSRC in ``y=`` (10 decimal digits: 0 real time or 1 history,
five digits of the domain, four of a serial). The device answers with its own address and the SSRC it sends with.
Main/sub stream is asked with ``a=streamnumber:N`` (2022 text; ``a=streamprofile:N`` and ``a=stream:N`` of some
vendors are read too).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Literal

MediaTransport = Literal["udp", "tcp"]
Setup = Literal["active", "passive", "actpass"]

PAYLOAD_NAMES = {96: "PS", 97: "MPEG4", 98: "H264", 99: "H265"}
SESSIONS = ("Play", "Playback", "Download", "Talk")
MAX_SDP = 4096


class SdpError(ValueError):
    """A body is not a usable GB/T 28181 SDP. ``reason`` is short and groupable."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class MediaDescription:
    """One side of a GB/T 28181 media session."""

    owner: str  # o= username: the channel code (offer) or the device/channel code (answer)
    ip: str
    port: int
    session: str = "Play"
    transport: MediaTransport = "udp"
    setup: Setup | None = None  # TCP only: "passive" = this side listens, "active" = this side connects
    direction: Literal["recvonly", "sendonly", "sendrecv"] = "recvonly"
    payloads: dict[int, str] = field(default_factory=lambda: {96: "PS"})
    ssrc: str = ""
    stream_number: int | None = None
    media_format: str = ""  # the f= line, as is
    time: tuple[int, int] = (0, 0)
    uri: str = ""  # u= line: "<channel>:<type>" of a Playback/Download
    download_speed: int | None = None  # a=downloadspeed:N of a Download

    @property
    def ssrc_value(self) -> int:
        return int(self.ssrc) if self.ssrc.isdigit() else 0

    def to_bytes(self) -> bytes:
        proto = "TCP/RTP/AVP" if self.transport == "tcp" else "RTP/AVP"
        lines = [
            "v=0",
            f"o={self.owner} 0 0 IN IP4 {self.ip}",
            f"s={self.session}",
            *([f"u={self.uri}"] if self.uri else []),
            f"c=IN IP4 {self.ip}",
            f"t={self.time[0]} {self.time[1]}",
            f"m=video {self.port} {proto} {' '.join(str(pt) for pt in self.payloads)}",
            f"a={self.direction}",
        ]
        lines += [f"a=rtpmap:{pt} {name}/90000" for pt, name in self.payloads.items()]
        if self.transport == "tcp":
            lines.append(f"a=setup:{self.setup or 'passive'}")
            lines.append("a=connection:new")
        if self.stream_number is not None:
            lines.append(f"a=streamnumber:{self.stream_number}")
        if self.download_speed is not None:
            lines.append(f"a=downloadspeed:{self.download_speed}")
        if self.ssrc:
            lines.append(f"y={self.ssrc}")
        lines.append(f"f={self.media_format}")
        return ("\r\n".join(lines) + "\r\n").encode("ascii")


def ssrc_for(domain: str, serial: int, *, history: bool = False) -> str:
    """A ``y=`` SSRC: 0 (real time) or 1 (history), the domain's digits 4-8, a 4-digit serial."""
    digits = "".join(ch for ch in domain if ch.isdigit()).ljust(8, "0")
    return f"{1 if history else 0}{digits[3:8]}{serial % 10_000:04d}"


def parse_sdp(body: bytes) -> MediaDescription:
    """Parse an offer or answer; raises ``SdpError`` naming what is wrong."""
    if not body.strip():
        raise SdpError("empty", "no SDP body")
    if len(body) > MAX_SDP:
        raise SdpError("oversize", f"{len(body)} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise SdpError("encoding", "SDP is not UTF-8/ASCII") from None
    owner, session, conn_ip, origin_ip = "", "Play", "", ""
    media: list[str] | None = None
    attrs: dict[str, str] = {}
    rtpmap: dict[int, str] = {}
    ssrc, fmt, uri = "", "", ""
    time = (0, 0)
    for number, raw in enumerate(text.replace("\r\n", "\n").split("\n"), 1):
        line = raw.strip()
        if not line:
            continue
        if len(line) < 2 or line[1] != "=":
            raise SdpError("bad_line", f"line {number}: {line[:60]!r}")
        key, value = line[0], line[2:].strip()
        if key == "o":
            parts = value.split()
            if len(parts) != 6:
                raise SdpError("bad_origin", f"o={value[:60]}")
            owner, origin_ip = parts[0], parts[5]
        elif key == "s":
            session = value
        elif key == "u":
            uri = value
        elif key == "c":
            parts = value.split()
            if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
                raise SdpError("bad_connection", f"c={value[:60]}")
            conn_ip = parts[2]
        elif key == "t":
            parts = value.split()
            if len(parts) != 2 or not all(p.isdigit() for p in parts):
                raise SdpError("bad_time", f"t={value[:60]}")
            time = (int(parts[0]), int(parts[1]))
        elif key == "m":
            if media is not None:
                continue  # GB/T 28181 uses one video m= line; an audio line after it is ignored
            media = value.split()
        elif key == "a":
            name, _, val = value.partition(":")
            if name == "rtpmap":
                pt_text, _, enc = val.partition(" ")
                if pt_text.isdigit():
                    rtpmap[int(pt_text)] = enc.split("/")[0].upper()
            else:
                attrs.setdefault(name.lower(), val.strip())
        elif key == "y":
            ssrc = value
        elif key == "f":
            fmt = value
    if media is None:
        raise SdpError("no_media", "no m= line")
    if len(media) < 4 or media[0] != "video":
        raise SdpError("bad_media", f"m={' '.join(media)[:60]}")
    if not media[1].isdigit() or not 0 < int(media[1]) < 65536:
        raise SdpError("bad_port", f"m= port {media[1]!r}")
    proto = media[2].upper()
    if proto in ("RTP/AVP", "RTP/AVPF"):
        transport: MediaTransport = "udp"
    elif proto in ("TCP/RTP/AVP", "RTP/AVP/TCP"):
        transport = "tcp"
    else:
        raise SdpError("bad_protocol", f"m= protocol {media[2]!r}")
    payload_types: list[int] = []
    for pt in media[3:]:
        if not pt.isdigit() or int(pt) > 127:
            raise SdpError("bad_payload_type", f"m= format {pt!r}")
        payload_types.append(int(pt))
    payloads = {pt: rtpmap.get(pt, PAYLOAD_NAMES.get(pt, "")) for pt in payload_types}
    ip = conn_ip or origin_ip
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise SdpError("bad_address", f"address {ip[:60]!r}") from None
    if ssrc and (not ssrc.isdigit() or len(ssrc) > 10 or int(ssrc) > 0xFFFFFFFF):
        raise SdpError("bad_ssrc", f"y={ssrc[:20]}")
    setup = attrs.get("setup", "").lower() or None
    if setup is not None and setup not in ("active", "passive", "actpass"):
        raise SdpError("bad_setup", f"a=setup:{setup[:20]}")
    direction = next((d for d in ("sendonly", "recvonly", "sendrecv") if d in attrs), "recvonly")
    stream_number: int | None = None
    for name in ("streamnumber", "streamprofile", "stream"):
        value = attrs.get(name, "")
        if value.isdigit():
            stream_number = int(value)
            break
    speed = attrs.get("downloadspeed", "")
    return MediaDescription(
        owner=owner,
        ip=ip,
        port=int(media[1]),
        session=session,
        transport=transport,
        setup=setup,  # type: ignore[arg-type]
        direction=direction,  # type: ignore[arg-type]
        payloads=payloads,
        ssrc=ssrc,
        stream_number=stream_number,
        media_format=fmt,
        time=time,
        uri=uri,
        download_speed=int(speed) if speed.isdigit() and 0 < int(speed) <= 64 else None,
    )
