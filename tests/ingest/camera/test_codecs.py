"""Honest decoding: every common codec and container decodes as the container describes it, and a camera whose
packets give no picture says so (a video.loss alarm with cause decode_failure naming the codec and the error)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.camera.service import CameraService, CameraStats
from sharpeye.ingest.camera.worker import CameraDecoder
from sharpeye.ingest.transport.video.packet import VideoPacket
from sharpeye.ingest.transport.video.source import stream_info

from sharpeye.clock import ManualClock
from tests.ingest.camera.clips import SPECS, picture
from tests.ingest.camera.support import Collector, wait_until

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")  # Debian's opencv-doc (scripts/apt-packages.txt)


def _camera(cam_id: str, url: str, **extra: Any) -> CameraConfig:
    return CameraConfig.model_validate(
        {"id": cam_id, "kind": "camera", "name": cam_id, "grid": "g1", "url": url, "loss_after_s": 2.0, **extra}
    )


def _decode(path: Path, limit: int | None = None) -> tuple[CameraDecoder, int, list[np.ndarray]]:
    """Feed a file's packets to the worker's decoder, as capture would; returns it, the packet count and the
    analysed (scaled) pictures."""
    container: Any = av.open(str(path))
    stream = container.streams.video[0]
    info = stream_info(stream, 0, container.format.name)
    decoder = CameraDecoder(_camera("cam", str(path), analysis_fps=30), info)
    pictures: list[np.ndarray] = []
    process = decoder.analyzer.process

    def record(frame: np.ndarray, t: float, full: Any = None, lag_s: float = 0.0) -> Any:
        pictures.append(frame)
        return process(frame, t, full, lag_s)

    decoder.analyzer.process = record  # type: ignore[method-assign]
    n = 0
    for pkt in container.demux(stream):
        if not pkt.size:
            continue
        n += 1
        decoder.feed(VideoPacket(data=bytes(pkt), pts=pkt.pts, dts=pkt.dts, key=pkt.is_keyframe, arrival=0.0))
        if limit is not None and n >= limit:
            break
    container.close()
    return decoder, n, pictures


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_every_codec_and_container_decodes_at_its_true_size(spec: Any, codec_clips: dict[str, Path]) -> None:
    decoder, packets, pictures = _decode(codec_clips[spec.name])
    assert decoder.errors == 0, decoder.last_error
    # A decoder with B-frames holds back a few pictures until the stream goes on.
    assert decoder.decoded >= packets - (spec.max_b_frames or 0) - 2, (decoder.decoded, packets)
    assert decoder.size == (spec.width, spec.height)
    # The picture is the one encoded: the first analysed frame matches the source frame (scaled alike).
    first = pictures[0]
    want = np.asarray(
        av.VideoFrame.from_ndarray(picture(spec, 0), format="bgr24")
        .reformat(width=first.shape[1], height=first.shape[0], format="bgr24")
        .to_ndarray(),
        np.float64,
    )
    assert np.abs(first.astype(np.float64) - want).mean() < 12


def test_real_ms_mpeg4_clip_without_frame_size_in_stream_decodes() -> None:
    """vtest.avi (MS-MPEG4 v3 in AVI) carries its size only in the container: every packet must decode."""
    assert VTEST.is_file(), "install Debian's opencv-doc (scripts/apt-packages.txt)"
    decoder, packets, pictures = _decode(VTEST, limit=40)
    assert decoder.info.codec == "msmpeg4"
    assert decoder.errors == 0, decoder.last_error
    assert decoder.decoded == packets == 40
    assert decoder.size == (768, 576)
    assert pictures[0].std() > 20  # a real picture, not a grey field


def _parameter_sets() -> bytes:
    """The SPS and PPS (Annex-B) that libx264 writes before a 320x240 picture."""
    enc: Any = av.CodecContext.create("libx264", "w")
    enc.width, enc.height, enc.pix_fmt, enc.time_base = 320, 240, "yuv420p", Fraction(1, 10)
    frame = av.VideoFrame.from_ndarray(np.zeros((240, 320, 3), np.uint8), format="bgr24").reformat(format="yuv420p")
    frame.pts = 0
    data = b"".join(bytes(p) for p in [*enc.encode(frame), *enc.encode(None)])
    return data[: data.index(b"\x00\x00\x01\x65") - 1]  # up to the start code of the first IDR slice


def _garbage(path: Path, codec: str) -> Path:
    """A file whose container says ``codec`` but whose pictures are random bytes: packets flow, none decodes.
    (H.264 in MPEG-TS keeps real parameter sets, or the demuxer could not even open it.)"""
    rng = np.random.default_rng(3)
    fmt, head = ("mpegts", _parameter_sets() + b"\x00\x00\x00\x01\x65") if codec == "h264" else ("avi", b"")
    out: Any = av.open(str(path), "w", format=fmt)
    stream = out.add_stream(codec, rate=10)
    stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
    tb = Fraction(1, 90000) if fmt == "mpegts" else Fraction(1, 10)
    for i in range(200):
        pkt = av.Packet(head + rng.integers(0, 256, 1500, dtype=np.uint8).tobytes())
        pkt.pts = pkt.dts = round(i / 10 / tb)
        pkt.time_base = tb
        pkt.stream = stream
        pkt.is_keyframe = True
        out.mux(pkt)
    out.close()
    return path


def _no_key_frame(source: Path, path: Path) -> Path:
    """The long-GOP MPEG-TS clip without its first quarter, so its only key frame is gone: 15 s of P-frames."""
    data = source.read_bytes()
    cut = (len(data) // 4) // 188 * 188
    path.write_bytes(data[cut:])
    return path


async def test_cameras_that_see_and_cameras_that_say_why_not(codec_clips: dict[str, Path], tmp_path: Path) -> None:
    cameras = [
        _camera("vtest", str(VTEST)),
        _camera("divx3", str(codec_clips["msmpeg4v3-avi"])),
        _camera("hevc", str(codec_clips["h265-mkv"])),
        _camera("garbage-mpeg4", str(_garbage(tmp_path / "garbage.avi", "mpeg4"))),
        _camera("garbage-h264", str(_garbage(tmp_path / "garbage.ts", "h264"))),
        _camera("no-key", str(_no_key_frame(codec_clips["h264-longgop-ts"], tmp_path / "nokey.ts"))),
    ]
    collector = Collector()
    service = CameraService(cameras, tmp_path / "data", collector, ManualClock(), workers=2, backoff_max=1.0)

    def stats() -> dict[str, CameraStats]:
        return {s.camera_id: s for s in service.stats()}

    def settled() -> bool:
        s = stats()
        return (
            all(s[c].state == "live" and s[c].fps_decoded > 0 for c in ("vtest", "divx3", "hevc"))
            and s["garbage-mpeg4"].state == "blind"
            and s["garbage-h264"].state == "blind"
        )

    await service.start()
    try:
        assert await wait_until(settled, 15, step=0.2), [(x.camera_id, x.state, x.reason) for x in service.stats()]
        s = stats()
        assert s["vtest"].width == 768 and s["vtest"].height == 576 and s["vtest"].decode_errors == 0
        assert s["vtest"].reason is None and s["vtest"].health > 0
        for good in ("vtest", "divx3", "hevc"):
            assert not collector.of(good, "video.loss"), collector.of(good)
        # Blind cameras: health 0, a reason naming the codec, and a video.loss alarm saying decode_failure.
        mpeg4 = s["garbage-mpeg4"]
        assert mpeg4.health == 0 and mpeg4.reason is not None and "mpeg4" in mpeg4.reason, mpeg4
        assert "Invalid data" in mpeg4.reason, mpeg4
        alarm = collector.of("garbage-mpeg4", "video.loss")[0]
        assert alarm.value == "alarm" and alarm.attrs["cause"] == "decode_failure"
        assert alarm.attrs["codec"] == "mpeg4" and "Invalid data" in alarm.attrs["decode_error"]
        h264 = collector.of("garbage-h264", "video.loss")[0]
        assert h264.attrs["cause"] == "decode_failure" and h264.attrs["codec"] == "h264"
        assert h264.attrs["decode_error"].startswith("h264: ")
        # Packets without a key frame: not live, not an alarm, and it says what it waits for.
        nokey = s["no-key"]
        assert nokey.state == "starting" and nokey.health == 0, nokey
        assert nokey.reason is not None and nokey.reason.startswith("waiting for a key frame (h264)"), nokey
        assert not collector.of("no-key", "video.loss")
        # The service's line for /api/health: not ok while a camera is blind, and it says which and why.
        ok, detail = service.health()
        assert not ok and "2 blind" in detail and "garbage-mpeg4: packets arrive but none decodes (mpeg4)" in detail
    finally:
        await service.stop()
