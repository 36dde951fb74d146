"""Indicators over replayed case histories, checked against figures computed by hand, including a month
built to reproduce a published report: 立案 996, 应结案 972, 结案 911 (93.72%), 按期结案 737 (75.82%)."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

from sharpeye.config.rule import Severity
from sharpeye.governance.case import Case, Source, Stage
from sharpeye.governance.dispatch import Dispatcher
from sharpeye.governance.flow import Action, Actor, Args, Flow, new_case
from sharpeye.governance.indicator import GroupBy, Period, as_dict, compute, to_csv
from sharpeye.governance.sla import SlaPolicy

from tests.governance.casebook import OPERATOR, SUPERVISOR, cst, handler

H = 3600.0


class Book:
    """Replays case histories through the real flow."""

    def __init__(self, flow: Flow, dispatcher: Dispatcher) -> None:
        self.flow = flow
        self.dispatcher = dispatcher
        self.cases: dict[str, Case] = {}
        self.n = 0

    def open(
        self, at: datetime, category: str = "dispute", grid: str = "hedong-g1", severity: Severity = Severity.minor
    ) -> str:
        self.n += 1
        cid = f"QS-{self.n:05d}"
        case = new_case(
            case_id=cid,
            title="测试",
            category=category,
            severity=severity,
            source=Source.hotline,
            org_unit=grid,
            actor=OPERATOR,
            now=at,
        ).case
        case = self.flow.apply(case, Action.accept, OPERATOR, at).case
        choice = self.dispatcher.choose(category, grid, severity)
        self.cases[cid] = self.flow.apply(case, Action.dispatch, OPERATOR, at, Args(assignment=choice)).case
        return cid

    def do(self, cid: str, action: Action, at: datetime, actor: Actor | None = None, **kw: object) -> Case:
        case = self.cases[cid]
        if actor is None:
            if action in (Action.claim, Action.feedback, Action.request_extension, Action.return_):
                actor = handler(case.department or "")
            elif action in (Action.park, Action.approve_extension, Action.reject_extension):
                actor = SUPERVISOR
            else:
                actor = OPERATOR
        self.cases[cid] = self.flow.apply(case, action, actor, at, Args(**kw)).case  # type: ignore[arg-type]
        return self.cases[cid]

    def close(self, cid: str, at: datetime) -> None:
        self.do(cid, Action.claim, at)
        self.do(cid, Action.feedback, at, reason="已处置")
        self.do(cid, Action.verify, at)
        self.do(cid, Action.pass_check, at)


def small_history(flow: Flow, dispatcher: Dispatcher) -> Book:
    b = Book(flow, dispatcher)
    a = b.open(cst(2026, 1, 5, 9))  # dispute → 河东社区居委会, due Wed 7 Jan 17:00
    b.do(a, Action.claim, cst(2026, 1, 5, 10))
    b.do(a, Action.feedback, cst(2026, 1, 6, 10), reason="已调解")
    b.do(a, Action.verify, cst(2026, 1, 6, 14))
    b.do(a, Action.pass_check, cst(2026, 1, 6, 15))  # on time, 30 h after 立案

    bb = b.open(cst(2026, 1, 5, 10))
    b.do(bb, Action.return_, cst(2026, 1, 5, 11), reason="需司法所调解")
    sfs = dispatcher.override("dispute", "hedong-g1", "qs-sfs", OPERATOR, "回退改派")
    b.do(bb, Action.reassign, cst(2026, 1, 5, 12), assignment=sfs)  # due Thu 8 Jan 12:00
    b.do(bb, Action.claim, cst(2026, 1, 5, 13))
    b.do(bb, Action.feedback, cst(2026, 1, 9, 10), reason="已调解")
    b.do(bb, Action.verify, cst(2026, 1, 9, 10, 30))
    b.do(bb, Action.fail_check, cst(2026, 1, 9, 11), reason="当事人不认可")
    b.do(bb, Action.feedback, cst(2026, 1, 9, 14), reason="再次调解")
    b.do(bb, Action.verify, cst(2026, 1, 9, 14, 30))
    b.do(bb, Action.pass_check, cst(2026, 1, 9, 15))  # late; 101 h after 立案

    c = b.open(cst(2026, 1, 12, 9), "perimeter_intrusion", severity=Severity.major)  # 2 plain hours
    b.do(c, Action.claim, cst(2026, 1, 12, 9, 30))  # never finished: overdue

    d = b.open(cst(2026, 1, 19, 9), grid="shanxia-g1")  # due Wed 21 Jan 17:00
    b.do(d, Action.claim, cst(2026, 1, 19, 9, 30))
    b.do(d, Action.request_extension, cst(2026, 1, 19, 10), reason="待鉴定", extra_s=8 * H)  # still pending

    e = b.open(cst(2026, 1, 14, 9), grid="hedong-g2")
    b.do(e, Action.claim, cst(2026, 1, 14, 9, 30))
    b.do(e, Action.request_extension, cst(2026, 1, 14, 10), reason="待协调", extra_s=8 * H)
    b.do(e, Action.approve_extension, cst(2026, 1, 14, 11))  # limit 32 h, paused 1 h: due Tue 20 Jan 10:00
    b.do(e, Action.feedback, cst(2026, 1, 16, 16), reason="已处置")  # handled, waiting for the check

    f = b.open(cst(2026, 1, 6, 9), grid="shanxia-g2")  # due Thu 8 Jan 17:00
    b.do(f, Action.park, cst(2026, 1, 7, 9), reason="历史遗留")

    g = b.open(cst(2026, 1, 7, 9))
    b.cases[g] = b.cases[g].model_copy(update={"stage": Stage.cancelled})  # 注销: never counted

    h = b.open(cst(2026, 1, 15, 9), "environment")  # → 街道环保所, due Mon 19 Jan 17:00
    b.do(h, Action.claim, cst(2026, 1, 15, 10))
    return b


AS_OF = cst(2026, 1, 20, 0)


def test_hand_computed_small_history(flow: Flow, dispatcher: Dispatcher, sla: SlaPolicy) -> None:
    b = small_history(flow, dispatcher)
    assert b.cases["QS-00005"].due_at == cst(2026, 1, 20, 10)
    [total] = compute(b.cases.values(), AS_OF, sla=sla)
    assert (total.opened, total.due, total.closed, total.closed_on_time) == (7, 6, 2, 1)
    assert as_dict(total)["close_rate"] == 33.33
    assert as_dict(total)["on_time_rate"] == 16.67
    assert total.avg_handling_s == (30 * H + 101 * H) / 2
    assert (total.returns, total.extensions, total.reworks, total.parked) == (1, 1, 1, 1)
    # Open by light at AS_OF: D paused at 1 h of 24 (green), E 31 of 32 h (yellow), C and H overdue (red).
    assert (total.open_green, total.open_yellow, total.open_red) == (1, 1, 2)


def test_grouped_by_department_category_unit_and_week(flow: Flow, dispatcher: Dispatcher, sla: SlaPolicy) -> None:
    b = small_history(flow, dispatcher)

    def figures(rows: list[object]) -> dict[tuple[str, ...], tuple[int, int, int, int]]:
        return {r.group: (r.opened, r.due, r.closed, r.closed_on_time) for r in rows}  # type: ignore[attr-defined]

    by_dept = compute(b.cases.values(), AS_OF, by=[GroupBy.department], sla=sla)
    assert figures(by_dept) == {  # type: ignore[arg-type]
        ("hd-jwh",): (3, 3, 1, 1),
        ("qs-sfs",): (1, 1, 1, 0),
        ("sx-cwh",): (2, 1, 0, 0),
        ("qs-hbs",): (1, 1, 0, 0),
    }
    by_cat = compute(b.cases.values(), AS_OF, by=[GroupBy.category], sla=sla)
    assert figures(by_cat) == {  # type: ignore[arg-type]
        ("dispute",): (5, 4, 2, 1),
        ("environment",): (1, 1, 0, 0),
        ("perimeter_intrusion",): (1, 1, 0, 0),
    }
    by_week = compute(b.cases.values(), AS_OF, by=[GroupBy.period], period=Period.week, sla=sla)
    assert figures(by_week) == {  # type: ignore[arg-type]
        ("2026-W02",): (3, 3, 2, 1),
        ("2026-W03",): (3, 3, 0, 0),
        ("2026-W04",): (1, 0, 0, 0),
    }
    village = {"hedong-g1": "hedong", "hedong-g2": "hedong", "shanxia-g1": "shanxia", "shanxia-g2": "shanxia"}
    by_unit = compute(b.cases.values(), AS_OF, by=[GroupBy.org_unit], unit_of=village.__getitem__, sla=sla)
    assert figures(by_unit) == {("hedong",): (5, 5, 2, 1), ("shanxia",): (2, 1, 0, 0)}  # type: ignore[arg-type]
    by_day = compute(b.cases.values(), AS_OF, by=[GroupBy.department, GroupBy.period], period=Period.day, sla=sla)
    assert [r.group for r in by_day][:2] == [("hd-jwh", "2026-01-05"), ("hd-jwh", "2026-01-12")]

    text = to_csv(by_dept, [GroupBy.department])
    assert text.startswith("\ufeff部门,立案,应结案,结案,按期结案,结案率,按期结案率")
    parsed = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert {r["部门"]: (r["结案率"], r["挂账"]) for r in parsed}["sx-cwh"] == ("0.0", "1")
    assert {r["部门"]: r["平均处置时长(小时)"] for r in parsed}["qs-sfs"] == "101.0"


def published_month(flow: Flow, dispatcher: Dispatcher, sla: SlaPolicy) -> Book:
    """A January built so that the figures match a published report, replayed through the flow."""
    b = Book(flow, dispatcher)
    workdays = [cst(2026, 1, d, 9) for d in range(5, 31) if sla.calendar.is_workday(cst(2026, 1, d).date())]
    early = [d for d in workdays if d < cst(2026, 1, 17)]

    for i in range(737):  # closed on time: within hours of dispatch
        at = workdays[i % len(workdays)] + timedelta(minutes=7 * (i % 60))
        b.close(b.open(at, grid=("hedong-g1", "shanxia-g2")[i % 2]), at + timedelta(hours=3))
    for i in range(174):  # closed late: twelve days after dispatch, still within January
        at = early[i % len(early)] + timedelta(minutes=11 * (i % 30))
        b.close(b.open(at), at + timedelta(days=12))
    for i in range(20):  # handled, not yet checked; deadline still ahead
        cid = b.open(cst(2026, 1, 29, 10) + timedelta(minutes=i))
        b.do(cid, Action.claim, cst(2026, 1, 29, 11))
        b.do(cid, Action.feedback, cst(2026, 1, 30, 11), reason="已处置")
    for i in range(30):  # overdue, never handled
        cid = b.open(early[i % len(early)] + timedelta(minutes=i))
        b.do(cid, Action.claim, cst(2026, 1, 17, 11))
    for i in range(11):  # parked past the deadline
        cid = b.open(cst(2026, 1, 6, 9) + timedelta(minutes=i))
        b.do(cid, Action.park, cst(2026, 1, 7, 9), reason="需区级统筹")
    for i in range(24):  # dispatched at the end of the month: not due yet
        cid = b.open(cst(2026, 1, 29, 14) + timedelta(minutes=i))
        b.do(cid, Action.claim, cst(2026, 1, 30, 9))
    # Not counted: cancelled, merged, merely reported, and cases of other months.
    for i in range(5):
        cid = b.open(cst(2026, 1, 12, 9) + timedelta(minutes=i))
        b.cases[cid] = b.cases[cid].model_copy(update={"stage": Stage.cancelled})
    for i in range(3):
        c = new_case(
            case_id=f"QS-M{i}",
            title="重复",
            category="dispute",
            severity=Severity.minor,
            source=Source.resident,
            org_unit="hedong-g1",
            actor=OPERATOR,
            now=cst(2026, 1, 13, 9),
        ).case
        b.cases[c.id] = flow.apply(c, Action.merge, OPERATOR, cst(2026, 1, 13, 9), Args(target="QS-00001")).case
        b.cases[f"QS-R{i}"] = c.model_copy(update={"id": f"QS-R{i}"})
    for day in (cst(2025, 12, 30, 10), cst(2026, 2, 2, 10)):
        b.close(b.open(day), day + timedelta(hours=1))

    return b


def test_published_monthly_report(flow: Flow, dispatcher: Dispatcher, sla: SlaPolicy) -> None:
    b = published_month(flow, dispatcher, sla)
    as_of = cst(2026, 2, 1, 0)
    [month] = compute(b.cases.values(), as_of, start=cst(2026, 1, 1), end=cst(2026, 2, 1), sla=sla)
    figures = as_dict(month)
    assert (figures["opened"], figures["due"], figures["closed"], figures["closed_on_time"]) == (996, 972, 911, 737)
    assert (figures["close_rate"], figures["on_time_rate"]) == (93.72, 75.82)
    assert figures["parked"] == 11
    assert (month.open_green + month.open_yellow, month.open_red) == (44, 30)
    by_month = compute(b.cases.values(), as_of, by=[GroupBy.period], sla=sla)
    assert [(r.group, r.opened) for r in by_month] == [(("2025-12",), 1), (("2026-01",), 996), (("2026-02",), 1)]
