"""The dispatch table: which department, at which level, handles a case.

From the case's place (normally a grid) the dispatcher walks up the org tree. The first dispatch rule
naming the category (else the first '*' rule) says the lowest level that handles the category, raised by
the case's severity (``severity_levels``). The first unit on the walk at or above that level with a
department that handles the category wins (departments in config order), so a matter stays at the
lowest level that can handle it (小事不出村、大事不出镇). A rule with a fixed department sends it there.
A person may override the choice; the override records who and why.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sharpeye.config.governance import DispatchRule
from sharpeye.config.org import Department, Level, OrgUnit
from sharpeye.config.rule import Severity
from sharpeye.governance.flow import Actor, Assignment

log = logging.getLogger(__name__)


class DispatchError(ValueError):
    """No department can take the case; the message says what was looked for and where."""


class Dispatcher:
    def __init__(self, org: OrgUnit, departments: Sequence[Department], rules: Sequence[DispatchRule]) -> None:
        self.rules = list(rules)
        self.units: dict[str, OrgUnit] = {}
        self.parents: dict[str, str | None] = {}
        for unit, parent in org.walk():
            self.units[unit.id] = unit
            self.parents[unit.id] = parent.id if parent is not None else None
        self.departments = {d.id: d for d in departments}
        self.by_unit: dict[str, list[Department]] = {}
        for dept in departments:
            self.by_unit.setdefault(dept.unit, []).append(dept)

    def rule_for(self, category: str) -> tuple[int, DispatchRule] | None:
        for i, rule in enumerate(self.rules):
            if rule.category == category:
                return i, rule
        for i, rule in enumerate(self.rules):
            if rule.category == "*":
                return i, rule
        return None

    def ancestry(self, unit_id: str) -> list[OrgUnit]:
        """The unit and every unit above it, nearest first."""
        if unit_id not in self.units:
            raise DispatchError(f"no org unit {unit_id!r}")
        chain: list[OrgUnit] = []
        current: str | None = unit_id
        while current is not None:
            chain.append(self.units[current])
            current = self.parents[current]
        return chain

    def required_level(self, rule: DispatchRule, severity: Severity) -> Level:
        """The rule's level, raised (never lowered) by the entries for this severity or any lower one."""
        level = rule.level
        for sev, raised in rule.severity_levels.items():
            if sev.rank <= severity.rank and raised.depth < level.depth:
                level = raised
        return level

    def choose(self, category: str, org_unit: str, severity: Severity) -> Assignment:
        found = self.rule_for(category)
        chain = self.ancestry(org_unit)
        if found is None:
            raise DispatchError(f"no dispatch rule for category {category!r} and no '*' rule")
        index, rule = found
        rule_name = f"dispatch[{index}]"
        if rule.department is not None:
            dept = self.departments.get(rule.department)
            if dept is None:
                raise DispatchError(f"{rule_name} names unknown department {rule.department!r}")
            return Assignment(dept.id, self.units[dept.unit].level, dept.unit, rule=rule_name)
        level = self.required_level(rule, severity)
        for unit in chain:
            if unit.level.depth > level.depth:
                continue
            for dept in self.by_unit.get(unit.id, []):
                if category in dept.categories:
                    return Assignment(dept.id, unit.level, unit.id, rule=rule_name)
        where = " → ".join(u.id for u in chain)
        raise DispatchError(f"no department handles {category!r} at level {level} or above on the way up {where}")

    def override(self, category: str, org_unit: str, department: str, actor: Actor, reason: str) -> Assignment:
        """A person's choice of department, audited: who and why go into the case's history."""
        if not reason.strip():
            raise DispatchError("a manual dispatch needs a reason")
        dept = self.departments.get(department)
        if dept is None:
            raise DispatchError(f"no department {department!r}")
        if org_unit not in self.units:
            raise DispatchError(f"no org unit {org_unit!r}")
        if category not in dept.categories:
            log.info(
                "manual dispatch of %s to %s, which does not list the category (by %s)", category, dept.id, actor.id
            )
        return Assignment(
            dept.id, self.units[dept.unit].level, dept.unit, rule="manual", overridden_by=actor.id, reason=reason
        )

    def level_above(self, unit_id: str) -> OrgUnit | None:
        """The unit above a department's unit (escalation target)."""
        parent = self.parents.get(unit_id)
        return self.units[parent] if parent is not None else None
