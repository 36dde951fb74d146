"""The field app's API over a real hub: grid workers' idempotent reports, tasks with 签收 and feedback, patrols with
their track, and bad input refused with reasons."""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import cv2
import numpy as np
import pytest
from sharpeye.api.permission import Role

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.conftest import HubClient, app_client, hub_settings
from tests.field.audio import voice_note

PASSWORD = "field-Password-1"
USERS: dict[str, tuple[Role, str | None, str | None]] = {
    "gw-hd": (Role.grid_worker, "hedong-g1", "hd-jwh"),  # 河东 grid 1, the community's team
    "gw-sx": (Role.grid_worker, "shanxia-g1", "sx-cwh"),
    "h-sx": (Role.handler, None, "sx-cwh"),
    "op-sx": (Role.operator, "shanxia", None),
}


def jpeg(width: int = 64, height: int = 48) -> bytes:
    image = np.full((height, width, 3), 128, np.uint8)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return bytes(data.tobytes())


def with_exif(data: bytes, orientation: int = 1, lat: tuple[int, int, int] = (30, 0, 0)) -> bytes:
    """``data`` with an EXIF block (big-endian TIFF) holding an orientation and a GPS latitude."""
    gps_at = 8 + 2 + 12 * 2 + 4
    ifd0 = struct.pack(">H", 2) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    ifd0 += struct.pack(">HHII", 0x8825, 4, 1, gps_at) + b"\0\0\0\0"
    values_at = gps_at + 2 + 12 * 2 + 4
    gps = struct.pack(">H", 2) + struct.pack(">HHI", 1, 2, 2) + b"N\0\0\0"
    gps += struct.pack(">HHII", 2, 5, 3, values_at) + b"\0\0\0\0"
    tiff = b"MM\0\x2a" + struct.pack(">I", 8) + ifd0 + gps + b"".join(struct.pack(">II", v, 1) for v in lat)
    app1 = b"Exif\0\0" + tiff
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + data[2:]


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server_session: EmbeddedRedis,
    mqtt_broker_session: EmbeddedMosquitto,
) -> Iterator[HubClient]:
    keys = Keys(f"field{uuid.uuid4().hex[:6]}")
    settings = hub_settings(tmp_path_factory.mktemp("field"), redis_server_session.url, mqtt_broker_session.url,
                            admin_password=PASSWORD, prefix=keys.prefix, node_id=keys.prefix)  # fmt: skip
    with app_client(settings) as c:
        for name, (role, unit, department) in USERS.items():
            c.call(lambda n=name, r=role, u=unit, d=department: c.users.add(n, PASSWORD, r, u, department=d))  # type: ignore[misc]
        yield c


_tokens: dict[str, str] = {}


def auth(client: HubClient, username: str) -> dict[str, str]:
    if username not in _tokens:
        response = client.post("/api/auth/token", data={"username": username, "password": PASSWORD})
        assert response.status_code == 200, response.text
        _tokens[username] = response.json()["access_token"]
    return {"Authorization": f"Bearer {_tokens[username]}"}


def report(client: HubClient, user: str, photos: list[bytes] | None = None, **fields: Any) -> Any:
    form = {"client_id": uuid.uuid4().hex, "category": "city_appearance", "description": "垃圾堆放",
            "lat": "30.001", "lon": "120.002", **{k: str(v) for k, v in fields.items()}}  # fmt: skip
    files = [("photos", (f"p{n}.jpg", p, "image/jpeg")) for n, p in enumerate(photos or [])]
    return client.post("/api/field/reports", data=form, files=files or None, headers=auth(client, user))


def test_a_report_sent_twice_makes_one_case(client: HubClient) -> None:
    client_id = uuid.uuid4().hex
    first = report(client, "gw-hd", [jpeg()], client_id=client_id)
    assert first.status_code == 201, first.text
    case_id = first.json()["case_id"]
    assert first.json()["created"] and len(first.json()["photos"]) == 1
    again = report(client, "gw-hd", [jpeg()], client_id=client_id)
    assert again.status_code == 200 and again.json() == {**first.json(), "created": False}
    admin = auth_admin(client)
    case = client.get(f"/api/cases/{case_id}", headers=admin).json()["case"]
    assert case["org_unit"] == "hedong-g1" and case["source"] == "grid_worker"
    assert case["location"] == {"lat": 30.001, "lon": 120.002}
    listed = client.get("/api/cases?limit=500", headers=admin).json()["items"]
    assert sum(1 for c in listed if c["description"] == "垃圾堆放" and c["id"] == case_id) == 1
    assert len(client.get(f"/api/cases/{case_id}/photos", headers=admin).json()) == 1


