"""Feeding a clip's packets to a recorder as capture would, on a virtual arrival clock (no real-time wait)."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from sharpeye.ingest.transport.video.packet import StreamInfo, VideoPacket
from sharpeye.ingest.transport.video.source import stream_info


def clip_packets(path: Path, loops: int = 1) -> tuple[StreamInfo, list[VideoPacket]]:
    """A clip's packets, looped ``loops`` times with growing timestamps; arrival = the packet's stream time from
    ``time.monotonic()`` minus the whole length (so that every packet arrived in the past, in order)."""
    container: Any = av.open(str(path))
    stream = container.streams.video[0]
    info = stream_info(stream, 0, container.format.name)
    raw = [p for p in container.demux(stream) if p.size]
    container.close()
    tb = Fraction(*info.time_base)
    first = min(int(p.pts) for p in raw)
    span = max(int(p.pts) for p in raw) - first + round(1 / (tb * (info.fps or 10)))
    total = float(span * tb) * loops
    origin = time.monotonic() - total - 1
    out = []
    for k in range(loops):
        for p in raw:
            pts = int(p.pts) + k * span
            dts = None if p.dts is None else int(p.dts) + k * span
            out.append(
                VideoPacket(
                    data=bytes(p), pts=pts, dts=dts, key=bool(p.is_keyframe), arrival=origin + float((pts - first) * tb)
                )
            )
    return info, out


def decode_file(path: Path) -> tuple[int, tuple[int, int], float]:
    """Decode every picture of an MP4: (pictures, (width, height), duration in seconds)."""
    container: Any = av.open(str(path))
    stream = container.streams.video[0]
    n = 0
    size = (0, 0)
    for frame in container.decode(stream):
        n += 1
        size = (frame.width, frame.height)
    duration = float(stream.duration * stream.time_base) if stream.duration else 0.0
    container.close()
    return n, size, duration
