"""Simulated time: devices stamp messages with the simulation's clock, which may run faster than real time."""

from __future__ import annotations

from datetime import datetime, timedelta


def epoch_ms(now: datetime) -> int:
    """Epoch milliseconds of an aware datetime, as devices send them."""
    return int(now.timestamp() * 1000)


def following(due: datetime, period_s: float, now: datetime) -> datetime:
    """The next due time after ``due`` in steps of ``period_s``; periods already missed are skipped."""
    step = timedelta(seconds=period_s)
    nxt = due + step
    return nxt if nxt > now else now + step
