"""The field app (/field/) in Chromium on a phone-sized screen with a GPS position: a report with a photo made
offline reaches the hub once the network is back (one case, also when an answer is lost and the report is sent
again), a task is signed for and fed back, and a patrol's track is kept."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from typing import Any

import av
import cv2
import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect

from tests.console.conftest import ADMIN_PASSWORD, HubServer
from tests.console.conftest import sign_in as console_sign_in
from tests.helpers import wait_for

WORKER, WORKER_PASSWORD = "gw-field", "Grid-Worker-Pass-7"
PHONE = {"width": 390, "height": 844}
HERE = {"latitude": 30.2741, "longitude": 120.1551, "accuracy": 8}


def admin(server: HubServer) -> dict[str, str]:
    token = httpx.post(f"{server.url}/api/auth/token",
                       data={"username": "admin", "password": ADMIN_PASSWORD}).json()["access_token"]  # fmt: skip
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def worker(hub_server: HubServer, browser: Browser) -> str:
    """A grid worker of 河东 grid 1 in the community's team (hd-jwh), made by the admin; at the first sign-in on
    the phone they choose a password of their own."""
    body = {"username": WORKER, "password": "Initial-Pass-1", "role": "grid_worker", "org_unit": "hedong-g1",
            "department": "hd-jwh"}  # fmt: skip
    assert httpx.post(f"{hub_server.url}/api/users", headers=admin(hub_server), json=body).status_code == 201
    context = browser.new_context(viewport=PHONE, is_mobile=True, locale="zh-CN")
    page = context.new_page()
    page.goto(hub_server.url + "/field/")
    page.fill("input[name=username]", WORKER)
    page.fill("input[name=password]", "Initial-Pass-1")
    page.click("form.login button")
    page.fill("input[name=new_password]", WORKER_PASSWORD)
    page.fill("input[name=confirm_password]", WORKER_PASSWORD + "x")
    page.click("form.password button")
    expect(page.get_by_test_id("password-error")).to_have_text("两次输入的密码不一致")
    page.fill("input[name=confirm_password]", WORKER_PASSWORD)
    page.click("form.password button")
    expect(page.locator("nav.tabs")).to_be_visible()
    context.close()
    token = httpx.post(f"{hub_server.url}/api/auth/token", data={"username": WORKER, "password": WORKER_PASSWORD})
    assert token.status_code == 200 and token.json()["must_change_password"] is False
    return WORKER


@pytest.fixture
def phone(browser: Browser) -> Iterator[BrowserContext]:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2,
                                  locale="zh-CN", geolocation=HERE, permissions=["geolocation"])  # fmt: skip
    yield context
    context.close()


def sign_in(page: Page, server: HubServer) -> None:
    page.goto(server.url + "/field/")
    page.fill("input[name=username]", WORKER)
    page.fill("input[name=password]", WORKER_PASSWORD)
    page.click("form.login button")
    expect(page.locator("nav.tabs")).to_be_visible()


def photo_file(width: int = 3000, height: int = 2000) -> dict[str, Any]:
    """A camera-sized JPEG (the app scales it down before keeping it)."""
    image = np.zeros((height, width, 3), np.uint8)
    cv2.rectangle(image, (100, 100), (width - 100, height - 100), (0, 160, 255), -1)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return {"name": "scene.jpg", "mimeType": "image/jpeg", "buffer": data.tobytes()}


def cases_with(server: HubServer, description: str) -> list[dict[str, Any]]:
    items = httpx.get(f"{server.url}/api/cases?limit=500", headers=admin(server)).json()["items"]
    return [c for c in items if c["description"] == description]


def fill_report(page: Page, description: str) -> None:
    page.click("button[data-category=city_appearance]")
    page.fill("textarea[name=description]", description)
    page.set_input_files("input[name=photos]", files=[photo_file()])  # type: ignore[list-item]
    expect(page.locator(".report .thumbs img")).to_have_count(1)
    expect(page.get_by_test_id("position")).to_contain_text("30.27410")


def test_the_app_is_installable_with_its_own_service_worker(phone: BrowserContext, hub_server: HubServer,
                                                            worker: str) -> None:  # fmt: skip
    page = phone.new_page()
    sign_in(page, hub_server)
    manifest = httpx.get(f"{hub_server.url}/field/manifest.webmanifest").json()
    assert manifest["scope"] == "/field/" and manifest["display"] == "standalone"
    assert {i["sizes"] for i in manifest["icons"]} == {"192x192", "512x512"}
    scope = page.evaluate("navigator.serviceWorker.ready.then((r) => r.scope)")
    assert scope == f"{hub_server.url}/field/"
    wait_for(lambda: page.evaluate("caches.match('/field/app.js').then((r) => Boolean(r))"), what="the app cached")
    policy = httpx.get(f"{hub_server.url}/field/").headers["Permissions-Policy"]
    assert "geolocation=(self)" in policy and "camera=(self)" in policy
    assert "geolocation=()" in httpx.get(f"{hub_server.url}/").headers["Permissions-Policy"]  # not the console
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator("nav.tabs button").all_inner_texts() == ["上报", "任务", "巡查", "我的"]
    phone.set_offline(True)  # the app opens without a network: its files from the service worker's cache
    try:
        page.reload()
        expect(page.locator("nav.tabs")).to_be_visible()
        expect(page.locator("#net")).to_contain_text("当前离线")
        reached = page.evaluate("fetch('/api/health').then(() => 'network', () => 'no network')")
        assert reached == "no network"  # so the page above came from the cache
    finally:
        phone.set_offline(False)


def test_a_report_made_offline_arrives_once_when_the_network_returns(
    phone: BrowserContext, hub_server: HubServer, worker: str
) -> None:
    page = phone.new_page()
    sign_in(page, hub_server)
    description = f"离线上报 {uuid.uuid4().hex[:6]}"
    fill_report(page, description)
    phone.set_offline(True)
    page.click("form.report button[type=submit]")
    expect(page.locator("#net")).to_contain_text("待发送 1")
    expect(page.locator("ul.outbox li")).to_have_count(1)
    assert cases_with(hub_server, description) == []  # the phone keeps it: nothing reached the hub
    phone.set_offline(False)
    expect(page.locator("ul.recent strong").first).to_have_text(
        __import__("re").compile(r"^[A-Z]+-\d{8}-\d{5}$"), timeout=20_000
    )
    expect(page.locator("ul.outbox li")).to_have_count(0)
    made = cases_with(hub_server, description)
    assert len(made) == 1, made
    case = made[0]
    assert case["source"] == "grid_worker" and case["org_unit"] == "hedong-g1" and case["category"] == "city_appearance"
    assert case["location"] == {"lat": HERE["latitude"], "lon": HERE["longitude"]}
    assert page.locator("ul.recent strong").first.inner_text() == case["id"]
    photos = httpx.get(f"{hub_server.url}/api/cases/{case['id']}/photos", headers=admin(hub_server)).json()
    assert len(photos) == 1
    data = httpx.get(f"{hub_server.url}/api/cases/{case['id']}/photos/{photos[0]['id']}", headers=admin(hub_server))
    image = cv2.imdecode(np.frombuffer(data.content, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[:2] == (1067, 1600)  # scaled down on the phone from 3000 x 2000


def test_a_voice_note_recorded_on_the_phone_goes_with_the_report(browser: Browser, hub_server: HubServer,
                                                                 worker: str) -> None:  # fmt: skip
    """语音备注: recorded with the phone's microphone (Chromium's fake device plays a tone), heard back before
    sending, kept with the report in the outbox, stored with the case as an audio file that decodes."""
    context = browser.new_context(viewport=PHONE, is_mobile=True, locale="zh-CN", geolocation=HERE,
                                  permissions=["geolocation", "microphone"])  # fmt: skip
    try:
        page = context.new_page()
        sign_in(page, hub_server)
        description = f"语音上报 {uuid.uuid4().hex[:6]}"
        fill_report(page, description)
        page.get_by_test_id("voice").click()
        expect(page.get_by_test_id("voice-status")).to_have_text("正在录音…（最长60秒）")
        page.wait_for_timeout(1500)  # the length of the note, not a wait for something to happen
        page.get_by_test_id("voice").click()
        expect(page.locator(".voice-player audio")).to_have_count(1)
        expect(page.get_by_test_id("voice-status")).to_contain_text("语音备注")
        page.click("form.report button[type=submit]")
        wait_for(lambda: cases_with(hub_server, description), what="the voice report's case", timeout=20)
        case = cases_with(hub_server, description)[0]
        attached = httpx.get(f"{hub_server.url}/api/cases/{case['id']}/photos", headers=admin(hub_server)).json()
        voices = [a for a in attached if a["media_type"].startswith("audio/")]
        assert len(voices) == 1 and len(attached) == 2, attached
        data = httpx.get(f"{hub_server.url}/api/cases/{case['id']}/photos/{voices[0]['id']}",
                         headers=admin(hub_server)).content  # fmt: skip
        with av.open(io.BytesIO(data)) as container:
            frames = sum(1 for _ in container.decode(audio=0))
        assert frames > 10  # about 50 Opus frames a second were recorded
        assert page.locator(".voice-player audio").count() == 0  # the form is ready for the next report
        # the command centre hears it: the console's case detail plays the note beside the photo
        office = browser.new_context(viewport={"width": 1600, "height": 900}, locale="zh-CN")
        desk = office.new_page()
        console_sign_in(desk, hub_server.url)
        desk.click("#nav button[data-view=cases]")
        desk.locator(f"#case-rows tr[data-case='{case['id']}']").click()
        files = desk.locator("#case-detail .case-files")
        expect(files.locator("audio")).to_have_count(1)
        expect(files.locator("img")).to_have_count(1)
        duration = desk.evaluate("""() => new Promise((resolve) => {
            const a = document.querySelector('#case-detail .case-files audio');
            a.preload = 'auto';
            a.onloadeddata = () => resolve('loaded'); a.onerror = () => resolve('error: ' + (a.error && a.error.code));
            a.load(); })""")
        assert duration == "loaded"  # the browser plays what the phone recorded
        office.close()
    finally:
        context.close()


def test_a_report_whose_answer_is_lost_is_sent_again_and_still_makes_one_case(
    phone: BrowserContext, hub_server: HubServer, worker: str
) -> None:
    page = phone.new_page()
    sign_in(page, hub_server)
    description = f"应答丢失 {uuid.uuid4().hex[:6]}"
    delivered: list[int] = []

    def lose_answer(route: Route) -> None:  # the hub gets the report; the phone never hears back
        delivered.append(route.fetch().status)
        route.abort("connectionreset")

    page.route("**/api/field/reports", lose_answer)
    fill_report(page, description)
    page.click("form.report button[type=submit]")
    deadline = time.monotonic() + 15
    while delivered != [201]:  # the route's handler runs while Playwright is called: wait through the page
        assert time.monotonic() < deadline, f"the report was not delivered: {delivered}"
        page.wait_for_timeout(100)
    expect(page.locator("ul.outbox li")).to_have_count(1)
    assert len(cases_with(hub_server, description)) == 1
    page.unroute("**/api/field/reports")
    phone.set_offline(True)  # the network comes back: the outbox is sent again
    phone.set_offline(False)
    expect(page.locator("ul.outbox li")).to_have_count(0, timeout=20_000)
    made = cases_with(hub_server, description)
    assert len(made) == 1 and page.locator("ul.recent strong").first.inner_text() == made[0]["id"]


def dispatched_case(server: HubServer, title: str) -> str:
    headers = admin(server)
    body = {"title": title, "category": "dispute", "org_unit": "hedong-g1", "description": "邻里噪音纠纷"}
    case_id = str(httpx.post(f"{server.url}/api/reports", json=body, headers=headers).json()["id"])
    for action in ({"action": "accept"}, {"action": "dispatch", "department": "hd-jwh", "note": "网格处置"}):
        answer = httpx.post(f"{server.url}/api/cases/{case_id}/actions", json=action, headers=headers)
        assert answer.status_code == 200, answer.text
    return case_id


def test_a_task_is_signed_for_and_fed_back_from_the_phone(
    phone: BrowserContext, hub_server: HubServer, worker: str
) -> None:
    case_id = dispatched_case(hub_server, f"噪音 {uuid.uuid4().hex[:4]}")
    page = phone.new_page()
    sign_in(page, hub_server)
    page.click("nav.tabs button[data-tab=tasks]")
    page.click(f"ul.tasks li[data-case='{case_id}']")
    page.click("button[data-action=claim]")
    expect(page.locator("form.feedback")).to_be_visible()
    expect(page.locator("main")).to_contain_text("处置中")
    page.fill("textarea[name=note]", "已调解，双方签字")
    page.set_input_files("form.feedback input[name=photos]", files=[photo_file(800, 600)])  # type: ignore[list-item]
    expect(page.locator("form.feedback .thumbs img")).to_have_count(1)
    page.click("form.feedback button[type=submit]")
    expect(page.locator("main")).to_contain_text("已反馈")
    detail = httpx.get(f"{hub_server.url}/api/cases/{case_id}", headers=admin(hub_server)).json()
    assert detail["case"]["stage"] == "feedback" and detail["case"]["claimed_by"] == f"user:{WORKER}"
    actions = {e["action"]: e for e in detail["history"]}
    assert "lat=30.274100" in actions["claim"]["note"] and "已调解" in actions["feedback"]["note"]
    photos = httpx.get(f"{hub_server.url}/api/cases/{case_id}/photos", headers=admin(hub_server)).json()
    assert len(photos) == 1 and photos[0]["actor"] == f"user:{WORKER}"
    page.click("nav.tabs button[data-tab=tasks]")
    expect(page.locator(".segmented")).to_be_visible()
    expect(page.locator(f"ul.tasks li[data-case='{case_id}']")).to_have_count(0)  # no longer open


def test_a_patrol_track_is_recorded(phone: BrowserContext, hub_server: HubServer, worker: str) -> None:
    page = phone.new_page()
    sign_in(page, hub_server)
    page.click("nav.tabs button[data-tab=patrol]")
    page.click("button[data-action=start-patrol]")
    expect(page.locator(".patrolling")).to_be_visible()
    patrol_id = page.evaluate("localStorage.getItem('field-patrol')")
    assert patrol_id
    headers = admin(hub_server)
    step = 0
    deadline = time.monotonic() + 60

    def walked() -> int:
        return int(httpx.get(f"{hub_server.url}/api/patrols/{patrol_id}", headers=headers).json()["patrol"]["points"])

    while walked() < 3:  # walk north until the phone's batches have brought three fixes to the hub
        assert time.monotonic() < deadline, "no track reached the hub within 60 s"
        step += 1
        phone.set_geolocation({**HERE, "latitude": HERE["latitude"] + 0.0002 * step})
        page.wait_for_timeout(1000)
    expect(page.get_by_test_id("patrol-stats")).to_contain_text("轨迹点")
    page.fill("textarea[name=patrol-note]", "巡查无异常")
    page.click("button[data-action=end-patrol]")
    expect(page.locator("button[data-action=start-patrol]")).to_be_visible()
    url = f"{hub_server.url}/api/patrols/{patrol_id}"
    wait_for(lambda: httpx.get(url, headers=headers).json()["patrol"]["ended_at"], what="the patrol ended at the hub")
    found = httpx.get(f"{hub_server.url}/api/patrols/{patrol_id}", headers=headers).json()
    assert found["patrol"]["username"] == WORKER and found["patrol"]["note"] == "巡查无异常"
    lats = [p["lat"] for p in found["track"]]
    assert len(lats) >= 3 and lats == sorted(lats)  # in time order, walking north
    assert found["patrol"]["distance_m"] > 40
    listed = httpx.get(f"{hub_server.url}/api/patrols?username={WORKER}", headers=headers).json()
    assert patrol_id in {p["id"] for p in listed}
