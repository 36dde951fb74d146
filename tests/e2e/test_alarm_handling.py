"""Working an alarm as a monitoring room does, through the API against a real hub: its procedure (处置预案) ticked
step by step into the history and the audit, the owner, hand-over to another operator and to the next shift."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sharpeye.api.permission import Role
from sharpeye.config.governance import Procedure
from sharpeye.config.loader import demo_path, load_file
from sharpeye.config.site import SiteConfig
from sharpeye.ingest.registry import installed

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.conftest import HubClient, app_client, hub_settings
from tests.helpers import Publisher, wait_for

PW = "Handling-Test-Password-1"
STEPS = ["调阅关联摄像机画面", "电话通知水库管理处 0523-1234567", "通知派出所出警"]


def site_with_procedure() -> SiteConfig:
    site = load_file(demo_path(), installed())
    procedure = Procedure(id="perimeter", title="周界入侵处置预案", rules=["fence-intrusion"], steps=STEPS,
                          contacts=[{"name": "水库管理处", "phone": "0523-1234567"}])  # type: ignore[list-item]  # fmt: skip
    governance = site.governance.model_copy(update={"procedures": [procedure]})
    return site.model_copy(update={"governance": governance})


@pytest.fixture
def client(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> Iterator[HubClient]:
    settings = hub_settings(tmp_path, redis_server.url, mqtt_broker.url, admin_password=PW, prefix=keys.prefix)
    with app_client(settings, site_with_procedure(), connected=True) as c:
        c.call(lambda: c.users.add("duty", PW, Role.operator))
        c.call(lambda: c.users.add("night", PW, Role.operator))
        c.call(lambda: c.users.add("hedong", PW, Role.operator, "hedong"))
        yield c


def login(client: HubClient, name: str) -> dict[str, str]:
    token = client.post("/api/auth/token", data={"username": name, "password": PW}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def test_procedure_owner_and_hand_over(client: HubClient, mqtt_broker: EmbeddedMosquitto) -> None:
    duty, night, hedong, admin = (login(client, n) for n in ("duty", "night", "hedong", "admin"))
    pub = Publisher(mqtt_broker.url)
    try:
        pub.publish("sharpeye/fence/fence-reservoir/event", {"seq": 1, "ts": datetime.now(UTC).isoformat(),
                    "event": "alarm", "cause": "intrusion", "zone": "z1"})  # fmt: skip
    finally:
        pub.close()
    alarm: dict[str, Any] = wait_for(lambda: client.get("/api/alarms", headers=duty).json()["items"], what="alarm")[0]
    aid = alarm["id"]

    view = client.get(f"/api/alarms/{aid}/procedure", headers=duty).json()
    assert view["procedure"]["title"] == "周界入侵处置预案" and view["procedure"]["steps"] == STEPS
    assert view["done"] == {}
    assert client.get(f"/api/alarms/{aid}/procedure", headers=hedong).status_code == 404  # scope

    ticked = client.post(f"/api/alarms/{aid}/procedure/2", json={"note": "管理处已派人"}, headers=duty)
    assert ticked.status_code == 200, ticked.text
    assert ticked.json()["steps"]["2"]["actor"] == "user:duty"
    assert client.post(f"/api/alarms/{aid}/procedure/2", headers=night).status_code == 409  # once
    assert client.post(f"/api/alarms/{aid}/procedure/9", headers=duty).status_code == 422
    history = client.get(f"/api/alarms/{aid}", headers=duty).json()["history"]
    assert any(h["action"] == "procedure" and "电话通知水库管理处" in h["note"] and "管理处已派人" in h["note"]
               for h in history)  # fmt: skip

    assert client.post(f"/api/alarms/{aid}/take", headers=duty).json()["owner"] == "user:duty"
    mine = client.get("/api/handover", headers=duty).json()
    assert [a["id"] for a in mine["mine"]] == [aid] and mine["unowned"] == []
    assert [a["id"] for a in client.get("/api/handover", headers=night).json()["others"]] == [aid]
    nobody = client.post(f"/api/alarms/{aid}/hand", json={"to": "ghost"}, headers=duty)
    assert nobody.status_code == 422
    handed = client.post(f"/api/alarms/{aid}/hand", json={"to": "night", "note": "请继续跟进派出所出警"}, headers=duty)
    assert handed.json()["owner"] == "user:night"
    released = client.post(f"/api/alarms/{aid}/hand", json={"to": None, "note": "交下一班"}, headers=night)
    assert released.json()["owner"] is None
    assert [a["id"] for a in client.get("/api/handover", headers=duty).json()["unowned"]] == [aid]
    history = client.get(f"/api/alarms/{aid}", headers=duty).json()["history"]
    assert [h["action"] for h in history if h["action"] in ("owned", "released")] == ["owned", "owned", "released"]
    audit = client.get("/api/audit", headers=admin).json()
    assert {e["action"] for e in audit} >= {"alarm.procedure", "alarm.take", "alarm.hand"}
