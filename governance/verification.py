"""研判 before dispatch: alarms of rules that ask for it wait for an operator's verdict before they become cases.

An alarm whose rule has ``verification`` is held by the intake instead of opening a case (``hold``). An operator
gives the verdict (``verdict``): 确认 ``confirm`` has the case opened (with the operator's note), 误报 ``false_alarm``
(with a reason from ``governance.false_alarm_reasons``) stops it at the operator, acknowledged, counted in
``false_alarms`` and never seen by a department or an indicator, and 转人工复核 ``review`` hands it to a supervisor.
Every final verdict (confirmed or false) is kept in ``verdicts`` for the accuracy report; both tables are written by
the alarm intake from the verdict's notification, not by the verdict request (``VerificationService.record``). The
case of a confirmed alarm is opened the same way: the verdict request (or the time limit) takes the alarm off the
waiting list, writes the verdict into the alarm's record and its notification log and appends its audit entry in one
atomic script call (``AlarmStore.judge``), and the alarm intake, reading that log in its
consumer group, opens the case (``AlarmIntake.handle``) and acknowledges the entry only after the case's commit. A
hub stopped between the verdict and the case reads the entry again when it comes back; the case's alarm link makes
the second attempt a no-op, so the case opens exactly once.
An alarm not judged within ``within_s`` escalates to the supervisors; past ``supervisor_within_s`` the case opens
anyway (``on_timeout: open_case``) or the alarm keeps waiting (``keep_waiting``). Each step is written into the
alarm's history and its notification log (type ``verdict``), so uplinks and channels hear of it.

State lives in Redis (``Keys.verification``: a hash per waiting alarm, ``Keys.verification_due``: escalation
times); a verdict removes it in the same atomic script call that records the verdict, so two operators or two nodes
never both act on one alarm, and a hub stopped (or Redis failing) half-way leaves no alarm neither waiting nor judged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, Field
from redis.exceptions import RedisError
from sharpeye.alarms.alarm import Alarm
from sharpeye.alarms.store import AlarmStore, alarm_from_hash
from sharpeye.config.rule import Verification
from sharpeye.config.site import SiteConfig
from sharpeye.governance.store import Base, Database, FalseAlarmRow, VerdictRow
from sqlalchemy import Insert, func, select
from sqlalchemy.dialects import postgresql, sqlite

from sharpeye.clock import Clock
from sharpeye.keys import Keys
from sharpeye.redis_connection import log_retry
from sharpeye.role import Role

log = logging.getLogger(__name__)

Verdict = Literal["confirm", "false_alarm", "review"]
Stage = Literal["operator", "supervisor"]
GroupBy = Literal["camera", "rule", "zone", "hour", "site", "reason"]
PrecisionBy = Literal["camera", "rule", "zone"]
SUPERVISORS = frozenset({Role.supervisor, Role.admin})
FINAL_VERDICTS = ("confirmed", "false_alarm")  # as the alarm's record spells them
TIMEOUT_NOTE = "研判超时，自动立案"  # the time limit's confirmation (by ``SYSTEM_ACTOR``)
SYSTEM_ACTOR = "system:verification"

# Hold an alarm for its verdict, once: its state, its escalation time and its place in the waiting list together (a
# hub stopped half-way must not leave a state that is neither listed nor due, which a redelivery would not repair).
# KEYS: the verification hash, the escalation times, the waiting set; ARGV: since, due, rule, the alarm's id.
_HOLD = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'stage', 'operator', 'since', ARGV[1], 'due', ARGV[2], 'rule', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[4])
redis.call('SADD', KEYS[3], ARGV[4])
return 1
"""

