"""The driver contract: how a device kind plugs into SharpEye.

A kind is one folder (a package) exposing a module-level ``driver`` object that satisfies
``Driver``, registered under the entry-point group ``sharpeye.drivers`` with the kind as its name.
The kind key is the same everywhere: folder name, entry-point name, the config ``kind:`` literal and
the simulator's name.

A driver also declares its display ``labels``: ``{"zh": ..., "en": ...}`` for the kind key itself and
for each of its ``reading_kinds``. The API serves them (``GET /api/kinds``) and the console shows them,
so a new kind needs no console change; the contract suite checks both languages are there.

The driver never owns a connection. Transports (MQTT, video capture, SIP) own connections and hand
raw payloads to the driver's pure ``decode``.

Beyond ``Driver`` (which every kind satisfies) this module defines what MQTT kinds add:

- ``StatefulDriver``: a kind whose analysis needs history (thermal filter time, rate of rise). The
  transport calls ``new_state(device)`` once per device, keeps the object, and passes it to every
  ``decode(device, payload, state)`` of that device. ``decode`` is still pure given the state: the same
  state and payloads in the same order give the same readings. Drop the state when the device config
  changes (discovery update) and make a new one. ``DeviceStates.decode(driver, device, payload)`` does all
  of this for a transport and works for stateless drivers too.
- ``Contracted``: the recorded ``fixtures`` directory that the contract test suite
  (tests/contract/test_drivers.py) runs over every MQTT kind.
- ``SimulatorFactory``: what a kind's simulator registers under the entry-point group ``sharpeye.simulators``
  (same name as the kind); the site simulator and the contract suite find it there. Nothing imports a simulator.
- ``decode_json`` and ``timestamp``: shared helpers so every kind rejects bad input with the same reasons
  (``REASONS``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypedDict, TypeVar, cast, runtime_checkable

import msgspec
from sharpeye.ingest.reading import DecodeError, Reading

if TYPE_CHECKING:
    from sharpeye.config.device import DeviceConfig

Transport = Literal["mqtt", "video", "sip"]
LANGUAGES = ("zh", "en")
"""The console's languages, Chinese first: every label gives both."""


class Labels(TypedDict):
    """What the console shows for one key (a kind, a reading kind, a case stage...), in each language."""

    zh: str
    en: str


@dataclass(frozen=True, slots=True)
class Payload:
    """A raw message as a transport received it."""

    device_id: str
    channel: str  # topic suffix for MQTT (``event``, ``heartbeat``, ``frame``...), method for SIP
    data: bytes
    received: datetime


@runtime_checkable
class Driver(Protocol):
    """What a device kind provides."""

    @property
    def kind(self) -> str: ...

    @property
    def transport(self) -> Transport: ...

    @property
    def config_model(self) -> type[DeviceConfig]: ...

    @property
    def reading_kinds(self) -> Sequence[str]:
        """Every ``Reading.kind`` this driver can emit (rules are checked against these)."""
        ...

    @property
    def labels(self) -> Mapping[str, Labels]:
        """Display names keyed by the kind key and by each of ``reading_kinds``, e.g.
        ``{"fence": {"zh": "周界", "en": "Fence"}, "fence.intrusion": {"zh": "入侵", "en": "intrusion"}}``."""
        ...

    def decode(self, device: DeviceConfig, payload: Payload) -> list[Reading]:
        """Pure: raw payload to readings, or raise ``ingest.reading.DecodeError`` with a reason."""
        ...

    def channels(self, device: DeviceConfig) -> Iterable[str]:
        """Names of the device's channels (fence zones, thermal regions...), for references and rules."""
        ...


@runtime_checkable
class StatefulDriver(Driver, Protocol):
    """A driver whose decoding keeps per-device history in a state object the transport owns."""

    def new_state(self, device: DeviceConfig) -> object:
        """A fresh state for one device (small: a few numbers per channel)."""
        ...

    def decode(self, device: DeviceConfig, payload: Payload, state: object | None = None) -> list[Reading]:
        """As ``Driver.decode``; ``state`` is this device's object from ``new_state`` (None: a fresh one)."""
        ...


class DeviceStates:
    """The per-device states of stateful drivers, kept by a transport: ``decode`` works for every driver.

    A state belongs to the exact config object it was made for; when the device's config is replaced
    (discovery, API) the next message starts a fresh state, so no stale history outlives a config change.
    """

    def __init__(self) -> None:
        self._states: dict[str, tuple[DeviceConfig, object]] = {}
        self._stateful: dict[str, bool] = {}  # per kind: isinstance on a Protocol is slow on a hot path

    def decode(self, driver: Driver, device: DeviceConfig, payload: Payload) -> list[Reading]:
        stateful = self._stateful.get(driver.kind)
        if stateful is None:
            stateful = self._stateful[driver.kind] = isinstance(driver, StatefulDriver)
        if not stateful:
            return driver.decode(device, payload)
        with_state = cast(StatefulDriver, driver)
        entry = self._states.get(device.id)
        if entry is None or entry[0] is not device:
            entry = (device, with_state.new_state(device))
            self._states[device.id] = entry
        return with_state.decode(device, payload, entry[1])

    def forget(self, device_id: str) -> None:
        """Drop a removed device's state."""
        self._states.pop(device_id, None)

    def __len__(self) -> int:
        return len(self._states)


