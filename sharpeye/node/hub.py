"""Wiring: one ``Hub`` builds every part from settings and a site config, starts and stops them in order."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.exceptions import BusyLoadingError as RedisBusyLoading
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import SQLAlchemyError

from sharpeye.alarms.engine import AlarmEngine
from sharpeye.alarms.linkage import PresetLinker, linked_evidence
from sharpeye.alarms.notification import ConsumerProgress, consume, group_lag
from sharpeye.alarms.store import AlarmStore
from sharpeye.api.routes.push import push_readers
from sharpeye.api.user import UserStore
from sharpeye.clock import Clock, SystemClock
from sharpeye.config.device import DeviceConfig
from sharpeye.config.gb28181 import GbSettings
from sharpeye.config.loader import ConfigError, load_file
from sharpeye.config.site import SiteConfig
from sharpeye.governance.audit_archive import AuditArchive
from sharpeye.governance.cascade import CascadeCollector, GbCascade, HistoryPlayback, alarm_forwarder
from sharpeye.governance.cascade_control import UpwardControl
from sharpeye.governance.cascade_record import merge_spans
from sharpeye.governance.escalation import Notifier
from sharpeye.governance.hierarchy import HierarchyService
from sharpeye.governance.intake import AlarmIntake
from sharpeye.governance.push import PushService
from sharpeye.governance.queue import CaseQueue
from sharpeye.governance.service import CaseService
from sharpeye.governance.store import Database
from sharpeye.governance.uplink import UplinkService
from sharpeye.governance.uplink import group as uplink_group
from sharpeye.governance.verification import VerificationService
from sharpeye.ingest.camera.config import CameraConfig
from sharpeye.ingest.camera.metric import CameraDetectorCollector
from sharpeye.ingest.camera.service import CameraService
from sharpeye.ingest.deadletter import DeadLetter, add_many
from sharpeye.ingest.gb28181.channel_sync import sync_channels
from sharpeye.ingest.gb28181.config import GbDeviceConfig
from sharpeye.ingest.gb28181.control import ControlError, CounterCollector, GbControl, camera_channel
from sharpeye.ingest.gb28181.metric import GbMediaCollector
from sharpeye.ingest.gb28181.offer import UpwardOffer
from sharpeye.ingest.gb28181.platform import GbPlatform
from sharpeye.ingest.gb28181.playback import forward_history
from sharpeye.ingest.gb28181.puller import ChannelPuller
from sharpeye.ingest.gb28181.record import query_records
from sharpeye.ingest.gb28181.registrations import RegistrationStore
from sharpeye.ingest.gb28181.source import opener as gb_opener
from sharpeye.ingest.gb28181.subscription import GbSubscriptions, PositionStore
from sharpeye.ingest.health import LAG_LIMIT_S, STUCK_AFTER_S, ConsumerStatus, DeviceStatus, HealthTracker, State
from sharpeye.ingest.inventory import DeviceInventory
from sharpeye.ingest.ownership import (
    CAMERA_ANALYSED,
    CAMERA_WATCHED,
    ROLE_GB28181,
    ROLE_MQTT,
    Change,
    Ownership,
    abandon_pending,
)
from sharpeye.ingest.pipeline import IngestPipeline, transient
from sharpeye.ingest.reading import Reading
from sharpeye.ingest.recording.playback import RecordedPlayback
from sharpeye.ingest.registry import Registry, installed
from sharpeye.ingest.transport.mqtt import MqttTransport, subscriptions
from sharpeye.ingest.transport.mqtt_acl import HUB_USER, accounts, hub_account, sip_credentials_csv, write_files
from sharpeye.ingest.transport.sip.endpoint import Peer
from sharpeye.ingest.transport.sip.sdp import MediaDescription
from sharpeye.ingest.transport.video.source import register_opener
from sharpeye.keys import Keys
from sharpeye.metrics import Metrics
from sharpeye.node.device_secret import device_secret
from sharpeye.node.embedded import (
    EmbeddedAmqtt,
    EmbeddedMosquitto,
    EmbeddedRedis,
    ManagedProcess,
    ServiceError,
    check_version,
    embedded_broker,
    parse_version,
)
from sharpeye.redis_connection import connect as connect_redis
from sharpeye.redis_connection import log_retry
from sharpeye.settings import Settings, redact_url
from sharpeye.tasks import cancel_and_wait

log = logging.getLogger(__name__)

PENDING_LETTERS = 1000  # dead letters from SIP waiting to be written; past it a flood is counted, not kept


@dataclass
class ComponentHealth:
    name: str
    ok: bool
    detail: str
    endpoint: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": "ok" if self.ok else "failing", "detail": self.detail}
        if self.endpoint:
            out["endpoint"] = self.endpoint
        return out


class Fenced(RuntimeError):
    """This node no longer holds the lease of a batch's source: nothing was applied (and the batch must not be
    acknowledged to the broker: the node that holds the lease now reads it again)."""


class Hub:
    """Everything one hub node runs. ``start()`` brings it up; ``stop()`` takes it down in reverse."""

    def __init__(
        self, settings: Settings, site: SiteConfig, registry: Registry | None = None, clock: Clock | None = None
    ) -> None:
        self.settings = settings
        self.site = site
        self.registry = registry or installed()
        self.clock = clock or SystemClock()
        self.keys = Keys(settings.redis_prefix)
        self.metrics = Metrics()
        self.node_id = settings.node_id or f"{socket.gethostname()}-{os.getpid()}"
        self.embedded_redis: EmbeddedRedis | None = None
        self.embedded_broker: EmbeddedMosquitto | EmbeddedAmqtt | None = None
        self.redis_url = settings.redis_url or ""
        self.mqtt_url = settings.mqtt_url or ""
        self._tasks: list[asyncio.Task[None]] = []
        self.started = asyncio.Event()
        self._emitted: list[Reading] = []
        self._emit_wake = asyncio.Event()
        self._rejected: list[DeadLetter] = []
        self._emitted_since: float | None = None  # time.time() when the oldest reading waiting in _emitted came
        self._emit_failing_since: float | None = None
        self._emit_error: str | None = None
        self._emit_progress: float | None = None
        # consumer groups of the alarm notification log run by this node, with what their handlers last did
        self.progress: dict[str, ConsumerProgress] = {}
        self.consumer_lag_limit_s = LAG_LIMIT_S
        self.consumer_stuck_after_s = STUCK_AFTER_S
        self.gb_platform: GbPlatform | None = None
        self.gb_control: GbControl | None = None
        self.ptz_linker: PresetLinker | None = None
        self.gb_subscriptions: GbSubscriptions | None = None
        self._gb_control_metrics = False
        self.gb_puller: ChannelPuller | None = None
        self._gb_seen: dict[str, dict[str, Any]] = {}  # registrations the signalling node holds (when not this one)
        self.cameras: CameraService | None = None
        self.gb_cascades: list[GbCascade] = []  # one lower-platform client per upper platform (gb28181.cascades)
        self.gb_offer: UpwardOffer | None = None
        self._device_secret: str | None = None
        self._hub_broker_password = secrets.token_urlsafe(24)
        self._broker_dirty = asyncio.Event()
        self._embedded_down: dict[str, str] = {}  # service name -> why it is not serving (while restarting)
        self.embedded_restarts: collections.Counter[str] = collections.Counter()
        self._mqtt_reading = False

    @property
    def device_secret(self) -> str:
        """SHARPEYE_DEVICE_SECRET, else the one kept (made at first use) under the data dir."""
        if self._device_secret is None:
            self._device_secret = device_secret(self.settings)
        return self._device_secret

    @property
    def broker_enforces_accounts(self) -> bool:
        """The embedded broker (Mosquitto, or the amqtt fallback) enforces the per-device accounts and ACL."""
        return self.embedded_broker is not None and self.embedded_broker.enforces_accounts

    @property
    def mqtt_client_id(self) -> str:
        """The MQTT reader's client id: one persistent session for the site, or one per node sharing the traffic."""
        share = self.settings.mqtt_share_group
        session = self.settings.mqtt_client_id or f"sharpeye-hub-{self.site.site.id}"
        return session + (f"-{self.node_id}" if share else "")

    def simulator_access(self) -> tuple[str, str | None]:
        """Where simulated devices connect, and the device secret they derive their passwords from (None: they
        use the URL as it is)."""
        if self.embedded_broker is not None:
            return self.embedded_broker.url, self.device_secret if self.broker_enforces_accounts else None
        return self.mqtt_url, None

    # --- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> None:
        data = self.settings.data_dir.resolve()
        data.mkdir(parents=True, exist_ok=True)
        if not self.redis_url:
            self.embedded_redis = EmbeddedRedis(workdir=data / "redis")
            await asyncio.to_thread(self.embedded_redis.start)
            self.redis_url = self.embedded_redis.url
            (data / "redis-url").write_text(self.redis_url + "\n", encoding="utf-8")  # for `sharpeye user`
            log.info("embedded Redis at %s (%s)", self.redis_url, self.embedded_redis.binary)
        self.redis = connect_redis(self.redis_url, health_check_interval=10)  # redis:// or redis+sentinel://
        await self._check_redis()
        self.db = Database(self.settings.resolved_database_url())
        await self.db.migrate()

        self.alarm_store = AlarmStore(self.redis, self.keys)
        self.inventory = DeviceInventory(self.site, self.registry, self.redis, self.keys)
        self.inventory.origin = self.node_id
        self.gb_registrations = RegistrationStore(self.redis, self.keys, self.node_id)
        await self.inventory.load_runtime()
        if not self.mqtt_url:
            await self._start_embedded_broker(data / "broker")
        self.health = HealthTracker(self.inventory, self.redis, self.keys)
        self.engine = AlarmEngine(self.site, self.alarm_store, self.inventory, self.clock)
        await self.engine.silences.refresh()
        self.pipeline = IngestPipeline(
            self.registry, self.inventory, self.health, self.redis, self.keys, self.metrics, self._process_mqtt
        )
        share = self.settings.mqtt_share_group
        self.transport = MqttTransport(  # one reader holds the site's session, or each node its share of it
            self.mqtt_url,
            self.mqtt_client_id,
            self.pipeline.handle,
            stage=self.pipeline.stage,
            share_group=share,
            reject=self.pipeline.reject,
            transient=transient,
        )
        self.cases = CaseService(self.site, self.db, self.redis, self.keys, self.clock)
        self.queue = CaseQueue(self.redis, self.keys, self.db)
        self.uplinks = UplinkService(
            self.site.governance.uplinks, self.redis, self.keys, self.clock, site_id=self.site.site.id,
            consumer=self.node_id, case_lookup=self.cases.get, alarm_lookup=self.alarm_store.get,
            timezone=self.site.site.timezone, on_delivered=self.cases.record_delivery,
            push=PushService(self.redis, self.keys, contact=self.settings.push_contact,
                             allow_http=self.settings.push_allow_http, registry=self.metrics.registry,
                             units_below=self.inventory.units_below,
                             readers=push_readers(UserStore(self.redis, self.keys, self.settings.token_ttl_s))),
        )  # fmt: skip
        self.hierarchy = HierarchyService(
            self.site.governance, self.site.site.id, self.cases, self.uplinks, self.redis, self.keys,
            data / "photos", node_id=self.node_id,
            count=lambda direction, outcome: self.metrics.hierarchy.labels(direction, outcome).inc(),
            relay=lambda: self.queue.relay(self.clock.now()),
        )  # fmt: skip
        self.intake = AlarmIntake(
            self.site, self.redis, self.keys, self.alarm_store, self.cases, self.queue, self.clock, self.node_id
        )
        self.verification = VerificationService(
            self.site, self.redis, self.keys, self.alarm_store, self.db, self.clock, registry=self.metrics.registry,
        )  # fmt: skip
        self.intake.verification = self.verification
        await self.intake.ensure_group()
        self.progress["governance"] = self.intake.progress
        self.ownership = Ownership(
            self.redis, self.keys, self.node_id, self.lease_units, weight=self.settings.node_weight,
            ttl_s=self.settings.lease_ttl_s, period_s=self.settings.lease_period_s, on_change=self._on_ownership,
            observe=self.metrics.lease_round.observe, count=self._count_ownership, on_dead=self._on_dead_nodes,
        )  # fmt: skip
        self.ownership.inventory_version = lambda: self.inventory.version
        self._spawn(self.inventory.follow(self._on_inventory_change), "inventory-feed")
        self._spawn(self._drain_emitted(), "readings")
        # GB/T 28181 catalog channels (stored so every node knows them) are pulled on demand, not opened at start
        configured = [d for d in self.inventory if self.inventory.source(d.id) != "gb28181"]
        cameras = [d for d in configured if isinstance(d, CameraConfig)]
        if self.settings.cameras and cameras:
            self.cameras = CameraService(
                cameras, data, self.emit, self.clock, workers=self.settings.camera_workers,
                evidence_cap_bytes=self.settings.evidence_cap_mb * 1024 * 1024,
                detector_precision=self.settings.detector_precision,
            )  # fmt: skip
            self.metrics.registry.register(CameraDetectorCollector(self.cameras))
            await self.cameras.set_owned(set())  # only the cameras this node holds leases for are opened
            await self.cameras.start()
            self._spawn(self._record_linked_evidence(), "linked-evidence")
        await self.ownership.round()  # what is free is taken now; the rest follows the leases' rounds
        if self.settings.mqtt_share_group and not self._mqtt_reading:
            log.warning("MQTT through shared subscription group %r: device offline detection is off",
                        self.settings.mqtt_share_group)  # fmt: skip
            self._mqtt_reading = True
            await self.transport.start()
        self._spawn(self.ownership.run(), "leases")
        self._spawn(self.intake.run(), "intake")
        self._spawn(AuditArchive(self.redis, self.keys, self.db, self.node_id).run(), "audit-archive")
        if any(rule.verification is not None for rule in self.site.rules):
            self._spawn(self.verification.run(), "verification")
        if self.site.governance.uplinks:
            self._spawn(self.uplinks.run(), "uplinks")
        if self.hierarchy.enabled:
            self._spawn(self.hierarchy.run(), "hierarchy")
        await self.cases.resync_supervision()
        self._spawn(self.cases.supervision.run(self.clock, 1.0), "supervision")
        self._spawn(Notifier(self.redis, self.keys, self.node_id, self.cases.record_firing).run(), "reminders")
        self._spawn(self.engine.run_timers(), "alarm-timers")
        self._spawn(self.engine.silences.run_pruning(self.clock), "silence-pruning")
        self._spawn(self._housekeeping(), "housekeeping")
        if self.embedded_redis is not None or self.embedded_broker is not None:
            self._spawn(self._supervise_embedded(), "embedded-supervisor")
        self.started.set()
        log.info("hub %s started: %d devices, %d rules", self.node_id, len(self.inventory), len(self.site.rules))

    def _recording_camera(self, channel: str) -> str | None:
        """The camera that is the upper platform's channel, when SharpEye records it."""
        if self.cameras is not None:
            for cam in self.cameras.cameras_config:
                if cam.record is not None and channel in (cam.gb_code, str(cam.url).split("?")[0].rpartition("/")[2]):
                    return cam.id
        return None

    async def _upward_records(self, channel: str, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """RecordInfo of the upper platform for one of our channels: SharpEye's own recordings of the camera that is
        the channel, when it records it; else the device's, asked with RecordInfo."""
        cam_id = self._recording_camera(channel)
        if self.cameras is not None and cam_id is not None:
            segs = self.cameras.recordings.segments(cam_id, start.timestamp(), end.timestamp())
            spans = merge_spans([(seg.start, seg.end) for seg in segs])
            return [(datetime.fromtimestamp(a, UTC), datetime.fromtimestamp(b, UTC)) for a, b in spans]
        assert self.gb_platform is not None
        found = await query_records(self.gb_platform, channel, start, end)
        return [(r.start, r.end) for r in found.records]

    async def _upward_history(self, channel: str, offer: MediaDescription) -> HistoryPlayback:
        """The upper platform's Playback/Download of one of our channels: SharpEye's own recording of the camera that
        is the channel, when it records it; else forwarded to the channel's device."""
        cam_id = self._recording_camera(channel)
        if self.cameras is not None and cam_id is not None:
            return await RecordedPlayback.for_offer(self.cameras.recordings, cam_id, offer)
        assert self.gb_platform is not None
        return await forward_history(self.gb_platform, channel, offer)

    async def _check_redis(self, timeout_s: float = 30.0) -> None:
        """Wait until Redis answers PING (a Redis still loading its AOF answers LOADING), then refuse a server too old
        for the hub, with a sentence saying what to install."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            try:
                await self.redis.ping()
                break
            except (RedisBusyLoading, RedisConnectionError) as exc:
                if loop.time() >= deadline:
                    raise ServiceError(
                        f"Redis at {redact_url(self.redis_url)} did not answer PING within {timeout_s:.0f}s: {exc}"
                    ) from exc
                await asyncio.sleep(0.05)
        info = await self.redis.info("server")
        version = parse_version(str(info.get("redis_version", "")))
        if version is None:
            raise ServiceError(f"Redis at {redact_url(self.redis_url)} reported no redis_version")
        check_version(version, f"the Redis at {redact_url(self.redis_url)}")

    async def _supervise_embedded(self, interval_s: float = 0.5, max_backoff_s: float = 10.0) -> None:
        """Start an embedded Redis or broker again when it dies (on the same port and files, so clients reconnect by
        themselves), with a growing pause when it keeps dying; health is degraded until it answers again, and
        every restart is counted (``sharpeye_embedded_restarts_total``)."""
        failures: collections.Counter[str] = collections.Counter()
        last_start: dict[str, float] = {}
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval_s)
            services: list[ManagedProcess] = [s for s in (self.embedded_redis, self.embedded_broker) if s is not None]
            for service in services:
                if service.running:
                    continue
                code = service.proc.returncode if service.proc is not None else None
                self._embedded_down[service.name] = f"exited ({code}); restarting"
                if loop.time() - last_start.get(service.name, 0.0) < 30:
                    failures[service.name] += 1  # died soon after the last start: wait longer each time
                else:
                    failures[service.name] = 0
                pause = min(max_backoff_s, 0.25 * 2 ** failures[service.name]) if failures[service.name] else 0.0
                log.error("embedded %s died (exit %s); restarting it in %.1fs", service.name, code, pause)
                await asyncio.sleep(pause)
                service.proc = None
                try:
                    await asyncio.to_thread(service.start)
                except Exception as exc:
                    self._embedded_down[service.name] = f"restart failed: {exc}"
                    log.error("restarting embedded %s failed: %s", service.name, exc)
                    last_start[service.name] = loop.time()  # the next round waits twice as long
                    continue
                last_start[service.name] = loop.time()
                self.embedded_restarts[service.name] += 1
                self.metrics.embedded_restarts.labels(service.name).inc()
                # Degraded until the hub itself is served again (its client reconnected), not only the process back.
                self._embedded_down[service.name] = "restarted; waiting for the hub to reconnect"
                await self._embedded_reconnected(service)
                self._embedded_down.pop(service.name, None)
                log.warning("embedded %s restarted on port %d", service.name, service.port)

    async def _embedded_reconnected(self, service: ManagedProcess, within_s: float = 5.0) -> None:
        """Wait (at most ``within_s``) until the hub's own client of a restarted embedded service works again: a PING
        answered for Redis, the MQTT transport connected for the broker."""
        deadline = asyncio.get_running_loop().time() + within_s
        while asyncio.get_running_loop().time() < deadline:
            if service is self.embedded_redis:
                try:
                    async with asyncio.timeout(1):
                        await self.redis.ping()
                    return
                except Exception:  # noqa: S110 - not back yet: poll until the deadline
                    pass
            elif service is self.embedded_broker and (self.transport.connected.is_set() or not self._mqtt_reading):
                return
            await asyncio.sleep(0.05)

    # --- ownership (ingest/ownership.py) ----------------------------------------------------------
    def lease_units(self) -> dict[str, float]:
        """What the nodes of the site share, by weight: each analysed camera, the MQTT reader role, the GB/T 28181
        signalling role (its devices' channels come with it: docs/architecture.md, "Several nodes")."""
        units: dict[str, float] = {}
        if not self.settings.mqtt_share_group:  # shared subscriptions: the broker spreads MQTT, no reader role
            units[ROLE_MQTT] = 1.0 + 0.05 * sum(1 for d in self.inventory if self._transport_of(d) == "mqtt")
        if self.site.gb28181 is not None:
            units[ROLE_GB28181] = 1.0 + 0.1 * sum(1 for d in self.inventory if isinstance(d, GbDeviceConfig))
        if self.cameras is not None:
            for cam in self.cameras.cameras_config:
                units[cam.id] = CAMERA_ANALYSED if cam.zones or cam.tripwires else CAMERA_WATCHED
        return units

    def _transport_of(self, device: DeviceConfig) -> str | None:
        driver = self.registry.drivers.get(device.kind)
        return driver.transport if driver is not None else None

    async def _on_dead_nodes(self, nodes: list[str]) -> None:
        """Nodes whose announcement expired: what their consumers had read from the streams and not acknowledged
        is taken by the living at their next claim, not after the groups' claim timeouts."""
        streams = [self.keys.alarm_events, self.keys.case_events, self.keys.sla_fired]
        for node in nodes:
            marked = await abandon_pending(self.redis, streams, node)
            log.warning("node %s is gone; %d stream entries it held are up for claiming", node, marked)

    def reload_site(self, path: Path) -> None:
        """Read the site file again and apply its devices on every node (SIGHUP; the rest needs a restart)."""

        async def reload() -> None:
            try:
                site = await asyncio.to_thread(load_file, path, self.registry)
            except ConfigError as exc:
                log.error("site reload: %s; nothing changed", exc)
                return
            if site.model_dump(exclude={"devices"}) != self.site.model_dump(exclude={"devices"}):
                log.warning("site reload: only devices are applied; restart the nodes for the other changes")
            changed = await self.inventory.reload_site(site)
            self.metrics.inventory_version.set(self.inventory.version)
            if changed:
                self.ownership.poke()

        self._spawn(reload(), "site-reload")

    async def _on_inventory_change(self, version: int, changed: list[str]) -> None:
        """Another node changed the inventory (applied here already): the lease units follow at once."""
        self.metrics.inventory_version.set(version)
        if changed:
            self.metrics.inventory_changes.inc(len(changed))
            log.info("inventory v%d: %s changed on another node", version, ", ".join(changed[:20]))
            self.ownership.poke()

    def _count_ownership(self, change: str, n: int) -> None:
        self.metrics.ownership_changes.labels(change).inc(n)

    async def _on_ownership(self, change: Change) -> None:
        """Open what this node now owns and close what it lost: the MQTT reader, GB/T 28181 signalling, cameras."""
        owned = self.ownership.owned
        self.metrics.owned.set(len(owned))
        if ROLE_MQTT in change.lost and self._mqtt_reading:
            self._mqtt_reading = False
            await self.transport.stop()
        if ROLE_MQTT in owned and not self._mqtt_reading:
            self._mqtt_reading = True
            await self.transport.start()
        if ROLE_GB28181 in change.lost and self.gb_platform is not None:
            await self._stop_gb28181()
        if ROLE_GB28181 in owned and self.gb_platform is None and self.site.gb28181 is not None:
            await self._start_gb28181(self.site.gb28181)
        if self.cameras is not None:
            await self.cameras.set_owned({c.id for c in self.cameras.cameras_config if c.id in owned})

    async def _start_embedded_broker(self, workdir: Path) -> None:
        """Mosquitto, or the amqtt fallback when it is not installed, on loopback, with a password and ACL file made
        from the inventory (no anonymous login) and the hub's own account (a password made for this run)."""
        broker = self.embedded_broker = embedded_broker(workdir)
        files = await asyncio.to_thread(self._write_broker_files)
        broker.password_file, broker.acl_file = files["passwd"], files["acl"]
        if isinstance(broker, EmbeddedAmqtt):
            log.warning("the embedded broker is amqtt (Mosquitto is not installed): device accounts and ACL apply, "
                        "but it keeps no store (a broker crash loses queued messages); install Mosquitto for "
                        "that")  # fmt: skip
        await asyncio.to_thread(broker.start)
        self.mqtt_url = f"mqtt://{HUB_USER}:{self._hub_broker_password}@{broker.host}:{broker.port}"
        if isinstance(broker, EmbeddedMosquitto):
            # The hub's session and subscriptions saved before any device message is accepted: a broker killed
            # before its next autosave comes back with them, and queues for the hub (docs/reliability.md).
            topics = subscriptions(self.settings.mqtt_share_group)
            await asyncio.to_thread(
                broker.keep_session, self.mqtt_client_id, HUB_USER, self._hub_broker_password, topics
            )
        self.inventory.listeners.append(self._on_device_change)
        self._spawn(self._sync_broker_accounts(), "broker-accounts")
        log.info("embedded MQTT broker (%s) at %s", broker.name, redact_url(self.mqtt_url))

    def _write_broker_files(self) -> dict[str, Path]:
        """The embedded Mosquitto's passwd and acl (and provisioning sheets) under ``<broker dir>/auth``."""
        assert self.embedded_broker is not None
        devices = list(self.inventory)
        made = accounts(devices, self.registry, self.device_secret, hub_account(HUB_USER, self._hub_broker_password))
        extra = {"sip-credentials.csv": sip_credentials_csv(devices, self.device_secret)}
        auth = self.embedded_broker.workdir / "auth"
        auth.mkdir(parents=True, exist_ok=True, mode=0o700)
        return write_files(auth, made, extra)

    def _on_device_change(self, _device_id: str, device: DeviceConfig | None) -> None:
        """A device was added, changed or removed (API, discovery): its broker account follows."""
        driver = self.registry.drivers.get(device.kind) if device is not None else None
        if device is None or driver is None or driver.transport == "mqtt":
            self._broker_dirty.set()

    async def _sync_broker_accounts(self) -> None:
        """Rewrite the broker's files whenever MQTT devices change; Mosquitto reads them again on SIGHUP, amqtt's
        plugins when they see them changed."""
        broker = self.embedded_broker
        assert broker is not None
        while True:
            await self._broker_dirty.wait()
            self._broker_dirty.clear()
            try:
                await asyncio.to_thread(self._write_broker_files)
                broker.reload()
                log.info("broker accounts updated: %d devices", len(self.inventory))
            except Exception as exc:
                log_retry(log, "updating the broker's accounts", exc)
                await asyncio.sleep(1)
                self._broker_dirty.set()

    async def _start_gb28181(self, settings: GbSettings) -> None:
        devices = [d for d in self.inventory if isinstance(d, GbDeviceConfig)]
        self.gb_platform = GbPlatform(
            settings, devices, self.emit, self.clock, reject=self._reject_sip, device_secret=self.device_secret,
            garbage=self._sip_garbage, registrations=self.gb_registrations,
        )  # fmt: skip
        restored = 0  # registrations the last signalling node accepted: the devices need not register again
        for reg in self.gb_registrations.restorable(await self.gb_registrations.load()):  # before the port is bound
            restored += self.gb_platform.restore(reg.device_id, reg.peer, reg.contact,
                                                 datetime.fromtimestamp(reg.expires_at, UTC),
                                                 datetime.fromtimestamp(reg.registered_at, UTC))  # fmt: skip
        if restored:
            log.info("GB/T 28181: %d registrations taken over from Redis", restored)
        await self.gb_platform.start()
        self._spawn(self.gb_registrations.run(), "gb28181-registrations")
        # GB channels are pulled on demand (INVITE) for viewers; a camera configured as gb28181:<device>/<channel>
        # is read by the camera service through the same puller, so analytics and evidence keep it pulled.
        self.gb_puller = ChannelPuller(self.gb_platform)
        self.gb_control = GbControl(self.gb_platform)
        self.gb_subscriptions = GbSubscriptions(self.gb_platform, PositionStore(self.redis, self.keys))
        await self.gb_subscriptions.start()
        self._register_gb_control_metrics()
        self.gb_puller.bind(asyncio.get_running_loop())
        register_opener("gb28181:", gb_opener(self.gb_puller))
        self.metrics.registry.register(GbMediaCollector(self.gb_platform, self.gb_puller, self._gb_upper_stats))
        self._spawn(self._sync_gb_channels(), "gb28181-channels")
        if any(rule.linkage.ptz for rule in self.engine.rules.rules.values()):
            self._spawn(self._link_presets(), "gb28181-ptz-linkage")
        if settings.cascade is not None:
            log.warning("gb28181.cascade is deprecated: list the upper platform under gb28181.cascades (read as one)")
        if settings.uppers:
            # Upward: the devices' channels, and RTSP/file cameras that have a gb_code (ingest/gb28181/offer.py);
            # the upper platform's DeviceControl and PresetQuery go to the device that owns the channel. One client
            # per upper platform, each with its own port, registration and channel filter.
            self.gb_offer = UpwardOffer(
                settings.sip_id, channels=self.gb_platform.channels, devices=lambda: self.inventory,
                puller=self.gb_puller, cameras=lambda: self.cameras, live=self._live_cameras,
            )  # fmt: skip
            for upper in settings.uppers:
                upward = UpwardControl(lambda: self.gb_control, self.gb_platform.channels, upper.charset)
                cascade = GbCascade(
                    settings, catalog=self.gb_offer.catalog, clock=self.clock, media=self.gb_offer.media,
                    control=upward, records=self._upward_records, history=self._upward_history, upper=upper,
                    positions=self.gb_subscriptions.positions.latest,
                )  # fmt: skip
                await cascade.start()
                self.gb_cascades.append(cascade)
            self._spawn(self._forward_upward(), "gb28181-cascade")
        log.info("GB/T 28181 platform %s on %s:%d", settings.sip_id, settings.host, self.gb_platform_port)

    def _register_gb_control_metrics(self) -> None:
        """Control, subscription and upward-control counters at /metrics (once: they read the current objects)."""
        if self._gb_control_metrics:
            return
        self._gb_control_metrics = True
        for name, doc, stats in [
            ("sharpeye_gb_control", "GB/T 28181 control commands and failures",
             lambda: self.gb_control.stats if self.gb_control else None),
            ("sharpeye_gb_subscription", "GB/T 28181 subscriptions and their notifications",
             lambda: self.gb_subscriptions.stats if self.gb_subscriptions else None),
            ("sharpeye_gb_upward_control", "The upper platform's DeviceControl and PresetQuery, forwarded or refused",
             lambda: sum((c.control.stats for c in self.gb_cascades if c.control), collections.Counter())),
        ]:  # fmt: skip
            self.metrics.registry.register(CounterCollector(name, doc, stats))
        self.metrics.registry.register(CascadeCollector(lambda: self.gb_cascades))

    async def _stop_gb28181(self) -> None:
        """Another node holds the site's SIP signalling now: stop ours (it re-registers the devices there)."""
        gb_tasks = [t for t in self._tasks if t.get_name().startswith("gb28181-")]
        await cancel_and_wait(gb_tasks)
        self._tasks = [t for t in self._tasks if t not in gb_tasks]
        for cascade in self.gb_cascades:
            await cascade.stop()
        self.gb_cascades = []
        if self.gb_subscriptions is not None:
            await self.gb_subscriptions.stop()
            self.gb_subscriptions = None
        if self.gb_control is not None:
            await self.gb_control.stop()
            self.gb_control = None
        if self.gb_platform is not None:
            await self.gb_platform.stop()
            self.gb_platform = None

    async def _sync_gb_channels(self, interval: float = 5.0) -> None:
        """Catalog channels of registered GB/T 28181 devices become cameras in the inventory (in memory: the
        catalog is the record), placed where their device is; the channel's media URL, when configured, is the
        camera's URL, otherwise ``gb28181:<device>/<channel>``, pulled over SIP INVITE when watched. Changed
        channels are stored, so every node sees them (API, live view) through the change feed; what could not be
        stored is stored on a later round."""
        unsaved: set[str] = set()
        while True:
            try:
                unsaved |= self.sync_gb_channels()
                if unsaved:
                    await self.inventory.persist(sorted(unsaved))
                    unsaved.clear()
            except Exception as exc:
                log_retry(log, "syncing GB/T 28181 channels", exc)
            await asyncio.sleep(interval)

    def sync_gb_channels(self) -> set[str]:
        """The catalog's channels into the inventory; returns the ids of the channels that changed."""
        assert self.gb_platform is not None
        before = {d.id: d for d in self.inventory if self.inventory.source(d.id) == "gb28181"}
        sync_channels(self.gb_platform.channels(), self.inventory)
        after = {d.id: d for d in self.inventory if self.inventory.source(d.id) == "gb28181"}
        return {i for i in before.keys() | after.keys() if before.get(i) != after.get(i)}

    async def _link_presets(self) -> None:
        """Rules' PTZ linkage (a fence zone's alarm turns a camera to a preset), on the node that holds SIP."""
        linker = self.ptz_linker = PresetLinker(self.alarm_store, self.engine.rules.rules, self)
        progress = self.progress["ptz-linkage"] = ConsumerProgress()
        try:
            await consume(self.redis, self.keys, "ptz-linkage", self.node_id, progress.wrap(linker.handle))
        finally:
            await linker.stop()

    async def call_preset(self, camera_id: str, preset: int) -> None:
        """Turn a GB/T 28181 camera (or channel code) to a preset; raises ``ControlError``."""
        control = self.gb_control
        if control is None:
            raise ControlError("not_running", "GB/T 28181 is not running on this node", 503)
        channel = camera_channel(camera_id, self.inventory.get(camera_id))
        if channel is None:
            raise ControlError("unknown_channel", f"{camera_id} is not a GB/T 28181 camera", 404)
        await control.preset(channel, "call", preset)

    @property
    def gb_cascade(self) -> GbCascade | None:
        """The first upper platform's client (``gb_cascades`` holds them all)."""
        return self.gb_cascades[0] if self.gb_cascades else None

    def _gb_upper_stats(self) -> tuple[int, collections.Counter[str]]:
        if not self.gb_cascades:
            return 0, collections.Counter()
        offered = self.gb_offer.stats if self.gb_offer is not None else collections.Counter()
        stats = sum((c.stats for c in self.gb_cascades), collections.Counter())
        return sum(len(c.streams) for c in self.gb_cascades), stats + offered

    def _live_cameras(self) -> set[str] | None:
        if self.cameras is None:
            return set()
        return {s.camera_id for s in self.cameras.stats() if s.state == "live"}

    @property
    def gb_platform_port(self) -> int:
        return self.gb_platform.port if self.gb_platform is not None else 0

    async def _forward_upward(self) -> None:
        progress = self.progress["uplink-gb28181"] = ConsumerProgress()
        forward = alarm_forwarder(self.gb_cascades, self.alarm_store)
        await consume(self.redis, self.keys, "uplink-gb28181", self.node_id, progress.wrap(forward))

    async def _record_linked_evidence(self) -> None:
        assert self.cameras is not None
        progress = self.progress["linked-evidence"] = ConsumerProgress()
        record = linked_evidence(self.alarm_store, self.engine.rules.rules, self.cameras, self.clock)
        await consume(self.redis, self.keys, "linked-evidence", self.node_id, progress.wrap(record))

    def emit(self, readings: list[Reading]) -> None:
        """Readings from transports other than MQTT (SIP, video); called on the event loop's thread."""
        if not self._emitted and readings:
            self._emitted_since = time.time()
        self._emitted.extend(readings)
        self._emit_wake.set()

    def _reject_sip(self, reason: str, device_id: str, raw: bytes) -> None:
        self.metrics.deadletters.labels("gb28181", reason).inc()
        self._keep_letter(DeadLetter("sip", "sip", device_id, "gb28181", reason, "", raw, self.clock.now()))

    def _sip_garbage(self, reason: str, detail: str, raw: bytes, peer: Peer) -> None:
        """A datagram (or TCP segment) that is not SIP: counted by reason, kept with where it came from."""
        self.metrics.deadletters.labels("sip", reason).inc()
        origin = f"{peer.transport}:{peer.host}:{peer.port}"
        self._keep_letter(DeadLetter("sip", origin, "", "sip", reason, detail, raw, self.clock.now()))

    def _keep_letter(self, letter: DeadLetter) -> None:
        if len(self._rejected) < PENDING_LETTERS:
            self._rejected.append(letter)
        self._emit_wake.set()

    async def _drain_emitted(self) -> None:
        while True:
            await self._emit_wake.wait()
            self._emit_wake.clear()
            readings, self._emitted = self._emitted, []
            letters, self._rejected = self._rejected, []
            since, self._emitted_since = self._emitted_since, None
            try:
                if letters:
                    pipe = self.redis.pipeline(transaction=False)
                    add_many(pipe, self.keys, letters)
                    await pipe.execute()
                    letters = []
                if readings:
                    await self._process_emitted(readings)
                    for reading in readings:
                        self.metrics.readings.labels(reading.kind).inc()
                    self._emit_progress = time.time()
                self._emit_failing_since = self._emit_error = None
            except Exception as exc:
                redis_down = isinstance(exc, RedisConnectionError | RedisTimeoutError)  # restarting: no traceback
                log.warning("applying %d readings failed; retrying (%s)", len(readings), exc, exc_info=not redis_down)
                if self._emit_failing_since is None:
                    self._emit_failing_since = time.time()
                self._emit_error = f"{type(exc).__name__}: {exc}"
                self._emitted[:0] = readings
                self._rejected[:0] = letters[: max(0, PENDING_LETTERS - len(self._rejected))]
                if readings:
                    self._emitted_since = min(since or time.time(), self._emitted_since or time.time())
                await asyncio.sleep(0.5)
                self._emit_wake.set()

    async def stop(self) -> None:
        if hasattr(self, "ownership"):
            # cancelled again until it ends (a client library may swallow one cancellation: sharpeye/tasks.py)
            await cancel_and_wait([t for t in self._tasks if t.get_name() == "leases"])
        if self.cameras is not None:
            await self.cameras.stop()
        for cascade in self.gb_cascades:
            await cascade.stop()
        if self.gb_puller is not None:
            register_opener("gb28181:", None)
            await self.gb_puller.stop()
        if self.gb_subscriptions is not None:
            await self.gb_subscriptions.stop()
        if self.gb_control is not None:
            await self.gb_control.stop()
        if self.gb_platform is not None:
            await self.gb_platform.stop()
        await self._cancel_tasks()
        if hasattr(self, "transport"):
            await self.transport.stop()
        if hasattr(self, "health"):
            with contextlib.suppress(Exception):
                await self.health.flush()
        if hasattr(self, "ownership"):
            with contextlib.suppress(Exception):
                await self.ownership.release_all()  # the others take this node's devices now, not after a TTL
        if hasattr(self, "redis"):
            await self.redis.aclose()
        if hasattr(self, "db"):
            await self.db.close()
        if self.embedded_broker is not None:
            await asyncio.to_thread(self.embedded_broker.stop)
        if self.embedded_redis is not None:
            await asyncio.to_thread(self.embedded_redis.stop)
        log.info("hub %s stopped", self.node_id)

    async def _cancel_tasks(self, limit_s: float = 15.0) -> None:
        """Cancel every background task, again and again until each has ended: a client library may swallow a
        cancellation that lands while it opens a connection, and the loop around it would go on."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit_s
        pending = {task for task in self._tasks if not task.done()}
        while pending and loop.time() < deadline:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.2)
        for task in pending:
            log.warning("task %s did not stop within %.0fs", task.get_name(), limit_s)
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.warning("task %s had failed: %r", task.get_name(), task.exception())
        self._tasks.clear()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(coro, name=name))

    # --- the path -----------------------------------------------------------------------------
    async def process(self, readings: list[Reading] | Any, fence: tuple[str, str] | None = None) -> int:
        """Readings from any transport go through the alarm engine; with ``fence`` (the lease this node holds for
        their source) only while that lease holds. Answers how many signals were refused by the fence."""
        transitions = await self.engine.process(readings, fence)
        counts = collections.Counter(t.outcome for t in transitions)
        for outcome, n in counts.items():
            self.metrics.alarm_transitions.labels(outcome).inc(n)  # once per outcome: labels() is slow
        return counts.get("fenced", 0)

    async def _process_mqtt(self, readings: Sequence[Reading]) -> None:
        """MQTT readings, fenced by the reader role's lease. Refused: ``Fenced`` is raised, so the transport
        neither acknowledges the batch to the broker nor goes on (the role's new holder reads it again)."""
        if self.settings.mqtt_share_group:  # the broker gave this batch to this node: nothing to fence
            await self.process(readings)
            return
        fence = self.ownership.fence(ROLE_MQTT)
        if fence is None or await self.process(readings, fence):
            self.metrics.fenced.labels("mqtt").inc(len(readings))
            raise Fenced(f"node {self.node_id} no longer reads MQTT ({len(readings)} readings refused)")

    async def _process_emitted(self, readings: list[Reading]) -> None:
        """Camera and GB/T 28181 readings, each group fenced by the lease of its source (the camera, or the
        signalling role); a refused group is counted and dropped: its source is another node's now."""
        cameras = {c.id for c in self.cameras.cameras_config} if self.cameras is not None else set()
        groups: dict[str, list[Reading]] = {}
        for reading in readings:
            unit = reading.device_id if reading.device_id in cameras else ROLE_GB28181
            groups.setdefault(unit, []).append(reading)
        for unit, group in groups.items():
            fence = self.ownership.fence(unit)
            refused = len(group) if fence is None else await self.process(group, fence)
            if refused:
                source = "camera" if unit in cameras else "gb28181"
                self.metrics.fenced.labels(source).inc(len(group))
                log.warning("%d readings of %s refused: this node no longer holds its lease", len(group), unit)

    async def _housekeeping(self, interval: float = 1.0) -> None:
        rounds = 0
        while True:
            rounds += 1
            try:
                if rounds % 10 == 0:  # outbox rows a crash left unrelayed
                    await self.queue.relay(self.clock.now())
                # the MQTT reader judges its devices' silence (with shared subscriptions no node sees all of a
                # device's traffic, so none does: docs/deployment.md)
                if self.ownership.owns(ROLE_MQTT):
                    offline = self.health.check()
                    if offline:
                        await self.process(offline, self.ownership.fence(ROLE_MQTT))
                await self.health.flush()
                self.metrics.ingest_backlog.set(self.transport.backlog)
                if self.site.gb28181 is not None and self.gb_platform is None and rounds % 5 == 0:
                    self._gb_seen = {r.device_id: r.view() for r in await self.gb_registrations.load()}
            except Exception as exc:
                log_retry(log, "housekeeping", exc)
            await asyncio.sleep(interval)

    # --- devices ------------------------------------------------------------------------------
    def device_statuses(self) -> dict[str, tuple[DeviceStatus, dict[str, Any]]]:
        """Every device's status and transport details: MQTT health, GB/T 28181 registration, camera stats."""
        gb = {d["id"]: d for d in self.gb_platform.devices_state()} if self.gb_platform is not None else {}
        out: dict[str, tuple[DeviceStatus, dict[str, Any]]] = {}
        for device in self.inventory:
            if device.id in self._gb_seen and self.gb_platform is None:  # registered at the signalling node
                out[device.id] = (self.health.snapshot(device.id), self._gb_seen[device.id])
            elif device.id in gb:
                snap = gb[device.id]
                seen = snap.get("last_keepalive") or snap.get("registered_at")
                state: State = "online" if snap["online"] else ("offline" if snap["registered"] or seen else "unknown")
                last = seen.timestamp() if isinstance(seen, datetime) else seen
                out[device.id] = (DeviceStatus(state=state, last_seen=last), snap)
            else:
                out[device.id] = (self.health.snapshot(device.id), {})
        return out

    # --- health -------------------------------------------------------------------------------
    async def health_report(self) -> dict[str, Any]:
        parts: list[ComponentHealth] = []
        # The embedded services as they are now, before any await: the Redis ping below may wait out a quick restart
        # (the client retries), and the report would then miss that Redis was dead when it was asked.
        embedded: list[ComponentHealth] = []
        for service in (self.embedded_redis, self.embedded_broker):
            if service is not None:
                down = self._embedded_down.get(service.name) or ("" if service.running else "not running")
                restarts = self.embedded_restarts[service.name]
                detail = down or f"pid {service.pid}, port {service.port}, {restarts} restarts"
                embedded.append(ComponentHealth(f"embedded:{service.name}", not down, detail))
        try:
            async with asyncio.timeout(2):
                await self.redis.ping()
            parts.append(
                ComponentHealth(
                    "redis", True, "embedded" if self.embedded_redis else "external", redact_url(self.redis_url)
                )
            )
        except Exception as exc:
            parts.append(ComponentHealth("redis", False, f"ping failed: {exc}", redact_url(self.redis_url)))
        connected = self.transport.connected.is_set()
        broker = self.embedded_broker.name if self.embedded_broker else "external"
        if isinstance(self.embedded_broker, EmbeddedAmqtt):
            broker += " (fallback: no store, a broker crash loses queued messages)"
        detail = f"{broker}; backlog {self.transport.backlog}"
        if not self._mqtt_reading:
            connected, detail = True, f"{broker}; standby: another node reads the broker"
        elif not connected:
            detail = f"{broker}; not connected: {self.transport.last_error or 'connecting'}"
        parts.append(ComponentHealth("mqtt", connected, detail, redact_url(self.mqtt_url)))
        lease_ok = self.ownership.last_error is None
        lease_detail = f"{len(self.ownership.owned)} leases held, load {self.ownership.load:g}"
        parts.append(ComponentHealth("leases", lease_ok, lease_detail if lease_ok else self.ownership.last_error or ""))
        try:
            async with asyncio.timeout(2):
                await self.db.ping()
            parts.append(ComponentHealth("database", True, self.db.engine.dialect.name, redact_url(self.db.url)))
        except Exception as exc:
            parts.append(ComponentHealth("database", False, f"query failed: {exc}", redact_url(self.db.url)))
        if self.cameras is not None:  # a blind camera or a dead analytics worker is never "ok"
            cameras_ok, cameras_detail = self.cameras.health()
            parts.append(ComponentHealth("cameras", cameras_ok, cameras_detail))
            recording = self.cameras.recording_health()  # a recorder writing nothing while packets arrive is not ok
            if recording is not None:
                parts.append(ComponentHealth("recordings", *recording))
        if self.gb_platform is not None and self.gb_puller is not None:
            totals = self.gb_platform.media_totals()
            failed = sum(v for k, v in totals.items() if k.startswith("invite.") and k != "invite.ok")
            gb = self.gb_platform
            detail = (
                f"SIP {gb.settings.host}:{gb.port}; {len(gb.sessions)} channels pulled; "
                f"INVITEs ok {totals['invite.ok']}, failed {failed}; RTP lost {totals['rtp.lost']}"
            )
            parts.append(ComponentHealth("gb28181", gb.endpoint.running, detail))
            parts += [ComponentHealth(f"gb28181-cascade:{c.id}", *c.health()) for c in self.gb_cascades]
        parts += embedded
        for task in self._tasks:
            alive = not task.done()
            parts.append(ComponentHealth(f"task:{task.get_name()}", alive, "running" if alive else "stopped"))
        now = time.time()
        for consumer in await self._consumers_or_failure(parts):
            problem = consumer.problem(now, self.consumer_lag_limit_s, self.consumer_stuck_after_s)
            detail = consumer.describe(now) if problem is None else f"{problem}; {consumer.describe(now)}"
            parts.append(ComponentHealth(f"consumer:{consumer.name}", problem is None, detail))
        for part in parts:
            self.metrics.component_up.labels(part.name).set(1 if part.ok else 0)
        ok = all(p.ok for p in parts)
        return {
            "status": "ok" if ok else "degraded",
            "node": self.node_id,
            "site": self.site.site.id,
            "components": {p.name: p.as_dict() for p in parts},
        }

    def _local_consumers(self) -> list[ConsumerStatus]:
        """The MQTT pipeline and the readings of SIP and video (known without asking Redis)."""
        t = self.transport
        return [
            ConsumerStatus("mqtt", t.pending, t.lag_seconds(), t.last_progress, t.stuck_since,
                           t.last_error if t.stuck_since is not None else None),
            ConsumerStatus("readings", len(self._emitted),
                           time.time() - self._emitted_since if self._emitted_since is not None else 0.0,
                           self._emit_progress, self._emit_failing_since, self._emit_error),
        ]  # fmt: skip

    async def _group_consumers(self) -> list[ConsumerStatus]:
        """The consumer groups of the alarm notification log this node runs (governance intake, linked evidence,
        uplinks, the GB/T 28181 cascade), from Redis."""
        groups = dict.fromkeys(self.progress)
        groups.update(dict.fromkeys(uplink_group(u.id) for u in self.site.governance.uplinks))
        out: list[ConsumerStatus] = []
        for group in groups:
            lag = await group_lag(self.redis, self.keys.alarm_events, group)
            progress = self.progress.get(group) or ConsumerProgress()
            out.append(
                ConsumerStatus(
                    f"alarm-events:{group}",
                    lag.pending + lag.undelivered if lag is not None else 0,
                    lag.oldest_s if lag is not None else 0.0,
                    progress.last_progress,
                    progress.failing_since,
                    progress.last_error,
                )
            )
        return out

    async def consumer_statuses(self) -> list[ConsumerStatus]:
        """Every queue consumer this node runs (raises when Redis cannot be asked about the stream groups)."""
        return self._local_consumers() + await self._group_consumers()

    async def _consumers_or_failure(self, parts: list[ComponentHealth]) -> list[ConsumerStatus]:
        local = self._local_consumers()
        try:
            async with asyncio.timeout(2):
                return local + await self._group_consumers()
        except Exception as exc:
            parts.append(ComponentHealth("consumers", False, f"could not read the stream groups: {exc!r}"))
            return local

    async def refresh_gauges(self) -> None:
        """Recompute gauges that are cheap to read on scrape: alarms by state, open cases, queue depths. With Redis or
        the database unreachable (an embedded Redis restarting) the stored gauges keep their last values and the
        scrape still answers: the restart counters and component gauges matter most then."""
        try:
            for state, n in (await self.alarm_store.counts()).items():
                self.metrics.alarms.labels(state.value).set(n)
            for stage, n in (await self.cases.count_open()).items():
                self.metrics.cases.labels(stage).set(n)
            for dept in self.site.departments:
                lag, pending = await self.queue.depth(dept.id)
                self.metrics.queue_depth.labels(f"case-queue:{dept.id}").set(pending + lag)
                self.metrics.queue_lag.labels(f"case-queue:{dept.id}").set(lag)
            for consumer in await self._consumers_or_failure([]):
                self.metrics.consumer_pending.labels(consumer.name).set(consumer.pending)
                self.metrics.consumer_lag_seconds.labels(consumer.name).set(consumer.lag_s)
                self.metrics.consumer_stuck.labels(consumer.name).set(0 if consumer.stuck_since is None else 1)
                if consumer.last_progress is not None:
                    self.metrics.consumer_progress.labels(consumer.name).set(consumer.last_progress)
        except (RedisError, OSError, SQLAlchemyError) as exc:
            log.warning("metrics: stored gauges not refreshed (%s)", exc)
        if self.cameras is not None:
            for cam in self.cameras.stats():
                self.metrics.camera_fps.labels(cam.camera_id, "in").set(cam.fps_in)
                self.metrics.camera_fps.labels(cam.camera_id, "analysed").set(cam.fps_analysed)
                self.metrics.camera_reconnects.labels(cam.camera_id).set(cam.reconnects)
                self.metrics.camera_health.labels(cam.camera_id).set(cam.health)
            for rec in self.cameras.recorder_stats():
                for what in ("bytes_written", "segments", "errors", "dropped", "disk_bytes"):
                    self.metrics.recording.labels(rec.camera_id, what).set(getattr(rec, what))
                self.metrics.recording.labels(rec.camera_id, "retention_deleted").set(rec.deleted)
        if self.gb_platform is not None:
            registered = sum(1 for d in self.gb_platform.devices_state() if d["registered"])
            self.metrics.sip_registrations.set(registered)
        by_state: dict[tuple[str, str], int] = {}
        for device in self.inventory:
            key = (device.kind, self.health.snapshot(device.id).state)
            by_state[key] = by_state.get(key, 0) + 1
        for (kind, device_state), n in by_state.items():
            self.metrics.devices.labels(kind, device_state).set(n)
