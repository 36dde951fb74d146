"""Subscriptions to GB/T 28181 devices: Catalog, Alarm and MobilePosition, kept up while the device is registered.

Every ``period_s`` each registered, online device is SUBSCRIBEd to the events it has not refused, again before
``renew_at`` of the granted expiry has passed. A device that refuses an event (489 Bad Event, 501, 403...) is not
asked for it again until it registers anew; one that does not answer is asked again next round. What the NOTIFYs
carry: Catalog changes update the channels and Alarm notifications raise alarms (both in ``platform``, as for
MESSAGE); MobilePosition reports are validated here and kept as tracks (``PositionStore``: a Redis sorted set per
device, by time, trimmed to ``keep_s``), queryable by time through the API.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from sharpeye.ingest.gb28181.driver import local_time
from sharpeye.ingest.gb28181.manscdp import Manscdp, Node
from sharpeye.ingest.gb28181.platform import DeviceState, GbPlatform, QueryError
from sharpeye.ingest.transport.sip.endpoint import TransactionTimeout

from sharpeye.keys import Keys
from sharpeye.tasks import cancel_and_wait

log = logging.getLogger(__name__)

EVENTS = ("Catalog", "Alarm", "MobilePosition")


class PositionError(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Position:
    """One MobilePosition report."""

    device_id: str
    ts: datetime
    longitude: float
    latitude: float
    speed: float | None = None
    direction: float | None = None
    altitude: float | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Position:
        def number(key: str) -> float | None:
            value = data.get(key)
            return float(value) if value is not None else None

        return cls(str(data["device_id"]), datetime.fromisoformat(data["ts"]), float(data["longitude"]),
                   float(data["latitude"]), number("speed"), number("direction"), number("altitude"))  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        return {"device_id": self.device_id, "ts": self.ts.isoformat(), "longitude": self.longitude,
                "latitude": self.latitude, "speed": self.speed, "direction": self.direction,
                "altitude": self.altitude}  # fmt: skip


def position_of(body: Manscdp, zone: str, received: datetime) -> Position:
    """A MobilePosition Notify as a ``Position``; raises ``PositionError`` naming what is wrong."""
    lon, lat = body.float_field("longitude"), body.float_field("latitude")
    if lon is None or lat is None:
        raise PositionError("bad_position", "Longitude and Latitude are required numbers")
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise PositionError("bad_position", f"out of range: {lon}, {lat}")
    speed, direction = body.float_field("speed"), body.float_field("direction")
    if speed is not None and not 0 <= speed <= 1000:
        raise PositionError("bad_position", f"Speed {speed} km/h")
    if direction is not None and not 0 <= direction <= 360:
        raise PositionError("bad_position", f"Direction {direction}")
    text = body.fields.get("time", "")
    ts = local_time(text, zone) if text else received
    if ts is None:
        raise PositionError("bad_position", f"Time {text[:40]!r}")
    return Position(body.device_id, ts, lon, lat, speed, direction, body.float_field("altitude"))


class PositionStore:
    """Tracks in Redis: one sorted set per device, scored by the report's time."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, keep_s: float = 7 * 86_400) -> None:
        self.redis = redis
        self.keys = keys
        self.keep_s = keep_s

    async def add(self, positions: list[Position]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for p in positions:
            key = self.keys.gb_track(p.device_id)
            pipe.zadd(key, {json.dumps(p.to_json(), ensure_ascii=False): p.ts.timestamp()})
            pipe.zremrangebyscore(key, "-inf", p.ts.timestamp() - self.keep_s)
        await pipe.execute()

    async def latest(self, device_ids: list[str]) -> dict[str, Position]:
        """The newest stored position of each device that has one (one round trip for all)."""
        pipe = self.redis.pipeline(transaction=False)
        for device_id in device_ids:
            pipe.zrange(self.keys.gb_track(device_id), -1, -1)
        out: dict[str, Position] = {}
        for device_id, raw in zip(device_ids, await pipe.execute(), strict=True):
            if raw:
                out[device_id] = Position.from_json(json.loads(raw[0]))
        return out

    async def track(self, device_id: str, start: datetime, end: datetime, limit: int = 5000) -> list[dict[str, Any]]:
        raw = await self.redis.zrangebyscore(
            self.keys.gb_track(device_id), start.timestamp(), end.timestamp(), start=0, num=limit
        )
        return [json.loads(item) for item in raw]


@dataclass(slots=True)
class _Sub:
    due: float = 0.0  # monotonic time of the next SUBSCRIBE
    refused: int = 0  # the status it was refused with (not asked again until the device registers anew)
    granted: int = 0


@dataclass(slots=True)
class _DeviceSubs:
    registered_at: datetime | None = None
    events: dict[str, _Sub] = field(default_factory=dict)


class GbSubscriptions:
    """Keeps devices subscribed and takes their MobilePosition NOTIFYs. ``start``/``stop`` on the platform's loop."""

    def __init__(
        self,
        platform: GbPlatform,
        positions: PositionStore,
        *,
        expires_s: int = 3600,
        renew_at: float = 0.75,
        period_s: float = 5.0,
        interval_s: int = 5,
        events: tuple[str, ...] = EVENTS,
        concurrency: int = 32,
    ) -> None:
        self.platform = platform
        self.positions = positions
        self.expires_s = expires_s
        self.renew_at = renew_at
        self.period_s = period_s
        self.interval_s = interval_s
        self.events = events
        self.concurrency = concurrency
        self.stats: Counter[str] = Counter()
        self._devices: dict[str, _DeviceSubs] = {}
        self._pending: list[Position] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        platform.notify_hooks["mobileposition"] = self._on_position

    async def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._keep()), asyncio.ensure_future(self._write())]

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []
        self.platform.notify_hooks.pop("mobileposition", None)

    def state(self, device_id: str) -> dict[str, dict[str, int]]:
        subs = self._devices.get(device_id)
        return {e: {"granted": s.granted, "refused": s.refused} for e, s in (subs.events.items() if subs else [])}

    # --- subscribing --------------------------------------------------------------------------------
    async def _keep(self) -> None:
        while True:
            try:
                await self.round()
            except Exception:
                log.exception("GB/T 28181 subscription round failed")
            await asyncio.sleep(self.period_s)

    async def round(self) -> None:
        """Subscribe what is due on every registered, online device (at most ``concurrency`` at once, so a silent
        device holds up nobody)."""
        now = time.monotonic()
        due: list[tuple[str, str, _Sub]] = []
        for info in self.platform.devices_state():
            device_id = info["id"]
            if not (info["registered"] and info["online"]):
                self._devices.pop(device_id, None)
                continue
            subs = self._devices.get(device_id)
            if subs is None or subs.registered_at != info["registered_at"]:  # registered anew: start over
                subs = self._devices[device_id] = _DeviceSubs(info["registered_at"], {e: _Sub() for e in self.events})
            due += [(device_id, e, sub) for e, sub in subs.events.items() if not sub.refused and now >= sub.due]
        limit = asyncio.Semaphore(self.concurrency)

        async def one(device_id: str, event: str, sub: _Sub) -> None:
            async with limit:
                await self._subscribe(device_id, event, sub)

        await asyncio.gather(*(one(*item) for item in due))

    async def _subscribe(self, device_id: str, event: str, sub: _Sub) -> None:
        fields: list[Node] | None = [("Interval", self.interval_s)] if event == "MobilePosition" else None
        granted: dict[str, int] = {}
        try:
            limit = self.platform.settings.query_timeout_s
            status = await self.platform.subscribe(
                device_id, event, self.expires_s, fields=fields, limit_s=limit, granted=granted
            )
        except (TransactionTimeout, QueryError, KeyError) as exc:
            self.stats[f"subscribe.{event}.timeout"] += 1
            sub.due = time.monotonic() + self.period_s
            log.info("SUBSCRIBE %s to %s: %s", event, device_id, exc)
            return
        if 200 <= status < 300:
            expires = granted.get(event, self.expires_s) or self.expires_s
            sub.granted = expires
            sub.due = time.monotonic() + expires * self.renew_at
            self.stats[f"subscribe.{event}.ok"] += 1
        else:
            sub.refused = status
            self.stats[f"subscribe.{event}.refused"] += 1
            log.info("device %s refuses %s subscriptions (%d)", device_id, event, status)

    # --- mobile positions -----------------------------------------------------------------------------
    def _on_position(self, state: DeviceState, body: Manscdp) -> str | None:
        """A MobilePosition NOTIFY: queued for the store, or the reason it is refused (the platform keeps it as a
        dead letter and answers 400)."""
        try:
            position = position_of(body, state.config.timezone, datetime.now(UTC))
        except PositionError as exc:
            self.stats[f"position.{exc.reason}"] += 1
            log.info("bad MobilePosition from %s: %s", state.config.id, exc)
            return exc.reason
        self.stats["position.ok"] += 1
        if len(self._pending) < 10_000:
            self._pending.append(position)
        else:
            self.stats["position.dropped"] += 1
        self._wake.set()
        return None

    async def _write(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            batch, self._pending = self._pending, []
            if not batch:
                continue
            try:
                await self.positions.add(batch)
            except Exception:
                self.stats["position.write_failed"] += len(batch)
                log.warning("storing %d positions failed", len(batch), exc_info=True)
