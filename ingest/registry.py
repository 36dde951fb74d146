"""Driver registry: the kinds installed through the ``sharpeye.drivers`` entry-point group, and their simulators
through ``sharpeye.simulators`` (loaded by name, so no stage imports a simulator)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from functools import cache
from importlib.metadata import entry_points

from pydantic import TypeAdapter
from sharpeye.config.device import DeviceConfig
from sharpeye.config.site import SiteConfig, site_model
from sharpeye.ingest.driver import Driver, SimulatorFactory

log = logging.getLogger(__name__)

GROUP = "sharpeye.drivers"
SIMULATOR_GROUP = "sharpeye.simulators"


class RegistryError(RuntimeError):
    """An installed driver breaks the contract (wrong key, missing attribute)."""


class Registry:
    """Maps kind keys to drivers and builds the config models that select them by ``kind:``."""

    def __init__(self, drivers: Iterable[Driver], simulators: Mapping[str, SimulatorFactory] | None = None) -> None:
        self._drivers: dict[str, Driver] = {}
        for driver in drivers:
            if not isinstance(driver, Driver):
                raise RegistryError(f"{driver!r} does not satisfy the Driver protocol")
            literal = driver.config_model.model_fields["kind"].annotation
            if getattr(literal, "__args__", None) != (driver.kind,):
                raise RegistryError(
                    f"driver {driver.kind!r}: config model {driver.config_model.__name__} must declare "
                    f"kind: Literal[{driver.kind!r}]"
                )
            if driver.kind in self._drivers:
                raise RegistryError(f"two drivers claim kind {driver.kind!r}")
            self._drivers[driver.kind] = driver
        self._simulators = dict(simulators or {})
        for kind in self._simulators:
            if kind not in self._drivers:
                raise RegistryError(f"a simulator is registered for kind {kind!r}, which no driver provides")

    @property
    def kinds(self) -> list[str]:
        return sorted(self._drivers)

    @property
    def drivers(self) -> Mapping[str, Driver]:
        return self._drivers

    def get(self, kind: str) -> Driver:
        try:
            return self._drivers[kind]
        except KeyError:
            raise KeyError(f"unknown device kind {kind!r}; installed: {', '.join(self.kinds)}") from None

    def simulator(self, kind: str) -> SimulatorFactory | None:
        """The simulator registered for ``kind`` (None: the kind ships none)."""
        return self._simulators.get(kind)

    def site_model(self) -> type[SiteConfig]:
        return site_model(tuple(self._drivers[k].config_model for k in self.kinds))

    def device_adapter(self) -> TypeAdapter[DeviceConfig]:
        """Validates one device dict (API, MQTT discovery) by the same models as the YAML."""
        field = self.site_model().model_fields["devices"]
        item_type = field.annotation.__args__[0]  # type: ignore[union-attr]
        return TypeAdapter(item_type)

    def reading_kinds(self) -> set[str]:
        kinds = {"device.heartbeat", "device.online"}
        for driver in self._drivers.values():
            kinds.update(driver.reading_kinds)
        return kinds


@cache
def installed() -> Registry:
    """The registry of every driver installed in this environment."""
    drivers: list[Driver] = []
    for ep in entry_points(group=GROUP):
        driver = ep.load()
        if getattr(driver, "kind", None) != ep.name:
            raise RegistryError(f"entry point {ep.name!r} loads a driver whose kind is {driver.kind!r}")
        drivers.append(driver)
    if not drivers:
        raise RegistryError(f"no drivers installed in entry-point group {GROUP!r}: is sharpeye installed?")
    log.debug("drivers: %s", ", ".join(sorted(d.kind for d in drivers)))
    simulators: dict[str, SimulatorFactory] = {ep.name: ep.load() for ep in entry_points(group=SIMULATOR_GROUP)}
    return Registry(drivers, simulators)
