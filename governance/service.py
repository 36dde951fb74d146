"""Case operations on the durable record: create, read, list, and every action of the flow, each with its
history entry and outbox rows in one transaction.

An action reads the case, applies ``governance.flow.Flow`` (pure), and writes the new state only if
the row has not changed since it was read (compare-and-set on ``updated_at`` and ``stage``), so two
operators acting at once never both win. Fields of ``Case`` that have no column of their own (SLA
clock, counters, 立案 time, ...) live in the row's ``extra`` JSON. After the commit the supervision
plan is brought up to date; ``resync_supervision`` rebuilds every plan from the record (run at start,
it closes the window of a crash between the commit and the plan).
"""

from __future__ import annotations

import builtins
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from sharpeye.config.governance import MergePolicy, Uplink
from sharpeye.config.rule import Severity
from sharpeye.config.site import SiteConfig
from sharpeye.governance.case import Case, CaseEvent, GeoPoint, Source, Stage
from sharpeye.governance.dispatch import Dispatcher
from sharpeye.governance.escalation import Firing, Supervision
from sharpeye.governance.flow import Action, Actor, Args, Flow, TransitionError, new_case
from sharpeye.governance.indicator import GroupBy, IndicatorRow, Period, compute
from sharpeye.governance.merge import MergeProposal, mergeable, propose
from sharpeye.governance.sla import SlaPolicy
from sharpeye.governance.store import CaseAlarmRow, CaseEventRow, CaseIncidentRow, CaseRow, Database, OutboxRow
from sqlalchemy import Select, false, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from sharpeye.clock import Clock
from sharpeye.keys import Keys


@dataclass(frozen=True, slots=True)
class CaseFilter:
    stages: Sequence[Stage] = ()
    department: str | None = None
    org_units: Sequence[str] = ()
    category: str | None = None
    limit: int = 50
    offset: int = 0
    # Keyset paging: the (created_at, id) of the last case of the previous page; newer-first order.
    after: tuple[datetime, str] | None = None
    scope: CaseScope | None = None  # what the caller may see (the filters above narrow it further)


@dataclass(frozen=True, slots=True)
class CaseListPage:
    items: list[Case]
    total: int  # matching cases, counted up to ``COUNT_CAP``
    total_capped: bool  # more than ``COUNT_CAP`` match: ``total`` is a lower bound
    next: tuple[datetime, str] | None  # pass as ``CaseFilter.after`` for the next page; None on the last


# Counting every match of a broad filter costs a scan of all of them; a list shows "10,000+" instead.
COUNT_CAP = 10_000


log = logging.getLogger(__name__)

# Case fields kept in the row's ``extra`` JSON (no column of their own).
_EXTRA = (
    "accepted_at",
    "handled_at",
    "sla",
    "light",
    "extension_pending",
    "returns",
    "extensions",
    "reworks",
    "reassignments",
    "merged_into",
    "claimed_by",
    "location",
)


@dataclass(frozen=True, slots=True)
class CaseScope:
    """Which cases a caller may see: those in ``org_units`` (empty: any unit) and, when ``department`` is set,
    dispatched to that department. ``nothing``: none at all (e.g. a department handler without a department)."""

    org_units: Sequence[str] = ()
    department: str | None = None
    nothing: bool = False


def scope_conditions(scope: CaseScope | None) -> list[ColumnElement[bool]]:
    """The WHERE conditions of a scope (none for no scope)."""
    if scope is None:
        return []
    if scope.nothing:
        return [false()]
    out: list[ColumnElement[bool]] = []
    if scope.org_units:
        out.append(CaseRow.org_unit.in_(list(scope.org_units)))
    if scope.department is not None:
        out.append(CaseRow.department == scope.department)
    return out


def list_filter(flt: CaseFilter) -> Select[CaseRow]:
    """The cases a list filter matches (no order, no paging)."""
    query = select(CaseRow).where(*scope_conditions(flt.scope))
    if flt.stages:
        query = query.where(CaseRow.stage.in_([s.value for s in flt.stages]))
    if flt.department:
        query = query.where(CaseRow.department == flt.department)
    if flt.org_units:
        query = query.where(CaseRow.org_unit.in_(list(flt.org_units)))
    if flt.category:
        query = query.where(CaseRow.category == flt.category)
    return query


