"""The residents' page (/report) in Chromium on a phone: a code through a real SMS gateway, a report with a photo
and the position, the receipt followed, the case closed at the centre and rated from the phone; a forged receipt
and too many codes refused with their reasons on the page."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.console.conftest import ADMIN_PASSWORD, HubServer, console_settings
from tests.console.test_field_app import HERE, PHONE, photo_file
from tests.field.sms_gateway import SmsGateway, site_with_sms

RESIDENT = "13912340000"


@pytest.fixture(scope="module")
def gateway() -> Iterator[SmsGateway]:
    with SmsGateway() as g:
        yield g


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, redis_server_session: EmbeddedRedis,
           mqtt_broker_session: EmbeddedMosquitto, gateway: SmsGateway) -> Iterator[HubServer]:  # fmt: skip
    settings = console_settings(tmp_path_factory, redis_server_session, mqtt_broker_session)
    with HubServer(settings, site_with_sms(gateway.url, challenges_per_phone_per_hour=3)) as hub:
        yield hub


@pytest.fixture
def phone(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, locale="zh-CN", geolocation=HERE,
                                  permissions=["geolocation"])  # fmt: skip
    yield context
    context.close()


def test_a_resident_reports_follows_and_rates_a_case(phone: BrowserContext, server: HubServer,
                                                     gateway: SmsGateway) -> None:  # fmt: skip
    page = phone.new_page()
    page.goto(server.url + "/report")
    expect(page.locator("h1")).to_have_text("群众随手拍")
    page.fill("input[name=phone]", RESIDENT)
    page.click("button[data-action=challenge]")
    expect(page.get_by_test_id("sms-sent")).to_be_visible()
    page.fill("input[name=answer]", gateway.code_for(RESIDENT))
    page.click("button[data-category=environment]")
    page.select_option("select[name=org_unit]", "shanxia-g1")
    page.fill("textarea[name=description]", "村口河道有垃圾漂浮")
    page.set_input_files("input[name=photos]", files=[photo_file(1200, 900)])  # type: ignore[list-item]
    expect(page.locator(".report .thumbs img")).to_have_count(1)
    page.check("input[name=use_position]")
    expect(page.get_by_test_id("position")).to_contain_text("30.27410")
    page.click("form.report button[type=submit]")
    receipt = page.get_by_test_id("receipt")
    expect(receipt).to_have_text(__import__("re").compile(r"^[A-Z2-7]{4}(-[A-Z2-7]{4}){3}$"))
    page.click("button[data-action=lookup]")  # the receipt is filled in already
    expect(page.get_by_test_id("stage")).to_have_text("上报")
    admin = {"Authorization": "Bearer " + httpx.post(f"{server.url}/api/auth/token", data={
        "username": "admin", "password": ADMIN_PASSWORD}).json()["access_token"]}  # fmt: skip
    case_id = httpx.get(f"{server.url}/api/public/receipts/{receipt.inner_text()}").json()["case_id"]
    case = httpx.get(f"{server.url}/api/cases/{case_id}", headers=admin).json()["case"]
    assert case["source"] == "resident" and case["location"] == {"lat": HERE["latitude"], "lon": HERE["longitude"]}
    for action in ({"action": "accept"}, {"action": "dispatch", "department": "sx-cwh", "note": "村委会"},
                   {"action": "claim"}, {"action": "feedback", "note": "已打捞"}, {"action": "verify"},
                   {"action": "pass_check"}):  # fmt: skip
        assert httpx.post(f"{server.url}/api/cases/{case_id}/actions", json=action, headers=admin).status_code == 200
    page.click("button[data-action=lookup]")
    expect(page.get_by_test_id("stage")).to_have_text("结案")
    page.fill("input[name=comment]", "处理及时")
    page.click("button[data-rate=satisfied]")
    expect(page.get_by_test_id("rated")).to_contain_text("满意")
    expect(page.locator("button[data-rate]")).to_have_count(0)
    stats = httpx.get(f"{server.url}/api/stats", headers=admin).json()[0]
    assert stats["rated"] == 1 and stats["satisfaction_rate"] == 100.0


def test_the_page_shows_why_it_refuses(phone: BrowserContext, server: HubServer) -> None:
    page = phone.new_page()
    page.goto(server.url + "/report")
    page.fill("input[name=receipt]", "AAAA-BBBB-CCCC-DDDD")
    page.click("button[data-action=lookup]")
    expect(page.get_by_test_id("follow")).to_contain_text("no case has this receipt number")
    page.fill("input[name=phone]", "13800009999")
    for _ in range(3):
        with page.expect_response(lambda r: r.url.endswith("/api/public/challenges")) as sent:
            page.click("button[data-action=challenge]")
        assert sent.value.status == 201, sent.value.status
        expect(page.get_by_test_id("sms-sent")).to_be_visible()
    page.click("button[data-action=challenge]")  # the fourth code this hour
    expect(page.get_by_test_id("report-error")).to_contain_text("too many codes for this number")
    page.fill("input[name=phone]", "12345")
    page.click("button[data-action=challenge]")
    expect(page.get_by_test_id("report-error")).to_have_text("请填写正确的手机号")
