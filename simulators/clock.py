"""Simulated time: devices stamp messages with the simulation's clock, which may run faster than real time."""

from __future__ import annotations

from datetime import datetime


def epoch_ms(now: datetime) -> int:
    """Epoch milliseconds of an aware datetime, as devices send them."""
    return int(now.timestamp() * 1000)
