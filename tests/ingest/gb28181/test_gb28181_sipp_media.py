"""INVITE interoperability with real SIPp (Debian sip-tester), both directions, judged by sipp's exit code and by the
media that really flows:

- sipp as the upper platform (``sipp/upper_invite.xml``) INVITEs one of SharpEye's channels asking for RTP on a
  UDP port this test holds; sipp checks the 200 OK's SDP, ACKs and BYEs; the test demuxes what reached its socket
  back to the device's own access units. ``sipp/upper_invite_bad.xml``: malformed SDP gets 400, an offer without
  PS on payload type 96 gets 488, both counted.
- sipp as a device (``sipp/device_media.xml`` + ``device_media_ooc.xml``) registers, answers the catalog, answers
  SharpEye's INVITE and plays RTP from a pcap (``play_pcap_video``) built here from our own PS muxer with
  hand-written pcap headers; SharpEye's puller hands out the same access units.
"""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path
from typing import Any

import pytest
from sharpeye.config.gb28181 import GbSettings
from sharpeye.governance.cascade import GbCascade
from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.camera.service import CameraService
from sharpeye.ingest.gb28181.config import GbDeviceConfig
from sharpeye.ingest.gb28181.offer import UpwardOffer
from sharpeye.ingest.gb28181.platform import MediaError
from sharpeye.ingest.gb28181.puller import ChannelPuller
from sharpeye.ingest.transport.ps import PsDemuxer, PsMuxer, rtp_payloads
from sharpeye.ingest.transport.rtp import build_rtp
from sharpeye.simulators.gb28181.device import DeviceFleet, SimDevice, code
from sharpeye.simulators.gb28181.media import encode_clip

from sharpeye.clock import ManualClock
from tests.helpers import env_secret
from tests.ingest.gb28181.conftest import PLATFORM_ID, UPPER_ID, until
from tests.ingest.gb28181.test_gb28181_offer import CAMERA_CODE, vcl, write_clip
from tests.ingest.gb28181.test_gb28181_sipp import SCENARIOS, _free_udp_port, _run

SIPP_DEVICE = "34020000001320000088"
SIPP_SSRC = "0200000042"


class RtpSink(asyncio.DatagramProtocol):
    """The upper platform's media port: every datagram kept with its sender."""

    def __init__(self) -> None:
        self.packets: list[tuple[bytes, tuple[str, int]]] = []

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.packets.append((data, addr))


def _units(packets: list[bytes]) -> list[Any]:
    """RTP (version 2, PT 96) in sequence order, PS demuxed to access units."""
    parsed = []
    for data in packets:
        first, pt, seq, _ts, ssrc = struct.unpack("!BBHII", data[:12])
        assert first >> 6 == 2 and pt & 0x7F == 96
        parsed.append((seq, ssrc, data[12:]))
    demuxer = PsDemuxer()
    units = []
    for _seq, _ssrc, payload in sorted(parsed, key=lambda p: p[0]):
        units += demuxer.feed(payload)
    return units + demuxer.flush()


def _upper_args(port: int, channel: str, rtp_port: int, scenario: str) -> list[str | bytes]:
    return [
        f"127.0.0.1:{port}", "-sf", str(SCENARIOS / scenario), "-m", "1", "-p", str(_free_udp_port()),
        "-key", "channel", channel, "-key", "upper_id", UPPER_ID, "-key", "upper_domain", UPPER_ID[:10],
        "-key", "lower_domain", PLATFORM_ID[:10], "-key", "rtp_port", str(rtp_port),
        "-timeout", "30s", "-timeout_error",
    ]  # fmt: skip


