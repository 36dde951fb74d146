"""The site simulation without a broker: the demo drill and the fault drill, decoded by the real drivers."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sharpeye.config.site import SiteConfig
from sharpeye.ingest.driver import Payload, StatefulDriver
from sharpeye.ingest.reading import DecodeError, Reading
from sharpeye.ingest.registry import installed
from sharpeye.simulators.scenario import Scenario, Step, load_scenario, scenario_dir
from sharpeye.simulators.site import ScenarioError, SiteSimulation

START = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)


class Decoded:
    """Runs a simulation and decodes every message as the hub would (one state per stateful device)."""

    def __init__(self, site: SiteConfig) -> None:
        self.devices = {d.id: d for d in site.devices}
        self.states: dict[str, object] = {}
        self.readings: list[tuple[float, Reading]] = []
        self.errors: list[tuple[str, str]] = []
        self.messages: list[tuple[float, str, bytes]] = []

    def feed(self, elapsed: float, topic: str, data: bytes) -> None:
        self.messages.append((elapsed, topic, data))
        _, kind, device_id, channel = topic.split("/")
        if kind not in installed().drivers or device_id not in self.devices:  # the transport's checks
            self.errors.append((device_id, "unknown_kind" if kind not in installed().drivers else "unknown_device"))
            return
        device = self.devices[device_id]
        driver = installed().get(kind)
        payload = Payload(device_id, channel, data, START)
        try:
            if isinstance(driver, StatefulDriver):
                state = self.states.setdefault(device_id, driver.new_state(device))
                readings = driver.decode(device, payload, state)
            else:
                readings = driver.decode(device, payload)
        except DecodeError as exc:
            self.errors.append((device_id, exc.reason))
            return
        self.readings.extend((elapsed, r) for r in readings)

    def run(self, simulation: SiteSimulation, until_s: float, step_s: float = 0.5) -> None:
        elapsed = 0.0
        while elapsed <= until_s:
            for topic, data in simulation.advance(elapsed):
                self.feed(elapsed, topic, data)
            elapsed += step_s

    def of(self, device_id: str, kind: str) -> list[tuple[float, Reading]]:
        return [(t, r) for t, r in self.readings if r.device_id == device_id and r.kind == kind]


def test_demo_scenario_drives_the_demo_site(demo_site: SiteConfig) -> None:
    scenario = load_scenario(scenario_dir() / "demo.yaml")
    simulation = SiteSimulation(demo_site, scenario, start=START)
    assert set(simulation.entries) == {
        "fence-reservoir", "fence-school", "thermal-hillside", "thermal-reservoir", "gauge-reservoir"
    }  # fmt: skip
    decoded = Decoded(demo_site)
    decoded.run(simulation, until_s=200)
    assert decoded.errors == []

    intrusion = [(t, r.channel, r.value) for t, r in decoded.of("fence-reservoir", "fence.intrusion")]
    assert intrusion == [(3.0, "z1", "alarm"), (63.0, "z1", "restore")]
    _, alarm = decoded.of("fence-reservoir", "fence.intrusion")[0]
    assert alarm.ts == datetime(2026, 1, 5, 2, 0, 3, tzinfo=UTC)
    assert alarm.attrs["armed"] is True

    beats = [t for t, _ in decoded.of("fence-reservoir", "device.heartbeat")]
    gaps = [b - a for a, b in itertools.pairwise(beats)]
    assert len(beats) >= 6 and all(29.5 <= g <= 30.5 for g in gaps), beats

    # The person on the dam is seen (warmer than ambient) but raises nothing.
    dam = [r for _, r in decoded.of("thermal-reservoir", "thermal.roi")]
    assert max(float(r.value or 0) for r in dam) >= 33
    assert {r.value for _, r in decoded.of("thermal-reservoir", "thermal.fire")} == {"normal"}
    assert {r.value for _, r in decoded.of("thermal-reservoir", "thermal.level")} == {"normal"}

    # The hillside fire starts at 20 s, is detected as fire, then as a temperature alarm, and ends after 150 s.
    fire = [(t, r) for t, r in decoded.of("thermal-hillside", "thermal.fire")]
    values = [r.value for _, r in fire]
    assert values == ["normal", "alarm", "normal"], values
    raised_at, raised = fire[1]
    assert 20 < raised_at <= 60
    assert raised.attrs["x"] == pytest.approx(0.7, abs=0.02) and raised.attrs["y"] == pytest.approx(0.65, abs=0.02)
    assert fire[2][0] >= 150
    levels = [r.value for _, r in decoded.of("thermal-hillside", "thermal.level")]
    assert levels[0] == "normal" and "alarm" in levels and levels[-1] == "normal"


def test_fault_scenario_duplicates_reorders_drops_and_sends_garbage(demo_site: SiteConfig) -> None:
    simulation = SiteSimulation(demo_site, load_scenario(scenario_dir() / "faults.yaml"), start=START)
    decoded = Decoded(demo_site)
    decoded.run(simulation, until_s=160)

    # Every device sent every kind of garbage once at 5 s, and each was rejected with a reason.
    rejected = Counter(device.removesuffix("-ghost") for device, _ in decoded.errors)
    assert set(rejected) == set(simulation.entries)
    reasons = {reason for _, reason in decoded.errors}
    assert {"oversize", "not_json", "bad_utf8", "wrong_shape", "unknown_device", "unknown_kind"} <= reasons
    ghosts = [t for _, t, _ in decoded.messages if "ghost" in t]
    assert (
        "sharpeye/fence/fence-school-ghost/heartbeat" in ghosts
        and "sharpeye/fence_ghost/fence-school/heartbeat" in ghosts
    )

    events = [(t, r.seq, r.value, r.channel) for t, r in decoded.of("fence-school", "fence.intrusion")]
    assert [e[2] for e in events] == ["alarm", "alarm", "restore", "restore"]  # duplicated
    assert events[0][1] == events[1][1]

    assert len(decoded.of("fence-school", "fence.wire_cut")) == 2
    during = [r.seq for t, r in decoded.readings if r.device_id == "fence-school" and 30 <= t < 70]
    assert during != sorted(during), f"reorder fault should deliver out of seq order: {during}"
    assert sorted(during) == sorted(set(during)), "reordered, not lost or duplicated"

    beats = [t for t, _ in decoded.of("fence-reservoir", "device.heartbeat")]
    assert not [t for t in beats if 60 <= t < 100], "heartbeats dropped for 40 s"
    assert [t for t in beats if t >= 100], "heartbeats come back"
    silent = [t for t, topic, _ in decoded.messages if 120 <= t < 150]
    assert silent == []


def test_scenario_naming_an_unknown_device_or_action_is_refused(demo_site: SiteConfig) -> None:
    with pytest.raises(ScenarioError, match="no simulated device matches 'fence-nowhere'"):
        SiteSimulation(demo_site, Scenario(name="x", steps=[Step(at=1, device="fence-nowhere", action="alarm")]))
    with pytest.raises(ScenarioError, match="has no action 'explode'"):
        SiteSimulation(demo_site, Scenario(name="x", steps=[Step(at=1, device="kind:fence", action="explode")]))


def test_scenario_file_errors_carry_line_numbers(tmp_path: Path) -> None:
    from sharpeye.config.loader import ConfigError

    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nsteps:\n  - {at: 1, device: x, action: alarm}\n  - {at: -2, device: x, action: y}\n")
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    assert [(i.path, i.line) for i in err.value.issues] == [("steps[1].at", 4)]


def test_hundreds_of_devices_in_one_simulation(fence_fleet) -> None:  # type: ignore[no-untyped-def]
    site = fence_fleet(400, 1.0)
    simulation = SiteSimulation(site, None, start=START)
    per_device: defaultdict[str, int] = defaultdict(int)
    elapsed = 0.0
    while elapsed <= 10:
        for topic, _ in simulation.advance(elapsed):
            per_device[topic.split("/")[2]] += 1
        elapsed += 0.25
    assert len(per_device) == 400
    assert min(per_device.values()) >= 9 and max(per_device.values()) <= 11


def test_fence_command_is_confirmed_per_zone(demo_site: SiteConfig) -> None:
    from sharpeye.ingest.fence.command import FenceCommand, encode_command

    simulation = SiteSimulation(demo_site, None, start=START)
    decoded = Decoded(demo_site)
    topic = "sharpeye/fence/fence-school/command"
    for t, data in simulation.command(topic, encode_command(FenceCommand(id="c-1", command="disarm")), 5.0):
        decoded.feed(5.0, t, data)
    arming = [(r.channel, r.value, r.attrs["command_id"]) for _, r in decoded.of("fence-school", "fence.arming")]
    assert arming == [("z1", "disarmed", "c-1"), ("z2", "disarmed", "c-1"), ("z3", "disarmed", "c-1")]

    answers = simulation.command(topic, encode_command(FenceCommand(id="c-2", command="arm", zone="z2")), 6.0)
    for t, data in answers:
        decoded.feed(6.0, t, data)
    assert [r.value for _, r in decoded.of("fence-school", "fence.arming")][-1] == "armed"
    # The controller's next heartbeat reports the new arming state.
    decoded.run(simulation, until_s=40)
    beat = decoded.of("fence-school", "device.heartbeat")[-1][1]
    assert beat.attrs["armed"] == {"z1": False, "z2": True, "z3": False, "tamper": True}

    assert simulation.command(topic, b'{"command": "explode"}', 7.0) == []
    assert simulation.command("sharpeye/fence/fence-nowhere/command", b"{}", 7.0) == []


def test_a_step_with_bad_arguments_is_reported_and_the_drill_goes_on(demo_site: SiteConfig) -> None:
    steps = [
        Step(at=1, device="fence-school", action="battery", args={}),  # volts missing
        Step(at=2, device="fence-school", action="alarm", args={"zone": "z1", "cause": "lightning"}),
        Step(at=3, device="fence-school", action="alarm", args={"zone": "z1"}),
    ]
    simulation = SiteSimulation(demo_site, Scenario(name="x", steps=steps), start=START)
    decoded = Decoded(demo_site)
    decoded.run(simulation, until_s=5)
    assert len(simulation.failed_steps) == 2
    assert "'volts'" in simulation.failed_steps[0] and "lightning" in simulation.failed_steps[1]
    assert [r.value for _, r in decoded.of("fence-school", "fence.intrusion")] == ["alarm"]


def test_demo_scenario_runs_on_the_demo_site_without_thermal_cameras() -> None:
    """Optional steps are skipped when the site lacks their device; the fence drill still plays."""
    from sharpeye.config.loader import demo_path, load_file

    site = load_file(demo_path(), installed())
    site = site.model_copy(update={"devices": [d for d in site.devices if d.kind != "thermal"]})
    simulation = SiteSimulation(site, load_scenario(scenario_dir() / "demo.yaml"), start=START)
    decoded = Decoded(site)
    decoded.run(simulation, until_s=70)
    assert [r.value for _, r in decoded.of("fence-reservoir", "fence.intrusion")] == ["alarm", "restore"]
    assert decoded.errors == []


def test_scheduled_arming_changes_are_reported(demo_site: SiteConfig) -> None:
    """A zone armed 18:00-06:00 (Shanghai) reports 'disarmed' then 'armed' by schedule as the day passes."""
    from sharpeye.ingest.fence.config import FenceConfig
    from sharpeye.simulators.fence import FenceSimulator

    device = FenceConfig.model_validate(
        {"id": "f1", "kind": "fence", "name": "围界", "grid": "g", "heartbeat_s": 600,
         "zones": [{"id": "z1", "name": "夜间防区", "schedule": {"windows": [{"start": "18:00", "end": "06:00"}]}},
                   {"id": "tamper", "name": "防拆", "type": "tamper"}]}
    )  # fmt: skip
    start = datetime(2026, 1, 5, 21, 0, tzinfo=UTC)  # 05:00 local on Tuesday: armed
    sim = FenceSimulator(device, seed=1, start=start)
    changes = []
    now = start
    while now < start + timedelta(hours=24):
        for channel, data in sim.tick(now):
            if channel == "arming":
                reading = installed().get("fence").decode(device, Payload("f1", channel, data, now))[0]
                changes.append((reading.ts.astimezone(timezone(timedelta(hours=8))).hour, reading.value))
        now = sim.next_tick()
    assert changes == [(6, "disarmed"), (18, "armed")]


def test_flood_fault_repeats_the_last_message(demo_site: SiteConfig) -> None:
    steps = [Step(at=10, device="fence-school", action="flood", args={"count": 500})]
    simulation = SiteSimulation(demo_site, Scenario(name="flood", steps=steps), start=START)
    decoded = Decoded(demo_site)
    decoded.run(simulation, until_s=10)
    flood = [data for t, topic, data in decoded.messages if t == 10 and topic.endswith("fence-school/heartbeat")]
    assert len(flood) == 500 and len(set(flood)) == 1
    with pytest.raises(ScenarioError, match="no simulated device"):
        SiteSimulation(demo_site, Scenario(name="x", steps=[Step(at=1, device="ghost", action="flood")]))


def test_announce_and_withdraw_publish_discovery_configs(demo_site: SiteConfig) -> None:
    from sharpeye.simulators.site import retained

    steps = [
        Step(at=1, device="kind:thermal", action="announce"),
        Step(at=2, device="thermal-hillside", action="withdraw"),
    ]
    simulation = SiteSimulation(demo_site, Scenario(name="discovery", steps=steps), start=START)
    published = [(t, d) for t, d in simulation.advance(2.0) if t.startswith("sharpeye/discovery/")]
    assert [t for t, _ in published] == [
        "sharpeye/discovery/thermal/thermal-hillside/config",
        "sharpeye/discovery/thermal/thermal-reservoir/config",
        "sharpeye/discovery/thermal/thermal-hillside/config",
    ]
    assert all(retained(t) for t, _ in published)
    announced = installed().device_adapter().validate_json(published[0][1])
    assert announced == next(d for d in demo_site.devices if d.id == "thermal-hillside")
    assert published[2][1] == b""
