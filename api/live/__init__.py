"""Live view: camera packets fanned out to WebRTC viewers (WHEP signalling), never re-encoded per viewer."""

from sharpeye.api.live.camera import device_resolver, service_resolver, source_factory
from sharpeye.api.live.feed import CameraFeed, FeedClosed, Subscription
from sharpeye.api.live.service import BadOffer, LiveService, UnknownCamera, ViewerLimit, ViewerSession
from sharpeye.api.live.setting import LiveSettings
from sharpeye.api.live.source import LiveSource
from sharpeye.api.live.subscription import SubscriptionSource

__all__ = [
    "BadOffer",
    "CameraFeed",
    "FeedClosed",
    "LiveService",
    "LiveSettings",
    "LiveSource",
    "Subscription",
    "SubscriptionSource",
    "UnknownCamera",
    "ViewerLimit",
    "ViewerSession",
    "device_resolver",
    "service_resolver",
    "source_factory",
]
