"""Subscriptions: the platform SUBSCRIBEs devices to Catalog, Alarm and MobilePosition and renews them; a device
refusing an event is not asked again; Catalog NOTIFYs change the channels, Alarm NOTIFYs raise alarm readings,
MobilePosition NOTIFYs become a track in Redis queryable by time; a bad position is a dead letter."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import redis.asyncio as aioredis
from sharpeye.ingest.gb28181.manscdp import Node, build
from sharpeye.ingest.gb28181.subscription import GbSubscriptions, PositionStore
from sharpeye.simulators.gb28181.device import DeviceFleet, SimDevice, code
from sharpeye.simulators.gb28181.notify import mobile_position

from sharpeye.keys import Keys
from tests.ingest.gb28181.conftest import PLATFORM_ID, Sink, device_config, until


async def test_subscribe_renew_and_take_notifies(
    make_platform: Any, sink: Sink, redis_client: aioredis.Redis, keys: Keys
) -> None:
    car = SimDevice(id=code("34020000", 132, 21), password="pw-car", mobile=True)
    old = SimDevice(id=code("34020000", 132, 22), password="pw-old")  # a fixed camera: refuses MobilePosition
    rejected: list[tuple[str, str]] = []
    platform = await make_platform([device_config(car), device_config(old)],
                                   reject=lambda reason, device, _raw: rejected.append((reason, device)))  # fmt: skip
    fleet = DeviceFleet([car, old], platform_id=PLATFORM_ID, platform_port=platform.port, t1=0.1)
    store = PositionStore(redis_client, keys)
    subs = GbSubscriptions(platform, store, expires_s=2, renew_at=0.5, period_s=0.2, interval_s=1)
    await fleet.start()
    await subs.start()
    try:
        await until(lambda: all(d["online"] for d in platform.devices_state()) and len(platform.channels()) == 2)
        await until(lambda: car.subscribe_count["MobilePosition"] >= 1 and old.subscribe_count["Alarm"] >= 1)
        assert set(car.subscriptions) == {"Catalog", "Alarm", "MobilePosition"}
        # renewed before the 2 s expiry runs out (at half of it)
        await until(lambda: car.subscribe_count["Catalog"] >= 3, limit_s=5)
        assert old.subscribe_count["MobilePosition"] == 0  # refused once: not asked again
        assert subs.state(old.id)["MobilePosition"]["refused"] == 489
        assert subs.stats["subscribe.MobilePosition.refused"] == 1

        # MobilePosition NOTIFYs every second become a track
        await until(lambda: len(car.route.sent) >= 3, limit_s=10)
        now = datetime.now(UTC)

        async def track() -> list[dict[str, Any]]:
            return await store.track(car.id, now - timedelta(minutes=1), now + timedelta(minutes=1))

        points: list[dict[str, Any]] = []
        async with asyncio.timeout(5):
            while len(points) < 3:
                points = await track()
        assert [(p["longitude"], p["latitude"]) for p in points] == car.route.sent[: len(points)]
        assert points[0]["speed"] == 30.0
        assert await store.track(car.id, now - timedelta(hours=2), now - timedelta(hours=1)) == []

        # a bad position: counted and kept as a dead letter, nothing stored
        bad = mobile_position(99, car.id, 500.0, 31.0, 10, 10)
        assert await fleet.notify(car, bad) == 400
        await until(lambda: ("bad_body.bad_position", car.id) in rejected)
        assert subs.stats["position.bad_position"] == 1

        # Catalog NOTIFY: a channel added, one removed
        new_channel = code("34020000", 131, 555)
        await fleet.catalog_notify(car.id, [(new_channel, "新增通道", "ADD")])
        await until(lambda: new_channel in {c.channel_id for c in platform.channels()})
        await fleet.catalog_notify(car.id, [(new_channel, "新增通道", "DEL")])
        await until(lambda: new_channel not in {c.channel_id for c in platform.channels()})

        # Alarm as a NOTIFY: an alarm reading, as for MESSAGE
        fields: list[Node] = [("AlarmPriority", 2), ("AlarmMethod", 5), ("AlarmTime", "2026-01-05T10:00:00"),
                              ("AlarmDescription", "越界")]  # fmt: skip
        alarm = build("Notify", "Alarm", 7, car.id, fields)
        assert await fleet.notify(car, alarm) == 200
        await sink.wait_for(lambda: sink.of("gb28181.alarm", car.id))
    finally:
        await subs.stop()
        await fleet.stop()
