"""Thermal camera kind: radiometric frames analysed in the hub, or the camera's own rule results.

Channels (topic ``sharpeye/thermal/<device_id>/<channel>``):
- ``frame``: a radiometric frame, JSON or the binary encoding (``ingest.thermal.frame``), analysed per
  region into ``thermal.roi`` (every frame), ``thermal.level`` and ``thermal.fire`` (on change).
- ``result``: a camera that runs its own rules reports levels in the same vocabulary.
- ``heartbeat``: the camera is alive.

Analysis needs history (filter time, rate of rise), so this is a ``StatefulDriver``: the transport keeps
``new_state(device)`` per device and passes it to ``decode``. See docs/devices/thermal.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import msgspec
from sharpeye.config.device import DeviceConfig
from sharpeye.ingest.driver import Labels, Payload, Transport, decode_json, finite, sequence, timestamp
from sharpeye.ingest.reading import DecodeError, Reading
from sharpeye.ingest.thermal.analysis import ThermalState, analyse
from sharpeye.ingest.thermal.config import ThermalConfig
from sharpeye.ingest.thermal.frame import MAX_C, MIN_C, decode_frame

if TYPE_CHECKING:
    pass

MAX_MESSAGE = 4096
CHANNELS = ("frame", "result", "heartbeat")


class ResultMessage(msgspec.Struct, forbid_unknown_fields=True):
    roi: str
    rule: Literal["level", "fire"]
    level: Literal["normal", "pre_alarm", "alarm"]
    seq: int | None = None
    ts: datetime | int | None = None
    max_c: float | None = None
    avg_c: float | None = None
    x: float | None = None
    y: float | None = None


class HeartbeatMessage(msgspec.Struct, forbid_unknown_fields=True):
    seq: int | None = None
    ts: datetime | int | None = None
    core_c: float | None = None


_result = msgspec.json.Decoder(ResultMessage)
_heartbeat = msgspec.json.Decoder(HeartbeatMessage)


class ThermalDriver:
    kind = "thermal"
    transport: Transport = "mqtt"
    config_model = ThermalConfig
    reading_kinds: Sequence[str] = ("thermal.roi", "thermal.level", "thermal.fire")
    labels: Mapping[str, Labels] = {
        "thermal": {"zh": "热成像", "en": "Thermal"},
        "thermal.roi": {"zh": "区域温度", "en": "region temperature"},
        "thermal.level": {"zh": "温度等级", "en": "temperature level"},
        "thermal.fire": {"zh": "火点", "en": "fire"},
    }
    fixtures = Path(__file__).with_name("fixtures")

    def channels(self, device: DeviceConfig) -> Iterable[str]:
        assert isinstance(device, ThermalConfig)
        return [roi.id for roi in device.rois]

    def new_state(self, device: DeviceConfig) -> ThermalState:
        return ThermalState()

    def decode(self, device: DeviceConfig, payload: Payload, state: object | None = None) -> list[Reading]:
        assert isinstance(device, ThermalConfig)
        if payload.channel == "frame":
            if state is None:
                state = ThermalState()
            assert isinstance(state, ThermalState)
            frame = decode_frame(payload.data, payload.received, (device.width, device.height))
            return analyse(device, frame, state)
        if payload.channel == "result":
            return self._result(device, payload)
        if payload.channel == "heartbeat":
            msg = decode_json(_heartbeat, payload.data, MAX_MESSAGE)
            attrs: dict[str, object] = {}
            if msg.core_c is not None:
                attrs["core_c"] = finite(msg.core_c, "core_c", -60, 150)
            ts = timestamp(msg.ts, payload.received)
            return [
                Reading(
                    device_id=device.id, kind="device.heartbeat", value=True, ts=ts, seq=sequence(msg.seq), attrs=attrs
                )
            ]
        raise DecodeError("unknown_channel", f"thermal devices publish {', '.join(CHANNELS)}, not {payload.channel!r}")

    def _result(self, device: ThermalConfig, payload: Payload) -> list[Reading]:
        msg = decode_json(_result, payload.data, MAX_MESSAGE)
        if msg.roi not in {roi.id for roi in device.rois}:
            raise DecodeError("unknown_zone", f"device {device.id!r} has no roi {msg.roi[:64]!r}")
        ts = timestamp(msg.ts, payload.received)
        seq = sequence(msg.seq)
        attrs: dict[str, object] = {"source": "device"}
        for name, value, low, high in (
            ("max", msg.max_c, MIN_C, MAX_C),
            ("avg", msg.avg_c, MIN_C, MAX_C),
            ("x", msg.x, 0.0, 1.0),
            ("y", msg.y, 0.0, 1.0),
        ):
            if value is not None:
                attrs[name] = finite(value, name, low, high)
        readings = []
        if msg.max_c is not None:
            roi_attrs = {k: v for k, v in attrs.items() if k != "max"}
            readings.append(
                Reading(
                    device_id=device.id,
                    kind="thermal.roi",
                    value=msg.max_c,
                    ts=ts,
                    seq=seq,
                    channel=msg.roi,
                    attrs=roi_attrs,
                )
            )
        readings.append(
            Reading(
                device_id=device.id,
                kind=f"thermal.{msg.rule}",
                value=msg.level,
                ts=ts,
                seq=seq,
                channel=msg.roi,
                attrs=attrs,
            )
        )
        return readings
