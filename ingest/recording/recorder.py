"""``Recorder``: one camera's own recording, written on its own thread from the capture thread's packets.

The capture thread only appends to a bounded queue (``push``, never blocking); the recorder thread remuxes packets
into segments (``segment.SegmentWriter``), closes one at the first key frame after ``segment_s``, indexes it in the
``RecordingStore`` and applies retention. In ``events`` mode it keeps ``pre_s`` of packets (from a key frame) and
records from them to ``post_s`` after the last ``trigger``. A full queue drops packets (counted) and the open
segment ends there; the next one starts at a key frame.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

from sharpeye.ingest.recording.config import RecordConfig
from sharpeye.ingest.recording.segment import RecordingError, SegmentWriter, recordable
from sharpeye.ingest.recording.store import RecordingStore
from sharpeye.ingest.transport.video.packet import StreamInfo, VideoPacket

log = logging.getLogger(__name__)

STALL_S = 15.0  # packets arriving but nothing written for this long: the recorder is not ok
BATCH_S = 0.5  # the recorder thread takes its queued packets this often
BATCH_PACKETS = 64  # or as soon as this many wait


@dataclass
class RecorderStats:
    """Counters of one camera's recorder, for /metrics, /api/health and the console."""

    camera_id: str
    mode: str
    state: str  # recording, waiting (events mode, no alarm), idle (no packets), stalled, error
    bytes_written: int
    segments: int
    deleted: int
    errors: int
    dropped: int
    disk_bytes: int
    last_error: str | None
    reason: str | None


