"""Analytics worker process: decodes the packets of its cameras and runs their ``Analyzer``.

The hub sends, over a pipe, ``("open", camera_json, info_bytes, analytics)``, ``("pkt", camera_id, packet_bytes)``,
``("close", camera_id)`` and ``("stop",)``. The worker answers with ``("events", camera_id, [(event_bytes,
jpeg | None, arrival, seconds_since_connect)])``,
``("stats", camera_id, decoded, analysed, decode_errors, width, height, stream_s,
last_arrival, last_decode_error, blind_s, detector)`` (``blind_s``: how long packets have been
fed since the last picture, 0 while pictures come; ``detector``: the camera's ``DetectorStats`` in msgpack, None
without a detector) and
``("error", camera_id, reason, detail)``. Decoding runs on every packet (a P-frame needs its predecessors);
only frames at the analysis rate are scaled down and analysed, by one swscale context per camera kept for the
camera's life (a context made afresh for every frame cost twice the scaling itself).
"""

from __future__ import annotations

import logging
import signal
import time
from fractions import Fraction
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import av
import cv2
import msgspec
import numpy as np
from sharpeye.ingest.camera.analyzer import Analyzer
from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.camera.detector import ObjectDetector
from sharpeye.ingest.camera.event import VideoEvent
from sharpeye.ingest.transport.video.codec import open_decoder
from sharpeye.ingest.transport.video.packet import StreamInfo, VideoPacket

log = logging.getLogger(__name__)

_enc = msgspec.msgpack.Encoder()
_info_dec = msgspec.msgpack.Decoder(StreamInfo)
_pkt_dec = msgspec.msgpack.Decoder(VideoPacket)

# swscale on the worker's own thread: PyAV's default (0, automatic) gives every scaler a pool of slice threads, one
# per core, which a 320-px picture only waits on (a worker is one core's work; 20 cameras a worker made the scaling
# cost three times its single-threaded CPU, docs/benchmarks.md)
SCALER_THREADS = 1

GREEN = (0, 220, 0)
RED = (0, 0, 255)
YELLOW = (0, 220, 255)


