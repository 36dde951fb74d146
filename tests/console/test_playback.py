"""Look-back in Debian's Chromium against a real hub recording the demo's school-gate camera: the day's timeline
shows the recorded segments, a click plays from that moment with advancing frames, and a fence alarm linked to the
camera offers "play from 10 s before", which opens the playback at that moment."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from playwright.sync_api import Browser, Page, expect
from sharpeye.config.loader import demo_path, load_file
from sharpeye.ingest.registry import installed

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.conftest import hub_settings
from tests.console.conftest import ADMIN_PASSWORD, HubServer
from tests.console.test_console import assert_playing
from tests.helpers import Publisher, wait_for

CAM = "cam-school-gate"


@pytest.fixture(scope="module")
def recording_hub(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server_session: EmbeddedRedis,
    mqtt_broker_session: EmbeddedMosquitto,
) -> Iterator[HubServer]:
    """The demo site with only the school-gate camera captured, recording continuously in 2 s segments."""
    doc = yaml.safe_load(demo_path().read_text(encoding="utf-8"))
    for device in doc["devices"]:
        if device["id"] == CAM:
            device["record"] = {"mode": "continuous", "segment_s": 2}
        elif device["kind"] == "camera":
            device["enabled"] = False
    directory = tmp_path_factory.mktemp("playback-hub")
    (directory / "site.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    keys = Keys(prefix=f"playback{int(time.time() * 1000) % 10**8}")
    settings = hub_settings(directory / "data", redis_server_session.url, mqtt_broker_session.url,
                            admin_password=ADMIN_PASSWORD, prefix=keys.prefix, node_id=f"node-{keys.prefix}",
                            cameras=True, camera_workers=1)  # fmt: skip
    with HubServer(settings, load_file(directory / "site.yaml", installed())) as server:
        yield server


@pytest.fixture(scope="module")
def page(browser: Browser, recording_hub: HubServer) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN", timezone_id="Asia/Shanghai")
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(recording_hub.url + "/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("form#login button")
    expect(page.locator("#nav")).to_be_visible()
    yield page
    context.close()


def recorded_s(hub: HubServer) -> float:
    cameras = hub.hubs[0].cameras
    assert cameras is not None
    segs = cameras.recordings.segments(CAM, time.time() - 3600, time.time() + 60)
    return segs[-1].end - segs[0].start if segs else 0.0


def playing_at(page: Page) -> float:
    return int(page.locator("#pb-now").get_attribute("data-ms") or 0) / 1000


def test_timeline_click_plays_the_recording(page: Page, recording_hub: HubServer) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    wait_for(lambda: recorded_s(recording_hub) >= 6, timeout=60, what="6 s recorded")
    page.click("#nav button[data-view=playback]")
    expect(page.locator("#pb-camera")).to_have_value(CAM)
    expect(page.locator("#pb-status")).to_contain_text("录像中")
    segs = page.locator("#pb-timeline .pb-seg")
    assert segs.count() >= 3
    # Click the middle of the recorded stretch (a day is ~60 s a pixel: the click snaps into the recording).
    segs.nth(1).click(force=True)
    sample: dict[str, Any] = assert_playing(page, "#pb-video")
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
    first_seen = datetime.fromisoformat(button.get_attribute("data-at") or "").timestamp()
    button.click()
    expect(page.locator("section#playback")).to_be_visible()
    assert_playing(page, "#pb-video")
    shown = playing_at(page)
    # Playing from 10 s before the alarm (plus the little it has played since).
    assert first_seen - 10.5 <= shown <= first_seen - 10 + 8, (shown - first_seen)
