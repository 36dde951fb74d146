"""A stuck or lagging consumer shows in /api/health (degraded, with the reason) and in /metrics (waiting messages,
lag seconds, stuck), through a real hub on the test Redis and Mosquitto: the MQTT pipeline while Redis is down,
and the governance intake's consumer group while its consumer does not run."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from prometheus_client import generate_latest

from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from sharpeye.node.hub import Hub
from tests.helpers import Publisher
from tests.ingest.rig import Rig, event, rig, until

__all__ = ["rig"]  # the fixture


def gauge(hub: Hub, name: str, consumer: str) -> float | None:
    prefix = f'{name}{{consumer="{consumer}"}} '
    for line in generate_latest(hub.metrics.registry).decode().splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return None


async def component(hub: Hub, name: str) -> dict[str, Any]:
    report = await hub.health_report()
    found: dict[str, Any] = report["components"].get(name, {})
    return {**found, "report": report["status"]}


async def test_the_mqtt_pipeline_stuck_on_redis_shows_degraded_then_recovers(
    rig: Rig, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto
) -> None:
    hub = await rig.start()
    hub.consumer_stuck_after_s = 0.5
    mqtt = await component(hub, "consumer:mqtt")
    assert mqtt["status"] == "ok" and "0 waiting" in mqtt["detail"]
    pub = Publisher(mqtt_broker.url)
    try:
        redis_server.kill()
        await asyncio.to_thread(pub.publish, "sharpeye/fence/fence-school/event", event(1))

        async def stuck() -> bool:
            return (await component(hub, "consumer:mqtt")).get("status") == "failing"

        await until(stuck, "the MQTT consumer reported stuck")
        mqtt = await component(hub, "consumer:mqtt")
        assert mqtt["report"] == "degraded"
        assert "stuck for" in mqtt["detail"] and "Connection" in mqtt["detail"]
        assert hub.transport.lag_seconds() > 0
        await asyncio.to_thread(redis_server.start)
        await until(lambda: rig.raised_for("fence-school"), "the alarm applied once Redis is back", seconds=30)
        await until(lambda: hub.transport.stuck_since is None, "the consumer unstuck")
        mqtt = await component(hub, "consumer:mqtt")
        assert mqtt["status"] == "ok"
        await hub.refresh_gauges()
        assert gauge(hub, "sharpeye_consumer_stuck", "mqtt") == 0
        assert gauge(hub, "sharpeye_consumer_lag_seconds", "mqtt") == 0
        assert (gauge(hub, "sharpeye_consumer_last_progress_timestamp_seconds", "mqtt") or 0) > 0
    finally:
        pub.close()
        if not redis_server.running:
            redis_server.start()


async def test_a_consumer_group_that_does_not_consume_shows_lagging(rig: Rig, mqtt_broker: EmbeddedMosquitto) -> None:
    hub = await rig.start()
    hub.consumer_lag_limit_s = 1.0
    intake = next(t for t in hub._tasks if t.get_name() == "intake")
    intake.cancel()  # the governance intake stops consuming (as a hung handler would)
    with contextlib.suppress(asyncio.CancelledError):
        await intake
    pub = Publisher(mqtt_broker.url)
    try:
        await asyncio.to_thread(pub.publish, "sharpeye/fence/fence-school/event", event(1))
        await until(lambda: rig.raised_for("fence-school"), "an alarm raised for the intake")
        await hub.refresh_gauges()
        assert gauge(hub, "sharpeye_consumer_pending", "alarm-events:governance") == 1

        async def lagging() -> bool:
            return (await component(hub, "consumer:alarm-events:governance")).get("status") == "failing"

        await until(lagging, "the governance group reported lagging")
        part = await component(hub, "consumer:alarm-events:governance")
        assert part["report"] == "degraded" and "lagging" in part["detail"]
        await hub.refresh_gauges()
        assert (gauge(hub, "sharpeye_consumer_lag_seconds", "alarm-events:governance") or 0) >= 1.0
        assert (await component(hub, "consumer:mqtt"))["status"] == "ok"  # the others are fine
    finally:
        pub.close()
