"""Which ``LiveSource`` serves a camera device, from its config's ``url``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import av
from sharpeye.api.live.container import ProbedSource
from sharpeye.api.live.encoder import PTS_TIME_BASE, EncodedSource
from sharpeye.api.live.pattern import synthetic_source
from sharpeye.api.live.service import SourceFactory, SourceResolver
from sharpeye.api.live.setting import LiveSettings
from sharpeye.api.live.source import LiveSource
from sharpeye.api.live.subscription import PacketSubscriptionLike, SubscriptionSource

SYNTHETIC = "synthetic:"


def source_factory(url: str, settings: LiveSettings) -> SourceFactory:
    """A factory of the live source for a camera URL: 'synthetic:<scene>', a file path, rtsp:// or http(s)://."""
    if url.startswith(SYNTHETIC):
        scene = url.removeprefix(SYNTHETIC) or "synthetic"
        return lambda: synthetic_source(scene, settings)
    return lambda: ProbedSource(url, settings)


GbSubscribe = Callable[[str], Awaitable[PacketSubscriptionLike]]


class GbLiveSource:
    """A subscription opened when the feed starts: a GB/T 28181 channel pulled on demand (``subscribe`` INVITEs it,
    or joins the pull already running), or a camera service's subscription. H.264 passes through; H.265 (the usual
    codec of these cameras) is decoded and encoded to H.264 once for all viewers."""

    def __init__(
        self,
        camera_id: str,
        url: str,
        subscribe: GbSubscribe,
        settings: LiveSettings,
        key_frame: Callable[[str], object] | None = None,
    ) -> None:
        """``key_frame(url)`` asks the device for a key frame (GB/T 28181 IFameCmd): an H.264 channel passed
        through then starts a new viewer's picture at once instead of at the device's next scheduled one."""
        self._camera_id = camera_id
        self._url = url
        self._subscribe = subscribe
        self._settings = settings
        self._key_frame = key_frame
        self._inner: SubscriptionSource | EncodedSource | None = None

    @property
    def name(self) -> str:
        return f"gb28181 {self._camera_id}"

    @property
    def key_frame_on_request(self) -> bool:
        return self._inner is not None and self._inner.key_frame_on_request

    def request_key_frame(self) -> None:
        if isinstance(self._inner, SubscriptionSource) and self._key_frame is not None:
            self._key_frame(self._url)
        elif self._inner is not None:
            self._inner.request_key_frame()

    async def packets(self) -> AsyncIterator[av.Packet[Any]]:
        sub = await self._subscribe(self._url)
        codec = str(getattr(sub.info, "codec", "")).lower()
        if codec == "h264":
            self._inner = SubscriptionSource(self.name, lambda: sub)
        else:
            width, height = int(sub.info.width) // 2 * 2, int(sub.info.height) // 2 * 2
            fps = float(getattr(sub.info, "fps", None) or 25)

            def frames() -> AsyncIterator[av.VideoFrame]:
                return decoded_frames(sub, codec)

            self._inner = EncodedSource(self.name, frames, width, height, fps, self._settings.key_frame_interval_s)
        async for packet in self._inner.packets():
            yield packet


async def decoded_frames(sub: PacketSubscriptionLike, codec: str) -> AsyncIterator[av.VideoFrame]:
    """Decode a subscription's packets (H.265...) into frames stamped in 90 kHz; closes it at the end."""
    decoder: Any = av.CodecContext.create(codec, "r")
    try:
        while True:
            try:
                packet = await sub.get()
            except EOFError:
                return
            try:
                frames = await asyncio.to_thread(decoder.decode, av.Packet(bytes(packet.data)))
            except av.FFmpegError:
                continue
            for frame in frames:
                frame.pts = packet.pts
                frame.time_base = PTS_TIME_BASE
                yield frame
    finally:
        sub.close()


def device_resolver(
    lookup: Callable[[str], Any],
    settings: LiveSettings,
    *,
    gb_subscribe: GbSubscribe | None = None,
    gb_key_frame: Callable[[str], object] | None = None,
) -> SourceResolver:
    """A resolver over a device lookup (e.g. ``hub.inventory.get``): camera devices with a ``url`` only.

    A ``gb28181:<device>/<channel>`` camera is pulled on demand through ``gb_subscribe`` (the hub's
    ``ChannelPuller.subscribe``); without it such a camera cannot be watched.
    """

    def resolve(camera_id: str) -> SourceFactory | None:
        device = lookup(camera_id)
        if device is None or getattr(device, "kind", None) != "camera" or not getattr(device, "url", ""):
            return None
        if not getattr(device, "enabled", True):
            return None
        url = str(device.url)
        if url.startswith("gb28181:"):
            if gb_subscribe is None:
                return None
            subscribe = gb_subscribe
            return lambda: GbLiveSource(camera_id, url, subscribe, settings, gb_key_frame)
        return source_factory(str(getattr(device, "open_url", device.url)), settings)

    return resolve


def service_resolver(
    subscribe: Callable[[str], PacketSubscriptionLike],
    fallback: SourceResolver,
    settings: LiveSettings | None = None,
) -> SourceResolver:
    """Live sources from a camera service's ``subscribe(camera_id)`` (packets the hub already reads), falling back
    to opening the camera here when the service does not run it (``subscribe`` raises ``KeyError``).

    ``fallback`` also decides which ids are cameras at all (e.g. ``device_resolver(hub.inventory.get, ...)``).
    """

    def resolve(camera_id: str) -> SourceFactory | None:
        own = fallback(camera_id)
        if own is None:
            return None

        def make() -> LiveSource:
            try:
                subscription = subscribe(camera_id)
            except KeyError:
                return own()
            info = getattr(subscription, "info", None)
            codec = str(getattr(info, "codec", "")).lower()
            if codec in ("h264", "avc1", "") or settings is None:
                return SubscriptionSource(camera_id, lambda: subscription)

            async def ready(_: str) -> PacketSubscriptionLike:
                return subscription

            # H.265 (a GB/T 28181 channel the camera service analyses, or an RTSP camera): encoded once to H.264
            return GbLiveSource(camera_id, camera_id, ready, settings)

        return make

    return resolve
