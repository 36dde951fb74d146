"""Look-back in Debian's Chromium against a real hub recording the demo's school-gate camera: the day's timeline
shows the recorded segments, a click plays from that moment with advancing frames, and a fence alarm linked to the
camera offers "play from 10 s before", which opens the playback at that moment."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from playwright.sync_api import Browser, Page, expect
from sharpeye.config.loader import demo_path, load_file
from sharpeye.ingest.credential import device_password
from sharpeye.ingest.registry import installed
from sharpeye.simulators.gb28181.device import DeviceFleet, SimDevice
from sharpeye.simulators.gb28181.record import RecordPlan

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.conftest import hub_settings
from tests.console.conftest import ADMIN_PASSWORD, HubServer, sign_in
from tests.console.test_console import SAMPLE_VIDEO
from tests.helpers import Publisher, wait_for

CAM = "cam-school-gate"
GB_CAM = "cam-village-gb"  # the demo NVR's channel 2, pulled live once the simulated NVR registers
NVR = "34020000001180000101"
SECRET = "playback-device-secret-0123"


@pytest.fixture(scope="module")
def recording_hub(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server_session: EmbeddedRedis,
    mqtt_broker_session: EmbeddedMosquitto,
) -> Iterator[HubServer]:
    """The demo site with the school-gate camera recording continuously in 2 s segments and the GB channel camera;
    the other cameras are off."""
    doc = yaml.safe_load(demo_path().read_text(encoding="utf-8"))
    for device in doc["devices"]:
        if device["id"] == CAM:
            device["record"] = {"mode": "continuous", "segment_s": 2}
        elif device["kind"] == "camera" and device["id"] != GB_CAM:
            device["enabled"] = False
    doc["gb28181"]["sip_t1_s"] = 0.1
    directory = tmp_path_factory.mktemp("playback-hub")
    (directory / "site.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    keys = Keys(prefix=f"playback{int(time.time() * 1000) % 10**8}")
    settings = hub_settings(directory / "data", redis_server_session.url, mqtt_broker_session.url,
                            admin_password=ADMIN_PASSWORD, prefix=keys.prefix, node_id=f"node-{keys.prefix}",
                            cameras=True, camera_workers=1, device_secret=SECRET)  # fmt: skip
    with HubServer(settings, load_file(directory / "site.yaml", installed())) as server:
        yield server


@pytest.fixture(scope="module")
def page(browser: Browser, recording_hub: HubServer) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN", timezone_id="Asia/Shanghai")
    page = context.new_page()
    page.set_default_timeout(15_000)
    sign_in(page, recording_hub.url)
    yield page
    context.close()


def recorded_s(hub: HubServer) -> float:
    cameras = hub.hubs[0].cameras
    assert cameras is not None
    segs = cameras.recordings.segments(CAM, time.time() - 3600, time.time() + 60)
    return segs[-1].end - segs[0].start if segs else 0.0


def playing_at(page: Page) -> float:
    return int(page.locator("#pb-now").get_attribute("data-ms") or 0) / 1000


def assert_playing(page: Page, within: float = 15) -> dict[str, Any]:
    """The recorded moment shown advances (across segments: the player's own time restarts with each) and the
    picture is not blank."""
    first = wait_for(lambda: playing_at(page), timeout=within + 5, what="a recorded moment shown")
    wait_for(lambda: playing_at(page) > first + 1.0, timeout=within, what="the recorded moment advancing")
    sample: dict[str, Any] = page.locator("#pb-video").evaluate(SAMPLE_VIDEO)
    assert sample["width"] > 0 and sample["std"] > 15, f"frames look blank: {sample}"
    return sample


def test_timeline_click_plays_the_recording(page: Page, recording_hub: HubServer) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    wait_for(lambda: recorded_s(recording_hub) >= 10, timeout=60, what="10 s recorded")
    page.click("#nav button[data-view=playback]")
    expect(page.locator("#pb-camera")).to_have_value(CAM)
    expect(page.locator("#pb-status")).to_contain_text("录像中")
    segs = page.locator("#pb-timeline .pb-seg")
    assert segs.count() >= 3
    # A day is about a minute a pixel: a click on the recording plays from the earliest recording under it.
    segs.nth(1).click(force=True)
    sample = assert_playing(page)
    assert sample["width"] == 640
    expect(page.locator("#pb-now")).to_contain_text("回放时刻")
    shown = playing_at(page)
    assert abs(shown - time.time()) < 120, shown
    expect(page.locator("#pb-timeline .pb-cursor")).to_be_visible()
    assert errors == [], errors


def test_alarm_offers_play_from_ten_seconds_before(page: Page, recording_hub: HubServer) -> None:
    wait_for(lambda: recorded_s(recording_hub) >= 14, timeout=60, what="14 s recorded")
    publisher = Publisher(recording_hub.hubs[0].mqtt_url)
    seq = int(time.time())
    try:
        publisher.publish(
            "sharpeye/fence/fence-school/event",
            {"seq": seq, "ts": datetime.now(UTC).isoformat(), "event": "alarm", "cause": "intrusion", "zone": "z1"},
        )
    finally:
        publisher.close()
    page.click("#nav button[data-view=alarms]")
    row = page.locator("#alarm-rows tr", has_text="学校西侧围墙").first
    expect(row).to_be_visible()
    row.click()
    button = page.locator(f"#alarm-detail button[data-lookback='{CAM}']")
    expect(button).to_contain_text("回看报警前10秒")
    # Read the alarm's time and click in one step: a newer alarm (the camera's own analytics) may replace the detail.
    at = page.evaluate(
        f"""() => {{ const b = document.querySelector("#alarm-detail button[data-lookback='{CAM}']");
                     b.click(); return b.dataset.at; }}"""
    )
    first_seen = datetime.fromisoformat(at).timestamp()
    expect(page.locator("section#playback")).to_be_visible()
    # Playback starts 10 s before the alarm, or at the first recorded moment after it when the recording has a gap
    # there (the hub's index says which; a camera that reconnected under load leaves one).
    started = wait_for(lambda: page.locator("#pb-now").get_attribute("data-start-ms"), timeout=15,
                       what="the playback's start")  # fmt: skip
    play = page.evaluate(f"async () => (await fetch('/api/cameras/{CAM}/recordings/play?t={first_seen - 10}')).json()")
    expected = max(first_seen - 10, play["segments"][0]["start_ms"] / 1000)
    asked = int(page.locator("#pb-now").get_attribute("data-asked-ms") or 0) / 1000
    assert abs(asked - (first_seen - 10)) < 0.01, asked - first_seen
    assert abs(int(started) / 1000 - expected) < 0.01, (int(started) / 1000 - first_seen, expected - first_seen)
    assert_playing(page)
    shown = playing_at(page)
    assert expected - 0.3 <= shown <= time.time(), (shown - first_seen, expected - first_seen)
    assert expected <= first_seen, "the recording from before the alarm is played"


def test_a_gb_channel_plays_the_device_recording(page: Page, recording_hub: HubServer) -> None:
    """The demo NVR (simulated, registered over SIP) holds recordings: the timeline shows them for the day and a
    click plays the device's recording (Download INVITE remuxed to MP4) with advancing frames."""
    platform = wait_for(lambda: recording_hub.hubs[0].gb_platform, timeout=20, what="the hub's SIP platform")
    sim = SimDevice(id=NVR, password=device_password(SECRET, NVR, "sip"), kind="nvr",
                    channels=[("34020000001310000101", "村口卡口"), ("34020000001310000102", "村委会门口")],
                    records=RecordPlan(period_s=3600, length_s=1800))  # fmt: skip
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="gb-sim", daemon=True)
    thread.start()
    fleet = DeviceFleet([sim], platform_id=platform.settings.sip_id, platform_port=platform.port, t1=0.1)
    asyncio.run_coroutine_threadsafe(fleet.start(), loop).result(15)
    try:
        wait_for(lambda: len(platform.device(NVR).channels) == 2, timeout=20, what="the NVR's catalog")
        page.click("#nav button[data-view=playback]")
        page.select_option("#pb-camera", GB_CAM)
        expect(page.locator("#pb-timeline .pb-dev")).to_have_count(24)  # 30 min of every hour, one local day
        expect(page.locator("#pb-status")).to_contain_text("设备录像 24")
        page.locator("#pb-timeline .pb-dev").nth(10).click(force=True)
        assert_playing(page, within=30)  # fetched from the device first (30 s at 8 times real time)
        assert any(offer.session == "Download" for offer in fleet.invites)
    finally:
        asyncio.run_coroutine_threadsafe(fleet.stop(), loop).result(15)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
