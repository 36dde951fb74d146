"""The recordings API over a real hub recording the demo's school-gate camera (synthetic H.264) continuously:
segments of a range, playback from a moment, one MP4 of a range, bad input, scope, metrics and health."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest
import yaml
from sharpeye.config.loader import demo_path, load_file
from sharpeye.ingest.registry import installed

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.conftest import HubClient, app_client, hub_settings
from tests.helpers import wait_for

CAM = "cam-school-gate"


def recording_site(tmp_path: Path, record: dict[str, Any]) -> Path:
    """The demo site with ``record`` on the school-gate camera."""
    doc = yaml.safe_load(demo_path().read_text(encoding="utf-8"))
    for device in doc["devices"]:
        if device["id"] == CAM:
            device["record"] = record
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
def client(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> Iterator[HubClient]:
    site = load_file(recording_site(tmp_path, {"mode": "continuous", "segment_s": 2}), installed())
    settings = hub_settings(tmp_path / "data", redis_server.url, mqtt_broker.url, admin_password="Rec-Admin-Pw1",
                            prefix=keys.prefix, cameras=True, camera_workers=1)  # fmt: skip
    with app_client(settings, site, sign_in="Rec-Admin-Pw1") as client:
        yield client


def _decode(data: bytes, tmp: Path) -> tuple[int, str]:
    tmp.write_bytes(data)
    with av.open(str(tmp)) as container:
        stream = container.streams.video[0]
        return sum(1 for _ in container.decode(stream)), stream.codec_context.name


def test_record_list_play_and_download(client: HubClient, tmp_path: Path) -> None:
    since = time.time() - 1
    url = f"/api/cameras/{CAM}/recordings"

    def segments() -> list[dict[str, Any]]:
        res = client.get(url, params={"start": since, "end": time.time() + 60})
        assert res.status_code == 200, res.text
        return list(res.json()["segments"])

    wait_for(lambda: len(segments()) >= 3, timeout=60, what="three recorded segments")
    body = client.get(url, params={"start": since, "end": time.time() + 60}).json()
    assert body["recorder"]["state"] == "recording" and body["recorder"]["errors"] == 0
    segs = body["segments"]
    assert [s["start_ms"] for s in segs] == sorted(s["start_ms"] for s in segs)
    # Each segment is an MP4 the browser can play: H.264 that decodes.
    res = client.get(segs[0]["url"])
    assert res.status_code == 200 and res.headers["content-type"] == "video/mp4"
    frames, codec = _decode(res.content, tmp_path / "seg.mp4")
    assert codec == "h264" and frames >= 10
    # Byte ranges, for seeking in the <video> element.
    part = client.get(segs[0]["url"], headers={"Range": "bytes=0-99"})
    assert part.status_code == 206 and len(part.content) == 100
    # Playback of a moment: the segment holding it first, and the offset into it.
    moment = (segs[1]["start_ms"] + 500) / 1000
    play = client.get(f"{url}/play", params={"t": moment}).json()
    assert play["segments"][0]["start_ms"] == segs[1]["start_ms"]
    assert abs(play["offset_s"] - 0.5) < 0.01
    # One MP4 for a range across segments, remuxed (still H.264), from a key frame.
    start, end = segs[0]["start_ms"] / 1000 + 0.2, segs[2]["end_ms"] / 1000 - 0.2
    res = client.get(f"{url}/download", params={"start": start, "end": end})
    assert res.status_code == 200, res.text
    assert "attachment" in res.headers["content-disposition"]
    frames, codec = _decode(res.content, tmp_path / "range.mp4")
    assert codec == "h264"
    span = end - start
    assert frames >= span * 5, (frames, span)  # the synthetic camera sends at least 5 fps
    assert not list((client.hub.settings.data_dir / "recordings" / ".exports").iterdir())  # deleted once sent
    audit = client.get("/api/audit?action=recording.").json()
    assert [(e["action"], e["target"]) for e in audit] == [("recording.download", CAM)]
    # Metrics and health.
    metrics = client.get("/metrics").text
    assert f'sharpeye_recording{{camera="{CAM}",what="segments"}}' in metrics
    health = client.get("/api/health").json()
    assert health["components"]["recordings"]["status"] == "ok", health


def test_bad_requests_are_clear(client: HubClient) -> None:
    url = f"/api/cameras/{CAM}/recordings"
    now = time.time()
    res = client.get(url, params={"start": now, "end": now - 10})
    assert res.status_code == 422 and "not after start" in res.text
    res = client.get(url, params={"start": now - 40 * 86400, "end": now})
    assert res.status_code == 422 and "at most" in res.text
    assert client.get(url, params={"start": "yesterday", "end": now}).status_code == 422
    res = client.get(f"{url}/download", params={"start": now - 7200, "end": now - 3600})
    assert res.status_code == 404 and "no recording" in res.text
    assert client.get(f"{url}/play", params={"t": now + 3600}).status_code == 404
    assert client.get(f"{url}/file/20260101/..%2F..%2Fsecret.mp4").status_code == 404
    assert client.get(f"{url}/file/20260101/1-2.mp4").status_code == 404
    assert client.get("/api/cameras/no-such-cam/recordings", params={"start": now - 1, "end": now}).status_code == 404
