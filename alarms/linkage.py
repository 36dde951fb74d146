"""Linkage (联动): a raised alarm whose rule records evidence gets a snapshot and a clip from its linked cameras; a
rule's PTZ linkage turns a PTZ camera to a preset when its alarm is raised, and back to the camera's guard position
(看守位) once no alarm has turned it for a quiet time."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Protocol

from sharpeye.alarms.notification import BatchHandler, Event
from sharpeye.alarms.store import AlarmStore
from sharpeye.config.rule import Rule

from sharpeye.clock import Clock

log = logging.getLogger(__name__)


class EvidenceRecorder(Protocol):
    """The video side (the camera service): record a snapshot and a clip of a camera for an alarm."""

    async def record(self, camera_id: str, alarm_id: str) -> Sequence[str]: ...


def linked_evidence(
    store: AlarmStore, rules: Mapping[str, Rule], cameras: EvidenceRecorder, clock: Clock
) -> BatchHandler:
    """A handler of alarm notifications (``alarms.notification.consume``): for each raised alarm whose rule has
    ``linkage.record``, evidence from its linked cameras (not its own: a camera's alarms carry theirs already)."""

    async def record(events: list[Event]) -> None:
        for event in events:
            if event.get("type") != "raised":
                continue
            alarm = await store.get(event["alarm"])
            rule = rules.get(alarm.rule_id) if alarm is not None else None
            if alarm is None or rule is None or not rule.linkage.record:
                continue
            refs: list[str] = []
            for camera in alarm.cameras:
                if camera != alarm.device_id:
                    refs.extend(await cameras.record(camera, alarm.id))
            if refs:
                await store.act(alarm.id, "evidence", "linkage", clock.now(), extra={"refs": refs})

    return record


class PresetCaller(Protocol):
    """The GB/T 28181 side: turn a camera (a configured gb28181: camera or a channel code) to a preset."""

    async def call_preset(self, camera_id: str, preset: int) -> None: ...


class PresetLinker:
    """A handler of alarm notifications: for each raised alarm whose rule has ``linkage.ptz`` entries matching its
    zone (channel), call the entry's preset; ``return_after_s`` after the last such call for a camera, call its
    ``guard_preset``. A failed call is logged and counted (``stats``), never retried: an operator sees the alarm
    anyway. ``handle`` is the batch handler; ``stop`` cancels the pending returns."""

    def __init__(self, store: AlarmStore, rules: Mapping[str, Rule], caller: PresetCaller) -> None:
        self.store = store
        self.rules = rules
        self.caller = caller
        self.stats: Counter[str] = Counter()
        self._returns: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[bool]] = set()

    async def handle(self, events: list[Event]) -> None:
        for event in events:
            if event.get("type") != "raised":
                continue
            alarm = await self.store.get(event["alarm"])
            rule = self.rules.get(alarm.rule_id) if alarm is not None else None
            if alarm is None or rule is None:
                continue
            for turn in rule.linkage.ptz:
                if turn.zones and alarm.channel not in turn.zones:
                    self.stats["other_zone"] += 1
                    continue
                if await self._call(turn.camera, turn.preset, "preset"):
                    log.info("alarm %s turned %s to preset %d", alarm.id, turn.camera, turn.preset)
                if turn.guard_preset is not None:
                    self._schedule_return(turn.camera, turn.guard_preset, turn.return_after_s)

    async def _call(self, camera: str, preset: int, what: str) -> bool:
        try:
            await self.caller.call_preset(camera, preset)
        except Exception as exc:
            self.stats[f"{what}.failed"] += 1
            log.warning("PTZ linkage: %s %d of %s failed: %s", what, preset, camera, exc)
            return False
        self.stats[what] += 1
        return True

    def _schedule_return(self, camera: str, guard: int, after_s: float) -> None:
        pending = self._returns.pop(camera, None)
        if pending is not None:
            pending.cancel()  # another alarm turned it: the quiet time starts again
        loop = asyncio.get_running_loop()

        def back() -> None:
            self._returns.pop(camera, None)
            task = asyncio.ensure_future(self._call(camera, guard, "guard"))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        self._returns[camera] = loop.call_later(after_s, back)

    @property
    def pending_returns(self) -> list[str]:
        return sorted(self._returns)

    async def stop(self) -> None:
        for handle in self._returns.values():
            handle.cancel()
        self._returns.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
