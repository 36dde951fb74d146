"""Working calendar and SLA clock across National Day 2025 and Spring Festival 2026, with adjusted Saturdays.

Facts from the State Council's notices (through the chinesecalendar package): National Day 2025 is off
1–8 October, with Sunday 28 September and Saturday 11 October worked; Spring Festival 2026 is off 15–23
February, with Saturday 14 February and Saturday 28 February worked. Working hours here: 09:00–17:00.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sharpeye.config.governance import SlaRule
from sharpeye.config.org import Level
from sharpeye.config.rule import Severity
from sharpeye.governance.calendar import CalendarError, WorkingCalendar
from sharpeye.governance.case import Case, Light, Source
from sharpeye.governance.flow import Action, Args, Assignment, Flow, new_case
from sharpeye.governance.sla import SlaPolicy

from sharpeye.clock import ManualClock
from tests.governance.casebook import OPERATOR, SUPERVISOR, cst, handler

H = 3600.0


def test_workdays_follow_the_official_adjustments(calendar: WorkingCalendar) -> None:
    assert not calendar.is_workday(date(2025, 10, 1))  # National Day, a Wednesday
    assert not calendar.is_workday(date(2025, 10, 8))
    assert calendar.is_workday(date(2025, 9, 28))  # Sunday worked
    assert calendar.is_workday(date(2025, 10, 11))  # Saturday worked
    assert not calendar.is_workday(date(2025, 10, 18))  # an ordinary Saturday
    assert calendar.is_workday(date(2026, 2, 14))  # Saturday worked before Spring Festival
    assert not calendar.is_workday(date(2026, 2, 17))  # 初一
    assert calendar.is_workday(date(2026, 2, 28))  # Saturday worked after it


def test_two_working_days_across_national_day(calendar: WorkingCalendar) -> None:
    # Tue 30 Sep 10:00: 7 h that day, 1–8 Oct off, 8 h on Thu 9 Oct, the last hour on Fri 10 Oct.
    due = calendar.add(cst(2025, 9, 30, 10), 2 * calendar.day_seconds)
    assert due == cst(2025, 10, 10, 10)
    assert calendar.elapsed(cst(2025, 9, 30, 10), due) == 16 * H


def test_adjusted_saturday_is_worked(calendar: WorkingCalendar) -> None:
    # Fri 10 Oct 15:00 plus one working day: 2 h on Friday, then Saturday 11 Oct is a working day.
    due = calendar.add(cst(2025, 10, 10, 15), calendar.day_seconds)
    assert due == cst(2025, 10, 11, 15)
    # The next Saturday is not worked: the same limit from Fri 17 Oct runs into Monday.
    assert calendar.add(cst(2025, 10, 17, 15), calendar.day_seconds) == cst(2025, 10, 20, 15)


def test_spring_festival_2026(calendar: WorkingCalendar) -> None:
    # Fri 13 Feb 16:00 + 3 working hours: 1 h on Friday, 2 h on the worked Saturday 14 Feb.
    assert calendar.add(cst(2026, 2, 13, 16), 3 * H) == cst(2026, 2, 14, 11)
    # Sat 14 Feb 10:00 + 2 working days: 7 h that Saturday, 15–23 Feb off, 8 h on Tue 24 Feb, 1 h on 25 Feb.
    assert calendar.add(cst(2026, 2, 14, 10), 16 * H) == cst(2026, 2, 25, 10)
    # The whole holiday has no working time at all.
    assert calendar.elapsed(cst(2026, 2, 14, 17), cst(2026, 2, 24, 9)) == 0


def test_start_outside_working_hours_counts_from_next_opening(calendar: WorkingCalendar) -> None:
    assert calendar.add(cst(2025, 9, 30, 20), 1 * H) == cst(2025, 10, 9, 10)
    assert calendar.add(cst(2025, 10, 9, 7), 8 * H) == cst(2025, 10, 9, 17)


def test_naive_and_unknown_years_are_refused(calendar: WorkingCalendar) -> None:
    with pytest.raises(CalendarError, match="naive"):
        calendar.elapsed(cst(2025, 1, 1).replace(tzinfo=None), cst(2025, 1, 2))
    with pytest.raises(CalendarError, match="chinesecalendar"):
        calendar.is_workday(date(1990, 1, 2))
    with pytest.raises(CalendarError, match="start < end"):
        WorkingCalendar(18, 9)


@settings(max_examples=150, deadline=None)
@given(
    start_minutes=st.integers(min_value=0, max_value=60 * 24 * 200),
    seconds=st.integers(min_value=0, max_value=int(30 * 8 * H)),
)
def test_add_and_elapsed_are_inverse(calendar: WorkingCalendar, start_minutes: int, seconds: int) -> None:
    start = cst(2025, 9, 1) + timedelta(minutes=start_minutes)
    due = calendar.add(start, seconds)
    assert calendar.elapsed(start, due) == pytest.approx(seconds)
    assert due >= start
    if seconds > 0:
        assert calendar.is_working_time(due - timedelta(seconds=1))


def _dispatched(flow: Flow, clock: ManualClock, category: str = "dispute") -> Case:
    case = new_case(
        case_id="QS-1",
        title="邻里纠纷",
        category=category,
        severity=Severity.minor,
        source=Source.grid_worker,
        org_unit="hedong-g1",
        actor=OPERATOR,
        now=clock.now(),
    ).case
    case = flow.apply(case, Action.accept, OPERATOR, clock.now()).case
    assignment = Assignment("hd-jwh", Level.village, "hedong")
    return flow.apply(case, Action.dispatch, OPERATOR, clock.now(), Args(assignment=assignment)).case


def test_lights_and_extension_pause_across_the_holiday(calendar: WorkingCalendar) -> None:
    sla = SlaPolicy([SlaRule(category="dispute", limit=2, unit="working_days", yellow_share=0.75)], calendar)
    flow = Flow(sla)
    clock = ManualClock(cst(2025, 9, 30, 10))
    case = _dispatched(flow, clock)
    assert case.due_at == cst(2025, 10, 10, 10)
    assert case.light is Light.green
    worker = handler("hd-jwh")
    case = flow.apply(case, Action.claim, worker, clock.now()).case

    # The whole holiday passes: no working time is used, the light stays green.
    clock.set(cst(2025, 10, 8, 23))
    assert sla.read(case, clock.now()).used_s == 7 * H
    assert sla.light(case, clock.now()) is Light.green

    # 12 h used (75% of 16 h) at Thu 9 Oct 14:00: yellow.
    clock.set(cst(2025, 10, 9, 13, 59))
    assert sla.light(case, clock.now()) is Light.green
    clock.set(cst(2025, 10, 9, 14))
    assert sla.light(case, clock.now()) is Light.yellow

    # An extension request at 16:00 pauses the clock over the night and into Friday.
    clock.set(cst(2025, 10, 9, 16))
    case = flow.apply(
        case, Action.request_extension, worker, clock.now(), Args(reason="需协调产权单位", extra_s=8 * H)
    ).case
    clock.set(cst(2025, 10, 10, 11))  # past the original due time, but paused: not red
    assert sla.read(case, clock.now()).paused
    assert sla.light(case, clock.now()) is Light.yellow
    assert sla.read(case, clock.now()).used_s == 14 * H

    # Approved at Fri 11:00 with the 8 h asked for: paused 1 h Thu + 2 h Fri = 3 h. 14 h of the 24 h limit
    # are used, 10 h remain: Fri 11–17 (6 h) and the worked Saturday 11 Oct 09–13 (4 h).
    case = flow.apply(case, Action.approve_extension, SUPERVISOR, clock.now()).case
    assert case.extensions == 1
    assert case.due_at == cst(2025, 10, 11, 13)
    assert sla.light(case, clock.now()) is Light.green  # 14 of 24 h used
    clock.set(cst(2025, 10, 11, 12, 59))
    assert sla.light(case, clock.now()) is Light.yellow
    clock.set(cst(2025, 10, 11, 13, 0, 1))
    assert sla.light(case, clock.now()) is Light.red


def test_rejected_extension_moves_the_deadline_by_the_paused_working_time(calendar: WorkingCalendar) -> None:
    sla = SlaPolicy([SlaRule(category="dispute", limit=2, unit="working_days")], calendar)
    flow = Flow(sla)
    clock = ManualClock(cst(2025, 9, 30, 10))
    case = _dispatched(flow, clock)
    worker = handler("hd-jwh")
    case = flow.apply(case, Action.claim, worker, clock.now()).case
    clock.set(cst(2025, 9, 30, 16))
    case = flow.apply(case, Action.request_extension, worker, clock.now(), Args(reason="等待鉴定", extra_s=H)).case
    clock.set(cst(2025, 10, 9, 11))  # paused: 1 h on 30 Sep + 2 h on 9 Oct; the holiday counts nothing
    case = flow.apply(case, Action.reject_extension, SUPERVISOR, clock.now(), Args(reason="时限充足")).case
    assert case.extensions == 0
    assert case.due_at == cst(2025, 10, 10, 13)
    assert case.sla is not None and case.sla.paused_s == 3 * H


def test_plain_hour_limits_ignore_the_calendar(sla: SlaPolicy) -> None:
    # Demo config: perimeter_intrusion has 2 plain hours, also on National Day.
    state, due = sla.start("perimeter_intrusion", cst(2025, 10, 1, 23))
    assert due == cst(2025, 10, 2, 1)
    assert state.limit_s == 2 * H
    # fire: 1 h; device_fault: 2 working days of 8 h; other categories: the '*' rule, 3 working days.
    assert sla.start("fire", cst(2025, 10, 1, 12))[1] == cst(2025, 10, 1, 13)
    assert sla.start("device_fault", cst(2025, 10, 10, 9))[1] == cst(2025, 10, 11, 17)
    assert sla.rule_for("anything-else").limit == 3
