"""Object classifier behind a small interface: does this motion crop show a person?

``HogPersonClassifier`` uses OpenCV's built-in HOG people detector (OpenCV 4.x); ``OnnxClassifier`` runs a
user-supplied ONNX image classifier through ``cv2.dnn``. Both are slow compared with the motion step
(HOG: about 100 ms per 640x360 frame), so they only see crops of moving objects, once per track.
"""

from __future__ import annotations

import logging
from typing import Protocol

import cv2
import numpy as np
from sharpeye.ingest.camera.config import ClassifierConfig

log = logging.getLogger(__name__)


class Classifier(Protocol):
    def is_person(self, crop: np.ndarray) -> bool:
        """``crop`` is a BGR image around one moving object."""
        ...


class HogPersonClassifier:
    """OpenCV's default HOG + linear SVM people detector, applied to an upscaled crop."""

    def __init__(self) -> None:
        self._hog = cv2.HOGDescriptor()
        self._hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), np.float32))

    def is_person(self, crop: np.ndarray) -> bool:
        h, w = crop.shape[:2]
        if h < 8 or w < 4:
            return False
        scale = max(1.0, 160 / h)
        img = cv2.resize(crop, (max(80, int(w * scale)), int(h * scale)))
        pad = cv2.copyMakeBorder(img, 16, 16, 16, 16, cv2.BORDER_REPLICATE)
        rects, weights = self._hog.detectMultiScale(pad, winStride=(8, 8), padding=(8, 8), scale=1.1)
        return len(rects) > 0 and float(np.max(weights)) > 0.3


class OnnxClassifier:
    """An ONNX classifier: square RGB input scaled to 0..1, softmax-or-score output; one index is 'person'."""

    def __init__(self, config: ClassifierConfig) -> None:
        assert config.model_path is not None
        self._net = cv2.dnn.readNetFromONNX(str(config.model_path))
        self._size = config.input_size
        self._index = config.person_index
        self._threshold = config.threshold

    def is_person(self, crop: np.ndarray) -> bool:
        blob = cv2.dnn.blobFromImage(crop, 1 / 255.0, (self._size, self._size), swapRB=True)
        self._net.setInput(blob)
        out = np.asarray(self._net.forward()).reshape(-1).astype(np.float64)
        if out.size <= self._index:
            return False
        if out.min() < 0 or out.sum() > 1.0001:
            e = np.exp(out - out.max())
            out = e / e.sum()
        return bool(out[self._index] >= self._threshold)


def make_classifier(config: ClassifierConfig) -> Classifier | None:
    if config.type == "hog":
        return HogPersonClassifier()
    if config.type == "onnx":
        return OnnxClassifier(config)
    return None
