"""CPU of continuously recording cameras against receiving them alone, and disk bytes per hour against the stream.

In one process, ``--cameras`` captures (the hub's ``Capture`` thread and ``AvSource``, paced in real time, the
packets kept in the evidence ring as the camera service does) read a 1280x720 25 fps H.264 clip at 2 Mbit/s
(the intrusion scenario, a key frame every 2 s). Each round measures the process's CPU seconds over
``--seconds`` of steady state twice, alternating: receiving alone (the baseline) and receiving with a
``Recorder`` per camera writing 60 s MP4 segments (``segment_s``) on its own thread. It prints CPU per camera
per second of stream for both, their ratio (goal: at most 1.1), and the disk bytes written per hour against the
stream's own bytes per hour (the MP4's overhead).

    .venv/bin/python bench/recording.py                      # 4 cameras, 20 s, 3 rounds
    .venv/bin/python bench/recording.py --cameras 8 --seconds 30 --rounds 2
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import av

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.camera.evidence import PacketRing
from sharpeye.ingest.recording.config import RecordConfig
from sharpeye.ingest.recording.recorder import Recorder
from sharpeye.ingest.recording.store import RecordingStore
from sharpeye.ingest.transport.video.capture import Capture
from sharpeye.ingest.transport.video.packet import StreamInfo, VideoPacket
from sharpeye.simulators.camera.scenario import builtin
from sharpeye.simulators.camera.writer import write_video

WARMUP_S = 2.0


class Counter:
    def __init__(self) -> None:
        self.bytes = 0
        self.packets = 0
        self.lock = threading.Lock()


def run(clip: Path, cameras: int, seconds: float, record: bool, root: Path) -> tuple[float, int, int, float]:
    """(CPU seconds per camera per stream second in the window, stream bytes and disk bytes of the whole run, the
    window's seconds)."""
    store = RecordingStore(root)
    counter = Counter()
    captures: list[Capture] = []
    recorders: list[Recorder | None] = []
    for i in range(cameras):
        config = CameraConfig.model_validate(
            {"id": f"cam{i:02d}", "kind": "camera", "name": f"cam{i}", "grid": "g", "url": str(clip)}
        )
        ring = PacketRing(10)
        recorder = Recorder(config.id, RecordConfig(segment_s=60), store) if record else None
        if recorder is not None:
            recorder.start()
        recorders.append(recorder)

        def on_open(info: StreamInfo, ring: PacketRing = ring, rec: Recorder | None = recorder) -> None:
            ring.info = info
            if rec is not None:
                rec.open(info)

        def on_packet(p: VideoPacket, ring: PacketRing = ring, rec: Recorder | None = recorder) -> None:
            ring.append(p)
            if rec is not None:
                rec.push(p)
            with counter.lock:
                counter.bytes += len(p.data)
                counter.packets += 1

        captures.append(Capture(config, on_open, on_packet, lambda reason, detail: print("error", reason, detail)))
    for c in captures:
        c.start()
    time.sleep(WARMUP_S)
    cpu0, wall0 = time.process_time(), time.monotonic()
    time.sleep(seconds)
    cpu1, wall1 = time.process_time(), time.monotonic()
    for c in captures:
        c.stop()
    for c in captures:
        c.join(10)
    written = 0
    for rec in recorders:
        if rec is not None:
            rec.stop()
            rec.join(30)
            written += rec.bytes_written
    window = wall1 - wall0
    return (cpu1 - cpu0) / cameras / window, counter.bytes, written, window


def clip_stream_bytes(clip: Path) -> int:
    """The H.264 bytes of the clip (its packets, without MPEG-TS framing)."""
    container: Any = av.open(str(clip))
    total = sum(p.size for p in container.demux(container.streams.video[0]))
    container.close()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per mode and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sharpeye-recording-"))
    try:
        clip = write_video(builtin("intrusion"), tmp / "cam720.ts", width=1280, height=720, fps=25,
                           duration_s=30, gop_s=2.0, preset="veryfast", bitrate=2_000_000)  # fmt: skip
        print(f"clip: 1280x720 25 fps H.264 2 Mbit/s, {clip.stat().st_size / 1e6:.1f} MB for 30 s; "
              f"{args.cameras} cameras, {args.seconds:.0f} s per mode, {args.rounds} rounds")  # fmt: skip
        receive: list[float] = []
        record: list[float] = []
        overhead: list[float] = []
        for r in range(args.rounds):
            base, _, _, _ = run(clip, args.cameras, args.seconds, False, tmp / f"r{r}-base")
            cpu, stream_bytes, disk, _ = run(clip, args.cameras, args.seconds, True, tmp / f"r{r}-rec")
            receive.append(base)
            record.append(cpu)
            overhead.append(disk / stream_bytes)  # MP4 bytes written against the stream's packet bytes received
            print(f"round {r + 1}: receiving {base * 100:.2f} % of a core per camera, receiving + recording "
                  f"{cpu * 100:.2f} %  (ratio {cpu / base:.2f}); disk {disk / 1e6:.1f} MB for "
                  f"{stream_bytes / 1e6:.1f} MB of stream ({disk / stream_bytes:.3f}x)")  # fmt: skip
        b, c = statistics.median(receive), statistics.median(record)
        ratios = statistics.median(rec / base for rec, base in zip(record, receive, strict=True))
        print(f"median: receiving {b * 100:.2f} % of a core per camera; with recording {c * 100:.2f} %; "
              f"median of the rounds' ratios {ratios:.2f} (goal <= 1.10); recording adds {(c - b) * 100:.2f} % of "
              "a core per camera")  # fmt: skip
        ratio = statistics.median(overhead)
        stream_hour = clip_stream_bytes(clip) / 30 * 3600
        ts_hour = clip.stat().st_size / 30 * 3600
        print(f"disk per camera-hour {stream_hour * ratio / 1e9:.3f} GB against the stream's {stream_hour / 1e9:.3f} "
              f"GB/h of H.264 ({ratio:.3f}x; the clip's MPEG-TS file is {ts_hour / 1e9:.3f} GB/h)")  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
