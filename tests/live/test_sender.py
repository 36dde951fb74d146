"""The lean RTP loop's parts against aiortc's own: payloads, the NTP clock, refusal of an unknown sender."""

from __future__ import annotations

import av
from aiortc import RTCRtpSender, clock
from aiortc.codecs.h264 import H264Encoder

from api.live.encoder import PTS_TIME_BASE
from api.live.sender import Packetizer, install, ntp_now

# An access unit with a parameter set, a small NAL unit and one too large for a single RTP packet (FU-A).
UNIT = b"\x00\x00\x00\x01\x67" + bytes(20) + b"\x00\x00\x01\x68" + b"\x11" * 5 + b"\x00\x00\x01\x65" + b"\x22" * 4000


def packet() -> av.Packet:
    pkt = av.Packet(UNIT)
    pkt.pts = 9000
    pkt.time_base = PTS_TIME_BASE
    return pkt


def test_payloads_are_aiortcs_and_made_once_per_unit() -> None:
    pkt = packet()
    expected, timestamp = H264Encoder().pack(pkt)
    packetizer = Packetizer(size=2)
    first = packetizer.payloads(pkt)
    assert first == expected and timestamp == 9000
    assert len(first) >= 4, "a STAP-A and FU-A fragments"
    assert packetizer.payloads(pkt) is first
    assert (packetizer.packetised, packetizer.shared) == (1, 1)
    others = [packet(), packet()]
    for other in others:
        packetizer.payloads(other)
    # The cache is bounded: the first unit fell out and is packetised again.
    assert packetizer.payloads(pkt) == expected
    assert packetizer.packetised == 4


def test_ntp_clock_matches_aiortcs() -> None:
    ours, theirs = ntp_now(), clock.current_ntp_time()
    assert abs(ours - theirs) < (1 << 32) // 20, "within 50 ms"


def test_a_sender_without_aiortcs_internals_keeps_its_own_loop() -> None:
    class Stranger:
        pass

    assert not install(Stranger(), Packetizer())  # type: ignore[arg-type]
    assert hasattr(RTCRtpSender, "_run_rtp")
