"""月报 over a real hub: cases reported, handled, closed and rated through the API, then the month's report as XLSX
(read back with openpyxl: every figure equals the stats API's for the same period and scope) and as PDF (read back
with pdftotext: the Chinese headings, names and figures are there); the caller's scope; bad periods refused; the
export audited."""

from __future__ import annotations

import io
import subprocess
import uuid
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest
from openpyxl import load_workbook
from sharpeye.api.permission import Role
from sharpeye.governance import monthly_report
from sharpeye.governance.indicator import COLUMNS
from sharpeye.governance.monthly_report import ReportError, day_period, find_cjk_font, month_period

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.conftest import HubClient, app_client, hub_settings
from tests.field.sms_gateway import SmsGateway, site_with_sms

PW = "Monthly-Report-Password-1"
ZONE = ZoneInfo("Asia/Shanghai")
anonymous = {"Authorization": ""}


@pytest.fixture(scope="module")
def gateway() -> Iterator[SmsGateway]:
    with SmsGateway() as g:
        yield g


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, redis_server_session: EmbeddedRedis,
           mqtt_broker_session: EmbeddedMosquitto, gateway: SmsGateway) -> Iterator[HubClient]:  # fmt: skip
    keys = Keys(f"mr{uuid.uuid4().hex[:6]}")
    settings = hub_settings(tmp_path_factory.mktemp("monthly"), redis_server_session.url, mqtt_broker_session.url,
                            admin_password=PW, prefix=keys.prefix, node_id=keys.prefix)  # fmt: skip
    with app_client(settings, site_with_sms(gateway.url), sign_in=PW) as c:
        users = c.users
        assert c.portal is not None
        c.portal.call(lambda: users.add("hedong-op", PW, Role.operator, "hedong"))
        c.portal.call(lambda: users.add("jwh", PW, Role.department_handler, None, department="hd-jwh"))
        c.portal.call(lambda: users.add("integrator", PW, Role.integrator))
        make_month(c, gateway)
        yield c


