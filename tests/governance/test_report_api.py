"""People's reports through the API: a report with photos (JPEG/PNG by their bytes, size and count caps,
downloads only within the caller's scope), the 12345 hotline import (dry run, then a real run; GB18030
CSV and JSON; every rejected row with its reason; a second import creates nothing), and merge proposals
(并单) confirmed into the target case, which takes over the merged case's alarms."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import orjson
import pytest
from sharpeye.api.permission import Role
from sharpeye.config.governance import ReportLimits
from sharpeye.config.loader import demo_path, load_file
from sharpeye.config.rule import Severity
from sharpeye.config.site import SiteConfig
from sharpeye.governance.case import GeoPoint, Source
from sharpeye.governance.flow import Actor
from sharpeye.ingest.registry import installed

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from sharpeye.role import Role as FlowRole
from tests.conftest import HubClient, app_client, hub_settings

PW = "Report-Test-Password-1"
LIMITS = ReportLimits(photo_max_bytes=300_000, photos_per_request=3, request_max_bytes=700_000)


def small_site() -> SiteConfig:
    site = load_file(demo_path(), installed())
    governance = site.governance.model_copy(update={"reports": LIMITS})
    return site.model_copy(update={"governance": governance})


@pytest.fixture
def client(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> Iterator[HubClient]:
    settings = hub_settings(tmp_path, redis_server.url, mqtt_broker.url, admin_password=PW, prefix=keys.prefix)
    with app_client(settings, small_site()) as c:
        users = c.users
        assert c.portal is not None
        c.portal.call(lambda: users.add("duty", PW, Role.operator))
        c.portal.call(lambda: users.add("gw-hedong", PW, Role.operator, "hedong"))
        c.portal.call(lambda: users.add("gw-shanxia", PW, Role.operator, "shanxia"))
        yield c


def login(client: HubClient, name: str) -> dict[str, str]:
    token = client.post("/api/auth/token", data={"username": name, "password": PW}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def image(kind: str, side: int = 64) -> bytes:
    rng = np.random.default_rng(side)
    pixels = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(f".{kind}", pixels)
    assert ok
    return bytes(buf)


def case_count(client: HubClient, who: dict[str, str]) -> int:
    return int(client.get("/api/cases", headers=who).json()["total"])


FIELDS = {"title": "井盖缺失", "category": "city_appearance", "org_unit": "hedong-g1", "description": "路口井盖丢失",
          "lat": "30.2741", "lon": "120.1551"}  # fmt: skip


def test_report_with_photos_checked_stored_and_served_in_scope(client: HubClient) -> None:
    duty, hedong, shanxia = login(client, "duty"), login(client, "gw-hedong"), login(client, "gw-shanxia")
    jpeg, png = image("jpg"), image("png")
    files = [("photos", ("a.jpg", jpeg, "image/jpeg")), ("photos", ("../../b.png", png, "image/png"))]
    made = client.post("/api/reports/form", data=FIELDS, headers=hedong, files=files)
    assert made.status_code == 201, made.text
    body = made.json()
    cid = body["case"]["id"]
    assert body["case"]["location"] == {"lat": 30.2741, "lon": 120.1551}
    assert [p["media_type"] for p in body["photos"]] == ["image/jpeg", "image/png"]
    assert body["photos"][1]["filename"] == "b.png"  # the path part is dropped
    listed = client.get(f"/api/cases/{cid}/photos", headers=duty).json()
    assert {p["sha256"] for p in listed} == {hashlib.sha256(jpeg).hexdigest(), hashlib.sha256(png).hexdigest()}
    pid = body["photos"][0]["id"]
    got = client.get(f"/api/cases/{cid}/photos/{pid}", headers=duty)
    assert got.status_code == 200 and got.content == jpeg and got.headers["content-type"] == "image/jpeg"
    # Outside the caller's scope: the case and its photos do not exist for them.
    assert client.get(f"/api/cases/{cid}/photos/{pid}", headers=shanxia).status_code == 404
    assert client.get(f"/api/cases/{cid}/photos", headers=shanxia).status_code == 404
    assert client.get(f"/api/cases/{cid}/photos/{pid}").status_code == 401

    before = case_count(client, duty)
    # Not an image, whatever it claims to be: refused by its bytes, and no case is created.
    fake = client.post("/api/reports/form", data=FIELDS, headers=hedong,
                       files=[("photos", ("c.jpg", b"<html>not a photo</html>", "image/jpeg"))])  # fmt: skip
    assert fake.status_code == 415 and "not a JPEG or PNG" in fake.json()["detail"]
    big = b"\xff\xd8\xff" + bytes(LIMITS.photo_max_bytes)
    too_big = client.post("/api/reports/form", data=FIELDS, headers=hedong,
                          files=[("photos", ("d.jpg", big, "image/jpeg"))])  # fmt: skip
    assert too_big.status_code == 413 and "at most 300000" in too_big.json()["detail"]
    near = b"\xff\xd8\xff" + bytes(LIMITS.photo_max_bytes - 10)
    whole = client.post("/api/reports/form", data=FIELDS, headers=hedong,
                        files=[("photos", (f"{i}.jpg", near, "image/jpeg")) for i in range(3)])  # fmt: skip
    assert whole.status_code == 413  # three photos each within the cap, but over the request cap
    many = client.post("/api/reports/form", data=FIELDS, headers=hedong,
                       files=[("photos", (f"{i}.png", png, "image/png")) for i in range(4)])  # fmt: skip
    assert many.status_code == 422
    missing = client.post("/api/reports/form", data={**FIELDS, "lon": ""}, headers=hedong)
    assert missing.status_code == 422
    assert case_count(client, duty) == before

    # More photos on the existing case; refused on someone else's ground.
    more = client.post(f"/api/cases/{cid}/photos", headers=hedong, files=[("photos", ("e.png", png, "image/png"))])
    assert more.status_code == 201 and len(client.get(f"/api/cases/{cid}/photos", headers=duty).json()) == 3
    assert client.post(f"/api/cases/{cid}/photos", headers=shanxia,
                       files=[("photos", ("e.png", png, "image/png"))]).status_code == 404  # fmt: skip


CSV_ROWS = [
    "工单号,标题,类别,所属网格,诉求内容,纬度,经度",
    "HL-001,楼道堆放杂物,dispute,hedong-g1,邻里纠纷 堆物占道,30.27,120.15",
    "HL-002,河道漂浮物,environment,shanxia-g1,河面有垃圾,,",
    "HL-003,噪音扰民,dispute,nowhere-g9,夜间施工,,",
    "HL-001,重复工单,dispute,hedong-g1,同一工单号,,",
    "HL-004,,dispute,hedong-g1,缺标题,,",
    "HL-005,外星人,alien_sighting,hedong-g1,无法派遣的类别,,",
    "HL-006,只有纬度,dispute,hedong-g1,坐标不全,30.1,",
]


def test_hotline_import_dry_run_then_real_run(client: HubClient) -> None:
    duty = login(client, "duty")
    body = ("\n".join(CSV_ROWS) + "\n").encode("gb18030")  # a GB18030 export with Chinese headings
    before = case_count(client, duty)
    dry = client.post("/api/reports/import?format=csv&dry_run=true", content=body, headers=duty)
    assert dry.status_code == 200, dry.text
    plan = dry.json()
    assert plan["dry_run"] is True
    assert [(p["ticket"], p["department"]) for p in plan["created"]] == [("HL-001", "hd-jwh"), ("HL-002", "sx-cwh")]
    reasons = {(r["row"], r["ticket"]): r["reason"] for r in plan["rejected"]}
    assert set(reasons) == {(3, "HL-003"), (4, "HL-001"), (5, "HL-004"), (6, "HL-005"), (7, "HL-006")}
    assert "no org unit 'nowhere-g9'" in reasons[(3, "HL-003")]
    assert "appears twice" in reasons[(4, "HL-001")]
    assert reasons[(5, "HL-004")].startswith("title:")
    assert "cannot be dispatched" in reasons[(6, "HL-005")]
    assert "lat and lon" in reasons[(7, "HL-006")]
    assert case_count(client, duty) == before  # a dry run writes nothing

    real = client.post("/api/reports/import?format=csv&dry_run=false", content=body, headers=duty).json()
    created = {p["ticket"]: p["case_id"] for p in real["created"]}
    assert set(created) == {"HL-001", "HL-002"} and len(real["rejected"]) == 5
    case = client.get(f"/api/cases/{created['HL-001']}", headers=duty).json()["case"]
    assert case["source"] == "hotline" and "HL-001" in case["description"] and case["title"] == "楼道堆放杂物"
    assert case_count(client, duty) == before + 2

    again = client.post("/api/reports/import?format=csv&dry_run=false", content=body, headers=duty).json()
    assert (
        again["created"] == [] and "imported before" in {r["ticket"]: r["reason"] for r in again["rejected"]}["HL-002"]
    )

    tickets = {"tickets": [{"ticket": "HL-100", "title": "路灯不亮", "category": "city_appearance",
                            "org_unit": "hedong-g2"}, "not an object",
                           {"ticket": "HL-101", "title": "x", "category": "dispute", "org_unit": "hedong-g2",
                            "colour": "red"}]}  # fmt: skip
    result = client.post("/api/reports/import?format=json&dry_run=false", content=orjson.dumps(tickets),
                         headers=duty).json()  # fmt: skip
    assert [p["ticket"] for p in result["created"]] == ["HL-100", "HL-101"]  # an extra column is ignored
    assert [(r["row"], r["reason"]) for r in result["rejected"]] == [(2, "not an object")]
    assert result["warnings"] == ["field 'colour' ignored (rows 3)"]
    timed = [{"ticket": "HL-102", "title": "噪音", "category": "dispute", "org_unit": "hedong-g2",
              "called_at": "2026-01-05 09:00", "accepted_at": "2026-01-05 09:03"}]  # fmt: skip
    mapped = client.post("/api/reports/import?format=json&dry_run=false", content=orjson.dumps(timed),
                         headers=duty).json()  # fmt: skip
    case = client.get(f"/api/cases/{mapped['created'][0]['case_id']}", headers=duty).json()["case"]
    assert "来电时间：2026-01-05 09:00" in case["description"] and "受理时间：2026-01-05 09:03" in case["description"]
    wrong = [{**timed[0], "ticket": "HL-103", "called_at": "昨天"}]
    refused = client.post("/api/reports/import?format=json", content=orjson.dumps(wrong), headers=duty).json()
    assert "called_at" in refused["rejected"][0]["reason"]
    bad = client.post("/api/reports/import?format=json", content=b"{oops", headers=duty)
    assert bad.status_code == 422 and "not JSON" in bad.json()["detail"]

    # A grid worker scoped to 河东 cannot import tickets for 山下.
    hedong = login(client, "gw-hedong")
    scoped = client.post("/api/reports/import?format=json&dry_run=true", headers=hedong, content=orjson.dumps(
        [{"ticket": "HL-200", "title": "t", "category": "dispute", "org_unit": "shanxia-g1"}])).json()  # fmt: skip
    assert scoped["created"] == [] and "outside your scope" in scoped["rejected"][0]["reason"]


def report(client: HubClient, who: dict[str, str], **over: Any) -> str:
    body = {"title": "占道经营", "category": "city_appearance", "org_unit": "hedong-g1", "lat": 30.2741,
            "lon": 120.1551, **over}  # fmt: skip
    made = client.post("/api/reports", json=body, headers=who)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def test_merge_proposals_and_confirmed_merge_moves_alarms(client: HubClient) -> None:
    duty = login(client, "duty")
    first = report(client, duty)
    other_kind = report(client, duty, category="dispute")
    far = report(client, duty, lat=30.2841)  # about 1.1 km north
    hub = client.hub
    assert client.portal is not None
    op = Actor("op-test", FlowRole.operator)
    second = client.portal.call(lambda: hub.cases.report(
        title="占道经营 再次上报", category="city_appearance", severity=Severity.minor, source=Source.resident,
        org_unit="hedong-g1", actor=op, alarm_ids=["alm-merge-1", "alm-merge-2"], incident_id="inc-merge-1",
        location=GeoPoint(lat=30.2745, lon=120.1553)))  # fmt: skip
    # A report with photos sent from the same spot comes back with its merge proposal.
    form = {**FIELDS, "title": "占道经营 第三次", "lat": "30.2742", "lon": "120.1552"}
    third = client.post("/api/reports/form", data=form, headers=duty,
                        files=[("photos", ("p.png", image("png"), "image/png"))]).json()  # fmt: skip
    assert [p["target"] for p in third["merge_proposals"]][:1] == [first]
    proposals = client.get(f"/api/cases/{second.id}/merge-proposals", headers=duty).json()
    assert [p["target"] for p in proposals] == [third["case"]["id"], first]  # nearest first; not the other kind or far
    assert proposals[0]["distance_m"] < proposals[1]["distance_m"] < 60
    assert far not in [p["target"] for p in client.get(f"/api/cases/{first}/merge-proposals", headers=duty).json()]
    assert other_kind not in [p["target"] for p in proposals]

    merged = client.post(f"/api/cases/{second.id}/merge", json={"target": first, "note": "同一占道经营"}, headers=duty)
    assert merged.status_code == 200, merged.text
    assert merged.json()["case"]["stage"] == "merged" and merged.json()["case"]["alarm_ids"] == []
    target = client.get(f"/api/cases/{first}", headers=duty).json()
    assert target["case"]["alarm_ids"] == ["alm-merge-1", "alm-merge-2"]
    assert target["history"][-1]["action"] == "merged_from" and second.id in target["history"][-1]["note"]
    assert client.portal.call(hub.cases.case_for_alarm, "alm-merge-2") == first
    # Merged once: a second confirmation, or a merge into a finished case, is refused with the reason.
    assert client.post(f"/api/cases/{second.id}/merge", json={"target": first}, headers=duty).status_code == 409
    assert client.get(f"/api/cases/{second.id}/merge-proposals", headers=duty).json() == []
    refused = client.post(f"/api/cases/{far}/merge", json={"target": second.id}, headers=duty)
    assert refused.status_code == 409 and "merge" in refused.json()["detail"]