Message = tuple[str, bytes]
"""What a simulated device publishes: (channel, payload bytes), sent on ``sharpeye/<kind>/<id>/<channel>``."""


class SimulatedDevice(Protocol):
    """One simulated device. Time is given, never read, so a simulation is reproducible."""

    @property
    def device_id(self) -> str: ...

    def next_tick(self) -> datetime:
        """When ``tick`` next has something to send (it may be called earlier, and then sends nothing)."""
        ...

    def tick(self, now: datetime) -> list[Message]:
        """Messages due by ``now`` (heartbeats, frames, levels)."""
        ...

    def act(self, action: str, args: Mapping[str, Any], now: datetime) -> list[Message]:
        """Apply one scenario action (``alarm``, ``fire_start``...); raise ``ValueError`` for unknown ones."""
        ...

    def actions(self) -> Sequence[str]:
        """The scenario actions this simulator understands."""
        ...


@runtime_checkable
class Contracted(Protocol):
    """What an MQTT kind ships for the contract suite."""

    @property
    def fixtures(self) -> Path:
        """Directory holding ``cases.yaml`` (recorded good and bad payloads, see docs/integrators.md)."""
        ...


class SimulatorFactory(Protocol):
    """A kind's simulator, registered under the ``sharpeye.simulators`` entry points (usually its class): a
    simulated device for one device config of that kind, deterministic for a given seed."""

    def __call__(self, device: Any, *, seed: int, start: datetime) -> SimulatedDevice: ...


# --- shared decoding helpers ---------------------------------------------------------------------

REASONS = {
    "oversize": "payload larger than the kind accepts",
    "bad_utf8": "payload is not valid UTF-8",
    "not_json": "payload is not JSON",
    "non_finite": "a number is NaN, Infinity or out of float range",
    "wrong_shape": "JSON of the wrong shape (not an object, missing or unknown fields)",
    "wrong_type": "a field has the wrong type",
    "out_of_range": "a value is outside its allowed range or set (unknown cause, level...)",
    "too_many_values": "an array is larger than the kind accepts",
    "shape_mismatch": "a frame's data does not match its declared width x height",
    "wrong_resolution": "a frame's width x height is not the sensor's configured resolution",
    "bad_header": "a binary frame's header is invalid",
    "bad_timestamp": "timestamp missing a time zone or out of range",
    "unknown_channel": "the topic's channel is not one the kind publishes",
    "unknown_zone": "the message names a zone/region the device config does not have",
    "unsupported": "the kind does not decode payloads",
}
"""Every ``DecodeError.reason`` the bundled MQTT kinds use, with its meaning (documented in docs/devices/)."""

T = TypeVar("T")


def decode_json(decoder: msgspec.json.Decoder[T], data: bytes, max_bytes: int) -> T:
    """Decode ``data`` with a typed msgspec decoder, mapping every failure to a distinct reason."""
    if len(data) > max_bytes:
        raise DecodeError("oversize", f"{len(data)} bytes > {max_bytes}")
    try:
        return decoder.decode(data)
    except UnicodeDecodeError as exc:  # msgspec raises it for a bad string inside otherwise valid JSON
        raise DecodeError("bad_utf8", f"invalid UTF-8 at byte {exc.start} of a string") from None
    except msgspec.ValidationError as exc:
        _raise_classified(data, str(exc), validation=True)
    except msgspec.DecodeError as exc:
        _raise_classified(data, str(exc), validation=False)
    raise AssertionError("unreachable")  # pragma: no cover


def _raise_classified(data: bytes, message: str, *, validation: bool) -> None:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError("bad_utf8", f"invalid UTF-8 at byte {exc.start}") from None
    if not validation:
        if any(token in data for token in (b"NaN", b"Infinity")):
            raise DecodeError("non_finite", "NaN and Infinity are not numbers in JSON")
        raise DecodeError("not_json", message)
    if message.startswith("Number out of range"):
        raise DecodeError("non_finite", message)
    if message.startswith("Invalid enum value"):
        raise DecodeError("out_of_range", message)
    if message.startswith("Expected") and "- at `$." in message:
        raise DecodeError("wrong_type", message)
    raise DecodeError("wrong_shape", message)


def finite(value: float, name: str, low: float = -math.inf, high: float = math.inf) -> float:
    """``value`` if it is a finite number within [low, high], else ``DecodeError``."""
    if not math.isfinite(value):
        raise DecodeError("non_finite", f"{name} is {value}")
    if not low <= value <= high:
        raise DecodeError("out_of_range", f"{name} = {value} outside [{low}, {high}]")
    return value


MAX_EPOCH_MS = 2**42


def timestamp(value: datetime | int | None, default: datetime) -> datetime:
    """A device timestamp (ISO 8601 with zone, or epoch milliseconds) as aware UTC; ``default`` if absent."""
    if value is None:
        return default
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise DecodeError("bad_timestamp", "timestamp has no time zone")
        return value.astimezone(UTC)
    if not 0 <= value < MAX_EPOCH_MS:
        raise DecodeError("bad_timestamp", f"epoch milliseconds out of range: {value}")
    return datetime.fromtimestamp(value / 1000, UTC)


def sequence(value: int | None) -> int | None:
    """The device's sequence number, passed through unchanged; only negative or > 2**63 is rejected."""
    if value is not None and not 0 <= value < 2**63:
        raise DecodeError("out_of_range", f"seq {value} outside [0, 2**63)")
    return value
