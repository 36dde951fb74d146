"""The contract suite: every installed MQTT kind decodes its recorded good payloads to the expected
readings, rejects its recorded bad payloads with the expected reason, survives its simulator, and never
raises anything but ``DecodeError`` whatever bytes arrive (hypothesis). Every installed kind, whatever its
transport, labels itself and each of its reading kinds in both console languages."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sharpeye.config.device import DeviceConfig
from sharpeye.ingest.driver import LANGUAGES, Contracted, Driver, Payload, StatefulDriver
from sharpeye.ingest.reading import DecodeError, Reading
from sharpeye.ingest.registry import installed

ALL_KINDS = sorted(installed().kinds)
MQTT_KINDS = sorted(kind for kind, driver in installed().drivers.items() if driver.transport == "mqtt")


def test_bundled_mqtt_kinds_are_installed() -> None:
    assert {"fence", "thermal", "water_level"} <= set(MQTT_KINDS)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_kind_labels_itself_in_both_languages(kind: str) -> None:
    """The console shows these (GET /api/kinds): a kind without them would show its raw key."""
    driver = installed().get(kind)
    labels = driver.labels
    wanted = {kind, *driver.reading_kinds}
    assert set(labels) == wanted, (
        f"{kind}: labels must cover exactly the kind and its reading kinds; "
        f"missing {sorted(wanted - set(labels))}, extra {sorted(set(labels) - wanted)}"
    )
    for key, label in labels.items():
        for language in LANGUAGES:
            text = label.get(language)
            assert isinstance(text, str) and text.strip(), f"{kind}: {key!r} has no {language!r} label"
            assert text != key, f"{kind}: {key!r}'s {language!r} label is its raw key"


@dataclass
class Step:
    channel: str
    data: bytes
    readings: list[dict[str, Any]]


@dataclass
class Case:
    name: str
    device: DeviceConfig
    steps: list[Step]
    reason: str | None
    received: datetime


def _payload_bytes(spec: dict[str, Any], folder: Path) -> bytes:
    if "raw" in spec:
        data = str(spec["raw"]).encode("utf-8")
    elif "hex" in spec:
        data = bytes.fromhex(spec["hex"])
    elif "file" in spec:
        data = (folder / spec["file"]).read_bytes()
    elif "raw_parts" in spec:
        head, (body, times), tail = spec["raw_parts"]
        data = (head + body * times + tail).encode("utf-8")
    else:
        raise AssertionError(f"fixture {spec.get('name')!r} has no raw/hex/file/raw_parts payload")
    if "pad_to" in spec:
        data = data + b" " * max(0, spec["pad_to"] - len(data))
    return data


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


@cache
def load_cases(kind: str) -> list[Case]:
    driver = installed().get(kind)
    assert isinstance(driver, Contracted), f"MQTT kind {kind!r} ships no fixtures"
    assert installed().simulator(kind) is not None, f"MQTT kind {kind!r} registers no sharpeye.simulators entry point"
    folder = driver.fixtures
    doc = yaml.safe_load((folder / "cases.yaml").read_text(encoding="utf-8"))
    adapter = installed().device_adapter()
    base = doc["device"]
    received = _parse_time(doc["received"])
    cases = []
    for group in ("good", "bad"):
        for spec in doc[group]:
            device = adapter.validate_python({**base, **spec.get("device", {})})
            step_specs = spec.get("steps", [spec])
            steps = [Step(s["channel"], _payload_bytes(s, folder), s.get("readings", [])) for s in step_specs]
            cases.append(Case(spec["name"], device, steps, spec.get("reason") if group == "bad" else None, received))
    assert any(c.reason is None for c in cases) and any(c.reason for c in cases), f"{kind}: need good and bad cases"
    return cases


def _cases(reasons: bool) -> list[Any]:
    return [
        pytest.param(kind, case, id=f"{kind}:{case.name}")
        for kind in MQTT_KINDS
        for case in load_cases(kind)
        if (case.reason is not None) == reasons
    ]


def decode(driver: Driver, device: DeviceConfig, payload: Payload, state: object | None) -> list[Reading]:
    if isinstance(driver, StatefulDriver):
        return driver.decode(device, payload, state)
    return driver.decode(device, payload)


def new_state(driver: Driver, device: DeviceConfig) -> object | None:
    return driver.new_state(device) if isinstance(driver, StatefulDriver) else None


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, float) or (isinstance(expected, int) and isinstance(actual, float)):
        return isinstance(actual, int | float) and math.isclose(actual, expected, rel_tol=1e-3, abs_tol=0.011)
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and _same(v, actual[k]) for k, v in expected.items())
    return bool(expected == actual and type(expected) is type(actual))


def assert_reading(expected: dict[str, Any], reading: Reading, device: DeviceConfig) -> None:
    assert reading.device_id == device.id
    assert reading.ts.tzinfo is not None and reading.ts.utcoffset() == timedelta(0), "times are aware UTC"
    for field in ("kind", "value", "channel", "seq"):
        if field in expected:
            assert _same(expected[field], getattr(reading, field)), (field, expected[field], getattr(reading, field))
    if "ts" in expected:
        assert reading.ts == _parse_time(expected["ts"])
    for key, value in expected.get("attrs", {}).items():
        assert key in reading.attrs, f"attr {key!r} missing from {reading.attrs}"
        assert _same(value, reading.attrs[key]), (key, value, reading.attrs[key])


@pytest.mark.parametrize(("kind", "case"), _cases(reasons=False))
def test_good_payload_decodes_to_expected_readings(kind: str, case: Case) -> None:
    driver = installed().get(kind)
    state = new_state(driver, case.device)
    for step in case.steps:
        payload = Payload(case.device.id, step.channel, step.data, case.received)
        readings = decode(driver, case.device, payload, state)
        assert len(readings) == len(step.readings), [(r.kind, r.channel, r.value) for r in readings]
        for expected, reading in zip(step.readings, readings, strict=True):
            assert_reading(expected, reading, case.device)
            assert reading.kind in installed().reading_kinds()
        msgspec.json.encode(readings)  # readings must serialise for Redis and the API


@pytest.mark.parametrize(("kind", "case"), _cases(reasons=True))
def test_bad_payload_is_rejected_with_its_reason(kind: str, case: Case) -> None:
    driver = installed().get(kind)
    state = new_state(driver, case.device)
    *before, last = case.steps
    for step in before:
        decode(driver, case.device, Payload(case.device.id, step.channel, step.data, case.received), state)
    with pytest.raises(DecodeError) as err:
        decode(driver, case.device, Payload(case.device.id, last.channel, last.data, case.received), state)
    assert err.value.reason == case.reason, str(err.value)


def test_every_bad_reason_is_distinct_across_the_fixtures() -> None:
    for kind in MQTT_KINDS:
        reasons = {c.reason for c in load_cases(kind) if c.reason}
        common = ("not_json", "bad_utf8", "non_finite", "wrong_shape", "wrong_type", "oversize", "unknown_channel")
        for expected in common:
            assert expected in reasons, f"{kind} has no bad fixture for {expected!r}"


@pytest.mark.parametrize("kind", MQTT_KINDS)
def test_simulator_drives_decoder_without_errors(kind: str) -> None:
    driver = installed().get(kind)
    factory = installed().simulator(kind)
    assert factory is not None
    device = next(c.device for c in load_cases(kind) if c.reason is None)
    start = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
    sim = factory(device, seed=7, start=start)
    assert sim.device_id == device.id
    state = new_state(driver, device)
    channels: set[str] = set()
    count = 0
    now = start
    end = start + timedelta(seconds=max(3 * device.heartbeat_s, 120))
    while now <= end:
        for channel, data in sim.tick(now):
            channels.add(channel)
            readings = decode(driver, device, Payload(device.id, channel, data, now), state)
            count += len(readings)
            for reading in readings:
                assert reading.kind in installed().reading_kinds()
                assert reading.device_id == device.id
        assert sim.next_tick() > now, "tick must move the simulator's next tick forward"
        now = sim.next_tick()
    assert count > 0 and "heartbeat" in channels, f"{kind} simulator produced {channels}"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)


def _fuzz_channels(kind: str) -> list[str]:
    channels = {step.channel for case in load_cases(kind) for step in case.steps}
    return sorted(channels)


@pytest.mark.parametrize("kind", MQTT_KINDS)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_bytes_give_readings_or_decode_error(kind: str, data: st.DataObject) -> None:
    driver = installed().get(kind)
    cases = [c for c in load_cases(kind) if c.reason is None]
    device = cases[0].device
    channel = data.draw(st.sampled_from(_fuzz_channels(kind)))
    good = [s.data for c in cases for s in c.steps if s.channel == channel] or [b"{}"]
    raw = data.draw(
        st.one_of(
            st.binary(max_size=2048),
            JSON_VALUES.map(lambda v: msgspec.json.encode(v)),
            # mutate a recorded good payload: flip, cut, or splice bytes
            st.tuples(st.sampled_from(good), st.integers(0, 4096), st.binary(max_size=8)).map(
                lambda t: t[0][: t[1] % (len(t[0]) + 1)] + t[2] + t[0][t[1] % (len(t[0]) + 1) + len(t[2]) :]
            ),
            # replace one JSON value of a good payload by a random one
            st.tuples(st.sampled_from(good), JSON_VALUES).map(lambda t: _replace_value(t[0], t[1])),
        )
    )
    payload = Payload(device.id, channel, raw, datetime(2026, 1, 5, 2, 0, tzinfo=UTC))
    try:
        readings = decode(driver, device, payload, new_state(driver, device))
    except DecodeError as exc:
        assert exc.reason
        return
    assert isinstance(readings, list)
    for reading in readings:
        assert isinstance(reading, Reading)
        msgspec.json.encode(reading)


def _replace_value(data: bytes, value: Any) -> bytes:
    try:
        doc = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return data
    if isinstance(doc, dict) and doc:
        key = sorted(doc)[len(data) % len(doc)]
        doc[key] = value
    return msgspec.json.encode(doc)
