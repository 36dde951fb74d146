"""The object detector in 8-bit integers: static quantization of the converted NanoDet, made once at install.

onnxruntime runs NanoDet's convolutions in int8 about 2.5 times faster than in float32 on one thread (96 px: 1.0
against 2.7 ms; 320 px: 10 against 25; on x86-64 with AVX-512 VNNI, ``bench/video_costs.py``). ``quantize(model,
target)`` writes such a model beside the float one:

- weights per output channel (int8, symmetric), activations per tensor (uint8), as QuantizeLinear /
  DequantizeLinear pairs around each operator (QDQ: onnxruntime fuses them into integer kernels);
- the head stays in float32: each output's chain back to its convolution (the class logits and box distances, the
  sigmoid). Its ranges cannot be learned from pictures without many confident objects, and a score clipped at
  the calibration's largest (0.4 when it was quantized too) would drop every person below a zone's
  ``min_score``;
- activation ranges are calibrated (min and max) on regions of pictures this module draws itself
  (``calibration_images``: textured ground and walls, a road, windows, people and vehicles as simple shapes, light
  and noise varied), seen as the analyser shows regions to the detector. No footage is needed at install, and none
  that the tests score against is used: on vtest.avi (real people, ``tests/ingest/camera/test_quantize.py``) the
  int8 model's person verdicts agree with the float model's on 99 % or more of the regions.

The float model's paddings are folded first (``detector._fold_pads``; no tensor may hold an infinity).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from sharpeye.ingest.camera.detector import PRECISION_KEY, ObjectDetector, _fold_pads

log = logging.getLogger(__name__)

SEED = 28181
CALIBRATION_PICTURES = 48
REGIONS_PER_PICTURE = 6
REGION_SIZES = (96, 128)  # the sizes the analyser shows one object at (detector.region_size and a merged region)


def _field(rng: np.random.Generator, width: int, height: int, cells: int) -> np.ndarray:
    """A smooth random colour field: a coarse grid of colours scaled up with cubic interpolation."""
    grid = rng.integers(30, 225, size=(max(2, height // cells), max(2, width // cells), 3), dtype=np.uint8)
    field: np.ndarray = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    return field


def _person(img: np.ndarray, rng: np.random.Generator, x: int, foot: int, tall: int) -> None:
    """An upright figure: head, torso, arms and legs, in random clothes."""
    skin = tuple(int(c) for c in rng.integers(60, 220, size=3))
    top = tuple(int(c) for c in rng.integers(0, 256, size=3))
    legs = tuple(int(c) for c in rng.integers(0, 180, size=3))
    head = max(2, tall // 14)
    neck = foot - tall + 2 * head
    hip = foot - tall * 45 // 100
    half = max(2, tall // 9)
    stride = int(rng.integers(-half, half + 1))
    cv2.circle(img, (x, foot - tall + head), head, skin, -1, cv2.LINE_AA)
    cv2.rectangle(img, (x - half, neck), (x + half, hip), top, -1)
    width = max(1, tall // 20)
    cv2.line(img, (x - half, neck + 2), (x - half - stride // 2, hip), top, width + 1, cv2.LINE_AA)
    cv2.line(img, (x + half, neck + 2), (x + half + stride // 2, hip), top, width + 1, cv2.LINE_AA)
    cv2.line(img, (x - half // 2, hip), (x - half // 2 - stride, foot), legs, width + 2, cv2.LINE_AA)
    cv2.line(img, (x + half // 2, hip), (x + half // 2 + stride, foot), legs, width + 2, cv2.LINE_AA)


def _vehicle(img: np.ndarray, rng: np.random.Generator, x: int, foot: int, long: int) -> None:
    """A car or van side on: body, windows, two wheels."""
    body = tuple(int(c) for c in rng.integers(0, 256, size=3))
    high = long * int(rng.integers(35, 60)) // 100
    cv2.rectangle(img, (x, foot - high), (x + long, foot - high // 4), body, -1)
    cv2.rectangle(img, (x + long // 6, foot - high - high // 2), (x + long * 3 // 4, foot - high), body, -1)
    glass = tuple(int(c) for c in rng.integers(20, 120, size=3))
    cv2.rectangle(img, (x + long // 5, foot - high - high // 3), (x + long * 7 // 10, foot - high - 2), glass, -1)
    for wx in (x + long // 5, x + long * 4 // 5):
        cv2.circle(img, (wx, foot - high // 5), max(2, high // 4), (20, 20, 20), -1, cv2.LINE_AA)


def calibration_images(count: int = CALIBRATION_PICTURES, seed: int = SEED) -> Iterator[np.ndarray]:
    """Street-like BGR pictures (768 x 576): ground and walls with texture, windows, a road, people and vehicles
    of several sizes, daylight to dusk, camera noise and now and then blur. Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    width, height = 768, 576
    for _ in range(count):
        img = _field(rng, width, height, int(rng.integers(16, 64)))
        img = cv2.add(img, rng.normal(0, 10, size=(height, width, 3)).clip(-40, 40).astype(np.int16), dtype=cv2.CV_8U)
        for _ in range(int(rng.integers(4, 14))):  # walls with windows
            x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height // 2))
            w, h = int(rng.integers(width // 16, width // 4)), int(rng.integers(height // 10, height // 2))
            cv2.rectangle(img, (x0, y0), (x0 + w, y0 + h), tuple(int(c) for c in rng.integers(20, 235, size=3)), -1)
            step = max(6, w // int(rng.integers(3, 8)))
            for wx in range(x0 + step // 3, x0 + w - step // 2, step):
                cv2.rectangle(img, (wx, y0 + h // 6), (wx + step // 2, y0 + h // 3), (40, 40, 50), -1)
        road = int(rng.integers(height // 2, height * 4 // 5))
        grey = tuple(int(c) for c in rng.integers(70, 140, size=3))
        cv2.rectangle(img, (0, road), (width, road + height // 10), grey, -1)
        for _ in range(int(rng.integers(1, 6))):
            x, foot = int(rng.integers(-50, width)), int(rng.integers(road, height))
            _vehicle(img, rng, x, foot, int(rng.integers(60, 260)))
        for _ in range(int(rng.integers(2, 10))):
            foot = int(rng.integers(height // 3, height + 20))
            _person(img, rng, int(rng.integers(0, width)), foot, int(rng.integers(30, 40 + foot // 2)))
        gain, bias = float(rng.uniform(0.4, 1.3)), float(rng.uniform(-30, 30))
        img = cv2.convertScaleAbs(img, alpha=gain, beta=bias)
        if rng.random() < 0.3:
            img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.8, 2.0)))
        noise = rng.normal(0, float(rng.uniform(1, 8)), size=(height, width, 1)).astype(np.int16)
        yield cv2.add(img, np.repeat(noise, 3, axis=2), dtype=cv2.CV_8U)


def calibration_blobs(seed: int = SEED) -> list[np.ndarray]:
    """The detector's inputs for calibration: square regions of the calibration pictures at the sizes the analyser
    shows one object at, as ``ObjectDetector`` makes them."""
    rng = np.random.default_rng(seed + 1)
    blobs = []
    for img in calibration_images(seed=seed):
        height, width = img.shape[:2]
        for _ in range(REGIONS_PER_PICTURE):
            side = int(rng.integers(min(height, width) // 8, min(height, width) // 2))
            x, y = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
            size = int(rng.choice(REGION_SIZES))
            blobs.append(ObjectDetector.blob(img[y : y + side, x : x + side], size, size, size, size))
    return blobs


def _head(proto: Any) -> list[str]:
    """The nodes from each graph output back to (and with) the convolution that computes it."""
    producer = {out: node for node in proto.graph.node for out in node.output}
    names: list[str] = []
    for output in proto.graph.output:
        node = producer.get(output.name)
        while node is not None and node.name not in names:
            names.append(node.name)
            if node.op_type == "Conv" or not node.input:
                break
            node = producer.get(node.input[0])
    return names


def quantize(model: Path, target: Path) -> dict[str, Any]:
    """Write the int8 model of the float ``model`` to ``target``; returns what it did, for the install note."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source, folded = _fold_pads(model)
    blobs = calibration_blobs()
    with tempfile.TemporaryDirectory(prefix="sharpeye-quantize-") as tmp:
        work = Path(tmp)
        float_file = Path(source) if isinstance(source, str) else work / "folded.onnx"
        if isinstance(source, bytes):
            float_file.write_bytes(source)
        ready = work / "ready.onnx"
        quant_pre_process(str(float_file), str(ready), skip_symbolic_shape=True)
        proto = onnx.load(str(ready))
        head = _head(proto)
        name = proto.graph.input[0].name

        class Regions(CalibrationDataReader):  # type: ignore[misc]
            def __init__(self) -> None:
                self._blobs = iter(blobs)

            def get_next(self) -> dict[str, np.ndarray] | None:
                blob = next(self._blobs, None)
                return None if blob is None else {name: blob}

        quantize_static(
            str(ready),
            str(target),
            Regions(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            nodes_to_exclude=head,
        )
    quantized = onnx.load(str(target))
    onnx.helper.set_model_props(quantized, {PRECISION_KEY: "int8"})  # what ``ObjectDetector.precision`` reads
    onnx.save(quantized, str(target))
    log.info("detector model quantized to int8 at %s (%d calibration regions, head of %d nodes in float)",
             target, len(blobs), len(head))  # fmt: skip
    return {
        "method": "static, QDQ: int8 weights per channel, uint8 activations per tensor (min-max)",
        "calibration": f"{len(blobs)} regions of {CALIBRATION_PICTURES} drawn street pictures (seed {SEED})",
        "float_head_nodes": len(head),
        "paddings_folded": folded,
    }