def test_bad_reports_are_refused_with_reasons(client: HubClient) -> None:
    big = jpeg() + b"\0" * (5 * 1024 * 1024)
    too_big = report(client, "gw-hd", [big])
    assert too_big.status_code == 413 and "at most" in too_big.json()["detail"]
    turned = report(client, "gw-hd", [with_exif(jpeg(), orientation=9)])
    assert turned.status_code == 415 and "orientation" in turned.json()["detail"]
    nowhere = report(client, "gw-hd", [with_exif(jpeg(), lat=(95, 0, 0))])
    assert nowhere.status_code == 415 and "latitude" in nowhere.json()["detail"]
    assert report(client, "gw-hd", [with_exif(jpeg())]).status_code == 201  # a sound EXIF passes
    not_photo = report(client, "gw-hd", [b"<html>not a photo</html>"])
    assert not_photo.status_code == 415 and "JPEG or PNG" in not_photo.json()["detail"]
    off_map = report(client, "gw-hd", lat="95", lon="120")
    assert off_map.status_code == 422 and "lat" in off_map.text
    half = report(client, "gw-hd", lat="", lon="120")
    assert half.status_code == 422 and "go together" in half.text
    elsewhere = report(client, "gw-hd", org_unit="shanxia-g1")
    assert elsewhere.status_code == 403 and "scope" in elsewhere.json()["detail"]
    forged = report(client, "gw-hd", client_id="../../x")
    assert forged.status_code == 422
    assert report(client, "h-sx").status_code == 403  # a field handler does not report
    assert client.get("/api/cases", headers=auth(client, "gw-hd")).status_code == 403  # nor sees the console's
    assert client.get("/api/alarms", headers=auth(client, "gw-hd")).status_code == 403


def auth_admin(client: HubClient) -> dict[str, str]:
    if "admin" not in _tokens:
        response = client.post("/api/auth/token", data={"username": "admin", "password": PASSWORD})
        _tokens["admin"] = response.json()["access_token"]
    return {"Authorization": f"Bearer {_tokens['admin']}"}


def dispatched(client: HubClient, org_unit: str, department: str) -> str:
    admin = auth_admin(client)
    body = {"title": f"占道 {uuid.uuid4().hex[:4]}", "category": "dispute", "org_unit": org_unit}
    case_id = client.post("/api/reports", json=body, headers=admin).json()["id"]
    assert client.post(f"/api/cases/{case_id}/actions", json={"action": "accept"}, headers=admin).status_code == 200
    sent = client.post(f"/api/cases/{case_id}/actions", headers=admin,
                       json={"action": "dispatch", "department": department, "note": "网格处置"})  # fmt: skip
    assert sent.status_code == 200, sent.text
    return str(case_id)


def test_a_task_is_signed_for_and_fed_back_by_its_grid_worker_only(client: HubClient) -> None:
    mine, theirs = dispatched(client, "hedong-g1", "hd-jwh"), dispatched(client, "shanxia-g1", "sx-cwh")
    worker = auth(client, "gw-hd")
    open_ids = {c["id"] for c in client.get("/api/field/tasks", headers=worker).json()}
    assert mine in open_ids and theirs not in open_ids
    assert client.get(f"/api/field/tasks/{theirs}", headers=worker).status_code == 404
    assert client.post(f"/api/field/tasks/{theirs}/claim", json={}, headers=worker).status_code == 404
    task = client.get(f"/api/field/tasks/{mine}", headers=worker).json()
    assert task["actions"] == ["claim"]
    refused = client.post(f"/api/field/tasks/{mine}/claim", json={"lat": 91, "lon": 0}, headers=worker)
    assert refused.status_code == 422
    claimed = client.post(f"/api/field/tasks/{mine}/claim", json={"lat": 30.0, "lon": 120.0}, headers=worker)
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["case"]["stage"] == "handling" and claimed.json()["case"]["claimed_by"] == "user:gw-hd"
    assert "lat=30.000000" in claimed.json()["history"][-1]["note"]
    again = client.post(f"/api/field/tasks/{mine}/claim", json={}, headers=worker)  # a resend changes nothing
    assert again.status_code == 200 and len(again.json()["history"]) == len(claimed.json()["history"])
    form = {"client_id": uuid.uuid4().hex, "note": "已清理", "lat": "30.0001", "lon": "120.0001"}
    fed = client.post(f"/api/field/tasks/{mine}/feedback", data=form, headers=worker,
                      files=[("photos", ("after.jpg", jpeg(), "image/jpeg"))])  # fmt: skip
    assert fed.status_code == 200, fed.text
    assert fed.json()["case"]["stage"] == "feedback" and len(fed.json()["photos"]) == 1
    resent = client.post(f"/api/field/tasks/{mine}/feedback", data=form, headers=worker,
                         files=[("photos", ("after.jpg", jpeg(), "image/jpeg"))])  # fmt: skip
    assert resent.status_code == 200 and len(resent.json()["photos"]) == 1
    done = {c["id"] for c in client.get("/api/field/tasks?done=true", headers=worker).json()}
    assert mine in done
    photo = fed.json()["photos"][0]["id"]
    assert client.get(f"/api/field/tasks/{mine}/photos/{photo}", headers=worker).content[:2] == b"\xff\xd8"
    handler = auth(client, "h-sx")  # the 山下 handler has the other task, and only that one
    assert {c["id"] for c in client.get("/api/field/tasks", headers=handler).json()} >= {theirs}
    assert client.get(f"/api/field/tasks/{mine}", headers=handler).status_code == 404
    assert client.post(f"/api/field/tasks/{theirs}/claim", json={}, headers=handler).status_code == 200


