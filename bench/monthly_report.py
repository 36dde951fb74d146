"""Monthly report (月报) benchmark: what the report adds to the statistics queries it is made of.

    .venv/bin/python -m bench.monthly_report                  # 100,000 cases in one month
    .venv/bin/python -m bench.monthly_report --cases 20000    # reduced

Seeds a SQLite file in a temporary directory with cases accepted across March 2026 (bulk inserts, as
bench.governance does), then times, each the median of --runs: the baseline, the five ``GET /api/stats`` queries
the report runs (total, by department, grid, category and day), beside the XLSX and the PDF made from their rows;
the PDF's first run also loads the CJK font (once per process), printed apart.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sharpeye.config.loader import demo_path, load_file
from sharpeye.config.rule import Severity
from sharpeye.governance.case import Case, Satisfaction, Source, Stage
from sharpeye.governance.indicator import GroupBy, IndicatorRow, Period
from sharpeye.governance.monthly_report import ReportData, find_cjk_font, month_period, to_pdf, to_xlsx
from sharpeye.governance.sla import SlaPolicy
from sharpeye.governance.statistic import Statistics
from sharpeye.governance.store import Database
from sharpeye.ingest.registry import installed

from bench.governance import DEPTS, GRIDS, row_values, seed

MONTH = "2026-03"
CATEGORIES = ("dispute", "environment", "city_appearance", "fire", "public_security", "flood")


def month_cases(n: int, start: datetime, end: datetime) -> Iterator[dict[str, object]]:
    step = (end - start) / n
    for i in range(n):
        at = start + step * i
        closed = i % 5 != 0
        yield row_values(
            Case(
                id=f"M{i:08d}",
                title="bench",
                category=CATEGORIES[i % len(CATEGORIES)],
                severity=Severity.minor,
                source=Source.hotline,
                stage=Stage.closed if closed else Stage.handling,
                org_unit=GRIDS[i % 4],
                department=DEPTS[i % 5],
                level="village",
                created_at=at,
                updated_at=at,
                accepted_at=at,
                dispatched_at=at,
                closed_at=at + timedelta(hours=20 + i % 60) if closed else None,
                due_at=at + timedelta(hours=72),
                satisfaction=(Satisfaction.satisfied, None, Satisfaction.basic)[i % 3] if closed else None,
            )
        )


def median_of(runs: int, op: Callable[[], object]) -> float:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        op()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


async def run(args: argparse.Namespace, work: Path) -> None:
    site = load_file(demo_path(), installed())
    db = Database(f"sqlite+aiosqlite:///{work / 'cases.db'}")
    await db.migrate()
    period = month_period(MONTH, site.site.timezone)
    seeded = await seed(db, month_cases(args.cases, period.start, period.end))
    print(f"{seeded} cases in {MONTH}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    stats = Statistics(db, SlaPolicy.from_config(site.governance, site.site.timezone), site.site.timezone)
    as_of = period.end + timedelta(days=1)

    async def queries() -> list[list[IndicatorRow]]:
        return [
            await stats.indicators(as_of, by=by, period=p, start=period.start, end=period.end)
            for by, p in (([], Period.month), ([GroupBy.department], Period.month), ([GroupBy.org_unit], Period.month),
                          ([GroupBy.category], Period.month), ([GroupBy.period], Period.day))
        ]  # fmt: skip

    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        total, dept, unit, cat, day = await queries()
        times.append(time.perf_counter() - t)
    baseline = statistics.median(times)
    data = ReportData(site=site.site.name, period=period, generated_at=datetime.now(UTC), timezone=site.site.timezone,
                      scope="全部", total=total[0], by_department=dept, by_org_unit=unit, by_category=cat, by_day=day,
                      false_alarms=10, alarm_cases=90, cameras=5, cameras_online=4)  # fmt: skip
    t = time.perf_counter()
    font = find_cjk_font()
    font_s = time.perf_counter() - t
    t = time.perf_counter()
    first_pdf = to_pdf(data, font)
    first_s = time.perf_counter() - t
    xlsx_s = median_of(args.runs, lambda: to_xlsx(data))
    pdf_s = median_of(args.runs, lambda: to_pdf(data, font))
    print(f"baseline: the report's five stats queries      {baseline * 1000:8.1f} ms")
    print(
        f"XLSX from their rows                          {xlsx_s * 1000:8.1f} ms  ({xlsx_s / baseline:.2f}x the queries)"
    )
    print(
        f"PDF from their rows                           {pdf_s * 1000:8.1f} ms  ({pdf_s / baseline:.2f}x the queries)"
    )
    print(
        f"first PDF of the process (font parsed)        {first_s * 1000:8.1f} ms; font found in {font_s * 1000:.1f} ms"
    )
    print(f"PDF size {len(first_pdf) / 1024:.0f} KiB ({font[0].name})")
    await db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="se-bench-report-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
