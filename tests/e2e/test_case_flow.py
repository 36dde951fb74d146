"""A case through the API: an alarm becomes a dispatched case; the department handler claims it, returns it
once with a reason, it is reassigned, handled, checked, reworked and closed; illegal steps are refused with the
reason; a person's report enters the same flow; the indicators count it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sharpeye.api.permission import Role

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.conftest import HubClient, app_client, hub_settings
from tests.helpers import Publisher, wait_for

PW = "Flow-Test-Password-1"


@pytest.fixture
def client(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> Iterator[HubClient]:
    settings = hub_settings(tmp_path, redis_server.url, mqtt_broker.url, admin_password=PW, prefix=keys.prefix)
    with app_client(settings) as c:
        users = c.users
        assert c.portal is not None
        c.portal.call(lambda: users.add("village", PW, Role.department_handler, "shanxia", department="sx-cwh"))
        c.portal.call(lambda: users.add("town", PW, Role.department_handler, None, department="qs-zfd"))
        c.portal.call(lambda: users.add("duty", PW, Role.operator))
        c.wait_connected()
        yield c


def login(client: HubClient, name: str) -> dict[str, str]:
    token = client.post("/api/auth/token", data={"username": name, "password": PW}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def act(client: HubClient, who: dict[str, str], case_id: str, action: str, **extra: Any) -> Any:
    return client.post(f"/api/cases/{case_id}/actions", json={"action": action, **extra}, headers=who)


def test_alarm_case_travels_the_flow(client: HubClient, mqtt_broker: EmbeddedMosquitto) -> None:
    pub = Publisher(mqtt_broker.url)
    now = datetime.now(UTC).isoformat()
    pub.publish(
        "sharpeye/fence/fence-reservoir/event",
        {"seq": 1, "ts": now, "event": "alarm", "cause": "intrusion", "zone": "z2"},
    )
    pub.close()
    admin, village, town, duty = (login(client, n) for n in ("admin", "village", "town", "duty"))
    case = wait_for(lambda: client.get("/api/cases", headers=admin).json()["items"], what="the alarm's case")[0]
    cid = case["id"]
    assert case["stage"] == "dispatched" and case["department"] == "sx-cwh" and case["light"] == "green"
    assert case["due_at"] is not None

    assert "claim" in client.get(f"/api/cases/{cid}", headers=village).json()["actions"]
    assert act(client, town, cid, "claim").status_code == 404  # not their department: not even shown to them
    assert client.get(f"/api/cases/{cid}", headers=town).status_code == 404
    refused = act(client, village, cid, "return")  # a return needs reasons
    assert refused.status_code == 409 and "reason" in refused.json()["detail"]
    assert act(client, village, cid, "claim").json()["case"]["stage"] == "handling"
    back = act(client, village, cid, "return", note="围栏属水库管理处，非村委会职责")
    assert back.json()["case"]["stage"] == "accepted"
    moved = act(client, duty, cid, "reassign", department="qs-zfd", note="改派街道综合执法队")
    assert moved.status_code == 200, moved.text
    assert moved.json()["case"]["department"] == "qs-zfd"
    assert act(client, town, cid, "claim").json()["case"]["stage"] == "handling"
    assert act(client, town, cid, "feedback", note="已加固围栏").json()["case"]["stage"] == "feedback"
    assert act(client, duty, cid, "verify").json()["case"]["stage"] == "verifying"
    assert act(client, duty, cid, "fail_check", note="东侧仍有缺口").json()["case"]["stage"] == "handling"
    assert act(client, town, cid, "feedback", note="缺口已补").status_code == 200
    act(client, duty, cid, "verify")
    closed = act(client, duty, cid, "pass_check").json()
    assert closed["case"]["stage"] == "closed" and closed["actions"] == []
    assert act(client, duty, cid, "verify").status_code == 409
    history = [e["action"] for e in closed["history"]]
    assert history[:3] == ["report", "accept", "dispatch"]
    assert history.count("return") == 1 and history.count("fail_check") == 1 and history[-1] == "pass_check"
    audit = client.get("/api/audit?action=case.", headers=admin).json()
    assert {e["actor"] for e in audit} >= {"user:village", "user:town", "user:duty"}

    stats = client.get("/api/stats", headers=admin).json()
    assert stats and stats[0]["closed"] >= 1
    csv = client.get("/api/stats?by=department&format=csv", headers=admin)
    assert csv.status_code == 200 and "部门" in csv.text


def test_a_grid_workers_report_enters_the_flow(client: HubClient) -> None:
    duty = login(client, "duty")
    bad = client.post("/api/reports", json={"title": "x", "category": "dispute", "org_unit": "mars"}, headers=duty)
    assert bad.status_code == 422
    body = {"title": "邻里噪音纠纷", "category": "dispute", "org_unit": "hedong-g1", "description": "夜间噪音"}
    created = client.post("/api/reports", headers=duty, json=body)
    assert created.status_code == 201
    case = created.json()
    assert case["stage"] == "reported" and case["source"] == "grid_worker"
    assert act(client, duty, case["id"], "accept").json()["case"]["stage"] == "accepted"
    response = act(client, duty, case["id"], "dispatch")
    assert response.status_code == 200, response.text
    dispatched = response.json()["case"]
    assert dispatched["stage"] == "dispatched" and dispatched["department"] == "hd-jwh"  # the community handles it
    viewer_refused = client.post("/api/reports", headers={"Authorization": ""}, json={})
    assert viewer_refused.status_code == 401
