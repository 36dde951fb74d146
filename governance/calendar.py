"""The Chinese working calendar: which days are worked, and time measured in working hours.

Public holidays and the adjusted working days (调休, e.g. a Saturday worked to bridge a holiday) come from
the maintained ``chinesecalendar`` package, never from a hand-written list. Working hours are the
centre's own (config ``governance.working_hours``), in the site's time zone. All datetimes in and out
are aware; results are UTC.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo

import chinese_calendar

log = logging.getLogger(__name__)

_MAX_DAYS = 3700  # ten years: any walk longer than this is a bug or a limit nobody means


class CalendarError(ValueError):
    """A date the calendar package does not cover, or a naive datetime."""


class Measure(Protocol):
    """How an SLA clock counts time between two instants."""

    def elapsed(self, start: datetime, end: datetime) -> float:
        """Measured seconds from start to end (0 if end <= start)."""
        ...

    def add(self, start: datetime, seconds: float) -> datetime:
        """The instant at which ``seconds`` of measured time have passed since ``start``."""
        ...


class ElapsedTime:
    """Plain clock time (limits in 'hours'): every second counts."""

    def elapsed(self, start: datetime, end: datetime) -> float:
        return max(0.0, (_aware(end) - _aware(start)).total_seconds())

    def add(self, start: datetime, seconds: float) -> datetime:
        return _aware(start).astimezone(UTC) + timedelta(seconds=seconds)


@lru_cache(maxsize=8192)
def is_workday(day: date) -> bool:
    """True on a working day of the Chinese calendar (including an adjusted working weekend day)."""
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError as exc:
        raise CalendarError(
            f"the chinesecalendar package has no data for {day.isoformat()}: upgrade it ({exc})"
        ) from exc


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise CalendarError(f"naive datetime {moment.isoformat()}: times must be aware")
    return moment


class WorkingCalendar:
    """Working time on the Chinese calendar: ``start_hour``–``end_hour`` local time on working days."""

    def __init__(self, start_hour: int = 9, end_hour: int = 17, timezone: str = "Asia/Shanghai") -> None:
        if not 0 <= start_hour < end_hour <= 24:
            raise CalendarError(f"working hours need 0 <= start < end <= 24, got {start_hour}-{end_hour}")
        self.start_hour = start_hour
        self.end_hour = end_hour
        self.zone = ZoneInfo(timezone)

    @property
    def day_seconds(self) -> float:
        """Length of one working day, seconds (a limit of N working days is N of these)."""
        return float((self.end_hour - self.start_hour) * 3600)

    def is_workday(self, day: date) -> bool:
        return is_workday(day)

    def _window(self, day: date) -> tuple[datetime, datetime]:
        opens = datetime.combine(day, time(self.start_hour), self.zone)
        closes = datetime.combine(day, time(0), self.zone) + timedelta(hours=self.end_hour)
        return opens, closes

    def is_working_time(self, moment: datetime) -> bool:
        local = _aware(moment).astimezone(self.zone)
        if not is_workday(local.date()):
            return False
        opens, closes = self._window(local.date())
        return opens <= local < closes

    def elapsed(self, start: datetime, end: datetime) -> float:
        """Working seconds between two instants."""
        start_l = _aware(start).astimezone(self.zone)
        end_l = _aware(end).astimezone(self.zone)
        if end_l <= start_l:
            return 0.0
        total = 0.0
        day = start_l.date()
        last = end_l.date()
        if (last - day).days > _MAX_DAYS:
            raise CalendarError(f"span {start.isoformat()} .. {end.isoformat()} is longer than {_MAX_DAYS} days")
        while day <= last:
            if is_workday(day):
                opens, closes = self._window(day)
                lo = max(opens, start_l)
                hi = min(closes, end_l)
                if hi > lo:
                    total += (hi - lo).total_seconds()
            day += timedelta(days=1)
        return total

    def add(self, start: datetime, seconds: float) -> datetime:
        """The instant when ``seconds`` of working time have passed since ``start``.

        A start outside working time counts from the next opening; a result that lands exactly on a
        closing time stays there (the deadline is the end of that working day, not the next morning).
        """
        if seconds < 0:
            raise CalendarError(f"cannot add negative working time ({seconds}s)")
        local = _aware(start).astimezone(self.zone)
        remaining = timedelta(seconds=seconds)
        day = local.date()
        for _ in range(_MAX_DAYS):
            if is_workday(day):
                opens, closes = self._window(day)
                lo = max(opens, local)
                if closes > lo:
                    available = closes - lo
                    if remaining <= available:
                        return (lo + remaining).astimezone(UTC)
                    remaining -= available
            day += timedelta(days=1)
        raise CalendarError(f"{seconds}s of working time from {start.isoformat()} runs past {_MAX_DAYS} days")
