"""A synthetic camera: a moving test pattern with the camera's name, the local time and a machine-readable time
code (see ``stamp``) drawn in every frame. Used for the demo site and the live-view tests and benchmark."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from zoneinfo import ZoneInfo

import av
import cv2
import numpy as np
from sharpeye.api.live.encoder import PTS_TIME_BASE, EncodedSource
from sharpeye.api.live.setting import LiveSettings
from sharpeye.api.live.stamp import Image, block_geometry, write_stamp

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Pattern:
    """Frames of one synthetic scene, paced to real time."""

    def __init__(self, scene: str, width: int, height: int, fps: float) -> None:
        self.scene = scene
        self.width = width
        self.height = height
        self.fps = fps
        seed = sum(scene.encode()) % 180
        x = np.linspace(0, 4 * np.pi, 2 * width, dtype=np.float32)
        y = np.linspace(0, 2 * np.pi, height, dtype=np.float32)
        wave = (np.sin(x)[None, :] + np.cos(y)[:, None]) * 0.25 + 0.5
        hsv = np.empty((height, 2 * width, 3), np.uint8)
        hsv[..., 0] = (seed + wave * 40).astype(np.uint8)
        hsv[..., 1] = 120
        hsv[..., 2] = (60 + wave * 120).astype(np.uint8)
        self._background = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        self._index = 0

    def render(self, now: float) -> Image:
        """The picture at wall-clock time ``now`` (seconds since the epoch)."""
        i = self._index
        self._index += 1
        shift = (i * 4) % self.width
        image: Image = np.ascontiguousarray(self._background[:, shift : shift + self.width], dtype=np.uint8)
        side = self.height // 5
        bx = int((self.width - side) * (0.5 + 0.5 * np.sin(i / 20)))
        by = int((self.height - side) * (0.5 + 0.4 * np.cos(i / 27)))
        cv2.rectangle(image, (bx, by), (bx + side, by + side), (40, 200, 255), -1)
        _, bh = block_geometry(self.width, self.height)
        local = datetime.fromtimestamp(now, SHANGHAI)
        scale = self.height / 480
        cv2.putText(
            image,
            self.scene,
            (12, 2 * bh + int(40 * scale)),
            cv2.FONT_HERSHEY_SIMPLEX,
            1.1 * scale,
            (255, 255, 255),
            2,
            cv2.LINE_AA,
        )
        text = local.strftime("%Y-%m-%d %H:%M:%S.") + f"{local.microsecond // 1000:03d}"
        cv2.putText(
            image,
            text,
            (12, self.height - int(20 * scale)),
            cv2.FONT_HERSHEY_SIMPLEX,
            1.0 * scale,
            (255, 255, 255),
            2,
            cv2.LINE_AA,
        )
        write_stamp(image, int(now * 1000))
        return image

    def frame_at(self, now: float) -> av.VideoFrame:
        return av.VideoFrame.from_ndarray(self.render(now), format="bgr24")

    async def frames(self) -> AsyncIterator[av.VideoFrame]:
        """Frames at ``fps``, stamped with the time they are made; late frames are skipped, never bunched."""
        period = 1 / self.fps
        start = time.monotonic()
        tick = 0
        while True:
            frame = await asyncio.to_thread(self.frame_at, time.time())
            frame.pts = round((time.monotonic() - start) * 90000)
            frame.time_base = PTS_TIME_BASE
            yield frame
            tick += 1
            delay = start + tick * period - time.monotonic()
            if delay < -period:  # fell behind (busy machine): skip ahead instead of sending a burst
                tick += int(-delay / period)
                delay = start + tick * period - time.monotonic()
            await asyncio.sleep(max(0.0, delay))


def synthetic_source(scene: str, settings: LiveSettings) -> EncodedSource:
    """A ``LiveSource`` for a ``synthetic:<scene>`` camera."""
    pattern = Pattern(scene, settings.synthetic_width, settings.synthetic_height, settings.synthetic_fps)
    return EncodedSource(
        f"synthetic:{scene}",
        pattern.frames,
        pattern.width,
        pattern.height,
        pattern.fps,
        settings.key_frame_interval_s,
    )
