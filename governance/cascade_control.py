"""The upper platform's control of SharpEye's channels, carried out: a DeviceControl (PTZCmd, GuardCmd, RecordCmd)
or PresetQuery for one of the channels SharpEye publishes upward is forwarded to the device that owns the channel.

The MESSAGE is answered at once: 400 for a malformed body or PTZCmd (named, counted), 404 for a channel SharpEye
does not publish, 403 for what SharpEye does not let an upper platform do (rebooting a device through it), else 200
and the command goes down in the background. GuardCmd/RecordCmd and PresetQuery get their Response MESSAGE upward
once the device answered (``Result`` ERROR when it did not). Counters in ``stats`` (``upward.<what>``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence

from sharpeye.ingest.gb28181.control import ControlError, DeviceCommand, GbControl
from sharpeye.ingest.gb28181.manscdp import Manscdp, Node, build
from sharpeye.ingest.gb28181.platform import Channel
from sharpeye.ingest.gb28181.ptz import PtzError, decode

log = logging.getLogger(__name__)

Reply = Callable[[bytes], Awaitable[int]]
COMMANDS: dict[tuple[str, str], DeviceCommand] = {
    ("guardcmd", "SetGuard"): "guard",
    ("guardcmd", "ResetGuard"): "unguard",
    ("recordcmd", "Record"): "record_start",
    ("recordcmd", "StopRecord"): "record_stop",
}


class UpwardControl:
    """Forwards the upper platform's control of published channels through ``GbControl``."""

    def __init__(self, control: Callable[[], GbControl | None], catalog: Callable[[], Sequence[Channel]],
                 charset: str = "GB2312") -> None:  # fmt: skip
        self._control = control
        self._catalog = catalog
        self.charset = charset
        self.stats: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()

    @staticmethod
    def handles(body: Manscdp) -> bool:
        cmd = body.cmd_type.lower()
        return (body.root == "control" and cmd == "devicecontrol") or (body.root == "query" and cmd == "presetquery")

    def accept(self, body: Manscdp, reply: Reply) -> int:
        """Check the request and start carrying it out; the SIP status to answer the MESSAGE with."""
        channel = body.device_id
        if channel not in {c.channel_id for c in self._catalog()}:
            self.stats["upward.unknown_channel"] += 1
            return 404
        control = self._control()
        if control is None:
            self.stats["upward.not_running"] += 1
            return 503
        if body.root == "query":
            self._spawn(self._presets(control, body, reply))
            return 200
        fields = body.fields
        if "ptzcmd" in fields:
            try:
                cmd = decode(fields["ptzcmd"])
            except PtzError as exc:
                self.stats[f"upward.bad_ptzcmd.{exc.reason}"] += 1
                log.info("upper platform sent a malformed PTZCmd for %s: %s", channel, exc)
                return 400
            self._spawn(self._ptz(control, channel, cmd.encode()))
            return 200
        if "teleboot" in fields:
            self.stats["upward.refused.teleboot"] += 1
            return 403
        for (name, value), command in COMMANDS.items():
            if fields.get(name, "").strip() == value:
                self._spawn(self._command(control, body, command, reply))
                return 200
        self.stats["upward.unsupported"] += 1
        return 400

    async def _ptz(self, control: GbControl, channel: str, text: str) -> None:
        try:
            await control.send_ptz(channel, decode(text))
        except ControlError as exc:
            self.stats[f"upward.failed.{exc.reason}"] += 1
            return
        self.stats["upward.ptz"] += 1

    async def _command(self, control: GbControl, body: Manscdp, command: DeviceCommand, reply: Reply) -> None:
        try:
            result = await control.device_command(body.device_id, command)
        except ControlError as exc:
            self.stats[f"upward.failed.{exc.reason}"] += 1
            result = "ERROR"
        else:
            self.stats[f"upward.{command}"] += 1
        await self._reply(reply, build("Response", "DeviceControl", body.sn, body.device_id, [("Result", result)],
                                       charset=self.charset))  # fmt: skip

    async def _presets(self, control: GbControl, body: Manscdp, reply: Reply) -> None:
        try:
            presets = await control.presets(body.device_id)
        except ControlError as exc:
            self.stats[f"upward.failed.{exc.reason}"] += 1
            presets = []
        else:
            self.stats["upward.preset_query"] += 1
        rows: list[list[Node]] = [[("PresetID", p.number), ("PresetName", p.name)] for p in presets]
        await self._reply(reply, build("Response", "PresetQuery", body.sn, body.device_id, [("SumNum", len(rows))],
                                       charset=self.charset, device_list=("PresetList", rows)))  # fmt: skip

    async def _reply(self, reply: Reply, payload: bytes) -> None:
        try:
            await reply(payload)
        except Exception as exc:  # the upper platform went away: counted, nothing to retry
            self.stats["upward.reply_failed"] += 1
            log.info("answering the upper platform failed: %s", exc)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
