"""The dispatch table over the demo site's org tree: lowest level that can handle it, raised by severity."""

from __future__ import annotations

import pytest
from sharpeye.config.governance import DispatchRule
from sharpeye.config.org import Department, Level, OrgUnit
from sharpeye.config.rule import Severity
from sharpeye.governance.dispatch import Dispatcher, DispatchError

from tests.governance.casebook import OPERATOR


def test_small_matters_stay_in_the_village(dispatcher: Dispatcher) -> None:
    choice = dispatcher.choose("dispute", "hedong-g1", Severity.minor)
    assert (choice.department, choice.level, choice.unit) == ("hd-jwh", Level.village, "hedong")
    choice = dispatcher.choose("perimeter_intrusion", "shanxia-g2", Severity.major)
    assert (choice.department, choice.level) == ("sx-cwh", Level.village)


def test_severity_raises_the_level(dispatcher: Dispatcher) -> None:
    # perimeter_intrusion: village, critical → town; the first town department handling it is the 执法队.
    choice = dispatcher.choose("perimeter_intrusion", "hedong-g1", Severity.critical)
    assert (choice.department, choice.level, choice.unit) == ("qs-zfd", Level.town, "qingshui")
    # fire: {major: town, critical: town}; a critical fire is at least as high as a major one.
    assert dispatcher.choose("fire", "shanxia-g1", Severity.minor).department == "sx-cwh"
    assert dispatcher.choose("fire", "shanxia-g1", Severity.major).department == "qs-yjb"
    assert dispatcher.choose("fire", "shanxia-g1", Severity.critical).department == "qs-yjb"


def test_walks_up_when_the_village_cannot(dispatcher: Dispatcher) -> None:
    # 河东社区 has no environment department: the street's 环保所 takes it.
    choice = dispatcher.choose("environment", "hedong-g2", Severity.minor)
    assert (choice.department, choice.level) == ("qs-hbs", Level.town)
    # 山下村 handles environment itself.
    assert dispatcher.choose("environment", "shanxia-g2", Severity.minor).department == "sx-cwh"


def test_fixed_department_rule(dispatcher: Dispatcher) -> None:
    choice = dispatcher.choose("device_fault", "hedong-g1", Severity.minor)
    assert (choice.department, choice.rule) == ("qs-yjb", "dispatch[2]")


def test_errors_say_what_was_looked_for(dispatcher: Dispatcher) -> None:
    with pytest.raises(DispatchError, match="no org unit 'nowhere'"):
        dispatcher.choose("dispute", "nowhere", Severity.minor)
    with pytest.raises(DispatchError, match=r"no department handles 'flying_saucer' .* hedong-g1 → hedong → qingshui"):
        dispatcher.choose("flying_saucer", "hedong-g1", Severity.minor)
    with pytest.raises(DispatchError, match="needs a reason"):
        dispatcher.override("dispute", "hedong-g1", "qs-sfs", OPERATOR, "  ")
    with pytest.raises(DispatchError, match="no department 'qs-xxx'"):
        dispatcher.override("dispute", "hedong-g1", "qs-xxx", OPERATOR, "试试")


def test_no_rule_at_all(org: OrgUnit, departments: list[Department]) -> None:
    only_fire = Dispatcher(org, departments, [DispatchRule(category="fire", level=Level.village)])
    with pytest.raises(DispatchError, match="no dispatch rule for category 'dispute'"):
        only_fire.choose("dispute", "hedong-g1", Severity.minor)


def test_override_records_who_and_why(dispatcher: Dispatcher) -> None:
    choice = dispatcher.override("dispute", "hedong-g1", "qs-pcs", OPERATOR, "涉嫌治安案件")
    assert (choice.department, choice.level, choice.overridden_by, choice.reason) == (
        "qs-pcs",
        Level.town,
        "op-li",
        "涉嫌治安案件",
    )
    assert dispatcher.level_above("hedong") is not None and dispatcher.level_above("hedong").id == "qingshui"  # type: ignore[union-attr]
    assert dispatcher.level_above("qingshui") is None
