"""What the API needs from the node, as one typed object: the stores and services routes use.

The node (``sharpeye.node``) builds the hub and hands the app a ``Services``; the API never sees the hub. Stores
that take Redis and a key prefix are wrapped here once, so routes call ``services.audit.record(...)`` instead of
passing ``redis, keys`` by hand.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import redis.asyncio as aioredis
from sharpeye.alarms.engine import AlarmEngine
from sharpeye.alarms.store import AlarmStore
from sharpeye.api.live.camera import GbSubscribe
from sharpeye.api.live.subscription import PacketSubscriptionLike
from sharpeye.api.user import UserStore
from sharpeye.config.site import SiteConfig
from sharpeye.governance.cascade import GbCascade
from sharpeye.governance.field import FieldStore
from sharpeye.governance.flow import Actor
from sharpeye.governance.hierarchy import HierarchyService
from sharpeye.governance.hotline import ImportResult, import_tickets
from sharpeye.governance.photo import PhotoStore
from sharpeye.governance.resident import ResidentStore
from sharpeye.governance.service import CaseService
from sharpeye.governance.uplink import UplinkService
from sharpeye.governance.verification import VerificationService
from sharpeye.ingest.deadletter import recent
from sharpeye.ingest.gb28181.control import GbControl
from sharpeye.ingest.gb28181.platform import GbPlatform
from sharpeye.ingest.gb28181.subscription import PositionStore
from sharpeye.ingest.health import DeviceStatus
from sharpeye.ingest.inventory import DeviceInventory
from sharpeye.ingest.ownership import Ownership
from sharpeye.ingest.recording.recorder import RecorderStats
from sharpeye.ingest.recording.store import RecordingStore

from sharpeye.audit import entries, record
from sharpeye.clock import Clock
from sharpeye.keys import Keys
from sharpeye.metrics import Metrics
from sharpeye.settings import Settings


class NodeStatus(Protocol):
    """The node's view of itself: component health, gauges refreshed on scrape, every device's status."""

    async def health_report(self) -> dict[str, Any]: ...

    async def refresh_gauges(self) -> None: ...

    def device_statuses(self) -> dict[str, tuple[DeviceStatus, dict[str, Any]]]: ...


class CameraStatsLike(Protocol):
    """One camera's capture and analytics figures (a msgspec struct: its field names in ``__struct_fields__``)."""

    __struct_fields__: ClassVar[tuple[str, ...]]

    @property
    def camera_id(self) -> str: ...


class CameraFeeds(Protocol):
    """The video pipeline's camera service, as the API uses it (the API does not import the video stack)."""

    def stats(self) -> Sequence[CameraStatsLike]: ...

    def evidence_path(self, ref: str) -> Path: ...

    def subscribe(self, camera_id: str) -> PacketSubscriptionLike: ...

    @property
    def recordings(self) -> RecordingStore: ...

    def recorder_stats(self) -> Sequence[RecorderStats]: ...


@dataclass(frozen=True)
class AuditLog:
    """The audit stream of one hub."""

    redis: aioredis.Redis
    keys: Keys

    async def record(
        self, actor: str, action: str, target: str, details: dict[str, Any] | None = None, origin: str = ""
    ) -> str:
        return await record(self.redis, self.keys, actor, action, target, details, origin)

    async def entries(self, count: int = 100) -> list[dict[str, Any]]:
        return await entries(self.redis, self.keys, count)


@dataclass(frozen=True)
class DeadLetters:
    """Rejected device input, newest first."""

    redis: aioredis.Redis
    keys: Keys

    async def recent(self, count: int = 100, device: str | None = None) -> list[dict[str, Any]]:
        return await recent(self.redis, self.keys, count, device)


@dataclass(frozen=True)
class AlarmFeed:
    """Alarm changes as they happen (Redis pub/sub), for the WebSocket."""

    redis: aioredis.Redis
    keys: Keys

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[AsyncIterator[bytes]]:
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(self.keys.alarm_live)

        async def messages() -> AsyncIterator[bytes]:
            async for message in pubsub.listen():
                if message.get("type") == "message":
                    yield bytes(message["data"])

        try:
            yield messages()
        finally:
            with contextlib.suppress(Exception):  # the connection may be gone already
                await pubsub.unsubscribe()
                await pubsub.aclose()


@dataclass(frozen=True)
class Hotline:
    """The 12345 hotline import over the case service and its ticket ledger."""

    cases: CaseService
    redis: aioredis.Redis
    keys: Keys

    async def import_tickets(
        self, rows: list[dict[str, Any]], actor: Actor, *, dry_run: bool, in_scope: Callable[[str], bool]
    ) -> ImportResult:
        return await import_tickets(self.cases, self.redis, self.keys, rows, actor, dry_run=dry_run,
                                    in_scope=in_scope)  # fmt: skip


@dataclass(frozen=True)
class Services:
    """Everything the routes use. Built by the node once its hub has started."""

    settings: Settings
    site: SiteConfig
    clock: Clock
    metrics: Metrics
    status: NodeStatus
    users: UserStore
    audit: AuditLog
    inventory: DeviceInventory
    deadletters: DeadLetters
    alarms: AlarmStore
    engine: AlarmEngine
    alarm_feed: AlarmFeed
    cases: CaseService
    photos: PhotoStore
    hotline: Hotline
    uplinks: UplinkService
    cameras: CameraFeeds | None
    verification: VerificationService
    field: FieldStore  # the field app's reports (idempotency) and patrols
    residents: ResidentStore  # the residents' page: challenges, rate limits, receipts
    gb_subscribe: GbSubscribe | None = None  # GB/T 28181 channels pulled on demand for viewers
    gb_key_frame: Callable[[str], object] | None = None  # ask a pulled GB channel's device for a key frame
    gb_platform: Callable[[], GbPlatform | None] | None = None  # the SIP platform, while this node holds the role
    ownership: Ownership | None = None  # the leases this node holds among the site's nodes
    gb_control: Callable[[], GbControl | None] | None = None  # PTZ and device control, while SIP runs here
    gb_tracks: PositionStore | None = None  # GB/T 28181 MobilePosition tracks
    gb_cascades: Callable[[], Sequence[GbCascade]] | None = None  # upper platforms served, while SIP runs here
    publish: Callable[[str, bytes], None] | None = None  # an MQTT publish (QoS 1) to devices: fence commands
    hierarchy: HierarchyService | None = None  # hubs above and below this one


# What ``create_app`` takes: entered by the app's lifespan, it starts what the services need and yields them;
# leaving it stops everything.
ServicesFactory = Callable[[], AbstractAsyncContextManager[Services]]
