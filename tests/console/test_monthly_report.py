"""导出月报 on the statistics page: the month chosen there comes back as a workbook and as a PDF."""

from __future__ import annotations

import io
from datetime import datetime
from zoneinfo import ZoneInfo

from openpyxl import load_workbook
from playwright.sync_api import Browser, expect

from tests.console.conftest import HubServer, sign_in


def test_the_monthly_report_button_downloads_the_months_report(browser: Browser, hub_server: HubServer) -> None:
    # a browser far from the site's zone: the month offered is still the site's (Asia/Shanghai)
    page = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900},
                               timezone_id="America/Los_Angeles").new_page()  # fmt: skip
    sign_in(page, hub_server.url)
    page.click("#nav button[data-view=stats]")
    month = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m")
    expect(page.locator("#report-month")).to_have_value(month)
    with page.expect_download() as xlsx:
        page.click("#stats-body button[data-report=xlsx]")
    assert xlsx.value.suggested_filename == f"月报-{month}.xlsx"
    summary = {
        r[0]: r[1]
        for r in load_workbook(io.BytesIO(xlsx.value.path().read_bytes()))["概览"].iter_rows(values_only=True)
        if r[0]
    }
    assert summary["统计期间"] == f"{int(month[:4])}年{int(month[5:])}月" and summary["统计范围"] == "全部"
    with page.expect_download() as pdf:
        page.click("#stats-body button[data-report=pdf]")
    assert pdf.value.path().read_bytes().startswith(b"%PDF")
    page.context.close()
