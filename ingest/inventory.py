"""The device inventory: every device instance, from the site YAML, the API and MQTT discovery.

Devices added at run time are stored in Redis (``Keys.device_configs``) so that every hub node and
every restart sees them; all sources are validated by the same config models.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, Literal

import orjson
import redis.asyncio as aioredis
from pydantic import ValidationError
from sharpeye.config.device import DeviceConfig
from sharpeye.config.org import OrgUnit
from sharpeye.config.site import SiteConfig
from sharpeye.ingest.location import Location
from sharpeye.ingest.registry import Registry

from sharpeye.keys import Keys

log = logging.getLogger(__name__)

Source = Literal["config", "api", "discovery", "gb28181"]


class InventoryError(ValueError):
    pass


class DeviceInventory:
    def __init__(self, site: SiteConfig, registry: Registry, redis: aioredis.Redis, keys: Keys) -> None:
        self.site = site
        self.registry = registry
        self.redis = redis
        self.keys = keys
        self._devices: dict[str, DeviceConfig] = {d.id: d for d in site.devices if d.enabled}
        self._sources: dict[str, Source] = dict.fromkeys(self._devices, "config")
        self._units: dict[str, OrgUnit] = {}
        self._parent: dict[str, str] = {}
        for unit, parent in site.org.walk():
            self._units[unit.id] = unit
            if parent is not None:
                self._parent[unit.id] = parent.id
        self._adapter = registry.device_adapter()
        self._locations: dict[tuple[str, str | None], Location] = {}
        self.listeners: list[Callable[[str, DeviceConfig | None], None]] = [self._forget_locations]

    def _forget_locations(self, device_id: str, _device: DeviceConfig | None) -> None:
        self._locations = {key: loc for key, loc in self._locations.items() if key[0] != device_id}

    # --- lookups ------------------------------------------------------------------------------
    def get(self, device_id: str) -> DeviceConfig | None:
        return self._devices.get(device_id)

    def __iter__(self) -> Iterator[DeviceConfig]:
        return iter(list(self._devices.values()))

    def __len__(self) -> int:
        return len(self._devices)

    def source(self, device_id: str) -> Source | None:
        return self._sources.get(device_id)

    def unit(self, unit_id: str) -> OrgUnit | None:
        return self._units.get(unit_id)

    def units_below(self, unit_id: str) -> set[str]:
        """The unit and every unit below it."""
        found = self._units.get(unit_id)
        return {unit.id for unit, _ in found.walk()} if found is not None else set()

    def ancestors(self, unit_id: str) -> list[str]:
        """The unit and every unit above it, bottom up."""
        chain = [unit_id]
        while chain[-1] in self._parent:
            chain.append(self._parent[chain[-1]])
        return chain

    def _zone(self, device: DeviceConfig, channel: str | None) -> Any:
        if channel is None:
            return None
        for attr in ("zones", "regions", "channels"):
            for zone in getattr(device, attr, None) or []:
                if getattr(zone, "id", None) == channel:
                    return zone
        return None

    def locate(self, device_id: str, channel: str | None) -> Location:
        """Where a device channel is (cached: this runs for every alarm signal)."""
        key = (device_id, channel)
        found = self._locations.get(key)
        if found is None:
            found = self._locations[key] = self._locate(device_id, channel)
        return found

    def _locate(self, device_id: str, channel: str | None) -> Location:
        device = self._devices.get(device_id)
        if device is None:
            return Location(org_unit=self.site.org.id, place=device_id)
        zone = self._zone(device, channel)
        unit = getattr(zone, "grid", None) or device.grid
        place = device.name if zone is None else f"{device.name} / {zone.name}"
        cameras = tuple(getattr(zone, "cameras", ()) or ())
        if device.kind == "camera":
            cameras = (device.id, *cameras)
        return Location(org_unit=unit, place=place, cameras=cameras)

    def in_unit(self, unit_id: str, device_id: str, channel: str | None) -> bool:
        return unit_id in self.ancestors(self.locate(device_id, channel).org_unit)

    # --- changes ------------------------------------------------------------------------------
    def validate(self, data: Any) -> DeviceConfig:
        """Validate a device dict by the same models as the YAML; raise ``InventoryError`` naming problems."""
        try:
            device = self._adapter.validate_python(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors(include_url=False)
            )
            raise InventoryError(problems) from None
        if device.grid not in self._units:
            raise InventoryError(f"grid: no org unit {device.grid!r}")
        for zone in getattr(device, "zones", None) or []:
            for cam in getattr(zone, "cameras", []) or []:
                target = self._devices.get(cam)
                if target is None or target.kind != "camera":
                    raise InventoryError(f"zones.{zone.id}.cameras: no camera {cam!r}")
        return device

    async def load_runtime(self) -> int:
        """Load devices added at run time (API, discovery) from Redis; return how many."""
        raw = await self.redis.hgetall(self.keys.device_configs)
        loaded = 0
        for key, value in raw.items():
            entry = orjson.loads(value)
            try:
                device = self.validate(entry["config"])
            except (InventoryError, KeyError) as exc:
                log.warning("stored device %s is no longer valid: %s", key.decode(), exc)
                continue
            if device.id in self._devices and self._sources.get(device.id) == "config":
                continue
            self._devices[device.id] = device
            self._sources[device.id] = entry.get("source", "api")
            loaded += 1
        return loaded

    def put(self, device: DeviceConfig, source: Source) -> None:
        """Add or replace a validated device in memory (``persist`` stores it)."""
        if self._sources.get(device.id) == "config":
            raise InventoryError(f"device {device.id!r} is defined in the site config and cannot be replaced")
        self._devices[device.id] = device
        self._sources[device.id] = source
        for listener in self.listeners:
            listener(device.id, device)

    def forget(self, device_id: str) -> bool:
        """Remove a run-time device from memory (``persist`` deletes it from Redis)."""
        if self._sources.get(device_id) == "config":
            raise InventoryError(f"device {device_id!r} is defined in the site config; remove it there")
        known = self._devices.pop(device_id, None) is not None
        self._sources.pop(device_id, None)
        for listener in self.listeners:
            listener(device_id, None)
        return known

    async def persist(self, device_ids: list[str]) -> None:
        """Write the current state of run-time devices to Redis (stored or deleted)."""
        pipe = self.redis.pipeline(transaction=False)
        for device_id in device_ids:
            device = self._devices.get(device_id)
            if device is None:
                pipe.hdel(self.keys.device_configs, device_id)
                pipe.srem(self.keys.devices, device_id)
            else:
                entry = {"source": self._sources[device_id], "config": device.model_dump(mode="json")}
                pipe.hset(self.keys.device_configs, device_id, orjson.dumps(entry))
                pipe.sadd(self.keys.devices, device_id)
        await pipe.execute()

    async def upsert(self, data: Any, source: Source) -> DeviceConfig:
        device = self.validate(data)
        self.put(device, source)
        await self.persist([device.id])
        return device

    async def remove(self, device_id: str) -> bool:
        known = self.forget(device_id)
        await self.persist([device_id])
        return known

    async def refresh(self) -> None:
        """Pick up devices other nodes added or removed."""
        raw = await self.redis.hgetall(self.keys.device_configs)
        stored = {k.decode() for k in raw}
        for device_id in [d for d, s in self._sources.items() if s != "config" and d not in stored]:
            self._devices.pop(device_id, None)
            self._sources.pop(device_id, None)
        await self.load_runtime()
