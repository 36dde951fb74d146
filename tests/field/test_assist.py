"""协办: a case with a lead department and co-handling departments, each with its own feedback; the case closes when
the lead's feedback is verified. Over a real hub: the console's routes and the field app's."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sharpeye.api.permission import Role

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.conftest import HubClient, app_client, hub_settings

PASSWORD = "assist-Password-1"
USERS = {"lead": (Role.department_handler, "hd-jwh"), "police": (Role.department_handler, "qs-pcs"),
         "officer": (Role.handler, "qs-zfd"), "other": (Role.department_handler, "sx-cwh")}  # fmt: skip


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, redis_server_session: EmbeddedRedis,
           mqtt_broker_session: EmbeddedMosquitto) -> Iterator[HubClient]:  # fmt: skip
    keys = Keys(f"assist{uuid.uuid4().hex[:6]}")
    settings = hub_settings(tmp_path_factory.mktemp("assist"), redis_server_session.url, mqtt_broker_session.url,
                            admin_password=PASSWORD, prefix=keys.prefix, node_id=keys.prefix)  # fmt: skip
    with app_client(settings) as c:
        for name, (role, department) in USERS.items():
            c.call(lambda n=name, r=role, d=department: c.users.add(n, PASSWORD, r, department=d))  # type: ignore[misc]
        yield c


_tokens: dict[str, str] = {}


def auth(client: HubClient, username: str) -> dict[str, str]:
    if username not in _tokens:
        response = client.post("/api/auth/token", data={"username": username, "password": PASSWORD})
        assert response.status_code == 200, response.text
        _tokens[username] = response.json()["access_token"]
    return {"Authorization": f"Bearer {_tokens[username]}"}


def act(client: HubClient, user: str, case_id: str, **body: object) -> tuple[int, dict[str, object]]:
    answer = client.post(f"/api/cases/{case_id}/actions", json=body, headers=auth(client, user))
    return answer.status_code, answer.json()


def test_co_handling_departments_feed_back_and_the_leads_verified_feedback_closes(client: HubClient) -> None:
    body = {"title": "小区门口占道经营并发生纠纷", "category": "dispute", "org_unit": "hedong-g1"}
    case_id = client.post("/api/reports", json=body, headers=auth(client, "admin")).json()["id"]
    assert act(client, "admin", case_id, action="accept")[0] == 200
    assert act(client, "admin", case_id, action="dispatch", department="hd-jwh", note="社区牵头")[0] == 200
    status, _ = act(client, "admin", case_id, action="assist", departments=["nowhere"])
    assert status == 422
    status, refused = act(client, "admin", case_id, action="assist", departments=["hd-jwh"])
    assert status == 409 and "leads the case" in str(refused["detail"])
    both = ["qs-pcs", "qs-zfd"]
    status, detail = act(client, "admin", case_id, action="assist", departments=both, note="派出所、执法队协办")
    assert status == 200, detail
    case = detail["case"]
    assert isinstance(case, dict) and [a["department"] for a in case["assists"]] == ["qs-pcs", "qs-zfd"]
    again, _ = act(client, "admin", case_id, action="assist", departments=["qs-pcs"])
    assert again == 409  # co-handling already

    police = auth(client, "police")  # a co-handling department sees the case in its list and may feed back
    assert case_id in {c["id"] for c in client.get("/api/cases", headers=police).json()["items"]}
    seen = client.get(f"/api/cases/{case_id}", headers=police).json()
    assert seen["actions"] == ["assist_feedback"]
    assert act(client, "police", case_id, action="claim")[0] == 409  # the lead's step, not theirs
    assert act(client, "police", case_id, action="assist_feedback", note="")[0] == 409  # a result is needed
    status, detail = act(client, "police", case_id, action="assist_feedback", note="已调解纠纷，无治安问题")
    assert status == 200, detail
    assert act(client, "police", case_id, action="assist_feedback", note="再次")[0] == 409  # once per department
    assert client.get(f"/api/cases/{case_id}", headers=auth(client, "other")).status_code == 404  # not involved

    officer = auth(client, "officer")  # the field app: the co-handling officer's task, fed back from the phone
    assert case_id in {c["id"] for c in client.get("/api/field/tasks", headers=officer).json()}
    task = client.get(f"/api/field/tasks/{case_id}", headers=officer).json()
    assert task["actions"] == ["assist_feedback"]
    form = {"client_id": uuid.uuid4().hex, "note": "已清理占道摊位", "lat": "30.0", "lon": "120.0"}
    fed = client.post(f"/api/field/tasks/{case_id}/feedback", data=form, headers=officer)
    assert fed.status_code == 200, fed.text
    assists = {a["department"]: a for a in fed.json()["case"]["assists"]}
    assert assists["qs-zfd"]["note"] == "已清理占道摊位" and assists["qs-zfd"]["actor"] == "user:officer"
    assert assists["qs-pcs"]["done_at"] is not None and fed.json()["case"]["stage"] == "dispatched"

    assert act(client, "lead", case_id, action="claim")[0] == 200
    assert act(client, "lead", case_id, action="feedback", note="摊位已迁移，双方和解")[0] == 200
    assert act(client, "admin", case_id, action="verify")[0] == 200
    status, detail = act(client, "admin", case_id, action="pass_check")
    assert status == 200 and isinstance(detail["case"], dict) and detail["case"]["stage"] == "closed"
    found = client.get(f"/api/cases/{case_id}", headers=auth(client, "admin")).json()
    history = [e["action"] for e in found["history"]]
    assert history.count("assist_feedback") == 2 and history.index("assist") < history.index("feedback")


def test_a_case_closes_on_the_leads_verified_feedback_even_with_a_co_handler_pending(client: HubClient) -> None:
    body = {"title": "路灯损坏", "category": "dispute", "org_unit": "hedong-g1"}
    case_id = client.post("/api/reports", json=body, headers=auth(client, "admin")).json()["id"]
    for step in ({"action": "accept"}, {"action": "dispatch", "department": "hd-jwh", "note": "x"},
                 {"action": "assist", "departments": ["qs-pcs"]}):  # fmt: skip
        assert act(client, "admin", case_id, **step)[0] == 200
    assert act(client, "lead", case_id, action="claim")[0] == 200
    assert act(client, "lead", case_id, action="feedback", note="已修复")[0] == 200
    assert act(client, "admin", case_id, action="verify")[0] == 200
    assert act(client, "admin", case_id, action="pass_check")[0] == 200
    case = client.get(f"/api/cases/{case_id}", headers=auth(client, "admin")).json()["case"]
    assert case["stage"] == "closed" and case["assists"][0]["done_at"] is None
    assert act(client, "police", case_id, action="assist_feedback", note="迟到")[0] == 409  # closed: no more
