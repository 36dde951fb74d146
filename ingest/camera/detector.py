"""Object detector: NanoDet (COCO, 80 classes) run by onnxruntime on regions of motion.

``ObjectDetector.detect(image)`` letterboxes a BGR image to the model's square input, normalizes it as NanoDet was
trained (BGR, per-channel mean and standard deviation, not /255), runs the network on one thread and decodes its
generalized-focal-loss head: per stride (8, 16, 32) a sigmoid score per class and, per box side, a distribution
over 11 distance bins whose expectation times the stride is the distance from the cell's centre. Boxes of the
classes asked for are kept above a floor score, then non-maximum suppression per class.

The model file comes from ``sharpeye models install`` (``model.py``); a rule that asks for object classes cannot
start without it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import cv2
import msgspec
import numpy as np

log = logging.getLogger(__name__)

COCO = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)  # fmt: skip
# The classes a camera rule can ask for (the street-scene subset of COCO).
CLASSES = ("person", "bicycle", "car", "motorcycle", "bus", "truck")
CLASS_INDEX = {name: COCO.index(name) for name in CLASSES}

MEAN = np.array([103.53, 116.28, 123.675], np.float32)  # B, G, R
STD = np.array([57.375, 57.12, 58.395], np.float32)
STRIDES = (8, 16, 32)
BINS = 11


class Detection(msgspec.Struct, frozen=True):
    """One object: class name, score 0..1 and box (x0, y0, x1, y1) in the pixels of the image given."""

    label: str
    score: float
    box: tuple[float, float, float, float]


class DetectorError(RuntimeError):
    """The model is missing or cannot be loaded."""


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    out: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return out


class ObjectDetector:
    """NanoDet through onnxruntime, on one thread (the analytics worker processes give the parallelism)."""

    def __init__(self, model: Path, classes: tuple[str, ...] = CLASSES, floor: float = 0.3, size: int = 320) -> None:
        if not model.is_file():
            raise DetectorError(f"no detector model at {model}")
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise DetectorError("onnxruntime is not installed") from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session: Any = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise DetectorError(f"cannot load detector model {model}: {exc}") from exc
        inp = self._session.get_inputs()[0]
        self._input = inp.name
        fixed = inp.shape[2] if isinstance(inp.shape[2], int) else None
        # A model converted by our converter takes any multiple of 32; an older fixed one only its own size.
        self.size = fixed or size
        self._free = fixed is None
        if self.size % STRIDES[-1]:
            raise DetectorError(f"detector input size {self.size} is not a multiple of {STRIDES[-1]}")
        self._model = model
        self._levels: list[tuple[int, int, str, str]] = self._pair_outputs()
        self._by_size = {self.size: self._levels}
        self._names = [name for _, _, c, r in self._levels for name in (c, r)]
        self.classes = classes
        self._class_ids = np.array([COCO.index(c) for c in classes], np.int64)
        self.floor = floor
        self.inferences = 0
        self.cpu_s = 0.0

    def _pair_outputs(self) -> list[tuple[int, int, str, str]]:
        """(stride, side, score output, box output) per level: paired by their cell counts on a blank input."""
        blank = np.zeros((1, 3, self.size, self.size), np.float32)
        outputs = self._session.get_outputs()
        results = self._session.run([o.name for o in outputs], {self._input: blank})
        by_cells: dict[int, dict[str, str]] = {}
        for o, r in zip(outputs, results, strict=True):
            cells, width = int(r.shape[1]), int(r.shape[2])
            by_cells.setdefault(cells, {})["cls" if width == len(COCO) else "reg"] = o.name
        levels = []
        for stride in STRIDES:
            side = self.size // stride
            pair = by_cells.get(side * side)
            if pair is None or set(pair) != {"cls", "reg"}:
                raise DetectorError(f"model {self._model} has no outputs for stride {stride} at size {self.size}")
            levels.append((stride, side, pair["cls"], pair["reg"]))
        return levels

    def detect(self, image: np.ndarray, size: int | None = None) -> list[Detection]:
        """Objects of ``self.classes`` in a BGR image, scores at or above the floor, boxes in its pixels. ``size``
        (a multiple of 32) is the side the image is seen at; the detector's own by default."""
        h, w = image.shape[:2]
        if h < 2 or w < 2:
            return []
        if size is not None and size != self.size and self._free:
            self.size = size
            if size not in self._by_size:
                self._by_size[size] = self._pair_outputs()
            self._levels = self._by_size[size]
            self._names = [name for _, _, c, r in self._levels for name in (c, r)]
        scale = self.size / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        canvas = np.empty((self.size, self.size, 3), np.float32)
        canvas[:] = MEAN  # padding is the mean: zero after normalization
        canvas[:nh, :nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        blob = ((canvas - MEAN) / STD).transpose(2, 0, 1)[None]
        started = time.process_time()
        results = self._session.run(self._names, {self._input: np.ascontiguousarray(blob)})
        self.cpu_s += time.process_time() - started
        self.inferences += 1
        boxes: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        labels: list[np.ndarray] = []
        for k, (stride, side, _c, _r) in enumerate(self._levels):
            cls = results[2 * k][0][:, self._class_ids]
            best = cls.argmax(axis=1)
            score = cls[np.arange(cls.shape[0]), best]
            keep = np.nonzero(score >= self.floor)[0]
            if keep.size == 0:
                continue
            reg = results[2 * k + 1][0][keep].reshape(-1, 4, BINS)
            dist = (_softmax(reg) * np.arange(BINS, dtype=np.float32)).sum(axis=-1) * stride
            cx = (keep % side + 0.5) * stride
            cy = (keep // side + 0.5) * stride
            box = np.stack([cx - dist[:, 0], cy - dist[:, 1], cx + dist[:, 2], cy + dist[:, 3]], axis=1) / scale
            boxes.append(box)
            scores.append(score[keep])
            labels.append(best[keep])
        if not boxes:
            return []
        all_boxes = np.concatenate(boxes)
        all_boxes[:, [0, 2]] = all_boxes[:, [0, 2]].clip(0, w)
        all_boxes[:, [1, 3]] = all_boxes[:, [1, 3]].clip(0, h)
        all_scores = np.concatenate(scores)
        all_labels = np.concatenate(labels)
        xywh = [[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in all_boxes]
        picked = cv2.dnn.NMSBoxesBatched(xywh, all_scores.tolist(), all_labels.tolist(), self.floor, 0.5)
        out = []
        for i in np.asarray(picked).reshape(-1):
            b = all_boxes[i]
            out.append(
                Detection(
                    self.classes[int(all_labels[i])], round(float(all_scores[i]), 3), tuple(float(v) for v in b)  # type: ignore[arg-type]
                )
            )
        out.sort(key=lambda d: -d.score)
        return out