async def test_sipp_upper_platform_invites_a_channel_and_rtp_arrives(make_platform: Any, tmp_path: Path) -> None:
    settings = GbSettings.model_validate(
        {"sip_id": PLATFORM_ID, "port": 0, "sip_t1_s": 0.1, "media_port_min": 0, "media_port_max": 0,
         "cascade": {"upper_id": UPPER_ID, "upper_host": "127.0.0.1", "upper_port": _free_udp_port(),
                     "local_port": 0, "password": env_secret("unused"), "retry_s": 5}}
    )  # fmt: skip
    ipc = SimDevice(id=code("34020000", 132, 61), password="pw")
    channel = ipc.channels[0][0]
    platform = await make_platform(
        [GbDeviceConfig.model_validate({"id": ipc.id, "kind": "gb28181", "name": "ipc", "grid": "g1",
                                        "password": env_secret("pw")})],
        settings=settings,
    )  # fmt: skip
    fleet = DeviceFleet([ipc], platform_id=PLATFORM_ID, platform_port=platform.port, t1=0.1)
    puller = ChannelPuller(platform, grace_s=0)
    cascade = GbCascade(settings, catalog=platform.channels, media=puller.subscribe)
    loop = asyncio.get_running_loop()
    transport, sink = await loop.create_datagram_endpoint(RtpSink, local_addr=("127.0.0.1", 0))
    rtp_port = transport.get_extra_info("sockname")[1]
    await fleet.start()
    await cascade.start()
    try:
        await until(lambda: platform.channels())
        rc, err = await _run(_upper_args(cascade.endpoint.port, channel, rtp_port, "upper_invite.xml"), tmp_path)
        assert rc == 0, err
        assert cascade.stats["invite.answered"] == 1 and cascade.stats["bye"] == 1
        assert len(sink.packets) > 10, "no RTP reached the port sipp's SDP gave"
        assert {struct.unpack("!I", p[8:12])[0] for p, _ in sink.packets} == {100000077}  # the offered y=
        units = _units([p for p, _ in sink.packets])
        clip = {data for data, _ in encode_clip("intrusion", "h264", 320, 180, 4.0).frames}
        assert len(units) >= 10 and all(u.data in clip for u in units) and units[0].key
        await until(lambda: not cascade.streams and not fleet.streams)  # BYE released the device's stream too

        rc, err = await _run(_upper_args(cascade.endpoint.port, channel, rtp_port, "upper_invite_bad.xml"), tmp_path)
        assert rc == 0, err
        assert sum(v for k, v in cascade.stats.items() if k.startswith("invite.bad_sdp.")) == 1
        assert cascade.stats["invite.not_acceptable"] == 1
        assert len(fleet.invites) == 1  # neither bad INVITE reached the device
    finally:
        transport.close()
        await cascade.stop()
        await puller.stop()
        await fleet.stop()