def annotate(frame: np.ndarray, config: CameraConfig, event: VideoEvent | list[VideoEvent]) -> np.ndarray:
    """Draw the events' zones or lines and their objects' boxes on a full-size BGR frame (the alarms raised on one
    picture share one snapshot)."""
    events = event if isinstance(event, list) else [event]
    h, w = frame.shape[:2]
    thick = max(2, w // 320)

    def px(p: tuple[float, float]) -> tuple[int, int]:
        return (round(p[0] * (w - 1)), round(p[1] * (h - 1)))

    channels = {e.channel for e in events}
    for zone in config.zones:
        if zone.id in channels:
            pts = np.array([px(p) for p in zone.polygon], np.int32)
            cv2.polylines(frame, [pts], True, YELLOW, thick)
            cv2.putText(frame, zone.id, px(zone.polygon[0]), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * thick, YELLOW, thick)
    for line in config.tripwires:
        if line.id in channels:
            cv2.line(frame, px(line.a), px(line.b), YELLOW, thick)
            cv2.putText(frame, f"{line.id} A", px(line.a), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * thick, YELLOW, thick)
    for e in events:
        if e.box is not None:
            x, y, bw, bh = e.box
            cv2.rectangle(frame, px((x, y)), px((min(1.0, x + bw), min(1.0, y + bh))), RED, thick)
    label = ", ".join(dict.fromkeys(f"{e.kind} {e.value}" for e in events))
    cv2.putText(frame, label, (8, 8 + 14 * thick), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * thick, GREEN, thick)
    return frame


class Picture:
    """The full-size BGR picture of a decoded frame, converted only where it is asked for: a detector region
    straight from the frame's YUV 4:2:0 planes (a region of 130 x 130 pixels costs a sixth of converting a 768 x 576
    picture), the whole picture once (a snapshot; other pixel formats, and regions once it exists)."""

    def __init__(self, frame: Any, reformatter: Any) -> None:
        self._frame = frame
        self._reformatter = reformatter
        self._whole: np.ndarray | None = None
        self.shape = (frame.height, frame.width, 3)
        self._planar = frame.format.name == "yuv420p"

    def whole(self) -> np.ndarray:
        if self._whole is None:
            self._whole = self._reformatter.reformat(self._frame, format="bgr24", threads=SCALER_THREADS).to_ndarray()
        return self._whole

    def crop(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """The region [x0, x1) x [y0, y1) in BGR."""
        if self._whole is not None or not self._planar:
            return self.whole()[y0:y1, x0:x1]
        height, width = self.shape[:2]
        # Chroma is shared by 2 x 2 pixels: convert the region grown to even bounds, then cut it back.
        ax0, ay0 = x0 & ~1, y0 & ~1
        ax1, ay1 = min(width, x1 + (x1 & 1)), min(height, y1 + (y1 & 1))
        w, h = ax1 - ax0, ay1 - ay0
        if w < 2 or h < 2 or w % 2 or h % 2:
            return self.whole()[y0:y1, x0:x1]
        planes = self._frame.planes
        ys, us, vs = (np.frombuffer(p, np.uint8).reshape(-1, p.line_size) for p in planes[:3])
        # I420 in one buffer: the region's Y rows, then its U, then its V (what COLOR_YUV2BGR_I420 reads).
        buf = np.empty(w * h * 3 // 2, np.uint8)
        n, q = w * h, w * h // 4
        buf[:n].reshape(h, w)[:] = ys[ay0:ay1, ax0:ax1]
        buf[n : n + q].reshape(h // 2, w // 2)[:] = us[ay0 // 2 : ay1 // 2, ax0 // 2 : ax1 // 2]
        buf[n + q :].reshape(h // 2, w // 2)[:] = vs[ay0 // 2 : ay1 // 2, ax0 // 2 : ax1 // 2]
        bgr = cv2.cvtColor(buf.reshape(h * 3 // 2, w), cv2.COLOR_YUV2BGR_I420)
        return bgr[y0 - ay0 : y1 - ay0, x0 - ax0 : x1 - ax0]


class CameraDecoder:
    """Decoder, frame selection and analytics of one camera."""

    def __init__(
        self, config: CameraConfig, info: StreamInfo, analytics: bool = True, detector: ObjectDetector | None = None
    ) -> None:
        self.config = config
        self.analytics = analytics
        self.analyzer = Analyzer(config, detector, strict=analytics)
        self.decoded = 0
        self.analysed = 0
        self.errors = 0
        self.last_error: str | None = None
        self.waiting_since: float | None = None  # the first packet fed since the last picture
        self.waiting_packets = 0
        self.size = (0, 0)
        self.last_arrival = 0.0
        self._next_t = -1.0
        self._offset = 0.0
        self._last_t: float | None = None
        self._arrivals: dict[int, float] = {}
        self._conn_t0: float | None = None
        # One scaler per camera: PyAV's per-frame ``reformat`` builds a new swscale context every call.
        self._scaler: Any = av.video.reformatter.VideoReformatter()
        self._full: Any = av.video.reformatter.VideoReformatter()
        self._open(info)

    def _open(self, info: StreamInfo) -> None:
        self.info = info
        self._ctx: Any = None
        try:
            self._ctx = open_decoder(info)
        except (av.FFmpegError, ValueError) as exc:
            self.last_error = f"{info.codec}: {exc}"
            log.warning("camera %s: cannot decode %s", self.config.id, self.last_error)
        self._tb = Fraction(*info.time_base)
        self._tb_s = float(self._tb)

    @property
    def first_t(self) -> float | None:
        """Stream time of the current connection's first picture."""
        return self._conn_t0

    @property
    def stream_s(self) -> float:
        """Seconds of stream analysed since the current connection began."""
        if self._conn_t0 is None or self._last_t is None:
            return 0.0
        return self._last_t - self._conn_t0

    def blind_s(self, now: float) -> float:
        """Seconds during which packets (at least 3) were fed without giving a picture."""
        if self.waiting_since is None or self.waiting_packets < 3:
            return 0.0
        return now - self.waiting_since

    def reopen(self, info: StreamInfo) -> None:
        self.waiting_since = None
        self.waiting_packets = 0
        self._open(info)
        self._conn_t0 = None

    def _stream_time(self, frame: Any, arrival: float) -> float:
        raw = frame.pts * self._tb_s if frame.pts is not None else arrival
        t = raw + self._offset
        if self._last_t is not None and (t < self._last_t - 0.5 or t > self._last_t + 10):
            # A new connection or a looped file: keep analytics time continuous.
            self._offset += self._last_t + 1 / max(self.config.analysis_fps, 1) - t
            t = raw + self._offset
            self._next_t = t
        self._last_t = t
        return t

    def feed(self, packet: VideoPacket) -> list[tuple[bytes, bytes | None, float, float]]:
        out: list[tuple[bytes, bytes | None, float, float]] = []
        pkt = av.Packet(packet.data)
        pkt.pts = packet.pts
        pkt.dts = packet.dts
        pkt.time_base = self._tb
        if packet.pts is not None:
            self._arrivals[packet.pts] = packet.arrival
            if len(self._arrivals) > 256:
                for k in list(self._arrivals)[:128]:
                    del self._arrivals[k]
        if self.waiting_since is None:
            self.waiting_since = time.monotonic()
        self.waiting_packets += 1
        if self._ctx is None:
            self.errors += 1
            return out
        try:
            frames = self._ctx.decode(pkt)
        except (av.FFmpegError, ValueError) as exc:
            self.errors += 1
            self.last_error = f"{self.info.codec}: {exc}"
            log.debug("camera %s: decode error %s", self.config.id, exc)
            return out
        if frames:
            self.waiting_since = None
            self.waiting_packets = 0
        for frame in frames:
            self.decoded += 1
            arrival = self._arrivals.get(frame.pts, packet.arrival) if frame.pts is not None else packet.arrival
            t = self._stream_time(frame, arrival)
            self.last_arrival = arrival
            if self._conn_t0 is None:
                self._conn_t0 = t
            # 1 ms of slack: timestamps times a float time base must not flip which frame is picked.
            if not self.analytics or t < self._next_t - 1e-3:
                continue
            step = 1 / self.config.analysis_fps
            self._next_t = max(self._next_t + step, t + step * 0.5)
            fw, fh = frame.width, frame.height
            self.size = (fw, fh)
            aw = min(self.config.analysis_width, fw)
            ah = max(2, round(fh * aw / fw / 2) * 2)
            small = self._scaler.reformat(
                frame, width=aw, height=ah, format="bgr24", interpolation="FAST_BILINEAR", threads=SCALER_THREADS
            ).to_ndarray()
            # The full-size picture is converted only where a detector pass or a snapshot needs it.
            picture = Picture(frame, self._full)
            # How old this picture is (capture's monotonic clock; 0 when fed offline, as by the accuracy tool).
            lag = time.monotonic() - arrival if arrival > 0 else 0.0
            events = self.analyzer.process(small, t, picture if self.analyzer.detector is not None else None, lag_s=lag)
            self.analysed += 1
            jpeg: bytes | None = None
            firsts = [event for event in events if event.repeat == 0]
            if firsts and self.config.evidence.enabled:
                # One snapshot of this picture for all the alarms it raised (each box drawn), drawn on the picture
                # itself: the detector is done with it. The hub shares it between their readings.
                ok, buf = cv2.imencode(
                    ".jpg", annotate(picture.whole(), self.config, firsts), [cv2.IMWRITE_JPEG_QUALITY, 85]
                )
                jpeg = buf.tobytes() if ok else None
            for event in events:
                out.append((_enc.encode(event), jpeg if event.repeat == 0 else None, arrival, t - self._conn_t0))
        return out


def worker_main(inbox: Connection, outbox: Connection, model: str | None = None) -> None:
    """Entry point of a worker process. ``model``: the object detector's ONNX file, loaded once per process and
    shared by its cameras whose rules name object classes."""
    # The hub stops its workers ("stop", or the pipe's end); a Ctrl-C at the terminal is the hub's to handle.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    cv2.setNumThreads(1)
    cameras: dict[str, CameraDecoder] = {}
    detector: ObjectDetector | None = None
    last_stats = time.monotonic()
    while True:
        try:
            msg = inbox.recv()
        except (EOFError, OSError):
            break
        op = msg[0]
        if op == "stop":
            break
        try:
            if op == "pkt":
                cam = cameras.get(msg[1])
                if cam is not None:
                    results = cam.feed(_pkt_dec.decode(msg[2]))
                    if results:
                        outbox.send(("events", msg[1], results))
            elif op == "open":
                config = CameraConfig.model_validate_json(msg[1])
                info = _info_dec.decode(msg[2])
                analytics = bool(msg[3]) if len(msg) > 3 else True
                if config.id in cameras:
                    cameras[config.id].reopen(info)
                else:
                    if detector is None and model is not None and config.needs_detector and analytics:
                        detector = ObjectDetector(Path(model), size=config.detector.input_size)
                        log.info("object detector %s (%s)", Path(model).name, detector.precision)
                    cameras[config.id] = CameraDecoder(config, info, analytics, detector if analytics else None)
            elif op == "close":
                cameras.pop(msg[1], None)
        except (av.FFmpegError, ValueError, cv2.error, RuntimeError) as exc:
            cam_id = msg[1] if len(msg) > 1 and isinstance(msg[1], str) else "?"
            outbox.send(("error", cam_id, type(exc).__name__, str(exc)))
        now = time.monotonic()
        if now - last_stats >= 0.5:
            last_stats = now
            for cam_id, cam in cameras.items():
                outbox.send(
                    (
                        "stats",
                        cam_id,
                        cam.decoded,
                        cam.analysed,
                        cam.errors,
                        cam.size[0],
                        cam.size[1],
                        cam.stream_s,
                        cam.last_arrival,
                        cam.last_error,
                        cam.blind_s(now),
                        _enc.encode(cam.analyzer.detector_stats) if cam.analyzer.detector is not None else None,
                    )
                )
    outbox.close()
