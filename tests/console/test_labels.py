"""Labels come from where they are defined: the drivers (kinds, reading kinds) and governance (case stages,
actions, history events), served by GET /api/kinds and /api/labels; the console shows what the hub serves.
Markup is escaped by default (the ``html`` tag of api/static/html.js)."""

from __future__ import annotations

import json
from typing import Any

import httpx
from playwright.sync_api import Browser, Route, expect
from sharpeye.governance.case import STAGE_LABELS, Stage
from sharpeye.governance.flow import ACTION_LABELS, EVENT_LABELS, Action
from sharpeye.ingest.registry import installed

from tests.console.conftest import ADMIN_PASSWORD, HubServer


def get(server: HubServer, path: str) -> Any:
    token = httpx.post(f"{server.url}/api/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
    response = httpx.get(server.url + path, headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    response.raise_for_status()
    return response.json()


def test_kinds_and_case_labels_are_served(hub_server: HubServer) -> None:
    kinds = {k["kind"]: k for k in get(hub_server, "/api/kinds")}
    assert set(kinds) == set(installed().kinds)
    assert kinds["fence"]["label"] == {"zh": "周界", "en": "Fence"}
    assert kinds["fence"]["readings"]["fence.intrusion"] == {"zh": "入侵", "en": "intrusion"}
    assert kinds["camera"]["transport"] == "video"

    labels = get(hub_server, "/api/labels")
    assert labels["kind"]["water_level"] == {"zh": "水位计", "en": "Water level"}
    assert labels["reading"]["thermal.fire"]["zh"] == "火点"
    assert set(labels["stage"]) == {s.value for s in Stage}
    assert labels["stage"]["merged"] == {"zh": "已并单", "en": "merged"} == STAGE_LABELS[Stage.merged]
    assert set(labels["action"]) == {a.value for a in Action}
    assert labels["action"]["fail_check"] == ACTION_LABELS[Action.fail_check]
    assert {"report", "merged_from", "alarm_added", "supervise"} <= set(labels["case_event"])
    assert labels["case_event"] == EVENT_LABELS
    assert httpx.get(f"{hub_server.url}/api/labels").status_code == 401, "signed-in users only"


def test_console_shows_the_labels_the_hub_serves(browser: Browser, hub_server: HubServer) -> None:
    page = browser.new_context(locale="zh-CN").new_page()
    page.goto(hub_server.url + "/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("form#login button")
    page.click("#nav button[data-view=devices]")
    fence_row = page.locator("#device-rows tr[data-device='fence-reservoir']")
    expect(fence_row).to_contain_text("周界")
    page.click("#lang")
    expect(fence_row).to_contain_text("Fence")
    page.click("#lang")
    expect(fence_row).to_contain_text("周界")

    # the console has no copy of its own: change the hub's answer and the page follows
    def relabel(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        body["kind"]["fence"] = {"zh": "电子围栏", "en": "Electric fence"}
        route.fulfill(response=response, body=json.dumps(body))

    page.route("**/api/labels", relabel)
    page.reload()
    page.click("#nav button[data-view=devices]")
    expect(fence_row).to_contain_text("电子围栏")
    expect(fence_row).not_to_contain_text("周界")

    # without labels (an older hub, an error) the console still works and shows the raw keys
    page.unroute("**/api/labels")
    page.route("**/api/labels", lambda route: route.fulfill(status=500, body="boom"))
    page.reload()
    page.click("#nav button[data-view=devices]")
    expect(fence_row.locator("td").nth(2)).to_have_text("fence")
    expect(page.locator("#nav button[data-view=devices]")).to_have_text("设备")
    page.context.close()


def test_html_template_escapes_by_default(browser: Browser, hub_server: HubServer) -> None:
    page = browser.new_context().new_page()
    page.goto(hub_server.url + "/")
    result = page.evaluate(
        """async () => {
          const { html } = await import("/static/html.js");
          const evil = '<img src=x onerror="alert(1)">';
          const row = html`<td title="${evil}">${evil}</td>`;
          const nested = html`<tr>${[row, html`<td>${"a&b"}</td>`]}</tr>`;
          return { row: String(row), nested: String(nested), empty: String(html`${null}${undefined}${false}`) };
        }"""
    )
    assert result["row"] == (
        '<td title="&lt;img src=x onerror=&quot;alert(1)&quot;&gt;">&lt;img src=x onerror=&quot;alert(1)&quot;&gt;</td>'
    )
    assert result["nested"].startswith("<tr><td title=") and result["nested"].endswith("<td>a&amp;b</td></tr>")
    assert result["empty"] == ""
    page.context.close()
