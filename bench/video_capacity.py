"""How many 720p H.264 25 fps RTSP cameras this machine sustains: with analytics on vs. decoding only.

Both are measured in the same run, against the same loopback RTSP server (Debian's GStreamer RTSP server
serving a synthetic 1280x720 25 fps clip in which a person enters a zone). For N = 1, 2, 3, … cameras, a
fresh ``CameraService`` watches N RTSP clients for ``--window`` seconds after ``--warmup``; N is sustained
when every camera keeps up (analytics: ≥ 90 % of the configured 5 analysed fps; decode only: ≥ 90 % of the
25 decoded fps), no packet was dropped for a full worker queue, and no camera's decoding lags more than
1 s behind its packets' arrival. Prints the largest sustained N of each
mode and their ratio (goal ≥ 0.8), and the alarm latency (object enters the zone → reading emitted, which
is measured with the zone's dwell set to 0) at the largest sustained analytics load, and the hub's CPU per
camera (capture and workers; the RTSP server apart) of both modes at the largest N both sustained.

    .venv/bin/python bench/video_capacity.py               # full: up to 16 cameras
    .venv/bin/python bench/video_capacity.py --max 6 --window 8   # reduced

Detector mode (``--detector``): the cameras play real footage instead (Debian opencv-doc's vtest.avi from 40 s,
people walking on paths and a lawn, re-encoded to 768x576 10 fps H.264, or ``--size``/``--fps``), analysed at 5 fps
with motion + the object detector (a zone over the paths and the lawn with ``objects: person``, so the detector
works whenever someone walks, and the labelled lawn of tests/ingest/camera/labels/vtest.yaml, entered at 52 s),
against decoding only, in the same run (``--walkways loitering``: the walkway zone is a person-loitering zone
instead, so the detector works as much but alarms are rare: detector capacity without the evidence of an alarm
flood). It prints the detector's CPU per inference (in this process on crops of the
clip, and as the workers count it), its inferences and CPU per camera, the share of detector passes skipped, the
lawn entry -> alarm latency per camera (against the labelled entry, +-0.5 s) and the picture arrival -> alarm delay
(exact), and the person alarms (first readings of an episode) per second a camera in the window with the evidence
they cost (snapshots and clips begun per second a camera, alarms per clip). N is not sustained if more than
``detector.degraded_skip`` of the due detector passes in the window were skipped (the worker behind). Needs
``sharpeye models install`` (``--model`` or SHARPEYE_DATA_DIR).

    .venv/bin/python bench/video_capacity.py --detector --start 4 --step 4 --max 40 --warmup 3 --window 6
    # issue 18's figure on a quiet machine (people walking through, the detector on all of them; decode only,
    # motion + detector, their ratio, CPU per camera and per inference, zone entry -> alarm):
    .venv/bin/python bench/video_capacity.py --detector --walkways loitering \
        --model ~/.cache/sharpeye-tests/models/nanodet.onnx --start 49 --step 3 --max 112 --warmup 3 --window 6 \
        --tries 2
    # the same with an alarm flood on every camera at once (the walkways as a person intrusion zone, dwell 0):
    .venv/bin/python bench/video_capacity.py --detector --model ... (the same)
    .venv/bin/python bench/video_capacity.py --detector --size 1280x720 --fps 25 ...   # like 720p cameras
    .venv/bin/python bench/video_capacity.py --detector --precision float32 ...   # the float model, for comparison
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sharpeye.ingest.camera.config import CameraConfig, DetectorConfig
from sharpeye.ingest.camera.detector import ObjectDetector
from sharpeye.ingest.camera.model import PRECISIONS, model_path, runtime_model
from sharpeye.ingest.camera.service import CameraService
from sharpeye.ingest.reading import Reading
from sharpeye.simulators.camera.rtsp import RtspSimulator
from sharpeye.simulators.camera.scenario import builtin
from sharpeye.simulators.camera.writer import write_video

from sharpeye.clock import SystemClock

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
# Paths and lawn of vtest.avi: someone is nearly always walking here, so the detector runs all the time.
WALKWAYS = [(0.0, 0.2), (1.0, 0.2), (1.0, 1.0), (0.0, 1.0)]
# The lawn of tests/ingest/camera/labels/vtest.yaml: two people step onto it at 52.0 s of vtest.avi.
LAWN = [(0.0, 0.45), (0.3, 0.52), (0.55, 0.65), (0.72, 0.82), (0.8, 1.0), (0.0, 1.0)]
VTEST_FROM_S = 40.0  # the cameras play vtest.avi from here (39 s: people on the walkways throughout)
LAWN_ENTER_S = 52.0 - VTEST_FROM_S  # the labelled entry onto the lawn, in the cameras' clip time
CLIP_FPS = [10]  # the detector clip's frame rate (``--fps``)


PRECISION = ["int8"]  # ``--precision``: the detector model the hub runs
WALK_RULE = ["intrusion"]  # ``--walkways``: what the walkway zone raises


def detector_cameras(sim: RtspSimulator, n: int) -> list[CameraConfig]:
    if WALK_RULE[0] == "intrusion":
        # Every person stepping onto a walkway is an intrusion (about 0.4 alarms a second per camera, each with its
        # snapshot, a burst sharing one clip: evidence load on top of the detector's; 0.75/s before blobs that
        # split off a track in alarm continued its stay).
        walk: dict[str, Any] = {"id": "walk", "polygon": WALKWAYS, "dwell_s": 0.0, "objects": "person"}
    else:
        # Person loitering on the walkways (30 s): the detector classifies everyone walking there, alarms are rare.
        walk = {"id": "walk", "polygon": WALKWAYS, "intrusion": False, "loitering_s": 30.0, "objects": "person"}
    lawn = {"id": "lawn", "polygon": LAWN, "dwell_s": 0.0, "objects": "person", "min_score": 0.5}
    base = {"kind": "camera", "grid": "g1", "url": sim.url("cam"), "zones": [walk, lawn]}
    return [CameraConfig.model_validate({**base, "id": f"cam{i:02d}", "name": f"cam{i:02d}"}) for i in range(n)]


async def measure(
    sim: RtspSimulator,
    n: int,
    analytics: bool,
    warmup: float,
    window: float,
    data: Path,
    workers: int | None = None,
    detector: Path | None = None,
) -> tuple[bool, dict[str, float], list[Reading]]:
    scenario = builtin("intrusion")
    # No dwell: the figure is the time from the foot point entering the zone to the reading.
    zones = [{**z, "dwell_s": 0.0} for z in scenario.camera["zones"]]
    scenario = scenario.model_copy(update={"camera": {**scenario.camera, "zones": zones}})
    readings: list[Reading] = []
    if detector is not None:
        cams = detector_cameras(sim, n)
    else:
        cams = [scenario.camera_config(f"cam{i:02d}", sim.url("cam")) for i in range(n)]
    service = CameraService(
        cams,
        Path(tempfile.mkdtemp(prefix=f"{'a' if analytics else 'd'}{n}-", dir=data)),
        readings.extend,
        SystemClock(),
        analytics=analytics,
        workers=workers,
        detector_model=detector,
        detector_precision=PRECISION[0],
    )
    await service.start()
    try:
        deadline = time.monotonic() + 20
        # Poll with a deadline until every camera is being decoded.
        while time.monotonic() < deadline and not all(s.stream_s > 0 for s in service.stats()):  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        await asyncio.sleep(warmup)
        before = {s.camera_id: s for s in service.stats()}
        cpu0 = hub_cpu(sim)
        written0 = (len(readings), service.snapshots_written, service.clips_made, service.clips_shared)
        await asyncio.sleep(window)
        cpu1 = hub_cpu(sim)
        after = service.stats()
        # Person alarms (first readings of an episode) raised in the window, and the evidence they cost.
        firsts = sum(1 for r in readings[written0[0] :] if r.kind.startswith("video.") and r.attrs.get("repeat") == 0)
        snapshots = service.snapshots_written - written0[1]
        clips = service.clips_made - written0[2]
        shared = service.clips_shared - written0[3]
        if detector is not None:
            # Let every camera reach the lawn entry (clip time) so each gives its entry -> alarm latency.
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and min(s.stream_s for s in service.stats()) < LAWN_ENTER_S + 3:  # noqa: ASYNC110
                await asyncio.sleep(0.2)
    finally:
        await service.stop()
    worst_an = min(s.fps_analysed for s in after)
    worst_dec = min(s.fps_decoded for s in after)
    dropped = sum(s.dropped - before[s.camera_id].dropped for s in after)
    worst_lag = max(s.lag_s for s in after)
    ok = dropped == 0 and worst_lag <= 1.0 and all(s.state == "live" for s in after)
    for s in after:
        if s.state != "live" or s.detector_behind:  # (behind: over the last 30 s, start-up included)
            print(f"  {s.camera_id}: {s.state}, {s.reason}", flush=True)
    fps_in = CLIP_FPS[0] if detector is not None else 25
    ok = ok and (worst_an >= 0.9 * 5 if analytics else worst_dec >= 0.9 * fps_in)
    det0 = [before[s.camera_id].detector for s in after]
    det1 = [s.detector for s in after]
    inf = sum(d1.inferences - d0.inferences for d0, d1 in zip(det0, det1, strict=True) if d0 and d1)
    det_cpu = sum(d1.cpu_s - d0.cpu_s for d0, d1 in zip(det0, det1, strict=True) if d0 and d1)
    skipped = sum(d1.skipped - d0.skipped for d0, d1 in zip(det0, det1, strict=True) if d0 and d1)
    due = sum(d1.due - d0.due for d0, d1 in zip(det0, det1, strict=True) if d0 and d1)
    # With the detector: no more than health allows (detector.degraded_skip) of its due passes skipped in the window.
    ok = ok and (due == 0 or skipped / due <= cams[0].detector.degraded_skip)
    fig = {
        "inferences_per_s": inf / window / max(1, n),
        "det_cpu_per_inference": det_cpu / inf if inf else 0.0,
        "det_cpu_per_camera": det_cpu / window / max(1, n),
        "det_skipped": skipped / due if due else 0.0,
        "worst_fps_analysed": worst_an,
        "worst_fps_decoded": worst_dec,
        "dropped": dropped,
        "lag": worst_lag,
        "alarms_per_s": firsts / window / max(1, n),
        "snapshots_per_s": snapshots / window / max(1, n),
        "clips_per_s": clips / window / max(1, n),
        "clip_alarms": (clips + shared) / max(1, clips),
        **{k: (cpu1[k] - cpu0[k]) / window for k in cpu0},
    }
    return ok, fig, readings


def hub_cpu(sim: RtspSimulator) -> dict[str, float]:
    """CPU seconds used so far by this process (capture, fan-out), by its analytics workers and, apart, by the
    RTSP server (the cameras, not the hub)."""
    me = psutil.Process()
    out = {"capture": sum(me.cpu_times()[:2]), "workers": 0.0, "rtsp": 0.0}
    server = sim.pid
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            out["rtsp" if child.pid == server else "workers"] += sum(child.cpu_times()[:2])
    out["cpu"] = out["capture"] + out["workers"]
    return out


def latency(readings: list[Reading], enter_s: float, channel: str | None = None) -> list[float]:
    """Object enters the zone (ground truth, stream time) → reading emitted (wall). With ``channel``: the first
    alarm of that zone per camera from 1 s before the entry on (the labels' precision)."""
    out = []
    seen: set[str] = set()
    for r in sorted(readings, key=lambda r: float(r.attrs["since_connect_s"])):
        if r.kind != "video.intrusion" or r.attrs.get("repeat") != 0:
            continue
        since = float(r.attrs["since_connect_s"])
        if channel is not None:
            if r.channel != channel or r.device_id in seen or since < enter_s - 1:
                continue
            seen.add(r.device_id)
        out.append(since - enter_s + float(r.attrs["latency_s"]))
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--start", type=int, default=1, help="first N tried")
    parser.add_argument("--workers", type=int, default=None, help="analytics processes (default: one per core)")
    parser.add_argument("--step", type=int, default=1, help="N grows by this much")
    parser.add_argument("--max", type=int, default=24, help="largest N tried")
    parser.add_argument("--warmup", type=float, default=4.0)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--tries", type=int, default=2, help="measurements of an N before its failure counts")
    parser.add_argument("--detector", action="store_true", help="motion + object detector on real footage")
    parser.add_argument(
        "--walkways",
        choices=("intrusion", "loitering"),
        default="intrusion",
        help="detector mode: the walkway zone raises person intrusion at once (an alarm flood) or loitering after 30 s",
    )
    parser.add_argument("--size", default="768x576", help="detector mode: the clip's frame size (vtest is 768x576)")
    parser.add_argument("--fps", type=int, default=10, help="detector mode: the clip's frame rate (frames repeated)")
    parser.add_argument("--model", default=None, help="detector ONNX (default SHARPEYE_DATA_DIR/models/nanodet.onnx)")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="int8",
        help="detector mode: the model the hub runs, its int8 version (the default, as the hub's) or the float one",
    )
    args = parser.parse_args()
    PRECISION[0] = args.precision

    tmp = Path(tempfile.mkdtemp(prefix="sharpeye-capacity-"))
    scenario = builtin("intrusion")
    enter_s = 8.5  # the person's foot point crosses into the zone (see scenarios/intrusion.yaml)
    clip_s = 20 + args.warmup + args.window
    t0 = time.perf_counter()
    model: Path | None = None
    if args.detector:
        model = Path(args.model) if args.model else model_path(Path(os.environ.get("SHARPEYE_DATA_DIR", ".")))
        if not model.is_file():
            raise SystemExit(f"no detector model at {model}: run `sharpeye models install` or give --model")
        width, height = (int(v) for v in args.size.lower().split("x"))
        CLIP_FPS[0] = args.fps
        WALK_RULE[0] = args.walkways
        clip = reencode_vtest(tmp / "vtest.ts", VTEST_FROM_S, width, height, args.fps)
        per_inference = detector_cost(runtime_model(model, args.precision))
        print(
            f"clip: vtest.avi from {VTEST_FROM_S:.0f} s as {width}x{height} {args.fps} fps H.264, "
            f"{clip.stat().st_size / 1e6:.1f} MB, written in "
            f"{time.perf_counter() - t0:.1f} s; detector ({args.precision}) {per_inference * 1e3:.1f} ms CPU per "
            "inference (this process)"
        )
    else:
        clip = write_video(
            scenario,
            tmp / "cam720.ts",
            width=1280,
            height=720,
            fps=25,
            duration_s=clip_s,
            gop_s=2.0,
            preset="veryfast",
            bitrate=2_000_000,
        )
        print(
            f"clip: 1280x720 25 fps H.264, {clip_s:.0f} s, {clip.stat().st_size / 1e6:.1f} MB, "
            f"written in {time.perf_counter() - t0:.1f} s"
        )
    sim = RtspSimulator({"cam": clip})
    sim.start()
    results: dict[bool, int] = {False: 0, True: 0}
    failed: dict[bool, bool] = {False: False, True: False}
    best_latency: list[float] = []
    cpu_at: dict[tuple[int, bool], float] = {}
    workers_at: dict[tuple[int, bool], float] = {}
    det_at: dict[int, dict[str, float]] = {}
    try:
        # The two modes alternate at each N, and which goes first alternates too, so load from elsewhere on the
        # machine (and the RTSP server still tearing down the previous run's sessions) hits both alike.
        for i, n in enumerate(range(args.start, args.max + 1, args.step)):
            for analytics in (False, True) if i % 2 == 0 else (True, False):
                if failed[analytics]:
                    continue
                mode = ("motion+detector" if model else "analytics 5 fps") if analytics else "decode only"
                ok, fig, readings = await measure(sim, n, analytics, args.warmup, args.window, tmp, args.workers, model)
                for _ in range(args.tries - 1):
                    if ok:
                        break
                    # The machine is shared: a failure is measured again before it counts.
                    ok, fig, readings = await measure(
                        sim, n, analytics, args.warmup, args.window, tmp, args.workers, model
                    )
                lat = latency(readings, *((enter_s, None) if model is None else (LAWN_ENTER_S, "lawn")))
                lat = lat if analytics else []
                if analytics and model is not None:
                    alarms = sum(1 for r in readings if r.kind == "video.intrusion" and r.attrs.get("repeat") == 0)
                    delays = [
                        float(r.attrs["latency_s"])
                        for r in readings
                        if r.kind == "video.intrusion" and r.attrs.get("repeat") == 0
                    ]
                    fig["delay_p50"] = statistics.median(delays) if delays else 0.0
                    fig["delay_max"] = max(delays) if delays else 0.0
                    lat_text_det = (
                        f" (labelled entry); arrival -> alarm p50 {fig['delay_p50']:.2f} s "
                        f"max {fig['delay_max']:.2f} s;"
                        f" person alarms {alarms} in the run, {fig['alarms_per_s']:.2f}/s a camera in the window "
                        f"(evidence: {fig['snapshots_per_s']:.2f} snapshots/s, {fig['clips_per_s']:.2f} clips/s a "
                        f"camera, {fig['clip_alarms']:.1f} alarms a clip); "
                        f"detector {fig['inferences_per_s']:.1f} inferences/s per camera, "
                        f"{fig['det_cpu_per_inference'] * 1e3:.1f} ms CPU each, {fig['det_cpu_per_camera'] * 1e3:.1f} "
                        f"ms/s per camera, {fig['det_skipped']:.0%} of due passes skipped"
                    )
                    det_at[n] = fig
                else:
                    lat_text_det = ""
                lat_text = f" latency p50 {statistics.median(lat):.2f} s max {max(lat):.2f} s" if lat else ""
                print(
                    f"{mode:16s} N={n:2d} {'ok ' if ok else 'FAIL'} worst analysed {fig['worst_fps_analysed']:.1f} "
                    f"fps, worst decoded {fig['worst_fps_decoded']:.1f} fps, worst lag {fig['lag']:.2f} s, "
                    f"dropped {fig['dropped']:.0f}, "
                    f"hub CPU {fig['cpu']:.0%} of a core (capture {fig['capture']:.0%}, workers {fig['workers']:.0%}; "
                    f"{fig['workers'] / n * 1e3:.1f} ms/s per camera in workers), RTSP server {fig['rtsp']:.0%}, "
                    f"load {os.getloadavg()[0]:.1f}{lat_text}{lat_text_det}",
                    flush=True,
                )
                if not ok:
                    failed[analytics] = True
                    continue
                results[analytics] = n
                cpu_at[(n, analytics)] = fig["cpu"] / n
                workers_at[(n, analytics)] = fig["workers"] / n
                if analytics:
                    best_latency = lat
            if all(failed.values()):
                break
    finally:
        sim.stop()
    dec, ana = results.get(False, 0), results.get(True, 0)
    ratio = ana / dec if dec else 0.0
    goal = 0.6 if model else 0.8
    print(
        f"sustained cameras: {'motion+detector' if model else 'analytics'} {ana}, decode only {dec} (baseline, "
        f"same run); ratio {ratio:.2f} (goal >= {goal})"
    )
    both = [n for n, a in cpu_at if a and (n, False) in cpu_at]
    if both:
        n = max(both)
        d, a = cpu_at[(n, False)], cpu_at[(n, True)]
        print(
            f"hub CPU per camera at N={n} (the largest N both sustained): decode only {d * 1e3:.1f} ms/s, "
            f"analytics {a * 1e3:.1f} ms/s; ratio {d / a:.2f} (steadier than the counts on a shared machine)"
        )
        if model:
            extra = workers_at[(n, True)] - workers_at[(n, False)]
            print(f"motion + detector cost per camera at N={n} (workers, minus decode only): {extra * 1e3:.1f} ms/s")
    if model and ana in det_at:
        fig = det_at[ana]
        print(
            f"detector at N={ana} (workers' own count): {fig['inferences_per_s']:.1f} inferences/s per camera, "
            f"{fig['det_cpu_per_inference'] * 1e3:.1f} ms CPU per inference, {fig['det_cpu_per_camera'] * 1e3:.1f} "
            f"ms/s of detector CPU per camera, {fig['det_skipped']:.0%} of due passes skipped; picture arrival -> "
            f"alarm p50 {fig['delay_p50']:.2f} s, max {fig['delay_max']:.2f} s; alarms {fig['alarms_per_s']:.2f}/s a "
            f"camera, evidence {fig['snapshots_per_s']:.2f} snapshots/s and {fig['clips_per_s']:.2f} clips/s a camera"
        )
    if best_latency:
        goal_s = 1.5 if model else 1.0
        print(
            f"zone entry -> alarm at N={ana}: p50 {statistics.median(best_latency):.2f} s, "
            f"max {max(best_latency):.2f} s over {len(best_latency)} cameras (dwell 0; goal <= {goal_s} s)"
        )


