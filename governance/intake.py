"""Alarm intake: the consumer group that turns raised alarms into cases, by the intake policy.

It reads the alarm notification log (``Keys.alarm_events``) in consumer group ``governance``. Each
raised alarm is looked up, the policy decides whether it becomes a case, and the case, its history,
its alarm link and its queue entry (outbox) are written in one SQL transaction. The stream entry is
acknowledged only after the commit; a redelivered entry finds the alarm link and does nothing, so a
crash at any point neither loses nor duplicates a case.
"""

from __future__ import annotations

import logging
from datetime import datetime

import redis.asyncio as aioredis
from sqlalchemy.exc import IntegrityError

from alarms.alarm import Alarm
from alarms.notification import consume, ensure_group
from alarms.store import AlarmStore
from config.governance import IntakeRule
from config.org import Level
from config.rule import Severity
from config.site import SiteConfig
from governance.case import CaseEvent, Source, Stage
from governance.queue import CaseQueue
from governance.service import CaseService
from governance.store import CaseAlarmRow, CaseIncidentRow, CaseRow
from sharpeye.clock import Clock
from sharpeye.keys import Keys

log = logging.getLogger(__name__)

GROUP = "governance"


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


def choose_department(site: SiteConfig, org_unit: str, category: str) -> tuple[str | None, str | None]:
    """The department of the lowest unit, from the case's place upward, that handles the category.

    Placeholder for the dispatch table of the governance issue (governance/dispatch.py replaces it)."""
    parents: dict[str, str] = {}
    levels: dict[str, Level] = {}
    for unit, parent in site.org.walk():
        levels[unit.id] = unit.level
        if parent is not None:
            parents[unit.id] = parent.id
    unit_id: str | None = org_unit
    while unit_id is not None:
        for dept in site.departments:
            if dept.unit == unit_id and category in dept.categories:
                return dept.id, levels[unit_id].value
        unit_id = parents.get(unit_id)
    return None, None


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

    async def ensure_group(self) -> None:
        await ensure_group(self.redis, self.keys, GROUP)

    async def run(self) -> None:
        await consume(self.redis, self.keys, GROUP, self.consumer, self.handle_batch)

    async def handle_batch(self, events: list[dict[str, str]]) -> None:
        changed = False
        for event in events:
            changed |= await self.handle(event) is not None
        if changed:
            await self.queue.relay(self.clock.now())

    async def handle(self, event: dict[str, str]) -> str | None:
        """A raised alarm opens a case, or joins the open case of its incident. Returns the case id."""
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
        return await self.open_case(alarm, now, incident)

    async def join_incident_case(self, alarm: Alarm, incident: str, now: datetime) -> str | None:
        async with self.cases.db.sessions() as session:
            link = await session.get(CaseIncidentRow, incident)
            if link is None:
                return None
            case = await session.get(CaseRow, link.case_id)
            if case is None or case.stage in (Stage.closed.value, Stage.cancelled.value):
                return None
            case.alarm_ids = [*case.alarm_ids, alarm.id]
            if Severity(alarm.severity).rank > Severity(case.severity).rank:
                case.severity = str(alarm.severity)
            case.updated_at = now
            session.add(CaseAlarmRow(alarm_id=alarm.id, case_id=case.id))
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

    async def open_case(self, alarm: Alarm, now: datetime, incident: str | None = None) -> str | None:
        case_id = await self.cases.next_number(now)
        department, level = choose_department(self.site, alarm.org_unit, alarm.category)
        actor = "system:intake"
        stage = Stage.dispatched if department else Stage.accepted
        async with self.cases.db.sessions() as session:
            session.add(
                CaseRow(
                    id=case_id,
                    title=f"{alarm.title}：{alarm.place}",
                    category=alarm.category,
                    severity=str(alarm.severity),
                    source=Source.alarm.value,
                    stage=stage.value,
                    org_unit=alarm.org_unit,
                    department=department,
                    level=level,
                    created_at=now,
                    updated_at=now,
                    dispatched_at=now if department else None,
                    alarm_ids=[alarm.id],
                    description=f"{alarm.title} @ {alarm.place}",
                )
            )
            session.add(CaseAlarmRow(alarm_id=alarm.id, case_id=case_id))
            if incident:
                session.add(CaseIncidentRow(incident_id=incident, case_id=case_id))
            steps = [(None, Stage.reported, "reported"), (Stage.reported, Stage.accepted, "accepted")]
            if department:
                steps.append((Stage.accepted, Stage.dispatched, "dispatched"))
            for from_stage, to_stage, action in steps:
                note = f"alarm {alarm.id}" if action == "reported" else (department or "")
                CaseService.add_event(
                    session,
                    case_id,
                    CaseEvent(at=now, action=action, actor=actor, from_stage=from_stage, to_stage=to_stage, note=note),
                )
            if department:
                CaseService.enqueue(
                    session, self.keys.case_queue(department), {"case_id": case_id, "department": department}, now
                )
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()
                log.info("alarm %s already has a case", alarm.id)
                return None
        self.created += 1
        log.info("case %s opened for alarm %s (%s)", case_id, alarm.id, department or "no department")
        return case_id
