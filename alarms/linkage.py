"""Linkage (联动): a raised alarm whose rule records evidence gets a snapshot and a clip from its linked cameras."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from sharpeye.alarms.notification import BatchHandler, Event
from sharpeye.alarms.store import AlarmStore
from sharpeye.config.rule import Rule

from sharpeye.clock import Clock


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
