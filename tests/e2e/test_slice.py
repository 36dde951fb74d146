"""The vertical slice through real parts: fence message on a real broker → reading → alarm in real Redis →
case in the governance queue → the API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.conftest import HubClient, app_client, hub_settings
from tests.helpers import Publisher, wait_for


@pytest.fixture
def hub_client(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> Iterator[HubClient]:
    # cameras=False (hub_settings' default): this slice is about sensors; the camera path has its own tests
    settings = hub_settings(tmp_path, redis_server.url, mqtt_broker.url, admin_password="test-admin-pw",
                            prefix=keys.prefix, node_id=f"node-{keys.prefix}")  # fmt: skip
    with app_client(settings, sign_in="test-admin-pw", connected=True) as client:
        yield client


def event(seq: int, zone: str, kind: str = "alarm", cause: str = "intrusion") -> dict[str, object]:
    return {"seq": seq, "ts": datetime.now(UTC).isoformat(), "event": kind, "cause": cause, "zone": zone}


def test_fence_intrusion_becomes_alarm_and_case(hub_client: HubClient, mqtt_broker: EmbeddedMosquitto) -> None:
    pub = Publisher(mqtt_broker.url)
    try:
        pub.publish("sharpeye/fence/fence-reservoir/event", event(1, "z1"))
        alarms = wait_for(lambda: hub_client.get("/api/alarms").json()["items"], what="an alarm")
        assert len(alarms) == 1
        alarm = alarms[0]
        assert alarm["rule_id"] == "fence-intrusion"
        assert alarm["device_id"] == "fence-reservoir" and alarm["channel"] == "z1"
        assert alarm["state"] == "active_unack" and alarm["severity"] == "major"
        assert alarm["org_unit"] == "shanxia-g1"
        assert alarm["cameras"] == ["cam-reservoir-n"]

        cases = wait_for(lambda: hub_client.get("/api/cases").json()["items"], what="a case")
        assert len(cases) == 1
        case = cases[0]
        assert case["alarm_ids"] == [alarm["id"]]
        assert case["stage"] == "dispatched"
        assert case["department"] == "sx-cwh"  # the village that handles perimeter intrusions
        detail = hub_client.get(f"/api/cases/{case['id']}").json()
        assert [e["action"] for e in detail["history"]] == ["report", "accept", "dispatch"]

        # the case id is waiting in the department's queue (a Redis Stream with a consumer group)
        hub = hub_client.hub
        entries = hub_client.call(lambda: hub.queue.claim("sx-cwh", "handler-1"))
        assert [e.case_id for e in entries] == [case["id"]]

        # a repeat of the same condition counts, it does not open a second alarm or case
        pub.publish("sharpeye/fence/fence-reservoir/event", event(2, "z1"))
        wait_for(lambda: hub_client.get(f"/api/alarms/{alarm['id']}").json()["alarm"]["count"] == 2, what="count 2")
        # a late (older) restore is ignored; the newer restore clears
        pub.publish("sharpeye/fence/fence-reservoir/event", event(1, "z1", "restore"))
        pub.publish("sharpeye/fence/fence-reservoir/event", event(3, "z1", "restore"))
        cleared = wait_for(
            lambda: hub_client.get(f"/api/alarms/{alarm['id']}").json()["alarm"]["state"] == "cleared_unack",
            what="cleared",
        )
        assert cleared
        assert len(hub_client.get("/api/alarms").json()["items"]) == 1
        assert len(hub_client.get("/api/cases").json()["items"]) == 1
    finally:
        pub.close()


def test_malformed_payload_is_dead_lettered_and_the_next_good_one_alarms(
    hub_client: HubClient, mqtt_broker: EmbeddedMosquitto
) -> None:
    pub = Publisher(mqtt_broker.url)
    try:
        pub.publish("sharpeye/fence/fence-school/event", b"{not json")
        pub.publish("sharpeye/fence/fence-school/event", {"seq": 1, "event": "alarm"})
        pub.publish("sharpeye/fence/ghost/event", event(1, "z1"))
        pub.publish("sharpeye/fence/fence-school/event", event(5, "z2"))
        alarm = wait_for(lambda: hub_client.get("/api/alarms").json()["items"], what="alarm after garbage")[0]
        assert alarm["device_id"] == "fence-school" and alarm["channel"] == "z2"
        letters = wait_for(
            lambda: len(hub_client.get("/api/deadletters").json()) >= 3 and hub_client.get("/api/deadletters").json(),
            what="3 dead letters",
        )
        reasons = sorted(letter["reason"] for letter in letters)
        assert reasons == ["not_json", "unknown_device", "wrong_shape"]
        assert all(letter["detail"] for letter in letters)
        devices = {d["id"]: d for d in hub_client.get("/api/devices").json()}
        assert devices["fence-school"]["errors"] == 2
        assert devices["fence-school"]["messages"] == 1
    finally:
        pub.close()


def test_routes_need_a_token(hub_client: HubClient) -> None:
    anonymous = {"Authorization": ""}
    for path in ("/api/alarms", "/api/cases", "/api/devices", "/api/health", "/api/deadletters"):
        assert hub_client.get(path, headers=anonymous).status_code == 401, path
    wrong = {"username": "admin", "password": "wrong"}
    assert hub_client.post("/api/auth/token", data=wrong, headers=anonymous).status_code == 401
    health = hub_client.get("/api/health").json()
    assert health["status"] == "ok"
    assert set(health["components"]) >= {"redis", "mqtt", "database"}
    assert health["components"]["redis"]["endpoint"].startswith("redis://127.0.0.1:")
    assert hub_client.get("/", headers=anonymous).status_code == 200
    metrics = hub_client.get("/metrics", headers=anonymous).text
    assert "sharpeye_messages_total" in metrics


def test_websocket_streams_alarm_changes(hub_client: HubClient, mqtt_broker: EmbeddedMosquitto) -> None:
    token = hub_client.headers["Authorization"].removeprefix("Bearer ")
    with hub_client.websocket_connect("/api/ws/alarms") as ws:
        ws.send_json({"token": "wrong"})
        try:
            ws.receive_json()
            raise AssertionError("a wrong token must close the stream")
        except Exception as exc:  # starlette raises WebSocketDisconnect
            assert "1008" in repr(exc) or "Disconnect" in type(exc).__name__
    with hub_client.websocket_connect("/api/ws/alarms") as ws:
        ws.send_json({"token": token})
        assert ws.receive_json()["type"] == "hello"
        pub = Publisher(mqtt_broker.url)
        try:
            pub.publish("sharpeye/fence/fence-school/event", event(7, "z3"))
            message = ws.receive_json()
            assert message["type"] == "raised" and message["state"] == "active_unack"
            detail = hub_client.get(f"/api/alarms/{message['alarm']}").json()
            assert detail["alarm"]["channel"] == "z3"
        finally:
            pub.close()


def test_silences_through_the_api(hub_client: HubClient) -> None:
    now = datetime.now(UTC)
    spec = {"matchers": {"device_id": "fence-school"}, "starts_at": now.isoformat(),
            "ends_at": (now.replace(microsecond=0) + timedelta(hours=1)).isoformat(), "reason": "围栏检修",
            "kind": "maintenance"}  # fmt: skip
    assert hub_client.post("/api/silences", json={**spec, "reason": ""}).status_code == 422
    assert hub_client.post("/api/silences", json={**spec, "ends_at": now.isoformat()}).status_code == 422
    created = hub_client.post("/api/silences", json=spec)
    assert created.status_code == 201
    sid = created.json()["id"]
    assert created.json()["created_by"] == "user:admin"
    changed = hub_client.put(f"/api/silences/{sid}", json={**spec, "reason": "围栏检修（延长）"}).json()
    assert changed["reason"] == "围栏检修（延长）" and changed["created_by"] == "user:admin"
    assert [s["id"] for s in hub_client.get("/api/silences").json()] == [sid]
    ended = hub_client.delete(f"/api/silences/{sid}").json()
    assert datetime.fromisoformat(ended["ends_at"]) <= datetime.now(UTC)
    actions = [e["action"] for e in hub_client.get("/api/audit?action=silence.").json()]
    assert actions == ["silence.expire", "silence.update", "silence.create"]