# The waiting list: every waiting alarm's times, oldest first, and the alarm hashes of the first ARGV[3], in one
# call (a pipeline of one HMGET per waiting alarm cost the hub about 25 µs of reply handling each, per list call).
# KEYS[1]: the waiting set; ARGV[1], ARGV[2]: the verification and alarm key prefixes (ours); ARGV[3]: the page.
_WAITING = """
local rows = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local v = redis.call('HMGET', ARGV[1] .. id, 'since', 'due', 'stage', 'rule')
  if v[1] then rows[#rows + 1] = {id, v[1], v[2] or '', v[3] or '', v[4] or '', tonumber(v[1])} end
end
table.sort(rows, function(a, b) if a[6] ~= b[6] then return a[6] < b[6] end return a[1] < b[1] end)
local flat, docs = {}, {}
for i, row in ipairs(rows) do
  for j = 1, 5 do flat[#flat + 1] = row[j] end
  if i <= tonumber(ARGV[3]) then docs[i] = redis.call('HGETALL', ARGV[2] .. row[1]) end
end
return {flat, docs}
"""


class VerificationError(ValueError):
    """A verdict that cannot be given: the message says why (HTTP 409 or 422 at the API; 503 when Redis failed: the
    verdict was then recorded entirely or not at all, and unless it was the alarm still waits)."""

    def __init__(self, message: str, *, conflict: bool = False, unavailable: bool = False) -> None:
        super().__init__(message)
        self.conflict = conflict
        self.unavailable = unavailable


class Waiting(BaseModel):
    """An alarm awaiting its verdict."""

    alarm_id: str
    stage: Stage = Field(description="operator, or supervisor (escalated or handed on).")
    since: datetime = Field(description="When it started waiting (UTC).")
    due: datetime | None = Field(description="When it escalates, or opens its case (None: it waits for ever).")
    rule_id: str
    alarm: Alarm | None = None


class FalseAlarmCount(BaseModel):
    key: str = Field(description="The camera/device, rule, zone (device/zone), hour (0-23, local), org unit or reason.")
    count: int


class PrecisionCount(BaseModel):
    key: str = Field(description="The camera/device, rule or zone (device/zone).")
    confirmed: int = Field(description="Alarms confirmed (确认, or opened when the time limit passed).")
    false_alarms: int = Field(description="Alarms judged false (误报).")
    precision: float = Field(description="confirmed / (confirmed + false_alarms), 0..1.")


@dataclass(frozen=True, slots=True)
class Outcome:
    verdict: Verdict
    case_pending: bool = False  # confirm: the alarm intake opens the case (announced on the live alarm channel)


