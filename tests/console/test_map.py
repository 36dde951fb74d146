"""The console's geographic map (一张图) in Chromium: Leaflet from the hub's /assets/ (installed as `sharpeye assets
install` does), tiles from a local tile server stub that counts its requests, the demo site's devices placed by the
plan's bounds, reported cases clustered, a grid worker's last position and patrol track, layer toggles, a case's
details, and the site plan as the offline layer once the tile server is gone. Without the library installed the
console keeps the fractional plan view and says how to install it."""

from __future__ import annotations

import http.server
import os
import re
import shutil
import struct
import threading
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from sharpeye.api import assets
from sharpeye.config.base import Position
from sharpeye.config.loader import demo_path, load_file
from sharpeye.config.site import MapTiles, SiteConfig
from sharpeye.ingest.registry import installed

from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.console.conftest import ADMIN_PASSWORD, HubServer, console_settings, sign_in
from tests.helpers import wait_for

# the demo plan's bounds (config/demo.yaml): 1 km x 0.7 km
SOUTH, WEST, NORTH, EAST = 30.2500, 120.0000, 30.2563, 120.0104
WORKER, WORKER_PASSWORD = "gw-map", "Grid-Worker-Map-7"


def on_plan(x: float, y: float) -> tuple[float, float]:
    """lat, lon of a place on the demo plan (fractions of its width and height)."""
    return NORTH - y * (NORTH - SOUTH), WEST + x * (EAST - WEST)


def png(size: int = 256) -> bytes:
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + b"\xd8\xe4\xd0" * size for _ in range(size))
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


class TileServer:
    """Any /tiles/z/x/y.png answers one PNG; every request is counted."""

    def __init__(self) -> None:
        self.requests: list[tuple[int, int, int]] = []
        image = png()
        seen = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                found = re.fullmatch(r"/tiles/(\d+)/(\d+)/(\d+)\.png", self.path)
                if not found:
                    self.send_error(404)
                    return
                seen.append((int(found[1]), int(found[2]), int(found[3])))
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(image)))
                self.end_headers()
                self.wfile.write(image)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tiles/{{z}}/{{x}}/{{y}}.png"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def map_library(data_dir: Path) -> None:
    """The map's libraries in the hub's data dir, from the tests' cache (scripts/test.sh installs them there)."""
    cache = Path(os.environ.get("SHARPEYE_TEST_MODEL_DIR", "~/.cache/sharpeye-tests")).expanduser()
    try:
        assets.install(cache)
    except assets.AssetError as exc:
        pytest.fail(f"no map library for the tests: {exc}")
    shutil.copytree(assets.assets_dir(cache), assets.assets_dir(data_dir))


SCHOOL = on_plan(0.70, 0.62)  # fence-school gets this lon/lat beside its x/y


def map_site(tiles: MapTiles) -> SiteConfig:
    """The demo site with these tiles, and fence-school placed by lon/lat."""
    demo = load_file(demo_path(), installed())
    lat, lon = SCHOOL
    devices = [d.model_copy(update={"position": Position(x=0.70, y=0.62, lon=lon, lat=lat)})
               if d.id == "fence-school" else d for d in demo.devices]  # fmt: skip
    return demo.model_copy(update={
        "site": demo.site.model_copy(update={"map": demo.site.map.model_copy(update={"tiles": tiles})}),
        "devices": devices,
    })  # fmt: skip


