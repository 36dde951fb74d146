"""MPEG-PS mux and demux, SDP and RTP parsing: pure functions over real encoded H.264 and H.265."""

from __future__ import annotations

import av
import pytest
from sharpeye.ingest.transport.ps import PsDemuxer, PsMuxer, rtp_payloads
from sharpeye.ingest.transport.rtp import Reorder, RtpError, build_rtp, parse_rtp
from sharpeye.ingest.transport.sip.sdp import MediaDescription, SdpError, parse_sdp, ssrc_for
from sharpeye.simulators.gb28181.media import encode_clip


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_ps_round_trip_gives_back_the_same_access_units_and_codec(codec: str) -> None:
    clip = encode_clip("intrusion", codec, 320, 180, 2.0)
    muxer, demuxer = PsMuxer(codec), PsDemuxer()
    units = []
    for n, (data, key) in enumerate(clip.frames):
        ps = muxer.mux(data, n * 3600, key)
        for payload in rtp_payloads(ps, 500):  # cut anywhere, as RTP does
            units += demuxer.feed(payload)
        units += demuxer.flush()
    assert [u.data for u in units] == [data for data, _ in clip.frames]
    assert [u.key for u in units] == [key for _, key in clip.frames]
    assert [u.pts for u in units] == [n * 3600 for n in range(len(clip.frames))]
    assert {u.codec for u in units} == {codec}  # from the program stream map's stream type
    assert demuxer.stats["psm"] == sum(1 for _, key in clip.frames if key)
    # the demuxed units decode
    decoder = av.CodecContext.create(codec, "r")
    frames = [f for u in units for f in decoder.decode(av.Packet(u.data))]
    assert len(frames) >= len(units) - 2 and frames[0].width == 320


def test_ps_with_a_large_frame_spans_several_pes_packets() -> None:
    data = b"\x00\x00\x00\x01\x65" + bytes(range(256)) * 600  # 150 KB "IDR"
    ps = PsMuxer("h264").mux(data, 90000, True)
    assert ps.count(b"\x00\x00\x01\xe0") >= 3
    demuxer = PsDemuxer()
    units = demuxer.feed(ps) + demuxer.flush()
    assert len(units) == 1 and units[0].data == data and units[0].key


def test_ps_garbage_is_skipped_and_counted() -> None:
    clip = encode_clip("intrusion", "h264", 320, 180, 2.0)
    muxer, demuxer = PsMuxer("h264"), PsDemuxer()
    units = demuxer.feed(b"\xff\x00\x00\x01\x07garbage" * 50)
    for n, (data, key) in enumerate(clip.frames[:5]):
        units += demuxer.feed(muxer.mux(data, n * 3600, key) + b"\x13\x37" * 10)
        units += demuxer.flush()
    assert len(units) == 5
    assert demuxer.stats["garbage_bytes"] > 0


def test_sdp_offer_round_trip_and_bad_sdp_reasons() -> None:
    ssrc = ssrc_for("3402000000", 17)
    assert ssrc == "0200000017"
    offer = MediaDescription(owner="34020000002000000001", ip="127.0.0.1", port=30000, transport="tcp",
                             setup="passive", ssrc=ssrc, stream_number=1)  # fmt: skip
    text = offer.to_bytes()
    assert b"m=video 30000 TCP/RTP/AVP 96" in text and b"a=setup:passive" in text and b"y=0200000017" in text
    back = parse_sdp(text)
    assert (back.transport, back.setup, back.ssrc, back.port, back.stream_number) == ("tcp", "passive", ssrc, 30000, 1)
    assert back.payloads == {96: "PS"}
    for body, reason in [
        (b"", "empty"),
        (b"v=0\r\ns=Play\r\n", "no_media"),
        (b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 70000 RTP/AVP 96\r\n", "bad_port"),
        (b"v=0\r\nc=IN IP4 nowhere\r\nm=video 5000 RTP/AVP 96\r\n", "bad_address"),
        (b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 5000 RTP/SAVP 96\r\n", "bad_protocol"),
        (b"v=0\r\nc=IN IP4 1.2.3.4\r\nm=video 5000 RTP/AVP 96\r\ny=abc\r\n", "bad_ssrc"),
        (b"garbage line\r\n", "bad_line"),
    ]:
        with pytest.raises(SdpError) as info:
            parse_sdp(body)
        assert info.value.reason == reason, body


def test_rtp_parse_and_reorder_counts_loss() -> None:
    packet = parse_rtp(build_rtp(96, 65535, 1234, 42, b"abc", marker=True))
    assert (packet.seq, packet.timestamp, packet.ssrc, packet.marker, packet.payload) == (65535, 1234, 42, True, b"abc")
    for bad in (b"\x80" * 5, b"\x40" + b"\x00" * 20):
        with pytest.raises(RtpError):
            parse_rtp(bad)
    reorder = Reorder(depth=4, wait_s=10)
    seqs = [65533, 65535, 65534, 0, 2, 3, 4, 5, 6, 7]  # 1 is lost, wrap-around in between
    out = []
    for seq in seqs:
        out += [p.seq for p in reorder.push(parse_rtp(build_rtp(96, seq, 0, 1, b"")), 0.0)]
    assert out[:4] == [65533, 65534, 65535, 0]
    assert reorder.lost == 1 and out[4:] == [2, 3, 4, 5, 6, 7]
