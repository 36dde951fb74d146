"""Cross-reference checks that a single model cannot make: ids that must exist, be unique, match."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sharpeye.config.org import OrgUnit

if TYPE_CHECKING:
    from sharpeye.config.loader import Catalog, Loc
    from sharpeye.config.site import SiteConfig

Problem = tuple["Loc", str]


def _duplicates(ids: Iterable[str]) -> set[str]:
    return {i for i, n in Counter(ids).items() if n > 1}


def check_references(site: SiteConfig, catalog: Catalog) -> list[Problem]:
    problems: list[Problem] = []
    units: dict[str, OrgUnit] = {}
    for unit, parent in site.org.walk():
        if unit.id in units:
            problems.append((("org",), f"org unit id {unit.id!r} is used twice"))
        units[unit.id] = unit
        if parent is not None and unit.level.depth <= parent.level.depth:
            problems.append(
                (("org",), f"org unit {unit.id!r} ({unit.level}) cannot sit below {parent.id!r} ({parent.level})")
            )

    dept_ids = [d.id for d in site.departments]
    for dup in _duplicates(dept_ids):
        problems.append((("departments",), f"department id {dup!r} is used twice"))
    for i, dept in enumerate(site.departments):
        if dept.unit not in units:
            problems.append((("departments", i, "unit"), f"no org unit {dept.unit!r}"))

    devices = {d.id: d for d in site.devices}
    for dup in _duplicates(d.id for d in site.devices):
        problems.append((("devices",), f"device id {dup!r} is used twice"))
    gb_codes = [code for d in site.devices if (code := getattr(d, "gb_code", None))]
    for dup in _duplicates(gb_codes):
        problems.append((("devices",), f"gb_code {dup} is given to two cameras (the upper platform keys on it)"))
    for d in site.devices:
        code = getattr(d, "gb_code", None)
        if code and code in devices and devices[code] is not d:
            problems.append((("devices",), f"gb_code {code} of {d.id} is another device's id"))
    for i, device in enumerate(site.devices):
        if device.grid not in units:
            problems.append((("devices", i, "grid"), f"no org unit {device.grid!r}"))
        problems.extend(_device_references(i, device, devices, units))

    reading_kinds = catalog.reading_kinds()
    for dup in _duplicates(r.id for r in site.rules):
        problems.append((("rules",), f"rule id {dup!r} is used twice"))
    for i, rule in enumerate(site.rules):
        if rule.match.kind not in reading_kinds:
            problems.append(
                (("rules", i, "match", "kind"), f"no installed driver emits readings of kind {rule.match.kind!r}")
            )
        for j, dev in enumerate(rule.match.devices):
            if dev not in devices:
                problems.append((("rules", i, "match", "devices", j), f"no device {dev!r}"))
        for j, grid in enumerate(rule.match.grids):
            if grid not in units:
                problems.append((("rules", i, "match", "grids", j), f"no org unit {grid!r}"))
        for j, cam in enumerate(rule.linkage.cameras):
            if devices.get(cam) is None or devices[cam].kind != "camera":
                problems.append((("rules", i, "linkage", "cameras", j), f"no camera {cam!r}"))
        cond = rule.condition
        if cond.type == "threshold" and cond.above is None and cond.below is None:
            problems.append((("rules", i, "condition"), "a threshold needs 'above' or 'below'"))
        if cond.type == "state" and rule.clear.mode == "restore" and not cond.clear:
            problems.append(
                (("rules", i, "clear"), "clear mode 'restore' needs condition.clear values, or use mode 'quiet'")
            )

    dept_set = set(dept_ids)
    for i, entry in enumerate(site.governance.dispatch):
        if entry.department is not None and entry.department not in dept_set:
            problems.append((("governance", "dispatch", i, "department"), f"no department {entry.department!r}"))
    start, end = site.governance.working_hours
    if not 0 <= start < end <= 24:
        problems.append((("governance", "working_hours"), "need 0 <= start < end <= 24"))
    return problems


def _device_references(i: int, device: Any, devices: dict[str, Any], units: dict[str, OrgUnit]) -> list[Problem]:
    """References inside a device's own fields: zone cameras and zone grids (any kind that has zones)."""
    problems: list[Problem] = []
    zones = getattr(device, "zones", None) or []
    for dup in _duplicates(getattr(z, "id", "") for z in zones):
        problems.append((("devices", i, "zones"), f"zone id {dup!r} is used twice in device {device.id!r}"))
    for j, zone in enumerate(zones):
        for k, cam in enumerate(getattr(zone, "cameras", []) or []):
            target = devices.get(cam)
            if target is None:
                problems.append((("devices", i, "zones", j, "cameras", k), f"no camera {cam!r}"))
            elif target.kind != "camera":
                problems.append(
                    (("devices", i, "zones", j, "cameras", k), f"device {cam!r} is a {target.kind}, not a camera")
                )
        grid = getattr(zone, "grid", None)
        if grid is not None and grid not in units:
            problems.append((("devices", i, "zones", j, "grid"), f"no org unit {grid!r}"))
    return problems
