"""The PTZCmd of GB/T 28181 (annex A): eight bytes written as 16 hex digits in a DeviceControl ``<PTZCmd>``.

=====  =========================================================================================
byte   meaning
=====  =========================================================================================
1      0xA5, the header
2      high nibble: version (0); low nibble: (high nibble of byte 1 + low nibble of byte 1 + version) % 16
3      address, low 8 bits (1: the channel the message is addressed to)
4      the instruction (below)
5, 6   data 1 and 2: pan and tilt speed; focus and iris speed; 0 and the preset number
7      high nibble: data 3 (zoom speed 0-15); low nibble: address, high 4 bits
8      checksum: the sum of bytes 1-7, modulo 256
=====  =========================================================================================

Instructions: ``00PZ TBLR`` moves (bit 5 zoom out, bit 4 zoom in, bit 3 up, bit 2 down, bit 1 left, bit 0 right;
0x00 stops everything); ``0100 CONF`` focus and iris (bit 3 iris close, bit 2 iris open, bit 1 focus near, bit 0
focus far; 0x40 stops them); 0x81 set preset, 0x82 call preset, 0x83 delete preset (byte 6: the preset, 1-255).

Pure: ``encode`` builds the hex text, ``decode`` parses and validates one (``PtzError`` names what is wrong).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

HEADER = 0xA5
VERSION = 0
PRESET_SET, PRESET_CALL, PRESET_DELETE = 0x81, 0x82, 0x83
PRESET_OPS = {PRESET_SET: "set", PRESET_CALL: "call", PRESET_DELETE: "delete"}
PresetOp = Literal["set", "call", "delete"]
Kind = Literal["move", "lens", "preset"]

# API action -> (pan, tilt, zoom) for moves, (focus, iris) for the lens: -1, 0 or +1 on each axis
MOVES: dict[str, tuple[int, int, int]] = {
    "left": (-1, 0, 0), "right": (1, 0, 0), "up": (0, 1, 0), "down": (0, -1, 0),
    "upleft": (-1, 1, 0), "upright": (1, 1, 0), "downleft": (-1, -1, 0), "downright": (1, -1, 0),
    "zoom_in": (0, 0, 1), "zoom_out": (0, 0, -1), "stop": (0, 0, 0),
}  # fmt: skip
LENS: dict[str, tuple[int, int]] = {
    "focus_near": (-1, 0), "focus_far": (1, 0), "iris_open": (0, 1), "iris_close": (0, -1),
}  # fmt: skip
ACTIONS = tuple(MOVES) + tuple(LENS)


class PtzError(ValueError):
    """A PTZCmd (or a PTZ request) was rejected. ``reason`` is short and groupable (a /metrics label)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class PtzCommand:
    """One decoded PTZCmd. Axes are -1, 0 or +1: pan right +1, tilt up +1, zoom in +1, focus far +1, iris open +1.

    Speeds: pan and tilt 0-255, zoom 0-15 (``move``); focus and iris 0-255 (``lens``). ``preset`` 1-255 with
    ``op`` for presets. ``address`` is the 12-bit address (1 for the addressed channel)."""

    kind: Kind
    pan: int = 0
    tilt: int = 0
    zoom: int = 0
    focus: int = 0
    iris: int = 0
    pan_speed: int = 0
    tilt_speed: int = 0
    zoom_speed: int = 0
    focus_speed: int = 0
    iris_speed: int = 0
    op: PresetOp | None = None
    preset: int = 0
    address: int = 1

    @property
    def stop(self) -> bool:
        return self.kind != "preset" and not (self.pan or self.tilt or self.zoom or self.focus or self.iris)

    def encode(self) -> str:
        """The 16 upper-case hex digits of this command."""
        return encode(self)


def _axis(value: int, name: str) -> int:
    if value not in (-1, 0, 1):
        raise PtzError("bad_axis", f"{name} must be -1, 0 or 1, got {value}")
    return value


def _byte(value: int, name: str, top: int = 255) -> int:
    if not 0 <= value <= top:
        raise PtzError("bad_speed" if "speed" in name else "bad_value", f"{name} must be 0-{top}, got {value}")
    return value


