"""Device recordings (RecordInfo) against the device simulator over real UDP: pages merged by SumNum, a wrong
SumNum or missing pages give a partial list with a clear error after the timeout, a silent device an error, and
nothing stays pending."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sharpeye.ingest.gb28181.platform import GbPlatform
from sharpeye.ingest.gb28181.record import RecordQueryError, parse_gb_time, query_records
from sharpeye.simulators.gb28181.device import DeviceFleet, SimDevice, code
from sharpeye.simulators.gb28181.record import RecordPlan

from tests.ingest.gb28181.conftest import PLATFORM_ID, device_config, until

DAY = datetime(2026, 12, 6, 16, 0, tzinfo=UTC)  # 2026-12-07 00:00 in Asia/Shanghai


def _fleet(platform: GbPlatform, devices: list[SimDevice]) -> DeviceFleet:
    return DeviceFleet(devices, platform_id=PLATFORM_ID, platform_port=platform.port, t1=0.1)


async def _registered(make_platform: Any, dev: SimDevice, **settings: Any) -> tuple[GbPlatform, DeviceFleet]:
    platform: GbPlatform = await make_platform([device_config(dev)], **settings)
    fleet = _fleet(platform, [dev])
    await fleet.endpoint.start()
    assert await fleet.register(dev) == 200
    await until(lambda: len(platform.device(dev.id).channels) == len(dev.channels))
    return platform, fleet


async def test_records_of_a_range_come_in_pages_and_are_merged(make_platform: Any) -> None:
    dev = SimDevice(id=code("34020000", 118, 31), password="pw", kind="nvr", channel_count=2,
                    records=RecordPlan(period_s=900, length_s=600, page=3))  # fmt: skip
    platform, fleet = await _registered(make_platform, dev)
    try:
        channel = dev.channels[1][0]
        result = await query_records(platform, channel, DAY + timedelta(hours=9), DAY + timedelta(hours=12))
        # 3 hours of 15-minute periods: 12 files of 10 minutes, sent 3 a page (4 pages), merged in order.
        assert result.complete and result.error is None
        assert result.sum_num == 12 and len(result.records) == 12 and result.pages == 4
        assert [r.start for r in result.records] == [DAY + timedelta(hours=9, minutes=15 * i) for i in range(12)]
        assert all(r.end - r.start == timedelta(minutes=10) for r in result.records)
        assert {r.channel_id for r in result.records} == {channel}
        assert result.records[0].name == dev.channels[1][1]  # the Chinese channel name, from GB2312
        # The query carried the channel, the range in the device's local time and the type.
        asked = [q for q in fleet.queries if q.cmd_type == "RecordInfo"][-1]
        assert asked.device_id == channel
        assert asked.fields["starttime"] == "2026-12-07T09:00:00" and asked.fields["endtime"] == "2026-12-07T12:00:00"
        assert asked.fields["type"] == "all"
        # A range with nothing recorded: SumNum 0, complete.
        empty = await query_records(platform, channel, DAY + timedelta(minutes=11), DAY + timedelta(minutes=14))
        assert empty.complete and empty.records == () and empty.sum_num == 0
        assert platform.stats["recordinfo.ok"] == 2
    finally:
        await fleet.stop()


@pytest.mark.parametrize(
    ("plan", "got"),
    [
        (RecordPlan(page=2, sumnum_extra=3), 8),  # SumNum says 11, 8 come
        (RecordPlan(page=2, drop_pages=(1, 2)), 4),  # pages 2 and 3 of 4 lost
    ],
    ids=["wrong-sumnum", "missing-pages"],
)
async def test_wrong_sumnum_or_missing_pages_give_a_partial_list_and_a_clear_error(
    make_platform: Any, settings: Any, plan: RecordPlan, got: int
) -> None:
    dev = SimDevice(id=code("34020000", 132, 32), password="pw", records=plan)
    quick = settings.model_copy(update={"query_timeout_s": 0.5})
    platform, fleet = await _registered(make_platform, dev, settings=quick)
    try:
        result = await query_records(platform, dev.channels[0][0], DAY, DAY + timedelta(hours=2))
        assert not result.complete
        assert len(result.records) == got
        assert result.error is not None and "partial" in result.error and f"{got} of" in result.error
        assert platform.stats["recordinfo.partial"] == 1
        assert not platform._queries  # nothing left waiting
    finally:
        await fleet.stop()


async def test_a_device_that_never_answers_fails_after_the_timeout(make_platform: Any, settings: Any) -> None:
    dev = SimDevice(id=code("34020000", 132, 33), password="pw", records=RecordPlan(answer=False))
    quick = settings.model_copy(update={"query_timeout_s": 0.3})
    platform, fleet = await _registered(make_platform, dev, settings=quick)
    try:
        with pytest.raises(RecordQueryError, match="incomplete answer"):
            await query_records(platform, dev.channels[0][0], DAY, DAY + timedelta(hours=1))
        assert platform.stats["recordinfo.failed"] == 1 and not platform._queries
        with pytest.raises(RecordQueryError, match="not after"):
            await query_records(platform, dev.channels[0][0], DAY, DAY)
        with pytest.raises(RecordQueryError, match="no registered device"):
            await query_records(platform, "34020000001310009999", DAY, DAY + timedelta(hours=1))
    finally:
        await fleet.stop()


def test_device_times_parse_in_the_device_zone() -> None:
    assert parse_gb_time("2026-12-07T08:00:00", "Asia/Shanghai") == datetime(2026, 12, 7, 0, 0, tzinfo=UTC)
    assert parse_gb_time("2026-12-07 08:00:00.500", "Asia/Shanghai").microsecond == 500_000
    with pytest.raises(ValueError):
        parse_gb_time("yesterday", "Asia/Shanghai")
