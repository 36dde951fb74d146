"""Through the whole hub: a file camera with a ``gb_code`` in the site config is in the Catalog the hub answers its
upper platform, and the upper platform's INVITE of that code gets the camera's packets (from the hub's camera
service) as PS over RTP; the counters show in /metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
