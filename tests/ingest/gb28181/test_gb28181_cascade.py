"""SharpEye as a lower platform: GbCascade against the upper-platform simulator over real UDP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sharpeye.alarms.alarm import Alarm, AlarmState
from sharpeye.config.gb28181 import GbSettings
from sharpeye.config.rule import Severity
from sharpeye.governance.cascade import CascadeCollector, GbCascade, alarm_forwarder
from sharpeye.ingest.gb28181.platform import Channel
from sharpeye.simulators.gb28181.device import code
from sharpeye.simulators.gb28181.upper import UpperPlatformSimulator

from tests.helpers import env_secret
from tests.ingest.gb28181.conftest import PLATFORM_ID, UPPER_ID, until

PASSWORD = "upper-secret"


def _channels(n: int) -> list[Channel]:
    return [
        Channel(device_id=PLATFORM_ID, channel_id=code("34020000", 131, i), name=f"雪亮点位{i:03d}")
        for i in range(1, n + 1)
    ]


def _settings(upper_port: int, password: str = PASSWORD, **cascade: Any) -> GbSettings:
    return GbSettings.model_validate(
        {
            "sip_id": PLATFORM_ID,
            "port": 0,
            "sip_t1_s": 0.1,
            "cascade": {
                "upper_id": UPPER_ID,
                "upper_host": "127.0.0.1",
                "upper_port": upper_port,
                "local_port": 0,
                "password": env_secret(password),
                "catalog_page_size": 4,
                "retry_s": 0.2,
                **cascade,
            },
        }
    )


def _alarm(category: str, rule_id: str, device_id: str = "fence-1", channel: str | None = None) -> Alarm:
    now = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
    return Alarm(
        id="a1",
        fingerprint=f"{rule_id}|{device_id}|-",
        rule_id=rule_id,
        device_id=device_id,
        channel=channel,
        title="周界入侵",
        severity=Severity.critical,
        category=category,
        state=AlarmState.active_unack,
        first_seen=now,
        last_seen=now,
        count=1,
        site="demo",
        org_unit="g1",
        place="北侧围墙",
    )


@pytest.fixture
async def upper() -> AsyncIterator[UpperPlatformSimulator]:
    sim = UpperPlatformSimulator(UPPER_ID, PASSWORD, t1=0.1)
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def make_cascade() -> AsyncIterator[Callable[..., Any]]:
    started: list[GbCascade] = []

    async def make(settings: GbSettings, channels: list[Channel]) -> GbCascade:
        cascade = GbCascade(settings, lambda: channels)
        await cascade.start()
        started.append(cascade)
        return cascade

    yield make
    for cascade in started:
        await cascade.stop()


async def test_registers_with_digest_and_answers_catalog_in_pages(upper: Any, make_cascade: Any) -> None:
    channels = _channels(10)
    await make_cascade(_settings(upper.port), channels)
    await upper.wait_for(lambda: PLATFORM_ID in upper.lowers)
    assert upper.stats["challenged"] >= 1
    pages = await upper.query(PLATFORM_ID, "Catalog")
    assert [len(p.items) for p in pages] == [4, 4, 2]
    assert {p.sum_num for p in pages} == {10}
    assert len({p.sn for p in pages}) == 1
    got = {item["deviceid"]: item["name"] for p in pages for item in p.items}
    assert got == {c.channel_id: c.name for c in channels}
    info = await upper.query(PLATFORM_ID, "DeviceInfo")
    assert info[0].fields["channel"] == "10" and info[0].fields["result"] == "OK"
    status = await upper.query(PLATFORM_ID, "DeviceStatus")
    assert status[0].fields["online"] == "ONLINE"


async def test_catalog_subscription_gets_change_notifications(upper: Any, make_cascade: Any) -> None:
    channels = _channels(3)
    cascade = await make_cascade(_settings(upper.port, catalog_watch_s=0.1), channels)
    await upper.wait_for(lambda: PLATFORM_ID in upper.lowers)
    assert await upper.subscribe(PLATFORM_ID, "Catalog") == 200
    assert [s.event for s in cascade.live("Catalog")] == ["Catalog"]
    added = Channel(device_id=PLATFORM_ID, channel_id=code("34020000", 131, 99), name="新点位")
    gone = channels.pop(0)
    channels[0] = replace(channels[0], status="OFF")
    channels.append(added)
    await upper.wait_for(lambda: upper.catalog_notifies)
    (notify,) = upper.catalog_notifies
    events = {item["deviceid"]: item["event"] for item in notify.items}
    assert events == {gone.channel_id: "DEL", channels[0].channel_id: "OFF", added.channel_id: "ADD"}
    assert notify.sum_num == 3


async def test_forwards_alarms_mapped_to_method_and_type(upper: Any, make_cascade: Any) -> None:
    cascade = await make_cascade(_settings(upper.port), _channels(1))
    await upper.wait_for(lambda: PLATFORM_ID in upper.lowers)
    camera = code("34020000", 131, 5)
    cascade.forward_alarm(_alarm("perimeter_intrusion", "fence-intrusion"))
    cascade.forward_alarm(_alarm("video_intrusion", "zone-a", device_id=camera))
    cascade.forward_alarm(_alarm("fire", "thermal-hot"))
    await upper.wait_for(lambda: len(upper.lowers[PLATFORM_ID].alarms) == 3)
    got = [
        (a.device_id, a.int_field("alarmpriority"), a.int_field("alarmmethod"), a.int_field("alarmtype"))
        for a in upper.lowers[PLATFORM_ID].alarms
    ]
    assert got == [(PLATFORM_ID, 1, 2, None), (camera, 1, 5, 6), (PLATFORM_ID, 1, 2, 4)]
    first = upper.lowers[PLATFORM_ID].alarms[0]
    assert first.fields["alarmtime"] == "2026-01-05T10:00:00"  # local time, Asia/Shanghai
    assert first.fields["alarmdescription"] == "周界入侵 @ 北侧围墙"
    await until(lambda: cascade.stats["alarm_acks"] == 3)


async def test_refreshes_before_expiry(make_cascade: Any) -> None:
    upper = UpperPlatformSimulator(UPPER_ID, PASSWORD, t1=0.1, grant_expires=2)
    await upper.start()
    try:
        cascade = await make_cascade(_settings(upper.port, refresh_ratio=0.5), _channels(1))
        await until(lambda: cascade.stats["refreshes"] >= 2, limit_s=8)
        assert upper.lowers[PLATFORM_ID].registrations >= 3
        await cascade.stop()
        assert PLATFORM_ID not in upper.lowers  # unregistered with Expires: 0
    finally:
        await upper.stop()


async def test_keepalives_list_the_published_channels_that_are_down(upper: Any, make_cascade: Any) -> None:
    """Each keepalive upward carries <Info> with the DeviceIDs of the published channels that are offline (none when
    all are up), so the upper platform sees a dead camera before it asks for the catalog."""
    channels = _channels(3)
    await make_cascade(_settings(upper.port, keepalive_interval_s=0.2), channels)
    await upper.wait_for(lambda: PLATFORM_ID in upper.lowers and upper.lowers[PLATFORM_ID].keepalives >= 1)
    assert upper.lowers[PLATFORM_ID].faulty == []
    channels[1] = replace(channels[1], status="OFF")
    await until(lambda: upper.lowers[PLATFORM_ID].faulty == [channels[1].channel_id], limit_s=10)
    channels[1] = replace(channels[1], status="ON")
    await until(lambda: upper.lowers[PLATFORM_ID].faulty == [], limit_s=10)


async def test_registers_again_after_missed_keepalives(upper: Any, make_cascade: Any) -> None:
    cascade = await make_cascade(
        _settings(upper.port, keepalive_interval_s=0.3, keepalive_count=2, register_expires_s=60), _channels(1)
    )
    await upper.wait_for(lambda: PLATFORM_ID in upper.lowers and upper.lowers[PLATFORM_ID].keepalives >= 1)
    upper.answer_keepalives = False
    await until(lambda: cascade.stats["keepalive_misses"] >= 2, limit_s=10)
    upper.answer_keepalives = True
    await until(lambda: cascade.stats["registrations"] >= 2, limit_s=10)
    assert upper.lowers[PLATFORM_ID].registrations >= 2


async def test_wrong_password_never_registers(upper: Any, make_cascade: Any) -> None:
    cascade = await make_cascade(_settings(upper.port, password="wrong"), _channels(1))
    await until(lambda: cascade.stats["register_failures"] >= 2, limit_s=10)
    assert not cascade.registered.is_set()
    assert PLATFORM_ID not in upper.lowers
    assert upper.stats["refused.wrong_password"] >= 2


async def test_cascade_over_tcp(upper: Any, make_cascade: Any) -> None:
    await make_cascade(_settings(upper.port, transport="tcp"), _channels(3))
    await upper.wait_for(lambda: PLATFORM_ID in upper.lowers)
    assert upper.lowers[PLATFORM_ID].peer.transport == "tcp"
    pages = await upper.query(PLATFORM_ID, "Catalog")
    assert sum(len(p.items) for p in pages) == 3


async def test_registers_again_when_upper_platform_forgot_it(upper: Any, make_cascade: Any) -> None:
    cascade = await make_cascade(_settings(upper.port, keepalive_interval_s=0.2, keepalive_count=5), _channels(1))
    await upper.wait_for(lambda: PLATFORM_ID in upper.lowers)
    upper.forget(PLATFORM_ID)  # a restarted upper platform answers the next keepalive with 403
    await upper.wait_for(lambda: PLATFORM_ID in upper.lowers, limit_s=5)
    assert cascade.stats["keepalive_refused.403"] == 1
    assert cascade.stats["keepalive_misses"] == 0


async def test_upper_platform_record_info_is_answered_from_the_record_source(upper: Any) -> None:
    """RecordInfo from the upper platform for a published channel: the source's spans go up in pages with SumNum;
    an unknown channel or a failing source get SumNum 0 (answered, counted), never silence."""
    channels = _channels(3)
    base = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
    asked: list[tuple[str, datetime, datetime]] = []

    async def source(channel: str, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        asked.append((channel, start, end))
        if channel == channels[2].channel_id:
            raise RuntimeError("the device did not answer")
        return [(base + timedelta(minutes=10 * i), base + timedelta(minutes=10 * i + 5)) for i in range(6)]

    cascade = GbCascade(_settings(upper.port), lambda: channels, records=source)
    await cascade.start()
    try:
        await upper.wait_for(lambda: PLATFORM_ID in upper.lowers)
        fields = [("StartTime", "2026-12-07T09:00:00"), ("EndTime", "2026-12-07T10:00:00"), ("Type", "all")]
        pages = await upper.query(PLATFORM_ID, "RecordInfo", target=channels[0].channel_id, fields=list(fields))
        items = [item for p in pages for item in p.items]
        assert [len(p.items) for p in pages] == [4, 2] and {p.sum_num for p in pages} == {6}
        assert items[0]["starttime"] == "2026-12-07T09:00:00" and items[0]["endtime"] == "2026-12-07T09:05:00"
        assert asked == [(channels[0].channel_id, base, base + timedelta(hours=1))]  # local time read in its zone
        failing = await upper.query(PLATFORM_ID, "RecordInfo", target=channels[2].channel_id, fields=list(fields))
        assert failing[0].sum_num == 0 and cascade.stats["recordinfo.source_failed"] == 1
        unknown = await upper.query(PLATFORM_ID, "RecordInfo", target="34020000001310099999", fields=list(fields))
        assert unknown[0].sum_num == 0 and cascade.stats["recordinfo.unknown_channel"] == 1
    finally:
        await cascade.stop()


async def test_two_upper_platforms_each_with_its_channel_filter() -> None:
    """Two upper platforms from one ``cascades`` list: each registers with its own password on its own client port,
    sees in its Catalog only the channels its filter lets through, gets only the alarms of those channels (or all of
    them without a filter), and is refused an INVITE or RecordInfo of a channel it may not see; per-platform metrics
    and health name each."""
    city_id, district_id = UPPER_ID, "34010200002000000001"
    city = UpperPlatformSimulator(city_id, PASSWORD, t1=0.1)
    district = UpperPlatformSimulator(district_id, "district-secret", t1=0.1)
    await city.start()
    await district.start()
    channels = [*_channels(3), Channel(device_id=PLATFORM_ID, channel_id="34020100001310000001", name="二分局点位")]
    base = {"upper_host": "127.0.0.1", "local_port": 0, "retry_s": 0.2, "catalog_page_size": 2}
    settings = GbSettings.model_validate(
        {
            "sip_id": PLATFORM_ID,
            "port": 0,
            "sip_t1_s": 0.1,
            "cascades": [
                {"id": "city", "upper_id": city_id, "upper_port": city.port, "password": env_secret(PASSWORD), **base},
                {"id": "district", "upper_id": district_id, "upper_port": district.port,
                 "password": env_secret("district-secret"), "channels": ["340201"], **base},
            ],
        }
    )  # fmt: skip
    cascades = [GbCascade(settings, lambda: channels, upper=upper) for upper in settings.uppers]
    try:
        for cascade in cascades:
            await cascade.start()
        await city.wait_for(lambda: PLATFORM_ID in city.lowers)
        await district.wait_for(lambda: PLATFORM_ID in district.lowers)
        assert cascades[0].endpoint.port != cascades[1].endpoint.port
        city_pages = await city.query(PLATFORM_ID, "Catalog")
        assert {i["deviceid"] for p in city_pages for i in p.items} == {c.channel_id for c in channels}
        district_pages = await district.query(PLATFORM_ID, "Catalog")
        assert [i["deviceid"] for p in district_pages for i in p.items] == ["34020100001310000001"]
        assert {p.sum_num for p in district_pages} == {1}
        alarm_of = {"in": "34020100001310000001", "out": channels[0].channel_id}
        store = _Store({k: _alarm("video_intrusion", k, v) for k, v in alarm_of.items()})
        handler = alarm_forwarder(cascades, cast(Any, store))
        await handler([{"type": "raised", "alarm": "in"}, {"type": "raised", "alarm": "out"}])
        await city.wait_for(lambda: len(city.lowers[PLATFORM_ID].alarms) == 2)
        await district.wait_for(lambda: len(district.lowers[PLATFORM_ID].alarms) == 1)
        assert district.lowers[PLATFORM_ID].alarms[0].device_id == alarm_of["in"]
        assert cascades[1].stats["alarms_filtered"] == 1
        watch = await district.invite(PLATFORM_ID, channels[0].channel_id)
        assert watch.status == 404 and cascades[1].stats["invite.not_allowed"] == 1
        fields = [("StartTime", "2026-01-05T00:00:00"), ("EndTime", "2026-01-05T01:00:00")]
        refused = await district.query(PLATFORM_ID, "RecordInfo", target=channels[0].channel_id, fields=fields)
        assert refused[0].sum_num == 0 and cascades[1].stats["recordinfo.unknown_channel"] == 1
        assert all(c.health()[0] for c in cascades)
        registry = CollectorRegistry()
        registry.register(CascadeCollector(lambda: cascades))
        text = generate_latest(registry).decode()
        assert 'sharpeye_gb_cascade_registered{platform="city"} 1.0' in text
        assert 'sharpeye_gb_cascade_registered{platform="district"} 1.0' in text
        assert 'sharpeye_gb_cascade_events_total{event="alarms_filtered",platform="district"} 1.0' in text
        await district.stop()
        await cascades[1].stop()
        ok, detail = cascades[1].health()
        assert not ok and "not registered" in detail
    finally:
        for cascade in cascades:
            await cascade.stop()
        await city.stop()
        await district.stop()


class _Store:
    """The alarm store's ``get`` over a dict (the forwarder reads raised alarms by id)."""

    def __init__(self, alarms: dict[str, Alarm]) -> None:
        self._alarms = alarms

    async def get(self, alarm_id: str) -> Alarm | None:
        return self._alarms.get(alarm_id)


def test_cascade_settings_list_old_key_and_conflicts() -> None:
    old = _settings(5060)
    assert [u.name for u in old.uppers] == [UPPER_ID]  # the deprecated single cascade: one more entry
    entry = {"upper_id": UPPER_ID, "upper_host": "h", "password": env_secret(PASSWORD)}
    with pytest.raises(ValueError, match="share the id 'a'"):
        GbSettings.model_validate({"sip_id": PLATFORM_ID, "cascades": [{**entry, "id": "a"}, {**entry, "id": "a"}]})
    with pytest.raises(ValueError, match="share local_port 5061"):
        GbSettings.model_validate({"sip_id": PLATFORM_ID, "cascades": [{**entry, "id": "a"}, {**entry, "id": "b"}]})
    with pytest.raises(ValueError, match="not a GB code or code prefix"):
        GbSettings.model_validate({"sip_id": PLATFORM_ID, "cascades": [{**entry, "channels": ["34x"]}]})
