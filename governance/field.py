"""People in the field: the idempotency of reports sent from a phone's offline queue, and 巡查 patrols with their
GPS track. Both live in Redis (``Keys.field_report``, ``Keys.patrol*``).

A field report carries a client-generated id (a UUID made on the phone when the report is written). The first
request to arrive claims the id ("pending"), creates the case and then records the case number under the id; a
resend of the same report finds the number and gets the same case back, so a queue that sends again after a lost
answer never makes two cases. A resend while the first is still being made is told to retry (``ReportPending``).

A patrol is started, fed batches of track points, and ended. Points are checked (WGS-84 ranges, aware times not in
the future nor before the patrol) and kept in time order; a point no later than the last one kept is skipped, so a
batch sent twice (the phone's queue again) adds nothing the second time.
"""

from __future__ import annotations

import builtins
import logging
import math
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import redis.asyncio as aioredis
from pydantic import BaseModel, Field, field_validator

from sharpeye.clock import Clock
from sharpeye.keys import Keys

log = logging.getLogger(__name__)

REPORT_ID_TTL_S = 90 * 24 * 3600  # a phone may stay offline for weeks; its resend must still find its case
PENDING_TTL_S = 120  # a report being made; after a crash the id is free again after this long
CLOCK_SLACK = timedelta(minutes=2)  # a phone's clock may run a little ahead of the hub's
MAX_POINTS_PER_BATCH = 500
MAX_POINTS_PER_PATROL = 20_000
PENDING = "pending"


class ReportPending(Exception):
    """The same report is being made by an earlier request: retry shortly."""


class PatrolError(ValueError):
    """A patrol request refused, with the reason."""


class PatrolNotFound(KeyError):
    pass


class TrackPoint(BaseModel):
    """One GPS fix of a patrol (WGS-84)."""

    at: datetime = Field(description="When the fix was taken (aware ISO 8601).")
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False, description="Latitude, degrees.")
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False, description="Longitude, degrees.")
    accuracy_m: float | None = Field(default=None, ge=0, le=100_000, allow_inf_nan=False,
                                     description="Horizontal accuracy the phone reported, metres.")  # fmt: skip

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("the time needs a time zone")
        return value


class Patrol(BaseModel):
    """A 巡查 patrol as stored and served."""

    id: str
    username: str = Field(description="The grid worker.")
    org_unit: str | None = Field(description="Their grid (their scope when they started).")
    started_at: datetime
    ended_at: datetime | None = None
    points: int = Field(default=0, description="Track points kept.")
    distance_m: float = Field(default=0.0, description="Length of the track, metres (great-circle).")
    note: str = Field(default="", description="The worker's note at the end.")
    last: TrackPoint | None = Field(default=None, description="The last point kept (the worker's last position).")


