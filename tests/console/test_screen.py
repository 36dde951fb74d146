"""大屏 and 统计 in Chromium: ECharts served from the hub's data dir (installed by `sharpeye assets install`, no
CDN) draws the command screen's charts with the figures of the monthly report, and the statistics page's charts; a
hub without it says how to install it (and the statistics page keeps its SVG charts)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect

from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.console.conftest import ADMIN_PASSWORD, HubServer, console_settings, sign_in
from tests.helpers import Publisher, wait_for

INSTALLED = Path(os.environ.get("SHARPEYE_TEST_MODEL_DIR", "~/.cache/sharpeye-tests")).expanduser() / "assets"


@pytest.fixture(scope="module")
def screen_server(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server_session: EmbeddedRedis,
    mqtt_broker_session: EmbeddedMosquitto,
) -> Iterator[HubServer]:
    """A hub whose data dir holds ECharts, as `sharpeye assets install` leaves it (scripts/test.sh runs it)."""
    if not (INSTALLED / "echarts" / "dist" / "echarts.min.js").is_file():
        pytest.fail(f"ECharts is not in {INSTALLED}: run `sharpeye assets install --data-dir {INSTALLED.parent}`")
    settings = console_settings(tmp_path_factory, redis_server_session, mqtt_broker_session)
    for package in ("echarts", "leaflet", "leaflet.markercluster", "leaflet.heat"):  # charts, and the map panel
        shutil.copytree(INSTALLED / package, settings.data_dir / "assets" / package)
    with HubServer(settings) as server:
        yield server


@pytest.fixture(scope="module")
def one_case(screen_server: HubServer, mqtt_broker_session: Any) -> None:
    """A fence alarm at the school, and its case (today's only one)."""
    pub = Publisher(mqtt_broker_session.url)
    event = {"seq": 1, "ts": datetime.now(UTC).isoformat(), "event": "alarm", "cause": "intrusion", "zone": "z1"}
    pub.publish("sharpeye/fence/fence-school/event", event)
    pub.close()
    token = httpx.post(f"{screen_server.url}/api/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
    auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
    wait_for(lambda: httpx.get(f"{screen_server.url}/api/stats", headers=auth).json()[0]["opened"], what="a case")


def test_the_command_screen_draws_its_charts(
    browser: Browser, screen_server: HubServer, one_case: None, mqtt_broker_session: Any
) -> None:
    assert httpx.get(f"{screen_server.url}/assets/echarts/dist/echarts.min.js").status_code == 200

    # a browser far from the site's zone: the screen's days are still the site's (Asia/Shanghai)
    page = browser.new_context(locale="zh-CN", viewport={"width": 1600, "height": 1000},
                               timezone_id="America/Los_Angeles").new_page()  # fmt: skip
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, screen_server.url)
    page.click("#nav button[data-view=screen]")
    expect(page.locator("#screen-body .screen-chart canvas")).to_have_count(7)  # every panel drawn by ECharts
    assert page.evaluate("typeof window.echarts.init") == "function"
    expect(page.locator("[data-kpi=opened] strong")).to_have_text("1")  # the fence alarm's case, from the report
    expect(page.locator("[data-kpi=live] strong")).not_to_have_text("0")  # its alarm is not cleared
    expect(page.locator("#screen-body")).to_contain_text("综治指挥大屏")
    # 一张图: the site's plan on its bounds with the devices (and the case) placed on it, kept across redraws
    panel = page.locator("#screen-map-panel")
    expect(panel).to_be_visible()
    expect(panel.locator(".leaflet-container .geo-plan")).to_have_count(1)
    expect(panel.locator(".geo-mark").first).to_be_visible()
    # a day of data is still a line: 30 days on the axis, today's 1 among zeros (ECharts keeps its options)
    trend = page.evaluate(
        "() => { const c = window.echarts.getInstanceByDom(document.getElementById('screen-trend'));"
        " return c.getOption().series[0].data; }"
    )
    assert len(trend) == 30 and trend[-1] == 1 and sum(trend) == 1
    # a new alarm (another zone: another alarm and case) shows without waiting for the 30 s refresh
    pub = Publisher(mqtt_broker_session.url)
    event = {"seq": 2, "ts": datetime.now(UTC).isoformat(), "event": "alarm", "cause": "intrusion", "zone": "z2"}
    pub.publish("sharpeye/fence/fence-school/event", event)
    pub.close()
    expect(page.locator("[data-kpi=live] strong")).to_have_text("2", timeout=10_000)
    assert not errors, errors
    page.context.close()


def test_without_echarts_the_screen_says_how_to_install_it(browser: Browser, hub_server: HubServer) -> None:
    page = browser.new_context(locale="zh-CN").new_page()
    sign_in(page, hub_server.url)
    page.click("#nav button[data-view=screen]")
    expect(page.locator("#screen-body .screen-missing")).to_contain_text("sharpeye assets install")
    page.context.close()


def test_the_statistics_charts_are_drawn_by_echarts_when_installed(
    browser: Browser, screen_server: HubServer, one_case: None
) -> None:
    page = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900}).new_page()
    sign_in(page, screen_server.url)
    page.click("#nav button[data-view=stats]")
    expect(page.locator("#stats-trend canvas")).to_have_count(1)
    expect(page.locator("#stats-dept canvas")).to_have_count(1)
    expect(page.locator("#stats-body svg.chart")).to_have_count(0)  # the SVG fallback replaced
    # one day of cases is a peak at the end of a week of zeros, not a lone dot
    trend = page.evaluate(
        "() => window.echarts.getInstanceByDom(document.getElementById('stats-trend')).getOption().series[0].data"
    )
    assert len(trend) == 7 and trend[-1] >= 1 and trend[:-1] == [0] * 6
    page.context.close()


