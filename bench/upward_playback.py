"""CPU of playing SharpEye's own recordings to an upper platform (GB/T 28181 Playback upward), against reading them.

A 1280x720 25 fps H.264 clip at 2 Mbit/s (the intrusion scenario, a key frame every 2 s) is recorded once into a
``RecordingStore`` (10 s MP4 segments, written by the hub's ``Recorder``). Then, in one process, ``--streams``
playbacks of the recording run at real time (``RecordedPlayback``: segments read in a thread, paced on the event
loop) for ``--seconds`` per mode, alternating for ``--rounds`` rounds:

- reading (the baseline): each playback's packets are taken from its subscription and dropped;
- upward: each packet goes the cascade's way to the upper platform (``AnnexB`` re-framing, ``PsMuxer``, RTP payloads,
  ``RtpSender`` over UDP to a local port nobody reads), as ``GbCascade._send_upstream`` does.

It prints this process's CPU per stream for both and their ratio (what muxing and sending add to reading).

    .venv/bin/python bench/upward_playback.py                  # 4 streams, 15 s, 3 rounds
    .venv/bin/python bench/upward_playback.py --streams 8 --seconds 20 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sharpeye.ingest.recording.config import RecordConfig
from sharpeye.ingest.recording.playback import RecordedPlayback
from sharpeye.ingest.recording.recorder import Recorder
from sharpeye.ingest.recording.store import RecordingStore
from sharpeye.ingest.transport.ps import AnnexB, PsMuxer, rtp_payloads
from sharpeye.ingest.transport.rtp import RtpSender
from sharpeye.ingest.transport.video.packet import VideoPacket
from sharpeye.ingest.transport.video.source import stream_info
from sharpeye.simulators.camera.scenario import builtin
from sharpeye.simulators.camera.writer import write_video

CAMERA = "cam-bench"
WARMUP_S = 1.5


def record(clip: Path, store: RecordingStore) -> tuple[float, float]:
    """Record the clip (as if it had arrived in real time just now) and return the recording's (start, end)."""
    container: Any = av.open(str(clip))
    stream = container.streams.video[0]
    info = stream_info(stream, 0, container.format.name)
    raw = [p for p in container.demux(stream) if p.size]
    container.close()
    tb = Fraction(*info.time_base)
    first = min(int(p.pts) for p in raw)
    total = float((max(int(p.pts) for p in raw) - first) * tb)
    origin = time.monotonic() - total - 1
    recorder = Recorder(CAMERA, RecordConfig(segment_s=10), store)
    recorder.start()
    recorder.open(info)
    for p in raw:
        arrival = origin + float((int(p.pts) - first) * tb)
        dts = None if p.dts is None else int(p.dts)
        recorder.push(VideoPacket(data=bytes(p), pts=int(p.pts), dts=dts, key=bool(p.is_keyframe), arrival=arrival))
    recorder.stop()
    if not recorder.join(120):
        raise SystemExit("the recorder did not finish")
    segments = store.segments(CAMERA, 0, 4e9)
    return segments[0].start, segments[-1].end


async def drain(playback: RecordedPlayback, sender: RtpSender | None) -> None:
    sub = playback.subscription
    info = sub.info
    assert info is not None
    annexb = AnnexB(info.codec, info.extradata)
    muxer = PsMuxer(info.codec)
    while True:
        try:
            packet = await sub.get()
        except EOFError:
            return
        if sender is None:
            continue
        ts = packet.pts or 0
        sender.send(rtp_payloads(muxer.mux(annexb(packet.data, packet.key), ts, packet.key)), ts)


async def run(store: RecordingStore, start: float, streams: int, seconds: float, upward: bool, port: int) -> float:
    """CPU seconds per stream per second of video over the window."""
    playbacks = [await RecordedPlayback.open(store, CAMERA, start, start + WARMUP_S + seconds + 5)
                 for _ in range(streams)]  # fmt: skip
    senders: list[RtpSender | None] = []
    for i in range(streams):
        sender = RtpSender(mode="udp", ssrc=1_100_000_000 + i, peer=("127.0.0.1", port), host="127.0.0.1")
        await sender.start()
        senders.append(sender if upward else None)
    tasks = [asyncio.ensure_future(drain(p, s)) for p, s in zip(playbacks, senders, strict=True)]
    await asyncio.sleep(WARMUP_S)
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    for playback in playbacks:
        await playback.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    for sender in senders:
        if sender is not None:
            await sender.stop()
    frames = sum(p.stats["frames"] for p in playbacks)
    if frames < streams * 25 * (seconds + WARMUP_S) * 0.9:
        print(f"  warning: {frames} frames played, fewer than real time asks (a loaded machine)")
    return cpu / wall / streams


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per mode and round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    length = WARMUP_S + args.seconds + 8
    tmp = Path(tempfile.mkdtemp(prefix="sharpeye-upward-playback-"))
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # the upper platform's media port; never read
    sink.bind(("127.0.0.1", 0))
    try:
        clip = write_video(builtin("intrusion"), tmp / "cam720.ts", width=1280, height=720, fps=25,
                           duration_s=length, gop_s=2.0, preset="veryfast", bitrate=2_000_000)  # fmt: skip
        store = RecordingStore(tmp / "rec")
        start, end = record(clip, store)
        print(f"recording: 1280x720 25 fps H.264 2 Mbit/s, {end - start:.0f} s in "
              f"{len(store.segments(CAMERA, 0, 4e9))} segments; {args.streams} streams, {args.seconds:.0f} s per "
              f"mode, {args.rounds} rounds")  # fmt: skip
        reading: list[float] = []
        upward: list[float] = []
        for r in range(args.rounds):
            base = asyncio.run(run(store, start, args.streams, args.seconds, False, sink.getsockname()[1]))
            full = asyncio.run(run(store, start, args.streams, args.seconds, True, sink.getsockname()[1]))
            reading.append(base)
            upward.append(full)
            print(f"round {r + 1}: reading {base * 100:.2f} % of a core per stream, played upward (PS over RTP) "
                  f"{full * 100:.2f} %  (ratio {full / base:.2f})")  # fmt: skip
        b, u = statistics.median(reading), statistics.median(upward)
        ratio = statistics.median(f / r for f, r in zip(upward, reading, strict=True))
        print(
            f"median: reading {b * 100:.2f} % of a core per stream; played upward {u * 100:.2f} %; median of "
            f"the rounds' ratios {ratio:.2f}; muxing and sending add {(u - b) * 100:.2f} % of a core per stream"
        )
    finally:
        sink.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
