"""The permission matrix: every route x every role, anonymous callers, and org-unit scope on objects."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute
from fastapi.testclient import TestClient
from sharpeye.api.app import create_app
from sharpeye.api.deps import public
from sharpeye.api.permission import ROLE_PERMISSIONS, Permission, Role
from sharpeye.api.user import UserStore
from sharpeye.config.loader import demo_path, load_file
from sharpeye.ingest.registry import installed

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from sharpeye.settings import Settings
from tests.helpers import Publisher, wait_for

PASSWORD = "matrix-Password-1"


def route_permission(route: APIRoute) -> Permission | None:
    """The route's declared permission, or None for a route explicitly marked public."""
    found: list[Permission] = []
    is_public = False
    for dep in route.dependant.dependencies:
        if dep.call is public:
            is_public = True
        permission = getattr(dep.call, "permission", None)
        if permission is not None:
            found.append(permission)
    assert is_public or len(found) == 1, f"{route.path} declares {found} and public={is_public}"
    return None if is_public else found[0]


@pytest.fixture(scope="module")
def app_client(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server_session: EmbeddedRedis,
    mqtt_broker_session: EmbeddedMosquitto,
) -> Iterator[TestClient]:
    keys = Keys("matrix")
    settings = Settings(cameras=False, data_dir=tmp_path_factory.mktemp("matrix"), redis_url=redis_server_session.url,
                        mqtt_url=mqtt_broker_session.url, admin_password=PASSWORD,  # type: ignore[arg-type]
                        redis_prefix=keys.prefix, node_id="matrix")  # fmt: skip
    with TestClient(create_app(settings, load_file(demo_path(), installed()))) as client:
        users: UserStore = client.app.state.users  # type: ignore[attr-defined]
        assert client.portal is not None
        for role in Role:
            for scope in (None, "hedong"):
                name = f"{role.value}-{scope or 'all'}"
                if client.portal.call(users.get, name) is None:
                    client.portal.call(users.add, name, PASSWORD, role, scope)
        pub = Publisher(mqtt_broker_session.url)
        now = datetime.now(UTC).isoformat()
        for device in ("fence-school", "fence-reservoir"):  # hedong and shanxia
            pub.publish(f"sharpeye/fence/{device}/event",
                        {"seq": 1, "ts": now, "event": "alarm", "cause": "intrusion", "zone": "z1"})  # fmt: skip
        pub.close()
        wait_for(lambda: len(client.get("/api/alarms", headers=auth(client, "admin")).json()["items"]) >= 2,
                 what="two alarms")  # fmt: skip
        yield client


_tokens: dict[str, str] = {}


def auth(client: TestClient, username: str) -> dict[str, str]:
    if username not in _tokens:
        response = client.post("/api/auth/token", data={"username": username, "password": PASSWORD})
        assert response.status_code == 200, response.text
        _tokens[username] = response.json()["access_token"]
    return {"Authorization": f"Bearer {_tokens[username]}"}


REVOKES_CALLER = {"/api/auth/logout"}  # called with a token of its own, so the shared one stays valid


