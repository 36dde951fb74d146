"""PTZ from the console (Chromium): the demo's GB/T 28181 camera on the map gets a PTZ panel; holding a button or an
arrow key turns the simulated camera's head and releasing it stops it; the speed slider sets the speed; presets are
set, listed, called and deleted. A viewer (no ``ptz:control``) gets no panel."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import Browser, Page, expect
from pydantic import SecretStr
from sharpeye.config.loader import demo_path, load_text
from sharpeye.ingest.credential import device_password
from sharpeye.ingest.gb28181.ptz import decode
from sharpeye.ingest.registry import installed
from sharpeye.simulators.gb28181.device import DeviceFleet, SimDevice

from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from sharpeye.role import Role
from tests.console.conftest import ADMIN_PASSWORD, HubServer, console_settings, sign_in
from tests.helpers import Publisher, wait_for

SECRET = "console-ptz-device-secret-0123456789"
CAMERA = "cam-village-gb"


class LoopThread:
    """An event loop in a thread, for the simulated NVR beside the hub's own loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="sim-loop", daemon=True)
        self.thread.start()

    def call(self, fn: Callable[[], Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(fn(), self.loop).result(30)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def ptz_site(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server_session: EmbeddedRedis,
    mqtt_broker_session: EmbeddedMosquitto,
) -> Iterator[tuple[HubServer, SimDevice]]:
    settings = console_settings(tmp_path_factory, redis_server_session, mqtt_broker_session)
    settings = settings.model_copy(update={"device_secret": SecretStr(SECRET)})
    data: dict[str, Any] = yaml.safe_load(demo_path().read_text(encoding="utf-8"))
    rule = next(r for r in data["rules"] if r["id"] == "fence-intrusion")
    rule.setdefault("linkage", {})["cameras"] = [CAMERA]  # the fence's alarms bring the GB camera up too
    site = load_text(yaml.safe_dump(data, allow_unicode=True), installed())
    nvr_config = next(d for d in site.devices if d.kind == "gb28181")
    channels = [(c.id, c.name or c.id) for c in getattr(nvr_config, "channels", [])]
    nvr = SimDevice(id=nvr_config.id, password=device_password(SECRET, nvr_config.id, "sip"), kind="nvr",
                    channel_count=len(channels), channels=channels, keepalive_s=2)  # fmt: skip
    with HubServer(settings, site) as server:
        hub = server.hubs[0]
        sims = LoopThread()
        fleet = DeviceFleet([nvr], platform_id=site.gb28181.sip_id if site.gb28181 else "",
                            platform_port=hub.gb_platform_port, t1=0.1)  # fmt: skip
        sims.call(fleet.start)
        try:
            assert hub.gb_platform is not None
            platform = hub.gb_platform
            wait_for(lambda: len(platform.channels()) == len(channels), timeout=20, what="the NVR's catalog")
            yield server, nvr
        finally:
            sims.call(fleet.stop)
            sims.close()


def open_camera(page: Page) -> None:
    page.click("#nav button[data-view=map]")
    page.locator(f"#map-marks [data-device={CAMERA}]").click()
    expect(page.locator("#map-device .player")).to_be_visible()


def test_ptz_panel_moves_and_presets(browser: Browser, ptz_site: tuple[HubServer, SimDevice]) -> None:
    server, nvr = ptz_site
    channel = "34020000001310000102"
    head = nvr.control.head(channel)
    page = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 1000}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, server.url, "admin", ADMIN_PASSWORD)
    open_camera(page)
    panel = page.locator(f"#map-device .ptz[data-camera={CAMERA}]")
    expect(panel).to_be_visible()
    expect(panel.locator(".ptz-presets")).to_contain_text("暂无预置位")
    expect(panel.locator("[data-ptz=zoom_in]")).to_have_text("放大")

    # hold the button: the head turns right while held, and stops when released
    right = panel.locator("[data-ptz=right]")
    right.hover()
    page.mouse.down()
    wait_for(lambda: head.position()["pan"] > 5, timeout=10, what="the head turning while the button is held")
    assert head.moving
    page.mouse.up()
    wait_for(lambda: not head.moving, timeout=5, what="the head stopping on release")
    stopped = head.position()["pan"]

    # keyboard: arrow up tilts while held; + zooms
    panel.locator(".ptz-speed").fill("255")
    panel.focus()
    page.keyboard.down("ArrowUp")
    wait_for(lambda: head.position()["tilt"] > 5, timeout=10, what="tilting up on the arrow key")
    page.keyboard.up("ArrowUp")
    wait_for(lambda: not head.moving, timeout=5, what="stopping on key up")
    moves = [decode(c) for c in head.commands if decode(c).kind == "move" and decode(c).tilt]
    assert moves[-1].tilt == 1 and moves[-1].tilt_speed == 255  # the slider's speed
    page.keyboard.down("+")
    wait_for(lambda: head.position()["zoom"] > 1.5, timeout=10, what="zooming in on +")
    page.keyboard.up("+")
    wait_for(lambda: not head.moving, timeout=5, what="zoom stopping")

    # presets: set 3 here, turn away, call it back, delete it
    panel.locator(".ptz-preset-number").fill("3")
    panel.locator("[data-preset-act=set]").click()
    expect(panel.locator("li[data-preset='3']")).to_contain_text("预置位3")
    here = head.position()
    assert here["pan"] == stopped
    panel.locator("[data-ptz=left]").hover()
    page.mouse.down()
    wait_for(lambda: head.position()["pan"] != here["pan"], timeout=10, what="turning away")
    page.mouse.up()
    wait_for(lambda: not head.moving, timeout=5, what="stopped away")
    panel.locator("li[data-preset='3'] [data-preset-act=call]").click()
    wait_for(lambda: head.position()["pan"] == here["pan"], timeout=5, what="back at preset 3")
    panel.locator("li[data-preset='3'] [data-preset-act=delete]").click()
    expect(panel.locator("li[data-preset='3']")).to_have_count(0)
    assert head.presets == {}
    assert errors == [], errors
    page.context.close()


