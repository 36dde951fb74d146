"""Faults a simulated device can show: lost heartbeats, silence, duplicates, reordering, garbage, floods.

Faults act on the messages a device simulator produces, so they work the same for every kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sharpeye.ingest.driver import Message

FAULTS = ("drop_heartbeats", "silence", "duplicate", "reorder", "garbage", "flood")
MAX_FLOOD = 100_000

OVERSIZE_BYTES = 5 * 1024 * 1024
GARBAGE: dict[str, bytes] = {
    "not_json": b"\x00\x01 this is not json",
    "bad_utf8": b'{"seq": 1, "ts": "\xff\xfe\xfd"}',
    "nan": b'{"seq": 1, "ts": 0, "level_m": NaN, "battery_v": Infinity}',
    "wrong_shape": b"[1, 2, 3]",
    "wrong_type": b'{"seq": "one", "ts": "yesterday"}',
    "empty": b"",
    "huge_array": b'{"seq": 1, "ts": 0, "width": 9999, "height": 9999, "temps": [' + b"0," * 200_000 + b"0]}",
    "bad_frame": b"SETF\x01\x00\x20\x00\x18\x00" + b"\x00" * 40,
}
"""Garbage payloads by variant; ``oversize`` (5 MiB of spaces around an object) is built on demand."""

MISROUTED = ("unknown_device", "unknown_kind")
"""Garbage variants that resend the device's last good message on a topic naming a device id or a kind the hub
does not know (``<id>-ghost``, ``<kind>_ghost``)."""

Route = str  # "device", or one of MISROUTED


def garbage(variant: str) -> bytes:
    if variant == "oversize":
        return b"{" + b" " * OVERSIZE_BYTES + b"}"
    try:
        return GARBAGE[variant]
    except KeyError:
        known = ", ".join(["oversize", *GARBAGE, *MISROUTED])
        raise ValueError(f"unknown garbage variant {variant!r}; one of {known}") from None


@dataclass(slots=True)
class FaultState:
    """The faults currently active on one device, each until a simulated time."""

    drop_heartbeats_until: datetime | None = None
    silence_until: datetime | None = None
    duplicate_until: datetime | None = None
    reorder_until: datetime | None = None
    held: Message | None = None
    last_channel: str = "heartbeat"
    last_message: Message | None = None

    def start(self, fault: str, args: Mapping[str, Any], now: datetime) -> list[tuple[Route, str, bytes]]:
        """Begin a fault; ``garbage`` returns the messages to send at once, as (route, channel, payload)."""
        if fault == "garbage":
            variants = args.get("variants", ["all"])
            if variants == ["all"] or variants == "all":
                variants = ["oversize", *GARBAGE, *MISROUTED]
            channel = str(args.get("channel", self.last_channel))
            out: list[tuple[Route, str, bytes]] = []
            for variant in map(str, variants):
                if variant in MISROUTED:
                    if self.last_message is not None:
                        out.append((variant, *self.last_message))
                else:
                    out.append(("device", channel, garbage(variant)))
            return out
        if fault == "flood":  # the device goes mad: its last message, ``count`` times at once
            count = int(args.get("count", 1000))
            if not 0 < count <= MAX_FLOOD:
                raise ValueError(f"flood count must be in 1..{MAX_FLOOD}")
            return [("device", *self.last_message)] * count if self.last_message is not None else []
        until = now + timedelta(seconds=float(args.get("for_s", 60)))
        if fault == "drop_heartbeats":
            self.drop_heartbeats_until = until
        elif fault == "silence":
            self.silence_until = until
        elif fault == "duplicate":
            self.duplicate_until = until
        elif fault == "reorder":
            self.reorder_until = until
        else:
            raise ValueError(f"unknown fault {fault!r}; one of {', '.join(FAULTS)}")
        return []

    def apply(self, messages: list[Message], now: datetime) -> list[Message]:
        """The messages actually sent, after the active faults."""

        def active(until: datetime | None) -> bool:
            return until is not None and now < until

        out: list[Message] = []
        for message in messages:
            channel = message[0]
            if channel != "result":
                self.last_channel = channel
            self.last_message = message
            if active(self.silence_until):
                continue
            if channel == "heartbeat" and active(self.drop_heartbeats_until):
                continue
            copies = [message, message] if active(self.duplicate_until) else [message]
            for copy in copies:
                if active(self.reorder_until):
                    if self.held is None:
                        self.held = copy
                        continue
                    out.extend([copy, self.held])  # the later message overtakes the earlier one
                    self.held = None
                else:
                    out.append(copy)
        if self.held is not None and not active(self.reorder_until):
            out.append(self.held)
            self.held = None
        return out
