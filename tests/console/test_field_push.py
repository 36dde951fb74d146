"""任务提醒 in Debian's Chromium on a phone: a grid worker turns task notifications on in the field app (我的); a case
dispatched to their grid's team leaves the hub through a webpush uplink to task:assignees, to a local HTTP server
standing in for the push service, encrypted for the phone; handed to the field app's service worker (DevTools'
ServiceWorker.deliverPushMessage, as the phone's push client would), it shows the task, and the link it opens
(/field/?task=<case id>) shows that task. Headless Chromium reaches no push service, so the subscription is made by
the test (its own key pair) and posted through the field app's module, as in tests/console/test_push.py."""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from typing import Any

import http_ece
import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.sync_api import Browser, expect
from sharpeye.config.governance import Uplink
from sharpeye.config.loader import demo_path, load_file
from sharpeye.config.site import SiteConfig
from sharpeye.governance.push import b64url
from sharpeye.ingest.registry import installed

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.conftest import hub_settings
from tests.console.conftest import ADMIN_PASSWORD, HubServer
from tests.console.test_push import Receiver, push_service
from tests.helpers import wait_for

__all__ = ["push_service"]  # fixture
expect.set_options(timeout=15_000)
PHONE = {"width": 390, "height": 844}
WORKER, PASSWORD = "gw-push", "Grid-Worker-Push-7"


def site_with_task_push() -> SiteConfig:
    site = load_file(demo_path(), installed())
    uplink = Uplink(id="tasks", format="webpush", to=["task:assignees"], events=["case"], types=["case.dispatch"])
    governance = site.governance.model_copy(update={"uplinks": [*site.governance.uplinks, uplink]})
    return site.model_copy(update={"governance": governance})


@pytest.fixture(scope="module")
def task_hub(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server_session: EmbeddedRedis,
    mqtt_broker_session: EmbeddedMosquitto,
) -> Iterator[HubServer]:
    keys = Keys(prefix=f"tpush{os.getpid()}{datetime.now(UTC):%H%M%S%f}")
    settings = hub_settings(tmp_path_factory.mktemp("task-push"), redis_server_session.url, mqtt_broker_session.url,
                            admin_password=ADMIN_PASSWORD, prefix=keys.prefix, push_allow_http=True)  # fmt: skip
    with HubServer(settings, site_with_task_push()) as server:
        yield server


def admin(server: HubServer) -> dict[str, str]:
    token = httpx.post(f"{server.url}/api/auth/token",
                       data={"username": "admin", "password": ADMIN_PASSWORD}).json()["access_token"]  # fmt: skip
    return {"Authorization": f"Bearer {token}"}


