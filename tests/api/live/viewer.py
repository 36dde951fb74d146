"""A WebRTC viewer made with aiortc, for tests and the benchmark: offers recvonly H.264, decodes what arrives."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import numpy as np
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from sharpeye.api.live.stamp import latency_ms, read_stamp

Answerer = Callable[[str], Awaitable[str]]


class Viewer:
    """One viewer: ``connect(answerer)`` sends the offer through ``answerer`` (WHEP or the service directly)."""

    def __init__(self, read_stamps: bool = True) -> None:
        self.pc = RTCPeerConnection()
        self.frames = 0
        self.first_frame_at: float | None = None
        self.started_at = time.monotonic()
        self.latencies: list[int] = []
        self.bright: list[float] = []
        self.ended = asyncio.Event()
        self.got_frame = asyncio.Event()
        self._read_stamps = read_stamps
        self._task: asyncio.Task[None] | None = None

    async def connect(self, answerer: Answerer) -> None:
        transceiver = self.pc.addTransceiver("video", direction="recvonly")
        codecs = RTCRtpSender.getCapabilities("video").codecs
        transceiver.setCodecPreferences([c for c in codecs if c.mimeType.lower() in ("video/h264", "video/rtx")])

        @self.pc.on("track")
        def on_track(track: object) -> None:
            self._task = asyncio.create_task(self._read(track))

        self.started_at = time.monotonic()
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await answerer(self.pc.localDescription.sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    async def _read(self, track: object) -> None:
        try:
            while True:
                frame = await track.recv()  # type: ignore[attr-defined]
                self.frames += 1
                if self.first_frame_at is None:
                    self.first_frame_at = time.monotonic()
                self.got_frame.set()
                if self._read_stamps and self.frames % 5 == 0:
                    image = frame.to_ndarray(format="gray")
                    stamp = read_stamp(image)
                    if stamp is not None:
                        self.latencies.append(latency_ms(stamp, int(time.time() * 1000)))
                    self.bright.append(float(np.std(image)))
        except MediaStreamError:
            pass
        finally:
            self.ended.set()

    async def close(self) -> None:
        await self.pc.close()
        if self._task is not None:
            self._task.cancel()
