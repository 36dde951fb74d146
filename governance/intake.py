"""Alarm intake: the consumer group that turns raised alarms into cases, by the intake policy.

It reads the alarm notification log (``Keys.alarm_events``) in consumer group ``governance``. Each
raised alarm is looked up, the policy decides whether it becomes a case, and the case, its history,
its alarm link and its queue entry (outbox) are written in one SQL transaction. The stream entry is
acknowledged only after the commit; a redelivered entry finds the alarm link and does nothing, so a
crash at any point neither loses nor duplicates a case.

The same consumer keeps the record of 研判: each final verdict in the log (``verdict`` entries, confirmed or
false_alarm) becomes a ``verdicts`` row, and each false alarm a ``false_alarms`` row (``VerificationService.record``),
so a verdict request itself writes no SQL. A confirmation (确认 by an operator, or the time limit's) opens the
alarm's case here, from its ``verdict`` entry, acknowledged only after the case's commit like a raised alarm's: a
hub stopped between the operator's answer and the case opens it when it comes back, once (the alarm link). The
case is announced on the live alarm channel (``{"type": "case_opened", "alarm": ..., "case": ...}``), where the
console that gave the verdict learns it.
"""

from __future__ import annotations

import logging
from datetime import datetime

import orjson
import redis.asyncio as aioredis
from sharpeye.alarms.alarm import Alarm
from sharpeye.alarms.notification import ConsumerProgress, consume, ensure_group
from sharpeye.alarms.store import AlarmStore
from sharpeye.config.governance import IntakeRule
from sharpeye.config.rule import Severity
from sharpeye.config.site import SiteConfig
from sharpeye.governance.case import Case, CaseEvent, Source, Stage
from sharpeye.governance.dispatch import DispatchError
from sharpeye.governance.flow import Actor
from sharpeye.governance.queue import CaseQueue
from sharpeye.governance.service import CaseService
from sharpeye.governance.store import CaseAlarmRow, CaseIncidentRow, CaseRow
from sharpeye.governance.verification import SYSTEM_ACTOR, TIMEOUT_NOTE, VerificationService
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from sharpeye.clock import Clock
from sharpeye.keys import Keys
from sharpeye.role import Role

log = logging.getLogger(__name__)

GROUP = "governance"
SYSTEM = Actor("system:intake", Role.operator)


def intake_rule(site: SiteConfig, alarm: Alarm) -> IntakeRule | None:
    for rule in site.governance.intake:
        if rule.category in (alarm.category, "*"):
            return rule
    return None


def wants_case(site: SiteConfig, alarm: Alarm) -> bool:
    rule = intake_rule(site, alarm)
    if rule is None:
        return False
    return rule.open_case and Severity(alarm.severity).rank >= rule.min_severity.rank


