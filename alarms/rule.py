"""Rule evaluation: a reading in, the signals (raise / clear) it means for each matching rule."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from sharpeye.alarms.alarm import fingerprint
from sharpeye.config.rule import AbsenceCondition, CountCondition, Rule, StateCondition, ThresholdCondition
from sharpeye.ingest.reading import Reading

Action = Literal["raise", "clear", "heard"]


@dataclass(frozen=True, slots=True)
class Signal:
    """What one reading means for one rule: raise (or repeat) or clear the fingerprint's alarm."""

    rule: Rule
    fingerprint: str
    action: Action
    reading: Reading


class RuleSet:
    """Rules indexed by reading kind, so a reading costs only the rules that can match it."""

    def __init__(self, rules: list[Rule], in_grid: Callable[[str, str, str | None], bool] | None = None) -> None:
        self._by_kind: dict[str, list[Rule]] = defaultdict(list)
        for rule in rules:
            self._by_kind[rule.match.kind].append(rule)
        self._in_grid = in_grid
        self.rules = {rule.id: rule for rule in rules}

    def evaluate(self, reading: Reading) -> list[Signal]:
        signals: list[Signal] = []
        for rule in self._by_kind.get(reading.kind, ()):
            if not self._matches(rule, reading):
                continue
            action = _condition(rule, reading)
            if action is None:
                continue
            if action == "raise" and reading.attrs.get("armed") is False:
                continue  # disarmed zone (撤防): restores still apply, new alarms do not
            signals.append(Signal(rule, fingerprint(rule.id, reading.device_id, reading.channel), action, reading))
        return signals

    def _matches(self, rule: Rule, reading: Reading) -> bool:
        match = rule.match
        if match.devices and reading.device_id not in match.devices:
            return False
        if match.channels and reading.channel not in match.channels:
            return False
        if match.grids:
            if self._in_grid is None:
                return False
            return any(self._in_grid(grid, reading.device_id, reading.channel) for grid in match.grids)
        return True


def _condition(rule: Rule, reading: Reading) -> Action | None:
    cond = rule.condition
    value = reading.value
    if isinstance(cond, AbsenceCondition):
        return "heard"
    if isinstance(cond, CountCondition):
        return "raise" if _text(value) in cond.active else None
    if isinstance(cond, StateCondition):
        text = _text(value)
        if text in cond.active:
            return "raise"
        if text in cond.clear:
            return "clear"
        return None
    assert isinstance(cond, ThresholdCondition)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    if cond.above is not None:
        if number > cond.above:
            return "raise"
        if number <= cond.above - cond.hysteresis and cond.below is None:
            return "clear"
    if cond.below is not None:
        if number < cond.below:
            return "raise"
        if number >= cond.below + cond.hysteresis and cond.above is None:
            return "clear"
    if cond.above is not None and cond.below is not None:
        inside = cond.below + cond.hysteresis <= number <= cond.above - cond.hysteresis
        return "clear" if inside else None
    return None


def _text(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
