"""Own recordings: every remuxable codec is written as segmented MP4 that decodes, indexed by time, cut into one
MP4 for a range, kept within its age and size limits, and recorded around alarms in events mode."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import av
import pytest
from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.recording.config import RecordConfig
from sharpeye.ingest.recording.recorder import Recorder
from sharpeye.ingest.recording.segment import RecordingError, remux_range
from sharpeye.ingest.recording.store import RecordingStore

from tests.ingest.camera.clips import SPECS
from tests.ingest.recording.support import clip_packets, decode_file

REMUXED = [s for s in SPECS if s.name in ("h264-mp4", "h264-mkv", "h264-ts", "h264-bframes-mp4", "h265-mp4",
                                          "h265-mkv", "mpeg4-avi")]  # fmt: skip


def _record(store: RecordingStore, cam: str, config: RecordConfig, path: Path, loops: int) -> Recorder:
    info, packets = clip_packets(path, loops)
    rec = Recorder(cam, config, store)
    rec.start()
    rec.open(info)
    for p in packets:
        rec.push(p)
    rec.stop()
    assert rec.join(60)
    return rec


@pytest.mark.parametrize("spec", REMUXED, ids=[s.name for s in REMUXED])
def test_every_remuxable_codec_records_segments_that_decode(
    spec: object, codec_clips: dict[str, Path], tmp_path: Path
) -> None:
    name = spec.name  # type: ignore[attr-defined]
    store = RecordingStore(tmp_path / "rec")
    rec = _record(store, "cam-1", RecordConfig(segment_s=2), codec_clips[name], loops=3)  # 9 s of video
    assert rec.errors == 0, rec.last_error
    segs = store.segments("cam-1", 0, time.time() + 10)
    assert len(segs) >= 3, segs
    assert rec.segments == len(segs)
    assert rec.bytes_written == sum(s.bytes for s in segs) > 0
    total = 0
    for seg in segs:
        n, size, _ = decode_file(store.path("cam-1", seg.name))
        assert size == (spec.width, spec.height)  # type: ignore[attr-defined]
        total += n
    # Every picture recorded decodes (a decoder with B-frames may hold back the last few of each segment).
    assert total >= 90 - 3 * len(segs), total
    # Segments follow one another: each starts where the previous ended (within a frame).
    for a, b in itertools.pairwise(segs):
        assert abs(b.start - a.end) < 0.25, (a, b)
    assert abs((segs[-1].end - segs[0].start) - 9.0) < 0.5


def test_time_range_queries_and_one_mp4_for_a_range(codec_clips: dict[str, Path], tmp_path: Path) -> None:
    store = RecordingStore(tmp_path / "rec")
    _record(store, "cam-1", RecordConfig(segment_s=2), codec_clips["h264-ts"], loops=4)  # 12 s, a key frame every 3 s
    segs = store.segments("cam-1", 0, time.time() + 10)
    t0, t1 = segs[0].start, segs[-1].end
    middle = store.segments("cam-1", t0 + 3.0, t0 + 7.0)
    assert middle and middle[0].start <= t0 + 3.0 and middle[-1].end >= t0 + 7.0
    assert all(s.overlaps(t0 + 3.0, t0 + 7.0) for s in middle)
    assert store.segments("cam-1", t1 + 1, t1 + 100) == []
    assert store.from_moment("cam-1", t0 + 5.0)[0].overlaps(t0 + 5.0, t0 + 5.01)
    out = tmp_path / "range.mp4"
    start, end = remux_range([(store.path("cam-1", s.name), s.start) for s in middle], t0 + 3.0, t0 + 7.0, out)
    assert start <= t0 + 3.0 and start > t0 + 3.0 - 2.5  # from the key frame before the start
    assert end >= t0 + 6.8
    n, size, _ = decode_file(out)
    assert size == (192, 108)
    assert abs(n - round((end - start) * 10) - 1) <= 2, (n, start, end)
    container = av.open(str(out))
    first = next(container.demux(container.streams.video[0]))
    assert first.is_keyframe
    container.close()
    # The range stays remuxed: the file holds H.264 as the camera sent it.
    assert av.open(str(out)).streams.video[0].codec_context.name == "h264"
    with pytest.raises(RecordingError):
        remux_range([], t0, t1, tmp_path / "none.mp4")


def test_retention_by_size_and_age_deletes_oldest_first_and_index_survives_restart(
    codec_clips: dict[str, Path], tmp_path: Path
) -> None:
    store = RecordingStore(tmp_path / "rec")
    _record(store, "cam-1", RecordConfig(segment_s=2), codec_clips["h264-ts"], loops=4)
    segs = store.segments("cam-1", 0, time.time() + 10)
    assert len(segs) >= 4
    cap = sum(s.bytes for s in segs[-2:])
    deleted = store.enforce("cam-1", keep_days=7, max_bytes=cap)
    kept = store.segments("cam-1", 0, time.time() + 10)
    assert deleted == len(segs) - 2 and kept == segs[-2:]
    assert store.usage("cam-1") == cap
    assert not (store.root / "cam-1" / segs[0].name).exists()
    # A leftover part of a crash is removed at start; the index comes back from the file names.
    (store.root / "cam-1" / kept[0].name).with_name("1.mp4.part").write_bytes(b"x")
    again = RecordingStore(tmp_path / "rec")
    assert again.load("cam-1") == 2
    assert again.partials_removed == 1
    assert again.segments("cam-1", 0, time.time() + 10) == kept
    # Age: a day later with keep_days under a day everything goes.
    assert again.enforce("cam-1", keep_days=0.5, max_bytes=10**12, now=time.time() + 86400) == 2
    assert again.segments("cam-1", 0, time.time() + 10) == []
    assert again.deleted == 2


def test_events_mode_records_from_pre_to_post_around_a_trigger(codec_clips: dict[str, Path], tmp_path: Path) -> None:
    info, packets = clip_packets(codec_clips["h264-ts"], loops=10)  # 30 s
    store = RecordingStore(tmp_path / "rec")
    rec = Recorder("cam-1", RecordConfig(mode="events", pre_s=3, post_s=4, segment_s=60), store)
    rec.start()
    rec.open(info)
    half = len(packets) // 2
    for p in packets[:half]:
        rec.push(p)
    at = time.time() - (time.monotonic() - packets[half - 1].arrival)
    rec.trigger(at)
    for p in packets[half:]:
        rec.push(p)
    rec.stop()
    assert rec.join(30)
    assert rec.errors == 0, rec.last_error
    segs = store.segments("cam-1", 0, time.time() + 10)
    assert len(segs) == 1, segs
    seg = segs[0]
    # From the key frame at or before 3 s earlier (each 3 s loop of the clip starts with one) to 4 s after.
    assert at - 3 - 3.05 <= seg.start <= at - 3 + 0.01, seg.start - at
    assert at + 4 - 0.2 <= seg.end <= at + 4 + 0.3, seg.end - at
    n, _, _ = decode_file(store.path("cam-1", seg.name))
    assert abs(n - (seg.end - seg.start) * 10) <= 2


def test_a_codec_mp4_cannot_take_unchanged_is_a_recorder_error(codec_clips: dict[str, Path], tmp_path: Path) -> None:
    store = RecordingStore(tmp_path / "rec")
    rec = _record(store, "cam-1", RecordConfig(), codec_clips["mjpeg-avi"], loops=1)
    stats = rec.stats()
    assert stats.state == "error" and "mjpeg" in (stats.reason or "")
    assert rec.errors == 1 and rec.segments == 0


def test_a_full_queue_drops_packets_and_the_next_segment_starts_at_a_key_frame(
    codec_clips: dict[str, Path], tmp_path: Path
) -> None:
    info, packets = clip_packets(codec_clips["h264-ts"], loops=2)
    store = RecordingStore(tmp_path / "rec")
    rec = Recorder("cam-1", RecordConfig(segment_s=2, queue_mb=1), store)
    # Not started: the queue fills up; a packet of 1 MB cannot fit.
    rec.open(info)
    for p in packets[:20]:
        rec.push(p)
    from sharpeye.ingest.transport.video.packet import VideoPacket

    rec.push(VideoPacket(data=b"\0" * (1024 * 1024), pts=None, dts=None, key=False, arrival=time.monotonic()))
    for p in packets[20:]:
        rec.push(p)
    assert rec.dropped == 1
    rec.start()
    rec.stop()
    assert rec.join(30)
    assert rec.errors == 0, rec.last_error
    for seg in store.segments("cam-1", 0, time.time() + 10):
        n, _, _ = decode_file(store.path("cam-1", seg.name))
        assert n > 0


def test_record_config_is_validated() -> None:
    base = {"id": "c", "kind": "camera", "name": "c", "grid": "g", "url": "x.mp4"}
    cfg = CameraConfig.model_validate({**base, "record": {"mode": "events", "pre_s": 5, "post_s": 20}})
    assert cfg.record is not None and cfg.record.mode == "events"
    with pytest.raises(ValueError, match="mode"):
        CameraConfig.model_validate({**base, "record": {"mode": "always"}})
    with pytest.raises(ValueError, match="segment_s"):
        CameraConfig.model_validate({**base, "record": {"segment_s": 1}})
    with pytest.raises(ValueError, match="nope"):
        CameraConfig.model_validate({**base, "record": {"nope": 1}})
