"""The SQL indicators agree with the pure reference on replayed histories, for every grouping."""

from __future__ import annotations

import pytest
from sharpeye.config.governance import Governance
from sharpeye.governance.case import Case, Satisfaction, Stage
from sharpeye.governance.dispatch import Dispatcher
from sharpeye.governance.flow import Flow
from sharpeye.governance.indicator import GroupBy, IndicatorRow, Period, compute
from sharpeye.governance.service import new_row
from sharpeye.governance.sla import SlaPolicy
from sharpeye.governance.statistic import Statistics, period_buckets
from sharpeye.governance.store import Database
from test_indicator import AS_OF, published_month, small_history

from tests.governance.casebook import cst


@pytest.fixture
def db(database: Database) -> Database:
    """SQLite and PostgreSQL (tests/governance/conftest.py)."""
    return database


async def store(db: Database, cases: list[Case]) -> None:
    async with db.sessions() as session:
        session.add_all(new_row(c) for c in cases)
        await session.commit()


def figures(rows: list[IndicatorRow]) -> list[tuple[object, ...]]:
    return [
        (
            r.group, r.opened, r.due, r.closed, r.closed_on_time, round(r.handling_s_total), r.returns,
            r.extensions, r.reworks, r.parked, r.open_green, r.open_yellow, r.open_red,
        )
        for r in rows
    ]  # fmt: skip


GROUPINGS: list[tuple[list[GroupBy], Period]] = [
    ([], Period.month),
    ([GroupBy.department], Period.month),
    ([GroupBy.category], Period.month),
    ([GroupBy.org_unit], Period.month),
    ([GroupBy.period], Period.week),
    ([GroupBy.period], Period.day),
    ([GroupBy.department, GroupBy.period], Period.month),
    ([GroupBy.category, GroupBy.department], Period.month),
]


async def test_small_history_matches_the_reference(
    db: Database, flow: Flow, dispatcher: Dispatcher, sla: SlaPolicy
) -> None:
    cases = list(small_history(flow, dispatcher).cases.values())
    await store(db, cases)
    stats = Statistics(db, sla)
    start, end = cst(2026, 1, 1), cst(2026, 2, 1)
    for by, period in GROUPINGS:
        sql = await stats.indicators(AS_OF, by=by, period=period, start=start, end=end)
        ref = compute(cases, AS_OF, by=by, period=period, start=start, end=end, sla=sla)
        assert figures(sql) == figures(ref), (by, period)


async def test_published_report_from_the_database(
    db: Database, flow: Flow, dispatcher: Dispatcher, sla: SlaPolicy, governance_config: Governance
) -> None:
    cases = list(published_month(flow, dispatcher, sla).cases.values())
    await store(db, cases)
    stats = Statistics(db, sla)
    as_of = cst(2026, 2, 1)
    [month] = await stats.indicators(as_of, start=cst(2026, 1, 1), end=cst(2026, 2, 1))
    assert (month.opened, month.due, month.closed, month.closed_on_time) == (996, 972, 911, 737)
    assert (round(month.close_rate or 0, 4), round(month.on_time_rate or 0, 4)) == (0.9372, 0.7582)
    by = [GroupBy.department, GroupBy.period]
    sql = await stats.indicators(as_of, by=by, period=Period.week, start=cst(2025, 12, 1), end=cst(2026, 3, 1))
    ref = compute(cases, as_of, by=by, period=Period.week, start=cst(2025, 12, 1), end=cst(2026, 3, 1), sla=sla)
    assert figures(sql) == figures(ref)


def test_period_buckets_follow_local_midnight() -> None:
    buckets = period_buckets(cst(2026, 1, 1), cst(2026, 3, 1), Period.month, "Asia/Shanghai")
    assert [(k, lo, hi) for k, lo, hi in buckets] == [
        ("2026-01", cst(2026, 1, 1), cst(2026, 2, 1)),
        ("2026-02", cst(2026, 2, 1), cst(2026, 3, 1)),
    ]
    weeks = period_buckets(cst(2026, 1, 1), cst(2026, 1, 12), Period.week, "Asia/Shanghai")
    assert [k for k, _, _ in weeks] == ["2026-W01", "2026-W02"]
    assert weeks[0][1] == cst(2026, 1, 1) and weeks[1][1] == cst(2026, 1, 5)


async def test_satisfaction_rate_matches_the_reference(
    db: Database, flow: Flow, dispatcher: Dispatcher, sla: SlaPolicy
) -> None:
    """满意率: the reporters' ratings of closed cases (satisfied and basically satisfied over rated), in SQL as in
    the reference, for every grouping."""
    cycle = [Satisfaction.satisfied, Satisfaction.unsatisfied, Satisfaction.basic, None]
    cases = list(small_history(flow, dispatcher).cases.values())
    closed = [c for c in cases if c.stage is Stage.closed]
    assert len(closed) >= 2
    rated = {c.id: cycle[n % len(cycle)] for n, c in enumerate(closed)}
    cases = [c.model_copy(update={"satisfaction": rated.get(c.id)}) for c in cases]
    await store(db, cases)
    stats = Statistics(db, sla)
    start, end = cst(2026, 1, 1), cst(2026, 2, 1)
    for by, period in GROUPINGS:
        sql = await stats.indicators(AS_OF, by=by, period=period, start=start, end=end)
        ref = compute(cases, AS_OF, by=by, period=period, start=start, end=end, sla=sla)
        assert [(r.group, r.rated, r.satisfied) for r in sql] == [(r.group, r.rated, r.satisfied) for r in ref]
    [total] = await stats.indicators(AS_OF, start=start, end=end)
    counted = [rated[c.id] for c in closed if start <= (c.accepted_at or start) < end and rated[c.id] is not None]
    assert total.rated == len(counted) > 0
    assert total.satisfied == sum(1 for s in counted if s is not Satisfaction.unsatisfied)
    assert total.satisfaction_rate == total.satisfied / total.rated
