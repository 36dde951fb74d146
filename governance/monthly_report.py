"""月报: the statistics of a period in one file, as an XLSX workbook and as a printable PDF with charts.

The figures are those of ``GET /api/stats`` (``governance.indicator`` definitions, ``as_dict`` rounding) for the
cases accepted in the period, overall and by department, grid (org unit), category and day, plus two figures from
outside the case record: the false-alarm rate (误报率: alarms judged false in 研判 over those and the cases opened
from alarms in the period) and the camera online rate (摄像机在线率: cameras online when the report is made, over
the cameras of the scope). The caller gathers them into a ``ReportData`` (the API route does, within the caller's
scope); this module only lays them out.

The PDF is drawn with fpdf2 (pure Python, embeds a subset of the font): charts are its own rectangles and lines, so
no plotting library is needed. Chinese needs a CJK font on the machine: ``find_cjk_font`` looks for Noto Sans CJK
(Debian's fonts-noto-cjk) or WenQuanYi (fonts-wqy-microhei/zenhei), then asks fontconfig, and fails with a
``ReportError`` that says which package to install.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import logging
import shutil
import struct
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fpdf import FPDF
from fpdf.enums import TableCellFillMode, WrapMode, XPos, YPos
from fpdf.fonts import FontFace
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from sharpeye.governance.case import Source
from sharpeye.governance.case_query import CaseScope, scope_conditions
from sharpeye.governance.indicator import COLUMNS, IndicatorRow, as_dict
from sharpeye.governance.store import CaseRow, Database
from sqlalchemy import func, select

log = logging.getLogger(__name__)

MAX_DAYS = 366

# Chinese names of the case categories the built-in drivers and rules use (the console has the same table in its
# translations); a category not listed shows its key.
CATEGORY_ZH = {
    "perimeter_intrusion": "周界入侵",
    "illegal_construction": "违法建设",
    "city_appearance": "市容环境",
    "public_security": "社会治安",
    "dispute": "矛盾纠纷",
    "fire": "火灾",
    "flood": "汛情",
    "device_fault": "设备故障",
    "environment": "环境保护",
}


class ReportError(ValueError):
    """A period that cannot be reported, or a PDF that cannot be drawn (no CJK font)."""


@dataclass(frozen=True, slots=True)
class ReportPeriod:
    """[start, end) in UTC, from local midnights of the site's time zone."""

    start: datetime
    end: datetime
    first: date
    last: date  # inclusive
    label: str  # 2026年12月, or 2026-12-01 至 2026-12-15
    slug: str  # for file names: 2026-12, or 2026-12-01_2026-12-15

    @property
    def title(self) -> str:
        """月报 for a calendar month, 统计报告 for any other period."""
        return "社会治理统计报告" if "_" in self.slug else "社会治理月报"

    @property
    def span(self) -> str:
        """The label, with its days when it is a month."""
        days = f"{self.first.isoformat()} 至 {self.last.isoformat()}"
        return self.label if self.label == days else f"{self.label}（{days}）"


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def month_period(text: str, timezone: str) -> ReportPeriod:
    """The calendar month ``YYYY-MM`` in the site's time zone."""
    try:
        year, number = text.split("-")
        if len(year) != 4 or len(number) != 2:
            raise ValueError(text)
        first = date(int(year), int(number), 1)
    except ValueError:
        raise ReportError(f"month must be YYYY-MM, not {text!r}") from None
    following = first.replace(year=first.year + (first.month == 12), month=first.month % 12 + 1)
    zone = ZoneInfo(timezone)
    last = following - timedelta(days=1)
    return ReportPeriod(_midnight(first, zone), _midnight(following, zone), first, last,
                        f"{first.year}年{first.month}月", first.strftime("%Y-%m"))  # fmt: skip


def day_period(first: date, last: date, timezone: str) -> ReportPeriod:
    """The days ``first`` to ``last`` (both included) in the site's time zone."""
    if last < first:
        raise ReportError(f"to ({last}) is before from ({first})")
    if (last - first).days + 1 > MAX_DAYS:
        raise ReportError(f"a report covers at most {MAX_DAYS} days, not {(last - first).days + 1}")
    zone = ZoneInfo(timezone)
    label, slug = f"{first.isoformat()} 至 {last.isoformat()}", f"{first.isoformat()}_{last.isoformat()}"
    return ReportPeriod(_midnight(first, zone), _midnight(last + timedelta(days=1), zone), first, last, label, slug)