def fresh_auth(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/auth/token", data={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def api_routes(app: Any) -> list[APIRoute]:
    """Every HTTP route, including those of included routers (FastAPI keeps those in wrappers)."""
    return [r for r in _walk(app.routes, "") if isinstance(r, APIRoute)]


def ws_routes(app: Any) -> list[APIWebSocketRoute]:
    return [r for r in _walk(app.routes, "") if isinstance(r, APIWebSocketRoute)]


def _walk(routes: list[Any], prefix: str) -> Iterator[Any]:
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _walk(inner.routes, prefix + route.include_context.prefix)
        elif prefix and isinstance(route, APIRoute):
            copy = APIRoute(prefix + route.path, route.endpoint, methods=route.methods, dependencies=route.dependencies)
            yield copy
        else:
            yield route


def concrete(path: str) -> str:
    return path.replace("{", "x").replace("}", "")


def test_every_route_declares_one_permission_or_public(app_client: TestClient) -> None:
    routes = api_routes(app_client.app)
    assert len(routes) > 15
    for route in routes:
        route_permission(route)
    sockets = ws_routes(app_client.app)
    assert sockets, "the WebSocket routes check their permission on the first message (tested elsewhere)"


def test_anonymous_callers_get_401_everywhere_but_public_routes(app_client: TestClient) -> None:
    for route in api_routes(app_client.app):
        if route_permission(route) is None:
            continue
        for method in route.methods:
            response = app_client.request(method, concrete(route.path), headers={"Authorization": ""})
            assert response.status_code == 401, (method, route.path, response.status_code)


@pytest.mark.parametrize("role", list(Role))
def test_each_role_is_allowed_exactly_its_permissions(app_client: TestClient, role: Role) -> None:
    headers = auth(app_client, f"{role.value}-all")
    for route in api_routes(app_client.app):
        permission = route_permission(route)
        if permission is None:
            continue
        for method in route.methods:
            body: dict[str, Any] | None = {} if method == "POST" else None
            caller = fresh_auth(app_client, f"{role.value}-all") if route.path in REVOKES_CALLER else headers
            response = app_client.request(method, concrete(route.path), headers=caller, json=body)
            if permission in ROLE_PERMISSIONS[role]:
                assert response.status_code not in (401, 403), (role, method, route.path, response.text)
            else:
                assert response.status_code == 403, (role, method, route.path, response.status_code)


def test_scope_limits_lists_details_and_actions(app_client: TestClient) -> None:
    admin = auth(app_client, "admin")
    alarms = {a["device_id"]: a for a in app_client.get("/api/alarms", headers=admin).json()["items"]}
    inside, outside = alarms["fence-school"], alarms["fence-reservoir"]
    scoped = auth(app_client, "operator-hedong")
    listed = [a["id"] for a in app_client.get("/api/alarms", headers=scoped).json()["items"]]
    assert inside["id"] in listed and outside["id"] not in listed
    assert app_client.get(f"/api/alarms/{inside['id']}", headers=scoped).status_code == 200
    assert app_client.get(f"/api/alarms/{outside['id']}", headers=scoped).status_code == 404
    assert app_client.post(f"/api/alarms/{outside['id']}/acknowledge", headers=scoped).status_code == 404
    devices = {d["id"] for d in app_client.get("/api/devices", headers=scoped).json()}
    assert "fence-school" in devices and "fence-reservoir" not in devices
    wait_for(lambda: len(app_client.get("/api/cases", headers=admin).json()["items"]) >= 2, what="two cases")
    cases = app_client.get("/api/cases", headers=scoped).json()["items"]
    assert cases and all(c["org_unit"].startswith("hedong") for c in cases)
    other = next(
        c for c in app_client.get("/api/cases", headers=admin).json()["items"] if c["org_unit"].startswith("shanxia")
    )
    assert app_client.get(f"/api/cases/{other['id']}", headers=scoped).status_code == 404
    sdp = {**scoped, "Content-Type": "application/sdp"}
    assert app_client.post("/api/cameras/cam-reservoir-n/whep", headers=sdp, content="v=0").status_code == 404
    assert app_client.post("/api/cameras/cam-school-gate/whep", headers=sdp, content="v=0").status_code == 400
    integrator = auth(app_client, "integrator-hedong")
    device = {"id": "x-fence", "kind": "fence", "name": "x", "grid": "shanxia-g1", "zones": [{"id": "z1", "name": "z"}]}
    assert app_client.post("/api/devices", json=device, headers=integrator).status_code == 403


def test_login_throttling(app_client: TestClient) -> None:
    for _ in range(5):
        wrong = app_client.post("/api/auth/token", data={"username": "viewer-all", "password": "nope"})
        assert wrong.status_code == 401
    locked = app_client.post("/api/auth/token", data={"username": "viewer-all", "password": PASSWORD})
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert (
        app_client.post("/api/auth/token", data={"username": "viewer-hedong", "password": PASSWORD}).status_code == 200
    )


def test_security_headers_and_audit(app_client: TestClient) -> None:
    response = app_client.get("/")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert "access-control-allow-origin" not in app_client.get("/api/health", headers={"Origin": "http://evil"}).headers
    admin = auth(app_client, "admin")
    alarm = app_client.get("/api/alarms", headers=admin).json()["items"][0]
    app_client.post(f"/api/alarms/{alarm['id']}/comment", json={"note": "审计测试"}, headers=admin)
    log = app_client.get("/api/audit?action=alarm.comment", headers=admin).json()
    assert log[0]["actor"] == "user:admin" and log[0]["target"] == alarm["id"]
    assert log[0]["details"]["note"] == "审计测试"
    csv = app_client.get("/api/audit?format=csv", headers=admin)
    assert csv.headers["content-type"].startswith("text/csv") and "alarm.comment" in csv.text


def test_cookie_sessions_need_the_csrf_header_on_every_unsafe_route(app_client: TestClient) -> None:
    browser = TestClient(app_client.app)
    browser.portal = app_client.portal  # the running app's event loop, with a cookie jar of its own
    started = browser.post("/api/auth/session", data={"username": "admin", "password": PASSWORD})
    assert started.status_code == 200
    csrf = started.json()["csrf_token"]
    checked = 0
    for route in api_routes(app_client.app):
        if route_permission(route) is None:
            continue
        for method in route.methods - {"GET", "HEAD"}:
            response = browser.request(method, concrete(route.path), json={})
            assert response.status_code == 403 and "X-CSRF-Token" in response.text, (method, route.path)
            checked += 1
    assert checked > 10
    assert browser.get("/api/alarms").status_code == 200  # reads need no header
    assert browser.post("/api/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert browser.get("/api/alarms").status_code == 401
