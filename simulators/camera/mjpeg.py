"""``MjpegSimulator``: serves a scenario as HTTP MJPEG (multipart/x-mixed-replace) on 127.0.0.1.

Each client gets the scenario from its start, in real time, looped; ``loss`` scripts pause the stream.
Frames are rendered once per time step and shared by all clients.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
from sharpeye.simulators.camera.scenario import Scenario
from sharpeye.simulators.camera.scene import Scene

log = logging.getLogger(__name__)

BOUNDARY = "sharpeyeframe"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        log.debug("mjpeg: " + format, *args)

    def do_GET(self) -> None:
        if self.path.rstrip("/") not in ("", "/video", "/video.mjpg"):
            self.send_error(404)
            return
        sim = self.server.simulator
        if sim.auth is not None and self.headers.get("Authorization") != sim.auth:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="camera"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        start = time.monotonic()
        n = 0
        fps = sim.scenario.fps
        try:
            while not sim.stopping.is_set():
                due = start + n / fps
                delay = due - time.monotonic()
                if delay > 0 and sim.stopping.wait(delay):
                    return
                t = (n / fps) % sim.scenario.duration_s
                n += 1
                if sim.scenario.script_at(t) == "loss":
                    continue
                jpeg = sim.jpeg(t)
                head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                self.wfile.write(head.encode() + jpeg + b"\r\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    simulator: MjpegSimulator


class MjpegSimulator:
    """``url`` is ``http://127.0.0.1:<port>/video``."""

    def __init__(
        self, scenario: Scenario, port: int = 0, quality: int = 80, credentials: tuple[str, str] | None = None
    ) -> None:
        self.scenario = scenario
        self.auth = None
        if credentials is not None:
            token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
            self.auth = f"Basic {token}"
        self.scene = Scene(scenario)
        self.quality = quality
        self.stopping = threading.Event()
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.simulator = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="mjpeg-sim", daemon=True)
        self._cache: dict[int, bytes] = {}
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/video"

    def jpeg(self, t: float) -> bytes:
        key = round(t * self.scenario.fps)
        with self._lock:
            cached = self._cache.get(key)
            if cached is None:
                _ok, buf = cv2.imencode(".jpg", self.scene.frame(t), [cv2.IMWRITE_JPEG_QUALITY, self.quality])
                cached = buf.tobytes()
                if len(self._cache) > 64:
                    self._cache.clear()
                self._cache[key] = cached
            return cached

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
