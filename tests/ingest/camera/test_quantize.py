"""The detector's int8 model: made by `sharpeye models install` from drawn pictures, run by the hub unless the float
one is asked for, and judged on real footage (vtest.avi) against the float model it was made from."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import av
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from sharpeye.ingest.camera.detector import ObjectDetector, _fold_pads
from sharpeye.ingest.camera.model import int8_path, runtime_model
from sharpeye.ingest.camera.quantize import calibration_images
from sharpeye.ingest.camera.service import CameraService

from sharpeye.clock import ManualClock
from sharpeye.settings import Settings
from tests.ingest.camera.support import Collector
from tests.ingest.camera.test_codecs import VTEST
from tests.ingest.camera.test_detector import _camera, _frame_at


def _person_score(detector: ObjectDetector, image: np.ndarray) -> float:
    return max((d.score for d in detector.detect(image, 96) if d.label == "person"), default=0.0)


def test_int8_model_gives_the_float_models_verdicts_on_real_footage(detector_model: Path) -> None:
    """Around every person the float model finds in vtest.avi from 40 to 80 s (every 2 s), a region seen at 96 px,
    as the analyser shows one walking person: the int8 model's person score stays within a few hundredths of the
    float model's and its verdict (at 0.5, a zone's min_score) is the same nearly everywhere."""
    quantized = int8_path(detector_model)
    note = json.loads(detector_model.with_suffix(".json").read_text())
    assert note["int8"]["sha256"] == hashlib.sha256(quantized.read_bytes()).hexdigest()
    full, small = ObjectDetector(detector_model), ObjectDetector(quantized)
    assert (full.precision, small.precision) == ("float32", "int8")
    container: Any = av.open(str(VTEST))
    frames = [
        f.to_ndarray(format="bgr24") for i, f in enumerate(container.decode(video=0)) if 400 <= i < 800 and i % 20 == 0
    ]
    container.close()
    floats, ints = [], []
    for image in frames:
        for found in full.detect(image, 320):
            if found.label != "person":
                continue
            x0, y0, x1, y1 = (int(v) for v in found.box)
            side = int(1.6 * max(x1 - x0, y1 - y0))
            cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
            region = image[max(0, cy - side // 2) : cy + side // 2, max(0, cx - side // 2) : cx + side // 2]
            floats.append(_person_score(full, region))
            ints.append(_person_score(small, region))
    a, b = np.array(floats), np.array(ints)
    assert len(a) >= 100, len(a)
    assert float(np.abs(a - b).mean()) <= 0.04, (a.round(2), b.round(2))
    assert ((a >= 0.5) == (b >= 0.5)).mean() >= 0.97
    assert (b >= 0.5).mean() >= 0.75  # people are found, not merely as rarely as by the float model
    # the two people stepping onto the lawn, in the whole picture
    lawn = [d for d in small.detect(_frame_at(55.0)) if d.label == "person" and d.score >= 0.6]
    assert len([d for d in lawn if d.box[3] / 576 > 0.8 and d.box[0] / 768 < 0.45]) == 2, lawn
    assert small.detect(np.full((240, 320, 3), 127, np.uint8)) == []


def test_the_hub_runs_the_int8_model_unless_told_otherwise(detector_model: Path, caplog: Any, tmp_path: Path) -> None:
    data = detector_model.parent.parent
    person = [_camera(objects="person")]
    assert Settings().detector_precision == "int8"
    service = CameraService(person, data, Collector(), ManualClock())
    assert service.detector_model == int8_path(detector_model)
    service = CameraService(person, data, Collector(), ManualClock(), detector_precision="float32")
    assert service.detector_model == detector_model
    # without cameras that name classes, no model at all
    assert CameraService([_camera()], data, Collector(), ManualClock()).detector_model is None
    # an install from before int8 (the float model alone): the float one, and a warning that says what to do
    alone = tmp_path / "nanodet.onnx"
    alone.symlink_to(detector_model)
    with caplog.at_level(logging.WARNING, logger="sharpeye.ingest.camera.model"):
        assert runtime_model(alone) == alone
    assert "sharpeye models install" in caplog.text
    with pytest.raises(ValueError, match="float32"):
        runtime_model(detector_model, "fp16")


def test_paddings_fold_into_convolutions_and_max_pooling_with_the_same_outputs(detector_model: Path) -> None:
    """TF.js pads with zeros before convolutions and with minus infinity before max pooling; folded, no Pad and no
    infinity is left (int8 could not scale one) and the network computes the same numbers."""
    source, folded = _fold_pads(detector_model)
    assert isinstance(source, bytes) and folded == 29
    proto = onnx.load_from_string(source)
    assert not [n for n in proto.graph.node if n.op_type == "Pad"]
    pools = [n for n in proto.graph.node if n.op_type == "MaxPool"]
    assert pools and all(any(a.name == "pads" and any(a.ints) for a in n.attribute) for n in pools)
    assert all(np.isfinite(onnx.numpy_helper.to_array(i)).all() for i in proto.graph.initializer)
    original = ort.InferenceSession(str(detector_model), providers=["CPUExecutionProvider"])
    slim = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    name = original.get_inputs()[0].name
    x = np.random.default_rng(3).normal(0, 1.5, size=(1, 3, 96, 160)).astype(np.float32)
    for p, q in zip(original.run(None, {name: x}), slim.run(None, {name: x}), strict=True):
        np.testing.assert_allclose(p, q, rtol=1e-4, atol=1e-4)


def test_calibration_pictures_are_drawn_the_same_every_time() -> None:
    first, again = list(calibration_images(3)), list(calibration_images(3))
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert all(img.shape == (576, 768, 3) and img.std() > 20 for img in first)  # textured, not flat
    assert not np.array_equal(first[0], first[1])
