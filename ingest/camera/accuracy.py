"""Score a camera's analytics on a labelled clip: precision, recall and latency per zone or line.

A labels file (YAML or JSON) describes the camera's analytics (the fields of a camera config other than id, kind
and url: zones, tripwires, analysis rate, detector...) and, per zone or line, the intervals of clip time in which
an object of the rule's classes is inside the zone (or crossing the line)::

    camera:
      zones: [{id: lawn, polygon: [[0, 0.45], [0.8, 1], [0, 1]], objects: person}]
    labels:
      - {channel: lawn, intervals: [[52, 73.5]]}
    tolerance_s: 2

``score(clip, labels)`` decodes the clip through the hub's own path (``stream_info`` → ``CameraDecoder``: the same
decoder set-up, frame selection, analyzer and detector as a worker), as fast as the CPU allows, and matches the
first event of each alarm episode against the intervals: an episode whose start falls within an interval (widened
by the tolerance) is a true positive, any other a false positive; an interval with at least one such episode is
found, and its latency is from the interval's start to its first episode.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import av
import msgspec
import yaml
from pydantic import Field, model_validator
from sharpeye.config.base import Identifier, StrictModel
from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.camera.detector import ObjectDetector
from sharpeye.ingest.camera.event import VideoEvent
from sharpeye.ingest.camera.worker import CameraDecoder
from sharpeye.ingest.transport.video.packet import VideoPacket
from sharpeye.ingest.transport.video.source import stream_info

_event_dec = msgspec.msgpack.Decoder(VideoEvent)


class ChannelLabels(StrictModel):
    """When an object of the rule's classes is inside a zone (or crossing a line), in seconds of clip time."""

    channel: Identifier = Field(description="Zone or tripwire id of the camera.")
    kind: str | None = Field(
        default=None, description="Event kind scored (default: video.intrusion for zones, video.tripwire for lines)."
    )
    intervals: list[tuple[float, float]] = Field(description="[start, end] seconds; start <= end.")

    @model_validator(mode="after")
    def _ordered(self) -> ChannelLabels:
        for start, end in self.intervals:
            if start > end or start < 0:
                raise ValueError(f"interval [{start}, {end}] must have 0 <= start <= end")
        return self


class LabelsFile(StrictModel):
    """A labelled clip: the camera's analytics and the truth per zone or line."""

    camera: dict[str, Any] = Field(default_factory=dict, description="Camera config fields (not id, kind, url).")
    labels: list[ChannelLabels] = Field(description="Truth per zone or line.")
    tolerance_s: float = Field(default=2.0, ge=0, le=60, description="Slack around each interval, seconds.")
    start_s: float = Field(default=0, ge=0, description="Score from this clip time on.")
    end_s: float | None = Field(default=None, gt=0, description="Score up to this clip time (default: the end).")


class ChannelScore(msgspec.Struct, kw_only=True):
    channel: str
    kind: str
    intervals: int
    found: int
    alarms: int
    true_alarms: int
    latencies: list[float]
    false_at: list[float] = []  # clip times of the false alarms, to look at

    @property
    def precision(self) -> float | None:
        return None if self.alarms == 0 else self.true_alarms / self.alarms

    @property
    def recall(self) -> float | None:
        return None if self.intervals == 0 else self.found / self.intervals


class AccuracyReport(msgspec.Struct, kw_only=True):
    clip: str
    codec: str
    seconds: float
    frames_analysed: int
    decode_errors: int
    wall_s: float
    channels: list[ChannelScore]
    detector_passes: int = 0
    detector_ms: float | None = None
    detector_precision: str | None = None  # int8 or float32

    def table(self) -> str:
        """The report as a plain-text table."""

        def pct(v: float | None) -> str:
            return "-" if v is None else f"{100 * v:.0f}%"

        lines = [
            f"{self.clip}: {self.codec}, {self.seconds:.1f} s, {self.frames_analysed} frames analysed, "
            f"{self.decode_errors} decode errors, {self.wall_s:.1f} s to score"
            + (
                f"; detector ({self.detector_precision}) {self.detector_passes} passes, "
                f"{self.detector_ms:.1f} ms CPU per inference"
                if self.detector_ms is not None
                else ""
            ),
            f"{'channel':<16} {'kind':<18} {'truth':>5} {'found':>5} {'alarms':>6} {'true':>5} "
            f"{'precision':>9} {'recall':>6} {'latency p50/max':>16}",
        ]
        for c in self.channels:
            lat = sorted(c.latencies)
            latency = f"{lat[len(lat) // 2]:.1f}/{lat[-1]:.1f} s" if lat else "-"
            lines.append(
                f"{c.channel:<16} {c.kind:<18} {c.intervals:>5} {c.found:>5} {c.alarms:>6} {c.true_alarms:>5} "
                f"{pct(c.precision):>9} {pct(c.recall):>6} {latency:>16}"
            )
            if c.false_at:
                lines.append(f"  false alarms at {', '.join(f'{t:.1f}' for t in c.false_at)} s")
        return "\n".join(lines)


