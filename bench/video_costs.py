"""CPU cost of one 720p H.264 25 fps camera in the analytics worker: decoding only vs decoding with analytics.

CPU time is steadier than a capacity count on a shared machine, so this measures, in one process, the CPU
seconds that the hub's own worker decoder (``CameraDecoder``) spends per second of stream, for both modes,
alternating ``--rounds`` times on the same packets (the same clip as ``bench/video_capacity.py``: the
intrusion scenario at 1280x720 25 fps, 2 Mbit/s). The decode-only figure is the baseline; the ratio
decode / analytics is the camera count the analytics mode can sustain relative to decoding only when the
worker's CPU is the limit. It then profiles one analytics pass (cProfile sees OpenCV's and PyAV's C calls)
and prints the cost of each step per analysed frame, and the cost of moving a packet to a worker (msgpack
and a pipe, in both modes alike).

    .venv/bin/python bench/video_costs.py                # 16 s clip, 5 rounds
    .venv/bin/python bench/video_costs.py --rounds 3 --seconds 10
    .venv/bin/python bench/video_costs.py --real         # real footage: vtest.avi, people all over the picture
    .venv/bin/python bench/video_costs.py --real --cameras 3 --detector ~/.cache/sharpeye-tests/models/nanodet.onnx

With ``--detector`` (the float model's path, as installed) the analytics mode runs twice, with the detector's int8
model (what the hub runs, "now") and with the float32 one it is made from ("before"), everything else alike.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import threading
import time
from multiprocessing import Pipe
from pathlib import Path
from typing import Any

import av
import cv2
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.camera.detector import ObjectDetector
from sharpeye.ingest.camera.model import runtime_model
from sharpeye.ingest.camera.worker import CameraDecoder
from sharpeye.ingest.transport.video.packet import StreamInfo, VideoPacket
from sharpeye.ingest.transport.video.source import stream_info
from sharpeye.simulators.camera.scenario import builtin
from sharpeye.simulators.camera.writer import write_video

sys.path.insert(0, str(Path(__file__).resolve().parent))
from video_capacity import LAWN, VTEST_FROM_S, WALKWAYS, reencode_vtest


def load(path: Path) -> tuple[StreamInfo, list[VideoPacket]]:
    container: Any = av.open(str(path))
    stream = container.streams.video[0]
    info = stream_info(stream)
    packets = [
        VideoPacket(data=bytes(p), pts=p.pts, dts=p.dts, key=bool(p.is_keyframe), arrival=0.0)
        for p in container.demux(stream)
        if p.size
    ]
    container.close()
    return info, packets


# This round (the sixth of issue 18): the detector's int8 model (``quantize.py``) against the float32 one it is made
# from; with ``--detector`` the analytics mode runs once with each, the rest unchanged.
Mode = str
BEFORE: Mode = "before"
NOW: Mode = "now"


def run(
    config: CameraConfig,
    info: StreamInfo,
    packets: list[VideoPacket],
    analytics: bool,
    cameras: int,
    mode: Mode = NOW,
    detector: ObjectDetector | None = None,
) -> tuple[float, int, float, int]:
    """CPU seconds per camera to feed every packet through ``cameras`` fresh decoders, interleaved packet by
    packet as a worker process does (so their decoders and background models share the caches); the number
    of events; the share of background tiles fed; and the detector's inferences per camera."""
    decs = [
        CameraDecoder(config.model_copy(update={"id": f"cam{i:02d}"}), info, analytics, detector if analytics else None)
        for i in range(cameras)
    ]
    events = 0
    t0 = time.process_time()
    for p in packets:
        for dec in decs:
            events += len(dec.feed(p))
    cpu = (time.process_time() - t0) / cameras
    fed = sum(d.analyzer.tiles_fed for d in decs) / max(1, sum(d.analyzer.tiles_seen for d in decs))
    inferences = sum(d.analyzer.detector_stats.inferences for d in decs) // cameras
    TRACKS[analytics, mode] = decs[0].analyzer._next_id - 1
    return cpu, events // cameras, fed, inferences


TRACKS: dict[tuple[bool, Mode], int] = {}  # tracks made by one camera


