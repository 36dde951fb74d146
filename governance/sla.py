"""SLA clock and light of a case: limit per category, started at dispatch, paused while an extension waits.

A limit in working hours or working days counts working time on the Chinese calendar; a limit in hours
counts every second. The due time is ``measure.add(dispatched_at, limit + paused)``: time spent paused
(an extension request pending approval) moves the deadline by exactly the working time it took.
Light: green until ``yellow_share`` of the limit is used, yellow after, red past the due time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sharpeye.config.governance import Governance, SlaRule
from sharpeye.governance.calendar import ElapsedTime, Measure, WorkingCalendar
from sharpeye.governance.case import Case, ClockUnit, Light, SlaState

_DEFAULT_RULE = SlaRule(category="*", limit=3, unit="working_days")


class SlaError(ValueError):
    """A clock operation that does not fit the case's state (no clock, already paused, ...)."""


@dataclass(frozen=True, slots=True)
class ClockReading:
    """What the clock says about a case at one instant."""

    used_s: float
    limit_s: float
    due_at: datetime | None
    light: Light | None
    paused: bool

    @property
    def share(self) -> float:
        return self.used_s / self.limit_s if self.limit_s > 0 else 1.0


class SlaPolicy:
    """The SLA table of a site with its working calendar."""

    def __init__(self, rules: list[SlaRule], calendar: WorkingCalendar) -> None:
        self.rules = list(rules)
        self.calendar = calendar
        self._plain = ElapsedTime()

    @classmethod
    def from_config(cls, governance: Governance, timezone: str = "Asia/Shanghai") -> SlaPolicy:
        start, end = governance.working_hours
        return cls(governance.sla, WorkingCalendar(start, end, timezone))

    def rule_for(self, category: str) -> SlaRule:
        """The first rule naming the category, else the first '*' rule, else 3 working days."""
        for rule in self.rules:
            if rule.category == category:
                return rule
        for rule in self.rules:
            if rule.category == "*":
                return rule
        return _DEFAULT_RULE

    def measure(self, unit: ClockUnit) -> Measure:
        return self._plain if unit is ClockUnit.hours else self.calendar

    def unit_seconds(self, unit: ClockUnit) -> float:
        """Measured seconds in one unit of a limit."""
        return self.calendar.day_seconds if unit is ClockUnit.working_days else 3600.0

    # --- clock operations: each returns the new SlaState and due time --------------------------
    def start(self, category: str, dispatched_at: datetime) -> tuple[SlaState, datetime]:
        rule = self.rule_for(category)
        unit = ClockUnit(rule.unit)
        state = SlaState(unit=unit, limit_s=rule.limit * self.unit_seconds(unit), yellow_share=rule.yellow_share)
        return state, self.due(state, dispatched_at)

    def due(self, state: SlaState, dispatched_at: datetime) -> datetime:
        return self.measure(state.unit).add(dispatched_at, state.limit_s + state.paused_s)

    def pause(self, state: SlaState, now: datetime) -> SlaState:
        if state.paused_at is not None:
            raise SlaError("the clock is already paused")
        return state.model_copy(update={"paused_at": now})

    def resume(
        self, state: SlaState, dispatched_at: datetime, now: datetime, extra_s: float = 0
    ) -> tuple[SlaState, datetime]:
        """End a pause; ``extra_s`` (measured seconds) is an approved extension added to the limit."""
        if state.paused_at is None:
            raise SlaError("the clock is not paused")
        if extra_s < 0:
            raise SlaError("an extension cannot be negative")
        paused = self.measure(state.unit).elapsed(state.paused_at, now)
        new = state.model_copy(
            update={
                "paused_at": None,
                "requested_s": 0,
                "paused_s": state.paused_s + paused,
                "limit_s": state.limit_s + extra_s,
            }
        )
        return new, self.due(new, dispatched_at)

    # --- reading the clock ------------------------------------------------------------------------
    def read(self, case: Case, now: datetime) -> ClockReading:
        """Used time and light of a case at ``now``; closed cases are read at their closing time."""
        if case.sla is None or case.dispatched_at is None:
            return ClockReading(used_s=0, limit_s=0, due_at=case.due_at, light=None, paused=False)
        state = case.sla
        at = case.closed_at if case.closed_at is not None and case.closed_at < now else now
        measure = self.measure(state.unit)
        paused = state.paused_s
        if state.paused_at is not None:
            paused += measure.elapsed(state.paused_at, at)
        used = max(0.0, measure.elapsed(case.dispatched_at, at) - paused)
        due = case.due_at if case.due_at is not None else self.due(state, case.dispatched_at)
        if (state.paused_at is None and at > due) or used > state.limit_s:
            light = Light.red
        elif used >= state.yellow_share * state.limit_s:
            light = Light.yellow
        else:
            light = Light.green
        return ClockReading(
            used_s=used, limit_s=state.limit_s, due_at=due, light=light, paused=state.paused_at is not None
        )

    def light(self, case: Case, now: datetime) -> Light | None:
        return self.read(case, now).light

    def at_share(self, case: Case, share: float, after_s: float = 0) -> datetime | None:
        """The instant the case will have used ``share`` of its limit plus ``after_s`` measured seconds,
        assuming no further pause (None while paused: the time is unknown until the clock resumes)."""
        if case.sla is None or case.dispatched_at is None or case.sla.paused_at is not None:
            return None
        state = case.sla
        return self.measure(state.unit).add(case.dispatched_at, share * state.limit_s + after_s + state.paused_s)