def test_a_patrol_track_is_kept_and_queryable(client: HubClient) -> None:
    worker = auth(client, "gw-hd")
    patrol = client.post("/api/field/patrols", headers=worker).json()
    now = datetime.now(UTC)
    points = [{"at": (now + timedelta(seconds=n)).isoformat(), "lat": 30.0 + n * 0.0001, "lon": 120.0,
               "accuracy_m": 5} for n in range(5)]  # fmt: skip
    added = client.post(f"/api/field/patrols/{patrol['id']}/points", json={"points": points}, headers=worker)
    assert added.status_code == 200 and added.json()["points"] == 5
    assert 40 < added.json()["distance_m"] < 50  # 4 x 0.0001 degrees of latitude: about 44.5 m
    resent = client.post(f"/api/field/patrols/{patrol['id']}/points", json={"points": points}, headers=worker)
    assert resent.json()["points"] == 5
    bad = [{**points[0], "at": (now + timedelta(seconds=10)).isoformat(), "lat": 91}]
    out_of_range = client.post(f"/api/field/patrols/{patrol['id']}/points", json={"points": bad}, headers=worker)
    assert out_of_range.status_code == 422 and "lat" in out_of_range.text
    future = [{**points[0], "at": (now + timedelta(hours=1)).isoformat()}]
    ahead = client.post(f"/api/field/patrols/{patrol['id']}/points", json={"points": future}, headers=worker)
    assert ahead.status_code == 422 and "future" in ahead.text
    naive = [{**points[0], "at": "2026-01-01T00:00:00"}]
    assert client.post(f"/api/field/patrols/{patrol['id']}/points", json={"points": naive},
                       headers=worker).status_code == 422  # fmt: skip
    other = auth(client, "gw-sx")
    assert client.post(f"/api/field/patrols/{patrol['id']}/points", json={"points": points},
                       headers=other).status_code == 404  # fmt: skip
    ended = client.post(f"/api/field/patrols/{patrol['id']}/end", json={"note": "无异常"}, headers=worker).json()
    assert ended["ended_at"] and ended["note"] == "无异常"
    late = [{**points[0], "at": (now + timedelta(seconds=20)).isoformat()}]
    assert client.post(f"/api/field/patrols/{patrol['id']}/points", json={"points": late},
                       headers=worker).status_code == 422  # fmt: skip
    admin = auth_admin(client)
    listed = client.get("/api/patrols?username=gw-hd", headers=admin).json()
    assert patrol["id"] in {p["id"] for p in listed}
    track = client.get(f"/api/patrols/{patrol['id']}", headers=admin).json()
    assert [p["lat"] for p in track["track"]] == [p["lat"] for p in points]
    positions = {p["username"]: p for p in client.get("/api/patrols/positions", headers=admin).json()}
    assert positions["gw-hd"]["position"]["lat"] == points[-1]["lat"] and not positions["gw-hd"]["patrolling"]
    scoped = auth(client, "op-sx")  # an operator of 山下 does not see a 河东 worker's patrol
    assert "gw-hd" not in {p["username"] for p in client.get("/api/patrols/positions", headers=scoped).json()}
    assert patrol["id"] not in {p["id"] for p in client.get("/api/patrols", headers=scoped).json()}
    assert client.get(f"/api/patrols/{patrol['id']}", headers=scoped).status_code == 404
    assert client.get("/api/patrols", headers=worker).status_code == 403


