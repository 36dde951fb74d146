"""Through the whole hub: a file camera with a ``gb_code`` in the site config is in the Catalog the hub answers its
upper platform, and the upper platform's INVITE of that code gets the camera's packets (from the hub's camera
service) as PS over RTP; the counters show in /metrics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sharpeye.config.loader import demo_path, load_text
from sharpeye.ingest.registry import installed
from sharpeye.simulators.gb28181.upper import UpperPlatformSimulator

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis, free_port
from tests.conftest import app_client, hub_settings
from tests.helpers import env_secret, wait_for
from tests.ingest.gb28181.test_gb28181_offer import CAMERA_CODE, vcl, write_clip

PLATFORM_ID = "34020000002000000001"
UPPER_ID = "34010000002000000001"


def site_yaml(upper_port: int, clip: Path) -> str:
    data: dict[str, Any] = yaml.safe_load(demo_path().read_text(encoding="utf-8"))
    data["gb28181"] = {
        "sip_id": PLATFORM_ID, "port": 0, "sip_t1_s": 0.1, "media_port_min": 0, "media_port_max": 0,
        "cascade": {"upper_id": UPPER_ID, "upper_host": "127.0.0.1", "upper_port": upper_port, "local_port": 0,
                    "password": env_secret("upper-pw"), "retry_s": 0.2},
    }  # fmt: skip
    devices = [d for d in data["devices"] if d["kind"] != "gb28181" and not str(d.get("url")).startswith("gb28181:")]
    for d in devices:  # the demo's cameras stay in the config (rules name them) but are not captured here
        if d["kind"] == "camera":
            d["enabled"] = False
    grid = devices[0]["grid"]
    devices.append({"id": "gate-file-cam", "kind": "camera", "name": "北门卡口", "grid": grid, "url": str(clip),
                    "gb_code": CAMERA_CODE})  # fmt: skip
    data["devices"] = devices
    return yaml.safe_dump(data, allow_unicode=True)


def test_hub_offers_a_coded_camera_upward(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> None:
    clip = tmp_path / "gate.ts"
    units = {vcl(u, "h264") for u in write_clip(clip, "h264")}
    settings = hub_settings(tmp_path / "hub", redis_server.url, mqtt_broker.url, admin_password="pw",
                            prefix=keys.prefix, cameras=True)  # fmt: skip
    upper_port = free_port()
    site = load_text(site_yaml(upper_port, clip), installed())
    with app_client(settings, site) as client:
        portal = client.portal
        assert portal is not None
        upper = UpperPlatformSimulator(UPPER_ID, "upper-pw", port=upper_port, t1=0.1)
        portal.call(upper.start)
        try:
            wait_for(lambda: upper.lowers.get(PLATFORM_ID), timeout=15, what="hub registered upward")

            async def catalog_item() -> dict[str, str] | None:
                pages = await upper.query(PLATFORM_ID, "Catalog")
                items = {item["deviceid"]: item for page in pages for item in page.items}
                item = items.get(CAMERA_CODE)
                return item if item is not None and item["status"] == "ON" else None

            item = wait_for(lambda: portal.call(catalog_item), timeout=20, interval=0.5, what="camera in the catalog")
            assert item["name"] == "北门卡口" and item["parentid"] == PLATFORM_ID

            async def invite() -> Any:
                return await upper.invite(PLATFORM_ID, CAMERA_CODE)

            watch = portal.call(invite)
            assert watch.status == 200
            wait_for(lambda: len(watch.units) >= 10, timeout=15, what="the camera's frames at the upper platform")
            assert all(vcl(u.data, "h264") in units for u in list(watch.units))
            metrics = client.get("/metrics").text
            assert 'sharpeye_gb_media_events_total{event="invite.camera",side="upper"} 1.0' in metrics
            assert 'sharpeye_gb_media_sessions{side="upper"} 1.0' in metrics

            async def bye() -> int:
                return await upper.bye(watch)

            assert portal.call(bye) == 200
            wait_for(lambda: not client.hub.gb_cascade.streams, timeout=10, what="the upstream ended")
        finally:
            portal.call(upper.stop)


def test_two_upper_platforms_and_playback_of_an_own_recording(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> None:
    """Two upper platforms in ``cascades``: the city platform sees the recorded file camera, asks its RecordInfo (the
    hub's own recording index) and plays back a range of it (the recorded segments as PS over RTP, every frame timed
    inside the range); the district platform, filtered to another civil code, does not see it. /metrics and
    /api/health name each platform."""
    clip = tmp_path / "gate.ts"
    units = {vcl(u, "h264") for u in write_clip(clip, "h264")}
    settings = hub_settings(tmp_path / "hub", redis_server.url, mqtt_broker.url, admin_password="pw",
                            prefix=keys.prefix, cameras=True)  # fmt: skip
    city_port, district_port = free_port(), free_port()
    data = yaml.safe_load(site_yaml(city_port, clip))
    city = data["gb28181"].pop("cascade")
    district = {**city, "upper_id": "34010200002000000001", "upper_port": district_port, "channels": ["340201"]}
    data["gb28181"]["cascades"] = [{"id": "city", **city}, {"id": "district", **district}]
    camera = next(d for d in data["devices"] if d["id"] == "gate-file-cam")
    camera["record"] = {"segment_s": 2}
    site = load_text(yaml.safe_dump(data, allow_unicode=True), installed())
    with app_client(settings, site) as client:
        portal = client.portal
        assert portal is not None
        uppers = [UpperPlatformSimulator(UPPER_ID, "upper-pw", port=city_port, t1=0.1),
                  UpperPlatformSimulator("34010200002000000001", "upper-pw", port=district_port, t1=0.1)]  # fmt: skip
        for upper in uppers:
            portal.call(upper.start)
        try:
            wait_for(lambda: all(u.lowers.get(PLATFORM_ID) for u in uppers), timeout=15, what="hub registered twice")
            store = client.hub.cameras.recordings
            wait_for(lambda: len(store.segments("gate-file-cam", 0, 4e9)) >= 3, timeout=30, what="recorded segments")
            segments = store.segments("gate-file-cam", 0, 4e9)
            a, b = int(segments[0].start) + 1, int(segments[2].end)

            async def records() -> Any:
                local = datetime.fromtimestamp(a - 1, UTC).astimezone(ZoneInfo("Asia/Shanghai"))
                until = local + timedelta(hours=1)
                fields: list[Any] = [("StartTime", local.strftime("%Y-%m-%dT%H:%M:%S")),
                                     ("EndTime", until.strftime("%Y-%m-%dT%H:%M:%S"))]  # fmt: skip
                return await uppers[0].query(PLATFORM_ID, "RecordInfo", target=CAMERA_CODE, fields=fields)

            pages = portal.call(records)
            assert pages[0].sum_num >= 1 and pages[0].items[0]["deviceid"] == CAMERA_CODE

            async def playback() -> Any:
                return await uppers[0].invite(PLATFORM_ID, CAMERA_CODE, session="Playback", time=(a, b),
                                              ssrc="1100000002")  # fmt: skip

            watch = portal.call(playback)
            assert watch.status == 200
            wait_for(lambda: client.hub.gb_cascade is not None and not client.hub.gb_cascade.streams, timeout=20,
                     what="the range played to its end")  # fmt: skip
            seconds = [u.pts / 90000 for u in list(watch.units) if u.pts is not None]
            assert len(seconds) >= (b - a - 1.5) * 10, len(seconds)
            assert all(0 <= s <= b - a for s in seconds), seconds
            assert all(vcl(u.data, "h264") in units for u in list(watch.units))

            async def district_catalog() -> set[str]:
                pages = await uppers[1].query(PLATFORM_ID, "Catalog")
                return {item["deviceid"] for page in pages for item in page.items}

            assert CAMERA_CODE not in portal.call(district_catalog)
            metrics = client.get("/metrics").text
            assert 'sharpeye_gb_cascade_registered{platform="city"} 1.0' in metrics
            assert 'sharpeye_gb_cascade_registered{platform="district"} 1.0' in metrics
            components = portal.call(client.hub.health_report)["components"]
            assert components["gb28181-cascade:city"]["status"] == "ok", components["gb28181-cascade:city"]
            assert "registered to 34010200002000000001" in components["gb28181-cascade:district"]["detail"]
        finally:
            for upper in uppers:
                portal.call(upper.stop)
