"""Evidence bundles through the API against a real hub: an alarm's and a case's files come back in a ZIP whose
manifest is signed by the hub's key (published at /api/evidence-key), verify, refuse tampering, stay in scope and
are audited."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sharpeye.api.permission import Role
from sharpeye.governance.evidence_bundle import verify_bundle

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.conftest import HubClient, app_client, hub_settings
from tests.helpers import Publisher, wait_for

PW = "Bundle-Test-Password-1"


@pytest.fixture
def client(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> Iterator[HubClient]:
    settings = hub_settings(tmp_path, redis_server.url, mqtt_broker.url, admin_password=PW, prefix=keys.prefix)
    with app_client(settings, None, connected=True) as c:
        c.call(lambda: c.users.add("duty", PW, Role.operator))
        c.call(lambda: c.users.add("hedong", PW, Role.operator, "hedong"))
        yield c


def login(client: HubClient, name: str) -> dict[str, str]:
    token = client.post("/api/auth/token", data={"username": name, "password": PW}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def test_alarm_and_case_bundles_verify_against_the_published_key(
    client: HubClient, mqtt_broker: EmbeddedMosquitto, tmp_path: Path
) -> None:
    duty, hedong, admin = login(client, "duty"), login(client, "hedong"), login(client, "admin")
    pub = Publisher(mqtt_broker.url)
    try:
        pub.publish("sharpeye/fence/fence-reservoir/event", {"seq": 1, "ts": datetime.now(UTC).isoformat(),
                    "event": "alarm", "cause": "intrusion", "zone": "z1"})  # fmt: skip
    finally:
        pub.close()
    case: dict[str, Any] = wait_for(lambda: client.get("/api/cases", headers=duty).json()["items"], what="a case")[0]
    alarm_id = case["alarm_ids"][0]
    snap = tmp_path / "evidence" / "cam-reservoir-n" / "20261207" / "020000-intrusion.jpg"
    snap.parent.mkdir(parents=True)
    snap.write_bytes(b"\xff\xd8\xff\xe0 a snapshot")
    hub = client.hub
    client.call(lambda: hub.alarm_store.act(alarm_id, "evidence", "linkage", datetime.now(UTC),
                                                   extra={"refs": ["cam-reservoir-n/20261207/020000-intrusion.jpg",
                                                                   "../../etc/passwd"]}))  # fmt: skip

    key = client.get("/api/evidence-key", headers=duty).json()
    assert key["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")

    got = client.get(f"/api/alarms/{alarm_id}/evidence-bundle", headers=duty)
    assert got.status_code == 200 and got.headers["content-type"] == "application/zip"
    result = verify_bundle(io.BytesIO(got.content), key["fingerprint"])
    assert result.ok, result.problems
    assert result.checked == ["cam-reservoir-n/20261207/020000-intrusion.jpg"]  # the traversal is left out
    assert result.manifest["subject"]["id"] == alarm_id

    whole = client.get(f"/api/cases/{case['id']}/evidence-bundle", headers=duty)
    result = verify_bundle(io.BytesIO(whole.content), key["fingerprint"])
    assert result.ok and result.checked == [f"alarms/{alarm_id}/cam-reservoir-n/20261207/020000-intrusion.jpg"]

    tampered = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(got.content)) as src, zipfile.ZipFile(tampered, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            dst.writestr(name, b"another picture" if name.endswith(".jpg") else data)
    assert not verify_bundle(io.BytesIO(tampered.getvalue()), key["fingerprint"]).ok

    assert client.get(f"/api/alarms/{alarm_id}/evidence-bundle", headers=hedong).status_code == 404
    assert client.get(f"/api/cases/{case['id']}/evidence-bundle", headers=hedong).status_code == 404
    audit = client.get("/api/audit", headers=admin).json()
    exports = [e for e in audit if e["action"] == "evidence.export"]
    assert {e["target"] for e in exports} == {alarm_id, case["id"]}