def ipc_cost(packets: list[VideoPacket]) -> float:
    """CPU seconds per packet to msgpack-encode it, send it through a pipe and decode it on the other end."""
    enc = msgspec.msgpack.Encoder()
    dec = msgspec.msgpack.Decoder(VideoPacket)
    recv_end, send_end = Pipe(duplex=False)
    count = len(packets)

    def reader() -> None:
        for _ in range(count):
            dec.decode(recv_end.recv()[2])

    thread = threading.Thread(target=reader)
    t0 = time.process_time()
    thread.start()
    for p in packets:
        send_end.send(("pkt", "cam00", enc.encode(p)))
    thread.join()
    return (time.process_time() - t0) / count


STEPS = {
    "scale to analysis size": ("reformat", "to_ndarray"),
    "MOG2": ("apply",),
    "tile change gate": ("absdiff", "threshold", "integral"),
    "brightness, mean": ("sumElems", "convertScaleAbs"),
    "mask and morphology": ("bitwise_and", "morphologyEx", "dilate", "countNonZero"),
    "contours": ("findContours", "boundingRect"),
    "detector inference": ("run",),
}


def _callee(name: str) -> str:
    """The bare name of a profiled C function: ``<method 'apply' of '…' objects>`` or ``<cvtColor>``."""
    if name.startswith("<method '"):
        return name.split("'")[1]
    return name.strip("<>").split(".")[-1].split(" ")[-1]


