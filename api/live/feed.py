"""One camera's packets, read once from its source and fanned out to every viewer's bounded queue.

A new subscription starts at a key frame (asked for from sources that can make one, waited for otherwise). A
subscription whose queue fills up (a slow or stuck viewer) is dropped on the spot: the feed never waits for a
viewer, so one viewer can never delay another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import av
from sharpeye.api.live.sender import Packetizer
from sharpeye.api.live.source import LiveSource

from sharpeye.tasks import cancel_and_wait

log = logging.getLogger(__name__)

RETRY_MIN_S = 0.5
RETRY_MAX_S = 10.0
KEY_REQUEST_MIN_INTERVAL_S = 0.5


class FeedClosed(Exception):
    """The subscription ended: ``reason`` is 'slow', 'closed' or 'stopped'."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Subscription:
    """One viewer's bounded queue of packets."""

    def __init__(self, feed: CameraFeed, maxsize: int, on_drop: Callable[[str], None] | None) -> None:
        self.feed = feed
        self._queue: asyncio.Queue[av.Packet[Any] | None] = asyncio.Queue(maxsize)
        self._on_drop = on_drop
        self.reading = False
        self.started = False
        self.reason: str | None = None
        self.delivered = 0
        self.subscribed_at = time.monotonic()
        self.first_packet_at: float | None = None

    @property
    def closed(self) -> bool:
        return self.reason is not None

    @property
    def pending(self) -> int:
        """Packets queued and not read yet."""
        return self._queue.qsize()

    async def get(self) -> av.Packet[Any]:
        """The next packet; raises ``FeedClosed`` once the subscription is dropped or closed.

        Packets are queued only from the first call on: a viewer still connecting (ICE, DTLS) is not yet
        reading, and must neither be dropped as slow nor start with stale packets. The first call asks the
        source for a key frame, so the picture starts at once where the source can make one.
        """
        if not self.reading:
            self.reading = True
            self.feed.request_key_frame(force=True)
        if self.reason is not None and self._queue.empty():
            raise FeedClosed(self.reason)
        packet = await self._queue.get()
        if packet is None:
            raise FeedClosed(self.reason or "closed")
        return packet

    def offer(self, packet: av.Packet[Any]) -> None:
        """Called by the feed: queue ``packet`` or drop this subscription if the viewer is behind."""
        if self.reason is not None or not self.reading:
            return
        if not self.started:
            if not packet.is_keyframe:
                return
            self.started = True
            self.first_packet_at = time.monotonic()
        if self._queue.full():
            self.end("slow")
            return
        self._queue.put_nowait(packet)
        self.delivered += 1

    def end(self, reason: str) -> None:
        """Stop this subscription; the reader gets ``FeedClosed(reason)`` after the queue drains (at once if slow)."""
        if self.reason is not None:
            return
        self.reason = reason
        if reason == "slow":
            while not self._queue.empty():
                self._queue.get_nowait()
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(None)
        self.feed.discard(self)
        if self._on_drop is not None and reason != "closed":
            self._on_drop(reason)

    def close(self) -> None:
        self.end("closed")


class CameraFeed:
    """Reads ``source_factory()``'s packets while anyone watches; restarts the source with backoff on failure."""

    def __init__(
        self, camera_id: str, source_factory: Callable[[], LiveSource], queue_packets: int, idle_stop_s: float
    ) -> None:
        self.camera_id = camera_id
        self._factory = source_factory
        self._queue_packets = queue_packets
        self._idle_stop_s = idle_stop_s
        self._subscriptions: set[Subscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._idle: asyncio.TimerHandle | None = None
        self._source: LiveSource | None = None
        self._last_key_request = 0.0
        self.packetizer = Packetizer()
        self.packets = 0
        self.key_frames = 0
        self.failures = 0
        self.last_error = ""

    @property
    def viewers(self) -> int:
        return len(self._subscriptions)

    @property
    def source(self) -> LiveSource | None:
        """The source being read, while the feed runs."""
        return self._source

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def subscribe(self, on_drop: Callable[[str], None] | None = None) -> Subscription:
        """A new subscription, starting at a key frame once its reader asks; starts reading the source."""
        sub = Subscription(self, self._queue_packets, on_drop)
        self._subscriptions.add(sub)
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if not self.running:
            self._task = asyncio.create_task(self._pump(), name=f"live-feed-{self.camera_id}")
        return sub

    def discard(self, sub: Subscription) -> None:
        self._subscriptions.discard(sub)
        if not self._subscriptions and self.running and self._idle is None:
            loop = asyncio.get_running_loop()
            self._idle = loop.call_later(self._idle_stop_s, self._stop_if_idle)

    def request_key_frame(self, force: bool = False) -> None:
        """Ask the source for a key frame, at most every 0.5 s (viewers' picture-loss reports can come in storms)."""
        now = time.monotonic()
        if not force and now - self._last_key_request < KEY_REQUEST_MIN_INTERVAL_S:
            return
        self._last_key_request = now
        if self._source is not None:
            self._source.request_key_frame()

    def _stop_if_idle(self) -> None:
        self._idle = None
        if not self._subscriptions and self._task is not None:
            self._task.cancel()

    async def _pump(self) -> None:
        delay = RETRY_MIN_S
        while self._subscriptions:
            source = self._factory()
            self._source = source
            source.request_key_frame()
            iterator = source.packets()
            try:
                async for packet in iterator:
                    self.packets += 1
                    if packet.is_keyframe:
                        self.key_frames += 1
                        delay = RETRY_MIN_S
                    for sub in list(self._subscriptions):
                        sub.offer(packet)
                log.warning("live source %s of %s ended; reopening", source.name, self.camera_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "live source %s of %s failed (%s); retry in %.1fs",
                    source.name,
                    self.camera_id,
                    self.last_error,
                    delay,
                )
            finally:
                self._source = None
                aclose = getattr(iterator, "aclose", None)
                if aclose is not None:
                    with contextlib.suppress(Exception):
                        await aclose()
            await asyncio.sleep(delay)
            delay = min(RETRY_MAX_S, delay * 2)

    async def stop(self) -> None:
        """End every subscription and stop reading the source."""
        for sub in list(self._subscriptions):
            sub.end("stopped")
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None
