"""The Web Push routes against a real hub: the key is the site's and stable, subscriptions are the caller's own,
validated, listed, forgotten and audited; a role that reads no cases cannot subscribe."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sharpeye.api.permission import Role
from sharpeye.governance.push import b64url, b64url_decode

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.conftest import HubClient, app_client, hub_settings

PW = "Push-Routes-Password-1"


@pytest.fixture
def client(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> Iterator[HubClient]:
    settings = hub_settings(tmp_path, redis_server.url, mqtt_broker.url, admin_password=PW, prefix=keys.prefix)
    with app_client(settings) as c:
        c.call(lambda: c.users.add("duty", PW, Role.operator))
        c.call(lambda: c.users.add("wiring", PW, Role.integrator))
        yield c


def login(client: HubClient, name: str) -> dict[str, str]:
    token = client.post("/api/auth/token", data={"username": name, "password": PW}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def subscription(endpoint: str) -> dict[str, object]:
    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)  # fmt: skip
    return {"endpoint": endpoint, "keys": {"p256dh": b64url(point), "auth": b64url(os.urandom(16))}}


def test_subscriptions_are_the_callers_own(client: HubClient) -> None:
    duty, admin, wiring = login(client, "duty"), login(client, "admin"), login(client, "wiring")
    key = client.get("/api/push/key", headers=duty).json()
    assert len(b64url_decode(key["public_key"])) == 65 and key["enabled"] is False  # no webpush uplink names duty
    assert client.get("/api/push/key", headers=admin).json()["public_key"] == key["public_key"]

    endpoint = "https://push.example.cn/wpush/v2/duty-pc"
    assert client.post("/api/push/subscriptions", json=subscription(endpoint), headers=wiring).status_code == 403
    plain = client.post("/api/push/subscriptions", json=subscription("http://push.example.cn/x"), headers=duty)
    assert plain.status_code == 422 and "https://" in plain.json()["detail"]
    made = client.post("/api/push/subscriptions", json=subscription(endpoint), headers=duty)
    assert made.status_code == 201, made.text
    assert [s["endpoint"] for s in client.get("/api/push/subscriptions", headers=duty).json()] == [endpoint]
    assert client.get("/api/push/subscriptions", headers=admin).json() == []

    assert client.request("DELETE", "/api/push/subscriptions", json={"endpoint": endpoint},
                          headers=admin).status_code == 404  # not admin's  # fmt: skip
    gone = client.request("DELETE", "/api/push/subscriptions", json={"endpoint": endpoint}, headers=duty)
    assert gone.status_code == 204
    assert client.get("/api/push/subscriptions", headers=duty).json() == []
    audit = client.get("/api/audit", headers=admin, params={"action": "push."}).json()
    assert [(e["action"], e["actor"]) for e in audit] == [("push.unsubscribe", "user:duty"),
                                                          ("push.subscribe", "user:duty")]  # fmt: skip


def test_disabling_a_user_removes_their_browsers(client: HubClient) -> None:
    duty, admin = login(client, "duty"), login(client, "admin")
    for pc in ("duty-pc", "duty-phone"):
        made = client.post("/api/push/subscriptions", json=subscription(f"https://push.example.cn/{pc}"), headers=duty)
        assert made.status_code == 201, made.text
    mine = client.post("/api/push/subscriptions", json=subscription("https://push.example.cn/admin-pc"), headers=admin)
    assert mine.status_code == 201
    assert client.post("/api/users/duty/disable", headers=admin).status_code == 200
    push = client.hub.uplinks.push
    assert push is not None
    assert [s.username for s in client.call(push.all)] == ["admin"]  # duty's two browsers removed, admin's kept
    audit = client.get("/api/audit", headers=admin, params={"action": "user.disable"}).json()
    assert audit[0]["details"]["push_subscriptions_removed"] == 2
