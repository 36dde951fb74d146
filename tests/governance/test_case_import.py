"""``sharpeye cases import``: an old system's month with its historical times (GB18030 CSV), a dry run that writes
nothing, the real run, a re-run that changes nothing, rejected rows with their reasons, and the month's indicators
computed from the imported record."""

from __future__ import annotations

from pathlib import Path

import pytest
from sharpeye.config.loader import demo_path, load_file
from sharpeye.governance.case_import import CaseImport, ImportFileError
from sharpeye.governance.case_record import to_case
from sharpeye.governance.sla import SlaPolicy
from sharpeye.governance.statistic import Statistics
from sharpeye.governance.store import CaseEventRow, CaseRow, Database
from sharpeye.ingest.registry import installed
from sqlalchemy import func, select

from sharpeye.node.cli import main
from tests.governance.casebook import cst

HEADER = "案件编号,标题,类别,网格,处置部门,上报时间,受理时间,分拨时间,签收时间,反馈时间,核查时间,结案时间,来电号码"
ROWS = [
    "T001,仓库冒烟,fire,shanxia-g1,qs-yjb,2026-01-05 09:00,2026-01-05 09:05,2026-01-05 09:10,2026-01-05 09:15,"
    "2026-01-05 09:40,2026-01-05 09:50,2026-01-05 10:00,13800000001",  # closed within the hour: on time
    "T002,秸秆焚烧,fire,shanxia-g1,qs-yjb,2026-01-06 09:00,2026-01-06 09:05,2026-01-06 09:10,,"
    "2026-01-06 10:30,,2026-01-06 11:00,",  # closed late (no 签收 or 核查 times in the old system)
    "T003,电动车充电起火,fire,shanxia-g1,qs-yjb,2026-01-07 09:00,2026-01-07 09:05,2026-01-07 09:10,"
    "2026-01-07 09:20,2026-01-07 09:50,,,",  # fed back, not closed: due
    "T004,烟雾报警,fire,shanxia-g1,qs-yjb,2026-01-08 09:00,2026-01-08 09:05,2026-01-08 09:10,,,,,",  # overdue
    "T005,垃圾焚烧,fire,shanxia-g1,,2026-01-09 09:00,2026-01-09 09:05,,,,,,",  # accepted only
    "T006,咨询,fire,shanxia-g1,,2026-01-10 09:00,,,,,,,",  # reported only: not a 立案 case
    "T007,无此网格,fire,nowhere-g9,qs-yjb,2026-01-11 09:00,,,,,,,",
    "T008,时间倒置,fire,shanxia-g1,qs-yjb,2026-01-12 09:00,2026-01-12 09:05,2026-01-12 09:10,,"
    "2026-01-12 10:00,,2026-01-12 09:30,",
    "T009,时间不对,fire,shanxia-g1,,昨天,,,,,,,",
    "T010,无部门,fire,shanxia-g1,,2026-01-13 09:00,2026-01-13 09:05,2026-01-13 09:10,,,,,",
    "T001,重复,fire,shanxia-g1,qs-yjb,2026-01-05 09:00,,,,,,,",
]


def month_file(tmp_path: Path) -> Path:
    path = tmp_path / "old-system-2026-01.csv"
    path.write_bytes(("\r\n".join([HEADER, *ROWS]) + "\r\n").encode("gb18030"))
    return path


async def count(db: Database) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(CaseRow)) or 0)


