"""``Reading``: one normalized observation from one device. The only type ingest emits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

Value = bool | int | float | str | None


class Reading(msgspec.Struct, frozen=True, kw_only=True):
    """One observation.

    ``kind`` is a dotted reading kind such as ``fence.zone``, ``thermal.roi`` or ``device.heartbeat``;
    ``channel`` names the part of the device it concerns (a fence zone, a thermal region, a camera zone);
    ``seq`` is the device's own sequence number where it has one (ordering uses it before ``ts``).
    """

    device_id: str
    kind: str
    value: Value
    ts: datetime
    seq: int | None = None
    channel: str | None = None
    attrs: dict[str, Any] = msgspec.field(default_factory=dict)
    evidence: tuple[str, ...] = ()

    def order_key(self) -> int:
        """Number that grows with the device's own order: its sequence, else its timestamp in µs."""
        if self.seq is not None:
            return self.seq
        return int(self.ts.timestamp() * 1_000_000)


class DecodeError(ValueError):
    """A payload was rejected. ``reason`` is short and machine-groupable; ``detail`` is for people."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
