"""``CameraService``: runs every camera of the site — capture, packet fan-out, analytics workers, evidence.

Threads and processes:
- one capture thread per camera (PyAV demux; cheap), which fans packets out without blocking to the
  evidence ring, live-view subscriptions and the camera's analytics worker;
- ``workers`` analytics processes (default: one per core, at least two), each decoding and analysing a
  share of the cameras; one sender and one reader thread per worker talk to it over pipes;
- everything that touches the caller happens on the event loop thread: ``emit`` is called there.

When a worker falls behind, its bounded send queue drops packets up to the next key frame (counted as
``dropped``) rather than delay capture.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import msgspec
from sharpeye.ingest.camera.analyzer import DetectorStats
from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.camera.detector import DetectorError
from sharpeye.ingest.camera.event import VideoEvent
from sharpeye.ingest.camera.evidence import EvidenceError, EvidenceStore, PacketRing, clip_method, snapshot_jpeg
from sharpeye.ingest.camera.model import INSTALL_HINT, model_path, runtime_model
from sharpeye.ingest.camera.worker import worker_main
from sharpeye.ingest.reading import Reading
from sharpeye.ingest.recording.recorder import Recorder, RecorderStats
from sharpeye.ingest.recording.store import RecordingStore
from sharpeye.ingest.transport.video.capture import Capture
from sharpeye.ingest.transport.video.packet import StreamInfo, VideoPacket
from sharpeye.ingest.transport.video.subscription import PacketSubscription

from sharpeye.clock import Clock

log = logging.getLogger(__name__)

# starting: no picture decoded yet on this connection; live: pictures decoded; blind: packets arrive but none
# decodes (a video.loss alarm with cause decode_failure); lost: no packets; stopped: the service stopped.
State = Literal["starting", "live", "blind", "lost", "stopped"]

_enc = msgspec.msgpack.Encoder()
_event_dec = msgspec.msgpack.Decoder(VideoEvent)
_det_dec = msgspec.msgpack.Decoder(DetectorStats)
# The window over which skipped detector passes make a camera's detector "behind" (while it still skips).
DETECTOR_WINDOW_S = 30.0


class CameraStats(msgspec.Struct, kw_only=True):
    """Health of one camera, as ``GET /api/cameras`` shows it."""

    camera_id: str
    state: State
    fps_in: float
    fps_decoded: float
    fps_analysed: float
    decode_errors: int
    reconnects: int
    dropped: int
    health: int
    width: int
    height: int
    codec: str | None
    last_error: str | None
    reason: str | None  # why the camera is not live or not healthy, in words; None when it is
    decode_error: str | None  # the newest decoder error, naming the codec
    events: int
    stream_s: float
    lag_s: float
    # The object detector's cumulative work for this camera (None when its rules name no object classes) and
    # whether it is behind: more than ``detector.degraded_skip`` of its due passes skipped over the last 30 s.
    detector: DetectorStats | None = None
    detector_behind: bool = False


class _Worker:
    """One analytics process with its pipes and threads."""

    def __init__(self, index: int, service: CameraService, queue_size: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.inbox_r, self.inbox_w = ctx.Pipe(duplex=False)
        self.outbox_r, self.outbox_w = ctx.Pipe(duplex=False)
        model = str(service.detector_model) if service.detector_model is not None else None
        self.process = ctx.Process(
            target=worker_main, args=(self.inbox_r, self.outbox_w, model), name=f"sharpeye-video-{index}", daemon=True
        )
        self.queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue(maxsize=queue_size)
        self.service = service
        self.sender = threading.Thread(target=self._send_loop, name=f"video-send-{index}", daemon=True)
        self.reader = threading.Thread(target=self._read_loop, name=f"video-read-{index}", daemon=True)

    def start(self) -> None:
        self.process.start()
        self.inbox_r.close()
        self.outbox_w.close()
        self.sender.start()
        self.reader.start()

    def _send_loop(self) -> None:
        while True:
            msg = self.queue.get()
            if msg is None:
                with contextlib.suppress(OSError):
                    self.inbox_w.send(("stop",))
                return
            try:
                self.inbox_w.send(msg)
            except OSError:
                return

    def _read_loop(self) -> None:
        while True:
            try:
                msg = self.outbox_r.recv()
            except (EOFError, OSError):
                return
            self.service._from_worker(msg)

    def put(self, msg: tuple[Any, ...] | None, force: bool = False) -> bool:
        if force:
            try:
                self.queue.put(msg, timeout=5)
            except queue.Full:
                log.error("worker %s does not take messages", self.process.name)
                return False
            return True
        try:
            self.queue.put_nowait(msg)
            return True
        except queue.Full:
            return False


class _Clip:
    """A camera's evidence clip not yet written: the packets from ``start`` to ``end`` (capture's monotonic clock),
    shared by the alarms that came while it was being recorded (``EvidenceConfig.share_s``)."""

    def __init__(self, ref: str, first: float, pre: float, post: float) -> None:
        self.ref = ref
        self.first = first  # the arrival of its first alarm's picture
        self.start = first - pre
        self.end = first + post
        self.alarms = 1
        self.started = False  # being written (or written): no more alarms join it
        self.handle: asyncio.TimerHandle | None = None


class _Camera:
    """Per-camera state shared by its capture thread and the event loop."""

    def __init__(self, config: CameraConfig, worker: _Worker, ring_s: float) -> None:
        self.config = config
        self.worker = worker
        self.ring = PacketRing(ring_s)
        self.info: StreamInfo | None = None
        self.subscriptions: list[PacketSubscription] = []
        self.capture: Capture | None = None
        self.state: State = "starting"
        self.last_packet = time.monotonic()
        self.packets = 0
        self.connections = 0
        self.dropped = 0
        self.skip_to_key = True
        self.decoded = 0
        self.analysed = 0
        self.decode_errors = 0
        self.decode_error: str | None = None
        self.fed = 0  # packets handed to the analytics worker
        self.opened_at = time.monotonic()
        self.progress_at = 0.0  # when the worker last reported more decoded pictures
        self.progress_fed = 0  # ``fed`` at that moment
        self.progress_errors = 0  # ``decode_errors`` at that moment
        self.blind_s = 0.0  # the worker's count of seconds of packets without a picture
        self.width = 0
        self.height = 0
        self.stream_s = 0.0
        self.lag = 0.0
        self.last_error: str | None = None
        self.events = 0
        self.loss_last_emit = 0.0
        self.loss_repeat = 0
        self.loss_episode = 0
        self.in_hist: deque[tuple[float, int]] = deque(maxlen=64)
        self.an_hist: deque[tuple[float, int]] = deque(maxlen=64)
        self.dec_hist: deque[tuple[float, int]] = deque(maxlen=64)
        self.detector: DetectorStats | None = None
        self.det_hist: deque[tuple[float, int, int]] = deque(maxlen=128)  # (when, due, skipped)
        self.evidence_refs: dict[str, tuple[str, ...]] = {}
        self.clip: _Clip | None = None  # the newest clip, while alarms may still join it
        self.last_snapshot: tuple[bytes, str] | None = None  # the newest snapshot from the worker and its reference
        self.recorder: Recorder | None = None


def _rate(hist: deque[tuple[float, int]], now: float, window: float = 5.0) -> float:
    points = [(t, n) for t, n in hist if now - t <= window]
    if len(points) < 2:
        return 0.0
    (t0, n0), (t1, n1) = points[0], points[-1]
    return 0.0 if t1 <= t0 else (n1 - n0) / (t1 - t0)


class CameraService:
    """Watches cameras and emits ``video.*`` readings through ``emit`` on the event loop thread."""

    def __init__(
        self,
        cameras: list[CameraConfig],
        data_dir: Path,
        emit: Callable[[list[Reading]], None],
        clock: Clock,
        *,
        workers: int | None = None,
        analytics: bool = True,
        evidence_cap_bytes: int = 2 * 1024**3,
        subscriber_queue: int = 256,
        worker_queue: int = 2048,
        backoff_max: float = 30.0,
        detector_model: Path | None = None,
        detector_precision: str = "int8",
    ) -> None:
        self.cameras_config = [c for c in cameras if c.enabled]
        model = detector_model if detector_model is not None else model_path(data_dir)
        needing = [c.id for c in self.cameras_config if c.needs_detector]
        if needing and analytics and not model.is_file():
            # Never fall back to "any moving object" silently: a person filter without a detector refuses to start.
            raise DetectorError(
                f"cameras {', '.join(needing)} name object classes but there is no detector model at {model}; "
                f"{INSTALL_HINT}"
            )
        # the int8 model beside the float one unless the float one is asked for (``model.runtime_model``)
        self.detector_model: Path | None = runtime_model(model, detector_precision) if needing and analytics else None
        self.data_dir = data_dir
        self.evidence = EvidenceStore(data_dir / "evidence", evidence_cap_bytes)
        self.recordings = RecordingStore(data_dir / "recordings")
        self._emit = emit
        self._clock = clock
        n = workers if workers is not None else max(2, os.cpu_count() or 2)
        self._n_workers = max(1, min(n, len(self.cameras_config))) if self.cameras_config else 0
        self._subscriber_queue = subscriber_queue
        self._worker_queue = worker_queue
        self._backoff_max = backoff_max
        self._analytics = analytics
        self._workers: list[_Worker] = []
        self._cameras: dict[str, _Camera] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Future[Any]] = set()
        self._started = False
        self._retired: list[_Worker] = []
        self._owned: set[str] | None = None  # None: every camera (one node); else the ids this node's leases hold
        self.emitted = 0
        self.worker_restarts = 0
        # Evidence: snapshots written, clips begun, and alarms that shared a clip begun for an earlier one.
        self.snapshots_written = 0
        self.clips_made = 0
        self.clips_shared = 0

    # lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._loop = asyncio.get_running_loop()
        self._workers = [_Worker(i, self, self._worker_queue) for i in range(self._n_workers)]
        for w in self._workers:
            w.start()
        for i, config in enumerate(self.cameras_config):
            if self._owned is None or config.id in self._owned:
                self._open(i, config)
        self._watchdog = asyncio.create_task(self._watch(), name="camera-watchdog")
        log.info("camera service: %d cameras on %d workers", len(self._cameras), len(self._workers))

    def _open(self, index: int, config: CameraConfig) -> None:
        ring_s = config.evidence.pre_s + config.evidence.share_s + config.evidence.post_s + 4
        cam = _Camera(config, self._workers[index % len(self._workers)], ring_s)
        self._cameras[config.id] = cam
        if config.record is not None:
            cam.recorder = Recorder(config.id, config.record, self.recordings)
            cam.recorder.start()
        cam.capture = Capture(
            config,
            on_open=functools.partial(self._on_open, cam),
            on_packet=functools.partial(self._on_packet, cam),
            on_error=functools.partial(self._on_error, cam),
            backoff_max=self._backoff_max,
        )
        cam.capture.start()

    async def set_owned(self, ids: set[str]) -> None:
        """Open only these cameras (the ones this node holds a lease for, ``ingest/ownership.py``): open those
        newly owned, stop and forget those no longer owned. Before ``start()``, it only sets what start opens."""
        self._owned = set(ids)
        if not self._started:
            return
        for i, config in enumerate(self.cameras_config):
            if config.id in ids and config.id not in self._cameras:
                self._open(i, config)
        gone = [cam for cam_id, cam in self._cameras.items() if cam_id not in ids]
        for cam in gone:
            del self._cameras[cam.config.id]
            if cam.capture is not None:
                cam.capture.stop()
            if cam.recorder is not None:
                cam.recorder.stop()
            for sub in list(cam.subscriptions):
                sub.close()
            cam.state = "stopped"
        if gone:  # joined in the background: the caller (the lease loop) must not wait on a slow stream
            self._track(asyncio.ensure_future(asyncio.to_thread(self._join_captures, gone)))
            log.info("camera service: stopped %s (owned elsewhere now)", sorted(c.config.id for c in gone))

    @staticmethod
    def _join_captures(cams: list[_Camera]) -> None:
        for cam in cams:
            if cam.capture is not None and not cam.capture.join(10):
                log.error("camera %s: capture thread did not stop", cam.config.id)
            if cam.recorder is not None and not cam.recorder.join(30):
                log.error("camera %s: recorder thread did not stop", cam.config.id)

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        for cam in self._cameras.values():
            if cam.capture is not None:
                cam.capture.stop()
            for sub in list(cam.subscriptions):
                sub.close()
        await asyncio.to_thread(self._join_all)
        for cam in self._cameras.values():
            if cam.clip is not None:  # no packets come any more: write what the ring has now
                self._clip_due(cam, cam.clip)
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        for cam in self._cameras.values():
            cam.state = "stopped"

    def _join_all(self) -> None:
        for cam in self._cameras.values():
            if cam.capture is not None and not cam.capture.join(10):
                log.error("camera %s: capture thread did not stop", cam.config.id)
        for cam in self._cameras.values():  # after capture: no packet arrives once the recorder is told to stop
            if cam.recorder is not None:
                cam.recorder.stop()
                if not cam.recorder.join(30):
                    log.error("camera %s: recorder thread did not stop", cam.config.id)
        for w in self._workers:
            # Packets still queued for a worker that fell behind are dropped: the stop must not wait behind them.
            with contextlib.suppress(queue.Empty):
                while True:
                    w.queue.get_nowait()
            w.put(None, force=True)
        for w in [*self._workers, *self._retired]:
            w.sender.join(5)
            w.process.join(5)
            if w.process.is_alive():
                log.warning("worker %s did not stop; terminating", w.process.name)
                w.process.terminate()
                w.process.join(5)
            w.reader.join(5)
            w.inbox_w.close()
            w.outbox_r.close()

    # capture thread callbacks ------------------------------------------------------------------------

    def _on_open(self, cam: _Camera, info: StreamInfo) -> None:
        cam.info = info
        cam.ring.info = info
        cam.connections += 1
        cam.skip_to_key = True
        cam.opened_at = time.monotonic()
        cam.progress_fed = cam.fed
        cam.progress_errors = cam.decode_errors
        cam.blind_s = 0.0
        self._on_open_worker(cam, info)
        if cam.recorder is not None:
            cam.recorder.open(info)
        for sub in list(cam.subscriptions):
            sub.info = info
        log.info("camera %s: opened %s %dx%d", cam.config.id, info.codec, info.width, info.height)

    def _on_open_worker(self, cam: _Camera, info: StreamInfo) -> None:
        cam.worker.put(("open", cam.config.model_dump_json(), _enc.encode(info), self._analytics), force=True)

    def _on_packet(self, cam: _Camera, packet: VideoPacket) -> None:
        cam.last_packet = packet.arrival
        cam.packets += 1
        cam.ring.append(packet)
        if cam.recorder is not None:
            cam.recorder.push(packet)
        for sub in cam.subscriptions:
            sub.push(packet, None)
        if cam.skip_to_key and not packet.key:
            cam.dropped += 1
            return
        if cam.worker.put(("pkt", cam.config.id, _enc.encode(packet))):
            cam.skip_to_key = False
            cam.fed += 1
        else:
            cam.dropped += 1
            cam.skip_to_key = True

    def _on_error(self, cam: _Camera, reason: str, detail: str) -> None:
        error = f"{reason}: {detail}" if detail else reason
        repeated = error == cam.last_error
        cam.last_error = error
        log.log(logging.DEBUG if repeated else logging.WARNING, "camera %s: %s", cam.config.id, error)

    # worker results (reader threads) ------------------------------------------------------------------

    def _from_worker(self, msg: tuple[Any, ...]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._handle_worker, msg)

    def _handle_worker(self, msg: tuple[Any, ...]) -> None:
        op, cam_id = msg[0], msg[1]
        cam = self._cameras.get(cam_id)
        if cam is None:
            return
        if op == "stats":
            decoded = msg[2]
            if decoded != cam.decoded:
                cam.progress_at = time.monotonic()
                cam.progress_fed = cam.fed
                cam.progress_errors = msg[4]
            cam.decoded, cam.analysed, cam.decode_errors, cam.width, cam.height, cam.stream_s = msg[2:8]
            if len(msg) > 9 and msg[9]:
                cam.decode_error = msg[9]
            if len(msg) > 10:
                cam.blind_s = msg[10]
            if msg[8] > 0:
                cam.lag = max(0.0, time.monotonic() - msg[8])
            cam.an_hist.append((time.monotonic(), cam.analysed))
            cam.dec_hist.append((time.monotonic(), cam.decoded))
            if len(msg) > 11 and msg[11] is not None:
                det = _det_dec.decode(msg[11])
                if cam.detector is not None and det.due < cam.detector.due:
                    cam.det_hist.clear()  # a new worker counts from 0
                cam.detector = det
                cam.det_hist.append((time.monotonic(), det.due, det.skipped))
        elif op == "events":
            readings = [
                self._reading(cam, _event_dec.decode(raw), jpeg, arrival, since) for raw, jpeg, arrival, since in msg[2]
            ]
            self._send([r for r in readings if r is not None])
        elif op == "error":
            cam.last_error = f"{msg[2]}: {msg[3]}"
            log.warning("camera %s: worker error %s", cam_id, cam.last_error)

    def _reading(
        self, cam: _Camera, event: VideoEvent, jpeg: bytes | None, arrival: float, since_connect: float
    ) -> Reading | None:
        now = self._clock.now()
        if event.channel is not None:
            schedule = cam.config.channel_schedule(event.channel)
            if schedule is not None and not schedule.armed(now):
                return None
        refs = cam.evidence_refs.get(event.episode, ())
        if event.repeat == 0 and cam.recorder is not None:
            cam.recorder.trigger(time.time() - (time.monotonic() - arrival))
        if event.repeat == 0 and jpeg is not None and cam.config.evidence.enabled:
            # The alarms of one picture come with one snapshot (the same object, unpickled once): written once.
            shared = cam.last_snapshot[1] if cam.last_snapshot is not None and cam.last_snapshot[0] is jpeg else None
            refs = self._write_evidence(cam, event, jpeg, arrival, now, shared)
            cam.last_snapshot = (jpeg, refs[0])
            cam.evidence_refs[event.episode] = refs
            if len(cam.evidence_refs) > 500:
                for k in list(cam.evidence_refs)[:250]:
                    del cam.evidence_refs[k]
        attrs: dict[str, Any] = {
            "episode": event.episode,
            "repeat": event.repeat,
            "stream_t": round(event.t, 3),
            "since_connect_s": round(since_connect, 3),
        }
        if event.object_id is not None:
            attrs["object_id"] = event.object_id
        if event.box is not None:
            attrs["box"] = list(event.box)
        if event.direction is not None:
            attrs["direction"] = event.direction
        if event.dwell_s is not None:
            attrs["dwell_s"] = event.dwell_s
        if event.label is not None:
            attrs["object"] = event.label
            attrs["score"] = event.score
        attrs["latency_s"] = round(max(0.0, time.monotonic() - arrival), 3)
        if refs and cam.info is not None:
            # How the clip is written: "remux" (the camera's packets unchanged) or "transcode" (H.264, that clip only).
            attrs["clip_method"] = clip_method(cam.info)
        cam.events += 1
        return Reading(
            device_id=cam.config.id,
            kind=event.kind,
            value=event.value,
            ts=now,
            channel=event.channel,
            attrs=attrs,
            evidence=refs,
        )

    async def record(self, camera_id: str, tag: str) -> tuple[str, ...]:
        """Evidence asked for by another device's alarm (a fence zone's linked camera): a snapshot of the newest
        picture and a clip from ``pre_s`` before to ``post_s`` after now. Empty when the camera has no picture."""
        cam = self._cameras.get(camera_id)
        if cam is not None and cam.recorder is not None:
            cam.recorder.trigger()
        if cam is None or cam.info is None or not cam.config.evidence.enabled:
            return ()
        arrival = time.monotonic()
        packets = cam.ring.window(arrival - cam.config.evidence.pre_s - 4, arrival)
        jpeg = await asyncio.to_thread(snapshot_jpeg, cam.info, packets)
        if jpeg is None:
            return ()
        return self._store_evidence(cam, "linked", tag, jpeg, arrival, self._clock.now())

    def _write_evidence(
        self, cam: _Camera, event: VideoEvent, jpeg: bytes, arrival: float, now: datetime, jpg_ref: str | None = None
    ) -> tuple[str, ...]:
        return self._store_evidence(cam, event.kind.split(".")[-1], event.episode, jpeg, arrival, now, jpg_ref)

    def _store_evidence(
        self,
        cam: _Camera,
        kind: str,
        tag: str,
        jpeg: bytes,
        arrival: float,
        now: datetime,
        jpg_ref: str | None = None,
    ) -> tuple[str, ...]:
        """Write the snapshot now and return its reference and the clip's: a new clip from ``pre_s`` before
        ``arrival`` to ``post_s`` after it, or the camera's clip still being recorded, extended to ``post_s`` after
        this alarm, when the alarm comes within ``share_s`` of that clip's first (a burst of alarms, one clip).
        ``jpg_ref``: the snapshot is already written there (another alarm of the same picture)."""
        digest = hashlib.sha1(tag.encode(), usedforsecurity=False).hexdigest()[:10]
        base = f"{cam.config.id}/{now:%Y%m%d}/{now:%H%M%S}-{kind}-{digest}"
        loop = self._loop
        assert loop is not None
        if jpg_ref is None:
            jpg_ref = f"{base}.jpg"
            self.snapshots_written += 1
            self._track(asyncio.ensure_future(asyncio.to_thread(self.evidence.write_snapshot, jpg_ref, jpeg)))
        pre, post, share = cam.config.evidence.pre_s, cam.config.evidence.post_s, cam.config.evidence.share_s
        clip = cam.clip
        if (
            clip is not None
            and not clip.started
            and clip.handle is not None
            and arrival - clip.first <= share
            and arrival <= clip.end
        ):
            clip.alarms += 1
            self.clips_shared += 1
            if arrival + post > clip.end:
                clip.end = arrival + post
                clip.handle.cancel()
                clip.handle = loop.call_later(max(0.0, clip.end - time.monotonic()), self._clip_due, cam, clip)
            return (jpg_ref, clip.ref)
        clip = _Clip(f"{base}.mp4", arrival, pre, post)
        self.clips_made += 1
        cam.clip = clip
        clip.handle = loop.call_later(max(0.0, clip.end - time.monotonic()), self._clip_due, cam, clip)
        if not self._started:
            self._clip_due(cam, clip)
        return (jpg_ref, clip.ref)

    def _clip_due(self, cam: _Camera, clip: _Clip) -> None:
        """Write a clip (in a thread) once its last alarm's ``post_s`` has been recorded. Runs once: when the
        service stops it is called at once and the timer may still fire while the clip is being written (two
        writers of one file: the second's rename failed)."""
        if clip.started:
            return
        clip.started = True
        if clip.handle is not None:
            clip.handle.cancel()
        if cam.clip is clip:
            cam.clip = None
        info = cam.info
        if info is None:
            return

        def write() -> None:
            packets = cam.ring.window(clip.start, clip.end)
            try:
                self.evidence.write_clip(clip.ref, info, packets)
            except (EvidenceError, OSError, ValueError) as exc:
                log.warning("camera %s: clip %s not written: %s", cam.config.id, clip.ref, exc)
            except Exception:
                log.exception("camera %s: clip %s failed", cam.config.id, clip.ref)

        self._track(asyncio.ensure_future(asyncio.to_thread(write)))

    def _track(self, fut: asyncio.Future[Any]) -> None:
        self._pending.add(fut)
        fut.add_done_callback(self._pending.discard)

    def _send(self, readings: list[Reading]) -> None:
        if not readings:
            return
        self.emitted += len(readings)
        try:
            self._emit(readings)
        except Exception:
            log.exception("camera service: emit failed")

    # loss watchdog -----------------------------------------------------------------------------------

    def _revive_workers(self) -> None:
        """Replace a worker process that died (a decoder crash) and hand its cameras to the new one."""
        for i, old in enumerate(self._workers):
            if old.process.is_alive() or not self._started:
                continue
            log.error("worker %s died (exit code %s); restarting it", old.process.name, old.process.exitcode)
            old.put(None)  # its sender ends on the broken pipe anyway; never block the loop here
            new = _Worker(i, self, self._worker_queue)
            new.start()
            self._workers[i] = new
            self.worker_restarts += 1
            for cam in self._cameras.values():
                if cam.worker is old:
                    cam.worker = new
                    cam.skip_to_key = True
                    if cam.info is not None:
                        self._on_open_worker(cam, cam.info)
            self._retired.append(old)

    def worker_pids(self) -> list[int | None]:
        return [w.process.pid for w in self._workers]

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            self._revive_workers()
            now = time.monotonic()
            out: list[Reading] = []
            for cam in self._cameras.values():
                cam.in_hist.append((now, cam.packets))
                silent = now - cam.last_packet
                cfg = cam.config
                if cam.state != "lost" and silent >= cfg.loss_after_s:
                    cam.state = "lost"
                    cam.loss_episode += 1
                    cam.loss_repeat = 0
                    cam.loss_last_emit = now
                    out.append(self._loss(cam, "alarm", silent))
                elif (
                    cam.state in ("lost", "blind")
                    and silent < cfg.loss_after_s
                    and silent < 1.0
                    and self._sees(cam)
                    and cam.blind_s == 0
                ):
                    cam.state = "live"
                    out.append(self._loss(cam, "restore", silent))
                elif cam.state == "lost" and silent < 1.0 and self._blind(cam):
                    cam.state = "blind"  # the same episode: packets came back, pictures did not
                elif cam.state in ("lost", "blind") and now - cam.loss_last_emit >= cfg.repeat_s:
                    cam.loss_last_emit = now
                    cam.loss_repeat += 1
                    out.append(self._loss(cam, "alarm", silent))
                elif cam.state in ("starting", "live") and silent < 1.0 and self._blind(cam):
                    cam.state = "blind"
                    cam.loss_episode += 1
                    cam.loss_repeat = 0
                    cam.loss_last_emit = now
                    out.append(self._loss(cam, "alarm", silent))
                elif cam.state == "starting" and silent < 1.0 and self._sees(cam):
                    cam.state = "live"
            self._send(out)

    @staticmethod
    def _sees(cam: _Camera) -> bool:
        """Pictures decoded on the current connection (or decoding not asked of a camera without a worker)."""
        return cam.progress_at >= cam.opened_at

    @staticmethod
    def _blind(cam: _Camera) -> bool:
        """The worker has been fed packets for ``loss_after_s`` and none gave a picture (with errors or without:
        some decoders fed garbage say nothing). Measured by the worker, so a worker still starting is not blind."""
        return cam.blind_s >= cam.config.loss_after_s

    def _loss(self, cam: _Camera, value: str, silent: float) -> Reading:
        """``video.loss``: no packets (cause ``no_packets``) or packets that do not decode (``decode_failure``,
        naming the codec and the decoder's error)."""
        cam.events += 1
        attrs: dict[str, Any] = {
            "episode": f"{cam.config.id}:loss:{cam.loss_episode}",
            "repeat": cam.loss_repeat if value == "alarm" else 0,
            "silent_s": round(silent, 1),
            "last_error": cam.last_error,
        }
        if cam.state == "blind":
            attrs["cause"] = "decode_failure"
            attrs["codec"] = cam.info.codec if cam.info else None
            attrs["decode_error"] = cam.decode_error or f"no picture from {cam.fed - cam.progress_fed} packets"
            attrs["decode_errors"] = cam.decode_errors
        elif value == "alarm":
            attrs["cause"] = "no_packets"
        return Reading(device_id=cam.config.id, kind="video.loss", value=value, ts=self._clock.now(), attrs=attrs)

    def _reason(self, cam: _Camera, now: float) -> str | None:
        """Why a camera is not live, or live but unhealthy, in a sentence for the console."""
        codec = cam.info.codec if cam.info else "?"
        if cam.state == "blind":
            error = cam.decode_error or f"no picture from {cam.fed - cam.progress_fed} packets"
            return f"packets arrive but none decodes ({codec}): {error}"
        if cam.state == "lost":
            return f"no packets for {now - cam.last_packet:.0f} s: {cam.last_error or 'no stream'}"
        if cam.state == "starting":
            if cam.packets == 0:
                return f"connecting: {cam.last_error}" if cam.last_error else "connecting"
            if cam.skip_to_key:
                return f"waiting for a key frame ({codec}), {now - cam.opened_at:.0f} s"
            return f"decoding ({codec}), no picture yet"
        if cam.state == "live" and cam.decode_errors > cam.progress_errors:
            return f"decode errors ({codec}): {cam.decode_error}"
        skipped, due = self._detector_skips(cam, now)
        if cam.state == "live" and due and skipped > cam.config.detector.degraded_skip * due:
            lag = cam.detector.lag_s if cam.detector else 0.0
            return (
                f"object detector behind: {skipped} of {due} passes skipped in the last {DETECTOR_WINDOW_S:.0f} s "
                f"(frames {lag:.1f} s old; only motion analysed meanwhile)"
            )
        return None

    @staticmethod
    def _detector_skips(cam: _Camera, now: float) -> tuple[int, int]:
        """Detector passes skipped and due over the last ``DETECTOR_WINDOW_S``; (0, 0) when none was skipped in the
        last 5 s (caught up again: a worker starting with a backlog, say)."""
        points = [(t, due, skipped) for t, due, skipped in cam.det_hist if now - t <= DETECTOR_WINDOW_S]
        recent = [skipped for t, _, skipped in points if now - t <= 5.0]
        if len(points) < 2 or len(recent) < 2 or recent[-1] == recent[0]:
            return 0, 0
        return points[-1][2] - points[0][2], points[-1][1] - points[0][1]

    # public queries ----------------------------------------------------------------------------------

    def stats(self) -> list[CameraStats]:
        now = time.monotonic()
        out = []
        for cam in self._cameras.values():
            fps_in = _rate(cam.in_hist, now)
            fps_an = _rate(cam.an_hist, now)
            skipped, due = self._detector_skips(cam, now)
            if cam.state in ("lost", "blind", "stopped"):
                health = 0
            else:
                if self._analytics:
                    ratio = min(1.0, fps_an / cam.config.analysis_fps)
                else:
                    ratio = 1.0 if _rate(cam.dec_hist, now) > 0 else 0.0
                err = min(1.0, cam.decode_errors / max(1, cam.decoded) * 10)
                seen = 1 - skipped / due if due else 1.0  # detector passes run of those due
                health = round(100 * ratio * seen * (1 - 0.5 * err) * (0.5 if cam.dropped and fps_an < 1 else 1))
            out.append(
                CameraStats(
                    camera_id=cam.config.id,
                    state=cam.state,
                    fps_in=round(fps_in, 2),
                    fps_decoded=round(_rate(cam.dec_hist, now), 2),
                    fps_analysed=round(fps_an, 2),
                    decode_errors=cam.decode_errors,
                    reconnects=max(0, cam.connections - 1),
                    dropped=cam.dropped,
                    health=health,
                    width=cam.width or (cam.info.width if cam.info else 0),
                    height=cam.height or (cam.info.height if cam.info else 0),
                    codec=cam.info.codec if cam.info else None,
                    last_error=cam.last_error,
                    reason=self._reason(cam, now),
                    decode_error=cam.decode_error,
                    events=cam.events,
                    stream_s=round(cam.stream_s, 2),
                    lag_s=round(cam.lag, 3),
                    detector=cam.detector,
                    detector_behind=bool(due and skipped > cam.config.detector.degraded_skip * due),
                )
            )
        return out

    def health(self) -> tuple[bool, str]:
        """For /api/health: ok while every analytics worker lives, no camera is blind and no camera's object detector
        is behind; the detail counts cameras by state and names those that are not live (or whose detector is
        behind), with the reason."""
        stats = self.stats()
        by_state: dict[str, int] = {}
        for st in stats:
            by_state[st.state] = by_state.get(st.state, 0) + 1
        dead = sum(1 for w in self._workers if not w.process.is_alive()) if self._started else 0
        parts = [", ".join(f"{n} {state}" for state, n in sorted(by_state.items())) or "no cameras"]
        if dead:
            parts.append(f"{dead} analytics worker(s) dead")
        behind = [st for st in stats if st.detector_behind]
        if behind:
            parts.append(f"{len(behind)} camera(s) with the object detector behind")
        parts += [
            f"{st.camera_id}: {st.reason}" for st in stats if (st.state != "live" or st.detector_behind) and st.reason
        ][:10]
        ok = dead == 0 and by_state.get("blind", 0) == 0 and not behind
        return ok, "; ".join(parts)

    def recorder_stats(self) -> list[RecorderStats]:
        """Own recording of each camera that records (``record:`` in its config)."""
        return [cam.recorder.stats() for cam in self._cameras.values() if cam.recorder is not None]

    def recording_health(self) -> tuple[bool, str] | None:
        """For /api/health: None when no camera records; not ok while a recorder is stalled or in error."""
        stats = self.recorder_stats()
        if not stats:
            return None
        bad = [s for s in stats if s.state in ("stalled", "error")]
        by_state: dict[str, int] = {}
        for st in stats:
            by_state[st.state] = by_state.get(st.state, 0) + 1
        parts = [", ".join(f"{n} {state}" for state, n in sorted(by_state.items()))]
        parts += [f"{s.camera_id}: {s.reason}" for s in bad][:10]
        return not bad, "; ".join(parts)

    def subscribe(self, camera_id: str) -> PacketSubscription:
        """Compressed packets of a camera from its next key frame on; close the subscription when done."""
        cam = self._cameras.get(camera_id)
        if cam is None or self._loop is None:
            raise KeyError(f"no running camera {camera_id!r}")

        def remove(sub: PacketSubscription) -> None:
            cam.subscriptions = [s for s in cam.subscriptions if s is not sub]

        sub = PacketSubscription(camera_id, self._loop, self._subscriber_queue, cam.info, remove)
        cam.subscriptions = [*cam.subscriptions, sub]
        return sub

    def evidence_path(self, ref: str) -> Path:
        """The file behind an evidence reference of a ``Reading``; raises ``EvidenceError`` (a ValueError)."""
        return self.evidence.path(ref)
