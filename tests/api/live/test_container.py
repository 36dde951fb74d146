"""Real files through PyAV: H.264 in MP4 (AVCC) passes through as Annex B without re-encoding, looping with
continuous timestamps; MJPEG is encoded once."""

from __future__ import annotations

import asyncio
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from sharpeye.api.live.container import ContainerSource, ProbedSource
from sharpeye.api.live.setting import LiveSettings


def write_clip(path: Path, codec: str, frames: int = 20, fps: int = 20) -> None:
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = 160, 96
        stream.pix_fmt = "yuv420p" if codec == "libx264" else "yuvj420p"
        if codec == "libx264":
            stream.options = {"preset": "ultrafast", "bframes": "0", "g": "10"}
        for i in range(frames):
            image = np.full((96, 160, 3), (i * 12) % 255, np.uint8)
            image[:, (i * 7) % 160 :] = 40
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


async def collect(source: object, count: int) -> list[av.Packet]:  # type: ignore[type-arg]
    out = []
    async for packet in source.packets():  # type: ignore[attr-defined]
        out.append(packet)
        if len(out) == count:
            break
    return out


@pytest.mark.parametrize("suffix", [".mp4", ".ts"])
async def test_h264_file_passes_through_as_annex_b_and_loops(tmp_path: Path, suffix: str) -> None:
    clip = tmp_path / f"clip{suffix}"
    write_clip(clip, "libx264")
    with av.open(str(clip)) as container:
        original = [bytes(p) for p in container.demux(video=0) if p.size]
    packets = await asyncio.wait_for(collect(ContainerSource(str(clip)), 30), 10)
    assert packets[0].is_keyframe
    assert all(bytes(p).startswith((b"\x00\x00\x00\x01", b"\x00\x00\x01")) for p in packets)
    pts = [p.pts for p in packets]
    assert pts == sorted(pts) and len(set(pts)) == len(pts), "timestamps must keep rising across the loop"
    # passthrough: the coded slices are the file's own (MP4 only gains start codes and parameter sets)
    if suffix == ".ts":
        assert bytes(packets[1]) == original[1]
    else:
        assert bytes(packets[1]).endswith(original[1][4:])
    decoder = av.CodecContext.create("h264", "r")
    pictures = [f for p in packets for f in decoder.decode(p)]
    assert len(pictures) >= 25


async def test_mjpeg_file_is_encoded_once_to_h264(tmp_path: Path) -> None:
    clip = tmp_path / "clip.avi"
    write_clip(clip, "mjpeg")
    source = ProbedSource(str(clip), LiveSettings(key_frame_interval_s=0.5))
    packets = await asyncio.wait_for(collect(source, 12), 10)
    assert source.key_frame_on_request
    assert packets[0].is_keyframe and bytes(packets[0]).startswith(b"\x00\x00\x00\x01")
    decoder = av.CodecContext.create("h264", "r")
    pictures = [f for p in packets for f in decoder.decode(p)]
    assert pictures and pictures[0].width == 160