def list_query(flt: CaseFilter) -> Select[CaseRow]:
    """One page of the list, newest first, plus one row to tell whether another page follows."""
    query = list_filter(flt)
    if flt.after is not None:
        at, last_id = flt.after
        # Rows below (at, last_id) in (created_at, id) order. The redundant ``created_at <= at`` gives the
        # database a range bound to seek to in the list index (an OR alone makes SQLite scan from the top).
        query = query.where(CaseRow.created_at <= at, or_(CaseRow.created_at < at, CaseRow.id < last_id))
    elif flt.offset:
        query = query.offset(flt.offset)
    return query.order_by(CaseRow.created_at.desc(), CaseRow.id.desc()).limit(flt.limit + 1)


class CaseNotFound(LookupError):
    pass


class CaseConflict(RuntimeError):
    """The case changed between reading and writing (someone else acted first): read it again."""


def to_case(row: CaseRow) -> Case:
    extra = {k: v for k, v in (row.extra or {}).items() if k in _EXTRA}
    base = Case(
        id=row.id,
        title=row.title,
        category=row.category,
        severity=row.severity,
        source=Source(row.source),
        stage=Stage(row.stage),
        org_unit=row.org_unit,
        department=row.department,
        level=row.level,
        created_at=row.created_at,
        updated_at=row.updated_at,
        dispatched_at=row.dispatched_at,
        due_at=row.due_at,
        closed_at=row.closed_at,
        alarm_ids=list(row.alarm_ids or []),
        description=row.description,
    )
    if not extra:
        return base
    return Case.model_validate({**base.model_dump(), **extra})


def write_row(row: CaseRow, case: Case) -> None:
    """Copy a case onto its row (columns and ``extra``)."""
    row.stage = case.stage.value
    row.department = case.department
    row.level = case.level
    row.updated_at = case.updated_at
    row.dispatched_at = case.dispatched_at
    row.due_at = case.due_at
    row.closed_at = case.closed_at
    row.extra = extra_of(case)
    for name, value in indicator_columns(case).items():
        setattr(row, name, value)


def indicator_columns(case: Case) -> dict[str, Any]:
    """The fields of ``extra`` that also have columns, for the indicators to select and sum in SQL."""
    return {"accepted_at": case.accepted_at, "returns": case.returns, "extensions": case.extensions,
            "reworks": case.reworks}  # fmt: skip


def extra_of(case: Case) -> dict[str, Any]:
    return case.model_dump(mode="json", include=set(_EXTRA))


def new_row(case: Case) -> CaseRow:
    row = CaseRow(
        id=case.id,
        title=case.title,
        category=case.category,
        severity=str(case.severity),
        source=case.source.value,
        org_unit=case.org_unit,
        created_at=case.created_at,
        description=case.description,
        alarm_ids=list(case.alarm_ids),
    )
    write_row(row, case)
    return row


def event_note(event: CaseEvent) -> str:
    """The history line: the reason, then the details (department, override and who, due time)."""
    details = ", ".join(f"{k}={v}" for k, v in event.data.items() if k != "reason")
    if details:
        return f"{event.note} [{details}]" if event.note else f"[{details}]"
    return event.note


