"""The lean RTP loop's parts against aiortc's own (payloads, the NTP clock, refusal of an unknown sender) and its
UDP GSO sends over real loopback sockets."""

from __future__ import annotations

import asyncio
import errno

import av
import pytest
from aiortc import RTCRtpSender, clock
from aiortc.codecs.h264 import PACKET_MAX, H264Encoder, H264PayloadDescriptor
from aiortc.rtp import RTP_HISTORY_SIZE, HeaderExtensions, RtpPacket
from sharpeye.api.live.encoder import PTS_TIME_BASE
from sharpeye.api.live.sender import (
    GSO_MAX_SEGMENTS,
    Datagrams,
    History,
    Packetizer,
    _Unit,
    fragment,
    install,
    ntp_now,
    runs,
)

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


def depacketize(payloads: list[bytes]) -> bytes:
    """Annex B bytes from RTP payloads, by aiortc's own depacketiser (what its receiver does)."""
    return b"".join(H264PayloadDescriptor.parse(p)[1] for p in payloads)


@pytest.mark.parametrize("size", [PACKET_MAX + 1, PACKET_MAX + 2, 2 * PACKET_MAX, 4000, 25_001, 100_000])
def test_fragments_are_equal_but_the_last_and_as_many_as_aiortcs(size: int) -> None:
    nal = bytes([0x65]) + bytes(i * 7 % 256 for i in range(size - 1))
    ours, theirs = fragment(nal), H264Encoder._packetize_fu_a(nal)
    assert len(ours) == len(theirs)
    assert all(len(p) <= PACKET_MAX for p in ours)
    assert len({len(p) for p in ours[:-1]}) == 1 and len(ours[-1]) <= len(ours[0])
    assert [p[:2] for p in ours] == [p[:2] for p in theirs], "same FU indicator and start/end flags"
    assert depacketize(ours) == depacketize(theirs) == b"\x00\x00\x00\x01" + nal


def test_an_access_unit_round_trips_through_aiortcs_depacketiser() -> None:
    unit = UNIT + b"\x00\x00\x01\x41" + b"\x33" * 9000
    made = Packetizer().payloads(av.Packet(unit))
    assert depacketize(made) == depacketize(H264Encoder._packetize(H264Encoder._split_bitstream(unit)))
    assert len(runs([len(p) for p in made])) == 3, "a STAP-A, then one run per fragmented NAL unit"


def test_runs() -> None:
    assert runs([]) == []
    assert runs([100]) == [(0, 1)]
    assert runs([1000, 1000, 1000, 400, 1000, 1000]) == [(0, 4), (4, 6)]
    assert runs([300, 1000, 1000]) == [(0, 1), (1, 3)], "a short datagram can only end a run"
    assert runs([1000, 1001, 1001]) == [(0, 1), (1, 3)]
    assert runs([1000] * 150) == [(0, 60), (60, 120), (120, 150)], "at most GSO_MAX_BYTES per send"
    assert runs([10] * 150) == [(0, GSO_MAX_SEGMENTS), (64, 128), (128, 150)]


class Receiver(asyncio.DatagramProtocol):
    def __init__(self, expect: int) -> None:
        self.got: list[bytes] = []
        self.expect = expect
        self.done = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.got.append(data)
        if len(self.got) >= self.expect:
            self.done.set()


class Refusing:
    """A socket whose GSO sends the kernel refuses (as on a route whose MTU is below the segment size)."""

    def sendmsg(self, *args: object) -> int:
        raise OSError(errno.EINVAL, "Invalid argument")

    def close(self) -> None:
        pass


@pytest.mark.parametrize("mode", ["gso", "no gso", "refused"])
async def test_datagrams_arrive_whole_and_in_order(mode: str) -> None:
    loop = asyncio.get_running_loop()
    sizes = [1310] * 20 + [700, 90] + [1310] * 3 + [1310, 1200] + [50]
    units = [[bytes([i % 251]) * size for i, size in enumerate(sizes)] for _ in range(3)]
    expected = [d for unit in units for d in unit]
    receiver = Receiver(len(expected))
    rx, _ = await loop.create_datagram_endpoint(lambda: receiver, local_addr=("127.0.0.1", 0))
    tx, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
    out = Datagrams(tx, gso=mode != "no gso")
    if mode == "refused":
        out.sock = Refusing()
    try:
        for unit in units:
            out.send(unit, rx.get_extra_info("sockname"))
        await asyncio.wait_for(receiver.done.wait(), 5)
        assert receiver.got == expected
        assert out.gso_sends == (6 if mode == "gso" else 0), "two runs per unit"
        assert out.gso == (mode == "gso")
    finally:
        out.close()
        tx.close()
        rx.close()


def test_history_gives_back_what_aiortcs_would_have_kept() -> None:
    """aiortc's NACK handler asks ``history.get(seq % RTP_HISTORY_SIZE)`` and checks the sequence number."""
    history, theirs = History(), {}
    extensions = HeaderExtensions()
    extensions.mid = "0"
    sequence = 65_500  # wraps around 0xFFFF
    for n in (3, 1, 40, 150, 7):
        payloads = [bytes([n, k % 256]) * 5 for k in range(n)]
        history.add(_Unit(102, sequence, 1000 + n, 0xABCDEF, payloads, extensions))
        for k, payload in enumerate(payloads):
            rtp = RtpPacket(102, int(k == n - 1), (sequence + k) & 0xFFFF, 1000 + n, 0xABCDEF, payload)
            theirs[rtp.sequence_number % RTP_HISTORY_SIZE] = rtp
        sequence = (sequence + n) & 0xFFFF
    for key in range(RTP_HISTORY_SIZE):
        ours = history.get(key)
        assert ours is not None and ours.serialize() == theirs[key].serialize(), key
        assert ours.extensions is extensions
    assert History().get(3) is None
