"""The geographic map's site settings: tiles, plan bounds, devices placed by lon/lat; every mistake named."""

from __future__ import annotations

import pytest
from sharpeye.config.loader import ConfigError, demo_path, load_text
from sharpeye.config.site import MapTiles
from sharpeye.ingest.registry import installed

TIANDITU = "https://t{s}.tianditu.gov.cn/DataServer?T=vec_w&x={x}&y={y}&l={z}&tk=KEY"
PLAN = "    bounds: {south: 30.2500, west: 120.0000, north: 30.2563, east: 120.0104}\n"
DEVICE = "    position: {x: 0.22, y: 0.30}\n"


def demo_with(*patches: tuple[str, str]) -> str:
    text = demo_path().read_text(encoding="utf-8")
    for old, new in patches:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def test_tiles_bounds_and_lon_lat_load() -> None:
    text = demo_with(
        (PLAN, PLAN + f"  map:\n    tiles: {{url: '{TIANDITU}', subdomains: '01234567', attribution: 天地图, "
                      "max_zoom: 18}\n    center: {lon: 120.005, lat: 30.253}\n    zoom: 16\n"),
        (DEVICE, "    position: {x: 0.22, y: 0.30, lon: 120.0023, lat: 30.2544}\n"),
    )  # fmt: skip
    site = load_text(text, installed(), "site.yaml")
    tiles = site.site.map.tiles
    assert tiles is not None and tiles.gcj02 is False and tiles.max_zoom == 18
    assert tiles.origins() == [f"https://t{i}.tianditu.gov.cn" for i in range(8)]
    assert site.site.plan is not None and site.site.plan.bounds is not None
    fence = next(d for d in site.devices if d.id == "fence-reservoir")
    assert fence.position is not None and (fence.position.lon, fence.position.lat) == (120.0023, 30.2544)
    # lon/lat alone is a position too (no plan place)
    alone = load_text(demo_with((DEVICE, "    position: {lon: 120.0023, lat: 30.2544}\n")), installed(), "site.yaml")
    placed = next(d for d in alone.devices if d.id == "fence-reservoir").position
    assert placed is not None and placed.x is None


MISTAKES = [
    ((DEVICE, "    position: {x: 0.22, y: 0.30, lon: 190, lat: 30.2}\n"), "devices[0].position.lon"),
    ((DEVICE, "    position: {x: 0.22, y: 0.30, lat: 30.2}\n"), "give both lon and lat"),
    ((DEVICE, "    position: {x: 0.22}\n"), "give both x and y"),
    ((DEVICE, "    position: {}\n"), "a position needs x and y (site plan) or lon and lat"),
    (("bounds: {south: 30.2500", "bounds: {south: 30.2600"), "south (30.26) must be below north (30.2563)"),
    ((PLAN, PLAN + "  map:\n    tiles: {url: 'https://tiles.example/{z}/{x}.png'}\n"), "lacks {y}"),
    ((PLAN, PLAN + "  map:\n    tiles: {url: 'ftp://tiles.example/{z}/{x}/{y}.png'}\n"), "must start with https://"),
    ((PLAN, PLAN + f"  map:\n    tiles: {{url: '{TIANDITU}'}}\n"), "set subdomains"),
    ((PLAN, PLAN + "  map:\n    tiles: {url: '/t/{z}/{x}/{y}', min_zoom: 12, max_zoom: 10}\n"), "min_zoom (12)"),
    ((PLAN, PLAN + "  map:\n    tiles: {url: '/t/{z}/{x}/{y}', max_zoom: 30}\n"), "site.map.tiles.max_zoom"),
]


@pytest.mark.parametrize(("patch", "expected"), MISTAKES)
def test_each_mistake_is_named(patch: tuple[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_text(demo_with(patch), installed(), "site.yaml")
    assert expected in str(info.value)


def test_tile_origins_for_the_content_security_policy() -> None:
    assert MapTiles(url="/tiles/{z}/{x}/{y}.png").origins() == []
    gaode = MapTiles(url="https://webrd0{s}.is.autonavi.com/appmaptile?x={x}&y={y}&z={z}&style=8", subdomains="1234",
                     gcj02=True)  # fmt: skip
    assert gaode.origins() == [f"https://webrd0{i}.is.autonavi.com" for i in "1234"]
    with pytest.raises(ValueError, match="quote"):
        MapTiles(url="https://x/{z}/{x}/{y}.png' 'unsafe-inline")
