"""The device inventory: every device instance, from the site YAML, the API and MQTT discovery.

Devices added at run time are stored in Redis (``Keys.device_configs``) so that every hub node and
every restart sees them; all sources are validated by the same config models.

**Change feed.** Every stored change (a device added, replaced or removed through the API, MQTT discovery or a
GB/T 28181 catalog) gets the site's next inventory version (``Keys.inventory_version``) and an entry in the
change stream (``Keys.inventory_changes``: version, op, device, origin node), in one script, after the record
itself is written. Every node follows the stream (``follow``): a change made elsewhere is applied to its
in-memory inventory from the record (so entries carry no config and the record stays the one truth), then the
node's ``on_change`` runs (the hub recomputes its lease units and runs a lease round at once). A node starting
reads the stream's end before it loads the records, so nothing between the two is missed; a node that fell
behind the stream's trimmed history (it keeps the last 10,000 changes) reloads every record.

**Site YAML reloaded.** A node told to reload its site file (SIGHUP) applies the file's devices (added, changed,
removed; the rest of the site needs a restart), stores that device list (``Keys.site_devices``) and publishes a
``site`` change per device; the other nodes apply the stored list the same way, so one reload reaches all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
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
from sharpeye.redis_connection import log_retry, stop_if_cancelled

log = logging.getLogger(__name__)

Source = Literal["config", "api", "discovery", "gb28181"]
OnChange = Callable[[int, list[str]], Awaitable[None]]  # (version, device ids changed) -> None
FEED_KEPT = 10_000  # changes kept in the stream (approximately)

# Record the changes' versions and tell every node: KEYS: version, stream; ARGV: origin, maxlen, (op, id)...
_PUBLISH = """
local v = 0
for i = 3, #ARGV, 2 do
  v = redis.call('INCR', KEYS[1])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'v', v, 'op', ARGV[i], 'device', ARGV[i + 1],
             'origin', ARGV[1])
