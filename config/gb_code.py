"""GB/T 28181 codes (编码): 20 digits = 8 centre (civil code) + 2 industry + 3 type + 7 serial."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

_CODE = re.compile(r"^\d{20}$")

TYPE_NAMES = {
    111: "DVR",
    112: "video server",
    113: "encoder",
    114: "decoder",
    115: "video switch matrix",
    116: "audio switch matrix",
    117: "alarm controller",
    118: "NVR",
    131: "camera",
    132: "IPC",
    133: "display",
    134: "alarm input",
    135: "alarm output",
    136: "voice input",
    137: "voice output",
    138: "mobile transmission device",
    139: "other peripheral",
    200: "platform (SIP server)",
    215: "business group",
    216: "virtual organisation",
}

DEVICE_TYPES = range(111, 200)  # front-end main devices (111-130) and peripherals (131-199)
PLATFORM_TYPE = 200
REGISTERING_TYPES = frozenset([*DEVICE_TYPES, PLATFORM_TYPE])
CHANNEL_TYPES = frozenset([*range(131, 200), 215, 216])


class CodeError(ValueError):
    """Not a valid GB/T 28181 code for the place it is used."""


def type_of(code: str) -> int:
    """The 3-digit type of a 20-digit code."""
    if not _CODE.match(code):
        raise CodeError(f"{code!r} is not a 20-digit GB/T 28181 code")
    return int(code[10:13])


def check(code: str, allowed: frozenset[int] | range, what: str) -> str:
    kind = type_of(code)
    if kind not in allowed:
        name = TYPE_NAMES.get(kind, "unknown type")
        raise CodeError(f"{code}: type code {kind:03d} ({name}) cannot be a {what}")
    return code


def _device(code: str) -> str:
    return check(code, REGISTERING_TYPES, "registering device (111-199, or 200 for a lower platform)")


def _platform(code: str) -> str:
    return check(code, frozenset([PLATFORM_TYPE]), "platform (type 200)")


CAMERA_TYPES = frozenset((131, 132))


def _camera(code: str) -> str:
    return check(code, CAMERA_TYPES, "camera offered upward (131 camera or 132 IPC)")


def _channel(code: str) -> str:
    return check(code, CHANNEL_TYPES, "channel (131-199, 215, 216)")


DeviceCode = Annotated[
    str,
    Field(description="20-digit GB/T 28181 device code whose type (digits 11-13) is 111-199 or 200."),
    AfterValidator(_device),
]
PlatformCode = Annotated[
    str, Field(description="20-digit GB/T 28181 code of a platform (type 200)."), AfterValidator(_platform)
]
ChannelCode = Annotated[
    str,
    Field(description="20-digit GB/T 28181 code of a channel (type 131-199, 215 or 216)."),
    AfterValidator(_channel),
]
CameraCode = Annotated[
    str,
    Field(description="20-digit GB/T 28181 code of a camera (type 131 camera or 132 IPC)."),
    AfterValidator(_camera),
]
