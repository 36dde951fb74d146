"""The statistics page shows the indicators computed by the hub, by department, and exports CSV."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from playwright.sync_api import Browser, expect

from tests.console.conftest import ADMIN_PASSWORD, HubServer
from tests.helpers import Publisher, wait_for


def test_statistics_page(browser: Browser, hub_server: HubServer, mqtt_broker_session: Any) -> None:
    pub = Publisher(mqtt_broker_session.url)
    event = {"seq": 1, "ts": datetime.now(UTC).isoformat(), "event": "alarm", "cause": "intrusion", "zone": "z1"}
    pub.publish("sharpeye/fence/fence-school/event", event)
    pub.close()
    # httpx's default 5 s read timeout is shorter than a busy CI machine's worst answer (a loaded run timed out here)
    token = httpx.post(f"{hub_server.url}/api/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD},
                       timeout=30)
    auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
    wait_for(lambda: httpx.get(f"{hub_server.url}/api/cases", headers=auth, timeout=30).json()["items"], what="a case")

    page = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900}).new_page()
    page.goto(hub_server.url + "/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("form#login button")
    page.click("#nav button[data-view=stats]")
    expect(page.locator(".kpis .kpi")).to_have_count(4)
    expect(page.locator("#stats-body")).to_contain_text("河东社区居委会")  # the department the case went to
    with page.expect_download() as download:
        page.click("#stats-body button[data-csv='by=department']")
    csv = download.value.path().read_text(encoding="utf-8-sig")
    assert csv.startswith("部门,立案") and "hd-jwh" in csv
    page.context.close()
