"""The operator's proof: Debian's Chromium plays a GB/T 28181 channel through the console's own player, against a
real hub whose platform pulls the channel from the device simulator over real SIP INVITE and PS over RTP: an H.264
channel passed through and an H.265 channel encoded once; frames advance; leaving releases the channel (BYE)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from sharpeye.config.gb28181 import GbSettings
from sharpeye.config.loader import demo_path, load_file
from sharpeye.ingest.gb28181.config import GbDeviceConfig
from sharpeye.ingest.registry import installed
from sharpeye.simulators.gb28181.device import DeviceFleet, SimDevice, code

from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.console.conftest import CHROMIUM, CHROMIUM_ARGS, HubServer, console_settings, sign_in
from tests.console.test_console import SAMPLE_VIDEO
from tests.helpers import env_secret, wait_for

PLATFORM_ID = "34020000002000000001"
NVR = SimDevice(id=code("34020000", 118, 51), password="gb-nvr-pw", kind="nvr", channel_count=2)
H264, H265 = (cid for cid, _ in NVR.channels)
NVR.codecs[H265] = "hevc"


class FleetThread:
    """The device simulator on its own event loop, in a thread beside the hub's."""

    def __init__(self, port: int) -> None:
        self.loop = asyncio.new_event_loop()
        self.fleet = DeviceFleet([NVR], platform_id=PLATFORM_ID, platform_port=port, t1=0.1)
        self.thread = threading.Thread(target=self.loop.run_forever, name="gb-fleet", daemon=True)

    def __enter__(self) -> FleetThread:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.fleet.start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.fleet.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def gb_hub(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server_session: EmbeddedRedis,
    mqtt_broker_session: EmbeddedMosquitto,
) -> Iterator[tuple[HubServer, FleetThread]]:
    site = load_file(demo_path(), installed())
    nvr = GbDeviceConfig.model_validate(
        {"id": NVR.id, "kind": "gb28181", "name": "模拟录像机", "grid": site.devices[0].grid,
         "password": env_secret(NVR.password)}
    )  # fmt: skip
    gb = GbSettings(sip_id=PLATFORM_ID, port=0, sip_t1_s=0.1, media_port_min=0, media_port_max=0, release_grace_s=1)
    site = site.model_copy(update={"gb28181": gb, "devices": [*site.devices, nvr]})
    settings = console_settings(tmp_path_factory, redis_server_session, mqtt_broker_session)
    with HubServer(settings, site) as server:
        hub = server.hubs[0]
        with FleetThread(hub.gb_platform_port) as fleet:
            wait_for(lambda: hub.inventory.get(H265) is not None, timeout=20, what="GB channels in the inventory")
            yield server, fleet


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(chromium: Browser, gb_hub: tuple[HubServer, FleetThread]) -> Page:
    server, _ = gb_hub
    context = chromium.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(15_000)
    sign_in(page, server.url)
    return page


OPEN_PLAYER = """async (camera) => {
  const { LivePlayer } = await import("/static/player.js");
  const box = document.createElement("div"); box.id = "gb-" + camera; document.body.prepend(box);
  window.gbPlayers = window.gbPlayers || {};
  window.gbPlayers[camera] = new LivePlayer(camera, box);
}"""


@pytest.mark.parametrize("channel", [H264, H265], ids=["h264", "h265"])
def test_chromium_plays_a_gb28181_channel_and_leaving_releases_it(
    page: Page, gb_hub: tuple[HubServer, FleetThread], channel: str
) -> None:
    server, fleet = gb_hub
    hub: Any = server.hubs[0]
    page.evaluate(OPEN_PLAYER, channel)
    video = page.locator(f"video[data-camera='{channel}']")
    first = wait_for(lambda: (s := video.evaluate(SAMPLE_VIDEO)) and s["time"] > 0.3 and s, timeout=20, what="playing")
    later = wait_for(
        lambda: (s := video.evaluate(SAMPLE_VIDEO)) and s["time"] > first["time"] + 1.0 and s,
        timeout=10,
        what="frames advancing",
    )
    assert later["width"] == 320 and later["std"] > 10, later
    first_ms = int(video.get_attribute("data-first-frame-ms") or "0")
    assert first_ms > 0, "the player noted no first frame"  # how fast: bench/gb28181_click.py (no timed tests)
    assert (channel, 0) in hub.gb_puller.pulled
    byes = fleet.fleet.stats["byes"]
    page.evaluate("(camera) => window.gbPlayers[camera].close()", channel)
    wait_for(lambda: fleet.fleet.stats["byes"] > byes, timeout=15, what="BYE after the grace period")
    assert (channel, 0) not in hub.gb_puller.pulled