def test_a_new_task_is_notified_on_the_workers_phone_and_opens_there(
    browser: Browser, task_hub: HubServer, push_service: ThreadingHTTPServer
) -> None:
    body = {"username": WORKER, "password": "Initial-Pass-1", "role": "grid_worker", "org_unit": "hedong-g1",
            "department": "hd-jwh"}  # fmt: skip
    assert httpx.post(f"{task_hub.url}/api/users", headers=admin(task_hub), json=body).status_code == 201
    context = browser.new_context(viewport=PHONE, is_mobile=True, locale="zh-CN")
    context.grant_permissions(["notifications"], origin=task_hub.url)
    page = context.new_page()
    page.goto(task_hub.url + "/field/")
    page.fill("input[name=username]", WORKER)
    page.fill("input[name=password]", "Initial-Pass-1")
    page.click("form.login button")
    page.fill("input[name=new_password]", PASSWORD)
    page.fill("input[name=confirm_password]", PASSWORD)
    page.click("form.password button")
    expect(page.locator("nav.tabs")).to_be_visible()

    page.click("nav.tabs button[data-tab=me]")
    button = page.get_by_test_id("push")
    expect(button).to_have_text("开启任务提醒")
    expect(page.get_by_test_id("push-status")).not_to_contain_text("未配置")  # the hub sends task notifications
    button.click()
    # headless Chromium reaches no push service: the app says it could not (a phone with one shows 已开启)
    expect(page.get_by_test_id("push-status")).to_contain_text(re.compile("开启失败|新任务会通知"))

    browser_key = ec.generate_private_key(ec.SECP256R1())
    auth = os.urandom(16)
    point = browser_key.public_key().public_bytes(serialization.Encoding.X962,
                                                  serialization.PublicFormat.UncompressedPoint)  # fmt: skip
    endpoint = f"http://127.0.0.1:{push_service.server_address[1]}/push/{WORKER}"
    subscription = {
        "endpoint": endpoint,
        "expirationTime": None,
        "keys": {"p256dh": b64url(point), "auth": b64url(auth)},
    }
    page.evaluate("""async (s) => {
        const cookie = document.cookie.split("; ").find((c) => c.startsWith("sharpeye_csrf=")) || "";
        const csrf = decodeURIComponent(cookie.slice(14));
        const call = (path, o = {}) => fetch(path, { method: o.method || "GET", credentials: "same-origin",
            headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf }, body: JSON.stringify(o.json) });
        await (await import('/field/push.js')).sendSubscription(call, s); }""", subscription)  # fmt: skip

    Receiver.received.clear()
    hub = admin(task_hub)
    title = f"小区门口占道经营 {uuid.uuid4().hex[:4]}"
    made = httpx.post(f"{task_hub.url}/api/reports", headers=hub,
                      json={"title": title, "category": "dispute", "org_unit": "hedong-g1"}).json()  # fmt: skip
    for step in ({"action": "accept"}, {"action": "dispatch", "department": "hd-jwh", "note": "网格处置"}):
        assert httpx.post(f"{task_hub.url}/api/cases/{made['id']}/actions", headers=hub, json=step).status_code == 200
    headers, sent = wait_for(lambda: Receiver.received[:1], 30, what="the task's push")[0]
    assert headers["content-encoding"] == "aes128gcm" and headers["authorization"].startswith("vapid t=")
    plain = http_ece.decrypt(sent, private_key=browser_key, auth_secret=auth, version="aes128gcm")
    pushed = orjson.loads(plain)
    assert pushed["open"] == f"case:{made['id']}" and title in pushed["title"] + pushed["body"]

    cdp = context.new_cdp_session(page)
    registrations: dict[str, dict[str, Any]] = {}  # the latest state of each registration DevTools reported
    cdp.on("ServiceWorker.workerRegistrationUpdated",
           lambda e: registrations.update({r["registrationId"]: r for r in e["registrations"]}))  # fmt: skip
    cdp.send("ServiceWorker.enable")

    def live() -> list[str]:
        page.wait_for_timeout(50)  # Playwright's sync API delivers DevTools events while it waits
        return [i for i, r in registrations.items() if r["scopeURL"].endswith("/field/") and not r["isDeleted"]]

    # the worker must be active before a push reaches it (on a loaded machine it may still be installing)
    assert page.evaluate("async () => Boolean((await navigator.serviceWorker.ready).active)")
    wait_for(live, what="the field app's registration over DevTools")
    delivered = -1e9

    def notifications() -> list[dict[str, Any]]:
        # DevTools stands in for the push service here; like one, it may lose a message to a worker that is still
        # starting on a loaded machine, so the same message (one tag: it replaces itself) goes again every 5 s
        nonlocal delivered
        if time.monotonic() - delivered > 5:
            delivered = time.monotonic()
            for registration in live():
                cdp.send("ServiceWorker.deliverPushMessage",
                         {"origin": task_hub.url, "registrationId": registration, "data": plain.decode()})  # fmt: skip
        shown: list[dict[str, Any]] = page.evaluate("""async () => {
            const reg = await navigator.serviceWorker.getRegistration('/field/');
            return (await reg.getNotifications()).map((n) => ({title: n.title, body: n.body, data: n.data})); }""")
        return shown

    shown = wait_for(notifications, 30, what="the notification")
    assert shown == [{"title": pushed["title"], "body": pushed["body"], "data": {"open": f"case:{made['id']}"}}]

    page.goto(f"{task_hub.url}/field/?task={made['id']}")  # where a tap on it leads
    expect(page.locator("main h2").first).to_have_text(title)
    expect(page.locator("button[data-action=claim]")).to_be_visible()
    context.close()
