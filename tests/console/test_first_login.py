"""A user whose password was set by someone else must choose a new one at first sign-in, in the console."""

from __future__ import annotations

import httpx
from playwright.sync_api import Browser, expect

from tests.console.conftest import ADMIN_PASSWORD, HubServer


def test_first_sign_in_requires_a_new_password(browser: Browser, hub_server: HubServer) -> None:
    token = httpx.post(f"{hub_server.url}/api/auth/token",
                       data={"username": "admin", "password": ADMIN_PASSWORD}).json()["access_token"]  # fmt: skip
    created = httpx.post(f"{hub_server.url}/api/users", headers={"Authorization": f"Bearer {token}"},
                         json={"username": "duty", "password": "Initial-Pass-1", "role": "operator"})  # fmt: skip
    assert created.status_code == 201 and created.json()["must_change_password"] is True

    page = browser.new_context(locale="zh-CN").new_page()
    page.goto(hub_server.url + "/")
    page.fill("input[name=username]", "duty")
    page.fill("input[name=password]", "Initial-Pass-1")
    page.click("form#login button")
    form = page.locator("form#password-change")
    expect(form).to_be_visible()
    expect(page.locator("#nav")).to_be_hidden()
    form.locator("input[name=new_password]").fill("Duty-Chosen-Pass-9")
    form.locator("input[name=confirm_password]").fill("Duty-Chosen-Pass-8")
    form.locator("button").click()
    expect(page.locator("#password-error")).to_have_text("两次输入的密码不一致")
    form.locator("input[name=confirm_password]").fill("Duty-Chosen-Pass-9")
    form.locator("button").click()
    expect(page.locator("#nav")).to_be_visible()
    again = httpx.post(f"{hub_server.url}/api/auth/token", data={"username": "duty", "password": "Duty-Chosen-Pass-9"})
    assert again.json()["must_change_password"] is False
    page.context.close()
