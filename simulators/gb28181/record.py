"""The simulated devices' recordings: an index over simulated time and RecordInfo answers in pages.

Every channel "recorded" ``length_s`` out of every ``period_s`` seconds since the epoch (files ``k * period_s`` to
``k * period_s + length_s``), so a test knows exactly which records a range holds. RecordInfo is answered with the
records overlapping the asked range, ``page`` per MESSAGE, ``SumNum`` the total, in the device's charset; faults:
a SumNum larger than what is sent, pages left out, no answer at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sharpeye.ingest.gb28181.manscdp import Manscdp, Node, build

MAX_RECORDS = 1000


@dataclass(slots=True)
class RecordPlan:
    """A device's recording index and its RecordInfo behaviour."""

    period_s: float = 900.0
    length_s: float = 600.0
    page: int = 4
    zone: str = "Asia/Shanghai"
    sumnum_extra: int = 0  # fault: SumNum larger than the records sent
    drop_pages: tuple[int, ...] = ()  # fault: these pages (0-based) are never sent
    answer: bool = True  # fault: no answer at all
    asked: list[tuple[datetime, datetime]] = field(default_factory=list)

    def records(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """Files overlapping ``[start, end)``, whole (not cut to the range), in time order."""
        a, b = start.timestamp(), end.timestamp()
        k = int(a // self.period_s)
        out: list[tuple[datetime, datetime]] = []
        while k * self.period_s < b and len(out) < MAX_RECORDS:
            s, e = k * self.period_s, k * self.period_s + self.length_s
            if e > a:
                out.append((datetime.fromtimestamp(s, UTC), datetime.fromtimestamp(e, UTC)))
            k += 1
        return out

    def recorded_at(self, when: datetime) -> bool:
        return when.timestamp() % self.period_s < self.length_s


def _local(when: datetime, zone: str) -> str:
    return when.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%dT%H:%M:%S")


def _parse(text: str, zone: str) -> datetime:
    parsed = datetime.fromisoformat(text.strip().replace(" ", "T"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=ZoneInfo(zone))


def record_pages(
    plan: RecordPlan, device_id: str, channel_name: str, query: Manscdp, charset: str
) -> list[bytes] | None:
    """The Response MESSAGE bodies answering ``query`` (None: the fault of never answering; a bad range answers
    SumNum 0)."""
    if not plan.answer:
        return None
    channel = query.device_id
    try:
        start = _parse(query.fields.get("starttime", ""), plan.zone)
        end = _parse(query.fields.get("endtime", ""), plan.zone)
    except ValueError:
        start = end = datetime.now(UTC)
    plan.asked.append((start, end))
    records = plan.records(start, end) if end > start else []
    total = len(records)
    items: list[list[Node]] = [
        [
            ("DeviceID", channel),
            ("Name", channel_name),
            ("FilePath", f"/record/{channel}/{int(s.timestamp())}.ps"),
            ("Address", channel_name),
            ("StartTime", _local(s, plan.zone)),
            ("EndTime", _local(e, plan.zone)),
            ("Secrecy", 0),
            ("Type", "time"),
            ("RecorderID", device_id),
        ]
        for s, e in records
    ]
    bodies = []
    for n, first in enumerate(range(0, max(total, 1), plan.page)):
        if n in plan.drop_pages:
            continue
        bodies.append(
            build(
                "Response",
                "RecordInfo",
                query.sn,
                channel,
                [("Name", channel_name), ("SumNum", total + plan.sumnum_extra)],
                charset=charset,
                device_list=("RecordList", items[first : first + plan.page]),
            )
        )
    return bodies