end
return v
"""


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
        self.origin = ""  # this node's id, in the change entries it writes (its own are not applied twice)
        self.version = 0  # the last inventory version this node has applied
        self.applied = 0  # changes of other nodes applied (for metrics)
        self._cursor = "0-0"  # the change stream's last entry when the records were loaded
        self._publish = redis.register_script(_PUBLISH)

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
        """Load devices added at run time (API, discovery) from Redis; return how many. The change feed is
        followed from this point on."""
        async with self.redis.pipeline(transaction=True) as pipe:  # the feed's position and the version at once
            pipe.xrevrange(self.keys.inventory_changes, count=1)
            pipe.get(self.keys.inventory_version)
            last, version = await pipe.execute()
        self._cursor = last[0][0].decode() if last else "0-0"
        self.version = max(self.version, int(version or 0))
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
        changes: list[str] = []
        for device_id in device_ids:
            changes += ["remove" if device_id not in self._devices else "upsert", device_id]
        if changes:
            version = int(await self._publish(keys=[self.keys.inventory_version, self.keys.inventory_changes],
                                              args=[self.origin, FEED_KEPT, *changes]))  # fmt: skip
            self.version = max(self.version, version)

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
            self.forget(device_id)
        await self.load_runtime()

    # --- the site YAML -------------------------------------------------------------------------------------
    def _apply_site_devices(self, devices: list[DeviceConfig]) -> list[str]:
        """Make the site-config devices these (a run-time device of the same id gives way); the changed ids."""
        wanted = {d.id: d for d in devices if d.enabled}
        changed: list[str] = []
        for device_id in [i for i, s in self._sources.items() if s == "config" and i not in wanted]:
            self._devices.pop(device_id, None)
            self._sources.pop(device_id, None)
            changed.append(device_id)
            for listener in self.listeners:
                listener(device_id, None)
        for device_id, device in wanted.items():
            if self._devices.get(device_id) == device and self._sources.get(device_id) == "config":
                continue
            self._devices[device_id] = device
            self._sources[device_id] = "config"
            changed.append(device_id)
            for listener in self.listeners:
                listener(device_id, device)
        return changed

    async def reload_site(self, site: SiteConfig) -> list[str]:
        """Apply a reloaded site file's devices here and tell every node (they apply the same stored list)."""
        changed = self._apply_site_devices(list(site.devices))
        self.site = self.site.model_copy(update={"devices": list(site.devices)})
        self._locations = {}
        stored = orjson.dumps([d.model_dump(mode="json") for d in site.devices])
        await self.redis.set(self.keys.site_devices, stored)
        if changed:
            changes = [part for device_id in changed for part in ("site", device_id)]
            version = int(await self._publish(keys=[self.keys.inventory_version, self.keys.inventory_changes],
                                              args=[self.origin, FEED_KEPT, *changes]))  # fmt: skip
            self.version = max(self.version, version)
        log.info("site devices reloaded: %d changed", len(changed))
        return changed

    async def _follow_site(self) -> list[str]:
        """Apply the site device list another node reloaded."""
        raw = await self.redis.get(self.keys.site_devices)
        if raw is None:
            return []
        devices: list[DeviceConfig] = []
        for data in orjson.loads(raw):
            try:
                devices.append(self.validate(data))
            except InventoryError as exc:
                log.error("reloaded site device %s is not valid here (%s); the reload is not applied", data.get("id"),
                          exc)  # fmt: skip
                return []
        self._locations = {}
        return self._apply_site_devices(devices)

    # --- the change feed ----------------------------------------------------------------------------------
    async def apply_change(self, device_id: str) -> bool:
        """Bring one run-time device in line with its record (added, replaced or removed elsewhere); a device of
        the site YAML is left alone. Returns whether anything changed here."""
        if self._sources.get(device_id) == "config":
            return False
        value = await self.redis.hget(self.keys.device_configs, device_id)
        if value is None:
            if device_id not in self._devices:
                return False
            self.forget(device_id)
            return True
        try:
            entry = orjson.loads(value)
            device = self.validate(entry["config"])
        except (InventoryError, KeyError, orjson.JSONDecodeError) as exc:
            log.warning("changed device %s is not valid here: %s", device_id, exc)
            return False
        if self._devices.get(device_id) == device and self._sources.get(device_id) == entry.get("source", "api"):
            return False
        self.put(device, entry.get("source", "api"))
        return True

    async def follow(self, on_change: OnChange | None = None, block_ms: int = 1000) -> None:
        """Apply other nodes' changes as they come, until cancelled (every node runs this)."""
        stream = self.keys.inventory_changes
        while True:
            try:
                got = await self.redis.xread({stream: self._cursor}, count=500, block=block_ms)
                stop_if_cancelled()  # a cancel the client swallowed (see there) still stops the follower
                entries = [e for _, items in got for e in items]
                if not entries:
                    continue
                first = entries[0][0].decode()
                if self._cursor != "0-0" and await self._lost_history(first):
                    log.warning("inventory: fell behind the change feed; reloading every stored device")
                    await self.refresh()
                changed: list[str] = []
                site_done = False
                for entry_id, fields in entries:
                    self._cursor = entry_id.decode()
                    version = int(fields.get(b"v", b"0"))
                    device_id = fields.get(b"device", b"").decode()
                    elsewhere = fields.get(b"origin", b"").decode() != self.origin
                    if elsewhere and fields.get(b"op") == b"site":
                        if not site_done:  # one reload publishes an entry per device: the list is applied once
                            site_done = True
                            found = await self._follow_site()
                            self.applied += len(found)
                            changed += found
                    elif elsewhere and device_id and await self.apply_change(device_id):
                        self.applied += 1
                        changed.append(device_id)
                    self.version = max(self.version, version)
                if on_change is not None:
                    await on_change(self.version, changed)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log_retry(log, "inventory: following the change feed", exc)
                await asyncio.sleep(1)

    async def _lost_history(self, first: str) -> bool:
        """Whether the cursor's own entry was trimmed away (then entries after it may have been too: reload)."""
        oldest = await self.redis.xrange(self.keys.inventory_changes, count=1)
        return bool(oldest) and oldest[0][0].decode() == first
