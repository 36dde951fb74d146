"""A video alarm's repeated readings carry their episode's snapshot and clip again: each reference is kept once."""

from __future__ import annotations

from typing import Any

import msgspec

from tests.alarms.conftest import make_site, state_rule


async def test_repeated_readings_do_not_repeat_evidence(rig_factory: Any) -> None:
    rule = state_rule(condition={"type": "state", "active": ["alarm"]}, clear={"mode": "quiet", "quiet_s": 30})
    rig = await rig_factory(make_site([rule]))
    first = ("cam/20260302/010000-intrusion-a.jpg", "cam/20260302/010000-intrusion-a.mp4")
    second = ("cam/20260302/010005-intrusion-b.jpg", "cam/20260302/010005-intrusion-b.mp4")
    for refs in (first, first, first, second, first + second):
        rig.clock.advance(1)
        await rig.engine.process([msgspec.structs.replace(rig.reading("r", "alarm", None), evidence=refs)])
    (alarm,), _ = await rig.store.page()
    assert alarm.count == 5
    assert list(alarm.evidence) == [*first, *second]
    # Evidence a linked camera records for the alarm is deduplicated the same way.
    await rig.store.act(
        alarm.id, "evidence", "camera:cam-1", rig.clock.now(), extra={"refs": [first[0], "cam-1/20260302/x.jpg"]}
    )
    again = await rig.store.get(alarm.id)
    assert again is not None and list(again.evidence) == [*first, *second, "cam-1/20260302/x.jpg"]
