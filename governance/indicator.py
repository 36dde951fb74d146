"""Indicators a centre is judged by, exactly as DOMAIN.md defines them, over case records.

- 立案 (opened): cases accepted in the period, less those later cancelled (注销) or merged (并单).
- 应结案 (due to close): of those, every case handled (the department reported its result: it is in
  feedback, verification or closed) and every case whose deadline has passed by ``as_of``, handled or not.
- 结案 (closed) and 按期结案 (closed on time: closed no later than its deadline, extensions included).
- 结案率 = closed / due; 按期结案率 = closed on time / due.
- Average handling time: 立案 to 结案, over closed cases. Returns (回退), extensions (延期), rework (返工)
  are counted per case; parked (挂账) counts cases in the problem library; open cases by light at ``as_of``.

Groups: any of department, org unit (optionally rolled up to a level of the org tree), category and
period (day, ISO week or month of the 立案 time, in the site's time zone). These are pure functions so
tests can check hand-computed numbers; the SQL version reads the same definitions.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from zoneinfo import ZoneInfo

from sharpeye.governance.case import Case, Light, Stage
from sharpeye.governance.sla import SlaPolicy


class GroupBy(StrEnum):
    department = "department"
    org_unit = "org_unit"
    category = "category"
    period = "period"


class Period(StrEnum):
    day = "day"
    week = "week"
    month = "month"


_NOT_CASES = frozenset({Stage.cancelled, Stage.merged, Stage.reported})
_HANDLED = frozenset({Stage.feedback, Stage.verifying, Stage.closed})


@dataclass(slots=True)
class IndicatorRow:
    """Figures of one group (``group`` holds the values of the grouping fields, in order)."""

    group: tuple[str, ...] = ()
    opened: int = 0
    due: int = 0
    closed: int = 0
    closed_on_time: int = 0
    handling_s_total: float = 0.0
    returns: int = 0
    extensions: int = 0
    reworks: int = 0
    parked: int = 0
    open_green: int = 0
    open_yellow: int = 0
    open_red: int = 0
    rated: int = 0  # cases the reporter rated (回访/评价)
    satisfied: int = 0  # of those, satisfied or basically satisfied
    case_ids: list[str] = field(default_factory=list, repr=False)

    @property
    def close_rate(self) -> float | None:
        """结案率, as a fraction (None when nothing is due)."""
        return self.closed / self.due if self.due else None

    @property
    def on_time_rate(self) -> float | None:
        """按期结案率, as a fraction."""
        return self.closed_on_time / self.due if self.due else None

    @property
    def satisfaction_rate(self) -> float | None:
        """满意率: satisfied and basically satisfied over rated cases, as a fraction (None: nothing rated)."""
        return self.satisfied / self.rated if self.rated else None

    @property
    def avg_handling_s(self) -> float | None:
        return self.handling_s_total / self.closed if self.closed else None


def is_counted(case: Case) -> bool:
    """A 立案 case that still stands (not cancelled, not merged)."""
    return case.accepted_at is not None and case.stage not in _NOT_CASES


def is_due(case: Case, as_of: datetime) -> bool:
    """应结案: handled, or past its deadline at ``as_of`` whether handled or not."""
    if case.stage in _HANDLED:
        return True
    return case.due_at is not None and case.due_at <= as_of


def closed_on_time(case: Case) -> bool:
    return (
        case.stage is Stage.closed
        and case.closed_at is not None
        and case.due_at is not None
        and case.closed_at <= case.due_at
    )


def period_key(moment: datetime, period: Period, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    if period is Period.day:
        return local.strftime("%Y-%m-%d")
    if period is Period.week:
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return local.strftime("%Y-%m")


def compute(
    cases: Iterable[Case],
    as_of: datetime,
    *,
    by: Sequence[GroupBy] = (),
    period: Period = Period.month,
    timezone: str = "Asia/Shanghai",
    start: datetime | None = None,
    end: datetime | None = None,
    sla: SlaPolicy | None = None,
    unit_of: Callable[[str], str] | None = None,
) -> list[IndicatorRow]:
    """Indicator rows per group, sorted by group; one row for everything when ``by`` is empty.

    ``start``/``end`` bound the 立案 time (end exclusive). ``sla`` recomputes lights at ``as_of``
    (otherwise the stored light is used). ``unit_of`` maps a case's org unit to the unit it is
    reported under (e.g. its village), for grouping by a higher level of the tree.
    """
    zone = ZoneInfo(timezone)
    rows: dict[tuple[str, ...], IndicatorRow] = {}
    for case in cases:
        if not is_counted(case):
            continue
        accepted = case.accepted_at
        assert accepted is not None
        if (start is not None and accepted < start) or (end is not None and accepted >= end):
            continue
        key = tuple(_group_value(case, g, period, zone, unit_of) for g in by)
        row = rows.get(key)
        if row is None:
            row = rows[key] = IndicatorRow(group=key)
        _add(row, case, as_of, sla)
    if not by and not rows:
        rows[()] = IndicatorRow()
    return [rows[k] for k in sorted(rows)]


def _group_value(
    case: Case, group: GroupBy, period: Period, zone: ZoneInfo, unit_of: Callable[[str], str] | None
) -> str:
    match group:
        case GroupBy.department:
            return case.department or "-"
        case GroupBy.org_unit:
            return unit_of(case.org_unit) if unit_of is not None else case.org_unit
        case GroupBy.category:
            return case.category
        case GroupBy.period:
            assert case.accepted_at is not None
            return period_key(case.accepted_at, period, zone)
    raise ValueError(f"unknown grouping {group!r}")  # pragma: no cover


def _add(row: IndicatorRow, case: Case, as_of: datetime, sla: SlaPolicy | None) -> None:
    row.opened += 1
    row.case_ids.append(case.id)
    row.returns += case.returns
    row.extensions += case.extensions
    row.reworks += case.reworks
    if is_due(case, as_of):
        row.due += 1
    if case.stage is Stage.closed and case.closed_at is not None:
        row.closed += 1
        if closed_on_time(case):
            row.closed_on_time += 1
        if case.accepted_at is not None:
            row.handling_s_total += (case.closed_at - case.accepted_at).total_seconds()
    if case.stage is Stage.parked:
        row.parked += 1
    if case.satisfaction is not None:
        row.rated += 1
        row.satisfied += int(case.satisfaction.counts_as_satisfied)
    if case.stage.open:
        light = sla.light(case, as_of) if sla is not None else case.light
        if light is Light.red:
            row.open_red += 1
        elif light is Light.yellow:
            row.open_yellow += 1
        else:
            row.open_green += 1


_COLUMNS = [
    ("opened", "立案"),
    ("due", "应结案"),
    ("closed", "结案"),
    ("closed_on_time", "按期结案"),
    ("close_rate", "结案率"),
    ("on_time_rate", "按期结案率"),
    ("avg_handling_h", "平均处置时长(小时)"),
    ("returns", "回退"),
    ("extensions", "延期"),
    ("reworks", "返工"),
    ("parked", "挂账"),
    ("open_green", "在办绿灯"),
    ("open_yellow", "在办黄灯"),
    ("open_red", "在办红灯"),
    ("rated", "评价数"),
    ("satisfied", "满意数"),
    ("satisfaction_rate", "满意率"),
]

COLUMNS = _COLUMNS  # (field of as_dict, Chinese label), in the order of the CSV export


def as_dict(row: IndicatorRow, by: Sequence[GroupBy] = ()) -> dict[str, object]:
    """One row as plain values (rates as percentages rounded to 2 places), for JSON and CSV."""
    out: dict[str, object] = {str(g): v for g, v in zip(by, row.group, strict=True)}
    names = {f.name for f in fields(IndicatorRow)}
    for name, _label in _COLUMNS:
        if name in names:
            out[name] = getattr(row, name)
    out["close_rate"] = _pct(row.close_rate)
    out["on_time_rate"] = _pct(row.on_time_rate)
    out["satisfaction_rate"] = _pct(row.satisfaction_rate)
    avg = row.avg_handling_s
    out["avg_handling_h"] = round(avg / 3600, 2) if avg is not None else None
    return out


def _pct(value: float | None) -> float | None:
    return round(value * 100, 2) if value is not None else None


def to_csv(rows: Sequence[IndicatorRow], by: Sequence[GroupBy] = (), *, bom: bool = True) -> str:
    """CSV with a Chinese header line (and a UTF-8 BOM so that spreadsheet programs read it as UTF-8)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    labels = {"department": "部门", "org_unit": "区域", "category": "类别", "period": "时段"}
    writer.writerow([labels[str(g)] for g in by] + [label for _name, label in _COLUMNS])
    for row in rows:
        values = as_dict(row, by)
        writer.writerow([values[str(g)] for g in by] + ["" if values[n] is None else values[n] for n, _ in _COLUMNS])
    return ("\ufeff" if bom else "") + buffer.getvalue()
