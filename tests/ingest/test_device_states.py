"""``DeviceStates``: the transport-side keeper of stateful drivers' per-device history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
from sharpeye.ingest.driver import DeviceStates, Payload
from sharpeye.ingest.registry import installed
from sharpeye.ingest.thermal.config import ThermalConfig
from sharpeye.ingest.thermal.frame import encode_binary

START = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)


def camera(filter_s: float) -> ThermalConfig:
    return ThermalConfig.model_validate(
        {"id": "t1", "kind": "thermal", "name": "热像", "grid": "g", "width": 32, "height": 24,
         "rois": [{"id": "all", "name": "全画面", "alarm_c": 60, "filter_s": filter_s}]}
    )  # fmt: skip


def frame(second: int, hot: float) -> Payload:
    temps = np.full((24, 32), 20.0, np.float32)
    temps[3, 3] = hot
    data = encode_binary(temps, second, int((START + timedelta(seconds=second)).timestamp() * 1000))
    return Payload("t1", "frame", data, START)


def levels(states: DeviceStates, device: ThermalConfig, payload: Payload) -> list[object]:
    readings = states.decode(installed().get("thermal"), device, payload)
    return [r.value for r in readings if r.kind == "thermal.level"]


def test_history_is_kept_per_device_and_reset_when_the_config_is_replaced() -> None:
    states = DeviceStates()
    device = camera(filter_s=3)
    assert levels(states, device, frame(0, 20)) == ["normal"]
    assert levels(states, device, frame(1, 90)) == []  # pending: must hold 3 s
    assert levels(states, device, frame(4, 90)) == ["alarm"]
    assert len(states) == 1

    replaced = camera(filter_s=3)  # e.g. a discovery update: a new config object
    assert levels(states, replaced, frame(5, 90)) == ["normal"], "a fresh state starts from normal"
    states.forget("t1")
    assert len(states) == 0


def test_stateless_drivers_pass_through() -> None:
    states = DeviceStates()
    fence = (
        installed()
        .device_adapter()
        .validate_python(
            {"id": "f1", "kind": "fence", "name": "围界", "grid": "g", "zones": [{"id": "z1", "name": "z1"}]}
        )
    )
    payload = Payload("f1", "heartbeat", b'{"seq": 1, "ts": 0}', START)
    assert [r.kind for r in states.decode(installed().get("fence"), fence, payload)] == ["device.heartbeat"]
    assert len(states) == 0
