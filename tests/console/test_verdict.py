"""研判 in Debian's Chromium against a real hub: an alarm of a rule that asks for a verdict shows 待研判 with its
buttons; 误报 with a reason picked from the site's list stops it, 确认立案 opens its case, which the console shows
once the hub says it is open."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.sync_api import Browser, Dialog, Page, expect

from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.console.conftest import HubServer, console_settings, sign_in
from tests.e2e.test_verification import verifying_site
from tests.helpers import Publisher, wait_for

expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def verifying_hub(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server_session: EmbeddedRedis,
    mqtt_broker_session: EmbeddedMosquitto,
) -> Iterator[HubServer]:
    settings = console_settings(tmp_path_factory, redis_server_session, mqtt_broker_session)
    with HubServer(settings, verifying_site()) as server:
        yield server


@pytest.fixture(scope="module")
def page(browser: Browser, verifying_hub: HubServer) -> Page:
    context = browser.new_context(viewport={"width": 1600, "height": 900}, locale="zh-CN", timezone_id="Asia/Shanghai")
    page = context.new_page()
    sign_in(page, verifying_hub.url)
    return page


def raise_alarm(url: str, seq: int, zone: str) -> None:
    publisher = Publisher(url)
    try:
        # above any other test's sequence numbers: this site's messages queued for the hub's session by earlier tests
        # arrive first, and an older reading than the last applied one is ignored
        publisher.publish("sharpeye/fence/fence-reservoir/event", {"seq": int(time.time() * 1000) + seq,
                          "ts": datetime.now(UTC).isoformat(),
                          "event": "alarm", "cause": "intrusion", "zone": zone})  # fmt: skip
    finally:
        publisher.close()


def row_of(page: Page, place: str) -> Any:
    return page.locator("#alarm-rows tr", has_text=place)


def test_false_alarm_and_confirmation_from_the_console(
    page: Page, verifying_hub: HubServer, mqtt_broker_session: EmbeddedMosquitto
) -> None:
    answers: list[str] = []
    prompts: list[str] = []

    def answer(dialog: Dialog) -> None:
        prompts.append(dialog.message)
        dialog.accept(answers.pop(0))

    page.on("dialog", answer)
    raise_alarm(mqtt_broker_session.url, 1, "z1")
    row = row_of(page, "水库北侧围栏")
    expect(row.locator(".verdict")).to_have_text("待研判")
    answers.append("3")  # the third reason of the site's list: 小动物
    row.locator("button[data-act=false_alarm]").click()
    expect(row.locator(".verdict")).to_have_text("误报")
    expect(row.locator("button[data-act=confirm]")).to_have_count(0)
    assert "树木晃动" in prompts[-1] and "小动物" in prompts[-1]

    raise_alarm(mqtt_broker_session.url, 2, "z2")
    second = row_of(page, "水库东侧围栏")
    expect(second.locator(".verdict")).to_have_text("待研判")
    answers.append("画面可见两人翻越")
    second.locator("button[data-act=confirm]").click()
    # the hub answers at once and opens the case just after; the console opens it when the hub says it is open
    expect(page.locator("#cases")).to_be_visible()
    expect(page.locator("#case-detail")).to_contain_text("围界入侵报警：山下水库围界主机 / 水库东侧围栏")
    hub = verifying_hub.hubs[0]
    assert hub.intake.created == 1 and hub.intake.verified == 1  # the false alarm opened none
    page.click("#nav button[data-view=alarms]")
    expect(second.locator(".verdict")).to_have_text("已确认")
    # the intake keeps both verdicts in SQL from their notifications, just after the answers
    wait_for(lambda: hub.verification.recorded >= 2, what="both verdicts recorded")
    page.click("#nav button[data-view=stats]")
    expect(page.locator("#stats-body h3.false-alarms")).to_contain_text("误报统计")
    expect(page.locator("#stats-body h3.false-alarms")).to_contain_text("(1)")
    expect(page.locator("#stats-body .false-grid")).to_contain_text("小动物")
    expect(page.locator("#stats-body .false-grid")).to_contain_text("山下水库围界主机")
    precision = page.locator("#stats-body section.precision")
    expect(precision.locator("h3")).to_contain_text("研判准确率")
    expect(precision.locator("tr", has_text="山下水库围界主机")).to_contain_text("50%")