class CaseService:
    def __init__(
        self,
        site: SiteConfig,
        db: Database,
        redis: aioredis.Redis,
        keys: Keys,
        clock: Clock,
        *,
        flow: Flow | None = None,
        dispatcher: Dispatcher | None = None,
        supervision: Supervision | None = None,
    ) -> None:
        self.site = site
        self.db = db
        self.redis = redis
        self.keys = keys
        self.clock = clock
        sla = SlaPolicy.from_config(site.governance, site.site.timezone)
        self.flow = flow or Flow(sla)
        self.dispatcher = dispatcher or Dispatcher(site.org, site.departments, site.governance.dispatch)
        self.supervision = supervision or Supervision(redis, keys, self.flow.sla, site.governance.escalation)
        self.zone = ZoneInfo(site.site.timezone)

    async def next_number(self, now: datetime) -> str:
        """``<SITE>-<local date>-<n>``: the date is the site's own (``site.timezone``), so a report at 00:30 in
        Beijing is numbered with that day, not with the UTC date (the day before until 08:00)."""
        day = now.astimezone(self.zone).strftime("%Y%m%d")
        seq = await self.redis.incr(self.keys.case_sequence(day))
        return f"{self.site.site.id.upper()}-{day}-{seq:05d}"

    @staticmethod
    def add_event(session: AsyncSession, case_id: str, event: CaseEvent) -> None:
        session.add(
            CaseEventRow(
                case_id=case_id,
                at=event.at,
                action=event.action,
                actor=event.actor,
                from_stage=event.from_stage.value if event.from_stage else None,
                to_stage=event.to_stage.value,
                note=event_note(event),
            )
        )

    @staticmethod
    def enqueue(session: AsyncSession, stream: str, payload: dict[str, str], now: datetime) -> None:
        session.add(OutboxRow(stream=stream, payload=payload, created_at=now))

    async def case_for_alarm(self, alarm_id: str) -> str | None:
        async with self.db.sessions() as session:
            return await session.scalar(select(CaseAlarmRow.case_id).where(CaseAlarmRow.alarm_id == alarm_id))

    async def get(self, case_id: str) -> Case | None:
        async with self.db.sessions() as session:
            row = await session.get(CaseRow, case_id)
            return self.lit(to_case(row)) if row else None

    async def history(self, case_id: str) -> list[CaseEvent]:
        async with self.db.sessions() as session:
            rows = await session.scalars(
                select(CaseEventRow).where(CaseEventRow.case_id == case_id).order_by(CaseEventRow.id)
            )
            return [
                CaseEvent(
                    at=r.at,
                    action=r.action,
                    actor=r.actor,
                    from_stage=Stage(r.from_stage) if r.from_stage else None,
                    to_stage=Stage(r.to_stage),
                    note=r.note,
                )
                for r in rows
            ]

    async def list(self, flt: CaseFilter) -> tuple[builtins.list[Case], int]:
        """A page of cases and the number matching (bounded by ``COUNT_CAP``)."""
        page = await self.page(flt)
        return page.items, page.total

    async def page(self, flt: CaseFilter) -> CaseListPage:
        """A page of cases, newest first, read from the list indexes (migration 0003): with ``after`` the
        page starts below that key (keyset paging, constant cost at any depth); the count stops at
        ``COUNT_CAP``."""
        matching = list_filter(flt)
        counted = matching.with_only_columns(CaseRow.id).limit(COUNT_CAP + 1).subquery()
        async with self.db.sessions() as session:
            total = int(await session.scalar(select(func.count()).select_from(counted)) or 0)
            rows = (await session.scalars(list_query(flt))).all()
        more = len(rows) > flt.limit
        rows = rows[: flt.limit]
        items = [self.lit(to_case(r)) for r in rows]
        following = (rows[-1].created_at, rows[-1].id) if more and rows else None
        return CaseListPage(items, min(total, COUNT_CAP), total > COUNT_CAP, following)

    async def count_open(self) -> dict[str, int]:
        async with self.db.sessions() as session:
            rows = await session.execute(
                select(CaseRow.stage, func.count())
                .where(CaseRow.stage.not_in([Stage.closed.value, Stage.cancelled.value]))
                .group_by(CaseRow.stage)
            )
            return {stage: int(n) for stage, n in rows.all()}

    # --- the flow ----------------------------------------------------------------------------------------
    async def report(
        self,
        *,
        title: str,
        category: str,
        severity: Severity,
        source: Source,
        org_unit: str,
        actor: Actor,
        description: str = "",
        location: GeoPoint | None = None,
        alarm_ids: Sequence[str] = (),
        accept_by: Actor | None = None,
        dispatch: bool = False,
        incident_id: str | None = None,
    ) -> Case:
        """A new case (上报) with its first history entry. With ``accept_by`` it is also accepted (立案) by
        that actor, and with ``dispatch`` dispatched by the dispatch table: all in one transaction (the
        path for alarm intake and hotline imports)."""
        now = self.clock.now()
        if org_unit not in self.dispatcher.units:
            raise TransitionError("report", f"no org unit {org_unit!r}")
        case_id = await self.next_number(now)
        step = new_case(
            case_id=case_id,
            title=title,
            category=category,
            severity=severity,
            source=source,
            org_unit=org_unit,
            actor=actor,
            now=now,
            description=description,
            location=location,
            alarm_ids=list(alarm_ids),
        )
        steps = [step]
        if accept_by is not None:
            steps.append(self.flow.apply(steps[-1].case, Action.accept, accept_by, now))
            if dispatch:
                case = steps[-1].case
                choice = self.dispatcher.choose(case.category, case.org_unit, case.severity)
                steps.append(self.flow.apply(case, Action.dispatch, accept_by, now, Args(assignment=choice)))
        elif dispatch:
            raise TransitionError(Action.dispatch, "a case must be accepted (accept_by) before it is dispatched")
        case = steps[-1].case
        async with self.db.sessions() as session:
            session.add(new_row(case))
            # The case row first: its history, links and photos refer to it, and PostgreSQL checks the foreign
            # keys at each insert (no relationship() tells the unit of work the order).
            await session.flush()
            # The alarm links make alarm intake idempotent: a second case for the same alarm fails to
            # commit (IntegrityError, the caller's cue that the alarm already has its case).
            session.add_all(CaseAlarmRow(alarm_id=a, case_id=case_id) for a in alarm_ids)
            if incident_id:  # later alarms of the same incident join this case
                session.add(CaseIncidentRow(incident_id=incident_id, case_id=case_id))
            for s in steps:
                self.add_event(session, case_id, s.event)
                self.enqueue(session, self.keys.case_events, _event_payload(s.event), now)
            if case.stage is Stage.dispatched and case.department:
                self.enqueue(
                    session,
                    self.keys.case_queue(case.department),
                    {"case_id": case_id, "department": case.department},
                    now,
                )
            await session.commit()
        if case.stage.open:
            await self.supervise(case)
        return case

    async def act(self, case_id: str, action: Action | str, actor: Actor, args: Args | None = None) -> Case:
        """Apply one action of the flow; raises TransitionError (refused, with the reason), CaseNotFound or
        CaseConflict (someone changed the case meanwhile)."""
        now = self.clock.now()
        async with self.db.sessions() as session:
            row = await session.get(CaseRow, case_id)
            if row is None:
                raise CaseNotFound(case_id)
            case = to_case(row)
            step = self.flow.apply(case, action, actor, now, args)
            new = step.case
            values = {
                "stage": new.stage.value,
                "department": new.department,
                "level": new.level,
                "updated_at": new.updated_at,
                "dispatched_at": new.dispatched_at,
                "due_at": new.due_at,
                "closed_at": new.closed_at,
                "extra": extra_of(new),
                **indicator_columns(new),
            }
            result = await session.execute(
                update(CaseRow)
                .where(CaseRow.id == case_id, CaseRow.updated_at == case.updated_at, CaseRow.stage == case.stage.value)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 1) != 1:
                await session.rollback()
                raise CaseConflict(f"case {case_id} changed while {action} was applied; read it again")
            self.add_event(session, case_id, step.event)
            self.enqueue(session, self.keys.case_events, _event_payload(step.event), now)
            if step.event.action == Action.merge and new.merged_into:
                new = await self._fold(session, new, new.merged_into, actor, now)
            if step.event.action in (Action.dispatch, Action.reassign) and new.department:
                self.enqueue(
                    session,
                    self.keys.case_queue(new.department),
                    {"case_id": case_id, "department": new.department},
                    now,
                )
            await session.commit()
        await self.supervise(new)
        return new

    async def _fold(self, session: AsyncSession, case: Case, target_id: str, actor: Actor, now: datetime) -> Case:
        """Inside a merge's transaction: move the merged case's alarms (and incidents, so later alarms of
        them join the target) into the target case, and write the target's history entry."""
        target = await session.get(CaseRow, target_id)
        if target is None or Stage(target.stage).terminal or Stage(target.stage) is Stage.parked:
            await session.rollback()
            raise TransitionError(Action.merge, f"case {target_id} cannot take a merge (missing or finished)")
        moved = [a for a in case.alarm_ids if a not in (target.alarm_ids or [])]
        await session.execute(
            update(CaseRow)
            .where(CaseRow.id == target_id)
            .values(alarm_ids=[*(target.alarm_ids or []), *moved], updated_at=now)
            .execution_options(synchronize_session=False)
        )
        await session.execute(
            update(CaseRow)
            .where(CaseRow.id == case.id)
            .values(alarm_ids=[])
            .execution_options(synchronize_session=False)
        )
        for table in (CaseAlarmRow, CaseIncidentRow):
            await session.execute(
                update(table)
                .where(table.case_id == case.id)
                .values(case_id=target_id)
                .execution_options(synchronize_session=False)
            )
        stage = Stage(target.stage)
        note = f"并单: {case.id} merged in" + (f" with alarms {', '.join(moved)}" if moved else "")
        event = CaseEvent(case_id=target_id, at=now, action="merged_from", actor=actor.id, from_stage=stage,
                          to_stage=stage, note=note, data={"source": case.id})  # fmt: skip
        self.add_event(session, target_id, event)
        self.enqueue(session, self.keys.case_events, _event_payload(event), now)
        return case.model_copy(update={"alarm_ids": []})

    async def merge_proposals(self, case_id: str, policy: MergePolicy) -> builtins.list[MergeProposal]:
        """Open cases of the same matter as this report (``governance.merge``), best first; none for a case
        that can no longer be merged."""
        case = await self.get(case_id)
        if case is None:
            raise CaseNotFound(case_id)
        if not mergeable(case):
            return []
        window = timedelta(hours=policy.window_hours)
        live_stages = [s.value for s in Stage if not s.terminal and s is not Stage.parked]
        async with self.db.sessions() as session:
            rows = await session.scalars(
                select(CaseRow)
                .where(
                    CaseRow.category == case.category,
                    CaseRow.stage.in_(live_stages),
                    CaseRow.created_at >= case.created_at - window,
                    CaseRow.created_at <= case.created_at + window,
                    CaseRow.id != case.id,
                )
                .limit(500)
            )
            candidates = [to_case(r) for r in rows]
        return propose(case, candidates, policy)

    async def supervise(self, case: Case) -> None:
        """Bring the case's supervision plan in line with its state."""
        if not case.stage.open:
            await self.supervision.finish(case.id)
        elif case.extension_pending:
            await self.supervision.pause(case.id)
        else:
            await self.supervision.schedule(case, self._level_above(case))

    def _level_above(self, case: Case) -> str | None:
        dept = self.dispatcher.departments.get(case.department or "")
        if dept is None:
            return None
        above = self.dispatcher.level_above(dept.unit)
        return above.id if above is not None else None

    async def resync_supervision(self, batch: int = 1000) -> int:
        """Re-plan every open case from the durable record (idempotent); returns how many were planned."""
        open_stages = [s.value for s in Stage if s.open]
        count = 0
        last = ""
        while True:
            async with self.db.sessions() as session:
                rows = (
                    await session.scalars(
                        select(CaseRow)
                        .where(CaseRow.stage.in_(open_stages), CaseRow.id > last)
                        .order_by(CaseRow.id)
                        .limit(batch)
                    )
                ).all()
            if not rows:
                return count
            for row in rows:
                await self.supervise(to_case(row))
                count += 1
            last = rows[-1].id

    def lit(self, case: Case) -> Case:
        """The case with its light as of now (the stored light is the one at its last change)."""
        if case.sla is None or case.dispatched_at is None or not case.stage.open:
            return case
        light = self.flow.sla.light(case, self.clock.now())
        return case if light == case.light else case.model_copy(update={"light": light})

    async def record_firing(self, firing: Firing) -> bool:
        """Write a fired supervision step (督办) into the case's history, once: a redelivered firing (same
        idempotency key) is recognised and skipped. Returns whether a history entry was written."""
        marker = f"#{firing.idempotency_key}"
        async with self.db.sessions() as session:
            row = await session.get(CaseRow, firing.case_id)
            if row is None:
                return False
            seen = await session.scalar(
                select(func.count())
                .select_from(CaseEventRow)
                .where(CaseEventRow.case_id == firing.case_id, CaseEventRow.note.endswith(marker))
            )
            if seen:
                return False
            stage = Stage(row.stage)
            labels = {"handler": "提醒承办部门", "centre": "提醒中心", "level_above": "上报上级"}
            at = datetime.fromtimestamp(firing.at, UTC)
            session.add(
                CaseEventRow(
                    case_id=firing.case_id,
                    at=at,
                    action="supervise",
                    actor="system:sla",
                    from_stage=stage.value,
                    to_stage=stage.value,
                    note=f"督办 {firing.step}: {labels.get(firing.notify, firing.notify)} {firing.target} {marker}",
                )
            )
            # Uplinks and notification channels hear of it like any case event (a channel may be aimed at the
            # firing's target department).
            payload = {"case_id": firing.case_id, "action": "supervise", "actor": "system:sla", "from": stage.value,
                       "to": stage.value, "at": at.isoformat(), "step": firing.step, "notify": firing.notify,
                       "target": firing.target}  # fmt: skip
            self.enqueue(session, self.keys.case_events, payload, self.clock.now())
            await session.commit()
            return True

    async def record_delivery(self, case_id: str, event_type: str, uplink: Uplink, delivery: str) -> bool:
        """A notification about the case reached people through a channel: a line in the case's history (no case
        event, so channels are not told about their own messages), once per delivery."""
        marker = f"#{uplink.id}:{delivery}"
        async with self.db.sessions() as session:
            row = await session.get(CaseRow, case_id)
            if row is None:
                return False
            seen = await session.scalar(
                select(func.count())
                .select_from(CaseEventRow)
                .where(CaseEventRow.case_id == case_id, CaseEventRow.note.endswith(marker))
            )
            if seen:
                return False
            stage = Stage(row.stage)
            to = "、".join(uplink.to) if uplink.to else uplink.id
            line = CaseEventRow(case_id=case_id, at=self.clock.now(), action="notified", actor=f"uplink:{uplink.id}",
                                from_stage=stage.value, to_stage=stage.value,
                                note=f"{uplink.format} → {to}: {event_type} {marker}")  # fmt: skip
            session.add(line)
            await session.commit()
            return True

    # --- indicators ------------------------------------------------------------------------------------
    async def records(
        self,
        created_from: datetime | None = None,
        created_to: datetime | None = None,
        batch: int = 5000,
        *,
        scope: CaseScope | None = None,
    ) -> builtins.list[Case]:
        """Case records for indicators, read in keyset pages (by id) so memory per page stays bounded; only
        those within ``scope`` when one is given."""
        out: builtins.list[Case] = []
        last = ""
        while True:
            query = select(CaseRow).where(CaseRow.id > last, *scope_conditions(scope))
            if created_from is not None:
                query = query.where(CaseRow.created_at >= created_from)
            if created_to is not None:
                query = query.where(CaseRow.created_at < created_to)
            async with self.db.sessions() as session:
                rows = (await session.scalars(query.order_by(CaseRow.id).limit(batch))).all()
            if not rows:
                return out
            out.extend(to_case(r) for r in rows)
            last = rows[-1].id

    async def stats(
        self,
        as_of: datetime,
        *,
        by: Sequence[GroupBy] = (),
        period: Period = Period.month,
        start: datetime | None = None,
        end: datetime | None = None,
        scope: CaseScope | None = None,
    ) -> builtins.list[IndicatorRow]:
        """Indicators of cases accepted (立案) in [start, end), by ``governance.indicator`` definitions,
        aggregated by the database (``governance.statistic``); an open bound is the first or last 立案 time.
        With ``scope``, only the cases within it count."""
        from sharpeye.governance.statistic import Statistics  # it reads rows with this module's to_case

        if start is None or end is None:
            async with self.db.sessions() as session:
                bounds = select(func.min(CaseRow.accepted_at), func.max(CaseRow.accepted_at))
                first, last = (await session.execute(bounds.where(*scope_conditions(scope)))).one()
            if first is None or last is None:
                return compute([], as_of, by=by)
            start = start if start is not None else first
            end = end if end is not None else last + timedelta(microseconds=1)
        statistics = Statistics(self.db, self.flow.sla, self.site.site.timezone)
        return await statistics.indicators(as_of, by=by, period=period, start=start, end=end, scope=scope)

    # One method per action, for the API and the console.
    async def accept(self, case_id: str, actor: Actor) -> Case:
        return await self.act(case_id, Action.accept, actor)

    async def cancel(self, case_id: str, actor: Actor, reason: str) -> Case:
        return await self.act(case_id, Action.cancel, actor, Args(reason=reason))

    async def merge(self, case_id: str, actor: Actor, into: str, reason: str = "") -> Case:
        target = await self.get(into)
        if target is None:
            raise TransitionError(Action.merge, f"no case {into!r} to merge into")
        if target.stage.terminal:
            raise TransitionError(Action.merge, f"case {into} is {target.stage}: merge into an open case")
        return await self.act(case_id, Action.merge, actor, Args(target=into, reason=reason))

    async def dispatch(self, case_id: str, actor: Actor, *, department: str | None = None, reason: str = "") -> Case:
        """派遣 by the dispatch table, or to ``department`` as an audited override (needs a reason). A case
        that was returned (回退) is reassigned (改派)."""
        case = await self.get(case_id)
        if case is None:
            raise CaseNotFound(case_id)
        if department is None:
            assignment = self.dispatcher.choose(case.category, case.org_unit, case.severity)
        else:
            assignment = self.dispatcher.override(case.category, case.org_unit, department, actor, reason)
        action = Action.reassign if case.returns or case.stage is not Stage.accepted else Action.dispatch
        return await self.act(case_id, action, actor, Args(assignment=assignment, reason=reason))

    async def claim(self, case_id: str, actor: Actor) -> Case:
        return await self.act(case_id, Action.claim, actor)

    async def return_case(self, case_id: str, actor: Actor, reason: str) -> Case:
        return await self.act(case_id, Action.return_, actor, Args(reason=reason))

    async def request_extension(self, case_id: str, actor: Actor, extra_s: float, reason: str) -> Case:
        return await self.act(case_id, Action.request_extension, actor, Args(reason=reason, extra_s=extra_s))

    async def approve_extension(self, case_id: str, actor: Actor, extra_s: float | None = None) -> Case:
        return await self.act(case_id, Action.approve_extension, actor, Args(extra_s=extra_s))

    async def reject_extension(self, case_id: str, actor: Actor, reason: str) -> Case:
        return await self.act(case_id, Action.reject_extension, actor, Args(reason=reason))

    async def feedback(self, case_id: str, actor: Actor, result: str) -> Case:
        return await self.act(case_id, Action.feedback, actor, Args(reason=result))

    async def verify(self, case_id: str, actor: Actor) -> Case:
        return await self.act(case_id, Action.verify, actor)

    async def pass_check(self, case_id: str, actor: Actor, note: str = "") -> Case:
        return await self.act(case_id, Action.pass_check, actor, Args(reason=note))

    async def fail_check(self, case_id: str, actor: Actor, reason: str) -> Case:
        return await self.act(case_id, Action.fail_check, actor, Args(reason=reason))

    async def park(self, case_id: str, actor: Actor, reason: str) -> Case:
        return await self.act(case_id, Action.park, actor, Args(reason=reason))

    async def reopen(self, case_id: str, actor: Actor, reason: str) -> Case:
        return await self.act(case_id, Action.reopen, actor, Args(reason=reason))


def _event_payload(event: CaseEvent) -> dict[str, str]:
    return {
        "case_id": event.case_id,
        "action": event.action,
        "actor": event.actor,
        "from": event.from_stage.value if event.from_stage else "",
        "to": event.to_stage.value,
        "at": event.at.isoformat(),
    }
