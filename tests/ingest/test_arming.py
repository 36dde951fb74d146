"""Arming schedules (布防/撤防): weekly windows in a local time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sharpeye.ingest.fence.arming import ArmingSchedule, armed_at

SHANGHAI = timezone(timedelta(hours=8))


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """2026-01-05 is a Monday; day 0 = Monday."""
    return datetime(2026, 1, 5 + day, hour, minute, tzinfo=SHANGHAI)


def schedule(*windows: dict[str, object], tz: str = "Asia/Shanghai") -> ArmingSchedule:
    return ArmingSchedule.model_validate({"timezone": tz, "windows": list(windows)})


def test_no_schedule_means_always_armed() -> None:
    assert armed_at(None, local(0, 3))


def test_weekday_office_hours() -> None:
    s = schedule({"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00", "end": "18:00"})
    assert armed_at(s, local(0, 10))
    assert armed_at(s, local(0, 8, 0))
    assert not armed_at(s, local(0, 18, 0)), "end is exclusive"
    assert not armed_at(s, local(0, 7, 59))
    assert not armed_at(s, local(5, 10)), "Saturday"


def test_overnight_window_belongs_to_the_day_it_starts() -> None:
    s = schedule({"days": ["fri"], "start": "18:00", "end": "06:00"})
    assert armed_at(s, local(4, 23))  # Friday night
    assert armed_at(s, local(5, 5, 59))  # Saturday early morning, from Friday's window
    assert not armed_at(s, local(5, 6, 0))
    assert not armed_at(s, local(5, 23))  # Saturday night: no window starts on Saturday
    assert not armed_at(s, local(4, 5))  # Friday early morning would be Thursday's window


def test_time_zone_of_the_schedule_decides() -> None:
    s = schedule({"start": "09:00", "end": "17:00"})
    instant = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, 02:00 in UTC
    assert armed_at(s, instant)
    assert not armed_at(schedule({"start": "09:00", "end": "17:00"}, tz="UTC"), instant)


def test_whole_day_and_midnight_end() -> None:
    assert armed_at(schedule({"days": ["sun"], "start": "00:00", "end": "00:00"}), local(6, 23, 59))
    to_midnight = schedule({"start": "20:00", "end": "24:00"})
    assert armed_at(to_midnight, local(2, 23, 59))
    assert not armed_at(to_midnight, local(3, 0, 0))


def test_several_windows() -> None:
    s = schedule({"start": "00:00", "end": "07:00"}, {"start": "19:00", "end": "24:00"})
    assert [armed_at(s, local(1, h)) for h in (3, 8, 12, 19, 23)] == [True, False, False, True, True]


@pytest.mark.parametrize(
    ("windows", "tz", "message"),
    [
        ([{"start": "25:00", "end": "06:00"}], "Asia/Shanghai", "String should match pattern"),
        ([{"start": "24:00", "end": "06:00"}], "Asia/Shanghai", "cannot start at 24:00"),
        ([{"start": "08:00", "end": "09:00", "days": ["monday"]}], "Asia/Shanghai", "Input should be 'mon'"),
        ([], "Asia/Shanghai", "at least 1 item"),
        ([{"start": "08:00", "end": "09:00"}], "Mars/Olympus", "unknown time zone"),
    ],
)
def test_bad_schedules_are_refused(windows: list[dict[str, object]], tz: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        schedule(*windows, tz=tz)


def test_naive_instant_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        armed_at(schedule({"start": "08:00", "end": "09:00"}), datetime(2026, 1, 5, 8, 30))


WEEK = 7 * 1440


def _naive_armed_minutes(s: ArmingSchedule) -> set[int]:
    """Minutes of the week (Monday 00:00 = 0) covered by the windows, counted one by one."""
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    minutes: set[int] = set()
    for w in s.windows:
        start = int(w.start[:2]) * 60 + int(w.start[3:])
        end = int(w.end[:2]) * 60 + int(w.end[3:])
        length = 1440 if start == end else end - start if end > start else end + 1440 - start
        for day in w.days:
            base = days.index(day) * 1440 + start
            minutes.update((base + m) % WEEK for m in range(length))
    return minutes


clock = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59)) | st.just("24:00")
window = st.fixed_dictionaries(
    {
        "days": st.lists(st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]), min_size=1, unique=True),
        "start": st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59)),
        "end": clock,
    }
)


@settings(max_examples=200, deadline=None)
@given(windows=st.lists(window, min_size=1, max_size=3), minute=st.integers(0, WEEK - 1))
def test_armed_at_agrees_with_counting_minutes(windows: list[dict[str, object]], minute: int) -> None:
    s = schedule(*windows)
    instant = local(0, 0) + timedelta(minutes=minute, seconds=30)
    assert armed_at(s, instant) == (minute in _naive_armed_minutes(s))