class VerificationService:
    def __init__(
        self,
        site: SiteConfig,
        redis: aioredis.Redis,
        keys: Keys,
        alarms: AlarmStore,
        db: Database,
        clock: Clock,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.site = site
        self.redis = redis
        self.keys = keys
        self.alarms = alarms
        self.db = db
        self.clock = clock
        self.zone = ZoneInfo(site.site.timezone)
        self._hold = redis.register_script(_HOLD)
        self._waiting = redis.register_script(_WAITING)
        self.escalated = 0
        self.timed_out = 0
        self.recorded = 0  # final verdicts written to SQL (``record``)
        registry = registry if registry is not None else CollectorRegistry()  # the hub's; a private one otherwise
        self.recorded_total = Counter("sharpeye_verdicts_recorded_total",
                                      "Final verdicts (研判) written to the SQL record, by verdict (a redelivered "
                                      "notification counts again)", ["verdict"], registry=registry)  # fmt: skip

    def policy(self, rule_id: str) -> Verification | None:
        for rule in self.site.rules:
            if rule.id == rule_id:
                return rule.verification
        return None

    # --- holding ------------------------------------------------------------------------------------------
    async def hold(self, alarm: Alarm, policy: Verification) -> bool:
        """The alarm waits for its verdict; False if it already does (a redelivered notification)."""
        now = self.clock.now()
        due = now.timestamp() + policy.within_s
        keys = [self.keys.verification(alarm.id), self.keys.verification_due, self.keys.verification_waiting]
        if not await self._hold(keys=keys, args=[repr(now.timestamp()), repr(due), alarm.rule_id, alarm.id]):
            return False
        await self.alarms.act(alarm.id, "verdict", SYSTEM_ACTOR, now, note=f"研判 within {policy.within_s:.0f} s",
                              extra={"verdict": "pending"}, fingerprint=alarm.fingerprint)  # fmt: skip
        log.info("alarm %s waits for a verdict (rule %s)", alarm.id, alarm.rule_id)
        return True

    async def waiting(self, limit: int = 500, match: Callable[[Alarm], bool] | None = None) -> list[Waiting]:
        """Alarms awaiting a verdict, oldest first, at most ``limit`` (of those whose alarm ``match``es, when
        given). The times of all waiting alarms and the first page's alarms are read in one script call; the
        alarms of later pages only when ``match`` left some of the first out (reading every waiting alarm's
        document on each call was most of the room's API time, bench/alarm_handling.py)."""
        flat, docs = await self._waiting(keys=[self.keys.verification_waiting],
                                         args=[self.keys.verification(""), self.keys.alarm(""), limit])  # fmt: skip
        pending = [(float(flat[i + 1]), flat[i].decode(), flat[i + 2], flat[i + 3], flat[i + 4])
                   for i in range(0, len(flat), 5)]  # fmt: skip
        first = {alarm.id: alarm for alarm in (_alarm_of(doc) for doc in docs) if alarm is not None}
        out: list[Waiting] = []
        start, chunk = 0, limit
        while start < len(pending) and len(out) < limit:
            part = pending[start : start + chunk]
            # the first page's alarms came with the times; more only when ``match`` left some out
            alarms = first if start == 0 else {a.id: a for a in await self.alarms.get_many([p[1] for p in part])}
            start += chunk
            chunk = min(chunk * 4, 2000)
            for since, alarm_id, due, stage, rule in part:
                alarm = alarms.get(alarm_id)
                if match is not None and (alarm is None or not match(alarm)):
                    continue
                out.append(
                    Waiting(
                        alarm_id=alarm_id,
                        stage="supervisor" if stage == b"supervisor" else "operator",
                        since=datetime.fromtimestamp(since, UTC),
                        due=datetime.fromtimestamp(float(due), UTC) if due else None,
                        rule_id=(rule or b"").decode(),
                        alarm=alarm,
                    )
                )
                if len(out) >= limit:
                    break
        return out

    # --- verdicts ---------------------------------------------------------------------------------------
    async def verdict(
        self,
        alarm_id: str,
        verdict: Verdict,
        actor: str,
        role: Role,
        reason: str = "",
        note: str = "",
        alarm: Alarm | None = None,
        audit: dict[str, str] | None = None,
    ) -> Outcome:
        """Apply an operator's or supervisor's verdict. Raises ``VerificationError`` (not waiting, a supervisor's
        alarm judged by an operator, an unknown false-alarm reason; unavailable when Redis failed). ``alarm``: the
        alarm when the caller has already read it (a review then needs no read of its rule); ``audit``: the
        verdict's audit entry (``sharpeye.audit.entry``), appended with the verdict.

        A verdict is one Redis round trip and no SQL: one script call (``AlarmStore.judge``) checks the stage (an
        operator may only judge the operators' alarms), takes the alarm off the waiting list (or hands it to the
        supervisors), records the verdict on the alarm, appends it to the notification log and appends the audit
        entry, atomically: an alarm is waiting or judged, never neither, whatever stops meanwhile. The alarm intake
        reads the notification: it writes ``false_alarms`` and ``verdicts`` (``record``) and, for a confirmation,
        opens the case (``Outcome.case_pending``; the case is announced on the live alarm channel, ``case_opened``).
        The same verdict given again by the same actor with the same note, once recorded, is answered as the first
        was and records nothing: a call sent again after its reply was lost (an operator's client after a 503 or a
        timeout; a Redis client set to retry commands after a connection error) is not told 409 for its own
        verdict."""
        if verdict == "false_alarm" and reason not in self.site.governance.false_alarm_reasons:
            allowed = "、".join(self.site.governance.false_alarm_reasons)
            raise VerificationError(f"reason must be one of {allowed}")
        now = self.clock.now()
        try:
            if verdict == "review":
                if alarm is not None and alarm.id == alarm_id:
                    rule = alarm.rule_id
                else:
                    rule = (await self.redis.hget(self.keys.verification(alarm_id), "rule") or b"").decode()
                due = self._supervisor_due(rule, now)
                done = await self.alarms.judge(alarm_id, "review", actor, now, note, stage="operator", due=due,
                                               audit=audit, again=True)  # fmt: skip
            else:
                if verdict == "false_alarm":
                    text, recorded = f"{reason} {note}".strip(), "false_alarm"
                else:
                    text, recorded = note, "confirmed"
                only = "" if role in SUPERVISORS else "operator"
                done = await self.alarms.judge(alarm_id, recorded, actor, now, text, stage=only, audit=audit,
                                               again=True)  # fmt: skip
        except (RedisError, OSError) as exc:
            # Redis failing over or restarting: the one script call ran entirely or not at all, so the alarm is
            # either judged or still waiting (a lost answer: the same verdict sent again says which, answered as
            # given if it was recorded)
            log.warning("verdict on alarm %s not known to be recorded (%s)", alarm_id, exc)
            message = (f"the verdict on alarm {alarm_id} could not be recorded ({type(exc).__name__}); unless it was, "
                       "the alarm still waits for a verdict")  # fmt: skip
            raise VerificationError(message, unavailable=True) from exc
        if done.outcome == "not_waiting":
            raise VerificationError(f"alarm {alarm_id} is not waiting for a verdict", conflict=True)
        if done.outcome == "wrong_stage":
            if verdict == "review":
                raise VerificationError(f"alarm {alarm_id} is already with the supervisors", conflict=True)
            raise VerificationError(f"alarm {alarm_id} is with the supervisors (转人工复核)", conflict=True)
        if done.outcome == "missing":
            raise VerificationError(f"alarm {alarm_id} is gone", conflict=True)
        if verdict == "review":
            return Outcome("review")
        return Outcome("false_alarm") if verdict == "false_alarm" else Outcome("confirm", case_pending=True)

    def _supervisor_due(self, rule: str, now: datetime) -> float:
        """When an alarm handed to the supervisors now (escalated or 转人工复核) is due."""
        policy = self.policy(rule)
        return now.timestamp() + (policy.supervisor_within_s if policy else 600.0)

    # --- the record --------------------------------------------------------------------------------------
    async def record(self, events: list[dict[str, str]]) -> int:
        """Keep the final verdicts among the alarm notifications ``events`` in SQL (``verdicts``, and the false
        alarms in ``false_alarms``), in one transaction that leaves rows already there alone (a redelivered batch).
        The alarm intake calls it for each batch it reads; returns how many final verdicts the batch held. A
        verdict on an alarm gone from Redis meanwhile (expired) is skipped with a warning."""
        finals: list[tuple[dict[str, str], str, str]] = []
        for event in events:
            if event.get("type") != "verdict":
                continue
            kind, _, rest = event.get("note", "").partition(": ")
            if kind in FINAL_VERDICTS:
                finals.append((event, kind, rest))
        if not finals:
            return 0
        alarms = {a.id: a for a in await self.alarms.get_many([e["alarm"] for e, _, _ in finals])}
        verdicts: list[dict[str, Any]] = []
        false_alarms: list[dict[str, Any]] = []
        for event, kind, rest in finals:
            alarm = alarms.get(event["alarm"])
            if alarm is None:
                log.warning("verdict on alarm %s not kept: the alarm is gone", event["alarm"])
                continue
            # cut to the columns' sizes: PostgreSQL refuses a longer value, and one refused row would hold back
            # the intake's whole batch (alarms becoming cases included) for ever
            row = {"alarm_id": alarm.id[:64], "rule_id": alarm.rule_id[:64], "device_id": alarm.device_id[:64],
                   "channel": alarm.channel[:64] if alarm.channel else None, "org_unit": alarm.org_unit[:64],
                   "category": alarm.category[:64], "raised_at": alarm.first_seen,
                   "judged_at": datetime.fromisoformat(event["at"]), "actor": event.get("actor", "")[:100]}  # fmt: skip
            verdicts.append({**row, "verdict": kind})
            if kind == "false_alarm":
                reason, note = self._reason(rest)
                false_alarms.append({**row, "reason": reason, "note": note[:2000]})
        if not verdicts:
            return 0
        async with self.db.sessions() as session:
            await session.execute(self._insert_new(VerdictRow), verdicts)
            if false_alarms:
                await session.execute(self._insert_new(FalseAlarmRow), false_alarms)
            await session.commit()
        self.recorded += len(verdicts)
        for row in verdicts:
            self.recorded_total.labels(row["verdict"]).inc()
        return len(verdicts)

    def _insert_new(self, table: type[Base]) -> Insert:
        """INSERT that leaves a row already there alone (ON CONFLICT DO NOTHING, on PostgreSQL and SQLite)."""
        if self.db.engine.dialect.name == "postgresql":
            return postgresql.insert(table).on_conflict_do_nothing()
        return sqlite.insert(table).on_conflict_do_nothing()

    def _reason(self, text: str) -> tuple[str, str]:
        """Split a false alarm's notification text (``<reason> <note>``) at the configured reason."""
        for reason in sorted(self.site.governance.false_alarm_reasons, key=len, reverse=True):
            if text == reason or text.startswith(reason + " "):
                return reason, text[len(reason) :].strip()
        reason, _, note = text.partition(" ")
        return reason[:100], note

    # --- time limits ------------------------------------------------------------------------------------
    async def tick(self) -> int:
        """Escalate alarms past the operator's limit; open (or keep) those past the supervisor's. Returns how
        many were handled. Each escalation and each time-limit confirmation is one atomic script call, as an
        operator's verdict is (``AlarmStore.judge``)."""
        now = self.clock.now()
        due = await self.redis.zrangebyscore(self.keys.verification_due, "-inf", now.timestamp(), start=0, num=100)
        handled = 0
        for raw in due:
            alarm_id = raw.decode()
            raw_stage, raw_rule = await self.redis.hmget(self.keys.verification(alarm_id), ["stage", "rule"])
            stage, rule = (raw_stage or b"").decode(), (raw_rule or b"").decode()
            if stage == "operator":
                escalated = await self.alarms.judge(alarm_id, "escalated", SYSTEM_ACTOR, now, "研判超时，转主管",
                                                    stage="operator", due=self._supervisor_due(rule, now))  # fmt: skip
                if escalated.outcome == "verdict":
                    self.escalated += 1
                    handled += 1
                continue
            if stage != "supervisor":
                await self.redis.zrem(self.keys.verification_due, alarm_id)
                continue
            policy = self.policy(rule)
            if policy is not None and policy.on_timeout == "keep_waiting":
                async with self.redis.pipeline(transaction=True) as pipe:
                    pipe.hdel(self.keys.verification(alarm_id), "due")
                    pipe.zrem(self.keys.verification_due, alarm_id)
                    await pipe.execute()
                handled += 1
                continue
            # the alarm intake opens the case from this verdict's notification, as for an operator's 确认
            opened = await self.alarms.judge(alarm_id, "confirmed", SYSTEM_ACTOR, now, TIMEOUT_NOTE, stage="supervisor")
            if opened.outcome == "verdict":
                self.timed_out += 1
                handled += 1
        return handled

    async def run(self, interval: float = 1.0) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:  # Redis restarting: say so, without a traceback
                log.warning("verification timers wait for Redis (%s); retrying", exc)
            except Exception as exc:
                log_retry(log, "verification timers", exc)
            await asyncio.sleep(interval)

    # --- statistics ---------------------------------------------------------------------------------------
    async def false_alarm_stats(
        self, by: GroupBy, since: datetime, until: datetime, org_units: set[str] | None = None
    ) -> list[FalseAlarmCount]:
        """False alarms judged between ``since`` and ``until`` (raised time), counted by ``by``, most first."""
        conditions = [FalseAlarmRow.raised_at >= since, FalseAlarmRow.raised_at < until]
        if org_units is not None:
            conditions.append(FalseAlarmRow.org_unit.in_(org_units))
        counts: dict[str, int] = {}
        async with self.db.sessions() as session:
            if by in ("camera", "rule", "site", "reason"):
                columns = {
                    "camera": FalseAlarmRow.device_id,
                    "rule": FalseAlarmRow.rule_id,
                    "site": FalseAlarmRow.org_unit,
                    "reason": FalseAlarmRow.reason,
                }
                column = columns[by]
                stmt = select(column, func.count()).where(*conditions).group_by(column)
                for key, count in (await session.execute(stmt)).all():
                    counts[str(key)] = int(count)
            else:
                rows = select(FalseAlarmRow.device_id, FalseAlarmRow.channel, FalseAlarmRow.raised_at).where(
                    *conditions
                )
                for device_id, channel, raised_at in (await session.execute(rows)).all():
                    if by == "zone":
                        key = f"{device_id}/{channel}" if channel else str(device_id)
                    else:  # hour of the day, local time
                        key = f"{raised_at.astimezone(self.zone).hour:02d}"
                    counts[key] = counts.get(key, 0) + 1
        return _sorted(counts)

    async def precision_stats(
        self, by: PrecisionBy, since: datetime, until: datetime, org_units: set[str] | None = None
    ) -> list[PrecisionCount]:
        return await precision_stats(self.db, by, since, until, org_units)


def _alarm_of(pairs: list[bytes]) -> Alarm | None:
    """An alarm from its hash as HGETALL answers inside a script (a flat list of fields and values)."""
    return alarm_from_hash(dict(zip(pairs[::2], pairs[1::2], strict=True))) if pairs else None


def _sorted(counts: dict[str, int]) -> list[FalseAlarmCount]:
    return [FalseAlarmCount(key=k, count=n) for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def default_window(now: datetime, days: int = 30) -> tuple[datetime, datetime]:
    return now - timedelta(days=days), now + timedelta(seconds=1)


async def precision_stats(
    db: Database, by: PrecisionBy, since: datetime, until: datetime, org_units: set[str] | None = None
) -> list[PrecisionCount]:
    """The operators' final verdicts on alarms raised between ``since`` and ``until``, per camera, rule or zone:
    confirmed, false and the precision (the share confirmed), least precise first (what to fix first)."""
    conditions = [VerdictRow.raised_at >= since, VerdictRow.raised_at < until]
    if org_units is not None:
        conditions.append(VerdictRow.org_unit.in_(org_units))
    groups: dict[str, list[Any]] = {"camera": [VerdictRow.device_id], "rule": [VerdictRow.rule_id],
                                    "zone": [VerdictRow.device_id, VerdictRow.channel]}  # fmt: skip
    columns = groups[by]
    stmt = select(*columns, VerdictRow.verdict, func.count()).where(*conditions).group_by(*columns, VerdictRow.verdict)
    tally: dict[str, list[int]] = {}
    async with db.sessions() as session:
        for row in (await session.execute(stmt)).all():
            *parts, verdict, count = row
            key = f"{parts[0]}/{parts[1]}" if by == "zone" and parts[1] else str(parts[0])
            pair = tally.setdefault(key, [0, 0])
            pair[0 if verdict == "confirmed" else 1] += int(count)
    items = [PrecisionCount(key=k, confirmed=c, false_alarms=f, precision=round(c / (c + f), 4))
             for k, (c, f) in tally.items()]  # fmt: skip
    return sorted(items, key=lambda i: (i.precision, -(i.confirmed + i.false_alarms), i.key))