def test_a_department_handler_sees_the_screen_without_refused_requests(
    browser: Browser, screen_server: HubServer, one_case: None
) -> None:
    url = screen_server.url
    admin = httpx.post(f"{url}/api/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
    made = httpx.post(f"{url}/api/users", headers={"Authorization": f"Bearer {admin.json()['access_token']}"},
                      json={"username": "jwh", "password": "Initial-Pass-1", "role": "department_handler",
                            "department": "hd-jwh"})  # fmt: skip
    assert made.status_code == 201, made.text
    own = httpx.post(f"{url}/api/auth/token", data={"username": "jwh", "password": "Initial-Pass-1"})
    changed = httpx.post(f"{url}/api/auth/password", headers={"Authorization": f"Bearer {own.json()['access_token']}"},
                         json={"current_password": "Initial-Pass-1", "new_password": "Jwh-Handler-Pass-2"})  # fmt: skip
    assert changed.status_code == 204, changed.text
    page = browser.new_context(locale="zh-CN", viewport={"width": 1600, "height": 1000}).new_page()
    page.goto(url + "/")
    page.fill("input[name=username]", "jwh")
    page.fill("input[name=password]", "Jwh-Handler-Pass-2")
    page.click("form#login button")
    expect(page.locator("#nav button[data-view=screen]")).to_be_visible()
    refused: list[str] = []  # of the screen's own requests (the console's first view is not this role's)
    screen_calls = ("/api/alarms", "/api/reports", "/api/assets", "/assets/", "/api/ws/alarms")
    page.on("response", lambda r: refused.append(f"{r.status} {r.url}")
            if r.status >= 400 and any(c in r.url for c in screen_calls) else None)  # fmt: skip
    page.click("#nav button[data-view=screen]")
    expect(page.locator("#screen-body .screen-chart canvas")).to_have_count(7)
    expect(page.locator("[data-kpi=live] strong")).to_have_text("–")  # alarms are not theirs to see
    expect(page.locator("[data-kpi=camera_online_rate] strong")).to_have_text("–")
    assert refused == [], refused
    page.context.close()
