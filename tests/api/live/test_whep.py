"""The WHEP route over HTTP against a real hub: status codes, Location, leaving, auth, bad input, shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiortc import RTCPeerConnection

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.conftest import HubClient, app_client, hub_settings


def browser_like_offer() -> str:
    async def make() -> str:
        pc = RTCPeerConnection()
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        sdp: str = pc.localDescription.sdp
        await pc.close()
        return sdp

    return asyncio.run(make())


@pytest.fixture
def client(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> Iterator[HubClient]:
    settings = hub_settings(tmp_path, redis_server.url, mqtt_broker.url, admin_password="whep-admin-pw",
                            prefix=keys.prefix, node_id=f"node-{keys.prefix}")  # fmt: skip
    with app_client(settings, sign_in="whep-admin-pw") as client:
        live = client.live
        yield client
    assert live.viewers("cam-reservoir-n") == 0, "the app's lifespan closes every viewer"


def test_offer_answer_leave(client: HubClient) -> None:
    offer = browser_like_offer()
    sdp = {"Content-Type": "application/sdp"}
    res = client.post("/api/cameras/cam-school-gate/whep", content=offer, headers=sdp)
    assert res.status_code == 201, res.text
    assert res.headers["content-type"].startswith("application/sdp")
    answer = res.text
    assert answer.startswith("v=0") and "H264" in answer and "VP8" not in answer
    assert "a=candidate:" in answer and " 127.0.0.1 " in answer
    location = res.headers["Location"]
    status = client.get("/api/cameras/live").json()
    assert [(f["camera"], f["viewers"], f["running"]) for f in status["feeds"]] == [("cam-school-gate", 1, True)]
    assert location.startswith("/api/cameras/cam-school-gate/whep/")
    live = client.live
    assert live.viewers("cam-school-gate") == 1
    assert client.delete(location).status_code == 204
    assert live.viewers("cam-school-gate") == 0
    assert client.delete(location).status_code == 404
    audit = client.get("/api/audit?action=live.").json()
    assert [(e["action"], e["target"], e["actor"]) for e in audit] == [
        ("live.close", "cam-school-gate", "user:admin"),
        ("live.open", "cam-school-gate", "user:admin"),
    ]

    # a second viewer is closed by shutdown (checked in the fixture: the service is gone after the lifespan)
    assert client.post("/api/cameras/cam-hillside/whep", content=offer, headers=sdp).status_code == 201


def test_refusals(client: HubClient) -> None:
    offer = browser_like_offer()
    sdp = {"Content-Type": "application/sdp"}
    assert client.post("/api/cameras/nope/whep", content=offer, headers=sdp).status_code == 404
    assert client.post("/api/cameras/fence-school/whep", content=offer, headers=sdp).status_code == 404
    assert client.post("/api/cameras/cam-hillside/whep", json={"sdp": offer}).status_code == 415
    assert client.post("/api/cameras/cam-hillside/whep", content="hello", headers=sdp).status_code == 400
    huge = "v=0\r\n" + "a=x\r\n" * 20000
    assert client.post("/api/cameras/cam-hillside/whep", content=huge, headers=sdp).status_code == 413
    assert client.post("/api/cameras/cam-hillside/whep", content=b"\xff\xfe", headers=sdp).status_code == 400
    anonymous = {**sdp, "Authorization": ""}
    assert client.post("/api/cameras/cam-hillside/whep", content=offer, headers=anonymous).status_code == 401
    assert client.live.sessions == {}


def test_site_route(client: HubClient) -> None:
    site = client.get("/api/site").json()
    assert site["name"] == "清水街道综治中心" and site["timezone"] == "Asia/Shanghai"
    devices = {d["id"]: d for d in site["devices"]}
    assert devices["fence-reservoir"]["cameras"] == ["cam-reservoir-n"]
    assert devices["cam-hillside"]["x"] == pytest.approx(0.40)
    assert "url" not in devices["cam-hillside"], "camera URLs may hold credentials"
    plan = client.get(site["plan"]["url"])
    assert plan.status_code == 200 and plan.headers["content-type"].startswith("image/svg+xml")
    assert "山下水库" in plan.text
    assert client.get("/api/site", headers={"Authorization": ""}).status_code == 401
