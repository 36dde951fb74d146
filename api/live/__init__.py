"""Live view: camera packets fanned out to WebRTC viewers (WHEP signalling), never re-encoded per viewer."""

from api.live.camera import device_resolver, service_resolver, source_factory
from api.live.feed import CameraFeed, FeedClosed, Subscription
from api.live.service import BadOffer, LiveService, UnknownCamera, ViewerLimit, ViewerSession
from api.live.setting import LiveSettings
from api.live.source import LiveSource
from api.live.subscription import SubscriptionSource

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