def login(client: HubClient, name: str) -> dict[str, str]:
    token = client.post("/api/auth/token", data={"username": name, "password": PW}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def act(client: HubClient, case_id: str, *actions: dict[str, str]) -> None:
    for action in actions:
        answer = client.post(f"/api/cases/{case_id}/actions", json=action)
        assert answer.status_code == 200, (action, answer.text)


CLOSE = ({"action": "claim"}, {"action": "feedback", "note": "已处置"}, {"action": "verify"}, {"action": "pass_check"})


def make_month(client: HubClient, gateway: SmsGateway) -> None:
    """Four grid workers' reports in two communities and three categories (two closed, one dispatched, one only
    accepted) and a resident's report, closed and rated 满意."""
    made = []
    for title, category, unit in (
        ("邻里噪音纠纷", "dispute", "hedong-g1"),
        ("占道经营", "city_appearance", "hedong-g2"),
        ("河道垃圾", "environment", "shanxia-g1"),
        ("宅基地纠纷", "dispute", "shanxia-g2"),
    ):
        answer = client.post("/api/reports", json={"title": title, "category": category, "org_unit": unit})
        assert answer.status_code == 201, answer.text
        made.append(answer.json()["id"])
    for case_id in made:
        act(client, case_id, {"action": "accept"})
    act(client, made[0], {"action": "dispatch"}, *CLOSE)
    act(client, made[1], {"action": "dispatch"}, *CLOSE)
    act(client, made[2], {"action": "dispatch"})
    phone = "13912345670"
    challenge = client.post("/api/public/challenges", json={"phone": phone}, headers=anonymous).json()
    ok, photo = cv2.imencode(".jpg", np.full((48, 64, 3), 90, np.uint8))
    assert ok
    form = {"phone": phone, "challenge_id": challenge["id"], "answer": gateway.code_for(phone),
            "category": "environment", "org_unit": "shanxia-g1", "description": "路边垃圾堆放", "lat": "30.1",
            "lon": "120.1"}  # fmt: skip
    resident = client.post("/api/public/reports", data=form, headers=anonymous,
                           files=[("photos", ("a.jpg", bytes(photo), "image/jpeg"))])  # fmt: skip
    assert resident.status_code == 201, resident.text
    dispatch = {"action": "dispatch", "department": "sx-cwh", "note": "村委会处置"}
    act(client, resident.json()["case_id"], {"action": "accept"}, dispatch, *CLOSE)
    rated = client.post(f"/api/public/receipts/{resident.json()['receipt']}/rating", headers=anonymous,
                        json={"satisfaction": "satisfied"})  # fmt: skip
    assert rated.status_code == 200, rated.text


def this_month() -> str:
    return datetime.now(ZONE).strftime("%Y-%m")


def stats(client: HubClient, month: str, who: dict[str, str] | None = None, by: str = "") -> list[dict[str, Any]]:
    period = month_period(month, "Asia/Shanghai")
    query = {"start": period.start.isoformat(), "end": period.end.isoformat(), **({"by": by} if by else {})}
    answer = client.get("/api/stats", params=query, headers=who or {})
    assert answer.status_code == 200, answer.text
    rows: list[dict[str, Any]] = answer.json()
    return rows


def sheet_rows(book: Any, title: str) -> list[list[Any]]:
    return [list(r) for r in book[title].iter_rows(values_only=True)]


def test_xlsx_figures_equal_the_stats_api(client: HubClient) -> None:
    month = this_month()
    answer = client.get("/api/reports/monthly", params={"month": month})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert f"sharpeye-report-{month}.xlsx" in answer.headers["content-disposition"]
    book = load_workbook(io.BytesIO(answer.content))
    assert book.sheetnames == ["概览", "按部门", "按网格", "按类别", "按日", "误报"]
    summary = {r[0]: r[1] for r in sheet_rows(book, "概览") if r and r[0]}
    total = stats(client, month)[0]
    assert total["opened"] == 5 and total["closed"] == 3 and total["rated"] == 1
    assert summary["统计期间"] == f"{int(month[:4])}年{int(month[5:])}月" and summary["统计范围"] == "全部"
    assert (summary["立案"], summary["结案"], summary["应结案"]) == (total["opened"], total["closed"], total["due"])
    assert summary["结案率(%)"] == total["close_rate"] and summary["按期结案率(%)"] == total["on_time_rate"]
    assert summary["满意率(%)"] == total["satisfaction_rate"] == 100.0
    assert summary["误报"] == 0 and summary["误报率(%)"] is None  # no alarm judged, none opened a case
    cameras = [d for d in client.get("/api/devices").json() if d["kind"] in ("camera", "gb28181")]
    online = sum(d["state"] == "online" for d in cameras)
    assert (summary["摄像机"], summary["摄像机在线"]) == (len(cameras), online) and len(cameras) == 5
    assert summary["摄像机在线率(%)"] == round(online * 100 / len(cameras), 2)
    for title, by in (("按部门", "department"), ("按网格", "org_unit"), ("按类别", "category")):
        rows = sheet_rows(book, title)
        assert rows[0][2:] == [label for _name, label in COLUMNS]
        expected = {r[by]: [r[name] for name, _l in COLUMNS] for r in stats(client, month, by=by)}
        assert {r[0]: r[2:] for r in rows[1:]} == expected, title
    names = {r[0]: r[1] for r in sheet_rows(book, "按网格")[1:]}
    assert names["hedong-g1"] == "河东第一网格"
    assert {r[0]: r[1] for r in sheet_rows(book, "按部门")[1:]}["hd-jwh"] == "河东社区居委会"
    assert {r[0]: r[1] for r in sheet_rows(book, "按类别")[1:]}["dispute"] == "矛盾纠纷"
    days = sheet_rows(book, "按日")[1:]
    assert sum(r[2] for r in days) == total["opened"] and days[0][0] == datetime.now(ZONE).strftime("%Y-%m-%d")
    audit = client.get("/api/audit", params={"action": "stats.export"}).json()
    assert any(e["details"].get("report") == "monthly" and e["details"].get("format") == "xlsx" for e in audit), audit


def test_a_scoped_caller_gets_the_report_of_their_unit(client: HubClient) -> None:
    month, hedong = this_month(), login(client, "hedong-op")
    book = load_workbook(
        io.BytesIO(client.get("/api/reports/monthly", params={"month": month}, headers=hedong).content)
    )
    summary = {r[0]: r[1] for r in sheet_rows(book, "概览") if r and r[0]}
    assert summary["统计范围"] == "河东社区" and summary["立案"] == stats(client, month, hedong)[0]["opened"] == 2
    assert {r[0] for r in sheet_rows(book, "按网格")[1:]} == {"hedong-g1", "hedong-g2"}
    assert summary["摄像机"] == 3  # the school gate's camera, the GB device and the village's camera


def test_a_department_sees_its_cases_and_no_alarm_or_camera_figures(client: HubClient) -> None:
    month, jwh = this_month(), login(client, "jwh")
    answer = client.get("/api/reports/monthly", params={"month": month}, headers=jwh)
    assert answer.status_code == 200, answer.text
    book = load_workbook(io.BytesIO(answer.content))
    summary = {r[0]: r[1] for r in sheet_rows(book, "概览") if r and r[0]}
    assert summary["统计范围"] == "河东社区居委会"
    assert summary["立案"] == stats(client, month, jwh)[0]["opened"] == 2  # the two hedong cases it was given
    assert {r[0] for r in sheet_rows(book, "按部门")[1:]} == {"hd-jwh"}
    assert summary["误报"] is None and summary["摄像机"] is None  # no alarms:read, no devices:read
    refused = client.get("/api/reports/monthly", params={"month": month}, headers=login(client, "integrator"))
    assert refused.status_code == 403


def test_pdf_has_the_chinese_headings_and_figures(client: HubClient, tmp_path: Path) -> None:
    month = this_month()
    answer = client.get("/api/reports/monthly", params={"month": month, "format": "pdf"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/pdf" and answer.content.startswith(b"%PDF")
    (tmp_path / "r.pdf").write_bytes(answer.content)
    text = subprocess.run(["pdftotext", "-layout", str(tmp_path / "r.pdf"), "-"], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip
    total = stats(client, month)[0]
    for heading in ("清水街道综治中心 社会治理月报", "一、总体指标", "二、立案与结案趋势（按日）", "三、按部门",
                    "四、按网格", "五、按类别", "六、误报与设备", "结案率", "按期结案率", "满意率", "误报率",
                    "摄像机在线率"):  # fmt: skip
        assert heading in text, heading
    for name in ("河东社区居委会", "山下村村委会", "河东第一网格", "山下第二网格", "矛盾纠纷", "环境保护"):
        assert name in text, name
    assert f"{total['close_rate']:g}%" in text and "100%" in text  # 结案率 and 满意率 as figures
    assert f"统计期间：{int(month[:4])}年{int(month[5:])}月" in text.replace(" ", "")


def test_any_period_and_bad_periods(client: HubClient) -> None:
    today = datetime.now(ZONE).date()
    answer = client.get("/api/reports/monthly", params={"from": today.isoformat(), "to": today.isoformat()})
    assert answer.status_code == 200, answer.text
    summary = {r[0]: r[1] for r in sheet_rows(load_workbook(io.BytesIO(answer.content)), "概览") if r and r[0]}
    assert summary["统计期间"] == f"{today} 至 {today}" and summary["立案"] == 5
    for params, reason in (({"month": "2026-13"}, "YYYY-MM"), ({}, "month=YYYY-MM"),
                           ({"month": "2026-01", "from": "2026-01-01", "to": "2026-01-02"}, "not both"),
                           ({"from": "2026-02-01", "to": "2026-01-01"}, "before"),
                           ({"from": "2024-01-01", "to": "2026-01-01"}, "at most 366 days"),
                           ({"month": "2026-01", "format": "doc"}, "format")):  # fmt: skip
        refused = client.get("/api/reports/monthly", params=params)
        assert refused.status_code == 422 and reason in refused.text, (params, refused.text)
    assert client.get("/api/reports/monthly", params={"month": "2026-01"}, headers=anonymous).status_code == 401


def test_month_bounds_are_local_midnights() -> None:
    december = month_period("2026-12", "Asia/Shanghai")
    assert december.start.isoformat() == "2026-11-30T16:00:00+00:00"
    assert december.end.isoformat() == "2026-12-31T16:00:00+00:00" and december.last == date(2026, 12, 31)
    assert (december.title, december.span) == ("社会治理月报", "2026年12月（2026-12-01 至 2026-12-31）")
    week = day_period(date(2026, 12, 1), date(2026, 12, 7), "Asia/Shanghai")
    assert (week.title, week.span, week.slug) == (
        "社会治理统计报告",
        "2026-12-01 至 2026-12-07",
        "2026-12-01_2026-12-07",
    )


def test_without_a_cjk_font_the_error_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "broken.ttc").write_bytes(b"ttcf" + bytes(60))  # a damaged collection is passed over
    monkeypatch.setattr(monthly_report, "_FONT_FILES", ["/nonexistent/font.ttc", str(tmp_path / "broken.ttc")])
    monkeypatch.setattr(
        monthly_report, "_fontconfig_files", lambda: ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"]
    )
    with pytest.raises(ReportError, match="fonts-noto-cjk"):
        find_cjk_font.__wrapped__()


def test_json_figures_for_the_command_screen(client: HubClient) -> None:
    month = this_month()
    answer = client.get("/api/reports/monthly", params={"month": month, "format": "json"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["total"] == stats(client, month)[0]
    assert {r["key"]: r["opened"] for r in body["by_category"]} == {
        r["category"]: r["opened"] for r in stats(client, month, by="category")
    }
    assert {r["key"]: r["name"] for r in body["by_category"]}["environment"] == "环境保护"
    assert body["cameras"] == 5 and body["false_alarm_rate"] is None
