"""Evidence store: size cap deletes oldest first, references cannot leave the store, the ring keeps GOPs whole,
and every clip written plays back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import av
import pytest
from sharpeye.ingest.camera import evidence
from sharpeye.ingest.camera.evidence import (
    EvidenceError,
    EvidenceStore,
    PacketRing,
    _elementary,
    clip_method,
    stream_headers,
    write_clip,
)
from sharpeye.ingest.transport.video.packet import StreamInfo, VideoPacket
from sharpeye.ingest.transport.video.source import stream_info

from tests.ingest.camera.clips import SPECS
from tests.ingest.camera.test_codecs import VTEST


def test_size_cap_deletes_oldest_first(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "evidence", cap_bytes=25_000)
    refs = [f"cam-1/20260105/0{i}-intrusion-abc.jpg" for i in range(5)]
    for i, ref in enumerate(refs):
        path = store.write_snapshot(ref, bytes([i]) * 10_000)
        os.utime(path, (1_000_000 + i, 1_000_000 + i))  # distinct ages regardless of timer resolution
        store.enforce_cap()
    assert store.usage() <= 25_000
    kept = [ref for ref in refs if (tmp_path / "evidence" / ref).exists()]
    assert kept == refs[-2:]
    assert store.deleted == 3
    assert store.path(refs[-1]).read_bytes() == bytes([4]) * 10_000
    with pytest.raises(EvidenceError, match="no evidence"):
        store.path(refs[0])


def test_the_store_is_walked_only_when_its_running_total_passes_the_cap(tmp_path: Path) -> None:
    """Writes add to a running total; the files are listed and stat'ed only when it passes the cap (then the
    oldest go), and a file deleted behind the store's back only brings that walk sooner."""
    store = EvidenceStore(tmp_path / "evidence", cap_bytes=100_000)
    for i in range(9):
        path = store.write_snapshot(f"cam-1/20260105/0{i}-intrusion-abc.jpg", bytes([i]) * 10_000)
        os.utime(path, (1_000_000 + i, 1_000_000 + i))
    assert store.walks == 1  # the first write counts the store once; 90 000 bytes are under the cap
    for i in range(9, 12):
        path = store.write_snapshot(f"cam-1/20260105/{i}-intrusion-abc.jpg", bytes([i]) * 10_000)
        os.utime(path, (1_000_000 + i, 1_000_000 + i))
    assert store.walks == 3 and store.deleted == 2  # the 11th and 12th passed it: one walk each, oldest deleted
    assert store.usage() == 100_000
    assert not (tmp_path / "evidence/cam-1/20260105/00-intrusion-abc.jpg").exists()


@pytest.mark.parametrize(
    "ref",
    [
        "../secret.jpg",
        "cam-1/20260105/../../../etc/passwd",
        "/etc/passwd",
        "cam-1/2026/x.jpg",
        "cam-1/20260105/x.exe",
        "cam-1/20260105/.hidden.jpg",
        "",
    ],
)
def test_references_cannot_leave_the_store(tmp_path: Path, ref: str) -> None:
    store = EvidenceStore(tmp_path / "evidence")
    (tmp_path / "secret.jpg").write_bytes(b"x")
    with pytest.raises(EvidenceError):
        store.path(ref)


def test_symlink_out_of_the_store_is_refused(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "evidence")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "a.jpg").write_bytes(b"x")
    (tmp_path / "evidence" / "cam-1").mkdir()
    (tmp_path / "evidence" / "cam-1" / "20260105").symlink_to(tmp_path / "outside")
    with pytest.raises(EvidenceError, match="leaves the store"):
        store.path("cam-1/20260105/a.jpg")


def _pkt(i: int, key: bool, generation: int = 1) -> VideoPacket:
    return VideoPacket(
        data=bytes([i % 256]) * 10, pts=i * 9000, dts=i * 9000, key=key, arrival=100 + i * 0.1, generation=generation
    )


def test_ring_window_starts_at_a_key_frame_and_forgets_old_packets() -> None:
    ring = PacketRing(seconds=3.0)
    ring.info = StreamInfo(codec="h264", width=64, height=48, time_base=(1, 90000), generation=1)
    for i in range(100):  # 10 s at 10 fps, key frame every 10 packets
        ring.append(_pkt(i, key=i % 10 == 0))
    window = ring.window(start=100 + 8.5, end=100 + 9.5)
    assert window[0].key and window[0].pts == 80 * 9000
    assert window[-1].pts == 95 * 9000
    # Older than the ring's span: gone.
    assert ring.window(start=100 + 1, end=100 + 2) == []


def test_clip_without_packets_is_an_error(tmp_path: Path) -> None:
    info = StreamInfo(codec="h264", width=64, height=48, time_base=(1, 90000))
    with pytest.raises(EvidenceError):
        write_clip(tmp_path / "x.mp4", info, [])


def _packets(path: Path, limit: int = 60) -> tuple[StreamInfo, list[VideoPacket]]:
    container: Any = av.open(str(path))
    stream = container.streams.video[0]
    info = stream_info(stream, 0, container.format.name)
    packets = [
        VideoPacket(data=bytes(p), pts=p.pts, dts=p.dts, key=p.is_keyframe, arrival=i / 10)
        for i, p in enumerate(container.demux(stream))
        if p.size
    ][:limit]
    container.close()
    return info, packets


CLIP_CASES = [*(s.name for s in SPECS), "vtest"]


@pytest.mark.parametrize("name", CLIP_CASES)
def test_every_clip_written_plays(name: str, codec_clips: dict[str, Path], tmp_path: Path) -> None:
    """Remuxed when MP4 takes the codec (AVCC from MP4/Matroska converted with its parameter sets), else that clip
    alone transcoded to H.264; either way every packet's picture decodes back from the file at the right size."""
    source = VTEST if name == "vtest" else codec_clips[name]
    info, packets = _packets(source)
    # Twice: the second clip of a stream whose headers were seen takes its picture size from the first (no probe).
    for out in (tmp_path / "clip.mp4", tmp_path / "again.mp4"):
        _plays(out, info, packets)
        if clip_method(info) == "remux":
            headers = stream_headers(info.codec, _elementary(info, packets[:1])[0])
            assert headers and (info.codec, headers) in evidence._KNOWN, "the stream's headers were not learnt"


def _plays(out: Path, info: StreamInfo, packets: list[VideoPacket]) -> None:
    method = write_clip(out, info, packets)
    assert method == clip_method(info) == ("remux" if info.codec in ("h264", "hevc", "mpeg4") else "transcode")
    container: Any = av.open(str(out))
    stream = container.streams.video[0]
    frames = list(container.decode(stream))
    assert container.format.name.startswith("mov,mp4")
    assert stream.codec_context.name == (info.codec if method == "remux" else "h264")
    assert len(frames) == len(packets), (len(frames), len(packets))
    assert (frames[0].width, frames[0].height) == (info.width // 2 * 2, info.height // 2 * 2) or (
        method == "remux" and (frames[0].width, frames[0].height) == (info.width, info.height)
    )
    # Timestamps keep their order and the clip's length.
    times = [f.time for f in frames]
    assert times == sorted(times) and times[-1] - times[0] > 0.5 * len(packets) / (info.fps or 10)
    container.close()