def test_bulk_accept_and_dispatch_report_each_case(client: HubClient) -> None:
    admin = auth_admin(client)
    ids = [client.post("/api/reports", json={"title": f"批量 {n}", "category": "dispute", "org_unit": "hedong-g1"},
                       headers=admin).json()["id"] for n in range(2)]  # fmt: skip
    accepted = client.post("/api/cases/bulk", json={"action": "accept", "ids": [*ids, "NOPE-1"]}, headers=admin)
    assert accepted.status_code == 200, accepted.text
    outcome = {o["id"]: o for o in accepted.json()}
    assert all(outcome[i]["ok"] and outcome[i]["stage"] == "accepted" for i in ids)
    assert not outcome["NOPE-1"]["ok"] and "no case" in outcome["NOPE-1"]["reason"]
    again = client.post("/api/cases/bulk", json={"action": "accept", "ids": ids[:1]}, headers=admin).json()
    assert not again[0]["ok"] and "not allowed from stage accepted" in again[0]["reason"]
    sent = client.post("/api/cases/bulk", json={"action": "dispatch", "ids": ids}, headers=admin).json()
    assert all(o["ok"] and o["stage"] == "dispatched" and o["department"] == "hd-jwh" for o in sent), sent
    assert client.post("/api/cases/bulk", json={"action": "accept", "ids": ids},
                       headers=auth(client, "gw-hd")).status_code == 403  # fmt: skip
    assert client.post("/api/cases/bulk", json={"action": "close", "ids": ids}, headers=admin).status_code == 422


def test_a_voice_note_goes_with_a_report_and_bad_ones_are_refused(client: HubClient) -> None:
    def send(voices: list[tuple[str, bytes]], **fields: Any) -> Any:
        form = {"client_id": uuid.uuid4().hex, "category": "city_appearance", **fields}
        files = [("photos", ("p.jpg", jpeg(), "image/jpeg"))] + [("voice", v) for v in voices]
        return client.post("/api/field/reports", data=form, files=files, headers=auth(client, "gw-hd"))

    note = voice_note(3)
    sent = send([("note.webm", note)])
    assert sent.status_code == 201, sent.text
    kinds = sorted(p["media_type"] for p in sent.json()["photos"])
    assert kinds == ["audio/webm", "image/jpeg"]
    case_id = sent.json()["case_id"]
    admin = auth_admin(client)
    attached = client.get(f"/api/cases/{case_id}/photos", headers=admin).json()
    voice = next(p for p in attached if p["media_type"] == "audio/webm")
    played = client.get(f"/api/cases/{case_id}/photos/{voice['id']}", headers=admin)
    assert played.status_code == 200 and played.headers["content-type"] == "audio/webm"
    assert played.content == note  # the bytes as recorded
    assert send([("m.m4a", voice_note(2, "ipod", "aac"))]).status_code == 201  # a phone's AAC recording
    long = send([("long.webm", voice_note(61))])
    assert long.status_code == 415 and "longer than 60 s" in long.json()["detail"]
    two = send([("a.webm", voice_note(1)), ("b.webm", voice_note(1))])
    assert two.status_code == 422 and "at most one" in two.json()["detail"]
    fake = send([("x.webm", b"\x1a\x45\xdf\xa3" + bytes(2000))])
    assert fake.status_code == 415 and "not a playable audio file" in fake.json()["detail"]
    text = send([("x.webm", b"hello, not audio")])
    assert text.status_code == 415 and "WebM, Ogg" in text.json()["detail"]
    video_only = send([("v.webm", video_clip())])
    assert video_only.status_code == 415 and "no audio stream" in video_only.json()["detail"]
    before = len(client.get("/api/cases?limit=500", headers=admin).json()["items"])
    assert send([("long.webm", voice_note(61))]).status_code == 415
    assert len(client.get("/api/cases?limit=500", headers=admin).json()["items"]) == before  # nothing was made


def video_clip() -> bytes:
    import io

    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="webm") as out:
        stream = out.add_stream("libvpx", rate=5)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"  # type: ignore[union-attr]
        for n in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), n * 40, np.uint8), format="rgb24")
            for packet in stream.encode(frame):  # type: ignore[union-attr]
                out.mux(packet)
        for packet in stream.encode(None):  # type: ignore[union-attr]
            out.mux(packet)
    return buf.getvalue()
