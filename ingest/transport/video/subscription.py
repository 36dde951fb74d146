"""``PacketSubscription``: a camera's compressed packets for one consumer (live view, recorder).

The queue is bounded; when the consumer is slow the oldest packets are dropped (and counted), so a slow
consumer never delays capture or the other consumers. After a drop the subscription skips to the next key
frame, so a decoder downstream never receives a broken group of pictures.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable

from sharpeye.ingest.transport.video.packet import StreamInfo, VideoPacket


class PacketSubscription:
    def __init__(
        self,
        camera_id: str,
        loop: asyncio.AbstractEventLoop,
        maxsize: int,
        info: StreamInfo | None,
        on_close: Callable[[PacketSubscription], None],
    ) -> None:
        self.camera_id = camera_id
        self.info = info
        self.dropped = 0
        self._loop = loop
        self._queue: deque[VideoPacket] = deque()
        self._maxsize = maxsize
        self._lock = threading.Lock()
        self._wake = asyncio.Event()
        self._waiting = False
        self._need_key = True
        self._closed = False
        self._on_close = on_close

    def push(self, packet: VideoPacket, info: StreamInfo | None) -> None:
        """Called from the capture thread. Never blocks."""
        with self._lock:
            if self._closed:
                return
            if info is not None:
                self.info = info
            if self._need_key:
                if not packet.key:
                    self.dropped += 1
                    return
                self._need_key = False
            if len(self._queue) >= self._maxsize:
                self.dropped += len(self._queue) + 1
                self._queue.clear()
                self._need_key = True
                return
            self._queue.append(packet)
            wake = self._waiting
            self._waiting = False
        if wake:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def get(self) -> VideoPacket:
        """The next packet; raises ``EOFError`` once closed."""
        while True:
            with self._lock:
                if self._queue:
                    return self._queue.popleft()
                if self._closed:
                    raise EOFError(f"subscription to {self.camera_id} is closed")
                self._waiting = True
                self._wake.clear()
            await self._wake.wait()

    def __aiter__(self) -> AsyncIterator[VideoPacket]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[VideoPacket]:
        while True:
            try:
                yield await self.get()
            except EOFError:
                return

    def qsize(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._loop.call_soon_threadsafe(self._wake.set)
        self._on_close(self)
