"""Silences and maintenance windows: operator-made matchers that raise alarms without notifying them.

A silence matches alarms by equality on any of ``rule_id``, ``device_id``, ``channel``, ``category``,
``org_unit`` and ``severity``, between ``starts_at`` and ``ends_at``. A silenced alarm is still recorded
(and shown, flagged), but no notification is sent and no case opened; if it is still active when the
silence ends, it is notified then, once. Silences live in Redis, so every node and every restart sees
the same ones; creating and deleting them is audited.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timedelta
from typing import Any, Literal

import orjson
import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sharpeye.clock import Clock
from sharpeye.keys import Keys
from sharpeye.redis_connection import log_retry

log = logging.getLogger(__name__)

KEEP_ENDED = timedelta(days=7)  # an ended silence stays listed (for the record) this long, then is deleted
PRUNE_EVERY_S = 3600.0

MatchKey = Literal["rule_id", "device_id", "channel", "category", "org_unit", "severity"]


class SilenceSpec(BaseModel):
    """What an operator asks for."""

    model_config = ConfigDict(extra="forbid")

    matchers: dict[MatchKey, str] = Field(min_length=1, description="All must equal the alarm's fields.")
    starts_at: datetime = Field(description="Start (aware).")
    ends_at: datetime = Field(description="End (aware), after the start.")
    reason: str = Field(min_length=1, max_length=500, description="Why: required, shown to every operator.")
    kind: Literal["silence", "maintenance"] = Field(default="silence", description="A maintenance window or not.")

    @model_validator(mode="after")
    def _times(self) -> SilenceSpec:
        if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
            raise ValueError("starts_at and ends_at need a time zone")
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class Silence(SilenceSpec):
    id: str
    created_by: str
    created_at: datetime

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, fields: dict[str, Any]) -> bool:
        return all(str(fields.get(key)) == value for key, value in self.matchers.items())


class SilenceStore:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self.cache: list[Silence] = []

    async def refresh(self) -> list[Silence]:
        raw = await self.redis.hgetall(self.keys.silences)
        silences: list[Silence] = []
        for key, value in raw.items():
            try:
                silences.append(Silence.model_validate_json(value))
            except ValueError as exc:  # one bad record must not hide every other silence (nor stop the sweep)
                log.error("silence %s is not a valid record, ignored: %s", key.decode(errors="replace"), exc)
        self.cache = sorted(silences, key=lambda s: s.starts_at)
        return self.cache

    def matching(self, fields: dict[str, Any], now: datetime) -> Silence | None:
        for silence in self.cache:
            if silence.active(now) and silence.matches(fields):
                return silence
        return None

    async def create(self, spec: SilenceSpec, actor: str, now: datetime) -> Silence:
        silence = Silence(**spec.model_dump(), id=uuid.uuid4().hex[:12], created_by=actor, created_at=now)
        await self.redis.hset(self.keys.silences, silence.id, silence.model_dump_json())
        await self.refresh()
        return silence

    async def update(self, silence_id: str, spec: SilenceSpec) -> Silence | None:
        """Change a silence's matchers, window or reason (its author and id stay)."""
        current = await self.get(silence_id)
        if current is None:
            return None
        updated = Silence(**spec.model_dump(), id=current.id, created_by=current.created_by,
                          created_at=current.created_at)  # fmt: skip
        await self.redis.hset(self.keys.silences, silence_id, updated.model_dump_json())
        await self.refresh()
        return updated

    async def get(self, silence_id: str) -> Silence | None:
        raw = await self.redis.hget(self.keys.silences, silence_id)
        return Silence.model_validate_json(raw) if raw else None

    async def expire(self, silence_id: str, now: datetime) -> Silence | None:
        """End a silence now (kept for the record)."""
        silence = await self.get(silence_id)
        if silence is None:
            return None
        ended = silence.model_copy(update={"ends_at": min(silence.ends_at, now)})
        if ended.ends_at <= ended.starts_at:  # ended before it began: it never silenced anything (still a valid record)
            ended = ended.model_copy(update={"starts_at": now - timedelta(microseconds=1), "ends_at": now})
        await self.redis.hset(self.keys.silences, silence_id, ended.model_dump_json())
        await self.refresh()
        return ended

    async def prune(self, older_than: datetime) -> int:
        """Delete silences that ended before ``older_than``."""
        await self.refresh()
        old = [s.id for s in self.cache if s.ends_at < older_than]
        if old:
            await self.redis.hdel(self.keys.silences, *old)
            await self.refresh()
        return len(old)

    async def run_pruning(self, clock: Clock, keep: timedelta = KEEP_ENDED, interval_s: float = PRUNE_EVERY_S) -> None:
        """Delete silences that ended more than ``keep`` ago, at once and then every ``interval_s`` (cancel to
        stop), so that ended silences do not pile up in Redis (every node reads them all at every sweep)."""
        while True:
            try:
                pruned = await self.prune(clock.now() - keep)
                if pruned:
                    log.info("deleted %d silences that ended more than %s ago", pruned, keep)
            except Exception as exc:
                log_retry(log, "pruning ended silences", exc)
            await asyncio.sleep(interval_s)


def alarm_fields(doc: dict[str, Any]) -> dict[str, Any]:
    return {key: doc.get(key) for key in ("rule_id", "device_id", "channel", "category", "org_unit", "severity")}


def dumps(silence: Silence) -> bytes:
    return orjson.dumps(silence.model_dump(mode="json"))