def load_labels(path: Path) -> LabelsFile:
    """A labels file (YAML or JSON); raises ``ValueError`` naming what is wrong."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not YAML/JSON: {exc}") from exc
    return LabelsFile.model_validate(raw)


def camera_for(clip: Path, labels: LabelsFile) -> CameraConfig:
    """The camera config the clip is analysed with; every labelled channel must be one of its zones or lines."""
    config = CameraConfig.model_validate(
        {"id": "accuracy", "kind": "camera", "name": clip.name, "grid": "accuracy", "url": str(clip), **labels.camera}
    )
    channels = {z.id for z in config.zones} | {t.id for t in config.tripwires}
    for entry in labels.labels:
        if entry.channel not in channels:
            raise ValueError(f"labels name channel {entry.channel!r}, which is no zone or tripwire of the camera")
    return config


def analyse(
    clip: Path, config: CameraConfig, detector: ObjectDetector | None, start_s: float = 0, end_s: float | None = None
) -> tuple[list[VideoEvent], CameraDecoder, float]:
    """Every event of the clip's analysis, through the worker's decoder; times are seconds of clip time."""
    container: Any = av.open(str(clip))
    try:
        stream = container.streams.video[0]
        info = stream_info(stream, 0, container.format.name)
        decoder = CameraDecoder(config, info, True, detector)
        t0: float | None = None
        events: list[VideoEvent] = []
        seconds = 0.0
        for pkt in container.demux(stream):
            if not pkt.size:
                continue
            t = float(pkt.pts * stream.time_base) if pkt.pts is not None else seconds
            if t0 is None:
                t0 = t
            seconds = max(seconds, t - t0)
            if end_s is not None and t - t0 > end_s:
                break
            packet = VideoPacket(data=bytes(pkt), pts=pkt.pts, dts=pkt.dts, key=pkt.is_keyframe, arrival=0.0)
            for raw, _jpeg, _arrival, _since in decoder.feed(packet):
                event = _event_dec.decode(raw)
                clip_t = event.t - (decoder.first_t or 0.0)
                if clip_t >= start_s:
                    events.append(msgspec.structs.replace(event, t=clip_t))
    finally:
        container.close()
    return events, decoder, seconds


def score(clip: Path, labels: LabelsFile, detector_model: Path | None = None) -> AccuracyReport:
    """Analyse ``clip`` as the hub would and score its alarms against ``labels``."""
    config = camera_for(clip, labels)
    detector = None
    if config.needs_detector:
        if detector_model is None:
            raise ValueError("the labels' camera names object classes: give the detector model")
        detector = ObjectDetector(detector_model)
    started = time.monotonic()
    events, decoder, seconds = analyse(clip, config, detector, labels.start_s, labels.end_s)
    wall = time.monotonic() - started
    zones = {z.id for z in config.zones}
    channels: list[ChannelScore] = []
    tol = labels.tolerance_s
    for entry in labels.labels:
        kind = entry.kind or ("video.intrusion" if entry.channel in zones else "video.tripwire")
        starts = sorted(e.t for e in events if e.channel == entry.channel and e.kind == kind and e.repeat == 0)
        true = [s for s in starts if any(a - tol <= s <= b + tol for a, b in entry.intervals)]
        latencies: list[float] = []
        found = 0
        for a, b in entry.intervals:
            hits = [s for s in starts if a - tol <= s <= b + tol]
            if hits:
                found += 1
                latencies.append(round(max(0.0, hits[0] - a), 2))
        channels.append(
            ChannelScore(
                channel=entry.channel, kind=kind, intervals=len(entry.intervals), found=found, alarms=len(starts),
                true_alarms=len(true), latencies=latencies,
                false_at=[round(s, 1) for s in starts if s not in true],
            )
        )  # fmt: skip
    passes = decoder.analyzer.detector_passes
    return AccuracyReport(
        clip=clip.name,
        codec=decoder.info.codec,
        seconds=round(seconds, 2),
        frames_analysed=decoder.analysed,
        decode_errors=decoder.errors,
        wall_s=round(wall, 2),
        channels=channels,
        detector_passes=passes,
        detector_ms=round(1000 * detector.cpu_s / detector.inferences, 1) if detector and detector.inferences else None,
        detector_precision=detector.precision if detector is not None else None,
    )


def report_json(report: AccuracyReport) -> bytes:
    """The report as JSON, with precision and recall per channel."""
    data = msgspec.to_builtins(report)
    for row, channel in zip(data["channels"], report.channels, strict=True):
        row["precision"] = channel.precision
        row["recall"] = channel.recall
    return msgspec.json.encode(data)