def test_no_panel_without_the_permission(browser: Browser, ptz_site: tuple[HubServer, SimDevice]) -> None:
    server, _ = ptz_site
    token = httpx.post(f"{server.url}/api/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
    admin = {"Authorization": f"Bearer {token.json()['access_token']}"}
    viewer = {"username": "ptz-viewer", "password": "viewer-Password-1", "role": Role.viewer.value}
    made = httpx.post(f"{server.url}/api/users", headers=admin, json=viewer)
    assert made.status_code == 201, made.text
    first = httpx.post(f"{server.url}/api/auth/token", data={"username": "ptz-viewer", "password": "viewer-Password-1"})
    bearer = {"Authorization": f"Bearer {first.json()['access_token']}"}
    passwords = {"current_password": "viewer-Password-1", "new_password": "viewer-Password-2"}
    changed = httpx.post(f"{server.url}/api/auth/password", headers=bearer, json=passwords)
    assert changed.status_code in (200, 204), changed.text
    page = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 1000}).new_page()
    sign_in(page, server.url, "ptz-viewer", "viewer-Password-2")
    open_camera(page)
    expect(page.locator("#map-device .ptz")).to_have_count(0)
    page.context.close()


def test_ptz_from_the_alarm_detail(browser: Browser, ptz_site: tuple[HubServer, SimDevice],
                                   mqtt_broker_session: EmbeddedMosquitto) -> None:  # fmt: skip
    """An alarm whose linked cameras include a GB/T 28181 camera offers its PTZ in the alarm's detail."""
    server, nvr = ptz_site
    head = nvr.control.head("34020000001310000102")
    page = browser.new_context(locale="zh-CN", viewport={"width": 1600, "height": 1000}).new_page()
    sign_in(page, server.url, "admin", ADMIN_PASSWORD)
    publisher = Publisher(mqtt_broker_session.url)
    try:
        seq = int(time.time() * 1000)  # above any earlier test's sequence numbers for this site
        publisher.publish("sharpeye/fence/fence-school/event", {"seq": seq, "ts": datetime.now(UTC).isoformat(),
                          "event": "alarm", "cause": "intrusion", "zone": "z3"})  # fmt: skip
    finally:
        publisher.close()
    row = page.locator("#alarm-rows tr", has_text="学校东侧围墙")
    expect(row).to_have_count(1)
    panel = page.locator(f"#alarm-detail .ptz[data-camera={CAMERA}]")
    for _ in range(3):  # a newer alarm popping up (the quiet demo devices going offline) may replace the detail
        row.click()
        expect(panel).to_be_visible()
        panel.locator(".ptz-preset-number").fill("12")
        panel.locator("[data-preset-act=set]").click()
        try:
            wait_for(lambda: 12 in head.presets, timeout=3, what="preset 12 set from the alarm detail")
            break
        except AssertionError:
            continue
    assert 12 in head.presets
    expect(page.locator("#alarm-detail li[data-preset='12']")).to_be_visible()
    page.context.close()


