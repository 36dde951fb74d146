"""The upper platform's RecordInfo for SharpEye's channels (录像检索 upward).

``GbCascade`` hands a RecordInfo query for one of the channels it published to ``answer_record_info`` with a
``RecordSource``: the hub's serves SharpEye's own recordings of the channel's camera when it records it, else
forwards the query to the device that owns the channel (``ingest/gb28181/record.py``). The answer goes up in pages of
the cascade's ``catalog_page_size`` records with ``SumNum`` the total (0 when there is nothing, or the source
failed: the failure is counted, never left unanswered).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sharpeye.ingest.gb28181.manscdp import Manscdp, Node, build
from sharpeye.ingest.gb28181.record import gb_time, parse_gb_time

if TYPE_CHECKING:
    from sharpeye.governance.cascade import GbCascade

log = logging.getLogger(__name__)

# (channel id, start, end) -> the recorded spans (start, end) overlapping the range
RecordSource = Callable[[str, datetime, datetime], Awaitable[Sequence[tuple[datetime, datetime]]]]


async def answer_record_info(cascade: GbCascade, query: Manscdp, source: RecordSource | None) -> None:
    zone = cascade.settings.timezone
    channel = query.device_id
    spans: Sequence[tuple[datetime, datetime]] = ()
    start: datetime | None
    end: datetime | None
    try:
        start = parse_gb_time(query.fields.get("starttime", ""), zone)
        end = parse_gb_time(query.fields.get("endtime", ""), zone)
    except ValueError:
        cascade.stats["recordinfo.bad_range"] += 1
        start = end = None
    known = any(c.channel_id == channel for c in cascade._catalog())
    if not known:
        cascade.stats["recordinfo.unknown_channel"] += 1
    elif source is not None and start is not None and end is not None and end > start:
        try:
            spans = await source(channel, start, end)
        except Exception as exc:  # a device that does not answer: an empty answer upward, counted
            cascade.stats["recordinfo.source_failed"] += 1
            log.warning("RecordInfo upward for %s: %s", channel, exc)
    name = next((c.name for c in cascade._catalog() if c.channel_id == channel), "")
    items: list[list[Node]] = [
        [
            ("DeviceID", channel),
            ("Name", name),
            ("FilePath", f"{channel}/{int(s.timestamp())}"),
            ("Address", name),
            ("StartTime", gb_time(s, zone)),
            ("EndTime", gb_time(e, zone)),
            ("Secrecy", 0),
            ("Type", "time"),
            ("RecorderID", cascade.settings.sip_id),
        ]
        for s, e in spans
    ]
    size = cascade.upper.catalog_page_size
    for first in range(0, max(len(items), 1), size):
        body = build(
            "Response",
            "RecordInfo",
            query.sn,
            channel,
            [("Name", name), ("SumNum", len(items))],
            charset=cascade.upper.charset,
            device_list=("RecordList", items[first : first + size]),
        )
        if await cascade._message(body) != 200:
            cascade.stats["recordinfo.page_refused"] += 1
            return
    cascade.stats["recordinfo.answers"] += 1


def merge_spans(spans: Sequence[tuple[float, float]], gap_s: float = 1.0) -> list[tuple[float, float]]:
    """Consecutive segments (seconds since the epoch) joined into recorded spans (gaps up to ``gap_s`` ignored)."""
    out: list[list[float]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1] + gap_s:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


__all__: list[Any] = ["RecordSource", "answer_record_info", "merge_spans"]
