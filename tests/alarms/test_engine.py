"""The alarm lifecycle against real Redis, with a controllable clock (no sleeping)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sharpeye.alarms.silence import SilenceSpec

from tests.alarms.conftest import make_site, state_rule

Factory = Any


async def test_repeat_counts_and_late_or_duplicate_readings_change_nothing(rig_factory: Factory) -> None:
    rig = await rig_factory(make_site([state_rule()]))
    assert await rig.feed(rig.reading("r", "alarm", 1)) == ["raised"]
    assert await rig.feed(rig.reading("r", "alarm", 2), rig.reading("r", "alarm", 2)) == ["repeated", "stale"]
    assert await rig.feed(rig.reading("r", "restore", 1)) == ["stale"]  # older than the last applied
    (alarm,), _ = await rig.store.page()
    assert alarm.count == 2 and alarm.state == "active_unack"
    assert await rig.feed(rig.reading("r", "restore", 3)) == ["cleared"]
    assert await rig.feed(rig.reading("r", "alarm", 3)) == ["stale"]  # a replayed alarm never reopens it
    events = await rig.events()
    assert [e["type"] for e in events] == ["raised", "cleared"]  # repeats are not notifications


async def test_acknowledge_and_clear_are_independent(rig_factory: Factory) -> None:
    rig = await rig_factory(make_site([state_rule()]))
    await rig.feed(rig.reading("r", "alarm", 1))
    (alarm,), _ = await rig.store.page()
    assert (await rig.store.act(alarm.id, "acknowledge", "user:li", rig.clock.now())).outcome == "acknowledged"
    assert (await rig.store.get(alarm.id)).state == "active_ack"  # type: ignore[union-attr]
    await rig.feed(rig.reading("r", "restore", 2))
    assert (await rig.store.get(alarm.id)).state == "cleared"  # type: ignore[union-attr]
    # the other order: cleared first, acknowledged later
    rig.clock.advance(1)
    await rig.feed(rig.reading("r", "alarm", 3))
    (second, _first), _ = await rig.store.page()
    assert second.id != alarm.id
    await rig.feed(rig.reading("r", "restore", 4))
    assert (await rig.store.get(second.id)).state == "cleared_unack"  # type: ignore[union-attr]
    await rig.store.act(second.id, "acknowledge", "user:wang", rig.clock.now(), "checked on site")
    history = await rig.store.history(second.id)
    assert [(h.action, h.actor) for h in history] == [
        ("raised", "rule:r"),
        ("cleared", "rule:r"),
        ("acknowledged", "user:wang"),
    ]
    assert history[-1].note == "checked on site" and history[-1].state == "cleared"
    counts = await rig.store.counts()
    assert counts["cleared"] == 2 and counts["active_unack"] == 0


async def test_camera_style_events_clear_after_a_quiet_period(rig_factory: Factory) -> None:
    rule = state_rule(condition={"type": "state", "active": ["alarm"]}, clear={"mode": "quiet", "quiet_s": 30})
    rig = await rig_factory(make_site([rule]))
    await rig.feed(rig.reading("r", "alarm", None))
    assert await rig.advance(20) == []
    await rig.feed(rig.reading("r", "alarm", None))  # repeated: the quiet period starts again
    assert "cleared" not in await rig.advance(20)
    assert await rig.advance(11) == ["cleared"]
    (alarm,), _ = await rig.store.page()
    assert alarm.state == "cleared_unack" and alarm.count == 2


async def test_hold_for_duration(rig_factory: Factory) -> None:
    rig = await rig_factory(make_site([state_rule(hold_s=10)]))
    assert await rig.feed(rig.reading("r", "alarm", 1)) == ["pending"]
    rig.clock.advance(5)
    assert await rig.feed(rig.reading("r", "restore", 2)) == ["noop"]  # did not hold: nothing raised
    assert await rig.advance(20) == []
    assert await rig.feed(rig.reading("r", "alarm", 3)) == ["pending"]
    assert await rig.advance(10) == ["raised"]  # held for 10 s, raised by the timer
    assert [e["type"] for e in await rig.events()] == ["raised"]


async def test_count_within_window(rig_factory: Factory) -> None:
    rule = state_rule(condition={"type": "count", "active": ["alarm"], "count": 3, "window_s": 60},
                      clear={"mode": "quiet", "quiet_s": 300})  # fmt: skip
    rig = await rig_factory(make_site([rule]))
    assert await rig.feed(rig.reading("r", "alarm", 1)) == ["counting"]
    rig.clock.advance(61)  # the first one falls out of the window
    assert await rig.feed(rig.reading("r", "alarm", 2), rig.reading("r", "alarm", 3)) == ["counting", "counting"]
    assert await rig.feed(rig.reading("r", "alarm", 4)) == ["raised"]


async def test_absence_of_readings(rig_factory: Factory) -> None:
    rule = state_rule(condition={"type": "absence", "absent_s": 120})
    rig = await rig_factory(make_site([rule]))
    assert await rig.feed(rig.reading("r", 21.5, 1)) == ["noop"]
    assert await rig.advance(100) == []
    assert await rig.advance(30) == ["raised"]
    assert await rig.feed(rig.reading("r", 21.7, 2)) == ["cleared"]


async def test_flapping_makes_one_alarm_not_a_storm(rig_factory: Factory) -> None:
    rig = await rig_factory(make_site([state_rule(flapping={"transitions": 4, "window_s": 60})]))
    outcomes = []
    for seq in range(1, 21):
        outcomes += await rig.feed(rig.reading("r", "alarm" if seq % 2 else "restore", seq))
        rig.clock.advance(1)
    assert outcomes.count("raised") == 2 and "flapping" in outcomes
    alarms, _ = await rig.store.page()
    assert len(alarms) == 2
    flapping = [a for a in alarms if a.flapping]
    assert len(flapping) == 1 and flapping[0].state == "active_unack"
    # quiet for a window: flapping ends and the wanted state (the last reading was a restore) applies
    assert "cleared" in await rig.advance(61) + await rig.advance(61)
    types = [e["type"] for e in await rig.events()]
    assert types.count("flapping") == 1 and types.count("raised") == 2


async def test_silence_hides_then_notifies_once_when_it_ends(rig_factory: Factory) -> None:
    rig = await rig_factory(make_site([state_rule()]))
    now = rig.clock.now()
    spec = SilenceSpec(matchers={"device_id": "d1"}, starts_at=now, ends_at=now + timedelta(minutes=10),
                       reason="维护围栏", kind="maintenance")  # fmt: skip
    await rig.engine.silences.create(spec, "user:zhao", now)
    await rig.feed(rig.reading("r", "alarm", 1), rig.reading("r", "alarm", 1, device="d2"))
    alarms = {a.device_id: a for a in (await rig.store.page())[0]}
    assert alarms["d1"].silenced == "silence" and alarms["d2"].silenced is None
    assert [e["alarm"] for e in await rig.events()] == [alarms["d2"].id]
    assert await rig.advance(300) == []
    assert await rig.advance(301) == ["raised"]  # the silence ended while d1's alarm is still active
    assert [e["alarm"] for e in await rig.events()] == [alarms["d2"].id, alarms["d1"].id]
    assert await rig.advance(600) == []  # once only


async def test_power_loss_inhibits_communication_alarms_of_the_same_device(rig_factory: Factory) -> None:
    power = state_rule("power", inhibits=["comm"], severity="minor", category="device_fault")
    comm = state_rule("comm", severity="minor", category="device_fault")
    rig = await rig_factory(make_site([power, comm]))
    await rig.feed(rig.reading("power", "alarm", 1, channel=None))
    await rig.feed(
        rig.reading("comm", "alarm", 2, channel=None), rig.reading("comm", "alarm", 2, device="d9", channel=None)
    )
    alarms = {(a.rule_id, a.device_id): a for a in (await rig.store.page())[0]}
    assert alarms[("comm", "d1")].silenced == "inhibited"
    assert alarms[("comm", "d9")].silenced is None
    assert sorted(e["alarm"] for e in await rig.events()) == sorted(
        [alarms[("power", "d1")].id, alarms[("comm", "d9")].id]
    )


async def test_alarms_in_one_place_within_the_window_form_one_incident(rig_factory: Factory) -> None:
    fence = state_rule("fence", severity="major")
    camera = state_rule("camera", severity="critical")
    thermal = state_rule("thermal", severity="warning")
    rig = await rig_factory(make_site([fence, camera, thermal], alarms={"correlation_window_s": 60}))
    await rig.feed(rig.reading("fence", "alarm", 1))
    rig.clock.advance(20)
    await rig.feed(rig.reading("camera", "alarm", 1, device="cam-1"))
    await rig.feed(rig.reading("thermal", "alarm", 1, device="b-thermal"))  # other grid: its own incident
    rig.clock.advance(200)
    await rig.feed(rig.reading("fence", "alarm", 1, device="d7"))  # same grid, window passed: new incident
    alarms = {a.rule_id + a.device_id: a for a in (await rig.store.page())[0]}
    first = alarms["fenced1"].incident
    assert first is not None and alarms["cameracam-1"].incident == first
    assert alarms["thermalb-thermal"].incident not in (None, first)
    assert alarms["fenced7"].incident not in (None, first)
    incident = await rig.store.incident(first)
    assert incident is not None and incident.severity == "critical"
    assert sorted(incident.alarm_ids) == sorted([alarms["fenced1"].id, alarms["cameracam-1"].id])


async def test_device_restarting_its_sequence_is_accepted(rig_factory: Factory) -> None:
    rig = await rig_factory(make_site([state_rule()]))
    assert await rig.feed(rig.reading("r", "alarm", 5000)) == ["raised"]
    assert await rig.feed(rig.reading("r", "restore", 10)) == ["stale"]  # lower seq, same time: a late message
    rig.clock.advance(600)
    assert await rig.feed(rig.reading("r", "restore", 11)) == ["cleared"]  # lower seq, much newer: a reboot


async def test_timers_and_silences_survive_a_restart(rig_factory: Factory) -> None:
    """A new engine (a restarted hub) finds quiet periods, holds and silences where the old one left them."""
    quiet = state_rule("cam", condition={"type": "state", "active": ["alarm"]}, clear={"mode": "quiet", "quiet_s": 30})
    hold = state_rule("hold", hold_s=10)
    plain = state_rule("plain")
    site = make_site([quiet, hold, plain])
    first = await rig_factory(site)
    now = first.clock.now()
    await first.engine.silences.create(
        SilenceSpec(matchers={"device_id": "d9"}, starts_at=now, ends_at=now + timedelta(seconds=100), reason="检修"),
        "user:zhao", now,
    )  # fmt: skip
    await first.feed(first.reading("cam", "alarm", None), first.reading("hold", "alarm", 1))
    await first.feed(first.reading("plain", "alarm", 1, device="d9"))  # silenced: recorded, not notified
    raised_before = [e["type"] for e in await first.events()].count("raised")

    second = await rig_factory(site, first.clock)  # same Redis, fresh process state
    assert await second.advance(5) == []  # nothing due yet: no duplicate notification of the silenced alarm
    assert sorted(await second.advance(6)) == ["raised"]  # the hold elapsed (10 s) under the new engine
    assert sorted(await second.advance(20)) == ["cleared"]  # the quiet period (30 s) ended under the new engine
    assert await second.advance(70) == ["raised"]  # the silence ended while d9's alarm is active: notified once
    assert await second.advance(70) == []
    types = [e["type"] for e in await second.events()]
    assert types.count("raised") == raised_before + 2
