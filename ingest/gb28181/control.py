"""Device control over GB/T 28181: PTZ and presets of a channel, reboot, recording, guard, sent as DeviceControl
MESSAGEs to the device (IPC, NVR or lower platform) whose catalog holds the channel.

A move keeps going until a stop; so that a lost stop (a closed browser, a dropped network) cannot leave a camera
turning, every move is stopped here ``hold_s`` after the last command for that channel unless another one came
(the console repeats a held button's move every second or so). Every failure is a ``ControlError`` with a short
reason (``unknown_channel``, ``not_registered``, ``timeout``, ``refused``, ``device_error``, ``bad_request``...),
counted in ``stats`` (``control.<reason>`` in /metrics); nothing waits longer than ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from sharpeye.ingest.gb28181.driver import local_time
from sharpeye.ingest.gb28181.manscdp import Node, build
from sharpeye.ingest.gb28181.platform import GbPlatform, MediaError, QueryError
from sharpeye.ingest.gb28181.ptz import PresetOp, PtzCommand, PtzError, command_for, preset_command
from sharpeye.ingest.transport.sip.endpoint import TransactionTimeout

from sharpeye.tasks import cancel_and_wait

log = logging.getLogger(__name__)

DeviceCommand = Literal["teleboot", "record_start", "record_stop", "guard", "unguard"]
DEVICE_COMMANDS: dict[str, tuple[str, str]] = {  # command -> (element, value) of the DeviceControl body
    "teleboot": ("TeleBoot", "Boot"),
    "record_start": ("RecordCmd", "Record"),
    "record_stop": ("RecordCmd", "StopRecord"),
    "guard": ("GuardCmd", "SetGuard"),
    "unguard": ("GuardCmd", "ResetGuard"),
}
CONTROL_TIMEOUT_S = 5.0
HOLD_S = 5.0


def camera_channel(camera_id: str, device: object | None) -> str | None:
    """The GB/T 28181 channel code of a camera: a camera configured (or synced from a catalog) as
    ``gb28181:<device>/<channel>``, or, for a camera not in the inventory, a 20-digit channel code itself."""
    if device is None:
        return camera_id if camera_id.isdigit() and len(camera_id) == 20 else None
    url = str(getattr(device, "url", "") or "")
    if getattr(device, "kind", "") != "camera" or not url.startswith("gb28181:"):
        return None
    return url.removeprefix("gb28181:").split("?")[0].rpartition("/")[2] or None


class ControlError(RuntimeError):
    """A control command failed. ``reason`` is short and groupable; ``status`` the HTTP status it maps to."""

    def __init__(self, reason: str, detail: str = "", status: int = 502) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.status = status


@dataclass(frozen=True, slots=True)
class Preset:
    number: int
    name: str


class GbControl:
    """PTZ, presets and device commands through a running ``GbPlatform``."""

    def __init__(self, platform: GbPlatform, *, timeout_s: float | None = None, hold_s: float = HOLD_S) -> None:
        self.platform = platform
        self.timeout_s = timeout_s or min(CONTROL_TIMEOUT_S, platform.settings.query_timeout_s)
        self.hold_s = hold_s
        self.stats: Counter[str] = Counter()
        self._sn = itertools.count(random.randint(1, 100_000))
        self._stops: dict[str, asyncio.TimerHandle] = {}  # channel -> the automatic stop of its move
        self._tasks: set[asyncio.Task[None]] = set()

    # --- PTZ --------------------------------------------------------------------------------------
    async def ptz(self, channel_id: str, action: str, speed: int = 128) -> PtzCommand:
        """Start moving (``left``, ``zoom_in``, ``focus_near``...) or ``stop``; raises ``ControlError``."""
        try:
            cmd = command_for(action, speed)
        except PtzError as exc:
            raise self._fail("bad_request", str(exc), 422) from None
        await self.send_ptz(channel_id, cmd)
        return cmd

    async def send_ptz(self, channel_id: str, cmd: PtzCommand) -> None:
        """Send one PTZCmd to the channel's device (also what an upper platform's DeviceControl is forwarded as)."""
        self._cancel_stop(channel_id)
        await self._control(channel_id, [("PTZCmd", cmd.encode()), ("Info", [("ControlPriority", 5)])])
        self.stats[f"ptz.{cmd.kind}"] += 1
        if cmd.kind != "preset" and not cmd.stop:
            loop = asyncio.get_running_loop()
            kind = cmd.kind
            self._stops[channel_id] = loop.call_later(self.hold_s, self._auto_stop, channel_id, kind)

    def _cancel_stop(self, channel_id: str) -> None:
        handle = self._stops.pop(channel_id, None)
        if handle is not None:
            handle.cancel()

    def _auto_stop(self, channel_id: str, kind: str) -> None:
        self._stops.pop(channel_id, None)
        self.stats["ptz.auto_stop"] += 1
        stop = PtzCommand("lens") if kind == "lens" else PtzCommand("move")

        async def send() -> None:
            try:
                await self._control(channel_id, [("PTZCmd", stop.encode())])
            except ControlError as exc:
                log.warning("automatic PTZ stop of %s failed: %s", channel_id, exc)

        task = asyncio.ensure_future(send())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- presets ----------------------------------------------------------------------------------
    async def presets(self, channel_id: str) -> list[Preset]:
        """The channel's presets (PresetQuery), by number."""
        device_id = self._owner(channel_id)
        try:
            async with asyncio.timeout(self.timeout_s + 1):
                pages = await self.platform.query(device_id, "PresetQuery", channel_id)
        except (QueryError, TimeoutError) as exc:
            raise self._fail("timeout" if "incomplete" in str(exc) or isinstance(exc, TimeoutError) else "refused",
                             f"PresetQuery to {device_id}: {exc or 'no answer'}", 504) from None  # fmt: skip
        found: dict[int, Preset] = {}
        for page in pages:
            for item in page.items:
                text = item.get("presetid", "").strip()
                if text.isdigit() and 1 <= int(text) <= 255:
                    found[int(text)] = Preset(int(text), item.get("presetname", "").strip())
                else:
                    self.stats["bad_preset_item"] += 1
        self.stats["preset.query"] += 1
        return [found[n] for n in sorted(found)]

    async def preset(self, channel_id: str, op: PresetOp, number: int) -> None:
        """Set (store the current position), call (go there) or delete a preset 1-255."""
        try:
            cmd = preset_command(op, number)
        except PtzError as exc:
            raise self._fail("bad_request", str(exc), 422) from None
        await self.send_ptz(channel_id, cmd)

    # --- device commands --------------------------------------------------------------------------
    async def device_command(self, target_id: str, command: DeviceCommand) -> str:
        """Reboot, start/stop recording, guard/unguard a device or channel; the device's Result (``OK``), or
        ``sent`` for a reboot (a rebooting device answers nothing but the MESSAGE)."""
        if command not in DEVICE_COMMANDS:
            raise self._fail("bad_request", f"unknown command {command!r}", 422)
        element, value = DEVICE_COMMANDS[command]
        if command == "teleboot":
            await self._control(target_id, [(element, value)])
            self.stats["device.teleboot"] += 1
            return "sent"
        device_id = self._owner(target_id)
        try:
            async with asyncio.timeout(self.timeout_s + 1):
                fields: list[Node] = [(element, value)]
                pages = await self.platform.query(device_id, "DeviceControl", target_id, root="Control", fields=fields)
        except (QueryError, TimeoutError) as exc:
            raise self._fail("timeout", f"{element} to {device_id}: {exc or 'no answer'}", 504) from None
        result = pages[0].fields.get("result", "").strip().upper()
        if result != "OK":
            raise self._fail("device_error", f"{element} {value}: the device answered {result or 'nothing'}")
        self.stats[f"device.{command}"] += 1
        return result

    async def device_time(self, device_id: str) -> datetime:
        """The device's clock (``DeviceTime`` of DeviceStatus), as aware UTC. Devices set their clock from the
        ``Date`` of SharpEye's answer to their REGISTER; this shows how far one has drifted since."""
        try:
            state = self.platform.device(device_id)
        except KeyError:
            raise self._fail("unknown_device", f"no GB/T 28181 device {device_id}", 404) from None
        try:
            async with asyncio.timeout(self.timeout_s + 1):
                fields = await self.platform.query_device_status(device_id)
        except (QueryError, TimeoutError) as exc:
            raise self._fail("timeout", f"DeviceStatus of {device_id}: {exc or 'no answer'}", 504) from None
        when = local_time(fields.get("devicetime", ""), state.config.timezone)
        if when is None:
            raise self._fail("device_error", f"{device_id} reports no usable DeviceTime")
        self.stats["device.time"] += 1
        return when

    # --- sending ----------------------------------------------------------------------------------
    def _owner(self, channel_id: str) -> str:
        try:
            return self.platform.owner_of(channel_id).config.id
        except MediaError as exc:
            raise self._fail("unknown_channel", str(exc), 404) from None

    async def _control(self, target_id: str, fields: list[Node]) -> None:
        device_id = self._owner(target_id)
        state = self.platform.device(device_id)
        body = build("Control", "DeviceControl", next(self._sn), target_id, fields, charset=state.config.charset)
        try:
            status = await self.platform.send_message(device_id, body, limit_s=self.timeout_s)
        except QueryError as exc:
            raise self._fail("not_registered", str(exc), 409) from None
        except TransactionTimeout:
            raise self._fail("timeout", f"device {device_id} did not answer in {self.timeout_s:g} s", 504) from None
        if status != 200:
            raise self._fail("refused", f"device {device_id} answered {status}")

    def _fail(self, reason: str, detail: str, status: int = 502) -> ControlError:
        self.stats[f"error.{reason}"] += 1
        return ControlError(reason, detail, status)

    async def stop(self) -> None:
        for handle in self._stops.values():
            handle.cancel()
        self._stops.clear()
        await cancel_and_wait(list(self._tasks))


class CounterCollector(Collector):
    """A ``Counter`` of events read at scrape time as one Prometheus counter family labelled ``event``:
    ``sharpeye_gb_control_total{event}`` (PTZ commands by kind, automatic stops, device commands, failures by
    reason), ``sharpeye_gb_subscription_total{event}`` (SUBSCRIBEs granted/refused/unanswered, positions)."""

    def __init__(self, name: str, documentation: str, stats: Callable[[], Counter[str] | None]) -> None:
        self._name = name
        self._doc = documentation
        self._stats = stats

    def collect(self) -> Iterator[Any]:
        family = CounterMetricFamily(self._name, self._doc, labels=["event"])
        stats = self._stats()
        for key, value in sorted(stats.items() if stats is not None else []):
            family.add_metric([key], value)
        yield family
