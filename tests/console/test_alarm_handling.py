"""The alarm pop-up in Debian's Chromium against a real hub: the procedure's steps ticked one by one, taking the
alarm and handing it to the next shift."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Browser, Page, expect

from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.console.conftest import HubServer, console_settings, sign_in
from tests.e2e.test_alarm_handling import site_with_procedure
from tests.helpers import Publisher

expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def procedure_hub(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server_session: EmbeddedRedis,
    mqtt_broker_session: EmbeddedMosquitto,
) -> Iterator[HubServer]:
    settings = console_settings(tmp_path_factory, redis_server_session, mqtt_broker_session)
    with HubServer(settings, site_with_procedure()) as server:
        yield server


def test_procedure_ticked_and_alarm_handed_over(
    browser: Browser, procedure_hub: HubServer, mqtt_broker_session: EmbeddedMosquitto
) -> None:
    context = browser.new_context(viewport={"width": 1600, "height": 900}, locale="zh-CN", timezone_id="Asia/Shanghai")
    page: Page = context.new_page()
    answers: list[str] = []
    page.on("dialog", lambda dialog: dialog.accept(answers.pop(0) if answers else ""))
    sign_in(page, procedure_hub.url)

    publisher = Publisher(mqtt_broker_session.url)
    try:
        # The hub has an MQTT session of its own (hub_settings): no other test's messages of the demo site are queued
        # for it, so this is the only alarm of the fence.
        publisher.publish("sharpeye/fence/fence-reservoir/event", {"seq": 1, "ts": datetime.now(UTC).isoformat(),
                          "event": "alarm", "cause": "intrusion", "zone": "z1"})  # fmt: skip
    finally:
        publisher.close()
    row = page.locator("#alarm-rows tr", has_text="水库北侧围栏")
    expect(row).to_have_count(1)
    row.click()
    detail = page.locator("#alarm-detail")
    expect(detail.locator("h2")).to_contain_text("围界入侵报警")
    expect(detail.locator("h3", has_text="处置预案")).to_contain_text("周界入侵处置预案")
    steps = detail.locator("ol.procedure input[type=checkbox]")
    expect(steps).to_have_count(3)
    expect(detail.locator("p.contacts a")).to_have_attribute("href", "tel:0523-1234567")
    answers.append("已调阅，可见两人")
    steps.nth(0).check()
    expect(steps.nth(0)).to_be_disabled()
    expect(detail.locator("ol.procedure li").nth(0)).to_contain_text("admin")
    expect(detail.locator(".history")).to_contain_text("已调阅，可见两人")

    detail.locator("button[data-act=take]").click()
    expect(detail.locator(".alarm-owner")).to_have_text("admin")
    answers.extend(["", "交下一班跟进"])  # nobody named: the next shift
    detail.locator("button[data-act=hand]").click()
    expect(detail.locator(".alarm-owner")).to_have_text("无人接手")
    expect(detail.locator(".history")).to_contain_text("交下一班跟进")
    context.close()
