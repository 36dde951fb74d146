"""Alarm storage in Redis: atomic transitions (alarms/script.lua), reads and operator actions."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import orjson
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError
from sharpeye.alarms.alarm import Alarm, AlarmState, AlarmTransition, Incident
from sharpeye.config.rule import Severity

from sharpeye.audit import MAXLEN as AUDIT_MAXLEN
from sharpeye.keys import Keys

_SCRIPT = Path(__file__).with_name("script.lua").read_text(encoding="utf-8")

Outcome = Literal[
    "raised", "repeated", "cleared", "stale", "noop", "pending", "counting", "flapping", "missing",
    "acknowledged", "commented", "evidence", "fenced", "verdict", "not_waiting", "wrong_stage",
]  # fmt: skip
OperatorAction = Literal["acknowledge", "clear", "comment"]
TimerKind = Literal["quiet", "hold", "flap", "absence"]

EVENTS_MAXLEN = 100_000
RESET_GRACE_S = 300.0
FIXED_CACHE = 100_000


class AlarmNotFound(KeyError):
    pass


@dataclass(slots=True)
class Transition:
    """The result of one atomic step: what happened and to which alarm.

    Not ``frozen``, like ``Apply``: one is made per signal, and a frozen dataclass's ``__init__`` (one
    ``object.__setattr__`` per field) cost several times more on the MQTT path. Treat both as immutable."""

    outcome: Outcome
    alarm_id: str


@dataclass(slots=True)
class Apply:
    """One signal, ready for the script (not ``frozen``: see ``Transition``)."""

    fingerprint: str
    action: Literal["raise", "clear", "heard"]
    order: int
    ts_epoch: float
    doc: dict[str, Any]
    actor: str
    value: Any = None
    evidence: Sequence[str] = ()
    quiet_s: float | None = None
    hold_s: float = 0
    count_n: int = 0
    count_window_s: float = 0
    absent_s: float = 0
    flap_n: int = 0
    flap_window_s: float = 300
    silenced: str = ""
    inhibitors: Sequence[str] = ()
    incident_group: str = ""
    incident_window_s: float = 0
    rank: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


def _iso(when: datetime) -> str:
    return when.isoformat()


class AlarmStore:
    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._sha: str | None = None
        self._fixed_cache: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}

    async def _sha1(self) -> str:
        if self._sha is None:
            self._sha = str(await self.redis.script_load(_SCRIPT))
        return self._sha

    def _common(self, now: datetime) -> dict[str, Any]:
        k = self.keys
        return {
            "now_iso": _iso(now),
            "now_epoch": now.timestamp(),
            "alarm_prefix": k.alarm_prefix,
            "history_prefix": k.alarm_history_prefix,
            "incident_prefix": k.incident_prefix,
            "incident_open_prefix": k.incident_open_prefix,
            "k_by_time": k.alarms_by_time,
            "k_open": k.alarms_open,
            "k_events": k.alarm_events,
            "k_timers": k.alarm_timers,
            "k_live": k.alarm_live,
            "k_counts": k.alarm_counts,
            "k_silenced": k.alarms_silenced,
            "k_incidents": k.incidents,
            "maxlen": EVENTS_MAXLEN,
            "reset_grace": RESET_GRACE_S,
            "new_id": uuid.uuid4().hex,
            "incident_id": uuid.uuid4().hex,
        }

    def _item(self, item: Apply) -> dict[str, Any]:
        """The per-signal parameters (the batch's common ones are sent once)."""
        params = self._fixed(item).copy()
        params["name"] = item.fingerprint
        params["action"] = item.action
        params["order"] = item.order
        params["order_text"] = str(item.order)
        params["ts"] = item.ts_epoch
        params["ts_text"] = repr(item.ts_epoch)
        params["value"] = orjson.dumps(item.value).decode()
        params["evidence"] = orjson.dumps(list(item.evidence)).decode() if item.evidence else "[]"
        if item.silenced:
            params["silenced"] = item.silenced
        if item.extra:
            params.update(item.extra)
            return {key: value for key, value in params.items() if value is not None}
        return params

    def _fixed(self, item: Apply) -> dict[str, Any]:
        """The parameters that stay the same from one signal of a rule and device channel to the next, cached
        (the engine hands the same ``doc`` object for them until the device or rule changes)."""
        key = (
            item.doc, item.actor, item.quiet_s, item.hold_s, item.count_n, item.count_window_s, item.absent_s,
            item.flap_n, item.flap_window_s, tuple(item.inhibitors), item.incident_group, item.incident_window_s,
            item.rank,
        )  # fmt: skip
        found = self._fixed_cache.get(item.fingerprint)
        if found is not None and found[0] == key:
            return found[1]
        params: dict[str, Any] = {
            "doc": orjson.dumps(item.doc).decode(),
            "actor": item.actor,
            "quiet": item.quiet_s,
            "flap_n": item.flap_n,
            "flap_window": item.flap_window_s,
            "rank": item.rank,
            "severity": item.doc.get("severity", ""),
            "site": item.doc.get("site", ""),
            "org_unit": item.doc.get("org_unit", ""),
        }
        # Optional features only when used; JSON null would be a truthy userdata in Lua.
        if item.hold_s:
            params["hold"] = item.hold_s
        if item.count_n:
            params["count_n"], params["count_window"] = item.count_n, item.count_window_s
        if item.absent_s:
            params["absent_s"] = item.absent_s
        if item.inhibitors:
            params["inhibitors"] = [self.keys.fingerprint(f) for f in item.inhibitors]
        if item.incident_group:
            params["incident_group"], params["incident_window"] = item.incident_group, item.incident_window_s
        params = {name: value for name, value in params.items() if value is not None}
        if len(self._fixed_cache) >= FIXED_CACHE:
            self._fixed_cache.clear()
        self._fixed_cache[item.fingerprint] = (key, params)
        return params

    async def _run(
        self, calls: list[tuple[str, list[str], dict[str, Any]]], audit: dict[str, str] | None = None
    ) -> list[Any]:
        """Run script entry points in one pipeline (each call is atomic; order is kept). ``audit``: an audit entry
        (``sharpeye.audit.entry``) appended in the same round trip, after the calls."""
        sha = await self._sha1()
        for attempt in range(2):
            pipe = self.redis.pipeline(transaction=False)
            for entry, keys, params in calls:
                pipe.evalsha(sha, len(keys), *keys, entry, orjson.dumps(params))
            if audit is not None:
                pipe.xadd(self.keys.audit, audit, maxlen=AUDIT_MAXLEN, approximate=True)
            try:
                return list(await pipe.execute())[: len(calls)]
            except NoScriptError:
                if attempt:
                    raise
                self._sha = None  # Redis restarted without its script cache: load again and retry
                sha = await self._sha1()
        raise AssertionError("unreachable")

    async def apply_many(
        self, items: Sequence[Apply], now: datetime, fence: tuple[str, str] | None = None
    ) -> list[Transition]:
        """Apply signals in order, in one atomic script call (one round trip for the whole batch).

        ``fence`` (lease key, the value this node holds): applied only while the lease still holds that value;
        otherwise nothing changes and every signal answers ``fenced`` (``ingest/ownership.py``)."""
        if not items:
            return []
        keys: list[str] = []
        for item in items:
            keys += [self.keys.fingerprint(item.fingerprint), self.keys.fingerprint_window(item.fingerprint)]
        common = self._common(now)
        if fence is not None:
            keys.append(fence[0])
            common["fence"] = fence[1]
        payload = {"common": common, "items": [self._item(i) for i in items]}
        (results,) = await self._run([("batch", keys, payload)])
        return [Transition(r[0].decode(), r[1].decode()) for r in results]

    async def due_timers(self, now: datetime, limit: int = 500) -> list[tuple[TimerKind, str]]:
        raw = await self.redis.zrangebyscore(self.keys.alarm_timers, "-inf", now.timestamp(), start=0, num=limit)
        out: list[tuple[TimerKind, str]] = []
        for member in raw:
            kind, _, name = member.decode().partition("|")
            out.append((kind, name))
        return out

    async def fire_timers(self, timers: Sequence[tuple[TimerKind, str]], now: datetime) -> list[Transition]:
        calls = []
        for kind, name in timers:
            params = self._common(now)
            params.update(kind=kind, name=name, actor=f"timer:{kind}")
            calls.append(("fire", [self.keys.fingerprint(name)], params))
        if not calls:
            return []
        return [Transition(r[0].decode(), r[1].decode()) for r in await self._run(calls)]

    async def act(
        self,
        alarm_id: str,
        action: OperatorAction | Literal["unsilence", "evidence", "verdict", "step", "owner"],
        actor: str,
        now: datetime,
        note: str = "",
        extra: dict[str, Any] | None = None,
        fingerprint: str | None = None,
        audit: dict[str, str] | None = None,
    ) -> Transition:
        """An operator's (or the system's) action on one alarm. ``fingerprint``: the alarm's, when the caller has
        read the alarm (one round trip less; an alarm gone meanwhile then answers the outcome ``missing``).
        ``audit``: the action's audit entry (``sharpeye.audit.entry``), appended in the same round trip."""
        k = self.keys
        if fingerprint is None:
            raw_fp = await self.redis.hget(k.alarm(alarm_id), "fingerprint")
            if raw_fp is None:
                raise AlarmNotFound(alarm_id)
            fingerprint = raw_fp.decode()
        name = fingerprint
        params = self._common(now)
        params.update(id=alarm_id, name=name, action=action, actor=actor, note=note, **(extra or {}))
        (result,) = await self._run([("act", [k.alarm(alarm_id), k.fingerprint(name)], params)], audit)
        return Transition(result[0].decode(), result[1].decode())

    async def judge(
        self,
        alarm_id: str,
        verdict: str,
        actor: str,
        now: datetime,
        note: str = "",
        *,
        stage: str = "",
        due: float | None = None,
        audit: dict[str, str] | None = None,
        again: bool = False,
    ) -> Transition:
        """A verdict (研判) on an alarm waiting for one, in one atomic script call (one round trip): the alarm taken
        off the waiting list (``Keys.verification``, ``verification_due``, ``verification_waiting``), or with ``due``
        handed to the supervisors (its escalation time then), the verdict recorded as ``act(..., "verdict")`` records
        it (history, notification log) and ``audit`` (``sharpeye.audit.entry``) appended. ``stage``: the stage the
        alarm must be in ("" for any). The outcome: ``verdict`` (``alarm_id`` holds the alarm's state),
        ``not_waiting``, ``wrong_stage`` (``alarm_id`` holds the stage it is in) or ``missing`` (the alarm is gone:
        its waiting state is dropped); only ``verdict`` changed anything (else than that drop). ``again``: the same
        verdict already recorded by the same ``actor`` with the same ``note`` (a call retried after its reply was
        lost) answers ``again`` (``alarm_id`` holds the alarm's state) and records nothing."""
        k = self.keys
        params = self._common(now)
        params.update(id=alarm_id, action="verdict", verdict=verdict, actor=actor, note=note, stage=stage)
        if again:
            params["again"] = True
        if due is not None:
            params["due"] = repr(due)
        if audit is not None:
            params["audit"] = [part for pair in audit.items() for part in pair]
            params["audit_maxlen"] = AUDIT_MAXLEN
        keys = [k.alarm(alarm_id), k.verification(alarm_id), k.verification_due, k.verification_waiting, k.audit]
        (result,) = await self._run([("judge", keys, params)])
        return Transition(result[0].decode(), result[1].decode())

    async def counts(self) -> dict[AlarmState, int]:
        """Alarms in each state (kept by the transition script, so reading it costs one command)."""
        raw = await self.redis.hgetall(self.keys.alarm_counts)
        counts = dict.fromkeys(AlarmState, 0)
        for state, n in raw.items():
            counts[AlarmState(state.decode())] = int(n)
        return counts

    async def exists(self, alarm_id: str) -> bool:
        return bool(await self.redis.exists(self.keys.alarm(alarm_id)))

    async def get(self, alarm_id: str) -> Alarm | None:
        raw = await self.redis.hgetall(self.keys.alarm(alarm_id))
        return _alarm(raw) if raw else None

    async def get_many(self, alarm_ids: Sequence[str]) -> list[Alarm]:
        pipe = self.redis.pipeline(transaction=False)
        for alarm_id in alarm_ids:
            pipe.hgetall(self.keys.alarm(alarm_id))
        return [_alarm(raw) for raw in await pipe.execute() if raw]

    async def history(self, alarm_id: str) -> list[AlarmTransition]:
        entries = await self.redis.lrange(self.keys.alarm_history(alarm_id), 0, -1)
        return [AlarmTransition.model_validate_json(e) for e in entries]

    async def silenced_ids(self) -> list[str]:
        return [m.decode() for m in await self.redis.smembers(self.keys.alarms_silenced)]

    async def incident(self, incident_id: str) -> Incident | None:
        raw = await self.redis.hgetall(self.keys.incident_prefix + incident_id)
        if not raw:
            return None
        members = sorted(
            m.decode() for m in await self.redis.smembers(f"{self.keys.incident_prefix}{incident_id}:members")
        )
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        return Incident(
            id=fields["id"],
            site=fields["site"],
            org_unit=fields["org_unit"],
            severity=Severity(fields["severity"]),
            first_seen=datetime.fromisoformat(fields["first_seen"]),
            last_seen=datetime.fromisoformat(fields["last_seen"]),
            alarm_ids=members,
        )

    async def page(
        self,
        *,
        match: Any = None,
        limit: int = 100,
        offset: int = 0,
        open_only: bool = False,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> tuple[list[Alarm], int]:
        """Newest-changed first. ``match(alarm) -> bool`` filters; reads in pages until ``limit`` match.

        ``total`` is the number of alarms in the time range of the index searched (before ``match``)."""
        index = self.keys.alarms_open if open_only else self.keys.alarms_by_time
        low = since.timestamp() if since else "-inf"
        high = until.timestamp() if until else "+inf"
        total = int(await self.redis.zcount(index, low, high))
        out: list[Alarm] = []
        skipped = 0
        cursor = 0
        # First read just what the page needs (reading 200 alarms for a page of 50 made the list four times dearer,
        # bench/alarm_handling.py); more, in growing reads, only when ``match`` leaves some out.
        page = limit + offset
        while len(out) < limit and cursor < total:
            ids = await self.redis.zrevrangebyscore(index, high, low, start=cursor, num=page)
            cursor += page
            page = min(max(page * 4, 200), 2000)
            if not ids:
                break
            for alarm in await self.get_many([i.decode() for i in ids]):
                if match is not None and not match(alarm):
                    continue
                if skipped < offset:
                    skipped += 1
                    continue
                out.append(alarm)
                if len(out) >= limit:
                    break
        return out, total


def alarm_from_hash(raw: dict[bytes, bytes]) -> Alarm:
    """An alarm from its Redis hash (as ``HGETALL`` answers it)."""
    return _alarm(raw)


def _alarm(raw: dict[bytes, bytes]) -> Alarm:
    doc = orjson.loads(raw[b"doc"])
    doc["id"] = raw[b"id"].decode()
    cleared = raw.get(b"cleared_at")
    acked_by = raw.get(b"acked_by")
    silenced = raw.get(b"silenced", b"").decode()
    return Alarm(
        id=doc["id"],
        fingerprint=raw[b"fingerprint"].decode(),
        rule_id=doc["rule_id"],
        device_id=doc["device_id"],
        channel=doc.get("channel"),
        title=doc["title"],
        severity=doc["severity"],
        category=doc["category"],
        state=AlarmState(raw[b"state"].decode()),
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
        silenced=silenced or None,
        flapping=raw.get(b"flapping") == b"1",
        incident=(raw.get(b"incident") or b"").decode() or None,
        verdict=(raw.get(b"verdict") or b"").decode() or None,
        owner=(raw.get(b"owner") or b"").decode() or None,
        steps=orjson.loads(raw.get(b"steps") or b"{}"),
    )