async def test_a_month_comes_in_with_its_times_once(database: Database, tmp_path: Path) -> None:
    site = load_file(demo_path(), installed())
    data = month_file(tmp_path).read_bytes()
    importer = CaseImport(site, database)
    dry = await importer.run(data)
    assert dry.dry_run and await count(database) == 0
    assert (dry.count("create"), dry.count("exists"), dry.count("rejected")) == (6, 1, 4)
    assert dry.warnings == ["columns ignored: 来电号码"]
    reasons = {r.ticket: r.reason for r in dry.rows if r.outcome == "rejected"}
    assert "nowhere-g9" in reasons["T007"]
    assert "closed_at" in reasons["T008"] and "before" in reasons["T008"]
    assert "昨天" in reasons["T009"]
    assert "department" in reasons["T010"]
    stages = {r.ticket: r.stage for r in dry.rows if r.outcome == "create"}
    assert stages == {"T001": "closed", "T002": "closed", "T003": "feedback", "T004": "dispatched",
                      "T005": "accepted", "T006": "reported"}  # fmt: skip

    done = await importer.run(data, dry_run=False)
    assert done.count("create") == 6 and await count(database) == 6
    async with database.sessions() as session:
        row = await session.get(CaseRow, "QINGSHUI-IMP-T001")
        assert row is not None
        case = to_case(row)
        query = select(CaseEventRow).where(CaseEventRow.case_id == "QINGSHUI-IMP-T001").order_by(CaseEventRow.at)
        events = list(await session.scalars(query))
    assert [e.action for e in events] == ["report", "accept", "dispatch", "claim", "feedback", "verify", "pass_check"]
    assert events[0].at == cst(2026, 1, 5, 9) and events[-1].at == cst(2026, 1, 5, 10)
    assert case.department == "qs-yjb" and case.dispatched_at == cst(2026, 1, 5, 9, 10)
    assert case.due_at == cst(2026, 1, 5, 10, 10)  # fire: one hour from 分拨

    again = await importer.run(data, dry_run=False)
    assert again.count("create") == 0 and again.count("exists") == 7 and await count(database) == 6

    stats = Statistics(database, SlaPolicy.from_config(site.governance, site.site.timezone))
    [month] = await stats.indicators(cst(2026, 2, 1), start=cst(2026, 1, 1), end=cst(2026, 2, 1))
    # 立案 5 (not T006), 应结案 4 (T001-T003 handled, T004 overdue), 结案 2, 按期结案 1 (T001)
    assert (month.opened, month.due, month.closed, month.closed_on_time) == (5, 4, 2, 1)
    assert month.close_rate == 0.5 and month.on_time_rate == 0.25


async def test_unreadable_files_are_refused(database: Database) -> None:
    importer = CaseImport(load_file(demo_path(), installed()), database)
    with pytest.raises(ImportFileError, match="case number column"):
        await importer.run("标题,类别\n x,fire\n".encode())
    with pytest.raises(ImportFileError, match="empty"):
        await importer.run(b"")


def test_the_command_runs_dry_then_applies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.setenv("SHARPEYE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cases.db'}")
    path = month_file(tmp_path)
    assert main(["cases", "import", str(path), "-c", str(demo_path())]) == 1  # rows were rejected
    out = capsys.readouterr().out
    assert "would create 6, already there 1, rejected 4 (dry run" in out and "warning: columns ignored" in out
    assert main(["cases", "import", str(path), "-c", str(demo_path()), "--apply"]) == 1
    assert "created 6" in capsys.readouterr().out
    main(["cases", "import", str(path), "-c", str(demo_path()), "--apply"])
    assert "created 0, already there 7" in capsys.readouterr().out


async def test_an_xlsx_export_with_date_cells_comes_in_the_same(database: Database, tmp_path: Path) -> None:
    import csv
    import io
    from datetime import datetime

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    for n, values in enumerate(csv.reader(io.StringIO("\n".join([HEADER, *ROWS[:6]])))):
        cells: list[object] = list(values)
        if n:  # the times as real date cells, as spreadsheet programs keep them
            cells = [datetime.strptime(v, "%Y-%m-%d %H:%M") if len(v) == 16 and v[4] == "-" else v for v in values]
        sheet.append(cells)
    buffer = io.BytesIO()
    book.save(buffer)
    site = load_file(demo_path(), installed())
    importer = CaseImport(site, database)
    done = await importer.run(buffer.getvalue(), dry_run=False)
    assert (done.count("create"), done.count("rejected")) == (6, 0), done.rows
    stats = Statistics(database, SlaPolicy.from_config(site.governance, site.site.timezone))
    [month] = await stats.indicators(cst(2026, 2, 1), start=cst(2026, 1, 1), end=cst(2026, 2, 1))
    assert (month.opened, month.due, month.closed, month.closed_on_time) == (5, 4, 2, 1)
    with pytest.raises(ImportFileError, match="XLSX"):
        await importer.run(b"PK\x03\x04 not really a workbook")
