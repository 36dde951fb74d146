"""Reading cases: the list with its filters and keyset pages, scope, history, counts, and the indicators.

``CaseQueries`` is the reading half of ``governance.service.CaseService``; ``CaseFilter`` and ``CaseScope`` say what
a list or a statistic may show.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sharpeye.config.site import SiteConfig
from sharpeye.governance.case import Case, CaseEvent, Stage
from sharpeye.governance.case_record import to_case
from sharpeye.governance.flow import Flow
from sharpeye.governance.store import CaseAlarmRow, CaseAssistRow, CaseEventRow, CaseRow, Database
from sqlalchemy import Select, false, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from sharpeye.clock import Clock


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


@dataclass(frozen=True, slots=True)
class CaseScope:
    """Which cases a caller may see: those in ``org_units`` (empty: any unit) and, when ``department`` is set,
    dispatched to that department; when ``departments`` is set, dispatched to one of them (a grid worker's or
    field handler's tasks). ``nothing``: none at all (e.g. a department handler without a department)."""

    org_units: Sequence[str] = ()
    department: str | None = None
    nothing: bool = False
    departments: Sequence[str] = ()


def scope_conditions(scope: CaseScope | None) -> list[ColumnElement[bool]]:
    """The WHERE conditions of a scope (none for no scope)."""
    if scope is None:
        return []
    if scope.nothing:
        return [false()]
    out: list[ColumnElement[bool]] = []
    if scope.org_units:
        out.append(CaseRow.org_unit.in_(list(scope.org_units)))
    if scope.department is not None:  # dispatched to the department, or co-handled by it (协办)
        assisted = select(CaseAssistRow.case_id).where(CaseAssistRow.department == scope.department)
        out.append(or_(CaseRow.department == scope.department, CaseRow.id.in_(assisted)))
    if scope.departments:
        assisted = select(CaseAssistRow.case_id).where(CaseAssistRow.department.in_(list(scope.departments)))
        out.append(or_(CaseRow.department.in_(list(scope.departments)), CaseRow.id.in_(assisted)))
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


class CaseQueries:
    """Reads of the case record (the lights are as of now)."""

    site: SiteConfig
    db: Database
    clock: Clock
    flow: Flow

    def lit(self, case: Case) -> Case:
        """The case with its light as of now (the stored light is the one at its last change)."""
        if case.sla is None or case.dispatched_at is None or not case.stage.open:
            return case
        light = self.flow.sla.light(case, self.clock.now())
        return case if light == case.light else case.model_copy(update={"light": light})

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
