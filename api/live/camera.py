"""Which ``LiveSource`` serves a camera device, from its config's ``url``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sharpeye.api.live.container import ProbedSource
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


def device_resolver(lookup: Callable[[str], Any], settings: LiveSettings) -> SourceResolver:
    """A resolver over a device lookup (e.g. ``hub.inventory.get``): camera devices with a ``url`` only.

    When the camera service of the video pipeline is wired in, the lead replaces this with a resolver that
    subscribes to the camera's already-open stream instead of opening it a second time.
    """

    def resolve(camera_id: str) -> SourceFactory | None:
        device = lookup(camera_id)
        if device is None or getattr(device, "kind", None) != "camera" or not getattr(device, "url", ""):
            return None
        if not getattr(device, "enabled", True):
            return None
        if str(device.url).startswith("gb28181:"):  # a GB/T 28181 channel without a media URL: INVITE not built yet
            return None
        return source_factory(str(getattr(device, "open_url", device.url)), settings)

    return resolve


def service_resolver(subscribe: Callable[[str], PacketSubscriptionLike], fallback: SourceResolver) -> SourceResolver:
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
            return SubscriptionSource(camera_id, lambda: subscription)

        return make

    return resolve