@dataclass(slots=True)
class ReportData:
    """Everything one report shows. ``None`` figures are those the caller may not see (or has none of)."""

    site: str
    period: ReportPeriod
    generated_at: datetime
    timezone: str
    scope: str  # 全部, or the name of the caller's org unit
    total: IndicatorRow
    by_department: list[IndicatorRow]
    by_org_unit: list[IndicatorRow]
    by_category: list[IndicatorRow]
    by_day: list[IndicatorRow]
    names: Mapping[str, str] = field(default_factory=dict)  # department and org unit ids -> names
    false_alarms: int | None = None
    alarm_cases: int | None = None
    false_by_reason: list[tuple[str, int]] = field(default_factory=list)
    cameras: int | None = None
    cameras_online: int | None = None

    @property
    def false_alarm_rate(self) -> float | None:
        """误报率 in percent: false alarms over false alarms and cases opened from alarms."""
        if self.false_alarms is None or self.alarm_cases is None or not self.false_alarms + self.alarm_cases:
            return None
        return round(self.false_alarms * 100 / (self.false_alarms + self.alarm_cases), 2)

    @property
    def camera_online_rate(self) -> float | None:
        """摄像机在线率 in percent, when the report was made."""
        if not self.cameras or self.cameras_online is None:
            return None
        return round(self.cameras_online * 100 / self.cameras, 2)

    def label(self, group: str, key: str) -> str:
        if group == "category":
            return CATEGORY_ZH.get(key, key)
        if key == "-":
            return "未分拨"
        return self.names.get(key, key)

    def summary(self) -> list[tuple[str, object]]:
        """(Chinese label, value) of the headline figures, rates in percent."""
        total = _values(self.total)
        return [
            ("立案", total["opened"]),
            ("应结案", total["due"]),
            ("结案", total["closed"]),
            ("按期结案", total["closed_on_time"]),
            ("结案率(%)", total["close_rate"]),
            ("按期结案率(%)", total["on_time_rate"]),
            ("满意率(%)", total["satisfaction_rate"]),
            ("平均处置时长(小时)", total["avg_handling_h"]),
            ("在办红灯", total["open_red"]),
            ("误报", self.false_alarms),
            ("告警立案", self.alarm_cases),
            ("误报率(%)", self.false_alarm_rate),
            ("摄像机", self.cameras),
            ("摄像机在线", self.cameras_online),
            ("摄像机在线率(%)", self.camera_online_rate),
        ]


async def alarm_case_count(db: Database, start: datetime, end: datetime, scope: CaseScope | None) -> int:
    """Cases opened from alarms (source alarm) created in [start, end), within ``scope``: the confirmed side of the
    false-alarm rate."""
    query = select(func.count()).where(
        CaseRow.source == Source.alarm.value, CaseRow.created_at >= start, CaseRow.created_at < end,
        *scope_conditions(scope),
    )  # fmt: skip
    async with db.sessions() as session:
        return int((await session.execute(query)).scalar_one())


def _values(row: IndicatorRow) -> dict[str, object]:
    """The row's indicators as ``GET /api/stats`` gives them (without its grouping keys)."""
    return as_dict(dataclasses.replace(row, group=()))


def to_json(data: ReportData) -> dict[str, object]:
    """The report's figures as plain values (rates in percent), for the command screen (大屏)."""

    def rows(items: Sequence[IndicatorRow], group: str) -> list[dict[str, object]]:
        return [{"key": r.group[0], "name": r.group[0] if group == "period" else data.label(group, r.group[0]),
                 **_values(r)} for r in items if r.group]  # fmt: skip

    return {
        "site": data.site,
        "period": {
            "from": data.period.first.isoformat(),
            "to": data.period.last.isoformat(),
            "label": data.period.label,
        },
        "scope": data.scope,
        "generated_at": data.generated_at.isoformat(),
        "total": _values(data.total),
        "false_alarms": data.false_alarms,
        "alarm_cases": data.alarm_cases,
        "false_alarm_rate": data.false_alarm_rate,
        "cameras": data.cameras,
        "cameras_online": data.cameras_online,
        "camera_online_rate": data.camera_online_rate,
        "by_department": rows(data.by_department, "department"),
        "by_org_unit": rows(data.by_org_unit, "org_unit"),
        "by_category": rows(data.by_category, "category"),
        "by_day": rows(data.by_day, "period"),
        "false_by_reason": [{"key": k, "count": n} for k, n in data.false_by_reason],
    }


