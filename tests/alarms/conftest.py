"""An alarm engine on the real test Redis with a manual clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import redis.asyncio as aioredis
from sharpeye.alarms.engine import AlarmEngine
from sharpeye.alarms.store import AlarmStore
from sharpeye.config.rule import Rule
from sharpeye.config.site import SiteConfig
from sharpeye.ingest.location import Location
from sharpeye.ingest.reading import Reading

from sharpeye.clock import ManualClock
from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedRedis

SITE_BASE = {
    "site": {"id": "s1", "name": "测试"},
    "org": {"id": "town", "name": "镇", "level": "town", "children": [
        {"id": "g1", "name": "网格1", "level": "grid"}, {"id": "g2", "name": "网格2", "level": "grid"}]},
}  # fmt: skip


class GridLocator:
    """Devices whose id starts with 'b' are in grid g2, the rest in g1; zone z1 links camera cam-1."""

    def locate(self, device_id: str, channel: str | None) -> Location:
        grid = "g2" if device_id.startswith("b") else "g1"
        return Location(
            org_unit=grid, place=f"{device_id}/{channel or '-'}", cameras=("cam-1",) if channel == "z1" else ()
        )

    def in_unit(self, unit_id: str, device_id: str, channel: str | None) -> bool:
        return unit_id in (self.locate(device_id, channel).org_unit, "town")


def make_site(rules: list[dict[str, object]], **extra: object) -> SiteConfig:
    return SiteConfig.model_validate({**SITE_BASE, "rules": rules, **extra})


def state_rule(rule_id: str = "r", **fields: object) -> dict[str, object]:
    rule: dict[str, object] = {
        "id": rule_id,
        "name": f"rule {rule_id}",
        "match": {"kind": f"k.{rule_id}"},
        "condition": {"type": "state", "active": ["alarm"], "clear": ["restore"]},
        "severity": "major",
        "category": "perimeter_intrusion",
    }
    rule.update(fields)
    Rule.model_validate(rule)
    return rule


@dataclass
class Rig:
    engine: AlarmEngine
    store: AlarmStore
    clock: ManualClock
    keys: Keys
    redis: aioredis.Redis

    def reading(self, rule_id: str, value: object, seq: int | None, device: str = "d1", channel: str | None = "z1",
                ts: datetime | None = None) -> Reading:  # fmt: skip
        return Reading(device_id=device, kind=f"k.{rule_id}", value=value, seq=seq, channel=channel,  # type: ignore[arg-type]
                       ts=ts or self.clock.now())  # fmt: skip

    async def feed(self, *readings: Reading) -> list[str]:
        return [t.outcome for t in await self.engine.process(list(readings))]

    async def events(self) -> list[dict[str, str]]:
        entries = await self.redis.xrange(self.keys.alarm_events)
        return [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in entries]

    async def advance(self, seconds: float) -> list[str]:
        self.clock.advance(seconds)
        return [t.outcome for t in await self.engine.sweep()]


@pytest.fixture
async def rig_factory(redis_server: EmbeddedRedis, keys: Keys) -> AsyncIterator[object]:
    clients: list[aioredis.Redis] = []

    async def make(site: SiteConfig, clock: ManualClock | None = None) -> Rig:
        client = aioredis.Redis.from_url(redis_server.url)
        clients.append(client)
        store = AlarmStore(client, keys)
        clock = clock or ManualClock(datetime(2026, 3, 2, 1, 0, tzinfo=UTC))
        engine = AlarmEngine(site, store, GridLocator(), clock)
        await engine.silences.refresh()
        return Rig(engine, store, clock, keys, client)

    yield make
    for client in clients:
        await client.aclose()


def later(clock: ManualClock, seconds: float) -> datetime:
    return clock.now() + timedelta(seconds=seconds)