def reencode_vtest(path: Path, from_s: float = 0.0, width: int = 768, height: int = 576, fps: int = 10) -> Path:
    """vtest.avi from ``from_s`` (MS-MPEG4, which RTSP does not carry) as H.264 in MPEG-TS, a key frame every 2 s;
    at another size or frame rate (each picture repeated, like a 25 fps camera watching a 10 fps scene) if asked."""
    import av

    src: Any = av.open(str(VTEST))
    out: Any = av.open(str(path), "w", format="mpegts")
    stream = out.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"preset": "veryfast", "g": str(2 * fps), "bf": "0"}
    n = 0
    for frame in src.decode(video=0):
        if frame.time is None or frame.time < from_s - 1e-3:
            continue
        picture = frame.reformat(width=width, height=height, format="yuv420p")
        # Source frame k (10 fps) covers output frames [k * fps / 10, (k + 1) * fps / 10).
        k = round((frame.time - from_s) * 10)
        while n < (k + 1) * fps / 10:
            copy = picture.reformat(format="yuv420p")
            copy.pts = n
            copy.time_base = Fraction(1, fps)
            out.mux(stream.encode(copy))
            n += 1
    out.mux(stream.encode(None))
    out.close()
    src.close()
    return path


def detector_cost(model: Path, samples: int = 12) -> float:
    """CPU seconds per inference of the detector on 256-px crops of vtest.avi seen at the default region size (a
    crop around one or two people; one thread, this process)."""
    import av

    size = DetectorConfig().region_size
    detector = ObjectDetector(model)
    src: Any = av.open(str(VTEST))
    for i, frame in enumerate(src.decode(video=0)):
        if i % 20 == 0:
            img = frame.to_ndarray(format="bgr24")
            detector.detect(img[200:456, 300:556], size)
            if detector.inferences >= samples:
                break
    src.close()
    return detector.cpu_s / max(1, detector.inferences)


if __name__ == "__main__":
    asyncio.run(main())
