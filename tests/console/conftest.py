"""A real hub served over HTTP on a free loopback port, and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright
from sharpeye.config.site import Site

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from sharpeye.node.hub import Hub
from sharpeye.settings import Settings
from tests.conftest import hub_app, hub_settings

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-device-for-media-stream",  # a microphone that plays a tone, for the field app's voice notes
    "--use-fake-ui-for-media-stream",
]
ADMIN_PASSWORD = "console-admin-pw"


def sign_in(page: Page, url: str, user: str = "admin", password: str = ADMIN_PASSWORD) -> None:
    """Open the console and sign in; returns once the live alarm stream is up (a change made before it would be
    heard only by the console's re-read on connect, which a test should not race)."""
    page.goto(url + "/")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.click("form#login button")
    expect(page.locator("#nav")).to_be_visible()
    expect(page.locator("#link")).to_have_attribute("data-up", "1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HubServer:
    """The whole app (hub, API, console, live view) under uvicorn in a thread."""

    def __init__(self, settings: Settings, site: Site | None = None) -> None:
        self.hubs: list[Hub] = []
        app, _ = hub_app(settings, site, on_ready=lambda hub, _: self.hubs.append(hub))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, name="hub-server", daemon=True)
        self.app = app

    def __enter__(self) -> HubServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not (self.server.started and self.hubs and self.hubs[0].transport.connected.is_set()):
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise AssertionError("the hub did not start within 30 s")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)
        assert not self.thread.is_alive(), "the hub did not shut down"


def console_settings(
    tmp_path_factory: pytest.TempPathFactory, redis: EmbeddedRedis, mqtt: EmbeddedMosquitto
) -> Settings:
    """A quiet hub on the session's Redis (a prefix of its own) and broker."""
    keys = Keys(prefix=f"console{int(time.time() * 1000) % 10**8}")
    # cameras=False: a quiet site, only the alarms the test makes (viewers open the cameras themselves)
    return hub_settings(tmp_path_factory.mktemp("console-hub"), redis.url, mqtt.url, admin_password=ADMIN_PASSWORD,
                        prefix=keys.prefix, node_id=f"node-{keys.prefix}")  # fmt: skip


@pytest.fixture(scope="module")
def hub_server(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server_session: EmbeddedRedis,
    mqtt_broker_session: EmbeddedMosquitto,
) -> Iterator[HubServer]:
    settings = console_settings(tmp_path_factory, redis_server_session, mqtt_broker_session)
    with HubServer(settings) as server:
        yield server


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's 'chromium' (scripts/apt-packages.txt)")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield browser
    browser.close()
