"""Forced key frame (强制关键帧): ``DeviceControl`` with ``IFameCmd`` = ``Send`` (GB/T 28181-2016 A.2.3, the field
name is spelled so in the standard) asks a device to start a new group of pictures on a channel now.

A browser viewer of an H.264 channel passed through cannot start before a key frame; devices send one every 1-4 s,
so without this a viewer who joins after the pull started waits up to a whole GOP. The live view asks when a
viewer starts reading (``GbLiveSource.request_key_frame``), at most once a second per channel.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Coroutine
from typing import Any

from sharpeye.ingest.gb28181.manscdp import build
from sharpeye.ingest.gb28181.platform import GbPlatform, MediaError
from sharpeye.ingest.transport.sip.endpoint import TransactionTimeout

log = logging.getLogger(__name__)

MIN_INTERVAL_S = 1.0


async def force_key_frame(platform: GbPlatform, channel_id: str) -> int:
    """Send the control to the device that owns the channel; its final status (raises ``MediaError``
    ``unknown_channel`` when no registered device has it)."""
    state = platform.owner_of(channel_id)
    body = build(
        "Control", "DeviceControl", next(platform._sn), channel_id, [("IFameCmd", "Send")], charset=state.config.charset
    )
    return await platform._send_message(state, body)


class KeyFrameRequests:
    """Rate-limited, fire-and-forget key-frame requests per channel, counted in ``stats`` (``keyframe.*``)."""

    def __init__(self, platform: GbPlatform, stats: Counter[str], min_interval_s: float = MIN_INTERVAL_S) -> None:
        self.platform = platform
        self.stats = stats
        self.min_interval_s = min_interval_s
        self._last: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def request(self, channel_id: str) -> bool:
        """Ask for a key frame on ``channel_id`` unless one was asked less than ``min_interval_s`` ago; must be
        called on the event loop. Returns whether a request went out."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        if now - self._last.get(channel_id, -1e9) < self.min_interval_s:
            self.stats["keyframe.throttled"] += 1
            return False
        self._last[channel_id] = now
        self._spawn(self._send(channel_id))
        return True

    async def _send(self, channel_id: str) -> None:
        try:
            status = await force_key_frame(self.platform, channel_id)
        except (MediaError, TransactionTimeout, ConnectionError, OSError) as exc:
            self.stats["keyframe.failed"] += 1
            log.debug("key frame request for %s: %s", channel_id, exc)
            return
        self.stats[f"keyframe.{'sent' if status == 200 else f'refused_{status}'}"] += 1

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
