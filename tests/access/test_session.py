"""Console cookie sessions with CSRF, logout, bearer tokens for machines, and named revocable API tokens."""

from __future__ import annotations

import hashlib
from datetime import datetime

from fastapi.testclient import TestClient
from sharpeye.api.user import PRUNE_ABOVE, UserStore

from tests.access.conftest import PASSWORD
from tests.conftest import HubClient


def sign_in(client: TestClient, username: str = "operator") -> str:
    """Start a cookie session on ``client``; returns the CSRF token."""
    response = client.post("/api/auth/session", data={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return str(response.json()["csrf_token"])


def bearer(client: TestClient, username: str) -> dict[str, str]:
    response = client.post("/api/auth/token", data={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def fresh(app_client: HubClient, base_url: str = "http://testserver") -> TestClient:
    """A second client on the same running app and event loop, with a cookie jar of its own."""
    client = TestClient(app_client.app, base_url=base_url)
    client.portal = app_client.portal
    return client


def test_session_cookie_is_httponly_strict_and_secure_over_tls(app_client: HubClient) -> None:
    plain = app_client.post("/api/auth/session", data={"username": "viewer", "password": PASSWORD})
    cookies = plain.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("sharpeye_session="))
    csrf = next(c for c in cookies if c.startswith("sharpeye_csrf="))
    assert "HttpOnly" in session and "SameSite=strict" in session and "Secure" not in session
    assert "HttpOnly" not in csrf and "SameSite=strict" in csrf
    assert plain.json()["csrf_token"] in csrf
    tls = fresh(app_client, "https://testserver").post(
        "/api/auth/session", data={"username": "viewer", "password": PASSWORD}
    )
    assert all("Secure" in c for c in tls.headers.get_list("set-cookie"))


def test_cookie_reads_work_and_unsafe_requests_need_the_csrf_header(app_client: HubClient) -> None:
    client = fresh(app_client)
    csrf = sign_in(client)
    me = client.get("/api/auth/me").json()
    assert me["username"] == "operator"
    assert "cases:act" in me["permissions"] and "devices:write" not in me["permissions"]  # the console's menu
    alarm_comment = {"note": "csrf"}
    # no header, a wrong header: refused before anything happens
    assert client.post("/api/alarms/nope/comment", json=alarm_comment).status_code == 403
    wrong = client.post("/api/alarms/nope/comment", json=alarm_comment, headers={"X-CSRF-Token": "x" + csrf})
    assert wrong.status_code == 403 and "X-CSRF-Token" in wrong.json()["detail"]
    # with the header the request reaches the route (no such alarm)
    right = client.post("/api/alarms/nope/comment", json=alarm_comment, headers={"X-CSRF-Token": csrf})
    assert right.status_code == 404
    # another session's CSRF token does not fit this session
    other = sign_in(fresh(app_client))
    crossed = client.post("/api/alarms/nope/comment", json=alarm_comment, headers={"X-CSRF-Token": other})
    assert crossed.status_code == 403


def test_a_bearer_token_is_not_a_session_cookie(app_client: HubClient) -> None:
    token = bearer(app_client, "viewer")["Authorization"].split()[1]
    client = fresh(app_client)
    client.cookies.set("sharpeye_session", token)
    assert client.get("/api/auth/me").status_code == 401
    assert app_client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_logout_revokes_the_session_and_clears_cookies(app_client: HubClient) -> None:
    client = fresh(app_client)
    csrf = sign_in(client)
    stolen = client.cookies.get("sharpeye_session")
    assert stolen
    assert client.post("/api/auth/logout").status_code == 403  # unsafe: needs the CSRF header
    out = client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf})
    assert out.status_code == 204
    assert any(c.startswith('sharpeye_session=""') or "Max-Age=0" in c for c in out.headers.get_list("set-cookie"))
    replay = fresh(app_client)
    replay.cookies.set("sharpeye_session", stolen)
    assert replay.get("/api/auth/me").status_code == 401
    # a bearer token is revoked the same way
    headers = bearer(app_client, "viewer")
    assert app_client.post("/api/auth/logout", headers=headers).status_code == 204
    assert app_client.get("/api/auth/me", headers=headers).status_code == 401


def test_api_tokens_are_named_listed_expiring_and_revocable(app_client: HubClient) -> None:
    headers = bearer(app_client, "integrator")
    created = app_client.post("/api/tokens", json={"name": "nightly export", "expires_in_days": 30}, headers=headers)
    assert created.status_code == 201, created.text
    issued = created.json()
    script = {"Authorization": f"Bearer {issued['token']}"}
    assert app_client.get("/api/devices", headers=script).status_code == 200
    assert app_client.get("/api/cases", headers=script).status_code == 403  # the token carries the user's role
    listed = {t["id"]: t for t in app_client.get("/api/tokens", headers=headers).json()}
    mine = listed[issued["info"]["id"]]
    assert mine["name"] == "nightly export" and mine["kind"] == "api" and "token" not in mine
    lifetime = datetime.fromisoformat(mine["expires_at"]) - datetime.fromisoformat(mine["created_at"])
    assert lifetime.days == 30
    too_long = app_client.post("/api/tokens", json={"name": "x", "expires_in_days": 1000}, headers=headers)
    assert too_long.status_code == 422
    # someone else cannot revoke it
    assert app_client.delete(f"/api/tokens/{mine['id']}", headers=bearer(app_client, "viewer")).status_code == 404
    assert app_client.delete(f"/api/tokens/{mine['id']}", headers=headers).status_code == 204
    assert app_client.get("/api/devices", headers=script).status_code == 401
    assert mine["id"] not in {t["id"] for t in app_client.get("/api/tokens", headers=headers).json()}
    admin = bearer(app_client, "admin")
    log = app_client.get("/api/audit?action=token.", headers=admin).json()
    assert [e["action"] for e in log[:2]] == ["token.revoke", "token.create"]
    assert log[0]["actor"] == "user:integrator" and log[0]["target"] == mine["id"]


def test_disabling_a_user_revokes_every_token(app_client: HubClient) -> None:
    admin = bearer(app_client, "admin")
    created = app_client.post(
        "/api/users", json={"username": "leaver", "password": PASSWORD, "role": "viewer"}, headers=admin
    )
    assert created.status_code == 201
    login = app_client.post("/api/auth/token", data={"username": "leaver", "password": PASSWORD}).json()
    headers = {"Authorization": f"Bearer {login['access_token']}"}
    change = {"current_password": PASSWORD, "new_password": "Leaver-New-Pass-2"}
    assert app_client.post("/api/auth/password", headers=headers, json=change).status_code == 204
    script = app_client.post("/api/tokens", json={"name": "s"}, headers=headers).json()["token"]
    assert app_client.post("/api/users/leaver/disable", headers=admin).status_code == 200
    assert app_client.post("/api/users/leaver/disable", headers=admin).status_code == 200
    log = app_client.get("/api/audit?action=user.disable", headers=admin).json()
    assert log[-1]["details"]["revoked_tokens"] == 2
    assert log[-1]["origin"] == "testclient"  # from where: taken from the request by the audit log itself
    users = app_client.users
    assert app_client.portal is not None
    assert app_client.portal.call(users.tokens, "leaver") == []
    assert app_client.get("/api/auth/me", headers={"Authorization": f"Bearer {script}"}).status_code == 401


def test_alarm_websocket_accepts_the_session_cookie_only_from_the_hubs_origin(app_client: HubClient) -> None:
    from starlette.websockets import WebSocketDisconnect

    client = fresh(app_client)
    sign_in(client, "viewer")
    with client.websocket_connect("/api/ws/alarms", headers={"Origin": "http://testserver"}) as ws:
        ws.send_text("{}")
        assert ws.receive_json() == {"type": "hello", "user": "viewer"}
    for origin in ("http://evil.example", ""):
        with client.websocket_connect("/api/ws/alarms", headers={"Origin": origin} if origin else {}) as ws:
            ws.send_text("{}")
            try:
                message = ws.receive_json()
            except WebSocketDisconnect as closed:
                assert closed.code == 1008
            else:
                raise AssertionError(f"a socket from origin {origin!r} was accepted: {message}")
    anonymous = fresh(app_client)
    with anonymous.websocket_connect("/api/ws/alarms", headers={"Origin": "http://testserver"}) as ws:
        ws.send_text("{}")
        try:
            ws.receive_json()
            raise AssertionError("a socket without a session was accepted")
        except WebSocketDisconnect as closed:
            assert closed.code == 1008


def test_the_token_index_of_a_user_is_pruned(app_client: HubClient) -> None:
    users: UserStore = app_client.users
    assert app_client.portal is not None
    user = app_client.portal.call(users.get, "viewer")
    assert user is not None
    index = users.keys.user_tokens("viewer")

    async def lapse_many_then_sign_in() -> int:
        lapsed = [await users.issue_token(user) for _ in range(PRUNE_ABOVE)]
        keep = await users.issue_token(user)
        for token in lapsed:  # as if their lifetime had run out
            await users.redis.delete(users.keys.token(hashlib.sha256(token.encode()).hexdigest()))
        assert await users.redis.hlen(index) > PRUNE_ABOVE
        await users.issue_token(user)  # the next sign-in prunes
        assert await users.principal(keep) is not None
        return int(await users.redis.hlen(index))

    remaining = app_client.portal.call(lapse_many_then_sign_in)
    assert 2 <= remaining < PRUNE_ABOVE


def test_a_token_of_a_user_disabled_behind_its_back_is_refused_at_once(app_client: HubClient) -> None:
    """The caller's token and user are read in one round trip on every call; a user marked disabled in the store
    (by another node, without its tokens revoked yet) is refused on the next call, and an unknown token is too."""
    admin = bearer(app_client, "admin")
    created = app_client.post("/api/users", json={"username": "quiet", "password": PASSWORD, "role": "viewer"},
                              headers=admin)  # fmt: skip
    assert created.status_code == 201
    users = app_client.users
    assert app_client.portal is not None
    token = app_client.post("/api/auth/token", data={"username": "quiet", "password": PASSWORD}).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert app_client.get("/api/auth/me", headers=headers).json()["username"] == "quiet"
    user = app_client.portal.call(users.get, "quiet")
    assert user is not None
    raw = user.model_copy(update={"disabled": True}).model_dump_json()
    app_client.portal.call(users.redis.hset, users.keys.users, "quiet", raw)
    assert app_client.get("/api/auth/me", headers=headers).status_code == 401
    assert app_client.get("/api/auth/me", headers={"Authorization": "Bearer not-a-token"}).status_code == 401
