"""The indicators of ``governance.indicator`` computed by the database (GROUP BY), for ``GET /api/stats``.

Same definitions, same ``IndicatorRow``s: the pure functions are the reference and the tests compare the
two (on SQLite and PostgreSQL). Counts are aggregated in SQL over the ``cases`` table, selected by the
indexed ``accepted_at`` column (立案 time) and summing the ``returns``/``extensions``/``reworks`` columns
(copies of the case's fields kept beside its ``extra`` JSON: parsing JSON per row cost seconds per
million cases); only open cases are read into Python, to compute their light at ``as_of`` on the working
calendar. Grouping by period runs one aggregate per period bucket, with bucket bounds computed in the
site's time zone (Asia/Shanghai midnight, Monday weeks, calendar months), so no dialect-specific date
truncation is needed and both databases bucket identically whatever their session time zone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sharpeye.governance.case import Satisfaction, Stage
from sharpeye.governance.case_query import CaseScope, scope_conditions
from sharpeye.governance.case_record import to_case
from sharpeye.governance.indicator import GroupBy, IndicatorRow, Period, period_key
from sharpeye.governance.sla import SlaPolicy
from sharpeye.governance.store import CaseRow, Database
from sqlalchemy import Float, and_, case, cast, func, literal, or_, select
from sqlalchemy.sql.elements import ColumnElement

_COUNTED_OUT = [Stage.cancelled.value, Stage.merged.value, Stage.reported.value]
_HANDLED = [Stage.feedback.value, Stage.verifying.value, Stage.closed.value]
_OPEN = [s.value for s in Stage if s.open]
_SATISFIED = [s.value for s in Satisfaction if s.counts_as_satisfied]


def period_buckets(
    start: datetime, end: datetime, period: Period, timezone: str
) -> list[tuple[str, datetime, datetime]]:
    """(key, lower, upper) per period between start and end, bounds in UTC, cut to [start, end)."""
    zone = ZoneInfo(timezone)
    local = start.astimezone(zone)
    if period is Period.day:
        lo = local.replace(hour=0, minute=0, second=0, microsecond=0)
    elif period is Period.week:
        lo = (local - timedelta(days=local.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    else:
        lo = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    out: list[tuple[str, datetime, datetime]] = []
    while lo.astimezone(UTC) < end:
        if period is Period.day:
            hi = (lo + timedelta(days=1)).replace(tzinfo=zone)
        elif period is Period.week:
            hi = (lo + timedelta(days=7)).replace(tzinfo=zone)
        else:
            hi = lo.replace(year=lo.year + (lo.month == 12), month=lo.month % 12 + 1)
        out.append((period_key(lo, period, zone), max(lo.astimezone(UTC), start), min(hi.astimezone(UTC), end)))
        lo = hi
    return out


class Statistics:
    """Indicator queries over the durable record."""

    def __init__(self, db: Database, sla: SlaPolicy, timezone: str = "Asia/Shanghai") -> None:
        self.db = db
        self.sla = sla
        self.timezone = timezone

    def _group_column(self, group: GroupBy) -> ColumnElement[Any]:
        match group:
            case GroupBy.department:
                return func.coalesce(CaseRow.department, literal("-"))
            case GroupBy.org_unit:
                return CaseRow.org_unit.expression
            case GroupBy.category:
                return CaseRow.category.expression
        raise ValueError(f"{group} is not a column grouping")

    def _handling_seconds(self) -> ColumnElement[Any]:
        """closed_at - accepted_at in seconds (SQLite stores times as text; PostgreSQL has intervals)."""
        if self.db.engine.dialect.name == "sqlite":
            return (func.julianday(CaseRow.closed_at) - func.julianday(CaseRow.accepted_at)) * 86400.0
        return func.extract("epoch", CaseRow.closed_at - CaseRow.accepted_at)

    async def indicators(
        self,
        as_of: datetime,
        *,
        by: Sequence[GroupBy] = (),
        period: Period = Period.month,
        start: datetime,
        end: datetime,
        scope: CaseScope | None = None,
    ) -> list[IndicatorRow]:
        """Indicator rows of cases accepted in [start, end), as ``governance.indicator.compute`` gives them;
        only cases within ``scope`` when one is given."""
        if GroupBy.period in by:
            rows: list[IndicatorRow] = []
            where = list(by).index(GroupBy.period)
            rest: list[GroupBy] = [g for g in by if g is not GroupBy.period]
            for key, lo, hi in period_buckets(start, end, period, self.timezone):
                for row in await self._aggregate(as_of, rest, lo, hi, scope):
                    if not row.opened:
                        continue  # an empty bucket: the reference has no row for it either
                    group = list(row.group)
                    group.insert(where, key)
                    row.group = tuple(group)
                    rows.append(row)
            return sorted(rows, key=lambda r: r.group)
        return await self._aggregate(as_of, list(by), start, end, scope)

    async def _aggregate(
        self, as_of: datetime, by: list[GroupBy], start: datetime, end: datetime, scope: CaseScope | None = None
    ) -> list[IndicatorRow]:
        window = and_(
            CaseRow.accepted_at >= start,
            CaseRow.accepted_at < end,
            CaseRow.stage.not_in(_COUNTED_OUT),
            *scope_conditions(scope),
        )
        groups = [self._group_column(g).label(f"g{i}") for i, g in enumerate(by)]
        closed = CaseRow.stage == Stage.closed.value
        due = or_(CaseRow.stage.in_(_HANDLED), and_(CaseRow.due_at.is_not(None), CaseRow.due_at <= as_of))
        on_time = and_(
            closed, CaseRow.closed_at.is_not(None), CaseRow.due_at.is_not(None), CaseRow.closed_at <= CaseRow.due_at
        )

        def count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
            return func.sum(case((condition, 1), else_=0))

        def total(column: ColumnElement[Any]) -> ColumnElement[Any]:
            return func.coalesce(func.sum(column), 0)

        query = select(
            *groups,
            func.count().label("opened"),
            count_if(due).label("due"),
            count_if(closed).label("closed"),
            count_if(on_time).label("on_time"),
            func.coalesce(func.sum(case((closed, cast(self._handling_seconds(), Float)), else_=0.0)), 0.0).label(
                "handling"
            ),
            total(CaseRow.returns.expression).label("returns"),
            total(CaseRow.extensions.expression).label("extensions"),
            total(CaseRow.reworks.expression).label("reworks"),
            count_if(CaseRow.stage == Stage.parked.value).label("parked"),
            count_if(CaseRow.satisfaction.is_not(None)).label("rated"),
            count_if(CaseRow.satisfaction.in_(_SATISFIED)).label("satisfied"),
        ).where(window)
        if groups:
            query = query.group_by(*groups)
        out: dict[tuple[str, ...], IndicatorRow] = {}
        async with self.db.sessions() as session:
            for rec in (await session.execute(query)).all():
                key = tuple(str(rec[i]) for i in range(len(groups)))
                if not groups and not rec.opened:
                    continue
                out[key] = IndicatorRow(
                    group=key,
                    opened=int(rec.opened),
                    due=int(rec.due or 0),
                    closed=int(rec.closed or 0),
                    closed_on_time=int(rec.on_time or 0),
                    handling_s_total=float(rec.handling or 0.0),
                    returns=int(rec.returns or 0),
                    extensions=int(rec.extensions or 0),
                    reworks=int(rec.reworks or 0),
                    parked=int(rec.parked or 0),
                    rated=int(rec.rated or 0),
                    satisfied=int(rec.satisfied or 0),
                )
            # Lights of open cases at as_of: read those cases (the open ones only) and ask the SLA clock.
            opened = await session.stream_scalars(select(CaseRow).where(window, CaseRow.stage.in_(_OPEN)))
            async for row in opened:
                case_ = to_case(row)
                key = tuple(
                    {
                        GroupBy.department: case_.department or "-",
                        GroupBy.org_unit: case_.org_unit,
                        GroupBy.category: case_.category,
                    }[g]
                    for g in by
                )
                target = out.setdefault(key, IndicatorRow(group=key))
                light = self.sla.light(case_, as_of)
                if light is not None and light.value == "red":
                    target.open_red += 1
                elif light is not None and light.value == "yellow":
                    target.open_yellow += 1
                else:
                    target.open_green += 1
        if not by and not out:
            out[()] = IndicatorRow()
        return [out[k] for k in sorted(out)]