# --- XLSX ---------------------------------------------------------------------------------------------------------

GROUP_SHEETS = [("by_department", "按部门", "部门"), ("by_org_unit", "按网格", "网格"),
                ("by_category", "按类别", "类别"), ("by_day", "按日", "日期")]  # fmt: skip
_GROUP_KEYS = {"by_department": "department", "by_org_unit": "org_unit", "by_category": "category",
               "by_day": "period"}  # fmt: skip


def to_xlsx(data: ReportData) -> bytes:
    """A workbook: 概览 (headline figures), one sheet per grouping (编码, 名称 and every indicator of
    ``GET /api/stats``, rates in percent), and 误报 by reason."""
    book = Workbook()
    sheet = book.active
    sheet.title = "概览"
    sheet.append([f"{data.site} {data.period.title}"])
    sheet["A1"].font = Font(size=14, bold=True)
    sheet.append(["统计期间", data.period.label])
    sheet.append(["统计范围", data.scope])
    sheet.append(["生成时间", data.generated_at.astimezone(ZoneInfo(data.timezone)).strftime("%Y-%m-%d %H:%M")])
    sheet.append([])
    sheet.append(["指标", "数值"])
    for name, value in data.summary():
        sheet.append([name, value])
    sheet.column_dimensions["A"].width = 22
    sheet.column_dimensions["B"].width = 24
    for attr, title, heading in GROUP_SHEETS:
        rows: list[IndicatorRow] = getattr(data, attr)
        group = _GROUP_KEYS[attr]
        ws = book.create_sheet(title)
        ws.append(["编码", heading] + [label for _name, label in COLUMNS])
        for row in rows:
            key = row.group[0] if row.group else ""
            values = _values(row)
            ws.append([key, key if group == "period" else data.label(group, key)] + [values[n] for n, _ in COLUMNS])
        for cell in ws[1]:
            cell.font = Font(bold=True)
            cell.alignment = Alignment(wrap_text=True)
        ws.column_dimensions["B"].width = 20
        ws.freeze_panes = "C2"
    ws = book.create_sheet("误报")
    ws.append(["原因", "误报数"])
    for reason, count in data.false_by_reason:
        ws.append([reason, count])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# --- PDF ----------------------------------------------------------------------------------------------------------

_FONT_FILES = [
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",  # Fedora, Arch
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
]
_HAN = 0x4E2D  # 中


def _face(path: Path) -> int | None:
    """The index of the face to use in a font file (the Simplified Chinese one of a collection), None if none has
    Chinese characters or the file is not a readable font."""
    from fontTools.ttLib import TTCollection, TTFont, TTLibError

    holder: Any = None
    try:
        if path.suffix.lower() in (".ttc", ".otc"):
            holder = TTCollection(str(path), lazy=True)
            faces: list[Any] = list(holder.fonts)
        else:
            holder = TTFont(str(path), lazy=True)
            faces = [holder]
        fits: list[tuple[int, int]] = []
        for index, face in enumerate(faces):
            if _HAN not in (face.getBestCmap() or {}):
                continue
            family = str(face["name"].getDebugName(1) or "")
            fits.append((0 if family.endswith(" SC") or "Hei" in family else 1, index))
    except (
        TTLibError,
        OSError,
        ValueError,
        KeyError,
        AssertionError,
        EOFError,
        struct.error,
    ) as exc:  # fontTools asserts formats
        log.debug("not a usable font: %s (%s)", path, exc)
        return None
    finally:
        if holder is not None:
            holder.close()
    return min(fits)[1] if fits else None


