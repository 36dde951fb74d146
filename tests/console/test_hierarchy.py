"""上报上级 in Debian's Chromium against two real hubs (a town hub and the district hub above it, processes linked by
signed uplinks both ways): the town's operator escalates an open case from its detail with a note; its history
shows the escalation and how it stands (sent, then taken by the district with the district's case and stage, the
district's actions as lines of their own); the district's console lists it among the cases lower hubs escalated,
and a hub with no upper hub offers no such button."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Dialog, Page, expect

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis, free_port
from tests.cluster.node import PASSWORD, Node
from tests.cluster.test_hierarchy import hub_site, uplink
from tests.console.conftest import sign_in
from tests.helpers import wait_for

expect.set_options(timeout=20_000)

REASON = "涉及多个部门，需区级协调"


@pytest.fixture
def hubs(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> Iterator[tuple[Node, Node, str]]:
    """(town, district, the town's site id), each hub with its own key space and database."""
    town_port, district_port = free_port(), free_port()
    town_id, district_id = f"town{uuid.uuid4().hex[:6]}", f"dist{uuid.uuid4().hex[:6]}"
    town_site = hub_site(tmp_path, town_id, {"uplinks": [uplink("district", district_port)],
                                             "hierarchy": {"upper": {"uplink": "district"}}})  # fmt: skip
    district_site = hub_site(
        tmp_path, district_id,
        {"uplinks": [uplink("town", town_port)],
         "hierarchy": {"lowers": [{"site": town_id, "uplink": "town", "org_unit": "hedong"}]}},
    )  # fmt: skip
    nodes: list[Node] = []
    try:
        for name, site, port in (("town", town_site, town_port), ("district", district_site, district_port)):
            own = tmp_path / name
            own.mkdir()
            nodes.append(Node(own, name, site, redis_server.url, mqtt_broker.url, Keys(f"{keys.prefix}{name}"),
                              port=port, SHARPEYE_DATABASE_URL=f"sqlite+aiosqlite:///{own / 'cases.db'}"))  # fmt: skip
        yield nodes[0], nodes[1], town_id
    finally:
        for node in nodes:
            node.stop()


def open_case(page: Page, case_id: str) -> None:
    page.click("#nav button[data-view=cases]")
    page.locator(f"#case-rows tr[data-case='{case_id}']").click()
    expect(page.locator("#case-detail h2")).to_contain_text(case_id)


def test_escalate_up_from_the_console(browser: Browser, hubs: tuple[Node, Node, str]) -> None:
    town, district, town_id = hubs
    report = {"title": "河东桥下堆放易燃物", "category": "fire", "org_unit": "hedong-g1", "severity": "major",
              "description": "网格员巡查发现"}  # fmt: skip
    lower = town.post("/api/reports", report)["id"]
    other = town.post("/api/reports", {**report, "title": "另一件"})["id"]

    # a context per hub: both are on 127.0.0.1, and cookies do not tell ports apart
    context, upper_context = browser.new_context(locale="zh-CN"), browser.new_context(locale="zh-CN")
    try:
        page = context.new_page()
        sign_in(page, town.base, password=PASSWORD)
        open_case(page, lower)
        button = page.locator("#case-detail [data-escalate-up]")
        expect(button).to_have_text("上报上级")

        # cancelling the note sends nothing
        page.once("dialog", lambda dialog: dialog.dismiss())
        button.click()
        expect(button).to_be_visible()
        assert town.get("/api/hierarchy")["escalated"] == []

        notes: list[str] = []

        def answer(dialog: Dialog) -> None:
            notes.append(dialog.message)
            dialog.accept(REASON)

        page.once("dialog", answer)
        button.click()
        assert notes == ["上报原因（上级将看到）"]
        expect(page.locator("#case-detail [data-escalate-up]")).to_have_count(0)  # escalated once
        expect(page.locator("#case-detail .history")).to_contain_text(f"上报上级: {REASON}")
        standing = page.locator("#case-detail .escalation")
        expect(standing).to_have_attribute("data-escalation", re.compile("^(sending|sent)$"))  # queued, or sent
        (record,) = town.get("/api/hierarchy")["escalated"]
        assert (record["case_id"], record["reason"]) == (lower, REASON)

        # --- the district: its inbox lists the escalated case --------------------------------------------
        (link,) = wait_for(lambda: district.get("/api/hierarchy")["linked"], timeout=20,
                           what="the escalated case opened at the district")  # fmt: skip
        upper = link["case_id"]
        page.reload()
        expect(page.locator("#nav")).to_be_visible()
        open_case(page, lower)
        expect(standing).to_have_attribute("data-escalation", "sent")  # delivered; the district has not acted yet
        expect(standing).to_contain_text("已上报，待上级处置")
        upper_page = upper_context.new_page()
        sign_in(upper_page, district.base, password=PASSWORD)
        upper_page.click("#nav button[data-view=cases]")
        inbox = upper_page.locator("#hub-inbox")
        expect(inbox).to_contain_text("下级上报 (1)")
        row = inbox.locator(f"tr[data-inbox-case='{upper}']")
        expect(row).to_contain_text(town_id)
        expect(row).to_contain_text(lower)
        expect(row.locator("td").nth(3)).to_have_text("上报")  # its stage at the district
        row.locator("a").click()
        expect(upper_page.locator("#case-detail h2")).to_contain_text(upper)
        expect(upper_page.locator("#case-detail .escalated-from")).to_have_text(f"{town_id} {lower}")
        expect(upper_page.locator("#case-detail [data-escalate-up]")).to_have_count(0)  # no hub above the district

        # --- the district acts; the town's history shows it and how the escalation stands ------------------
        district.post(f"/api/cases/{upper}/actions", {"action": "accept"})
        district.post(f"/api/cases/{upper}/actions", {"action": "dispatch"})

        def upper_actions() -> list[dict[str, Any]]:
            lines = [e for e in town.get(f"/api/cases/{lower}")["history"] if e["action"] == "upper_action"]
            return lines if len(lines) >= 2 else []

        wait_for(upper_actions, timeout=20, what="the district's accept and dispatch in the town case")
        page.reload()
        expect(page.locator("#nav")).to_be_visible()
        open_case(page, lower)
        expect(standing).to_have_attribute("data-escalation", "acknowledged")
        expect(standing).to_contain_text(f"上级已受理: {upper}")
        lines = page.locator("#case-detail .history tr.from-hub")
        expect(lines).to_have_count(2)
        expect(lines.first).to_contain_text("上级处置")
        expect(lines.first).to_contain_text("accept")

        # another open case of the town can still be escalated; the district's inbox is not the town's
        open_case(page, other)
        expect(page.locator("#case-detail [data-escalate-up]")).to_be_visible()
        expect(page.locator("#hub-inbox")).to_have_count(0)
    finally:
        context.close()
        upper_context.close()