class Recorder:
    def __init__(self, camera_id: str, config: RecordConfig, store: RecordingStore) -> None:
        self.camera_id = camera_id
        self.config = config
        self.store = store
        self._queue: deque[tuple[str, object, float]] = deque()
        self._queued_bytes = 0
        self._max_bytes = config.queue_mb * 1024 * 1024
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name=f"record-{camera_id}", daemon=True)
        # Recorder thread state.
        self._info: StreamInfo | None = None
        self._writer: SegmentWriter | None = None
        self._pre: deque[tuple[VideoPacket, float]] = deque()
        self._until = 0.0  # events mode: record while packets are at or before this wall time
        self._need_key = True
        # Counters (written by the recorder thread, read anywhere).
        self.bytes_written = 0
        self.segments = 0
        self.errors = 0
        self.dropped = 0
        self.last_error: str | None = None
        self.unsupported: str | None = None
        self.last_in = 0.0  # monotonic time of the newest packet pushed
        self.last_written = time.monotonic()  # monotonic time of the newest packet written (or of the start)

    # capture / event loop side -------------------------------------------------------------------

    def start(self) -> None:
        self.store.load(self.camera_id)
        self._thread.start()

    def _put(self, item: tuple[str, object, float], size: int = 0) -> None:
        with self._cond:
            if self._stop:
                return
            if size and self._queued_bytes + size > self._max_bytes:
                self.dropped += 1
                self._queue.append(("gap", None, 0.0))
                self._cond.notify()
                return
            self._queue.append(item)
            self._queued_bytes += size
            # Packets are taken in batches (the thread wakes every BATCH_S): waking it for each packet cost as
            # much CPU as the muxing. Anything else, and a long queue, wakes it at once.
            if item[0] != "pkt" or len(self._queue) >= BATCH_PACKETS:
                self._cond.notify()

    def open(self, info: StreamInfo) -> None:
        """A (re)connection: the open segment ends, the next starts at a key frame of the new stream."""
        self._put(("open", info, 0.0))

    def push(self, packet: VideoPacket) -> None:
        """From the capture thread; never blocks."""
        self.last_in = packet.arrival
        wall = time.time() - (time.monotonic() - packet.arrival)
        self._put(("pkt", packet, wall), len(packet.data))

    def trigger(self, wall: float | None = None) -> None:
        """Events mode: an alarm at ``wall`` (now if None): record from ``pre_s`` before to ``post_s`` after."""
        self._put(("trigger", None, time.time() if wall is None else wall))

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stats(self) -> RecorderStats:
        now = time.monotonic()
        receiving = self.last_in > 0 and now - self.last_in < 5
        stalled = receiving and now - self.last_written > max(STALL_S, self.config.segment_s / 2)
        waiting = self.config.mode == "events" and self._writer is None
        if self.unsupported is not None:
            state, reason = "error", self.unsupported
        elif not self._thread.is_alive() and not self._stop:
            state, reason = "error", "the recorder thread ended"
        elif not receiving:
            state, reason = "idle", "no packets from the camera"
        elif waiting:
            state, reason = "waiting", None
        elif stalled:
            state, reason = "stalled", f"nothing written for {now - self.last_written:.0f} s: {self.last_error or ''}"
        else:
            state, reason = "recording", None
        return RecorderStats(
            camera_id=self.camera_id,
            mode=self.config.mode,
            state=state,
            bytes_written=self.bytes_written,
            segments=self.segments,
            deleted=self.store.deleted_by_camera.get(self.camera_id, 0),
            errors=self.errors,
            dropped=self.dropped,
            disk_bytes=self.store.usage(self.camera_id),
            last_error=self.last_error,
            reason=reason,
        )

    # recorder thread -----------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._stop and len(self._queue) < BATCH_PACKETS:
                    self._cond.wait(BATCH_S)
                if self._stop and not self._queue:
                    break
                batch = list(self._queue)
                self._queue.clear()
                self._queued_bytes = 0
            for op, obj, wall in batch:
                try:
                    self._handle(op, obj, wall)
                except Exception as exc:  # a bug or a library error must not end the recording
                    log.exception("recording %s: failed", self.camera_id)
                    self._fail(f"internal: {exc!r}")
        self._close()

    def _fail(self, error: str) -> None:
        self.errors += 1
        self.last_error = error
        if self._writer is not None:
            self._writer.discard()
            self._writer = None
        self._need_key = True

    def _handle(self, op: str, obj: object, wall: float) -> None:
        if op == "open" and isinstance(obj, StreamInfo):
            self._close()
            self._pre.clear()
            self._info = obj
            self._need_key = True
            if not recordable(obj):
                self.unsupported = f"codec {obj.codec} cannot be recorded without re-encoding"
                self.last_error = self.unsupported
                self.errors += 1
                log.error("recording %s: %s", self.camera_id, self.unsupported)
            else:
                self.unsupported = None
        elif op == "gap":
            self._close()
            self._pre.clear()
            self._need_key = True
        elif op == "trigger":
            self._until = max(self._until, wall + self.config.post_s)
            if self._writer is None and self._pre:
                self._start_from_pre(wall - self.config.pre_s)
        elif op == "pkt" and isinstance(obj, VideoPacket):
            self._packet(obj, wall)

    def _packet(self, p: VideoPacket, wall: float) -> None:
        if self._info is None or self.unsupported is not None or p.generation != self._info.generation:
            return
        if self._need_key:
            if not p.key:
                return
            self._need_key = False
        if self.config.mode == "events":
            if self._writer is not None and wall > self._until:
                self._close()
                if not p.key:
                    self._need_key = True  # the pre-buffer starts at a key frame
                    return
            if self._writer is None:
                self._keep_pre(p, wall)
                return
        elif self._writer is None:
            self._begin(p, wall)
            return
        assert self._writer is not None
        if p.key and self._writer.duration >= self.config.segment_s:
            self._close()
            self._begin(p, wall)
            return
        self._write(p)

    def _keep_pre(self, p: VideoPacket, wall: float) -> None:
        """Keep packets from the last key frame at or before ``pre_s`` ago (events mode, while not recording)."""
        self._pre.append((p, wall))
        horizon = wall - self.config.pre_s
        while len(self._pre) > 1:
            # Drop the head GOP while the next key frame is still at or before the horizon.
            nxt = next((i for i in range(1, len(self._pre)) if self._pre[i][0].key), None)
            if nxt is None or self._pre[nxt][1] > horizon:
                break
            for _ in range(nxt):
                self._pre.popleft()

    def _start_from_pre(self, since: float) -> None:
        packets = list(self._pre)
        self._pre.clear()
        first = 0
        for i, (p, w) in enumerate(packets):
            if p.key and w <= since:
                first = i
        packets = packets[first:]
        if not packets or not packets[0][0].key:
            return
        self._begin(*packets[0])
        for p, _w in packets[1:]:
            if self._writer is None:
                return
            self._write(p)

    def _begin(self, p: VideoPacket, wall: float) -> None:
        assert self._info is not None
        try:
            self._writer = SegmentWriter(self.store.part_path(self.camera_id, wall), self._info, wall)
        except (RecordingError, OSError) as exc:
            self._fail(str(exc))
            return
        self._write(p)

    def _write(self, p: VideoPacket) -> None:
        assert self._writer is not None
        try:
            self._writer.add(p)
        except (RecordingError, OSError, ValueError) as exc:
            log.warning("recording %s: %s", self.camera_id, exc)
            self._fail(str(exc))
            return
        except Exception as exc:  # av.FFmpegError and friends: the segment is lost, the next one starts clean
            log.warning("recording %s: segment failed: %s", self.camera_id, exc)
            self._fail(f"mux: {exc}")
            return
        self.last_written = time.monotonic()

    def _close(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            written = writer.close()
        except RecordingError as exc:
            log.warning("recording %s: %s", self.camera_id, exc)
            self.errors += 1
            self.last_error = str(exc)
            return
        try:
            self.store.add(self.camera_id, written)
        except OSError as exc:
            self._fail(f"indexing {written.path.name}: {exc}")
            return
        self.segments += 1
        self.bytes_written += written.bytes
        self.store.enforce(self.camera_id, self.config.keep_days, self.config.max_mb * 1024 * 1024)
