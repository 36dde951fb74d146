"""The governance panels in Debian's Chromium against a real hub: a 12345 hotline file is dry-run (the rejected rows
listed with their reasons, nothing written) then imported; the second report is merged (并单) into the first from
its merge proposals; the uplink whose receiver was down shows the case events as dead letters, and a replayed one
leaves the list and reaches the receiver once it is back."""

from __future__ import annotations

import http.server
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from sharpeye.config.governance import Uplink
from sharpeye.config.loader import demo_path, load_file
from sharpeye.governance.uplink import DELIVERY
from sharpeye.ingest.registry import installed

from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.console.conftest import ADMIN_PASSWORD, HubServer, console_settings, free_port, sign_in
from tests.helpers import env_secret, wait_for

expect.set_options(timeout=15_000)

TICKETS = """工单号,标题,类别,所属网格,诉求内容
T1001,楼上漏水,dispute,hedong-g1,邻里纠纷
T1002,楼上漏水又来了,dispute,hedong-g1,同一件事又打来
T1003,路灯坏了,city_appearance,nowhere-g9,
T1004,,dispute,hedong-g1,没有标题
""".encode()


class Receiver:
    """A webhook receiver on a fixed port, started only when the test says so."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.deliveries: list[str] = []
        received = self.deliveries

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append(self.headers.get(DELIVERY) or "")
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.handler = Handler
        self.server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> None:
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), self.handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port())
    yield r
    r.stop()


@pytest.fixture(scope="module")
def gov_server(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server_session: EmbeddedRedis,
    mqtt_broker_session: EmbeddedMosquitto,
    receiver: Receiver,
) -> Iterator[HubServer]:
    """The demo site with one uplink for case events, whose receiver is down: one attempt, then a dead letter."""
    site = load_file(demo_path(), installed())
    uplink = Uplink(id="city-platform", url=f"http://127.0.0.1:{receiver.port}/hook", secret=env_secret("s" * 32),
                    events=["case"], max_attempts=1, timeout_s=2)  # fmt: skip
    site = site.model_copy(update={"governance": site.governance.model_copy(update={"uplinks": [uplink]})})
    with HubServer(console_settings(tmp_path_factory, redis_server_session, mqtt_broker_session), site) as server:
        yield server


def api_get(server: HubServer, path: str) -> Any:
    token = httpx.post(f"{server.url}/api/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
    response = httpx.get(server.url + path, headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    response.raise_for_status()
    return response.json()


@pytest.fixture(scope="module")
def page(browser: Browser, gov_server: HubServer) -> Page:
    context = browser.new_context(viewport={"width": 1600, "height": 900}, locale="zh-CN", timezone_id="Asia/Shanghai")
    page = context.new_page()
    page.set_default_timeout(15_000)
    sign_in(page, gov_server.url)
    return page


def test_import_merge_and_replay(page: Page, gov_server: HubServer, receiver: Receiver, tmp_path: Path) -> None:
    shots = Path(os.environ.get("SHARPEYE_SCREENSHOT_DIR") or tmp_path)
    # (c) 12345 import: a dry run lists what would be created and every rejected row with its reason
    page.click("#nav button[data-view=cases]")
    box = page.locator("#hotline-import")
    expect(box).to_be_visible()
    box.locator("summary").click()
    box.locator("input[type=file]").set_input_files(
        {"name": "12345-工单.csv", "mimeType": "text/csv", "buffer": TICKETS}
    )
    expect(box.locator("[data-import=run]")).to_be_disabled()  # no import before a dry run
    box.locator("[data-import=dry]").click()
    expect(box.locator(".import-summary")).to_contain_text("将创建: 2")
    rejected = box.locator(".import-rejected tbody tr")
    expect(rejected).to_have_count(2)
    expect(rejected.nth(0)).to_contain_text("T1003")
    expect(rejected.nth(0).locator(".reason")).to_contain_text("no org unit 'nowhere-g9'")
    expect(rejected.nth(1)).to_contain_text("T1004")
    expect(rejected.nth(1).locator(".reason")).to_contain_text("title")
    assert api_get(gov_server, "/api/cases")["items"] == [], "a dry run writes nothing"
    page.screenshot(path=str(shots / "hotline-import.png"))

    box.locator("[data-import=run]").click()
    expect(box.locator(".import-summary")).to_contain_text("已创建: 2")
    links = box.locator(".import-created [data-case-link]")
    expect(links).to_have_count(2)
    first, second = links.nth(0).inner_text(), links.nth(1).inner_text()
    expect(page.locator("#case-rows tr")).to_have_count(2)

    # (a) the second report's merge proposals name the first; merging shows in its history
    links.nth(1).click()
    detail = page.locator("#case-detail")
    expect(detail.locator(".case-stage")).to_have_text("上报")
    proposal = detail.locator(f".merge-proposals tr[data-proposal='{first}']")
    expect(proposal).to_contain_text("楼上漏水")
    expect(proposal).to_contain_text("同一网格")
    page.screenshot(path=str(shots / "merge-proposals.png"))
    page.once("dialog", lambda dialog: dialog.accept())
    proposal.locator(f"button[data-merge-into='{first}']").click()
    expect(detail.locator(".case-stage")).to_have_text("已并单")
    merged_row = detail.locator(".history tbody tr", has_text="并单")
    expect(merged_row).to_have_count(1)
    expect(merged_row).to_contain_text("上报 → 已并单")
    expect(detail.locator(".merge-proposals")).to_have_count(0)
    target = api_get(gov_server, f"/api/cases/{first}")
    assert [h["action"] for h in target["history"]][-1] == "merged_from"
    assert api_get(gov_server, f"/api/cases/{second}")["case"]["merged_into"] == first

    # (b) uplinks: the case events met a receiver that was down and became dead letters
    wait_for(lambda: len(api_get(gov_server, "/api/uplinks/city-platform/dead-letters")) >= 3, what="dead letters")
    page.click("#nav button[data-view=uplinks]")
    panel = page.locator("#uplinks-body .uplink[data-uplink='city-platform']")
    letters = panel.locator(".dead-letters tbody tr")
    expect(letters.first).to_be_visible()
    count = letters.count()
    assert count >= 3
    expect(panel.locator(".uplink-dead")).to_have_text(str(count))
    replayed = letters.first.get_attribute("data-letter")
    assert replayed
    page.screenshot(path=str(shots / "uplinks.png"))
    receiver.start()
    letters.first.locator("button[data-replay]").click()
    expect(panel.locator(f"tr[data-letter='{replayed}']")).to_have_count(0)
    expect(letters).to_have_count(count - 1)
    wait_for(lambda: replayed in receiver.deliveries, what="the replayed delivery at the receiver")
    assert receiver.deliveries.count(replayed) == 1
    remaining = {d["id"] for d in api_get(gov_server, "/api/uplinks/city-platform/dead-letters")}
    assert replayed not in remaining and len(remaining) == count - 1

    # English strings for the new panels
    page.click("#lang")
    expect(page.locator("#nav button[data-view=uplinks]")).to_have_text("Uplinks")
    expect(panel.locator("button[data-replay]").first).to_have_text("Replay")
    page.click("#lang")


def test_viewer_sees_neither_import_nor_uplinks(browser: Browser, gov_server: HubServer) -> None:
    """Roles without the permission do not get the panels (and the hub refuses them: tests/access)."""
    token = httpx.post(f"{gov_server.url}/api/auth/token", data={"username": "admin", "password": ADMIN_PASSWORD})
    auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
    created = httpx.post(f"{gov_server.url}/api/users", headers=auth,
                         json={"username": "watcher", "password": "watcher-pass-123", "role": "viewer"})  # fmt: skip
    assert created.status_code in (200, 201), created.text
    page = browser.new_context(locale="zh-CN").new_page()
    page.goto(gov_server.url + "/")
    page.fill("input[name=username]", "watcher")
    page.fill("input[name=password]", "watcher-pass-123")
    page.click("form#login button")
    page.fill("input[name=new_password]", "watcher-pass-456")  # an admin-set password is changed at first sign-in
    page.fill("input[name=confirm_password]", "watcher-pass-456")
    page.click("form#password-change button")
    expect(page.locator("#nav")).to_be_visible()
    expect(page.locator("#nav button[data-view=stats]")).to_be_visible()
    expect(page.locator("#nav button[data-view=uplinks]")).to_be_hidden()
    page.click("#nav button[data-view=cases]")
    expect(page.locator("#hotline-import")).to_be_hidden()
    page.context.close()
