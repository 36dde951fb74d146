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
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import redis.asyncio as aioredis
from sharpeye.config.governance import MergePolicy
from sharpeye.config.rule import Severity
from sharpeye.config.site import SiteConfig
from sharpeye.governance.case import Case, CaseEvent, GeoPoint, Satisfaction, Source, Stage
from sharpeye.governance.case_query import (
    COUNT_CAP,
    CaseFilter,
    CaseListPage,
    CaseQueries,
    CaseScope,
    list_filter,
    list_query,
    scope_conditions,
)
from sharpeye.governance.case_record import (
    CaseConflict,
    CaseNotFound,
    event_note,
    extra_of,
    indicator_columns,
    new_row,
    to_case,
    write_row,
)
from sharpeye.governance.case_supervision import CaseSupervising
from sharpeye.governance.dispatch import Dispatcher
from sharpeye.governance.escalation import Supervision
from sharpeye.governance.flow import Action, Actor, Args, Flow, TransitionError, new_case
from sharpeye.governance.indicator import GroupBy, IndicatorRow, Period, compute
from sharpeye.governance.merge import MergeProposal, mergeable, propose
from sharpeye.governance.sla import SlaPolicy
from sharpeye.governance.statistic import Statistics
from sharpeye.governance.store import (
    CaseAlarmRow,
    CaseAssistRow,
    CaseEventRow,
    CaseIncidentRow,
    CaseRow,
    Database,
    OutboxRow,
)
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from sharpeye.clock import Clock
from sharpeye.keys import Keys

# Kept for the callers of this module: the list and the record are named here too.
__all__ = [
    "COUNT_CAP",
    "CaseConflict",
    "CaseFilter",
    "CaseListPage",
    "CaseNotFound",
    "CaseScope",
    "CaseService",
    "extra_of",
    "indicator_columns",
    "list_filter",
    "list_query",
    "new_row",
    "scope_conditions",
    "to_case",
    "write_row",
]


class CaseService(CaseQueries, CaseSupervising):
    """Case operations: reads (``CaseQueries``), supervision (``CaseSupervising``) and the flow's actions here."""

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
        session.add(CaseEventRow(**_event_values(case_id, event)))

    @staticmethod
    def enqueue(session: AsyncSession, stream: str, payload: dict[str, str], now: datetime) -> None:
        session.add(OutboxRow(stream=stream, payload=payload, created_at=now))

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
            # The history and the outbox rows as two bulk INSERTs (executemany, in order): added one by one, the
            # ORM inserted each row by itself to read its id back, seven statements for an alarm's case (the
            # dearest part of a 研判 confirmation, bench/alarm_handling.py).
            await session.execute(insert(CaseEventRow), [_event_values(case_id, s.event) for s in steps])
            outbox = [{"stream": self.keys.case_events, "payload": _event_payload(s.event), "created_at": now}
                      for s in steps]  # fmt: skip
            if case.stage is Stage.dispatched and case.department:
                queue = {"case_id": case_id, "department": case.department}
                outbox.append({"stream": self.keys.case_queue(case.department), "payload": queue, "created_at": now})
            await session.execute(insert(OutboxRow), outbox)
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
            if step.event.action == Action.assist:  # the co-handling departments find the case, and are told
                for department in filter(None, step.event.data.get("departments", "").split(",")):
                    session.add(CaseAssistRow(case_id=case_id, department=department))
                    self.enqueue(session, self.keys.case_queue(department),
                                 {"case_id": case_id, "department": department, "assist": "1"}, now)  # fmt: skip
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

    async def rate(self, case_id: str, satisfaction: Satisfaction, comment: str, actor: str) -> Case:
        """The reporter's rating of a closed case (回访/评价), once: TransitionError when the case is not closed or
        is rated already; CaseNotFound; CaseConflict when it changed meanwhile."""
        now = self.clock.now()
        async with self.db.sessions() as session:
            row = await session.get(CaseRow, case_id)
            if row is None:
                raise CaseNotFound(case_id)
            case = to_case(row)
            if case.stage is not Stage.closed:
                raise TransitionError("rate", f"the case is {case.stage} ({case.stage.label_zh}): only a closed case "
                                              "is rated")  # fmt: skip
            if case.satisfaction is not None:
                raise TransitionError("rate", "the case is rated already")
            new = case.model_copy(
                update={"satisfaction": satisfaction, "rated_at": now, "updated_at": max(now, case.updated_at)}
            )
            result = await session.execute(
                update(CaseRow)
                .where(CaseRow.id == case_id, CaseRow.updated_at == case.updated_at, CaseRow.satisfaction.is_(None))
                .values(updated_at=new.updated_at, extra=extra_of(new), **indicator_columns(new))
                .execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 1) != 1:
                await session.rollback()
                raise CaseConflict(f"case {case_id} changed while it was rated; read it again")
            event = CaseEvent(at=now, action="rate", actor=actor, role="reporter", from_stage=Stage.closed,
                              to_stage=Stage.closed, note=comment, case_id=case_id,
                              data={"satisfaction": satisfaction.value})  # fmt: skip
            self.add_event(session, case_id, event)
            self.enqueue(session, self.keys.case_events, _event_payload(event), now)
            await session.commit()
        return new


def _event_values(case_id: str, event: CaseEvent) -> dict[str, object]:
    return {
        "case_id": case_id,
        "at": event.at,
        "action": event.action,
        "actor": event.actor,
        "from_stage": event.from_stage.value if event.from_stage else None,
        "to_stage": event.to_stage.value,
        "note": event_note(event),
    }


def _event_payload(event: CaseEvent) -> dict[str, str]:
    return {
        "case_id": event.case_id,
        "action": event.action,
        "actor": event.actor,
        "from": event.from_stage.value if event.from_stage else "",
        "to": event.to_stage.value,
        "at": event.at.isoformat(),
    }
