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
import tempfile
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
MEAN_BGR = (103.53, 116.28, 123.675)
STD_NCHW = STD.reshape(1, 3, 1, 1)
STRIDES = (8, 16, 32)
PRECISION_KEY = "sharpeye.precision"  # the model's metadata naming its number format (absent: float32)
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


def _ceil32(v: int) -> int:
    return -(-v // STRIDES[-1]) * STRIDES[-1]


def _fold_pads(model: Path) -> tuple[str | bytes, int]:
    """The model with each zero ``Pad`` that feeds only convolutions folded into their own padding (and each minus
    infinity ``Pad`` that feeds only max pooling into the pooling's); and how many were. TF.js pads explicitly before
    a convolution with VALID padding (28 in NanoDet, and one before its max pooling); onnxruntime keeps such a
    Pad apart, and around each it converts the tensor out of and back into its blocked layout for convolutions.
    Folded, the network computes the same numbers (a convolution pads with zeros, max pooling ignores its padding)
    with about a tenth less CPU, and no tensor holds an infinity (which int8 quantization could not scale).
    onnxruntime's basic optimizations run first (they remove the converter's layout transposes between a Pad and
    its convolution); when nothing can be folded, or anything fails, the model file as it is."""
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    try:
        with tempfile.TemporaryDirectory(prefix="sharpeye-model-") as tmp:
            options = ort.SessionOptions()
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            options.optimized_model_filepath = str(Path(tmp) / "basic.onnx")
            options.log_severity_level = 3
            ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
            proto = onnx.load(options.optimized_model_filepath)
        graph = proto.graph
        inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        users: dict[str, list[Any]] = {}
        for node in graph.node:
            for name in node.input:
                users.setdefault(name, []).append(node)
        outputs = {o.name for o in graph.output}
        folded = []
        for node in graph.node:
            if node.op_type != "Pad" or node.output[0] in outputs:
                continue
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            pads = inits.get(node.input[1]) if len(node.input) > 1 else None
            value = node.input[2] if len(node.input) > 2 else ""
            if attrs.get("mode", b"constant") != b"constant" or pads is None or pads.shape != (8,):
                continue
            if pads[[0, 1, 4, 5]].any() or (value and value not in inits):
                continue
            if len(node.input) > 3 and node.input[3]:
                continue  # axes given: not the plain NCHW form
            # zeros before convolutions; minus infinity before max pooling (which pads with minus infinity itself)
            fill = inits[value] if value else np.zeros(1, np.float32)
            kind = "Conv" if not fill.any() else "MaxPool" if np.all(np.isneginf(fill)) else None
            convs = users.get(node.output[0], [])
            if kind is None or not convs or any(c.op_type != kind for c in convs):
                continue
            conv_attrs = [{a.name: helper.get_attribute_value(a) for a in c.attribute} for c in convs]
            if any(
                a.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID") or any(a.get("pads", [])) for a in conv_attrs
            ):
                continue
            for conv in convs:
                kept = [a for a in conv.attribute if a.name not in ("auto_pad", "pads")]
                del conv.attribute[:]
                conv.attribute.extend(kept)
                conv.attribute.append(helper.make_attribute("pads", [int(v) for v in pads[[2, 3, 6, 7]]]))
                conv.input[0] = node.input[0]
            folded.append(node)
        for node in folded:
            graph.node.remove(node)
        used = {name for node in graph.node for name in node.input}
        for init in [i for i in graph.initializer if i.name not in used]:
            graph.initializer.remove(init)  # the folded paddings' amounts and values
        if not folded:
            return str(model), 0
        return proto.SerializeToString(), len(folded)
    except Exception as exc:  # the model as it is: slower, not wrong
        log.warning("detector model %s: paddings not folded (%s)", model, exc)
        return str(model), 0


# Upper bounds (seconds) of the inference-time histogram kept per detector and per camera.
LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32)


