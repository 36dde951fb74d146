"""Live view: camera packets fanned out to WebRTC viewers (WHEP signalling), never re-encoded per viewer."""

from api.live.feed import CameraFeed, FeedClosed, Subscription
from api.live.service import BadOffer, LiveService, UnknownCamera, ViewerLimit, ViewerSession
from api.live.setting import LiveSettings
from api.live.source import LiveSource

__all__ = [
    "BadOffer",
    "CameraFeed",
    "FeedClosed",
    "LiveService",
    "LiveSettings",
    "LiveSource",
    "Subscription",
    "UnknownCamera",
    "ViewerLimit",
    "ViewerSession",
]