class AlarmIntake:
    def __init__(
        self,
        site: SiteConfig,
        redis: aioredis.Redis,
        keys: Keys,
        alarms: AlarmStore,
        cases: CaseService,
        queue: CaseQueue,
        clock: Clock,
        consumer: str,
    ) -> None:
        self.site = site
        self.redis = redis
        self.keys = keys
        self.alarms = alarms
        self.cases = cases
        self.queue = queue
        self.clock = clock
        self.consumer = consumer
        self.created = 0
        self.verified = 0  # cases opened for confirmed alarms (研判)
        self.verification: VerificationService | None = None  # set by the node when rules ask for 研判
        self.progress = ConsumerProgress()  # for health: last batch handled, failing since

    async def ensure_group(self) -> None:
        await ensure_group(self.redis, self.keys, GROUP)

    async def run(self) -> None:
        await consume(self.redis, self.keys, GROUP, self.consumer, self.progress.wrap(self.handle_batch))

    async def handle_batch(self, events: list[dict[str, str]]) -> None:
        changed = False
        for event in events:
            changed |= await self.handle(event) is not None
        if self.verification is not None:
            await self.verification.record(events)
        if changed:
            await self.queue.relay(self.clock.now())

    async def handle(self, event: dict[str, str]) -> str | None:
        """A raised alarm opens a case, or joins the open case of its incident; a confirmed one (研判) opens its
        case. Returns the case id."""
        if event.get("type") == "verdict":
            return await self.handle_confirmed(event)
        if event.get("type") != "raised":
            return None
        alarm = await self.alarms.get(event["alarm"])
        if alarm is None:
            return None
        incident = event.get("incident") or alarm.incident
        if not incident and not wants_case(self.site, alarm):
            return None  # decided without touching the database
        if await self.cases.case_for_alarm(alarm.id) is not None:
            return None
        now = self.clock.now()
        if incident:
            joined = await self.join_incident_case(alarm, incident, now)
            if joined is not None:
                return joined
        if not wants_case(self.site, alarm):
            return None
        policy = self.verification.policy(alarm.rule_id) if self.verification is not None else None
        if policy is not None and self.verification is not None:
            if alarm.verdict in ("confirmed", "false_alarm"):
                return None  # judged already (a redelivered notification)
            await self.verification.hold(alarm, policy)  # 研判: the case opens on the operator's 确认
            return None
        opened = await self.open_case(alarm, now, incident)
        if opened is None and incident:
            # another node's intake opened the incident's case meanwhile (its link refused ours): join it
            return await self.join_incident_case(alarm, incident, now)
        return opened

    async def handle_confirmed(self, event: dict[str, str]) -> str | None:
        """The case of an alarm an operator confirmed (or whose verification timed out), from the verdict's
        notification, with the operator's note; None for other verdicts, or when the alarm has its case already
        (a redelivered notification)."""
        kind, _, note = event.get("note", "").partition(": ")
        if kind != "confirmed":
            return None
        alarm = await self.alarms.get(event["alarm"])
        if alarm is None:
            log.warning("confirmed alarm %s is gone: no case opened", event["alarm"])
            return None
        if await self.cases.case_for_alarm(alarm.id) is not None:
            return None
        actor = event.get("actor", "")
        if actor == SYSTEM_ACTOR and note == TIMEOUT_NOTE:
            text = note
        else:
            text = f"研判确认 {actor}" + (f"：{note}" if note else "")
        case_id = await self.open_case(alarm, self.clock.now(), alarm.incident, text)
        if case_id is not None:
            self.verified += 1
            message = {"type": "case_opened", "alarm": alarm.id, "case": case_id, "at": self.clock.now().isoformat()}
            await self.redis.publish(self.keys.alarm_live, orjson.dumps(message))
        return case_id

    async def join_incident_case(self, alarm: Alarm, incident: str, now: datetime) -> str | None:
        async with self.cases.db.sessions() as session:
            link = await session.get(CaseIncidentRow, incident)
            if link is None:
                return None
            # FOR UPDATE: intakes on several nodes may add alarms to one case at once (PostgreSQL locks the row;
            # SQLite ignores it and serialises writers, so the list is rebuilt below after the insert)
            case = await session.get(CaseRow, link.case_id, with_for_update=True)
            if case is None or case.stage in (Stage.closed.value, Stage.cancelled.value):
                return None
            session.add(CaseAlarmRow(alarm_id=alarm.id, case_id=case.id))
            try:
                await session.flush()  # takes SQLite's write lock: rows other nodes committed are visible now
            except IntegrityError:
                await session.rollback()
                return None
            linked = set(await session.scalars(select(CaseAlarmRow.alarm_id).where(CaseAlarmRow.case_id == case.id)))
            kept = [a for a in case.alarm_ids if a in linked]
            case.alarm_ids = kept + sorted(linked - set(kept))  # no other node's alarm lost by this update
            if Severity(alarm.severity).rank > Severity(case.severity).rank:
                case.severity = str(alarm.severity)
            case.updated_at = now
            stage = Stage(case.stage)
            CaseService.add_event(
                session,
                case.id,
                CaseEvent(
                    at=now,
                    action="alarm_added",
                    actor="system:intake",
                    from_stage=stage,
                    to_stage=stage,
                    note=f"alarm {alarm.id}: {alarm.title} @ {alarm.place}",
                ),
            )
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                return None
            log.info("alarm %s joined case %s (incident %s)", alarm.id, case.id, incident)
            return case.id

    async def open_case(self, alarm: Alarm, now: datetime, incident: str | None = None, note: str = "") -> str | None:
        """Report, accept and dispatch (by the dispatch table) in one transaction; a case that no department
        can take stays accepted for a person to dispatch."""

        async def report(dispatch: bool) -> Case:
            return await self.cases.report(
                title=f"{alarm.title}：{alarm.place}",
                category=alarm.category,
                severity=Severity(alarm.severity),
                source=Source.alarm,
                org_unit=alarm.org_unit,
                actor=SYSTEM,
                description=f"{alarm.title} @ {alarm.place} (alarm {alarm.id})" + (f"\n{note}" if note else ""),
                alarm_ids=[alarm.id],
                accept_by=SYSTEM,
                dispatch=dispatch,
                incident_id=incident,
            )

        try:
            try:
                case = await report(dispatch=True)
            except DispatchError as exc:
                log.warning("alarm %s: %s; the case waits for a person to dispatch it", alarm.id, exc)
                case = await report(dispatch=False)
        except IntegrityError:
            log.info("alarm %s already has a case", alarm.id)
            return None
        self.created += 1
        log.info("case %s opened for alarm %s (%s)", case.id, alarm.id, case.department or "not dispatched")
        return case.id
