"""Tamper detection against a learned reference view: lens covered, defocused, camera turned away."""

from __future__ import annotations

import cv2
import numpy as np
from sharpeye.ingest.camera.config import TamperConfig

KERNEL_3 = np.ones((3, 3), np.uint8)
# The scene-change test (Canny, the dearest step) runs at most this often; covered and defocused at every check.
EDGE_CHECK_S = 1.0


def spread(image: np.ndarray) -> float:
    """Standard deviation of an image's values (OpenCV's single pass; numpy's ``std`` makes temporaries)."""
    _mean, std = cv2.meanStdDev(image)
    return float(std[0, 0])


def sharpness(gray: np.ndarray) -> float:
    """Variance of the Laplacian: falls when the picture goes out of focus (16-bit holds it exactly for 8-bit
    input, and is cheaper than float)."""
    return spread(cv2.Laplacian(gray, cv2.CV_16S)) ** 2


class TamperDetector:
    """Feed small grey frames with their stream time; ``update`` returns the current tamper state or None.

    The state is only reported after it has lasted ``hold_s``. The reference (sharpness, edge map) is learned
    over the first ``learn_s`` seconds and again after a resolution change.
    """

    def __init__(self, config: TamperConfig) -> None:
        self.config = config
        self._learn_start: float | None = None
        self._sharp: list[float] = []
        self._edges_acc: np.ndarray | None = None
        self._ref_sharp = 0.0
        self._ref_edges: np.ndarray | None = None
        self._ref_count = 0
        self._overlap = 1.0
        self._overlap_t: float | None = None
        self._candidate: str | None = None
        self._since = 0.0
        self.state: str | None = None

    def reset(self) -> None:
        self.__init__(self.config)  # type: ignore[misc]

    @staticmethod
    def _edges(gray: np.ndarray) -> np.ndarray:
        return cv2.Canny(gray, 60, 140)

    def _classify(self, gray: np.ndarray, t: float) -> str | None:
        std = spread(gray)
        if std < self.config.covered_std:
            return "covered"
        sharp = sharpness(gray)
        if sharp < self.config.defocus_ratio * self._ref_sharp:
            return "defocused"
        assert self._ref_edges is not None
        if self._ref_count > 0:
            if self._overlap_t is None or t - self._overlap_t >= EDGE_CHECK_S - 1e-6 or t < self._overlap_t:
                self._overlap_t = t
                near = cv2.dilate(self._edges(gray), KERNEL_3)
                self._overlap = cv2.countNonZero(cv2.bitwise_and(near, self._ref_edges)) / self._ref_count
            if self._overlap < self.config.turned_overlap:
                return "turned_away"
        return None

    def update(self, gray: np.ndarray, t: float) -> str | None:
        if self._ref_edges is None:
            if self._learn_start is None:
                self._learn_start = t
            edges = (self._edges(gray) > 0).astype(np.uint16)
            self._edges_acc = edges if self._edges_acc is None else self._edges_acc + edges
            self._sharp.append(sharpness(gray))
            if t - self._learn_start >= self.config.learn_s and len(self._sharp) >= 3:
                # Reference edges: those present in most learning frames (moving objects drop out).
                # As 0/255, to be ANDed with a Canny map.
                self._ref_edges = (self._edges_acc >= 0.6 * len(self._sharp)).astype(np.uint8) * 255
                self._ref_count = int(np.count_nonzero(self._ref_edges))
                self._ref_sharp = float(np.median(self._sharp))
            return None
        found = self._classify(gray, t)
        if found != self._candidate:
            self._candidate = found
            self._since = t
        if found is None:
            self.state = None
        elif t - self._since >= self.config.hold_s:
            self.state = found
        return self.state
