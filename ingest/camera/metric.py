"""Prometheus view of the object detector's work per camera, read at scrape time from ``CameraService.stats()``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sharpeye.ingest.camera.analyzer import REGION_BUCKETS
from sharpeye.ingest.camera.detector import LATENCY_BUCKETS
from sharpeye.ingest.camera.service import CameraService


def _buckets(bounds: tuple[float, ...], counts: list[int]) -> list[tuple[str, float]]:
    """Cumulative (le, count) pairs of a histogram kept as counts per bucket (the last one above every bound)."""
    out: list[tuple[str, float]] = []
    total = 0
    for bound, n in zip((*[str(b) for b in bounds], "+Inf"), counts, strict=True):
        total += n
        out.append((bound, float(total)))
    return out


class CameraDetectorCollector(Collector):
    """``sharpeye_detector_inferences_total{camera}``, ``sharpeye_detector_cpu_seconds_total{camera}``,
    ``sharpeye_detector_inference_seconds{camera}`` (histogram of one inference's wall time),
    ``sharpeye_detector_regions{camera}`` (histogram of regions per pass), ``sharpeye_detector_passes_total{camera,
    outcome}`` (run, or skipped because the worker was behind), ``sharpeye_detector_lag_seconds{camera}`` (age of
    the newest analysed frame) and ``sharpeye_detector_behind{camera}`` (1 while health calls it behind)."""

    def __init__(self, service: CameraService) -> None:
        self._service = service

    def collect(self) -> Iterator[Any]:
        inferences = CounterMetricFamily(
            "sharpeye_detector_inferences", "Object detector inferences (one per region of motion)", labels=["camera"]
        )
        cpu = CounterMetricFamily(
            "sharpeye_detector_cpu_seconds", "CPU time of the object detector's inferences", labels=["camera"]
        )
        latency = HistogramMetricFamily(
            "sharpeye_detector_inference_seconds", "Wall time of one object detector inference", labels=["camera"]
        )
        regions = HistogramMetricFamily(
            "sharpeye_detector_regions", "Regions of motion sent to the detector per pass", labels=["camera"]
        )
        passes = CounterMetricFamily(
            "sharpeye_detector_passes",
            "Analysed frames on which some track was due a detector look: pass run, or skipped (worker behind)",
            labels=["camera", "outcome"],
        )
        lag = GaugeMetricFamily(
            "sharpeye_detector_lag_seconds", "Age of the newest frame the detector was due on", labels=["camera"]
        )
        behind = GaugeMetricFamily(
            "sharpeye_detector_behind",
            "1 while too many of the camera's detector passes are skipped",
            labels=["camera"],
        )
        for st in self._service.stats():
            det = st.detector
            if det is None:
                continue
            cam = [st.camera_id]
            inferences.add_metric(cam, det.inferences)
            cpu.add_metric(cam, det.cpu_s)
            latency.add_metric(cam, _buckets(LATENCY_BUCKETS, det.latency), det.latency_sum)
            regions.add_metric(cam, _buckets(tuple(float(b) for b in REGION_BUCKETS), det.regions), det.regions_sum)
            passes.add_metric([st.camera_id, "run"], det.passes)
            passes.add_metric([st.camera_id, "skipped"], det.skipped)
            lag.add_metric(cam, det.lag_s)
            behind.add_metric(cam, 1 if st.detector_behind else 0)
        yield from (inferences, cpu, latency, regions, passes, lag, behind)