def write_pcap(path: Path, packets: list[bytes], fps: int, per_frame: list[int]) -> None:
    """A classic pcap (Ethernet, IPv4, UDP) of the RTP packets, ``per_frame[i]`` packets at frame i's time; sipp
    replaces the addresses with the call's media addresses when it plays it."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    at = 0
    for frame, count in enumerate(per_frame):
        usec_total = frame * 1_000_000 // fps
        for packet in packets[at : at + count]:
            udp = struct.pack("!HHHH", 40002, 30000, 8 + len(packet), 0) + packet
            ip_head = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, 17, 0,
                                  bytes((127, 0, 0, 1)), bytes((127, 0, 0, 1)))  # fmt: skip
            checksum = sum(struct.unpack("!10H", ip_head))
            checksum = (checksum & 0xFFFF) + (checksum >> 16)
            ip_head = ip_head[:10] + struct.pack("!H", ~checksum & 0xFFFF) + ip_head[12:]
            eth = b"\x00\x00\x00\x00\x00\x02" + b"\x00\x00\x00\x00\x00\x01" + b"\x08\x00"
            frame_bytes = eth + ip_head + udp
            sec, usec = divmod(usec_total, 1_000_000)
            out += struct.pack("<IIII", sec, usec, len(frame_bytes), len(frame_bytes)) + frame_bytes
        at += count
    path.write_bytes(bytes(out))


def _sipp_device_pcap(tmp_path: Path, payload_type: int) -> tuple[Path, Any]:
    """The pcap sipp plays: our PS muxer's RTP of a clip (payload type ``payload_type``, SSRC ``SIPP_SSRC``)."""
    clip = encode_clip("intrusion", "h264", 320, 180, 3.0)
    muxer = PsMuxer("h264")
    packets: list[bytes] = []
    per_frame: list[int] = []
    seq = 1000
    for n, (data, key) in enumerate(clip.frames):
        ts = n * (90000 // clip.fps)
        payloads = rtp_payloads(muxer.mux(data, ts, key))
        for i, payload in enumerate(payloads):
            packets.append(build_rtp(payload_type, seq, ts, int(SIPP_SSRC), payload, marker=i == len(payloads) - 1))
            seq += 1
        per_frame.append(len(payloads))
    pcap = tmp_path / f"ps-{payload_type}.pcap"
    write_pcap(pcap, packets, clip.fps, per_frame)
    return pcap, clip


def _sipp_device_args(port: int, channel: str, pcap: Path, connection: str, payload_type: int) -> list[str | bytes]:
    return [
        f"127.0.0.1:{port}", "-sf", str(SCENARIOS / "device_media.xml"),
        "-oocsf", str(SCENARIOS / "device_media_ooc.xml"), "-m", "1", "-p", str(_free_udp_port()),
        "-mp", str(_free_udp_port() & ~1), "-au", SIPP_DEVICE, "-ap", "sipp-pw",
        "-key", "device_id", SIPP_DEVICE, "-key", "platform_id", PLATFORM_ID, "-key", "domain", PLATFORM_ID[:10],
        "-key", "channel", channel, "-key", "dev_ssrc", SIPP_SSRC, "-key", "pcap", str(pcap),
        "-key", "dev_c", connection, "-key", "dev_pt", str(payload_type),
        "-timeout", "30s", "-timeout_error",
    ]  # fmt: skip


async def _sipp_device_platform(make_platform: Any) -> Any:
    settings = GbSettings(sip_id=PLATFORM_ID, port=0, sip_t1_s=0.1, query_timeout_s=5, media_port_min=0,
                          media_port_max=0, media_start_timeout_s=2)  # fmt: skip
    device = GbDeviceConfig.model_validate(
        {"id": SIPP_DEVICE, "kind": "gb28181", "name": "sipp", "grid": "g1", "password": env_secret("sipp-pw")}
    )
    return await make_platform([device], settings=settings)


async def test_sipp_device_answers_invite_and_plays_rtp_from_a_pcap(make_platform: Any, tmp_path: Path) -> None:
    pcap, clip = _sipp_device_pcap(tmp_path, 96)
    platform = await _sipp_device_platform(make_platform)
    puller = ChannelPuller(platform, grace_s=0)
    channel = "34020000001310000001"
    args = _sipp_device_args(platform.port, channel, pcap, "IN IP4 127.0.0.1", 96)
    sipp = asyncio.ensure_future(_run(args, tmp_path))
    try:
        await until(lambda: any(c.channel_id == channel for c in platform.channels()) or sipp.done(), 15)
        assert not sipp.done(), sipp.result()
        sub = await puller.subscribe(channel)
        got = []
        async with asyncio.timeout(15):
            while len(got) < 15:
                got.append(await sub.get())
        sub.close()
        assert sub.info is not None and sub.info.codec == "h264" and (sub.info.width, sub.info.height) == (320, 180)
        frames = {data for data, _ in clip.frames}
        assert all(p.data in frames for p in got) and got[0].key
        rc, err = await sipp
        assert rc == 0, err
        assert platform.stats["invite.ok"] == 1 and not platform.sessions  # released with BYE, sipp said 200
    finally:
        if not sipp.done():
            sipp.cancel()
        await puller.stop()


@pytest.mark.parametrize(
    ("connection", "payload_type", "reason", "counter"),
    [("IN IP4", 96, "bad_sdp.bad_connection", "invite.bad_sdp.bad_connection"),
     ("IN IP4 127.0.0.1", 97, "no_key_frame", "rtp.drop.payload_type")],
    ids=["malformed-answer-sdp", "unknown-payload-type"],
)  # fmt: skip
async def test_sipp_device_with_a_bad_answer_or_bad_rtp_is_refused_and_counted(
    make_platform: Any, tmp_path: Path, connection: str, payload_type: int, reason: str, counter: str
) -> None:
    pcap, _ = _sipp_device_pcap(tmp_path, payload_type)
    platform = await _sipp_device_platform(make_platform)
    puller = ChannelPuller(platform, grace_s=0)
    channel = "34020000001310000001"
    args = _sipp_device_args(platform.port, channel, pcap, connection, payload_type)
    sipp = asyncio.ensure_future(_run(args, tmp_path))
    try:
        await until(lambda: any(c.channel_id == channel for c in platform.channels()) or sipp.done(), 15)
        assert not sipp.done(), sipp.result()
        with pytest.raises(MediaError) as caught:
            await puller.subscribe(channel)
        assert reason in caught.value.reason, caught.value
        rc, err = await sipp
        assert rc == 0, err  # SharpEye ended the call with BYE, which sipp answered
        assert platform.media_totals()[counter] >= 1, platform.media_totals()
        assert not platform.sessions and not puller.pulled
    finally:
        if not sipp.done():
            sipp.cancel()
        await puller.stop()


async def test_sipp_upper_platform_invites_a_coded_file_camera(make_platform: Any, tmp_path: Path) -> None:
    """The same sipp upper platform watching an H.265 file camera offered under its ``gb_code``: the RTP at its port
    demuxes to the encoder's own slices (re-framed from Matroska, not re-encoded)."""
    path = tmp_path / "gate.mkv"
    sent = {vcl(u, "hevc") for u in write_clip(path, "hevc")}
    camera = CameraConfig.model_validate(
        {"id": "gate-cam", "kind": "camera", "name": "北门", "grid": "g1", "url": str(path), "gb_code": CAMERA_CODE}
    )
    service = CameraService([camera], tmp_path, lambda _: None, ManualClock(), workers=1, analytics=False)
    settings = GbSettings.model_validate(
        {"sip_id": PLATFORM_ID, "port": 0, "sip_t1_s": 0.1, "media_port_min": 0, "media_port_max": 0,
         "cascade": {"upper_id": UPPER_ID, "upper_host": "127.0.0.1", "upper_port": _free_udp_port(),
                     "local_port": 0, "password": env_secret("unused"), "retry_s": 5}}
    )  # fmt: skip
    platform = await make_platform([], settings=settings)
    offer = UpwardOffer(PLATFORM_ID, channels=platform.channels, devices=lambda: [camera], puller=None,
                        cameras=lambda: service)  # fmt: skip
    cascade = GbCascade(settings, catalog=offer.catalog, media=offer.media)
    transport, sink = await asyncio.get_running_loop().create_datagram_endpoint(RtpSink, local_addr=("127.0.0.1", 0))
    rtp_port = transport.get_extra_info("sockname")[1]
    await service.start()
    await cascade.start()
    try:
        await until(lambda: service.stats()[0].state == "live", 15)
        rc, err = await _run(_upper_args(cascade.endpoint.port, CAMERA_CODE, rtp_port, "upper_invite.xml"), tmp_path)
        assert rc == 0, err
        units = _units([p for p, _ in sink.packets])
        assert len(units) >= 10 and {u.codec for u in units} == {"hevc"} and units[0].key
        assert all(vcl(u.data, "hevc") in sent for u in units)
        assert offer.stats["invite.camera"] == 1 and cascade.stats["bye"] == 1
        await until(lambda: not cascade.streams)
    finally:
        transport.close()
        await cascade.stop()
        await service.stop()
