"""Case work in Debian's Chromium against a real hub. 批量立案/派遣: cases ticked in the list are accepted, then
dispatched, in one step each; a case the step does not fit is refused on its own, with the flow's reason, and the
others go on. 协办: the centre adds a co-handling department to a dispatched case, that department's handler feeds
back from their own console, and the case closes on the lead's verified feedback."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Dialog, Page, expect

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


def first_sign_in(browser: Browser, server: HubServer, username: str, initial: str, chosen: str) -> Page:
    """A user the admin made signs in and chooses their own password (an admin-set one is changed at once)."""
    page = browser.new_context(viewport={"width": 1600, "height": 900}, locale="zh-CN").new_page()
    page.goto(server.url + "/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", initial)
    page.click("form#login button")
    page.fill("input[name=new_password]", chosen)
    page.fill("input[name=confirm_password]", chosen)
    page.click("form#password-change button")
    expect(page.locator("#nav")).to_be_visible()
    return page


def act(server: HubServer, case_id: str, **body: object) -> None:
    done = httpx.post(f"{server.url}/api/cases/{case_id}/actions", json=body, headers=admin(server))
    assert done.status_code == 200, done.text


def test_a_co_handling_department_feeds_back_from_its_console(
    browser: Browser, page: Page, hub_server: HubServer
) -> None:
    made = httpx.post(
        f"{hub_server.url}/api/users",
        headers=admin(hub_server),
        json={
            "username": "pcs-duty",
            "password": "Initial-Pass-1",
            "role": "department_handler",
            "department": "qs-pcs",
        },
    )
    assert made.status_code == 201, made.text
    case_id = reported(hub_server, f"小区门口占道经营并发生纠纷 {uuid.uuid4().hex[:6]}")
    act(hub_server, case_id, action="accept")
    act(hub_server, case_id, action="dispatch", department="hd-jwh", note="社区牵头")

    prompts: list[str] = []
    replies = ["qs-pcs", "派出所协助调解"]

    def reply(dialog: Dialog) -> None:
        prompts.append(dialog.message)
        dialog.accept(replies.pop(0) if replies else "")

    desk = page.context.new_page()  # the centre's own session, its prompts answered here
    desk.on("dialog", reply)
    desk.goto(hub_server.url + "/")
    desk.click("#nav button[data-view=cases]")
    desk.locator(f"#case-rows tr[data-case='{case_id}']").click()
    desk.locator("#case-detail button[data-case-act=assist]").click()
    detail = desk.locator("#case-detail")
    expect(detail.locator(".assist")).to_have_count(1)
    expect(detail.locator(".assist")).to_contain_text("待反馈")
    assert "协办部门" in prompts[0]

    police = first_sign_in(browser, hub_server, "pcs-duty", "Initial-Pass-1", "Pcs-Duty-Pass-2")
    # a department handler's console: only what the role may use, opening on 案件, no alarm stream
    expect(police.locator("#nav button[data-view]:visible")).to_have_text(["案件", "统计", "大屏"])
    expect(police.locator("#cases")).to_be_visible()
    expect(police.locator("#link")).to_be_hidden()
    row = police.locator(f"#case-rows tr[data-case='{case_id}']")
    expect(row).to_be_visible()  # the co-handling department sees the case
    row.click()
    expect(police.locator("#case-detail button[data-case-act]")).to_have_count(1)  # only its own step
    police.on("dialog", lambda dialog: dialog.accept("已调解纠纷，无治安问题"))
    police.locator("#case-detail button[data-case-act=assist_feedback]").click()
    expect(police.locator("#case-detail .assist")).to_contain_text("已调解纠纷，无治安问题")
    police.context.close()

    act(hub_server, case_id, action="claim")
    act(hub_server, case_id, action="feedback", note="摊位已迁移，双方和解")
    act(hub_server, case_id, action="verify")
    act(hub_server, case_id, action="pass_check")
    desk.locator(f"#case-rows tr[data-case='{case_id}']").click()
    expect(detail.locator(".case-stage")).to_have_text("结案")
    expect(detail.locator(".assist")).to_contain_text("已调解纠纷，无治安问题")
    desk.close()