def test_device_control_panel(browser: Browser, ptz_site: tuple[HubServer, SimDevice]) -> None:
    """The devices view's control buttons: the NVR is guarded, unguarded, made to record, checked for its clock and
    rebooted (after a confirmation); its channel records; the fence controller is armed. Each reaches the simulated
    device (or the fence's command topic, seen in the audit log); a viewer sees none of the command buttons."""
    server, nvr = ptz_site
    state = nvr.control
    page = browser.new_context(locale="zh-CN", viewport={"width": 1600, "height": 1000}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, server.url, "admin", ADMIN_PASSWORD)
    page.click("#nav button[data-view=devices]")
    row = page.locator(f"#device-rows tr[data-device='{nvr.id}']")
    expect(row.locator("[data-control=guard]")).to_have_text("布防")
    row.locator("[data-control=guard]").click()
    wait_for(lambda: state.guard, timeout=10, what="the NVR guarded (布防)")
    expect(page.locator("#toast")).to_contain_text("布防 已执行")
    row.locator("[data-control=unguard]").click()
    wait_for(lambda: not state.guard, timeout=10, what="the NVR unguarded (撤防)")
    row.locator("[data-control=record_start]").click()
    wait_for(lambda: nvr.id in state.recording, timeout=10, what="the NVR recording")
    channel_row = page.locator(f"#device-rows tr[data-device='{CAMERA}']")
    expect(channel_row.locator("[data-control=teleboot]")).to_have_count(0)  # a channel is not rebooted
    channel_row.locator("[data-control=record_start]").click()
    wait_for(lambda: "34020000001310000102" in state.recording, timeout=10, what="the channel recording")
    row.locator("[data-control=time]").click()
    expect(page.locator("#toast")).to_contain_text("设备时间偏差")
    fence = page.locator("#device-rows tr[data-device='fence-school']")
    expect(fence.locator("[data-control=teleboot]")).to_have_count(0)
    fence.locator("[data-control=arm]").click()
    expect(page.locator("#toast")).to_contain_text("已下发")
    row.locator("[data-control=teleboot]").click()  # the confirmation is accepted
    wait_for(lambda: state.reboots == 1, timeout=10, what="the NVR rebooted")
    token = httpx.post(f"{server.url}/api/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
    admin = {"Authorization": f"Bearer {token.json()['access_token']}"}
    audit = httpx.get(f"{server.url}/api/audit", headers=admin, params={"action": "fence.arming"}).json()
    assert audit and audit[0]["target"] == "fence-school" and audit[0]["details"]["command"] == "arm"
    assert errors == [], errors
    page.context.close()

    viewer = {"username": "control-viewer", "password": "viewer-Password-1", "role": Role.viewer.value}
    assert httpx.post(f"{server.url}/api/users", headers=admin, json=viewer).status_code == 201
    first = httpx.post(f"{server.url}/api/auth/token", data={"username": viewer["username"],
                                                             "password": "viewer-Password-1"})  # fmt: skip
    bearer = {"Authorization": f"Bearer {first.json()['access_token']}"}
    passwords = {"current_password": "viewer-Password-1", "new_password": "viewer-Password-2"}
    assert httpx.post(f"{server.url}/api/auth/password", headers=bearer, json=passwords).status_code in (200, 204)
    page = browser.new_context(locale="zh-CN", viewport={"width": 1600, "height": 1000}).new_page()
    sign_in(page, server.url, viewer["username"], "viewer-Password-2")
    page.click("#nav button[data-view=devices]")
    viewer_row = page.locator(f"#device-rows tr[data-device='{nvr.id}']")
    expect(viewer_row.locator("[data-control=time]")).to_be_visible()  # reading the clock is allowed
    expect(page.locator("#device-rows [data-control=guard]")).to_have_count(0)
    expect(page.locator("#device-rows [data-control=arm]")).to_have_count(0)
    page.context.close()
