"""What a simulated GB/T 28181 camera does with DeviceControl: a pan/tilt/zoom head whose position changes while it
moves (tests read it back), presets, and the guard/record/reboot switches.

Positions: pan 0-360 degrees (wrapping), tilt -90..90, zoom 1..30 (x), focus and iris 0..100. At full speed (255;
15 for zoom) the head turns 60 degrees/s and zooms 6x/s; slower speeds scale linearly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sharpeye.ingest.gb28181.manscdp import Manscdp
from sharpeye.ingest.gb28181.ptz import PtzCommand, PtzError, decode

PAN_RATE = 60.0  # degrees per second at speed 255
ZOOM_RATE = 6.0  # x per second at zoom speed 15
LENS_RATE = 40.0  # focus/iris units per second at speed 255


@dataclass(slots=True)
class PtzHead:
    """One channel's head. ``position()`` integrates the current motion up to now."""

    pan: float = 0.0
    tilt: float = 0.0
    zoom: float = 1.0
    focus: float = 50.0
    iris: float = 50.0
    motion: PtzCommand | None = None
    since: float = 0.0
    presets: dict[int, tuple[str, float, float, float]] = field(default_factory=dict)  # n -> name, pan, tilt, zoom
    commands: list[str] = field(default_factory=list)  # every PTZCmd received, for tests
    received: list[float] = field(default_factory=list)  # when each was received (the clock's time)
    clock: Callable[[], float] = time.monotonic

    def settle(self) -> None:
        now = self.clock()
        cmd, dt = self.motion, now - self.since
        self.since = now
        if cmd is None or dt <= 0:
            return
        if cmd.kind == "move":
            self.pan = (self.pan + cmd.pan * PAN_RATE * cmd.pan_speed / 255 * dt) % 360
            self.tilt = max(-90.0, min(90.0, self.tilt + cmd.tilt * PAN_RATE * cmd.tilt_speed / 255 * dt))
            self.zoom = max(1.0, min(30.0, self.zoom + cmd.zoom * ZOOM_RATE * cmd.zoom_speed / 15 * dt))
        elif cmd.kind == "lens":
            self.focus = max(0.0, min(100.0, self.focus + cmd.focus * LENS_RATE * cmd.focus_speed / 255 * dt))
            self.iris = max(0.0, min(100.0, self.iris + cmd.iris * LENS_RATE * cmd.iris_speed / 255 * dt))

    def position(self) -> dict[str, float | bool]:
        self.settle()
        return {"pan": round(self.pan, 2), "tilt": round(self.tilt, 2), "zoom": round(self.zoom, 2),
                "focus": round(self.focus, 2), "iris": round(self.iris, 2), "moving": self.moving}  # fmt: skip

    @property
    def moving(self) -> bool:
        return self.motion is not None and not self.motion.stop

    def apply(self, text: str) -> PtzCommand:
        """Carry out one PTZCmd; raises ``PtzError`` for a malformed one."""
        cmd = decode(text)
        self.commands.append(text)
        self.received.append(self.clock())
        self.settle()
        if cmd.kind == "preset":
            if cmd.op == "set":
                name = self.presets.get(cmd.preset, (f"预置位{cmd.preset}",))[0]
                self.presets[cmd.preset] = (name, self.pan, self.tilt, self.zoom)
            elif cmd.op == "delete":
                self.presets.pop(cmd.preset, None)
            elif cmd.preset in self.presets:
                _, self.pan, self.tilt, self.zoom = self.presets[cmd.preset]
                self.motion = None
            else:
                raise PtzError("unknown_preset", f"preset {cmd.preset} is not set")
            return cmd
        self.motion = None if cmd.stop else cmd
        return cmd


@dataclass(slots=True)
class ControlState:
    """A device's switches and its channels' heads."""

    heads: dict[str, PtzHead] = field(default_factory=dict)
    guard: bool = False
    recording: set[str] = field(default_factory=set)
    reboots: int = 0
    rejected: list[str] = field(default_factory=list)  # reasons of refused commands, for tests

    def head(self, channel: str) -> PtzHead:
        return self.heads.setdefault(channel, PtzHead())

    def handle(self, body: Manscdp) -> tuple[int, str | None]:
        """A DeviceControl body: (SIP status to answer, Result of a Response MESSAGE to send, or None)."""
        fields = body.fields
        if "ptzcmd" in fields:
            try:
                self.head(body.device_id).apply(fields["ptzcmd"])
            except PtzError as exc:
                self.rejected.append(exc.reason)
                return 400, None
            return 200, None
        if "teleboot" in fields:
            self.reboots += 1
            return 200, None
        if "guardcmd" in fields:
            value = fields["guardcmd"].strip()
            if value not in ("SetGuard", "ResetGuard"):
                self.rejected.append("bad_guardcmd")
                return 200, "ERROR"
            self.guard = value == "SetGuard"
            return 200, "OK"
        if "recordcmd" in fields:
            value = fields["recordcmd"].strip()
            if value not in ("Record", "StopRecord"):
                self.rejected.append("bad_recordcmd")
                return 200, "ERROR"
            (self.recording.add if value == "Record" else self.recording.discard)(body.device_id)
            return 200, "OK"
        self.rejected.append("unknown_control")
        return 400, None

    def preset_items(self, channel: str) -> list[tuple[int, str]]:
        head = self.head(channel)
        return [(n, head.presets[n][0]) for n in sorted(head.presets)]
