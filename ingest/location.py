"""``Location``: where a device channel is, for the operator. The inventory answers it; alarms carry it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Location:
    """Where a device channel is, for the operator: org unit, readable place, linked cameras."""

    org_unit: str
    place: str
    cameras: tuple[str, ...] = ()