def profile(
    config: CameraConfig, info: StreamInfo, packets: list[VideoPacket], detector: ObjectDetector | None = None
) -> None:
    dec = CameraDecoder(config, info, True, detector)
    prof = cProfile.Profile(time.process_time)  # CPU time: the machine is shared
    prof.enable()
    for p in packets:
        dec.feed(p)
    prof.disable()
    stats: Any = pstats.Stats(prof)
    rows: dict[str, float] = dict.fromkeys(STEPS, 0.0)
    decode = tamper = evidence = analyse = 0.0
    for (file, _line, name), (_cc, _nc, tt, ct, _callers) in stats.stats.items():
        callee = _callee(name) if file == "~" else name
        if callee == "decode" and file == "~":
            decode += tt
        elif file.endswith("tamper.py") and name == "update":
            tamper += ct
        elif file.endswith("analyzer.py") and name == "process":
            analyse += ct
        elif file.endswith("worker.py") and name in ("annotate", "whole", "crop"):
            evidence += ct
        elif callee == "imencode":
            evidence += tt
        for step, names in STEPS.items():
            if file == "~" and callee in names:
                rows[step] += tt
    frames, analysed = dec.decoded, dec.analysed
    print(f"profile of one camera ({frames} frames decoded, {analysed} analysed; cProfile timing CPU):")
    print(f"  {'decode':26s} {decode / frames * 1e3:6.2f} ms per decoded frame")
    rows["tamper (at its check rate)"] = tamper
    rows["full picture, JPEG"] = evidence
    for step, sec in rows.items():
        print(f"  {step:26s} {sec / analysed * 1e3:6.2f} ms per analysed frame")
    rest = analyse - sum(v for k, v in rows.items() if k not in ("scale to analysis size", "full picture, JPEG"))
    print(f"  {'rest of the analyser':26s} {rest / analysed * 1e3:6.2f} ms per analysed frame (tracker, rules, Python)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="alternating passes per mode")
    parser.add_argument("--seconds", type=float, default=16.0, help="clip length")
    parser.add_argument("--width", type=int, default=None, help="analysis width (default: the camera default)")
    parser.add_argument("--real", action="store_true", help="real footage (vtest.avi, busy) instead of the synthetic")
    parser.add_argument(
        "--detector", type=Path, default=None, metavar="MODEL", help="with --real: person zones and this ONNX model"
    )
    parser.add_argument(
        "--cameras", type=int, default=6, help="cameras decoded in turn by the one process (a worker's share)"
    )
    args = parser.parse_args()
    cv2.setNumThreads(1)
    tmp = Path(tempfile.mkdtemp(prefix="sharpeye-costs-"))
    detector = ObjectDetector(runtime_model(args.detector)) if args.detector is not None else None
    float_detector = ObjectDetector(runtime_model(args.detector, "float32")) if args.detector is not None else None
    if detector is not None and not args.real:
        parser.error("--detector needs --real")
    if args.real:
        # Real footage, busy: people walk all over vtest.avi; the bench's walkway and lawn zones, motion only.
        clip = reencode_vtest(tmp / "vtest.ts", VTEST_FROM_S, 768, 576, 10)
        fps = 10
        # With --detector: person zones as in bench/video_capacity.py --detector.
        person: dict[str, Any] = {"objects": "person"} if detector is not None else {}
        walk = {"id": "walk", "polygon": WALKWAYS, "dwell_s": 0.0, **person}
        lawn = {"id": "lawn", "polygon": LAWN, "dwell_s": 0.0, **person, "min_score": 0.5}
        config = CameraConfig.model_validate(
            {"kind": "camera", "id": "cam00", "name": "cam00", "grid": "g1", "url": str(clip), "zones": [walk, lawn]}
        )
        what = f"vtest.avi from {VTEST_FROM_S:.0f} s as 768x576 10 fps H.264 (people walking all over the picture)"
    else:
        scenario = builtin("intrusion")
        zones = [{**z, "dwell_s": 0.0} for z in scenario.camera["zones"]]
        scenario = scenario.model_copy(update={"camera": {**scenario.camera, "zones": zones}})
        clip = write_video(
            scenario,
            tmp / "cam720.ts",
            width=1280,
            height=720,
            fps=25,
            duration_s=args.seconds,
            gop_s=2.0,
            preset="veryfast",
            bitrate=2_000_000,
        )
        fps = 25
        config = scenario.camera_config("cam00", str(clip))
        what = "synthetic 1280x720 25 fps H.264 (one person crossing a still scene)"
    info, packets = load(clip)
    if args.width is not None:
        config = config.model_copy(update={"analysis_width": args.width})
    stream_s = len(packets) / fps
    print(
        f"clip: {what}, {stream_s:.0f} s, {len(packets)} packets, analysed at "
        f"{config.analysis_fps:g} fps, {config.analysis_width} px wide; load average {os.getloadavg()[0]:.1f}"
    )
    run(config, info, packets[:50], True, 1, NOW, detector)  # warm caches and imports
    kind = "motion + detector" if detector is not None else "analytics"
    modes: dict[str, tuple[bool, Mode]] = {"decode only": (False, NOW)}
    if detector is not None:
        assert float_detector is not None
        modes[f"{kind}, before ({float_detector.precision})"] = (True, BEFORE)
    modes[f"{kind}, now ({detector.precision})" if detector is not None else f"{kind}, now"] = (True, NOW)
    cpu: dict[str, list[float]] = {k: [] for k in modes}
    events: dict[str, int] = {}
    fed: dict[str, float] = {}
    inferences: dict[str, int] = {}
    for _ in range(args.rounds):
        for name, (analytics, mode) in modes.items():
            which = float_detector if mode == BEFORE else detector
            sec, n, share, inf = run(config, info, packets, analytics, args.cameras, mode, which)
            cpu[name].append(sec / stream_s)
            events[name], fed[name], inferences[name] = n, share, inf
    med = {k: statistics.median(v) for k, v in cpu.items()}
    dec = med["decode only"]
    print(
        f"CPU per camera, {args.cameras} cameras in one process (median of {args.rounds}, all three in the same run):"
    )
    for name in modes:
        extra = ""
        if name != "decode only":
            extra = (
                f", analytics +{(med[name] - dec) * 1e3:.1f} ms/s, ratio {dec / med[name]:.2f}, "
                f"{events[name]} events, {fed[name]:.0%} of background tiles fed"
                + (f", {inferences[name] / stream_s:.1f} inferences/s" if detector is not None else "")
                + f", {TRACKS[modes[name]]} tracks made"
            )
        print(f"  {name:38s} {med[name] * 1e3:6.1f} ms/s{extra}")
        print("    per round: " + " ".join(f"{c * 1e3:.1f}" for c in cpu[name]))
    named = list(modes)
    if len(named) == 3:
        before, now = med[named[1]] - dec, med[named[2]] - dec
        print(
            f"{kind} cost per camera: {before * 1e3:.1f} ms/s before, {now * 1e3:.1f} ms/s now "
            f"({(now - before) / before:+.0%}); load average {os.getloadavg()[0]:.1f}"
        )
    print(f"packet to worker (msgpack + pipe, both modes): {ipc_cost(packets) * 1e6:.0f} µs per packet")
    profile(config, info, packets, detector)


if __name__ == "__main__":
    main()
