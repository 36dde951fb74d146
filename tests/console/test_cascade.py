"""The upper platforms in the console (Chromium): a hub cascaded to the upper-platform simulator shows it in the 设备
view's 上级平台 table as registered with its keepalives answered; the platform's Alarm and MobilePosition
subscriptions appear there as they are made and go when ended, and an alarm raised at the hub (a fence over MQTT)
reaches the platform as a NOTIFY in its subscription and counts as forwarded. The endpoint behind it refuses a role
without ``devices:read``."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import Browser, expect
from sharpeye.config.loader import demo_path, load_text
from sharpeye.ingest.registry import installed
from sharpeye.simulators.gb28181.upper import UpperPlatformSimulator, UpperSubscription

from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from sharpeye.role import Role
from tests.console.conftest import ADMIN_PASSWORD, HubServer, console_settings, sign_in
from tests.console.test_ptz import LoopThread
from tests.helpers import Publisher, env_secret, wait_for

UPPER_ID = "34010000002000000001"
PASSWORD = "city-platform-secret"


@pytest.fixture(scope="module")
def cascade_site(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server_session: EmbeddedRedis,
    mqtt_broker_session: EmbeddedMosquitto,
) -> Iterator[tuple[HubServer, UpperPlatformSimulator, LoopThread]]:
    sims = LoopThread()
    upper = UpperPlatformSimulator(UPPER_ID, PASSWORD, t1=0.1)
    sims.call(upper.start)
    try:
        settings = console_settings(tmp_path_factory, redis_server_session, mqtt_broker_session)
        data: dict[str, Any] = yaml.safe_load(demo_path().read_text(encoding="utf-8"))
        data["gb28181"]["cascades"] = [
            {"id": "city", "upper_id": UPPER_ID, "upper_host": "127.0.0.1", "upper_port": upper.port,
             "local_port": 0, "password": env_secret(PASSWORD), "keepalive_interval_s": 1, "retry_s": 0.5}
        ]  # fmt: skip
        site = load_text(yaml.safe_dump(data, allow_unicode=True), installed())
        with HubServer(settings, site) as server:
            yield server, upper, sims
    finally:
        sims.call(upper.stop)
        sims.close()


def _token(server: HubServer, user: str, password: str) -> dict[str, str]:
    token = httpx.post(f"{server.url}/api/auth/token", data={"username": user, "password": password})
    assert token.status_code == 200, token.text
    return {"Authorization": f"Bearer {token.json()['access_token']}"}


def test_cascade_table_shows_registration_subscriptions_and_forwarded_alarms(
    browser: Browser,
    cascade_site: tuple[HubServer, UpperPlatformSimulator, LoopThread],
    mqtt_broker_session: EmbeddedMosquitto,
) -> None:
    server, upper, sims = cascade_site
    platform_id = server.hubs[0].site.gb28181.sip_id if server.hubs[0].site.gb28181 else ""
    wait_for(lambda: platform_id in upper.lowers and upper.lowers[platform_id].keepalives >= 1, timeout=20,
             what="the hub registered to the upper platform and its keepalive answered")  # fmt: skip
    page = browser.new_context(locale="zh-CN", viewport={"width": 1600, "height": 1000}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, server.url)
    page.click("#nav button[data-view=devices]")
    row = page.locator("#cascade-rows tr[data-cascade=city]")
    expect(page.locator("#cascades h3")).to_have_text("上级平台（级联）")
    expect(row).to_contain_text(UPPER_ID)
    expect(row).to_contain_text(f"udp:127.0.0.1:{upper.port}")
    expect(row.locator("td[data-registered='1']")).to_contain_text("已注册")
    expect(row.locator(".cascade-subs")).to_have_text("无")
    admin = _token(server, "admin", ADMIN_PASSWORD)
    view = httpx.get(f"{server.url}/api/gb28181/cascades", headers=admin).json()
    (city,) = view["platforms"]
    assert view["running"] and city["registered"] and city["last_keepalive"] and city["registered_since"]
    expect(row.locator("td.num").first).to_have_text(str(city["channels"]))

    # the platform subscribes: both show up (the table is read again every 5 s)
    alarms: UpperSubscription = sims.call(lambda: upper.open_subscription(platform_id, "Alarm"))
    positions: UpperSubscription = sims.call(
        lambda: upper.open_subscription(platform_id, "MobilePosition", fields=[("Interval", 5)])
    )
    assert (alarms.status, positions.status) == (200, 200)
    expect(row.locator("[data-event=Alarm]")).to_have_text("报警", timeout=15_000)
    expect(row.locator("[data-event=MobilePosition]")).to_have_text("移动位置")

    # a fence alarm at the hub reaches the platform in its Alarm subscription, and is counted as forwarded
    publisher = Publisher(mqtt_broker_session.url)
    try:
        publisher.publish("sharpeye/fence/fence-school/event", {"seq": int(time.time() * 1000), "event": "alarm",
                          "ts": datetime.now(UTC).isoformat(), "cause": "intrusion", "zone": "z3"})  # fmt: skip
    finally:
        publisher.close()
    wait_for(lambda: upper.notified("Alarm", alarms.call_id), timeout=20, what="the alarm NOTIFY")
    notify = upper.notified("Alarm", alarms.call_id)[0]
    assert notify.body is not None and notify.body.cmd_type == "Alarm" and notify.state.startswith("active")
    expect(row.locator("[data-alarms]")).to_have_text(re.compile(r"^[1-9]\d*$"), timeout=15_000)

    # ended: gone from the table
    assert sims.call(lambda: upper.unsubscribe(alarms)) == 200
    expect(row.locator("[data-event=Alarm]")).to_have_count(0, timeout=15_000)
    expect(row.locator("[data-event=MobilePosition]")).to_have_count(1)
    page.click("#lang")
    expect(page.locator("#cascades h3")).to_have_text("Upper platforms (cascade)")
    expect(row.locator("td[data-registered='1']")).to_contain_text("registered")
    assert errors == [], errors
    page.context.close()


def test_cascade_endpoint_needs_devices_read(
    cascade_site: tuple[HubServer, UpperPlatformSimulator, LoopThread],
) -> None:
    server, _, _ = cascade_site
    assert httpx.get(f"{server.url}/api/gb28181/cascades").status_code == 401
    admin = _token(server, "admin", ADMIN_PASSWORD)
    handler = {"username": "cascade-handler", "password": "handler-Password-1", "role": Role.handler.value}
    made = httpx.post(f"{server.url}/api/users", headers=admin, json=handler)
    assert made.status_code == 201, made.text
    first = _token(server, "cascade-handler", "handler-Password-1")
    passwords = {"current_password": "handler-Password-1", "new_password": "handler-Password-2"}
    changed = httpx.post(f"{server.url}/api/auth/password", headers=first, json=passwords)
    assert changed.status_code in (200, 204), changed.text
    refused = httpx.get(f"{server.url}/api/gb28181/cascades", headers=_token(server, "cascade-handler",
                                                                               "handler-Password-2"))  # fmt: skip
    assert refused.status_code == 403, refused.text
