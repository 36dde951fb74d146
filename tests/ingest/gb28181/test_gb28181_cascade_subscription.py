"""The upper platform's Alarm and MobilePosition subscriptions carried out by GbCascade, against the upper-platform
simulator over real UDP (and a real Redis for the position tracks): alarms as NOTIFYs in the dialog within the
subscription's conditions and the platform's channel filter, MESSAGEs again without a live subscription; positions
of tracked and fixed channels every Interval; refresh, unsubscribe, expiry, an upper platform that stops answering,
malformed SUBSCRIBE bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, generate_latest
from sharpeye.config.gb28181 import GbSettings
from sharpeye.config.rule import Severity
from sharpeye.governance.cascade import CascadeCollector, GbCascade
from sharpeye.ingest.gb28181.platform import Channel
from sharpeye.ingest.gb28181.subscription import Position, PositionStore
from sharpeye.simulators.gb28181.device import code
from sharpeye.simulators.gb28181.upper import UpperPlatformSimulator

from sharpeye.keys import Keys
from tests.helpers import env_secret
from tests.ingest.gb28181.conftest import PLATFORM_ID, UPPER_ID, until
from tests.ingest.gb28181.test_gb28181_cascade import PASSWORD, _alarm

CAMERA = code("34020000", 131, 1)  # a fixed camera with its catalog position
CAR = code("34020000", 131, 2)  # a patrol car's channel: its device reports MobilePosition
BLIND = code("34020000", 131, 3)  # no position known
OTHER_DISTRICT = "34020100001310000001"  # kept from this upper platform by its channels filter
CAR_DEVICE = code("34020000", 132, 21)


def _channels() -> list[Channel]:
    return [
        Channel(device_id=PLATFORM_ID, channel_id=CAMERA, name="北门", longitude=117.283, latitude=31.861),
        Channel(device_id=CAR_DEVICE, channel_id=CAR, name="巡逻车"),
        Channel(device_id=PLATFORM_ID, channel_id=BLIND, name="仓库"),
        Channel(device_id=PLATFORM_ID, channel_id=OTHER_DISTRICT, name="二分局", longitude=117.1, latitude=31.8),
    ]


def _settings(upper_port: int, **cascade: Any) -> GbSettings:
    return GbSettings.model_validate(
        {
            "sip_id": PLATFORM_ID,
            "port": 0,
            "sip_t1_s": 0.1,
            "cascades": [
                {
                    "upper_id": UPPER_ID,
                    "upper_host": "127.0.0.1",
                    "upper_port": upper_port,
                    "local_port": 0,
                    "password": env_secret(PASSWORD),
                    "retry_s": 0.2,
                    "channels": ["3402000000"],
                    **cascade,
                }
            ],
        }
    )


@pytest.fixture
async def upper() -> AsyncIterator[UpperPlatformSimulator]:
    sim = UpperPlatformSimulator(UPPER_ID, PASSWORD, t1=0.1)
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def cascades() -> AsyncIterator[list[GbCascade]]:
    started: list[GbCascade] = []
    yield started
    for cascade in started:
        await cascade.stop()


async def _start(upper: UpperPlatformSimulator, started: list[GbCascade], **kwargs: Any) -> GbCascade:
    settings = _settings(upper.port, **kwargs.pop("cascade", {}))
    cascade = GbCascade(settings, _channels, **kwargs)
    await cascade.start()
    started.append(cascade)
    await upper.wait_for(lambda: PLATFORM_ID in upper.lowers)
    return cascade


async def test_alarm_subscription_sends_alarms_as_notifies_within_its_conditions(
    upper: UpperPlatformSimulator, cascades: list[GbCascade]
) -> None:
    cascade = await _start(upper, cascades)
    fields = [("StartAlarmPriority", 1), ("EndAlarmPriority", 2), ("AlarmMethod", "25"),
              ("StartAlarmTime", "2026-01-05T09:00:00"), ("EndAlarmTime", "2026-01-05T11:00:00")]  # fmt: skip
    sub = await upper.open_subscription(PLATFORM_ID, "Alarm", fields=fields, expires=60)
    assert sub.status == 200 and sub.expires == 60
    assert [s.event for s in cascade.live("Alarm")] == ["Alarm"]

    intrusion = _alarm("video_intrusion", "zone-a", device_id=CAMERA)  # priority 1, method 5, 10:00 local
    minor = _alarm("video_intrusion", "zone-b", device_id=CAMERA).model_copy(update={"severity": Severity.minor})
    phoned = _alarm("manual", "hotline-12345", device_id=CAMERA)  # method 1: not asked for
    early = _alarm("fire", "thermal", device_id=CAMERA).model_copy(
        update={"first_seen": datetime(2026, 1, 5, 0, 30, tzinfo=UTC)}  # 08:30 local: before StartAlarmTime
    )
    filtered = _alarm("video_intrusion", "zone-c", device_id=OTHER_DISTRICT)  # outside the channels filter
    fire = _alarm("fire", "thermal-hot", device_id=CAR)  # priority 1, method 2
    for alarm in (intrusion, minor, phoned, early, filtered, fire):
        cascade.forward_alarm(alarm)
    await upper.wait_for(lambda: len(upper.notified("Alarm", sub.call_id)) == 2)
    await until(lambda: cascade.stats["alarms_not_subscribed"] == 3 and cascade.stats["alarms_notified"] == 2)
    got = [n.body for n in upper.notified("Alarm", sub.call_id)]
    assert all(n.state.startswith("active;expires=") for n in upper.notified("Alarm"))
    assert [(b.cmd_type, b.device_id, b.int_field("alarmpriority"), b.int_field("alarmmethod"))
            for b in got if b is not None] == [("Alarm", CAMERA, 1, 5), ("Alarm", CAR, 1, 2)]  # fmt: skip
    assert got[0] is not None and got[0].fields["alarmtime"] == "2026-01-05T10:00:00"
    assert cascade.stats["alarms_filtered"] == 1
    assert upper.lowers[PLATFORM_ID].alarms == []  # no MESSAGE while subscribed

    # refreshed in its dialog with wider conditions: the minor alarm now goes too
    assert await upper.refresh(sub, 120, [("StartAlarmPriority", 0), ("EndAlarmPriority", 0)]) == 200
    assert sub.expires == 120 and cascade.stats["refreshed.Alarm"] == 1
    cascade.forward_alarm(minor)
    await upper.wait_for(lambda: len(upper.notified("Alarm", sub.call_id)) == 3)
    last = upper.notified("Alarm", sub.call_id)[-1].body
    assert last is not None and last.int_field("alarmpriority") == 3

    # ended with Expires: 0: a last NOTIFY says terminated, and alarms go by MESSAGE again
    assert await upper.unsubscribe(sub) == 200
    await upper.wait_for(lambda: upper.notified("Alarm", sub.call_id)[-1].state.startswith("terminated"))
    assert upper.notified("Alarm", sub.call_id)[-1].body is None
    assert cascade.live("Alarm") == [] and cascade.stats["subscription_ended.Alarm.unsubscribed"] == 1
    cascade.forward_alarm(phoned)
    await upper.wait_for(lambda: len(upper.lowers[PLATFORM_ID].alarms) == 1)
    assert upper.lowers[PLATFORM_ID].alarms[0].int_field("alarmmethod") == 1


async def test_alarm_subscription_of_one_channel(upper: UpperPlatformSimulator, cascades: list[GbCascade]) -> None:
    cascade = await _start(upper, cascades)
    sub = await upper.open_subscription(PLATFORM_ID, "Alarm", target=CAR)
    assert sub.status == 200
    cascade.forward_alarm(_alarm("video_intrusion", "zone-a", device_id=CAMERA))
    cascade.forward_alarm(_alarm("video_intrusion", "zone-a", device_id=CAR))
    await upper.wait_for(lambda: upper.notified("Alarm"))
    await until(lambda: cascade.stats["alarms_not_subscribed"] == 1)
    assert [n.body.device_id for n in upper.notified("Alarm") if n.body] == [CAR]
    assert await upper.refresh(sub, 60, body=False) == 200  # a refresh without a query keeps the channel
    assert [(s.target, s.event) for s in cascade.live("Alarm")] == [(CAR, "Alarm")]


async def test_alarm_subscription_of_one_alarm_type(upper: UpperPlatformSimulator, cascades: list[GbCascade]) -> None:
    cascade = await _start(upper, cascades)
    sub = await upper.open_subscription(PLATFORM_ID, "Alarm", fields=[("AlarmMethod", 5), ("AlarmType", 6)])
    assert sub.status == 200
    cascade.forward_alarm(_alarm("motion", "motion-a", device_id=CAMERA))  # method 5, type 2
    cascade.forward_alarm(_alarm("video_intrusion", "zone-a", device_id=CAMERA))  # method 5, type 6
    await upper.wait_for(lambda: upper.notified("Alarm"))
    await until(lambda: cascade.stats["alarms_not_subscribed"] == 1)
    (got,) = [n.body for n in upper.notified("Alarm") if n.body]
    assert (got.int_field("alarmmethod"), got.int_field("alarmtype")) == (5, 6)


async def test_mobile_position_subscription_reports_tracks_and_catalog_positions(
    upper: UpperPlatformSimulator, cascades: list[GbCascade], redis_client: aioredis.Redis, keys: Keys
) -> None:
    store = PositionStore(redis_client, keys)
    seen = datetime(2026, 12, 7, 2, 0, 5, tzinfo=UTC)
    await store.add([Position(CAR_DEVICE, datetime(2026, 12, 7, 2, 0, tzinfo=UTC), 117.2, 31.8, 30.0, 90.0, 20.0),
                     Position(CAR_DEVICE, seen, 117.21, 31.81, 42.5, 180.0, 21.0)])  # fmt: skip
    cascade = await _start(upper, cascades, positions=store.latest)
    everything = await upper.open_subscription(PLATFORM_ID, "MobilePosition", fields=[("Interval", 1)], expires=60)
    assert everything.status == 200
    await upper.wait_for(lambda: len(upper.notified("MobilePosition", everything.call_id)) >= 4, limit_s=5)
    reports = [n.body for n in upper.notified("MobilePosition", everything.call_id) if n.body is not None]
    by_channel = {b.device_id: b for b in reports}
    assert set(by_channel) == {CAMERA, CAR}  # the blind channel has no position; the other district is filtered
    car = by_channel[CAR]
    assert car.cmd_type == "MobilePosition" and car.fields["time"] == "2026-12-07T10:00:05"
    assert (car.float_field("longitude"), car.float_field("latitude")) == (117.21, 31.81)
    assert (car.float_field("speed"), car.float_field("direction"), car.float_field("altitude")) == (42.5, 180, 21)
    camera = by_channel[CAMERA]
    assert (camera.float_field("longitude"), camera.float_field("latitude")) == (117.283, 31.861)
    assert camera.float_field("speed") == 0
    assert cascade.stats["positions.tracked"] >= 2 and cascade.stats["positions.catalog"] >= 2

    # one channel: only its reports; unsubscribing the first stops those
    car_only = await upper.open_subscription(PLATFORM_ID, "MobilePosition", target=CAR, fields=[("Interval", 1)])
    assert car_only.status == 200
    await upper.wait_for(lambda: len(upper.notified("MobilePosition", car_only.call_id)) >= 2, limit_s=5)
    assert {n.body.device_id for n in upper.notified("MobilePosition", car_only.call_id) if n.body} == {CAR}
    assert await upper.unsubscribe(everything) == 200
    assert [s.call_id for s in cascade.live("MobilePosition")] == [car_only.call_id]

    # a channel the filter keeps from this platform, and one SharpEye does not publish
    refused = await upper.open_subscription(PLATFORM_ID, "MobilePosition", target=OTHER_DISTRICT)
    unknown = await upper.open_subscription(PLATFORM_ID, "MobilePosition", target=code("34020000", 131, 77))
    assert (refused.status, unknown.status) == (403, 404)
    assert cascade.stats["subscribe.not_allowed.MobilePosition"] == 1
    assert cascade.stats["subscribe.unknown_channel.MobilePosition"] == 1


async def test_subscription_ends_when_the_upper_platform_stops_answering(
    upper: UpperPlatformSimulator, cascades: list[GbCascade]
) -> None:
    cascade = await _start(upper, cascades, cascade={"notify_failures": 2})
    positions = await upper.open_subscription(PLATFORM_ID, "MobilePosition", target=CAMERA, fields=[("Interval", 1)])
    alarms = await upper.open_subscription(PLATFORM_ID, "Alarm")
    assert (positions.status, alarms.status) == (200, 200)
    await upper.wait_for(lambda: upper.notified("MobilePosition"))
    upper.answer_notifies = False
    await until(lambda: not cascade.live("MobilePosition"), limit_s=10)
    assert cascade.stats["subscription_ended.MobilePosition.unanswered"] == 1
    cascade.forward_alarm(_alarm("video_intrusion", "zone-a", device_id=CAMERA))
    # two NOTIFYs unanswered end the Alarm subscription too; the alarm then goes by MESSAGE
    await upper.wait_for(lambda: len(upper.lowers[PLATFORM_ID].alarms) == 1, limit_s=15)
    assert cascade.stats["subscription_ended.Alarm.unanswered"] == 1 and not cascade.subscriptions
    registry = CollectorRegistry()
    registry.register(CascadeCollector(lambda: cascades))
    text = generate_latest(registry).decode()
    assert f'sharpeye_gb_cascade_notify_failures_total{{event="Alarm",platform="{UPPER_ID}"}} 2.0' in text
    assert f'sharpeye_gb_cascade_notify_failures_total{{event="MobilePosition",platform="{UPPER_ID}"}} 2.0' in text
    assert f'sharpeye_gb_cascade_subscriptions{{event="Alarm",platform="{UPPER_ID}"}} 0.0' in text


async def test_subscription_expires_with_a_terminated_notify(
    upper: UpperPlatformSimulator, cascades: list[GbCascade]
) -> None:
    cascade = await _start(upper, cascades)
    sub = await upper.open_subscription(PLATFORM_ID, "Alarm", expires=1)
    assert sub.status == 200
    registry = CollectorRegistry()
    registry.register(CascadeCollector(lambda: cascades))
    assert (
        f'sharpeye_gb_cascade_subscriptions{{event="Alarm",platform="{UPPER_ID}"}} 1.0'
        in generate_latest(registry).decode()
    )
    await upper.wait_for(lambda: upper.notified("Alarm", sub.call_id), limit_s=5)
    (ended,) = upper.notified("Alarm", sub.call_id)
    assert ended.state == "terminated;reason=timeout" and ended.body is None
    assert cascade.stats["subscription_ended.Alarm.expired"] == 1 and not cascade.subscriptions


@pytest.mark.parametrize(
    ("event", "body", "reason"),
    [
        ("Alarm", b"<Query><CmdType>Alarm</CmdType><SN>1", "Bad Body (bad_xml)"),
        ("Alarm", b"<Query><CmdType>Alarm</CmdType><SN>x</SN><DeviceID>1</DeviceID></Query>", "Bad Body (bad_sn)"),
        ("Alarm", f"<Query><CmdType>Catalog</CmdType><SN>1</SN><DeviceID>{PLATFORM_ID}</DeviceID></Query>".encode(),
         "Bad Body (CmdType 'Catalog' in a SUBSCRIBE for Alarm)"),
        ("Alarm", f"<Query><CmdType>Alarm</CmdType><SN>1</SN><DeviceID>{PLATFORM_ID}</DeviceID>"
                  "<StartAlarmPriority>9</StartAlarmPriority></Query>".encode(),
         "Bad Body (StartAlarmPriority '9' is not 0-4)"),
        ("Alarm", f"<Query><CmdType>Alarm</CmdType><SN>1</SN><DeviceID>{PLATFORM_ID}</DeviceID>"
                  "<StartAlarmPriority>3</StartAlarmPriority><EndAlarmPriority>1</EndAlarmPriority></Query>".encode(),
         "Bad Body (StartAlarmPriority 3 > EndAlarmPriority 1)"),
        ("Alarm", f"<Query><CmdType>Alarm</CmdType><SN>1</SN><DeviceID>{PLATFORM_ID}</DeviceID>"
                  "<AlarmMethod>9</AlarmMethod></Query>".encode(),
         "Bad Body (AlarmMethod '9' is not a combination of 0-7)"),
        ("Alarm", f"<Query><CmdType>Alarm</CmdType><SN>1</SN><DeviceID>{PLATFORM_ID}</DeviceID>"
                  "<StartAlarmTime>yesterday</StartAlarmTime></Query>".encode(),
         "Bad Body (StartAlarmTime 'yesterday' is not yyyy-MM-ddTHH:mm:ss)"),
        ("Alarm", f"<Query><CmdType>Alarm</CmdType><SN>1</SN><DeviceID>{PLATFORM_ID}</DeviceID>"
                  "<AlarmType>intrusion</AlarmType></Query>".encode(),
         "Bad Body (AlarmType 'intrusion' is not a type number)"),
        ("MobilePosition", f"<Query><CmdType>MobilePosition</CmdType><SN>1</SN><DeviceID>{PLATFORM_ID}</DeviceID>"
                           "<Interval>0</Interval></Query>".encode(),
         "Bad Body (Interval '0' is not 1-3600 seconds)"),
        ("MobilePosition", b"<Query><CmdType>MobilePosition</CmdType><SN>1</SN><DeviceID>car</DeviceID></Query>",
         "Bad Body (DeviceID 'car' is not a 20-digit code)"),
        ("Presence", b"", "Bad Event"),
    ],
)  # fmt: skip
async def test_malformed_subscribe_is_refused_with_the_reason(
    upper: UpperPlatformSimulator, cascades: list[GbCascade], event: str, body: bytes, reason: str
) -> None:
    cascade = await _start(upper, cascades)
    sub = await upper.open_subscription(PLATFORM_ID, event, body=body)
    assert (sub.status, sub.reason) == (489 if event == "Presence" else 400, reason)
    assert not cascade.subscriptions
    assert sum(v for k, v in cascade.stats.items() if k.startswith("subscribe.bad_")) == 1