def encode(cmd: PtzCommand) -> str:
    """Build the PTZCmd text; raises ``PtzError`` for values out of range."""
    if not 0 <= cmd.address <= 0xFFF:
        raise PtzError("bad_address", f"address must be 0-4095, got {cmd.address}")
    data3 = 0
    if cmd.kind == "move":
        pan, tilt, zoom = _axis(cmd.pan, "pan"), _axis(cmd.tilt, "tilt"), _axis(cmd.zoom, "zoom")
        instruction = (
            (0x01 if pan > 0 else 0) | (0x02 if pan < 0 else 0) | (0x04 if tilt < 0 else 0) | (0x08 if tilt > 0 else 0)
            | (0x10 if zoom > 0 else 0) | (0x20 if zoom < 0 else 0)
        )  # fmt: skip
        data1, data2 = _byte(cmd.pan_speed, "pan_speed"), _byte(cmd.tilt_speed, "tilt_speed")
        data3 = _byte(cmd.zoom_speed, "zoom_speed", 15)
    elif cmd.kind == "lens":
        focus, iris = _axis(cmd.focus, "focus"), _axis(cmd.iris, "iris")
        instruction = (
            0x40 | (0x01 if focus > 0 else 0) | (0x02 if focus < 0 else 0) | (0x04 if iris > 0 else 0)
            | (0x08 if iris < 0 else 0)
        )  # fmt: skip
        data1, data2 = _byte(cmd.focus_speed, "focus_speed"), _byte(cmd.iris_speed, "iris_speed")
    else:
        codes = {op: code for code, op in PRESET_OPS.items()}
        if cmd.op not in codes:
            raise PtzError("bad_preset_op", f"op must be set, call or delete, got {cmd.op!r}")
        if not 1 <= cmd.preset <= 255:
            raise PtzError("bad_preset", f"preset must be 1-255, got {cmd.preset}")
        instruction, data1, data2 = codes[cmd.op], 0, cmd.preset
    version = (VERSION << 4) | (((HEADER >> 4) + (HEADER & 0x0F) + VERSION) % 16)
    raw = [HEADER, version, cmd.address & 0xFF, instruction, data1, data2, (data3 << 4) | (cmd.address >> 8)]
    raw.append(sum(raw) % 256)
    return bytes(raw).hex().upper()


def decode(text: str) -> PtzCommand:
    """Parse and validate a PTZCmd; raises ``PtzError`` naming what is wrong."""
    text = text.strip()
    if len(text) != 16:
        raise PtzError("bad_length", f"a PTZCmd is 16 hex digits, got {len(text)}: {text[:40]!r}")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise PtzError("not_hex", f"{text!r} is not hexadecimal") from None
    if raw[0] != HEADER:
        raise PtzError("bad_header", f"byte 1 must be A5, got {raw[0]:02X}")
    version, check = raw[1] >> 4, raw[1] & 0x0F
    if check != ((HEADER >> 4) + (HEADER & 0x0F) + version) % 16:
        raise PtzError("bad_version_check", f"byte 2 {raw[1]:02X}: check nibble does not match version {version}")
    if sum(raw[:7]) % 256 != raw[7]:
        raise PtzError("bad_checksum", f"byte 8 is {raw[7]:02X}, the sum of bytes 1-7 gives {sum(raw[:7]) % 256:02X}")
    address = raw[2] | ((raw[6] & 0x0F) << 8)
    instruction, data1, data2, data3 = raw[3], raw[4], raw[5], raw[6] >> 4
    if instruction & 0xC0 == 0:
        if instruction & 0x03 == 0x03 or instruction & 0x0C == 0x0C or instruction & 0x30 == 0x30:
            raise PtzError("conflicting_directions", f"instruction {instruction:02X} asks for opposite directions")
        return PtzCommand(
            "move",
            pan=(instruction & 0x01) - ((instruction >> 1) & 0x01),
            tilt=((instruction >> 3) & 0x01) - ((instruction >> 2) & 0x01),
            zoom=((instruction >> 4) & 0x01) - ((instruction >> 5) & 0x01),
            pan_speed=data1,
            tilt_speed=data2,
            zoom_speed=data3,
            address=address,
        )
    if instruction & 0xF0 == 0x40:
        if instruction & 0x03 == 0x03 or instruction & 0x0C == 0x0C:
            raise PtzError("conflicting_directions", f"instruction {instruction:02X} asks for opposite directions")
        return PtzCommand(
            "lens",
            focus=(instruction & 0x01) - ((instruction >> 1) & 0x01),
            iris=((instruction >> 2) & 0x01) - ((instruction >> 3) & 0x01),
            focus_speed=data1,
            iris_speed=data2,
            address=address,
        )
    op = PRESET_OPS.get(instruction)
    if op is not None:
        if not 1 <= data2 <= 255:
            raise PtzError("bad_preset", "preset number 0 (byte 6 must be 1-255)")
        return PtzCommand("preset", op=op, preset=data2, address=address)  # type: ignore[arg-type]
    raise PtzError("unknown_instruction", f"instruction {instruction:02X} is not a move, lens or preset command")


def command_for(action: str, speed: int) -> PtzCommand:
    """The command of an API action (``left``... ``zoom_in``, ``focus_near``... ``stop``) at ``speed`` 1-255 (the
    zoom speed is its top four bits, at least 1)."""
    _byte(speed, "speed")
    if action in MOVES:
        pan, tilt, zoom = MOVES[action]
        return PtzCommand(
            "move", pan=pan, tilt=tilt, zoom=zoom,
            pan_speed=speed if pan else 0, tilt_speed=speed if tilt else 0,
            zoom_speed=max(1, speed >> 4) if zoom else 0,
        )  # fmt: skip
    if action in LENS:
        focus, iris = LENS[action]
        return PtzCommand("lens", focus=focus, iris=iris, focus_speed=speed if focus else 0,
                          iris_speed=speed if iris else 0)  # fmt: skip
    raise PtzError("unknown_action", f"{action!r} is not one of {', '.join(ACTIONS)}")


def preset_command(op: PresetOp, preset: int) -> PtzCommand:
    cmd = PtzCommand("preset", op=op, preset=preset)
    encode(cmd)  # validates
    return cmd
