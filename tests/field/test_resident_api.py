"""The residents' report API over a real hub: a code through a real HTTP SMS gateway, or a captcha; limits per
phone number and address; receipts that cannot be forged; the rating after closing counted as 满意率."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
import pytest

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.conftest import HubClient, app_client, hub_settings
from tests.field.sms_gateway import SmsGateway, site_with_sms

PASSWORD = "resident-Password-1"


def settings_for(tmp: pytest.TempPathFactory, redis: EmbeddedRedis, mqtt: EmbeddedMosquitto, name: str) -> Any:
    keys = Keys(f"{name}{uuid.uuid4().hex[:6]}")
    return hub_settings(tmp.mktemp(name), redis.url, mqtt.url, admin_password=PASSWORD, prefix=keys.prefix,
                        node_id=keys.prefix)  # fmt: skip


@pytest.fixture(scope="module")
def gateway() -> Iterator[SmsGateway]:
    with SmsGateway() as g:
        yield g


@pytest.fixture(scope="module")
def sms_client(tmp_path_factory: pytest.TempPathFactory, redis_server_session: EmbeddedRedis,
               mqtt_broker_session: EmbeddedMosquitto, gateway: SmsGateway) -> Iterator[HubClient]:  # fmt: skip
    site = site_with_sms(gateway.url, challenges_per_phone_per_hour=3, reports_per_phone_per_day=2,
                         lookups_per_address_per_hour=40)  # fmt: skip
    settings = settings_for(tmp_path_factory, redis_server_session, mqtt_broker_session, "resident")
    with app_client(settings, site, sign_in=PASSWORD) as client:
        yield client


@pytest.fixture(scope="module")
def captcha_client(tmp_path_factory: pytest.TempPathFactory, redis_server_session: EmbeddedRedis,
                   mqtt_broker_session: EmbeddedMosquitto) -> Iterator[HubClient]:  # fmt: skip
    settings = settings_for(tmp_path_factory, redis_server_session, mqtt_broker_session, "captcha")
    with app_client(settings) as client:
        yield client


def jpeg() -> bytes:
    ok, data = cv2.imencode(".jpg", np.full((48, 64, 3), 90, np.uint8))
    assert ok
    return bytes(data.tobytes())


def report(client: HubClient, gateway: SmsGateway, phone: str, **fields: str) -> Any:
    challenge = client.post("/api/public/challenges", json={"phone": phone}, headers={"Authorization": ""})
    assert challenge.status_code == 201, challenge.text
    assert challenge.json()["kind"] == "sms" and challenge.json()["image"] is None
    form = {"phone": phone, "challenge_id": challenge.json()["id"], "answer": gateway.code_for(phone),
            "category": "environment", "org_unit": "shanxia-g1", "description": "河道有垃圾漂浮",
            "lat": "30.1", "lon": "120.1", **fields}  # fmt: skip
    return client.post("/api/public/reports", data=form, files=[("photos", ("river.jpg", jpeg(), "image/jpeg"))],
                       headers={"Authorization": ""})  # fmt: skip


def close(client: HubClient, case_id: str) -> None:
    for action in ({"action": "accept"}, {"action": "dispatch", "department": "sx-cwh", "note": "村委会处置"},
                   {"action": "claim"}, {"action": "feedback", "note": "已清理"}, {"action": "verify"},
                   {"action": "pass_check"}):  # fmt: skip
        answer = client.post(f"/api/cases/{case_id}/actions", json=action)
        assert answer.status_code == 200, (action, answer.text)


def test_a_residents_report_with_a_code_is_followed_closed_and_rated(sms_client: HubClient,
                                                                     gateway: SmsGateway) -> None:  # fmt: skip
    made = report(sms_client, gateway, "13912345678")
    assert made.status_code == 201, made.text
    receipt, case_id = made.json()["receipt"], made.json()["case_id"]
    assert len(receipt.replace("-", "")) == 16
    case = sms_client.get(f"/api/cases/{case_id}").json()["case"]
    assert case["source"] == "resident" and case["org_unit"] == "shanxia-g1" and "13912345678" in case["description"]
    assert len(sms_client.get(f"/api/cases/{case_id}/photos").json()) == 1
    anonymous = {"Authorization": ""}
    followed = sms_client.get(f"/api/public/receipts/{receipt.lower()}", headers=anonymous).json()
    assert followed["case_id"] == case_id and followed["stage_label"] == "上报" and not followed["may_rate"]
    early = sms_client.post(f"/api/public/receipts/{receipt}/rating", json={"satisfaction": "satisfied"},
                            headers=anonymous)  # fmt: skip
    assert early.status_code == 409 and "closed" in early.json()["detail"]
    before = sms_client.get("/api/stats").json()[0]
    close(sms_client, case_id)
    rated = sms_client.post(f"/api/public/receipts/{receipt}/rating", json={"satisfaction": "basic", "comment": "及时"},
                            headers=anonymous)  # fmt: skip
    assert rated.status_code == 200 and rated.json()["satisfaction"] == "basic" and not rated.json()["may_rate"]
    assert [e["label"] for e in rated.json()["progress"]][-1] == "评价"
    twice = sms_client.post(f"/api/public/receipts/{receipt}/rating", json={"satisfaction": "unsatisfied"},
                            headers=anonymous)  # fmt: skip
    assert twice.status_code == 409 and "rated already" in twice.json()["detail"]
    after = sms_client.get("/api/stats").json()[0]
    assert after["rated"] == before["rated"] + 1 and after["satisfied"] == before["satisfied"] + 1
    assert after["satisfaction_rate"] == 100.0
    csv = sms_client.get("/api/stats?format=csv").text
    assert "满意率" in csv.splitlines()[0]


def test_forged_receipts_wrong_codes_and_limits_are_refused(sms_client: HubClient, gateway: SmsGateway) -> None:
    anonymous = {"Authorization": ""}
    for forged in ("AAAA-BBBB-CCCC-DDDD", "not-a-receipt", "QS-20260101-00001"):
        refused = sms_client.get(f"/api/public/receipts/{forged}", headers=anonymous)
        assert refused.status_code == 404 and "receipt" in refused.json()["detail"]
    phone = "13700001111"
    challenge = sms_client.post("/api/public/challenges", json={"phone": phone}, headers=anonymous).json()
    code = gateway.code_for(phone)
    wrong = str((int(code) + 1) % 1_000_000).zfill(6)
    form = {"phone": phone, "challenge_id": challenge["id"], "answer": wrong, "category": "environment",
            "org_unit": "shanxia-g1", "description": "x"}  # fmt: skip
    refused = sms_client.post("/api/public/reports", data=form, headers=anonymous)
    assert refused.status_code == 403 and "wrong code" in refused.json()["detail"]
    spent = sms_client.post("/api/public/reports", data={**form, "answer": code}, headers=anonymous)
    assert spent.status_code == 403 and "expired or was used" in spent.json()["detail"]  # a wrong try spends it
    other = sms_client.post("/api/public/challenges", json={"phone": "13700002222"}, headers=anonymous).json()
    theirs = {**form, "challenge_id": other["id"], "answer": gateway.code_for("13700002222")}
    stolen = sms_client.post("/api/public/reports", headers=anonymous, data=theirs)
    assert stolen.status_code == 403 and "another phone" in stolen.json()["detail"]
    bad = sms_client.post("/api/public/challenges", json={"phone": "12345"}, headers=anonymous)
    assert bad.status_code == 422
    sms_client.post("/api/public/challenges", json={"phone": phone}, headers=anonymous)
    sms_client.post("/api/public/challenges", json={"phone": phone}, headers=anonymous)  # the third this hour
    limited = sms_client.post("/api/public/challenges", json={"phone": phone}, headers=anonymous)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert report(sms_client, gateway, "13600003333").status_code == 201
    assert report(sms_client, gateway, "13600003333").status_code == 201
    third = report(sms_client, gateway, "13600003333")  # two reports a day from one number here
    assert third.status_code == 429 and "reports from this number" in third.json()["detail"]
    off_map = report(sms_client, gateway, "13600004444", lat="91")
    assert off_map.status_code == 422 and "lat" in off_map.text
    gateway.failing = True
    try:
        down = sms_client.post("/api/public/challenges", json={"phone": "13600005555"}, headers=anonymous)
        assert down.status_code == 502 and "SMS gateway" in down.json()["detail"]
    finally:
        gateway.failing = False
    metrics = sms_client.get("/metrics").text
    assert 'sharpeye_field_requests_total{kind="resident",outcome="receipt_refused"}' in metrics


def test_lookups_from_one_address_are_limited(sms_client: HubClient) -> None:
    statuses = [sms_client.get("/api/public/receipts/AAAABBBBCCCCDDDD", headers={"Authorization": ""}).status_code
                for _ in range(45)]  # fmt: skip
    assert statuses[0] == 404 and statuses[-1] == 429  # forging receipts by trying them runs into the limit


def test_without_an_sms_uplink_a_captcha_is_asked(captcha_client: HubClient) -> None:
    anonymous = {"Authorization": ""}
    config = captcha_client.get("/api/public/config", headers=anonymous).json()
    assert config["sms"] is False and "shanxia-g1" in {u["id"] for u in config["units"]}
    made = captcha_client.post("/api/public/challenges", json={"phone": "13512345678"}, headers=anonymous).json()
    assert made["kind"] == "captcha" and made["image"].startswith("data:image/png;base64,")
    image = cv2.imdecode(np.frombuffer(base64.b64decode(made["image"].split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[0] == 60 and image.std() > 10  # letters and noise, not a blank
    form = {"phone": "13512345678", "challenge_id": made["id"], "answer": "WRONG", "category": "dispute",
            "org_unit": "hedong-g1", "description": "噪音扰民"}  # fmt: skip
    refused = captcha_client.post("/api/public/reports", data=form, headers=anonymous)
    assert refused.status_code == 403 and "wrong code" in refused.json()["detail"]
