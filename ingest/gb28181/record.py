"""Device recordings (录像检索) of GB/T 28181 channels: the RecordInfo query, its pages merged by SumNum.

A device answers ``RecordInfo`` for one channel and a time range in several MESSAGEs (pages of a few records each,
all with the query's SN and the total in ``SumNum``). ``query_records`` merges them (a record is its channel,
times, file path and type: a page repeated by a retransmission is not counted twice) and returns them sorted. When
the pages stop before ``SumNum`` records came (a lost datagram, a device that miscounts) the records received are
returned with ``complete`` false and an ``error`` saying how many of how many came; when no page comes at all it
raises ``RecordQueryError`` after the timeout. Records whose times do not parse are skipped and counted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from sharpeye.ingest.gb28181.manscdp import Manscdp, Node
from sharpeye.ingest.gb28181.platform import GbPlatform, MediaError, QueryError

log = logging.getLogger(__name__)

RecordType = Literal["all", "time", "alarm", "manual"]
MAX_RANGE_S = 31 * 86400


class RecordQueryError(RuntimeError):
    """No answer, an unknown channel, or a bad range."""


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """One recording a device holds for a channel (times are aware datetimes)."""

    channel_id: str
    start: datetime
    end: datetime
    name: str = ""
    file_path: str = ""
    type: str = ""
    secrecy: str = ""
    recorder_id: str = ""


@dataclass(frozen=True, slots=True)
class RecordList:
    """The merged answer: records in time order, the SumNum the device announced, and whether it all came."""

    device_id: str
    channel_id: str
    start: datetime
    end: datetime
    records: tuple[DeviceRecord, ...]
    sum_num: int | None
    complete: bool
    pages: int
    bad_items: int = 0
    error: str | None = None


def gb_time(when: datetime, zone: str) -> str:
    """A MANSCDP time: local ``yyyy-MM-ddTHH:mm:ss`` in the device's zone."""
    return when.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M:%S")


def parse_gb_time(text: str, zone: str) -> datetime:
    """A device's local time (``T`` or a space between date and time, optional milliseconds); ValueError if bad."""
    value = text.strip().replace(" ", "T")
    if not value:
        raise ValueError("empty time")
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=ZoneInfo(zone))


def merge_pages(pages: list[Manscdp], channel_id: str, zone: str) -> tuple[list[DeviceRecord], int | None, int]:
    """Records of all pages (deduplicated), the largest SumNum announced, and how many items were unusable."""
    seen: dict[tuple[str, str, str, str, str], DeviceRecord] = {}
    sum_num: int | None = None
    bad = 0
    for page in pages:
        if page.sum_num is not None:
            sum_num = max(sum_num or 0, page.sum_num)
        for item in page.items:
            key = (item.get("deviceid", ""), item.get("starttime", ""), item.get("endtime", ""),
                   item.get("filepath", ""), item.get("type", ""))  # fmt: skip
            if key in seen:
                continue
            try:
                start = parse_gb_time(item.get("starttime", ""), zone)
                end = parse_gb_time(item.get("endtime", ""), zone)
            except ValueError:
                bad += 1
                continue
            if end <= start:
                bad += 1
                continue
            seen[key] = DeviceRecord(
                channel_id=item.get("deviceid", "") or channel_id,
                start=start,
                end=end,
                name=item.get("name", ""),
                file_path=item.get("filepath", ""),
                type=item.get("type", ""),
                secrecy=item.get("secrecy", ""),
                recorder_id=item.get("recorderid", ""),
            )
    return sorted(seen.values(), key=lambda r: (r.start, r.end)), sum_num, bad


async def query_records(
    platform: GbPlatform,
    channel_id: str,
    start: datetime,
    end: datetime,
    *,
    record_type: RecordType = "all",
    timeout_s: float | None = None,
) -> RecordList:
    """Ask the device owning ``channel_id`` for its recordings in ``[start, end)``; see the module's docstring."""
    if start.tzinfo is None or end.tzinfo is None:
        raise RecordQueryError("start and end must carry a time zone")
    if end <= start:
        raise RecordQueryError(f"end {end.isoformat()} is not after start {start.isoformat()}")
    if (end - start).total_seconds() > MAX_RANGE_S:
        raise RecordQueryError("a RecordInfo range is at most 31 days")
    try:
        state = platform.owner_of(channel_id)
    except MediaError as exc:
        raise RecordQueryError(str(exc)) from None
    zone = state.config.timezone
    fields: list[Node] = [("StartTime", gb_time(start, zone)), ("EndTime", gb_time(end, zone)), ("Secrecy", 0),
                          ("Type", record_type)]  # fmt: skip
    try:
        pages, complete = await platform.query_pages(
            state.config.id, "RecordInfo", target=channel_id, fields=fields, timeout_s=timeout_s
        )
    except QueryError as exc:
        platform.stats["recordinfo.failed"] += 1
        raise RecordQueryError(f"RecordInfo of {channel_id}: {exc}") from None
    records, sum_num, bad = merge_pages(pages, channel_id, zone)
    error = None
    if not complete:
        error = (
            f"RecordInfo of {channel_id}: {len(records)} of {sum_num} records came in {len(pages)} pages before the "
            "timeout (pages missing or a wrong SumNum); the list is partial"
        )
    elif sum_num is not None and len(records) + bad < sum_num:
        complete, error = False, f"RecordInfo of {channel_id}: SumNum {sum_num} but {len(records) + bad} records"
    if bad:
        platform.stats["recordinfo.bad_items"] += bad
    platform.stats["recordinfo.ok" if complete else "recordinfo.partial"] += 1
    if error:
        log.warning("%s", error)
    return RecordList(
        device_id=state.config.id,
        channel_id=channel_id,
        start=start,
        end=end,
        records=tuple(records),
        sum_num=sum_num,
        complete=complete,
        pages=len(pages),
        bad_items=bad,
        error=error,
    )
