"""Bad media input on real sockets: packets from a second source, a wrong SSRC, unknown payload types, garbage,
a TCP peer from the wrong address; each is dropped with a reason and counted, and the good stream goes on. An
INVITE storm is bounded by max_media_sessions and answered."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from sharpeye.ingest.gb28181.platform import MediaError
from sharpeye.ingest.transport.rtp import RtpPacket, RtpReceiver, build_rtp, frame_4571
from sharpeye.simulators.gb28181.device import SimDevice, code

from tests.ingest.gb28181.conftest import until
from tests.ingest.gb28181.test_gb28181_media import _online


async def test_udp_receiver_drops_strangers_and_keeps_the_stream() -> None:
    got: list[RtpPacket] = []
    receiver = RtpReceiver(got.append, mode="udp", expect_ssrc=1234)
    await receiver.start()
    good, stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        target = ("127.0.0.1", receiver.port)
        for seq in range(20):
            good.sendto(build_rtp(96, seq, seq * 3600, 1234, b"ps"), target)
            stranger.sendto(build_rtp(96, seq, 0, 1234, b"evil"), target)  # right SSRC, second source
            good.sendto(build_rtp(96, seq, 0, 999, b"other"), target)  # wrong SSRC
            good.sendto(build_rtp(8, seq, 0, 1234, b"audio"), target)  # payload type not asked for
            good.sendto(b"\x00garbage", target)
        await until(lambda: receiver.stats["packets"] >= 100, 5)
        assert [p.seq for p in got] == list(range(20)) and all(p.payload == b"ps" for p in got)
        assert receiver.stats["drop.wrong_source"] == 20
        assert receiver.stats["drop.wrong_ssrc"] == 20
        assert receiver.stats["drop.payload_type"] == 20
        assert receiver.stats["drop.short"] + receiver.stats["drop.version"] == 20
    finally:
        good.close()
        stranger.close()
        await receiver.stop()


async def test_tcp_passive_receiver_refuses_a_second_connection_and_a_stranger() -> None:
    got: list[RtpPacket] = []
    receiver = RtpReceiver(got.append, mode="tcp-passive", expect_host="127.0.0.1")
    await receiver.start()
    try:
        _, first = await asyncio.open_connection("127.0.0.1", receiver.port)
        await until(lambda: receiver.connected.is_set())
        reader2, second = await asyncio.open_connection("127.0.0.1", receiver.port)
        for seq in range(5):
            first.write(frame_4571(build_rtp(96, seq, 0, 77, b"x")))
        first.write(b"\x00\x05\xff\xff\xff\xff\xff")  # a framed garbage packet
        await first.drain()
        await until(lambda: len(got) == 5 and receiver.stats["drop.second_connection"] == 1, 5)
        assert await reader2.read() == b""  # closed on it
        assert receiver.stats["drop.short"] == 1
        first.close()
        second.close()
    finally:
        await receiver.stop()


async def test_invite_storm_is_bounded_and_answered(make_platform: Any) -> None:
    nvr = SimDevice(id=code("34020000", 118, 61), password="pw", kind="nvr", channel_count=8)
    platform, fleet = await _online(make_platform, [nvr], max_media_sessions=3)
    try:
        results = await asyncio.gather(*(platform.invite(cid) for cid, _ in nvr.channels), return_exceptions=True)
        sessions = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, MediaError)]
        assert len(sessions) == 3 and len(refused) == 5
        assert {r.reason for r in refused} == {"too_many_sessions"}
        assert platform.stats["invite.too_many_sessions"] == 5
        await asyncio.gather(*(s.close() for s in sessions))  # type: ignore[union-attr]
        assert await platform.invite(nvr.channels[7][0])  # room again
    finally:
        await fleet.stop()


@pytest.mark.parametrize("body", [b"", b"v=0\r\nm=video 0 RTP/AVP 96\r\n", b"\xff\xfe not sdp"])
async def test_bad_offers_to_the_device_simulator_get_400(make_platform: Any, body: bytes) -> None:
    from sharpeye.ingest.transport.sip.endpoint import Peer
    from sharpeye.ingest.transport.sip.message import SipMessage, new_call_id, new_tag

    ipc = SimDevice(id=code("34020000", 132, 62), password="pw")
    platform, fleet = await _online(make_platform, [ipc])
    try:
        msg = SipMessage(method="INVITE", uri=f"sip:{ipc.channels[0][0]}@127.0.0.1:{fleet.endpoint.port}")
        msg.add("From", f"<sip:x@y>;tag={new_tag()}")
        msg.add("To", f"<sip:{ipc.channels[0][0]}@y>")
        msg.add("Call-ID", new_call_id("127.0.0.1"))
        msg.add("CSeq", "1 INVITE")
        msg.add("Content-Type", "application/sdp")
        msg.body = body
        response = await platform.endpoint.invite(msg, Peer("udp", "127.0.0.1", fleet.endpoint.port))
        assert response.status == 400 and "Bad SDP" in response.reason
    finally:
        await fleet.stop()


async def test_the_answer_to_invite_is_retransmitted_until_the_ack(make_platform: Any) -> None:
    from sharpeye.ingest.transport.sip.message import parse
    from sharpeye.ingest.transport.sip.sdp import MediaDescription

    ipc = SimDevice(id=code("34020000", 132, 63), password="pw")
    _, fleet = await _online(make_platform, [ipc])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        offer = MediaDescription(owner="x", ip="127.0.0.1", port=9, ssrc="0100000009")
        body = offer.to_bytes()
        channel = ipc.channels[0][0]
        invite = (
            f"INVITE sip:{channel}@127.0.0.1:{fleet.endpoint.port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{sock.getsockname()[1]};branch=z9hG4bKtest1\r\n"
            f"From: <sip:34020000002000000001@3402000000>;tag=abc\r\nTo: <sip:{channel}@3402000000>\r\n"
            f"Call-ID: storm-1@127.0.0.1\r\nCSeq: 7 INVITE\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        sock.sendto(invite, ("127.0.0.1", fleet.endpoint.port))
        oks = 0
        async with asyncio.timeout(5):
            while oks < 3:  # 200 OK, then at least two retransmissions while no ACK comes
                msg = parse(await loop.sock_recv(sock, 65536))
                oks += msg.status == 200
        assert fleet.endpoint.stats["2xx_retransmissions"] >= 2
        ack = (
            f"ACK sip:{channel}@127.0.0.1:{fleet.endpoint.port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{sock.getsockname()[1]};branch=z9hG4bKtest2\r\n"
            f"From: <sip:34020000002000000001@3402000000>;tag=abc\r\nTo: <sip:{channel}@3402000000>;tag=x\r\n"
            f"Call-ID: storm-1@127.0.0.1\r\nCSeq: 7 ACK\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        sock.sendto(ack, ("127.0.0.1", fleet.endpoint.port))
        await until(lambda: not fleet.endpoint._unacked, 3)  # retransmissions stopped
        assert fleet.stats["acks"] == 1
    finally:
        sock.close()
        await fleet.stop()
