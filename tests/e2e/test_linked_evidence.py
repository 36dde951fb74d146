"""A fence intrusion records evidence from the zone's linked camera: a snapshot and a clip, served by the API."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.conftest import app_client, hub_settings
from tests.helpers import Publisher, wait_for


def test_fence_alarm_gets_a_snapshot_and_clip_from_its_linked_camera(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> None:
    settings = hub_settings(tmp_path, redis_server.url, mqtt_broker.url, camera_workers=1,
                            admin_password="Evidence-Pass-1", prefix=keys.prefix, cameras=True)  # fmt: skip
    with app_client(settings) as client:
        token = client.post("/api/auth/token", data={"username": "admin", "password": "Evidence-Pass-1"}).json()
        client.headers["Authorization"] = f"Bearer {token['access_token']}"
        wait_for(
            lambda: any(c.get("state") == "live" for c in client.get("/api/cameras").json()
                        if c["camera_id"] == "cam-school-gate"),
            timeout=30, what="the school gate camera live",
        )  # fmt: skip
        pub = Publisher(mqtt_broker.url)
        now = datetime.now(UTC).isoformat()
        pub.publish("sharpeye/fence/fence-school/event",
                    {"seq": 1, "ts": now, "event": "alarm", "cause": "intrusion", "zone": "z2"})  # fmt: skip
        pub.close()

        def fence_alarm_evidence() -> list[str] | None:
            items = client.get("/api/alarms?device=fence-school").json()["items"]
            return items[0]["evidence"] if items and items[0]["evidence"] else None

        refs = wait_for(fence_alarm_evidence, timeout=20, what="evidence on the fence alarm")
        assert all(r.startswith("cam-school-gate/") and "-linked-" in r for r in refs)
        jpg = next(r for r in refs if r.endswith(".jpg"))
        mp4 = next(r for r in refs if r.endswith(".mp4"))
        image = wait_for(lambda: (r := client.get(f"/api/evidence/{jpg}")).status_code == 200 and r, what="snapshot")
        assert image.headers["content-type"] == "image/jpeg"
        picture = cv2.imdecode(np.frombuffer(image.content, np.uint8), cv2.IMREAD_COLOR)
        assert picture is not None and picture.shape[1] > 100 and picture.std() > 10  # a real picture
        clip = wait_for(lambda: (r := client.get(f"/api/evidence/{mp4}")).status_code == 200 and r, timeout=15,
                        what="clip")  # fmt: skip
        assert clip.headers["content-type"] == "video/mp4" and len(clip.content) > 1000
        assert client.get("/api/evidence/..%2F..%2Fetc%2Fpasswd").status_code == 404
        assert client.get("/api/evidence/cam-school-gate/../../x.jpg").status_code == 404
        downloads = client.get("/api/audit?action=evidence.download").json()
        assert {e["target"] for e in downloads} >= {jpg, mp4} and all(e["actor"] == "user:admin" for e in downloads)
