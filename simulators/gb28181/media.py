"""Media of the simulated GB/T 28181 devices: a camera scene encoded once to H.264 or H.265, streamed as PS over RTP.

A clip is rendered from one of the camera simulator's scenarios and encoded (libx264 or libx265, no B-frames, a
key frame every second) once per (scenario, codec, size) and cached; each INVITE replays it in a loop, paced in
real time, with timestamps that keep growing. Faults: random loss, reordering of neighbouring packets, and a
stall (no RTP at all for a while), as configured per device.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
from sharpeye.ingest.transport.ps import PsMuxer, rtp_payloads
from sharpeye.ingest.transport.rtp import RtpSender
from sharpeye.simulators.camera.scenario import builtin
from sharpeye.simulators.camera.scene import Scene

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Clip:
    codec: str  # "h264" or "hevc"
    fps: int
    width: int
    height: int
    frames: tuple[tuple[bytes, bool], ...]  # (Annex B access unit, key)


@functools.lru_cache(maxsize=8)
def encode_clip(
    scenario: str = "intrusion", codec: str = "h264", width: int = 320, height: int = 180, seconds: float = 4.0
) -> Clip:
    """Render and encode ``seconds`` of a built-in scenario (blocking: call it in a thread)."""
    sc = builtin(scenario)
    scene = Scene(sc, width, height)
    fps = sc.fps
    encoder = av.CodecContext.create("libx265" if codec == "hevc" else "libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = Fraction(1, fps)
    encoder.framerate = Fraction(fps, 1)
    if codec == "hevc":
        encoder.options = {
            "preset": "ultrafast",
            "x265-params": f"keyint={fps}:bframes=0:repeat-headers=1:log-level=none",
        }
    else:
        encoder.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "g": str(fps),
            "bf": "0",
            "x264-params": "repeat-headers=1",
        }
    encoder.open()
    frames: list[tuple[bytes, bool]] = []
    count = max(1, int(min(seconds, sc.duration_s) * fps))
    for n in range(count):
        img = scene.frame(n / fps)
        frame = av.VideoFrame.from_ndarray(img, format="bgr24").reformat(format="yuv420p")
        frame.pts = n
        frames.extend((bytes(p), bool(p.is_keyframe)) for p in encoder.encode(frame))
    frames.extend((bytes(p), bool(p.is_keyframe)) for p in encoder.encode(None))
    return Clip(codec, fps, width, height, tuple(frames))


@functools.lru_cache(maxsize=8)
def load_clip(path: str) -> Clip:
    """Read a recorded H.264/H.265 stream (MPEG-TS or a raw Annex B file) as a clip, without re-encoding."""
    container: Any = av.open(path)
    try:
        stream = container.streams.video[0]
        codec = "hevc" if stream.codec_context.name in ("hevc", "h265") else stream.codec_context.name
        if codec not in ("h264", "hevc"):
            raise ValueError(f"{path}: {codec} cannot be carried in GB/T 28181 PS here (H.264/H.265 only)")
        fps = round(float(stream.average_rate or 25))
        width, height = stream.codec_context.width, stream.codec_context.height
        frames = tuple((bytes(p), bool(p.is_keyframe)) for p in container.demux(stream) if p.size)
    finally:
        container.close()
    if not frames or not frames[0][1]:
        raise ValueError(f"{path}: no video, or it does not start with a key frame")
    return Clip(codec, fps, width, height, frames)


@dataclass(slots=True)
class MediaFaults:
    loss: float = 0.0  # share of RTP packets dropped
    reorder: float = 0.0  # share of packets swapped with the next one
    stall_after_s: float | None = None  # stop sending after this long...
    stall_s: float = 0.0  # ...for this long
    never_start: bool = False  # answer the INVITE but send nothing


async def stream_clip(
    sender: RtpSender, clip: Clip, faults: MediaFaults, *, seed: int = 1, want_key: Callable[[], bool] | None = None
) -> None:
    """Send the clip in a loop until cancelled. ``want_key()`` true (a forced key frame was asked): the clip jumps
    to its next key frame, as a camera starts a new group of pictures."""
    rng = random.Random(seed)
    muxer = PsMuxer(clip.codec)
    loop = asyncio.get_running_loop()
    start = loop.time()
    step = 90000 // clip.fps
    n = 0
    skip = 0
    stalled = False
    if faults.never_start:
        await asyncio.Event().wait()
    while True:
        due = start + n / clip.fps
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elapsed = loop.time() - start
        if faults.stall_after_s is not None and faults.stall_after_s <= elapsed < faults.stall_after_s + faults.stall_s:
            if not stalled:
                log.info("simulated stall for %.1f s", faults.stall_s)
                stalled = True
            n += 1
            continue
        if want_key is not None and want_key() and not clip.frames[(n + skip) % len(clip.frames)][1]:
            at = (n + skip) % len(clip.frames)
            ahead = next((k for k in range(1, len(clip.frames)) if clip.frames[(at + k) % len(clip.frames)][1]), 0)
            skip += ahead
        data, key = clip.frames[(n + skip) % len(clip.frames)]
        ts = n * step
        ps = muxer.mux(data, ts, key)
        packets = []
        payloads = rtp_payloads(ps)
        last = len(payloads) - 1
        from sharpeye.ingest.transport.rtp import build_rtp

        for i, payload in enumerate(payloads):
            packets.append(build_rtp(sender.payload_type, sender.seq, ts, sender.ssrc, payload, marker=i == last))
            sender.seq = (sender.seq + 1) & 0xFFFF
        if faults.reorder:
            for i in range(len(packets) - 1):
                if rng.random() < faults.reorder:
                    packets[i], packets[i + 1] = packets[i + 1], packets[i]
        for packet in packets:
            if faults.loss and rng.random() < faults.loss:
                sender.stats["simulated_loss"] += 1
                continue
            sender.send_packet(packet)
        n += 1
