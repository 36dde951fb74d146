"""Voice notes for the tests: a sine tone encoded by FFmpeg (PyAV) into a container a phone's recorder writes."""

from __future__ import annotations

import io

import av
import numpy as np


def voice_note(seconds: float, container: str = "webm", codec: str = "libopus", rate: int = 48000) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"  # type: ignore[union-attr]
        total = int(seconds * rate)
        for start in range(0, total, 960):
            count = min(960, total - start)
            t = np.arange(start, start + count) / rate
            samples = (np.sin(2 * np.pi * 440 * t) * 0.3 * 32767).astype(np.int16).reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):  # type: ignore[union-attr]
                out.mux(packet)
        for packet in stream.encode(None):  # type: ignore[union-attr]
            out.mux(packet)
    return buf.getvalue()
