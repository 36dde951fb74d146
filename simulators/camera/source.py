"""The demo's video source: renders a camera scenario and encodes it to H.264 in real time, looped.

Registered as the ``synthetic`` scheme under the ``sharpeye.video_sources`` entry points, so a camera whose URL is
``synthetic:<scenario>`` is opened through it by the capture (ingest never imports the simulators).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from fractions import Fraction

import av
from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.transport.video.packet import StreamInfo, VideoPacket
from sharpeye.ingest.transport.video.source import Source, SourceError
from sharpeye.simulators.camera.scenario import builtin
from sharpeye.simulators.camera.scene import Scene


class SyntheticSource(Source):
    """The built-in generator: renders a simulator scenario and encodes it to H.264, in real time, looped."""

    def __init__(self, config: CameraConfig, stop: threading.Event, generation: int) -> None:
        name = config.url.split(":", 1)[1]
        try:
            self._scenario = builtin(name)
        except ValueError as exc:
            raise SourceError("not_found", str(exc)) from exc
        self._scene = Scene(self._scenario)
        self._stop = stop
        self._generation = generation
        fps = self._scenario.fps
        self._encoder = av.CodecContext.create("libx264", "w")
        self._encoder.width = self._scene.width
        self._encoder.height = self._scene.height
        self._encoder.pix_fmt = "yuv420p"
        self._encoder.time_base = Fraction(1, fps)
        self._encoder.framerate = Fraction(fps, 1)
        self._encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(fps * 2), "bf": "0"}
        self._encoder.open()
        self.info = StreamInfo(
            codec="h264",
            width=self._scene.width,
            height=self._scene.height,
            time_base=(1, fps),
            extradata=None,
            fps=float(fps),
            generation=generation,
        )

    def packets(self) -> Iterator[VideoPacket]:
        fps = self._scenario.fps
        start = time.monotonic()
        n = 0
        while not self._stop.is_set():
            due = start + n / fps
            delay = due - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            t = (n / fps) % self._scenario.duration_s
            n += 1
            if self._scenario.script_at(t) == "loss":
                continue
            frame = av.VideoFrame.from_ndarray(self._scene.frame(t), format="bgr24").reformat(format="yuv420p")
            frame.pts = n
            for pkt in self._encoder.encode(frame):
                yield VideoPacket(
                    data=bytes(pkt),
                    pts=pkt.pts,
                    dts=pkt.dts,
                    key=bool(pkt.is_keyframe),
                    arrival=time.monotonic(),
                    generation=self._generation,
                )
