"""The driver contract: how a device kind plugs into SharpEye.

A kind is one folder (a package) exposing a module-level ``driver`` object that satisfies
``Driver``, registered under the entry-point group ``sharpeye.drivers`` with the kind as its name.
The kind key is the same everywhere: folder name, entry-point name, the config ``kind:`` literal and
the simulator's name.

The driver never owns a connection. Transports (MQTT, video capture, SIP) own connections and hand
raw payloads to the driver's pure ``decode``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from ingest.reading import Reading

if TYPE_CHECKING:
    from config.device import DeviceConfig

Transport = Literal["mqtt", "video", "sip"]


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

    def decode(self, device: DeviceConfig, payload: Payload) -> list[Reading]:
        """Pure: raw payload to readings, or raise ``ingest.reading.DecodeError`` with a reason."""
        ...

    def channels(self, device: DeviceConfig) -> Iterable[str]:
        """Names of the device's channels (fence zones, thermal regions...), for references and rules."""
        ...
