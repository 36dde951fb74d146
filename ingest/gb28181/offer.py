"""What SharpEye offers its upper platform (级联): the channels of the GB/T 28181 devices registered to it, and its
own RTSP/HTTP/file cameras that carry a ``gb_code``.

A camera is offered upward only under a code an operator gave it (``gb_code``, type 131 or 132): the upper
platform keys its directory, its recordings and its users' favourites on that code, so the code must never change
when cameras are added, removed or renamed; in 雪亮 projects the codes are assigned per camera by the owner of
the video network (civil code + industry + type + serial) and registered with the city. A code derived from a
prefix and the camera's place in a list would silently move when the list changes, so SharpEye does not derive
one. A camera is listed in the Catalog (its status ON while its stream is live) and the upper platform's INVITE of
its code is served from the camera's packet fan-out (the same packets live view and evidence get), re-framed to
Annex B and muxed into PS without re-encoding (``governance.cascade``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.gb28181.platform import Channel, MediaError
from sharpeye.ingest.transport.video.subscription import PacketSubscription

log = logging.getLogger(__name__)


class CameraFeeds(Protocol):
    """The camera service's packet fan-out (``CameraService``)."""

    def subscribe(self, camera_id: str) -> PacketSubscription: ...


class ChannelMedia(Protocol):
    """GB channels pulled on demand (``ChannelPuller``)."""

    async def subscribe(self, url_or_channel: str, stream_number: int | None = None) -> PacketSubscription: ...


def camera_channels(devices: Iterable[object], parent_id: str, live: set[str] | None = None) -> list[Channel]:
    """Catalog items of the cameras that have a ``gb_code`` (first one wins if a code is given twice); ``live``:
    ids of the cameras whose stream is up (status ON), ``None`` for all."""
    out: dict[str, Channel] = {}
    for device in devices:
        if not isinstance(device, CameraConfig) or not device.gb_code or not device.enabled:
            continue
        if device.gb_code in out:
            continue
        scheme = device.url.partition("://")[0] if "://" in device.url else "file"
        out[device.gb_code] = Channel(
            device_id=parent_id,
            channel_id=device.gb_code,
            name=device.name,
            manufacturer="SharpEye",
            model=f"{scheme.upper()} camera",
            status="ON" if live is None or device.id in live else "OFF",
            parent_id=parent_id,
        )
    return list(out.values())


class UpwardOffer:
    """The Catalog and the media the cascade (``GbCascade(catalog=offer.catalog, media=offer.media)``) serves."""

    def __init__(
        self,
        parent_id: str,
        *,
        channels: Callable[[], Sequence[Channel]],
        devices: Callable[[], Iterable[object]],
        puller: ChannelMedia | None,
        cameras: Callable[[], CameraFeeds | None],
        live: Callable[[], set[str] | None] = lambda: None,
        first_packet_s: float = 10.0,
    ) -> None:
        self.parent_id = parent_id
        self._channels = channels
        self._devices = devices
        self._puller = puller
        self._cameras = cameras
        self._live = live
        self.first_packet_s = first_packet_s
        self.stats: Counter[str] = Counter()

    def _camera_codes(self) -> dict[str, str]:
        return {
            d.gb_code: d.id
            for d in self._devices()
            if isinstance(d, CameraConfig) and d.gb_code and d.enabled and not d.url.startswith("gb28181:")
        }

    def catalog(self) -> list[Channel]:
        """Channels of registered devices, then the coded cameras (a code already used by a device's channel is
        left out and counted: the device's channel is what the upper platform would get)."""
        channels = list(self._channels())
        taken = {c.channel_id for c in channels}
        cameras = [d for d in self._devices() if isinstance(d, CameraConfig) and not d.url.startswith("gb28181:")]
        for channel in camera_channels(cameras, self.parent_id, self._live()):
            if channel.channel_id in taken:
                self.stats["upstream.catalog_code_clash"] += 1
                continue
            channels.append(channel)
        return channels

    async def media(self, channel_id: str) -> PacketSubscription:
        """Packets of an offered channel; raises ``MediaError`` (``unknown_channel``, ``unavailable``,
        ``no_stream``) or what the puller raises for a device channel."""
        camera_id = self._camera_codes().get(channel_id)
        if camera_id is None or channel_id in {c.channel_id for c in self._channels()}:
            if self._puller is None:
                raise MediaError("unknown_channel", channel_id)
            return await self._puller.subscribe(channel_id)
        feeds = self._cameras()
        if feeds is None:
            self.stats["invite.camera.unavailable"] += 1
            raise MediaError("unavailable", "no camera service on this node")
        try:
            sub = feeds.subscribe(camera_id)
        except KeyError:
            self.stats["invite.camera.unavailable"] += 1
            raise MediaError("unavailable", f"camera {camera_id} is not running on this node") from None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.first_packet_s
        while sub.info is None:  # the camera has not connected yet: its codec is not known
            if loop.time() > deadline:
                sub.close()
                self.stats["invite.camera.no_stream"] += 1
                raise MediaError("no_stream", f"camera {camera_id} gave no stream in {self.first_packet_s:.0f} s")
            await asyncio.sleep(0.05)
        self.stats["invite.camera"] += 1
        log.info("upper platform watches camera %s as %s", camera_id, channel_id)
        return sub