@pytest.fixture(scope="module")
def tiles() -> Iterator[TileServer]:
    server = TileServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def map_hub(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server_session: EmbeddedRedis,
    mqtt_broker_session: EmbeddedMosquitto,
    tiles: TileServer,
) -> Iterator[HubServer]:
    settings = console_settings(tmp_path_factory, redis_server_session, mqtt_broker_session)
    map_library(settings.data_dir)
    site = map_site(MapTiles(url=tiles.url, attribution="测试底图", max_zoom=19))
    with HubServer(settings, site) as server:  # type: ignore[arg-type]
        admin = auth(server, "admin", ADMIN_PASSWORD)
        lat, lon = on_plan(0.85, 0.20)
        for i in range(30):  # one place's reports: a cluster
            report(server, admin, f"占道经营{i}", "street_vending", lat + (i % 6) * 0.00001, lon + (i // 6) * 0.00001)
        report(server, admin, "井盖缺失", "road_damage", *on_plan(0.05, 0.90))
        patrol(server, admin)
        yield server


def auth(server: HubServer, username: str, password: str) -> dict[str, str]:
    answer = httpx.post(f"{server.url}/api/auth/token", data={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def report(server: HubServer, headers: dict[str, str], title: str, category: str, lat: float, lon: float) -> None:
    body = {"title": title, "category": category, "org_unit": "hedong-g1", "lat": lat, "lon": lon}
    answer = httpx.post(f"{server.url}/api/reports", headers=headers, json=body)
    assert answer.status_code == 201, answer.text


def patrol(server: HubServer, admin: dict[str, str]) -> None:
    """A grid worker's patrol with a short track along the plan's west side."""
    body = {"username": WORKER, "password": "Initial-Pass-1", "role": "grid_worker", "org_unit": "hedong-g1",
            "department": "hd-jwh"}  # fmt: skip
    assert httpx.post(f"{server.url}/api/users", headers=admin, json=body).status_code == 201
    first = auth(server, WORKER, "Initial-Pass-1")
    changed = httpx.post(f"{server.url}/api/auth/password", headers=first,
                         json={"current_password": "Initial-Pass-1", "new_password": WORKER_PASSWORD})  # fmt: skip
    assert changed.status_code == 204, changed.text
    headers = auth(server, WORKER, WORKER_PASSWORD)
    started = httpx.post(f"{server.url}/api/field/patrols", headers=headers)
    assert started.status_code == 201, started.text
    now = datetime.now(UTC)
    points = [{"at": (now - timedelta(seconds=60 - 20 * i)).isoformat(), "lat": on_plan(0.1, 0.4 + 0.1 * i)[0],
               "lon": on_plan(0.1, 0.4 + 0.1 * i)[1]} for i in range(3)]  # fmt: skip
    added = httpx.post(f"{server.url}/api/field/patrols/{started.json()['id']}/points", headers=headers,
                       json={"points": points})  # fmt: skip
    assert added.status_code == 200, added.text


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1600, "height": 900}, locale="zh-CN", timezone_id="Asia/Shanghai")
    yield context.new_page()
    context.close()


def open_map(page: Page, url: str) -> None:
    sign_in(page, url)
    page.click("#nav button[data-view=map]")
    expect(page.locator("#map-geo")).to_be_visible()
    expect(page.locator("#map-geo .leaflet-control-layers")).to_be_visible()


def layer_toggle(page: Page, name: str) -> None:
    page.locator("#map-geo .leaflet-control-layers-overlays label", has_text=name).locator("input").click()


def test_map_tiles_markers_cluster_layers_and_a_case(
    map_hub: HubServer, tiles: TileServer, page: Page, tmp_path: Path
) -> None:
    before = len(tiles.requests)
    # the console's Content-Security-Policy lets images come from the configured tile server, and no other
    policy = httpx.get(map_hub.url + "/").headers["Content-Security-Policy"]
    tile_origin = tiles.url.split("/tiles/")[0]
    assert f"img-src 'self' data: blob: {tile_origin};" in policy
    assert tile_origin not in httpx.get(map_hub.url + "/field/").headers["Content-Security-Policy"]
    open_map(page, map_hub.url)
    expect(page.locator("#map-box")).to_be_hidden()
    expect(page.locator("#map-note")).to_have_text("")
    # tiles come from the configured server, and are drawn
    wait_for(lambda: len(tiles.requests) > before + 3, what="tile requests")
    assert {z for z, _, _ in tiles.requests} <= set(range(1, 20))
    expect(page.locator("#map-geo img.leaflet-tile-loaded").first).to_be_visible()
    expect(page.locator("#map-geo .leaflet-control-attribution")).to_contain_text("测试底图")
    # devices: placed by lon/lat (fence-school) and by the plan's bounds (the cameras); WGS-84 tiles: drawn as stored
    school = page.locator("#map-geo .geo-mark [data-device='fence-school']")
    expect(school).to_be_visible()
    expect(page.locator("#map-geo")).to_have_attribute("data-datum", "wgs84")
    expect(school).to_have_attribute("data-shown", f"{SCHOOL[0]:.6f},{SCHOOL[1]:.6f}")
    expect(page.locator("#map-geo .geo-mark [data-device='cam-hillside']")).to_be_visible()
    # the 30 reports of one place are one cluster; the lone case is a marker of its own
    cluster = page.locator("#map-geo .marker-cluster", has_text="30")
    expect(cluster).to_be_visible()
    lone = page.locator("#map-geo .geo-mark.case [data-case]")
    expect(lone).to_have_count(1)
    # the grid worker's last position and patrol track
    expect(page.locator(f"#map-geo .geo-mark.worker [data-worker='{WORKER}']")).to_be_visible()
    expect(page.locator("#map-geo path.geo-patrols")).to_have_count(1)
    # the plan drawing lies on its bounds under the markers
    expect(page.locator("#map-geo img.geo-plan")).to_be_visible()

    # a device's details
    school.click()
    expect(page.locator("#map-device")).to_contain_text("fence-school")
    # refresh the docs' picture: SHARPEYE_SCREENSHOT_DIR=docs/screenshots pytest tests/console/test_map.py
    page.screenshot(path=str(Path(os.environ.get("SHARPEYE_SCREENSHOT_DIR") or tmp_path) / "map-geo.png"))
    # a case's details, and on to the case
    lone.click()
    expect(page.locator("#map-device")).to_contain_text("井盖缺失")
    page.locator("#map-device .map-open-case").click()
    expect(page.locator("#cases")).to_be_visible()
    page.click("#nav button[data-view=map]")
    expect(page.locator("#map-geo .marker-cluster", has_text="30")).to_be_visible()

    # layer toggles: cases off and on; cameras off
    layer_toggle(page, "待办案件")
    expect(page.locator("#map-geo .marker-cluster", has_text="30")).to_have_count(0)
    expect(page.locator("#map-geo .geo-mark.case")).to_have_count(0)
    layer_toggle(page, "待办案件")
    expect(page.locator("#map-geo .marker-cluster", has_text="30")).to_be_visible()
    layer_toggle(page, "摄像机")
    expect(page.locator("#map-geo .geo-mark [data-device='cam-hillside']")).to_have_count(0)
    expect(school).to_be_visible()
    layer_toggle(page, "巡查轨迹")
    expect(page.locator("#map-geo path.geo-patrols")).to_have_count(0)
    # the browser keeps the choice
    page.reload()
    page.click("#nav button[data-view=map]")
    expect(school).to_be_visible()
    expect(page.locator("#map-geo .geo-mark [data-device='cam-hillside']")).to_have_count(0)
    expect(page.locator("#map-geo path.geo-patrols")).to_have_count(0)
    expect(page.locator("#map-geo .marker-cluster", has_text="30")).to_be_visible()

    # heat of cases: off until chosen, then drawn on a canvas; its category list has both categories
    layer_toggle(page, "案件热力")
    expect(page.locator("#map-geo canvas.leaflet-heatmap-layer")).to_be_visible()
    options = page.locator("#map-heat-category option")
    expect(options).to_have_count(3)
    page.select_option("#map-heat-category", "road_damage")

    # in English, the layers too
    page.click("#lang")
    expect(page.locator("#map-geo .leaflet-control-layers-overlays")).to_contain_text("Open cases")
    expect(page.locator("#map-geo .marker-cluster", has_text="30")).to_be_visible()
    page.click("#lang")
    expect(page.locator("#map-geo .leaflet-control-layers-overlays")).to_contain_text("待办案件")


def test_the_plan_stays_as_the_offline_layer_without_tiles(map_hub: HubServer, tiles: TileServer, page: Page) -> None:
    tiles.stop()  # the tile server is gone (an intranet without its tile server): the plan is still there
    open_map(page, map_hub.url)
    plan = page.locator("#map-geo img.geo-plan")
    expect(plan).to_be_visible()
    assert plan.evaluate("img => img.complete && img.naturalWidth > 0")
    expect(page.locator("#map-geo .geo-mark [data-device='fence-school']")).to_be_visible()
    expect(page.locator("#map-geo img.leaflet-tile-loaded")).to_have_count(0)
    # the fractional plan view is one click away
    page.click("#map-mode button[data-mode=plan]")
    expect(page.locator("#map-marks .mark[data-device='fence-school']")).to_be_visible()
    expect(page.locator("#map-geo")).to_be_hidden()


def test_without_the_library_the_plan_view_says_how_to_install_it(hub_server: HubServer, page: Page) -> None:
    sign_in(page, hub_server.url)
    page.click("#nav button[data-view=map]")
    expect(page.locator("#map-box")).to_be_visible()
    expect(page.locator("#map-marks .mark[data-device='fence-school']")).to_be_visible()
    expect(page.locator("#map-note")).to_contain_text("sharpeye assets install")
    expect(page.locator("#map-mode button[data-mode=geo]")).to_be_disabled()
    expect(page.locator("#map-geo")).to_be_hidden()


def test_on_gcj02_tiles_positions_are_shifted_for_display(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server_session: EmbeddedRedis,
    mqtt_broker_session: EmbeddedMosquitto,
    page: Page,
) -> None:
    settings = console_settings(tmp_path_factory, redis_server_session, mqtt_broker_session)
    map_library(settings.data_dir)
    gaode = MapTiles(url="https://webrd0{s}.is.autonavi.com/appmaptile?x={x}&y={y}&z={z}&style=8", subdomains="1234",
                     gcj02=True)  # fmt: skip
    with HubServer(settings, map_site(gaode)) as server:  # type: ignore[arg-type]
        page.route("https://*.is.autonavi.com/**", lambda route: route.abort())  # no Internet in tests
        open_map(page, server.url)
        expect(page.locator("#map-geo")).to_have_attribute("data-datum", "gcj02")
        school = page.locator("#map-geo .geo-mark [data-device='fence-school']")
        expect(school).to_be_visible()
        expected = page.evaluate(
            "async ([lat, lon]) => (await import('/static/geo.js')).wgsToGcj(lat, lon).map((v) => v.toFixed(6))",
            list(SCHOOL),
        )
        shown = school.get_attribute("data-shown")
        assert shown == ",".join(expected)
        lat, lon = (float(v) for v in expected)
        # Gaode's offset here (Zhejiang) is a few hundred metres: really moved
        assert 0.001 < abs(lat - SCHOOL[0]) + abs(lon - SCHOOL[1]) < 0.02


def test_the_hub_serves_installed_library_files_only(map_hub: HubServer) -> None:
    listed = httpx.get(f"{map_hub.url}/api/assets").json()
    assert {p["name"]: p["installed"] for p in listed["packages"]} == {name: True for name in assets.PACKAGES}
    js = httpx.get(f"{map_hub.url}/assets/leaflet/dist/leaflet.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"] and "Leaflet" in js.text[:2000]
    refused = [
        "/assets/leaflet/..%2F..%2Fdevice-secret",
        "/assets/leaflet/%2e%2e/%2e%2e/device-secret",
        "/assets/leaflet/.installed.json",
        "/assets/other/dist/leaflet.js",
        "/assets/leaflet/dist/none.js",
    ]
    for path in refused:
        answer = httpx.get(map_hub.url + path)
        assert answer.status_code == 404, path
        assert "sharpeye assets install" in answer.json()["detail"]
