"""批量立案/派遣 in Debian's Chromium against a real hub: cases ticked in the list are accepted, then dispatched, in
one step each; a case the step does not fit is refused on its own, with the flow's reason, and the others go on."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.console.conftest import ADMIN_PASSWORD, HubServer, sign_in

expect.set_options(timeout=15_000)


def admin(server: HubServer) -> dict[str, str]:
    token = httpx.post(f"{server.url}/api/auth/token",
                       data={"username": "admin", "password": ADMIN_PASSWORD}).json()["access_token"]  # fmt: skip
    return {"Authorization": f"Bearer {token}"}


def reported(server: HubServer, title: str) -> str:
    body = {"title": title, "category": "dispute", "org_unit": "hedong-g1", "description": "批量测试"}
    made = httpx.post(f"{server.url}/api/reports", json=body, headers=admin(server))
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def case(server: HubServer, case_id: str) -> dict[str, Any]:
    found: dict[str, Any] = httpx.get(f"{server.url}/api/cases/{case_id}", headers=admin(server)).json()["case"]
    return found


@pytest.fixture(scope="module")
def page(browser: Browser, hub_server: HubServer) -> Page:
    context = browser.new_context(viewport={"width": 1600, "height": 900}, locale="zh-CN", timezone_id="Asia/Shanghai")
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, hub_server.url)
    return page


def test_cases_ticked_in_the_list_are_accepted_then_dispatched(page: Page, hub_server: HubServer) -> None:
    tag = uuid.uuid4().hex[:6]
    ids = [reported(hub_server, f"占道经营 {tag} {n}") for n in range(3)]
    done = httpx.post(f"{hub_server.url}/api/cases/{ids[2]}/actions", json={"action": "accept"},
                      headers=admin(hub_server))  # fmt: skip
    assert done.status_code == 200  # accepted already: 批量立案 does not fit it
    page.click("#nav button[data-view=cases]")
    for case_id in ids:
        expect(page.locator(f"#case-rows tr[data-case='{case_id}'] input[data-choose]")).to_be_visible()
    expect(page.locator("#case-bulk")).to_be_hidden()
    for case_id in ids:
        page.locator(f"#case-rows tr[data-case='{case_id}'] input[data-choose]").check()
    expect(page.locator("#case-bulk .bulk-count")).to_have_text("已选 3")
    expect(page.locator("#case-detail")).not_to_contain_text(ids[2])  # ticking a box does not open the case
    page.click("#case-bulk button[data-bulk=accept]")
    refused = page.locator("#case-bulk-result li")
    expect(refused).to_have_count(1)
    expect(refused).to_have_attribute("data-refused", ids[2])
    assert refused.locator(".reason").inner_text()  # the flow says why
    assert [case(hub_server, i)["stage"] for i in ids] == ["accepted"] * 3
    expect(page.locator("#case-bulk")).to_be_hidden()  # the selection is spent

    page.locator("#case-select-all").check()  # every case the list can act on in bulk: these three
    expect(page.locator("#case-bulk .bulk-count")).to_have_text("已选 3")
    page.click("#case-bulk button[data-bulk=dispatch]")
    expect(page.locator("#case-bulk-result li")).to_have_count(0)
    stages = [case(hub_server, i) for i in ids]
    assert [c["stage"] for c in stages] == ["dispatched"] * 3 and all(c["department"] for c in stages), stages
    for case_id in ids:
        row = page.locator(f"#case-rows tr[data-case='{case_id}']")
        expect(row).to_contain_text("派遣")
        expect(row.locator("input[data-choose]")).to_have_count(0)  # nothing left to do in bulk
