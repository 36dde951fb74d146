"""Arming schedules (布防/撤防) of fence zones: weekly time windows in a local time zone.

``armed_at`` is a pure function of the schedule and an instant, so the decoder, the simulator and the
console all agree on whether a zone was armed when a message was sent.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator
from sharpeye.config.base import StrictModel

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$"


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


class ArmingWindow(StrictModel):
    """A weekly window during which the zone is armed (布防). ``end`` before ``start`` runs past midnight."""

    days: list[Day] = Field(
        default_factory=lambda: list(DAYS), min_length=1, description="Days on which the window starts."
    )
    start: str = Field(pattern=_CLOCK, description="Local start time 'HH:MM'.")
    end: str = Field(
        pattern=_CLOCK,
        description="Local end time 'HH:MM' (exclusive; '24:00' = midnight). Equal to start: 24 hours from start.",
    )

    @property
    def start_minute(self) -> int:
        return _minutes(self.start)

    @property
    def end_minute(self) -> int:
        return _minutes(self.end)


class ArmingSchedule(StrictModel):
    """When a zone is armed. Outside every window it is disarmed (撤防); tamper zones ignore schedules."""

    timezone: str = Field(default="Asia/Shanghai", description="IANA time zone of the windows (the site's).")
    windows: list[ArmingWindow] = Field(min_length=1, description="Weekly arming windows.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        _zone(value)
        return value

    @model_validator(mode="after")
    def _no_empty_window(self) -> ArmingSchedule:
        for window in self.windows:
            if window.start == "24:00":
                raise ValueError("a window cannot start at 24:00; use 00:00 of the next day")
        return self


@cache
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


def armed_at(schedule: ArmingSchedule | None, when: datetime) -> bool:
    """Whether a zone with this schedule is armed at the aware instant ``when`` (no schedule: always)."""
    if schedule is None:
        return True
    if when.tzinfo is None:
        raise ValueError("armed_at needs an aware datetime")
    local = when.astimezone(_zone(schedule.timezone))
    today = DAYS[local.weekday()]
    yesterday = DAYS[(local.weekday() - 1) % 7]
    minute = local.hour * 60 + local.minute + (local.second + local.microsecond / 1e6) / 60
    for window in schedule.windows:
        start, end = window.start_minute, window.end_minute
        if start < end:
            if today in window.days and start <= minute < end:
                return True
        else:  # runs past midnight (start == end: 24 hours): after start today, or before end from yesterday's
            if today in window.days and minute >= start:
                return True
            if yesterday in window.days and minute < end:
                return True
    return False
