"""Actors and Beijing-time helpers shared by the governance tests."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sharpeye.governance.flow import Actor, Role

CST = ZoneInfo("Asia/Shanghai")


def cst(*parts: int) -> datetime:
    """A Beijing-time wall clock reading as an aware UTC datetime."""
    return datetime(*parts, tzinfo=CST).astimezone(UTC)  # type: ignore[misc]


OPERATOR = Actor("op-li", Role.operator)
SUPERVISOR = Actor("sup-wang", Role.supervisor)
VIEWER = Actor("view-zhao", Role.viewer)


def handler(department: str) -> Actor:
    return Actor(f"h-{department}", Role.department_handler, department)