def distance_m(a: TrackPoint, b: TrackPoint) -> float:
    """Great-circle distance in metres (haversine on a 6371 km sphere)."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000 * math.asin(min(1.0, math.sqrt(h)))


class FieldStore:
    def __init__(self, redis: aioredis.Redis, keys: Keys, clock: Clock) -> None:
        self.redis = redis
        self.keys = keys
        self.clock = clock

    # --- idempotent reports ------------------------------------------------------------------------
    async def claim_report(self, client_id: str) -> str | None:
        """The case an earlier request with this id made (None: this request makes it, the id is now pending).
        Raises ReportPending while another request is making it."""
        key = self.keys.field_report(client_id)
        if await self.redis.set(key, PENDING, nx=True, ex=PENDING_TTL_S):
            return None
        found = await self.redis.get(key)
        if found is None:  # expired in between: try once more
            if await self.redis.set(key, PENDING, nx=True, ex=PENDING_TTL_S):
                return None
            found = await self.redis.get(key)
        value = found.decode() if isinstance(found, bytes) else str(found)
        if value == PENDING:
            raise ReportPending(client_id)
        return value

    async def report_made(self, client_id: str, case_id: str) -> None:
        await self.redis.set(self.keys.field_report(client_id), case_id, ex=REPORT_ID_TTL_S)

    async def report_failed(self, client_id: str) -> None:
        """The request that claimed the id failed before making a case: a resend may try again."""
        key = self.keys.field_report(client_id)
        if await self.redis.get(key) in (PENDING, PENDING.encode()):
            await self.redis.delete(key)

    # --- patrols -----------------------------------------------------------------------------------
    async def get(self, patrol_id: str) -> Patrol | None:
        raw = await self.redis.get(self.keys.patrol(patrol_id))
        return Patrol.model_validate_json(raw) if raw else None

    async def start(self, username: str, org_unit: str | None) -> Patrol:
        now = self.clock.now()
        patrol = Patrol(id=uuid.uuid4().hex, username=username, org_unit=org_unit, started_at=now)
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(self.keys.patrol(patrol.id), patrol.model_dump_json())
        pipe.zadd(self.keys.patrols, {patrol.id: now.timestamp()})
        await pipe.execute()
        log.info("patrol %s started by %s", patrol.id, username)
        return patrol

    async def own(self, patrol_id: str, username: str) -> Patrol:
        """The patrol, if it is ``username``'s (another's answers as missing)."""
        patrol = await self.get(patrol_id)
        if patrol is None or patrol.username != username:
            raise PatrolNotFound(patrol_id)
        return patrol

    async def add_points(self, patrol_id: str, username: str, points: builtins.list[TrackPoint]) -> Patrol:
        """Append a batch of points; points no later than the last one kept are skipped (resent batches)."""
        if len(points) > MAX_POINTS_PER_BATCH:
            raise PatrolError(f"{len(points)} points: at most {MAX_POINTS_PER_BATCH} per batch")
        now = self.clock.now()

        def change(patrol: Patrol) -> tuple[Patrol, builtins.list[TrackPoint]]:
            if patrol.ended_at is not None:
                raise PatrolError(f"patrol {patrol_id} ended at {patrol.ended_at.isoformat()}")
            kept, last, length = self._accept(patrol, points, now)
            if len(kept) + patrol.points > MAX_POINTS_PER_PATROL:
                raise PatrolError(f"a patrol keeps at most {MAX_POINTS_PER_PATROL} points")
            update = {"points": patrol.points + len(kept), "distance_m": round(length, 1), "last": last}
            return patrol.model_copy(update=update), kept

        return await self._update(patrol_id, username, change)

    async def _update(
        self,
        patrol_id: str,
        username: str,
        change: Callable[[Patrol], tuple[Patrol, builtins.list[TrackPoint]]],
    ) -> Patrol:
        """Read the user's patrol, apply ``change`` (the patrol to keep, the track points to append) and write it
        back in one WATCH transaction, retried when another writer came first. A change answering the patrol it was
        given writes nothing."""
        key = self.keys.patrol(patrol_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        raise PatrolNotFound(patrol_id)
                    patrol = Patrol.model_validate_json(raw)
                    if patrol.username != username:
                        raise PatrolNotFound(patrol_id)
                    updated, kept = change(patrol)
                    if updated is patrol:
                        await pipe.unwatch()
                        return patrol
                    pipe.multi()
                    pipe.set(key, updated.model_dump_json())
                    if kept:
                        pipe.rpush(self.keys.patrol_track(patrol_id), *(p.model_dump_json() for p in kept))
                    await pipe.execute()
                    return updated
                except aioredis.WatchError:
                    continue

    @staticmethod
    def _accept(
        patrol: Patrol, points: builtins.list[TrackPoint], now: datetime
    ) -> tuple[builtins.list[TrackPoint], TrackPoint | None, float]:
        for n, point in enumerate(points):
            if point.at > now + CLOCK_SLACK:
                raise PatrolError(f"point {n}: {point.at.isoformat()} is in the future")
            if point.at < patrol.started_at - CLOCK_SLACK:
                raise PatrolError(f"point {n}: {point.at.isoformat()} is before the patrol started")
        kept: builtins.list[TrackPoint] = []
        last, length = patrol.last, patrol.distance_m
        for point in sorted(points, key=lambda p: p.at):
            if last is not None and point.at <= last.at:
                continue
            if last is not None:
                length += distance_m(last, point)
            kept.append(point)
            last = point
        return kept, last, length

    async def end(self, patrol_id: str, username: str, note: str) -> Patrol:
        def change(patrol: Patrol) -> tuple[Patrol, builtins.list[TrackPoint]]:
            if patrol.ended_at is not None:
                return patrol, []  # ending twice (a resend) changes nothing
            return patrol.model_copy(update={"ended_at": self.clock.now(), "note": note}), []

        return await self._update(patrol_id, username, change)

    async def track(self, patrol_id: str) -> builtins.list[TrackPoint]:
        raw = await self.redis.lrange(self.keys.patrol_track(patrol_id), 0, -1)
        return [TrackPoint.model_validate_json(r) for r in raw]

    async def list(
        self, *, since: datetime | None = None, until: datetime | None = None, limit: int = 100
    ) -> builtins.list[Patrol]:
        """Patrols started in [since, until), newest first (the caller filters by user and scope)."""
        low = since.timestamp() if since else "-inf"
        high = f"({until.timestamp()}" if until else "+inf"
        ids = await self.redis.zrevrangebyscore(self.keys.patrols, high, low, start=0, num=max(limit * 20, 1000))
        out: builtins.list[Patrol] = []
        for raw_id in ids:
            patrol = await self.get(raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id))
            if patrol is not None:
                out.append(patrol)
        return out