class ObjectDetector:
    """NanoDet through onnxruntime, on one thread (the analytics worker processes give the parallelism).

    The converted model takes any height and width that are multiples of 32 and its cost is about proportional to
    the pixels it sees (measured, one thread: 96 px 3.3 ms, 160 px 7.8 ms, 320 px 27 ms), so ``detect`` looks at an
    image at the size asked for on a canvas only as wide and as high as the image needs, not on a fixed square: a
    region around one walking person, seen at 192 px, costs about 11 ms, not the 320-px square's 30. The model
    takes one image per run (batch 1). The model is loaded with its zero paddings folded into the convolutions
    they feed (``_fold_pads``): the same outputs, about a tenth less CPU per inference."""

    def __init__(
        self,
        model: Path,
        classes: tuple[str, ...] = CLASSES,
        floor: float = 0.3,
        size: int = 320,
        fold_pads: bool = True,
    ) -> None:
        if not model.is_file():
            raise DetectorError(f"no detector model at {model}")
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise DetectorError("onnxruntime is not installed") from exc
        options = ort.SessionOptions()
        # One thread per worker process, run on the calling thread; no spinning thread pool competing with the
        # decoders and the other workers for the cores.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        options.log_severity_level = 3
        try:
            source: str | bytes = str(model)
            self.folded_pads = 0
            if fold_pads:
                source, self.folded_pads = _fold_pads(model)
            self._session: Any = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
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
        # int8: the quantized model ``sharpeye models install`` makes beside the float one (``quantize.py`` marks it)
        self.precision: str = self._session.get_modelmeta().custom_metadata_map.get(PRECISION_KEY, "float32")
        self._levels: list[tuple[int, str, str]] = self._pair_outputs()
        self._names = [name for _, c, r in self._levels for name in (c, r)]
        self.classes = classes
        self._class_ids = np.array([COCO.index(c) for c in classes], np.int64)
        self.floor = floor
        self.inferences = 0
        self.cpu_s = 0.0
        self.last_cpu_s = 0.0  # CPU of the newest inference
        self.last_wall_s = 0.0  # and its wall time
        self.pixels = 0  # input pixels seen, all inferences

    def _pair_outputs(self) -> list[tuple[int, str, str]]:
        """(stride, score output, box output) per level: paired by their cell counts on a blank input."""
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
            levels.append((stride, pair["cls"], pair["reg"]))
        return levels

    @staticmethod
    def blob(image: np.ndarray, nw: int, nh: int, cw: int, ch: int) -> np.ndarray:
        """The network's input: the image scaled to ``nw`` x ``nh``, (pixel - mean) / std, channels first, at the
        top left of a ``cw`` x ``ch`` canvas whose padding is zero (the mean before normalization). In OpenCV: a
        fifth of the time of the same steps in numpy, the same numbers."""
        h, w = image.shape[:2]
        scaled = image if (nw, nh) == (w, h) else cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        blob: np.ndarray = cv2.dnn.blobFromImage(scaled, 1.0, mean=MEAN_BGR)
        blob /= STD_NCHW
        if (cw, ch) != (nw, nh):
            padded = np.zeros((1, 3, ch, cw), np.float32)
            padded[:, :, :nh, :nw] = blob
            blob = padded
        return blob

    def detect(self, image: np.ndarray, size: int | None = None) -> list[Detection]:
        """Objects of ``self.classes`` in a BGR image, scores at or above the floor, boxes in its pixels.

        The image is scaled so that its longer side is ``size`` (the detector's own by default); the canvas is the
        scaled image rounded up to multiples of 32 on each side (square ``size`` for a model of fixed input)."""
        h, w = image.shape[:2]
        if h < 2 or w < 2:
            return []
        target = size if size is not None and self._free else self.size
        scale = target / max(h, w)
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        cw, ch = (_ceil32(nw), _ceil32(nh)) if self._free else (self.size, self.size)
        blob = self.blob(image, nw, nh, cw, ch)
        started, wall = time.process_time(), time.perf_counter()
        results = self._session.run(self._names, {self._input: blob})
        self.last_cpu_s = time.process_time() - started
        self.last_wall_s = time.perf_counter() - wall
        self.cpu_s += self.last_cpu_s
        self.inferences += 1
        self.pixels += cw * ch
        boxes: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        labels: list[np.ndarray] = []
        for k, (stride, _c, _r) in enumerate(self._levels):
            cols = cw // stride
            cls = results[2 * k][0][:, self._class_ids]
            best = cls.argmax(axis=1)
            score = cls[np.arange(cls.shape[0]), best]
            keep = np.nonzero(score >= self.floor)[0]
            if keep.size == 0:
                continue
            reg = results[2 * k + 1][0][keep].reshape(-1, 4, BINS)
            dist = (_softmax(reg) * np.arange(BINS, dtype=np.float32)).sum(axis=-1) * stride
            cx = (keep % cols + 0.5) * stride
            cy = (keep // cols + 0.5) * stride
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
                    self.classes[int(all_labels[i])],
                    round(float(all_scores[i]), 3),
                    tuple(float(v) for v in b),  # type: ignore[arg-type]
                )
            )
        out.sort(key=lambda d: -d.score)
        return out
