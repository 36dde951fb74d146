"""Every view of the console renders without a script error or a refused request, in Chinese and in English, and
again after signing out and in (the live views end before the session does)."""

from __future__ import annotations

from playwright.sync_api import Browser, expect

from tests.console.conftest import ADMIN_PASSWORD, HubServer

VIEWS = ["alarms", "wall", "playback", "map", "cases", "devices", "stats", "uplinks", "screen"]


def test_every_view_without_script_errors(browser: Browser, hub_server: HubServer) -> None:
    page = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(hub_server.url + "/")

    def sign_in() -> None:
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", ADMIN_PASSWORD)
        page.click("form#login button")
        expect(page.locator("#nav")).to_be_visible()

    def visit_all(nav_word: str) -> None:
        for view in VIEWS:
            page.click(f"#nav button[data-view={view}]")
            expect(page.locator(f"section#{view}")).to_be_visible()
        expect(page.locator("#nav button[data-view=devices]")).to_have_text(nav_word)
        expect(page.locator("#device-rows tr")).not_to_have_count(0)
        expect(page.locator("#wall-grid .tile")).not_to_have_count(0)

    sign_in()
    visit_all("设备")
    page.click("#lang")
    visit_all("Devices")
    page.click("#lang")

    page.click("#logout")
    expect(page.locator("form#login")).to_be_visible()
    expect(page.locator("#nav")).to_be_hidden()
    expect(page.locator("#wall-grid .tile")).to_have_count(0)  # the wall's players were closed
    sign_in()
    visit_all("设备")
    assert errors == [], errors
    page.context.close()