def _fontconfig_files() -> list[str]:
    if shutil.which("fc-list") is None:
        return []
    try:
        listed = subprocess.run(["fc-list", ":lang=zh", "file"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return sorted({line.strip().rstrip(":") for line in listed.stdout.splitlines() if line.strip()})


@functools.cache
def find_cjk_font() -> tuple[Path, int]:
    """(font file, face index) of a font with Chinese characters; ``ReportError`` naming the package to install
    when there is none."""
    for name in [*_FONT_FILES, *_fontconfig_files()]:
        path = Path(name)
        if path.is_file() and path.suffix.lower() in (".ttf", ".otf", ".ttc", ".otc"):
            index = _face(path)
            if index is not None:
                log.info("report PDF font: %s (face %d)", path, index)
                return path, index
    raise ReportError("no font with Chinese characters for the PDF report: install fonts-noto-cjk "
                      "(Debian/Ubuntu: apt-get install fonts-noto-cjk) or fonts-wqy-microhei")  # fmt: skip


_INK = (40, 40, 40)
_MUTED = (110, 110, 110)
_BLUE = (46, 110, 190)
_GREEN = (56, 150, 90)
_RED = (200, 60, 50)
_GRID = (215, 215, 215)
_TABLE_COLUMNS = [("opened", "立案"), ("due", "应结案"), ("closed", "结案"), ("closed_on_time", "按期结案"),
                  ("close_rate", "结案率%"), ("on_time_rate", "按期结案率%"), ("satisfaction_rate", "满意率%"),
                  ("avg_handling_h", "平均时长(时)"), ("open_red", "红灯")]  # fmt: skip


def _percent(fraction: float | None) -> float | None:
    return round(fraction * 100, 2) if fraction is not None else None


def _text(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class _Pdf(FPDF):
    def __init__(self, data: ReportData, font: Path, index: int) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self.data = data
        self.add_font("cjk", "", str(font), collection_font_number=index)
        self.set_font("cjk", size=10)
        self.set_auto_page_break(auto=True, margin=15)
        self.set_margins(15, 15, 15)
        self.set_title(f"{data.site} {data.period.title} {data.period.label}")
        self.set_creator("SharpEye")

    def footer(self) -> None:
        self.set_y(-10)
        self.set_font("cjk", size=8)
        self.set_text_color(*_MUTED)
        self.cell(0, 5, f"{self.data.site} · {self.data.period.label} · 第 {self.page_no()} 页", align="C")

    def heading(self, text: str) -> None:
        if self.get_y() > self.h - 60:
            self.add_page()
        self.ln(3)
        self.set_font("cjk", size=13)
        self.set_text_color(*_BLUE)
        self.cell(0, 8, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_draw_color(*_BLUE)
        self.line(self.l_margin, self.get_y(), self.w - self.r_margin, self.get_y())
        self.ln(2)
        self.set_text_color(*_INK)
        self.set_font("cjk", size=9)

    def kpis(self, items: Sequence[tuple[str, str]]) -> None:
        per_row, gap = 4, 3.0
        width = (self.w - self.l_margin - self.r_margin - gap * (per_row - 1)) / per_row
        top = self.get_y()
        for i, (label, value) in enumerate(items):
            x = self.l_margin + (i % per_row) * (width + gap)
            y = top + (i // per_row) * 20
            self.set_fill_color(242, 246, 252)
            self.rect(x, y, width, 17, style="F")
            self.set_xy(x, y + 1.5)
            self.set_font("cjk", size=8)
            self.set_text_color(*_MUTED)
            self.cell(width, 5, label, align="C")
            self.set_xy(x, y + 7)
            self.set_font("cjk", size=15)
            self.set_text_color(*_INK)
            self.cell(width, 8, value, align="C")
        self.set_y(top + ((len(items) + per_row - 1) // per_row) * 20)
        self.set_font("cjk", size=9)

    def bars(self, items: Sequence[tuple[str, float | None]], unit: str = "", colour: tuple[int, int, int] = _BLUE,
             limit: float | None = None) -> None:  # fmt: skip
        """Horizontal bars, one per item (label, value), scaled to ``limit`` or the largest value."""
        if not items:
            self.set_text_color(*_MUTED)
            self.cell(0, 6, "暂无数据", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            self.set_text_color(*_INK)
            return
        row_h, label_w = 6.0, 45.0
        room = self.w - self.l_margin - self.r_margin - label_w - 20
        top = limit or max([v for _l, v in items if v is not None] + [1.0])
        if self.get_y() + row_h * len(items) > self.h - 20:
            self.add_page()
        self.set_font("cjk", size=8)
        for label, value in items:
            y = self.get_y()
            self.set_text_color(*_INK)
            self.set_xy(self.l_margin, y)
            self.cell(label_w - 2, row_h, label[:18], align="R")
            w = room * (value or 0) / top
            self.set_fill_color(*colour)
            if w > 0:
                self.rect(self.l_margin + label_w, y + 1, w, row_h - 2, style="F")
            self.set_xy(self.l_margin + label_w + w + 1, y)
            self.cell(18, row_h, "—" if value is None else f"{value:g}{unit}")
            self.set_y(y + row_h)
        self.set_font("cjk", size=9)
        self.ln(2)

    def trend(self, days: Sequence[IndicatorRow]) -> None:
        """Cases opened and closed per day (立案 blue, 结案 green), with the axis labelled by date."""
        if not days:
            self.set_text_color(*_MUTED)
            self.cell(0, 6, "本期无立案", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            self.set_text_color(*_INK)
            return
        height, width = 45.0, self.w - self.l_margin - self.r_margin - 12
        if self.get_y() + height + 12 > self.h - 20:
            self.add_page()
        x0, y0 = self.l_margin + 10, self.get_y() + 4
        top = -(-max(1, *(max(r.opened, r.closed) for r in days)) // 4) * 4  # whole-number ticks
        self.set_draw_color(*_GRID)
        self.set_line_width(0.2)
        self.set_font("cjk", size=7)
        self.set_text_color(*_MUTED)
        for step in range(5):
            y = y0 + height - height * step / 4
            self.line(x0, y, x0 + width, y)
            self.set_xy(self.l_margin, y - 2)
            self.cell(9, 4, str(top * step // 4), align="R")
        n = len(days)
        slot = width / n

        def point(i: int, value: int) -> tuple[float, float]:
            return x0 + slot * (i + 0.5), y0 + height - height * value / top

        for attr, colour in (("opened", _BLUE), ("closed", _GREEN)):
            points = [point(i, getattr(r, attr)) for i, r in enumerate(days)]
            self.set_draw_color(*colour)
            self.set_fill_color(*colour)
            self.set_line_width(0.6)
            if len(points) > 1:
                self.polyline(points)
            for x, y in points:
                self.circle(x, y, 0.9, style="F")  # a single day still shows as a point
        every = max(1, n // 8)
        for i, r in enumerate(days):
            if i % every == 0 or i == n - 1:
                self.set_xy(x0 + slot * i, y0 + height + 1)
                self.cell(slot * every if i % every == 0 else slot, 4, r.group[0][5:] if r.group else "", align="L")
        legend_y = y0 + height + 6
        for i, (label, colour) in enumerate((("立案", _BLUE), ("结案", _GREEN))):
            self.set_fill_color(*colour)
            self.rect(x0 + i * 25, legend_y + 1, 4, 3, style="F")
            self.set_xy(x0 + i * 25 + 5, legend_y)
            self.set_text_color(*_INK)
            self.cell(18, 5, label)
        self.set_line_width(0.2)
        self.set_y(legend_y + 8)
        self.set_font("cjk", size=9)

    def indicator_table(self, group: str, heading: str, rows: Sequence[IndicatorRow]) -> None:
        if not rows:
            self.set_text_color(*_MUTED)
            self.cell(0, 6, "暂无数据", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            self.set_text_color(*_INK)
            return
        self.set_font("cjk", size=8)
        style = FontFace(emphasis="NONE", fill_color=(230, 236, 246))
        widths = [34] + [16] * len(_TABLE_COLUMNS)
        self.set_fill_color(246, 246, 246)  # every other row (fpdf2 fills with the current colour)
        with self.table(col_widths=widths, headings_style=style, text_align="CENTER", line_height=5,
                        wrapmode=WrapMode.CHAR, cell_fill_mode=TableCellFillMode.ROWS,
                        cell_fill_color=(246, 246, 246)) as table:  # fmt: skip
            table.row([heading] + [label for _n, label in _TABLE_COLUMNS])
            for row in rows:
                values = _values(row)
                key = row.group[0] if row.group else ""
                name = key if group == "period" else self.data.label(group, key)
                table.row([name] + [_text(values[n]) for n, _l in _TABLE_COLUMNS])
        self.set_font("cjk", size=9)
        self.ln(2)


def to_pdf(data: ReportData, font: tuple[Path, int] | None = None) -> bytes:
    """The printable report: headline figures, the daily trend, bars and tables by department, grid and category,
    false alarms by reason, and the definitions used. ``font``: (file, face); found with ``find_cjk_font`` if not
    given."""
    path, index = font or find_cjk_font()
    pdf = _Pdf(data, path, index)
    pdf.add_page()
    pdf.set_font("cjk", size=18)
    pdf.cell(0, 11, f"{data.site} {data.period.title}", align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("cjk", size=9)
    pdf.set_text_color(*_MUTED)
    local = data.generated_at.astimezone(ZoneInfo(data.timezone)).strftime("%Y-%m-%d %H:%M")
    pdf.cell(0, 6, f"统计期间：{data.period.span}　"
             f"统计范围：{data.scope}　生成时间：{local}", align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)  # fmt: skip
    pdf.set_text_color(*_INK)

    total = _values(data.total)

    def pct(value: object) -> str:
        return "—" if value is None else f"{value:g}%"

    hours = "—" if total["avg_handling_h"] is None else f"{total['avg_handling_h']:g}小时"
    pdf.heading("一、总体指标")
    pdf.kpis([("立案", _text(total["opened"])), ("结案", _text(total["closed"])),
              ("结案率", pct(total["close_rate"])), ("按期结案率", pct(total["on_time_rate"])),
              ("满意率", pct(total["satisfaction_rate"])), ("误报率", pct(data.false_alarm_rate)),
              ("摄像机在线率", pct(data.camera_online_rate)),
              ("平均处置时长", hours)])  # fmt: skip
    pdf.set_font("cjk", size=8)
    pdf.set_text_color(*_MUTED)
    pdf.multi_cell(0, 4.5, f"应结案 {total['due']}，按期结案 {total['closed_on_time']}，在办红灯 {total['open_red']}、"
                   f"黄灯 {total['open_yellow']}，回退 {total['returns']}，延期 {total['extensions']}，"
                   f"返工 {total['reworks']}，挂账 {total['parked']}；评价 {total['rated']}，"
                   f"满意（含基本满意）{total['satisfied']}。", new_x=XPos.LMARGIN, new_y=YPos.NEXT)  # fmt: skip
    pdf.set_text_color(*_INK)

    pdf.heading("二、立案与结案趋势（按日）")
    pdf.trend(data.by_day)

    pdf.heading("三、按部门")
    pdf.cell(0, 5, "结案率（%）", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.bars([(data.label("department", r.group[0]), _percent(r.close_rate)) for r in data.by_department],
             "%", _GREEN, 100.0)  # fmt: skip
    pdf.indicator_table("department", "部门", data.by_department)

    pdf.heading("四、按网格")
    pdf.cell(0, 5, "立案数（前 15）", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    busiest = sorted(data.by_org_unit, key=lambda r: -r.opened)[:15]
    pdf.bars([(data.label("org_unit", r.group[0]), float(r.opened)) for r in busiest])
    pdf.indicator_table("org_unit", "网格", data.by_org_unit)

    pdf.heading("五、按类别")
    pdf.cell(0, 5, "立案数", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.bars([(data.label("category", r.group[0]), float(r.opened)) for r in data.by_category])
    pdf.indicator_table("category", "类别", data.by_category)

    pdf.heading("六、误报与设备")
    lines = [f"研判误报 {_text(data.false_alarms)} 起，告警立案 {_text(data.alarm_cases)} 起，"
             f"误报率 {pct(data.false_alarm_rate)}。",
             f"摄像机 {_text(data.cameras)} 路，生成报表时在线 {_text(data.cameras_online)} 路，"
             f"在线率 {pct(data.camera_online_rate)}。"]  # fmt: skip
    for line in lines:
        pdf.cell(0, 6, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    if data.false_by_reason:
        pdf.cell(0, 5, "误报原因", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.bars([(reason, float(count)) for reason, count in data.false_by_reason[:10]], "", _RED)

    pdf.heading("说明")
    pdf.set_font("cjk", size=8)
    pdf.set_text_color(*_MUTED)
    pdf.multi_cell(0, 4.5, "立案：本期受理的案件（不含注销、并单）。应结案：已办结反馈或已到期的案件。"
                   "结案率＝结案/应结案；按期结案率＝期限内结案/应结案；满意率＝满意与基本满意/已评价。"
                   "误报率＝研判误报/（研判误报＋告警立案）。摄像机在线率为生成报表时的在线比例。",
                   new_x=XPos.LMARGIN, new_y=YPos.NEXT)  # fmt: skip
    return bytes(pdf.output())
