"""Alarm storage in Redis: atomic transitions (alarms/script.lua), reads and operator actions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import orjson
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from alarms.alarm import Alarm, AlarmState, AlarmTransition
from sharpeye.keys import Keys

_SCRIPT = Path(__file__).with_name("script.lua").read_text(encoding="utf-8")

Outcome = Literal["raised", "repeated", "cleared", "stale", "noop", "pending", "missing", "acknowledged", "commented"]
OperatorAction = Literal["acknowledge", "clear", "comment"]

EVENTS_MAXLEN = 100_000
RESET_GRACE_S = 300.0


class AlarmNotFound(KeyError):
    pass


@dataclass(frozen=True, slots=True)
class Transition:
    """The result of one atomic step: what happened and to which alarm."""

    outcome: Outcome
    alarm_id: str


@dataclass(frozen=True, slots=True)
class Apply:
    """One signal, ready for the script (see ``AlarmStore.apply_many``)."""

    fingerprint: str
    action: Literal["raise", "clear"]
    order: float
    ts_epoch: float
    doc: dict[str, Any]
    actor: str
    value: Any
    evidence: Sequence[str]
    quiet_s: float | None


def _iso(when: datetime) -> str:
    return when.isoformat()


class AlarmStore:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._sha: str | None = None

    async def _load(self) -> str:
        if self._sha is None:
            self._sha = str(await self.redis.script_load(_SCRIPT))
        return self._sha

    def _apply_args(self, item: Apply, now: datetime) -> tuple[list[str], list[Any]]:
        k = self.keys
        keys = [
            k.fingerprint(item.fingerprint),
            k.alarms_by_time,
            k.alarms_open,
            k.alarm_events,
            k.alarm_timers,
            k.alarm_live,
            k.alarm_counts,
        ]
        new_id = uuid.uuid4().hex
        args: list[Any] = [
            "apply",
            item.action,
            repr(item.order),
            repr(item.ts_epoch),
            new_id,
            _iso(now),
            repr(now.timestamp()),
            orjson.dumps({**item.doc, "id": new_id}).decode(),
            k.alarm_prefix,
            k.alarm_history_prefix,
            item.actor,
            orjson.dumps(item.value).decode(),
            orjson.dumps(list(item.evidence)).decode(),
            "" if item.quiet_s is None else repr(item.quiet_s),
            repr(RESET_GRACE_S),
            str(EVENTS_MAXLEN),
            item.fingerprint,
        ]
        return keys, args

    async def apply_many(self, items: Sequence[Apply], now: datetime) -> list[Transition]:
        """Apply signals in one pipeline; each is its own atomic script run, in the given order."""
        if not items:
            return []
        sha = await self._load()
        for attempt in range(2):
            pipe = self.redis.pipeline(transaction=False)
            for item in items:
                keys, args = self._apply_args(item, now)
                pipe.evalsha(sha, len(keys), *keys, *args)
            try:
                results = await pipe.execute()
                break
            except NoScriptError:
                if attempt:
                    raise
                self._sha = None  # Redis restarted without its script cache: load again and retry
                sha = await self._load()
        return [Transition(r[0].decode(), r[1].decode()) for r in results]

    async def sweep_quiet(self, now: datetime, limit: int = 500) -> list[Transition]:
        """Clear alarms whose quiet period ended by ``now``."""
        k = self.keys
        due = await self.redis.zrangebyscore(k.alarm_timers, "-inf", now.timestamp(), start=0, num=limit)
        if not due:
            return []
        sha = await self._load()
        pipe = self.redis.pipeline(transaction=False)
        for raw in due:
            name = raw.decode()
            keys = [
                k.fingerprint(name),
                k.alarms_by_time,
                k.alarms_open,
                k.alarm_events,
                k.alarm_timers,
                k.alarm_live,
                k.alarm_counts,
            ]
            args = [
                "quiet",
                name,
                _iso(now),
                repr(now.timestamp()),
                k.alarm_prefix,
                k.alarm_history_prefix,
                str(EVENTS_MAXLEN),
            ]
            pipe.evalsha(sha, len(keys), *keys, *args)
        results = await pipe.execute()
        return [Transition(r[0].decode(), r[1].decode()) for r in results]

    async def act(self, alarm_id: str, action: OperatorAction, actor: str, now: datetime, note: str = "") -> Transition:
        k = self.keys
        raw_fp = await self.redis.hget(k.alarm(alarm_id), "fingerprint")
        if raw_fp is None:
            raise AlarmNotFound(alarm_id)
        sha = await self._load()
        keys = [
            k.alarm(alarm_id),
            k.alarm_history(alarm_id),
            k.fingerprint(raw_fp.decode()),
            k.alarms_by_time,
            k.alarms_open,
            k.alarm_events,
            k.alarm_timers,
            k.alarm_live,
            k.alarm_counts,
        ]
        args = ["act", action, alarm_id, _iso(now), repr(now.timestamp()), actor, note, str(EVENTS_MAXLEN)]
        result = await self.redis.evalsha(sha, len(keys), *keys, *args)
        return Transition(result[0].decode(), result[1].decode())

    async def counts(self) -> dict[AlarmState, int]:
        """Alarms in each state (kept by the transition script, so reading it costs one command)."""
        raw = await self.redis.hgetall(self.keys.alarm_counts)
        counts = dict.fromkeys(AlarmState, 0)
        for state, n in raw.items():
            counts[AlarmState(state.decode())] = int(n)
        return counts

    async def get(self, alarm_id: str) -> Alarm | None:
        raw = await self.redis.hgetall(self.keys.alarm(alarm_id))
        return _alarm(raw) if raw else None

    async def history(self, alarm_id: str) -> list[AlarmTransition]:
        entries = await self.redis.lrange(self.keys.alarm_history(alarm_id), 0, -1)
        return [AlarmTransition.model_validate_json(e) for e in entries]

    async def page(
        self,
        *,
        states: set[AlarmState] | None = None,
        limit: int = 100,
        offset: int = 0,
        open_only: bool = False,
    ) -> tuple[list[Alarm], int]:
        """Newest-changed first. Filtering by state reads in pages until ``limit`` alarms match."""
        index = self.keys.alarms_open if open_only else self.keys.alarms_by_time
        total = int(await self.redis.zcard(index))
        out: list[Alarm] = []
        skipped = 0
        cursor = 0
        page = max(limit, 100)
        while len(out) < limit and cursor < total:
            ids = await self.redis.zrevrange(index, cursor, cursor + page - 1)
            cursor += page
            if not ids:
                break
            pipe = self.redis.pipeline(transaction=False)
            for alarm_id in ids:
                pipe.hgetall(self.keys.alarm(alarm_id.decode()))
            for raw in await pipe.execute():
                if not raw:
                    continue
                alarm = _alarm(raw)
                if states and alarm.state not in states:
                    continue
                if skipped < offset:
                    skipped += 1
                    continue
                out.append(alarm)
                if len(out) >= limit:
                    break
        return out, total

    async def events_since(self, last_id: str = "0-0", count: int = 100) -> list[tuple[str, dict[str, str]]]:
        entries = await self.redis.xrange(
            self.keys.alarm_events, min=f"({last_id}" if last_id != "0-0" else "-", count=count
        )
        return [(eid.decode(), {k.decode(): v.decode() for k, v in fields.items()}) for eid, fields in entries]


def _alarm(raw: dict[bytes, bytes]) -> Alarm:
    doc = orjson.loads(raw[b"doc"])
    state = AlarmState(raw[b"state"].decode())
    cleared = raw.get(b"cleared_at")
    acked_by = raw.get(b"acked_by")
    return Alarm(
        id=doc["id"],
        fingerprint=raw[b"fingerprint"].decode(),
        rule_id=doc["rule_id"],
        device_id=doc["device_id"],
        channel=doc.get("channel"),
        title=doc["title"],
        severity=doc["severity"],
        category=doc["category"],
        state=state,
        first_seen=datetime.fromisoformat(raw[b"first_seen"].decode()),
        last_seen=datetime.fromisoformat(raw[b"last_seen"].decode()),
        count=int(raw[b"count"]),
        site=doc["site"],
        org_unit=doc["org_unit"],
        place=doc.get("place", ""),
        cameras=doc.get("cameras", []),
        evidence=orjson.loads(raw.get(b"evidence", b"[]")),
        cleared_at=datetime.fromisoformat(cleared.decode()) if cleared else None,
        acknowledged_by=acked_by.decode() if acked_by else None,
        value=orjson.loads(raw[b"value"]) if b"value" in raw else None,
    )
