"""Rules every site has, whatever its config says."""

from __future__ import annotations

from sharpeye.config.rule import ClearPolicy, Linkage, Match, Rule, Severity, StateCondition

DEVICE_OFFLINE = Rule(
    id="device-offline",
    name="设备离线",
    match=Match(kind="device.online"),
    condition=StateCondition(type="state", active=["false"], clear=["true"]),
    severity=Severity.minor,
    category="device_fault",
    clear=ClearPolicy(mode="restore"),
    linkage=Linkage(zone_cameras=False, record=False),
)

SYSTEM_RULES = (DEVICE_OFFLINE,)


def with_system_rules(rules: list[Rule]) -> list[Rule]:
    """The site's rules plus system rules it does not override (same id wins from the site)."""
    ids = {rule.id for rule in rules}
    return [*rules, *(rule for rule in SYSTEM_RULES if rule.id not in ids)]
