"""Web Push in Debian's Chromium against a real hub: the console registers its service worker (/static/sw.js, scope
/static/console-push/) and posts the browser's subscription; an alarm then leaves the hub through a webpush uplink
to a local HTTP server standing in for the push service, which decrypts it with the browser's keys; what it decrypts
is handed to the service worker (DevTools' ServiceWorker.deliverPushMessage, as the browser's push client would),
which shows the notification in Chinese; the page a notification click opens (/?open=alarm:<id>) shows that alarm.

Headless Chromium has no push service to reach (PushManager.subscribe fails without Google's), so the console's
own subscribe is checked up to the registration and the failure it reports; the subscription it would post is made
in the test (its own P-256 key pair and auth secret) and posted through the console's module."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import http_ece
import orjson
import pytest
import redis.asyncio as aioredis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from playwright.sync_api import Browser, expect
from sharpeye.api.permission import Role
from sharpeye.api.user import UserStore
from sharpeye.config.governance import Uplink
from sharpeye.config.loader import demo_path, load_file
from sharpeye.config.site import SiteConfig
from sharpeye.governance.push import b64url
from sharpeye.ingest.registry import installed

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.conftest import hub_settings
from tests.console.conftest import ADMIN_PASSWORD, HubServer, sign_in
from tests.helpers import Publisher, wait_for

expect.set_options(timeout=15_000)
SCOPE = "/static/console-push/"


class Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def push_service() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def site_with_push() -> SiteConfig:
    site = load_file(demo_path(), installed())
    uplink = Uplink(id="browsers", format="webpush", to=["admin"], events=["alarm"], types=["alarm.raised"])
    governance = site.governance.model_copy(update={"uplinks": [*site.governance.uplinks, uplink]})
    return site.model_copy(update={"governance": governance})


@pytest.fixture(scope="module")
def push_hub(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server_session: EmbeddedRedis,
    mqtt_broker_session: EmbeddedMosquitto,
) -> Iterator[HubServer]:
    keys = Keys(prefix=f"push{os.getpid()}{datetime.now(UTC):%H%M%S%f}")
    settings = hub_settings(tmp_path_factory.mktemp("push-hub"), redis_server_session.url, mqtt_broker_session.url,
                            admin_password=ADMIN_PASSWORD, prefix=keys.prefix, push_allow_http=True)  # fmt: skip
    with HubServer(settings, site_with_push()) as server:
        yield server


def test_console_subscribes_and_the_service_worker_shows_the_hubs_push(
    browser: Browser, push_hub: HubServer, push_service: ThreadingHTTPServer, mqtt_broker_session: EmbeddedMosquitto
) -> None:
    context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai")
    context.grant_permissions(["notifications"], origin=push_hub.url)
    page = context.new_page()
    sign_in(page, push_hub.url)

    # the console's switch: registers the service worker, asks the hub for its key, tries to subscribe
    button = page.locator("#push")
    expect(button).to_have_text("开启浏览器通知")
    button.click()
    registered = wait_for(
        lambda: page.evaluate(
            """async (scope) => {
        const reg = await navigator.serviceWorker.getRegistration(scope);
        return reg && reg.active ? [reg.scope, reg.active.scriptURL] : null; }""",
            SCOPE,
        ),
        what="the service worker",
    )
    assert registered == [push_hub.url + SCOPE, push_hub.url + "/static/sw.js"]
    # headless Chromium reaches no push service: the switch says so (a browser with one shows 浏览器通知已开)
    wait_for(lambda: button.get_attribute("title") or button.get_attribute("data-state") == "on", 30,
             what="the switch's outcome")  # fmt: skip
    if button.get_attribute("data-state") == "on":
        expect(button).to_have_text("浏览器通知已开")
    else:
        assert (button.get_attribute("title") or "").startswith("无法开启浏览器通知: ")
        expect(button).to_have_text("开启浏览器通知")

    # the subscription a browser makes: its own key pair and auth secret, posted through the console's module
    browser_key = ec.generate_private_key(ec.SECP256R1())
    auth = os.urandom(16)
    point = browser_key.public_key().public_bytes(serialization.Encoding.X962,
                                                  serialization.PublicFormat.UncompressedPoint)  # fmt: skip
    endpoint = f"http://127.0.0.1:{push_service.server_address[1]}/push/admin-pc"
    keys = {"p256dh": b64url(point), "auth": b64url(auth)}
    subscription = {"endpoint": endpoint, "expirationTime": None, "keys": keys}
    kept = page.evaluate("async (s) => (await import('/static/push.js')).sendSubscription(s)", subscription)
    assert kept["endpoint"] == endpoint
    refused = page.evaluate("""async (s) => { try { await (await import('/static/push.js')).sendSubscription(s); }
        catch (e) { return String(e.message); } return "kept"; }""",
        {**subscription, "keys": {**subscription["keys"], "auth": b64url(b"short")}})  # fmt: skip
    assert refused.startswith("422") and "16 bytes" in refused
    mine = page.evaluate("async () => (await import('/static/api.js')).api('/api/push/subscriptions')")
    assert endpoint in [s["endpoint"] for s in mine]

    # an alarm: the hub pushes it to the push service, encrypted for this browser
    Receiver.received.clear()
    publisher = Publisher(mqtt_broker_session.url)
    try:
        publisher.publish("sharpeye/fence/fence-reservoir/event", {"seq": 1, "ts": datetime.now(UTC).isoformat(),
                          "event": "alarm", "cause": "intrusion", "zone": "z1"})  # fmt: skip
    finally:
        publisher.close()
    headers, body = wait_for(lambda: Receiver.received[:1], 30, what="the push")[0]
    assert headers["content-encoding"] == "aes128gcm" and headers["authorization"].startswith("vapid t=")
    plain = http_ece.decrypt(body, private_key=browser_key, auth_secret=auth, version="aes128gcm")
    pushed = orjson.loads(plain)
    assert pushed["open"].startswith("alarm:") and "水库北侧围栏" in pushed["body"]
    alarm_id = pushed["open"].removeprefix("alarm:")

    # the browser's push client hands the decrypted message to the service worker, which shows it
    cdp = context.new_cdp_session(page)
    registrations: list[dict[str, Any]] = []
    cdp.on("ServiceWorker.workerRegistrationUpdated", lambda e: registrations.extend(e["registrations"]))
    cdp.send("ServiceWorker.enable")

    def found() -> list[dict[str, Any]]:
        page.wait_for_timeout(50)  # Playwright's sync API delivers DevTools events while it waits
        return [r for r in registrations if r["scopeURL"].endswith(SCOPE) and not r["isDeleted"]]

    reg = wait_for(found, what="the registration over DevTools")[0]
    cdp.send("ServiceWorker.deliverPushMessage",
             {"origin": push_hub.url, "registrationId": reg["registrationId"], "data": plain.decode()})  # fmt: skip
    shown = wait_for(
        lambda: page.evaluate(
            """async (scope) => {
        const reg = await navigator.serviceWorker.getRegistration(scope);
        return (await reg.getNotifications()).map((n) => ({title: n.title, body: n.body, tag: n.tag, lang: n.lang,
                                                           data: n.data})); }""",
            SCOPE,
        ),
        what="the notification",
    )
    assert shown == [{"title": pushed["title"], "body": pushed["body"], "tag": f"alarm:{alarm_id}", "lang": "zh-CN",
                      "data": {"open": f"alarm:{alarm_id}"}}]  # fmt: skip
    assert pushed["title"].startswith("【SharpEye 告警】")

    # a click opens /?open=alarm:<id>: the console shows that alarm
    page.goto(f"{push_hub.url}/?open=alarm:{alarm_id}")
    expect(page.locator("#alarm-detail h2")).to_contain_text("围界入侵报警")
    assert page.evaluate("location.search") == ""
    context.close()


def test_the_switch_says_push_is_unavailable_to_a_user_no_channel_names(
    browser: Browser, push_hub: HubServer, redis_server_session: EmbeddedRedis
) -> None:
    """The site's only webpush channel names admin: duty's console shows browser notifications as not available (the
    hub's ``enabled: false``), the switch disabled with the reason, and subscribes nothing."""
    keys = push_hub.hubs[0].keys

    async def add_duty() -> None:
        client = aioredis.Redis.from_url(redis_server_session.url)
        try:
            await UserStore(client, keys, 3600).add("duty", ADMIN_PASSWORD, Role.operator)
        finally:
            await client.aclose()

    with ThreadPoolExecutor(1) as pool:  # Playwright's own event loop runs in this thread
        pool.submit(asyncio.run, add_duty()).result(15)
    context = browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai")
    context.grant_permissions(["notifications"], origin=push_hub.url)
    try:
        page = context.new_page()
        sign_in(page, push_hub.url, "duty")
        button = page.locator("#push")
        expect(button).to_have_text("浏览器通知未启用")
        expect(button).to_be_disabled()
        expect(button).to_have_attribute("data-state", "unavailable")
        assert "管理员" in (button.get_attribute("title") or "")
        mine = page.evaluate("async () => (await import('/static/api.js')).api('/api/push/subscriptions')")
        assert mine == []
    finally:
        context.close()
