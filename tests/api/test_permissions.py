"""The permission matrix: every route x every role, anonymous callers, and org-unit scope on objects."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.routing import APIRoute, APIWebSocketRoute
from fastapi.testclient import TestClient
from sharpeye.api.deps import public
from sharpeye.api.permission import ROLE_PERMISSIONS, Permission, Role

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.conftest import HubClient, app_client, hub_settings
from tests.helpers import Publisher, wait_for

PASSWORD = "matrix-Password-1"
HANDLERS = {"handler-hd-jwh": "hd-jwh", "handler-sx-cwh": "sx-cwh"}  # 河东 and 山下 village committees


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


@pytest.fixture(scope="module", name="app_client")
def matrix_client(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server_session: EmbeddedRedis,
    mqtt_broker_session: EmbeddedMosquitto,
) -> Iterator[HubClient]:
    keys = Keys("matrix")
    settings = hub_settings(tmp_path_factory.mktemp("matrix"), redis_server_session.url, mqtt_broker_session.url,
                            admin_password=PASSWORD, prefix=keys.prefix, node_id="matrix")  # fmt: skip
    with app_client(settings) as client:
        users = client.users
        assert client.portal is not None
        for role in Role:
            for scope in (None, "hedong"):
                name = f"{role.value}-{scope or 'all'}"
                if client.portal.call(users.get, name) is None:
                    client.portal.call(users.add, name, PASSWORD, role, scope)
        for name, department in HANDLERS.items():  # handlers of the villages that get the two fences' cases
            if client.portal.call(users.get, name) is None:
                client.call(lambda n=name, d=department: users.add(n, PASSWORD, Role.department_handler, department=d))  # type: ignore[misc]
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
    assert response.headers["Referrer-Policy"] == "no-referrer"
    field = app_client.get("/field/")
    assert field.headers["Permissions-Policy"].startswith("camera=(self)")  # the field app's own
    assert field.headers["X-Content-Type-Options"] == "nosniff"
    assert app_client.get("/api/nothing-here").headers["X-Frame-Options"] == "DENY"  # a 404 too
    assert "access-control-allow-origin" not in app_client.get("/api/health", headers={"Origin": "http://evil"}).headers
    admin = auth(app_client, "admin")
    alarm = app_client.get("/api/alarms", headers=admin).json()["items"][0]
    app_client.post(f"/api/alarms/{alarm['id']}/comment", json={"note": "审计测试"}, headers=admin)
    log = app_client.get("/api/audit?action=alarm.comment", headers=admin).json()
    assert log[0]["actor"] == "user:admin" and log[0]["target"] == alarm["id"]
    assert log[0]["details"]["note"] == "审计测试"
    # each request's time, by route and status (sharpeye_http_request_seconds)
    metrics = app_client.get("/metrics").text
    timed = "sharpeye_http_request_seconds_count{"
    assert timed + 'method="POST",route="/api/alarms/{alarm_id}/comment",status="200"}' in metrics
    assert timed + 'method="GET",route="unmatched",status="404"}' in metrics
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


def test_department_handlers_list_and_read_only_their_departments_cases(app_client: HubClient) -> None:
    admin = auth(app_client, "admin")
    wait_for(lambda: {c.get("department") for c in app_client.get("/api/cases", headers=admin).json()["items"]}
             >= {"hd-jwh", "sx-cwh"}, what="both cases dispatched")  # fmt: skip
    every = app_client.get("/api/cases", headers=admin).json()["items"]
    for name, department in HANDLERS.items():
        handler = auth(app_client, name)
        listed = app_client.get("/api/cases", headers=handler).json()["items"]
        assert listed and {c["department"] for c in listed} == {department}, (name, listed)
        for case in every:
            status = app_client.get(f"/api/cases/{case['id']}", headers=handler).status_code
            assert status == (200 if case["department"] == department else 404), (name, case["id"], status)
            photos = app_client.get(f"/api/cases/{case['id']}/photos", headers=handler).status_code
            assert photos == (200 if case["department"] == department else 404)
        mine = sum(1 for c in every if c["department"] == department)
        stats = app_client.get("/api/stats", headers=handler).json()
        assert sum(row["opened"] for row in stats) <= mine
        by_department = app_client.get("/api/stats?by=department", headers=handler).json()
        assert {row["department"] for row in by_department} <= {department}, by_department
    other = next(c for c in every if c["department"] == "sx-cwh")
    hd = auth(app_client, "handler-hd-jwh")
    refused = app_client.post(f"/api/cases/{other['id']}/actions", json={"action": "claim"}, headers=hd)
    assert refused.status_code == 404  # another department's case is not revealed, not even by an action
    nobody = auth(app_client, "department_handler-all")  # a handler without a department sees no case
    assert app_client.get("/api/cases", headers=nobody).json()["items"] == []


def _shanxia_cluster(client: TestClient) -> None:
    """Three reports at one spot in 山下 (a cluster for 类案分析), made once."""
    admin = auth(client, "admin")
    if any("shanxia-g1" in c["org_units"] for c in client.get("/api/stats/clusters?min_size=3", headers=admin).json()):
        return
    for n in range(3):
        body = {"title": f"占道经营 {n}", "category": "street_vending", "org_unit": "shanxia-g1",
                "lat": 30.0, "lon": 120.0}  # fmt: skip
        assert client.post("/api/reports", json=body, headers=admin).status_code == 201


def test_stats_clusters_and_the_stats_export_honour_the_callers_unit(app_client: HubClient) -> None:
    admin, scoped = auth(app_client, "admin"), auth(app_client, "operator-hedong")
    wait_for(lambda: len(app_client.get("/api/cases", headers=admin).json()["items"]) >= 2, what="two cases")
    _shanxia_cluster(app_client)
    units = {row["org_unit"] for row in app_client.get("/api/stats?by=org_unit", headers=admin).json()}
    assert any(u.startswith("shanxia") for u in units), units
    scoped_units = {row["org_unit"] for row in app_client.get("/api/stats?by=org_unit", headers=scoped).json()}
    assert scoped_units and all(u.startswith("hedong") for u in scoped_units), scoped_units
    total = sum(r["opened"] for r in app_client.get("/api/stats", headers=admin).json())
    mine = sum(r["opened"] for r in app_client.get("/api/stats", headers=scoped).json())
    assert 0 < mine < total
    csv = app_client.get("/api/stats?by=org_unit&format=csv", headers=scoped)
    assert csv.status_code == 200 and "hedong" in csv.text and "shanxia" not in csv.text
    clusters = app_client.get("/api/stats/clusters?min_size=3", headers=admin).json()
    assert any("shanxia-g1" in c["org_units"] for c in clusters)
    assert app_client.get("/api/stats/clusters?min_size=3", headers=scoped).json() == []
    exports = app_client.get("/api/audit?action=stats.export", headers=admin).json()
    assert exports and exports[0]["actor"] == "user:operator-hedong" and exports[0]["details"]["by"] == ["org_unit"]


def test_silences_are_confined_to_the_callers_unit(app_client: HubClient) -> None:
    admin, scoped = auth(app_client, "admin"), auth(app_client, "operator-hedong")
    # Active now (ending a silence that has not started is another matter), on cameras: capture is off here, so
    # these silences hide no alarm of the module's other tests.
    start = datetime.now(UTC) - timedelta(minutes=1)

    def spec(**matchers: str) -> dict[str, Any]:
        end = start + timedelta(hours=1)
        return {"matchers": matchers, "starts_at": start.isoformat(), "ends_at": end.isoformat(), "reason": "检修"}

    for outside in (spec(org_unit="shanxia-g1"), spec(device_id="fence-reservoir"), spec(rule_id="fence-intrusion"),
                    spec(org_unit="hedong-g1", device_id="fence-reservoir")):  # fmt: skip
        refused = app_client.post("/api/silences", json=outside, headers=scoped)
        assert refused.status_code == 403 and "scope" in refused.json()["detail"], (outside, refused.text)
    own = app_client.post("/api/silences", json=spec(device_id="cam-school-gate"), headers=scoped)
    assert own.status_code == 201, own.text
    theirs = app_client.post("/api/silences", json=spec(device_id="cam-reservoir-n"), headers=admin).json()
    listed = {s["id"] for s in app_client.get("/api/silences", headers=scoped).json()}
    assert own.json()["id"] in listed and theirs["id"] not in listed
    assert theirs["id"] in {s["id"] for s in app_client.get("/api/silences", headers=admin).json()}
    moved = app_client.put(f"/api/silences/{own.json()['id']}", json=spec(org_unit="shanxia-g1"), headers=scoped)
    assert moved.status_code == 403
    taken = app_client.put(f"/api/silences/{theirs['id']}", json=spec(device_id="cam-school-gate"), headers=scoped)
    assert taken.status_code == 404
    assert app_client.delete(f"/api/silences/{theirs['id']}", headers=scoped).status_code == 404
    assert app_client.delete(f"/api/silences/{own.json()['id']}", headers=scoped).status_code == 200
    assert app_client.delete(f"/api/silences/{theirs['id']}", headers=admin).status_code == 200


def test_the_field_roles_hold_only_what_the_phone_needs(app_client: HubClient) -> None:
    """A grid worker reports, takes their tasks and patrols; a field handler only takes tasks; both may have their
    new tasks notified on the phone. Neither reads the console's alarms, cases, devices or health, and neither may
    act on cases through the console's routes."""
    assert ROLE_PERMISSIONS[Role.grid_worker] == {Permission.reports_create, Permission.tasks_act,
                                                  Permission.patrols_write, Permission.push_subscribe,
                                                  Permission.self_service}  # fmt: skip
    assert ROLE_PERMISSIONS[Role.handler] == {Permission.tasks_act, Permission.push_subscribe, Permission.self_service}
    for role in (Role.grid_worker, Role.handler):
        headers = auth(app_client, f"{role.value}-all")
        for path in ("/api/cases", "/api/alarms", "/api/devices", "/api/stats", "/api/patrols"):
            assert app_client.get(path, headers=headers).status_code == 403, (role, path)
        body = {"title": "x", "category": "dispute", "org_unit": "hedong-g1"}
        assert app_client.post("/api/reports", json=body, headers=headers).status_code == 403
        assert app_client.get("/api/field/tasks", headers=headers).json() == []  # no department: no task
