"""Commands from the hub to a fence controller, on ``sharpeye/fence/<device_id>/command`` (QoS 1).

``{"id": "c-0001", "command": "arm", "zone": "z1", "ts": "2026-01-05T02:00:00Z"}`` arms one zone;
without ``zone`` the command applies to every perimeter zone (tamper zones are always armed). The
controller confirms each zone it changed with an ``arming`` message carrying ``command_id`` = ``id``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec
from sharpeye.ingest.driver import decode_json

MAX_COMMAND = 1024


class FenceCommand(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    id: str
    command: Literal["arm", "disarm"]
    zone: str | None = None
    ts: datetime | None = None


_command = msgspec.json.Decoder(FenceCommand)


def encode_command(command: FenceCommand) -> bytes:
    """The payload the hub publishes."""
    return msgspec.json.encode(command)


def decode_command(data: bytes) -> FenceCommand:
    """What a controller (or the simulator) reads; ``DecodeError`` for a malformed command."""
    return decode_json(_command, data, MAX_COMMAND)
