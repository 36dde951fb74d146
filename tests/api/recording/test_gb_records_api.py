"""Device recordings through the whole hub: the demo's GB/T 28181 NVR (simulated, registering to the hub's SIP
platform) answers RecordInfo for the camera that is its channel, and a range comes back as an MP4 remuxed from a
Download INVITE; bad input and cameras that are no GB channel are clear errors."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av
import yaml
from sharpeye.config.loader import demo_path, load_text
from sharpeye.ingest.credential import device_password
from sharpeye.ingest.registry import installed
from sharpeye.simulators.gb28181.device import DeviceFleet, SimDevice
from sharpeye.simulators.gb28181.record import RecordPlan

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.conftest import app_client, hub_settings
from tests.helpers import wait_for

NVR = "34020000001180000101"
CHANNELS = [("34020000001310000101", "村口卡口"), ("34020000001310000102", "村委会门口")]
SECRET = "gb-records-secret-0123456789"
START = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)


def test_device_records_and_clip_through_the_api(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> None:
    data = yaml.safe_load(demo_path().read_text(encoding="utf-8"))
    data["gb28181"]["sip_t1_s"] = 0.1
    site = load_text(yaml.safe_dump(data, allow_unicode=True), installed())
    settings = hub_settings(tmp_path, redis_server.url, mqtt_broker.url, admin_password="Gb-Rec-Admin1",
                            device_secret=SECRET, prefix=keys.prefix)  # fmt: skip
    with app_client(settings, site, sign_in="Gb-Rec-Admin1") as client:
        portal = client.portal
        assert portal is not None
        sim = SimDevice(id=NVR, password=device_password(SECRET, NVR, "sip"), kind="nvr", channels=list(CHANNELS),
                        records=RecordPlan(period_s=600, length_s=300, page=2))  # fmt: skip
        platform = wait_for(lambda: client.hub.gb_platform, timeout=20, what="the hub's GB/T 28181 platform")
        fleet = DeviceFleet([sim], platform_id=platform.settings.sip_id, platform_port=platform.port, t1=0.1)
        portal.call(fleet.start)
        try:
            wait_for(lambda: len(platform.device(NVR).channels) == 2, timeout=20, what="the NVR's catalog")
            url = "/api/cameras/cam-village-gb/device-records"
            params = {"start": START.isoformat(), "end": (START + timedelta(hours=1)).isoformat()}
            res = client.get(url, params=params)
            assert res.status_code == 200, res.text
            body = res.json()
            assert body["complete"] and body["sum_num"] == 6 and len(body["records"]) == 6
            assert body["channel_id"] == CHANNELS[1][0] and body["device_id"] == NVR
            assert body["records"][0]["start"] == "2026-12-07T01:00:00Z"
            assert body["records"][0]["end"] == "2026-12-07T01:05:00Z"
            # A range as an MP4 (Download INVITE, remuxed), inline for the console's player.
            t0 = time.monotonic()
            res = client.get("/api/cameras/cam-village-gb/device-clip",
                             params={"start": START.timestamp(), "end": START.timestamp() + 6, "speed": 8})  # fmt: skip
            assert res.status_code == 200, res.text
            assert res.headers["content-type"] == "video/mp4" and res.headers["x-complete"] == "true"
            assert time.monotonic() - t0 < 10
            clip = tmp_path / "clip.mp4"
            clip.write_bytes(res.content)
            with av.open(str(clip)) as container:
                stream = container.streams.video[0]
                assert stream.codec_context.name == "h264"
                assert sum(1 for _ in container.decode(stream)) >= 50
            two = {"start": START.timestamp(), "end": START.timestamp() + 2, "download": "true"}
            res = client.get("/api/cameras/cam-village-gb/device-clip", params=two)
            assert res.status_code == 200 and "attachment" in res.headers["content-disposition"]
            audit = client.get("/api/audit?action=gb28181.").json()
            assert [(e["action"], e["target"]) for e in audit] == [("gb28181.download", "cam-village-gb")]
            # Bad input.
            bad = client.get(url, params={"start": params["end"], "end": params["start"]})
            assert bad.status_code == 422 and "not after" in bad.text
            res = client.get("/api/cameras/cam-school-gate/device-records", params=params)
            assert res.status_code == 422 and "not a GB/T 28181 channel" in res.text
            res = client.get("/api/cameras/cam-village-gb/device-clip",
                             params={"start": START.timestamp(), "end": START.timestamp() + 7200})  # fmt: skip
            assert res.status_code == 422
            # A device that stops answering: a clear 504 after the query timeout.
            sim.records.answer = False
            res = client.get(url, params=params)
            assert res.status_code == 504 and "RecordInfo" in res.text
        finally:
            portal.call(fleet.stop)
