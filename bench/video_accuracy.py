"""Accuracy of the camera analytics: precision, recall and alarm latency per rule type.

Cases: every built-in simulator scenario (intrusion + tripwire with distractors, loitering, tamper), each
in ``--variants`` versions (other seeds for background and noise, stronger noise), rendered, encoded to
H.264 and fed packet by packet through the hub's own worker decoder (``CameraDecoder``: decode, pick
frames at 5 fps, scale to 320 px, analyse). Ground truth is the scenario's expected alarms. The baseline,
measured in the same run, is naive motion-in-zone analytics on the same clips (no travel filter, no
dwell, no size limits): the ratio of F1 scores shows what tracking and filters buy.

Extra real case: Debian's ``opencv-doc`` pedestrian clip (vtest.avi, 768x576, people walking), scored against
the labels in tests/ingest/camera/labels/vtest.yaml through the hub's decoder (as ``sharpeye accuracy`` does): a
person zone with the object detector, and the same zone on motion alone as the baseline.

    .venv/bin/python bench/video_accuracy.py             # 3 variants per scenario
    .venv/bin/python bench/video_accuracy.py --variants 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import av
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sharpeye.ingest.camera.accuracy import LabelsFile, load_labels, score
from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.camera.event import VideoEvent
from sharpeye.ingest.camera.model import model_path
from sharpeye.ingest.camera.worker import CameraDecoder
from sharpeye.ingest.transport.video.packet import VideoPacket
from sharpeye.ingest.transport.video.source import stream_info
from sharpeye.simulators.camera.grader import Grader, Observed, Tally
from sharpeye.simulators.camera.scenario import Scenario, builtin
from sharpeye.simulators.camera.writer import write_video

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
LABELS = Path(__file__).resolve().parent.parent / "tests" / "ingest" / "camera" / "labels" / "vtest.yaml"
_dec = msgspec.msgpack.Decoder(VideoEvent)


def run_clip(path: Path, config: CameraConfig) -> list[Observed]:
    """Feed a file's packets through the worker's decoder and analytics; first emissions only."""
    container: Any = av.open(str(path))
    stream = container.streams.video[0]
    info = stream_info(stream)
    decoder = CameraDecoder(config, info)
    out: list[Observed] = []
    for pkt in container.demux(stream):
        if pkt.size == 0:
            continue
        packet = VideoPacket(data=bytes(pkt), pts=pkt.pts, dts=pkt.dts, key=bool(pkt.is_keyframe), arrival=0.0)
        for raw, _jpeg, _arrival, since in decoder.feed(packet):
            e = _dec.decode(raw)
            if e.repeat == 0:
                out.append(Observed(e.kind, e.channel, e.value, since, e.direction))
    container.close()
    return out


def naive(config: CameraConfig) -> CameraConfig:
    zones = [z.model_copy(update={"dwell_s": 0.0, "min_size": 0.0}) for z in config.zones]
    lines = [t.model_copy(update={"min_size": 0.0}) for t in config.tripwires]
    detection = config.detection.model_copy(update={"min_travel": 0.0})
    return config.model_copy(update={"zones": zones, "tripwires": lines, "detection": detection})


def variants(scenario: Scenario, n: int) -> list[Scenario]:
    out = [scenario]
    for i in range(1, n):
        out.append(
            scenario.model_copy(
                update={
                    "seed": scenario.seed + 100 * i,
                    "noise": scenario.noise + 2 * i,
                    "name": f"{scenario.name}-v{i}",
                }
            )
        )
    return out


def f1(t: Tally) -> float:
    p, r = t.precision, t.recall
    return 2 * p * r / (p + r) if p + r else 0.0


def vtest_case(model: Path) -> None:
    """vtest.avi scored against its labels (tests/ingest/camera/labels/vtest.yaml) through ``sharpeye accuracy``'s
    path (the hub's decoder): the lawn zone with ``objects: person`` (motion + detector) against the same zone with
    ``objects: any`` (motion only, the baseline), in the same run."""
    if not VTEST.is_file():
        print(f"vtest: {VTEST} missing (Debian package opencv-doc)")
        return
    labels = load_labels(LABELS)
    runs: list[tuple[str, LabelsFile, Path | None]] = []
    if model.is_file():
        runs.append(("motion + detector", labels, model))
    else:
        print(f"vtest: no detector at {model} (sharpeye models install): motion-only baseline alone")
    zones = [{**z, "objects": "any"} for z in labels.camera["zones"]]
    runs.append(("motion only", labels.model_copy(update={"camera": {**labels.camera, "zones": zones}}), None))
    for name, lab, det in runs:
        report = score(VTEST, lab, det)
        print(f"vtest, {name}:")
        print(report.table())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", type=int, default=3, help="versions of each scenario")
    parser.add_argument("--no-vtest", action="store_true", help="skip the real pedestrian clip")
    parser.add_argument("--model", default=None, help="detector ONNX (default SHARPEYE_DATA_DIR/models/nanodet.onnx)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sharpeye-accuracy-"))
    grader = Grader()
    tallies: dict[str, dict[str, Tally]] = {"analytics": defaultdict(Tally), "baseline": defaultdict(Tally)}
    clips = 0
    for name in ("intrusion", "loitering", "tamper"):
        for sc in variants(builtin(name), args.variants):
            path = write_video(sc, tmp / f"{sc.name}.ts")
            clips += 1
            for label, cfg in (("analytics", sc.camera_config()), ("baseline", naive(sc.camera_config()))):
                grade = grader.grade(sc.expected, run_clip(path, cfg))
                for kind, t in grade.by_kind().items():
                    agg = tallies[label][kind]
                    agg.tp += t.tp
                    agg.fp += t.fp
                    agg.fn += t.fn
                    agg.latencies += t.latencies
    print(f"{clips} simulated clips (640x360 10 fps H.264, analysed at 5 fps, 320 px)")
    print(f"{'rule':18s} {'precision':>9s} {'recall':>7s} {'latency p50/max s':>18s}   baseline P / R   F1 ratio")
    for kind in sorted(set(tallies["analytics"]) | set(tallies["baseline"])):
        a, b = tallies["analytics"][kind], tallies["baseline"][kind]
        lat = f"{statistics.median(a.latencies):.2f}/{max(a.latencies):.2f}" if a.latencies else "-"
        ratio = f1(a) / f1(b) if f1(b) else float("inf")
        print(
            f"{kind:18s} {a.precision:9.2f} {a.recall:7.2f} {lat:>18s}   {b.precision:.2f} / {b.recall:.2f}"
            f"   {ratio:.2f}  (tp {a.tp} fp {a.fp} fn {a.fn}; baseline fp {b.fp})"
        )
    print("latency = alarm time - ground-truth time the condition became true (stream seconds)")
    if not args.no_vtest:
        data = Path(os.environ.get("SHARPEYE_DATA_DIR", "."))
        vtest_case(Path(args.model) if args.model else model_path(data))


if __name__ == "__main__":
    main()
