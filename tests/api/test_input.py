"""Bodies from outside: NaN and Infinity in bounded numbers, bodies that are not UTF-8, and the body size limit
each get a 4xx naming what is wrong (never a 500), and each refusal is counted in /metrics."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sharpeye.api.setting import ApiSettings

from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.conftest import HubClient, app_client, hub_settings

PASSWORD = "Input-Checks-Pass-1"
LIMIT = 64 * 1024
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server_session: EmbeddedRedis,
    mqtt_broker_session: EmbeddedMosquitto,
) -> Iterator[HubClient]:
    data: Path = tmp_path_factory.mktemp("input")
    settings = hub_settings(data, redis_server_session.url, mqtt_broker_session.url, admin_password=PASSWORD)
    with app_client(settings, sign_in=PASSWORD, api_settings=ApiSettings(max_body_bytes=LIMIT)) as c:
        yield c


def rejected(client: HubClient, reason: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f'sharpeye_api_rejected_requests_total{{reason="{reason}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def report(lat: str) -> str:
    return '{"title": "积水", "category": "dispute", "org_unit": "hedong-g1", "lat": ' + lat + ', "lon": 120.1}'


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_a_422_with_the_reason(client: HubClient, value: str) -> None:
    before = rejected(client, "invalid")
    response = client.post("/api/reports", content=report(value), headers=JSON)
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "lat"] and "finite" in error["msg"], error
    assert error["input"] == value  # quoted back as text: JSON has no such number
    extension = '{"action": "request_extension", "note": "雨天", "extra_hours": ' + value + "}"
    response = client.post("/api/cases/no-such-case/actions", content=extension, headers=JSON)
    assert response.status_code == 422 and "finite" in response.text, response.text
    assert rejected(client, "invalid") == before + 2
    assert client.post("/api/reports", content=report("30.5"), headers=JSON).status_code == 201


def test_a_report_form_with_nan_is_a_422_too(client: HubClient) -> None:
    fields = {"title": "积水", "category": "dispute", "org_unit": "hedong-g1", "lat": "nan", "lon": "120"}
    response = client.post("/api/reports/form", data=fields, files={"photos": ("a.txt", b"", "text/plain")})
    assert response.status_code == 422 and "finite" in response.text, response.text


def test_a_body_that_is_not_utf8_is_a_400_naming_the_encoding(client: HubClient) -> None:
    before = rejected(client, "not_utf8")
    gbk = '{"title": "积水", "category": "dispute", "org_unit": "hedong-g1"}'.encode("gbk")
    response = client.post("/api/reports", content=gbk, headers=JSON)
    assert response.status_code == 400, response.text
    assert "not UTF-8" in response.json()["detail"] and "position" in response.json()["detail"]
    assert rejected(client, "not_utf8") == before + 1


def test_a_body_over_the_limit_is_refused_with_the_limit(client: HubClient) -> None:
    before = rejected(client, "too_large")
    big = b'{"title": "' + b"x" * (LIMIT + 1) + b'"}'
    declared = client.post("/api/reports", content=big, headers=JSON)
    assert declared.status_code == 413 and str(LIMIT) in declared.json()["detail"], declared.text
    assert declared.headers["X-Content-Type-Options"] == "nosniff"  # answered inside the security headers

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"title": "'
        for _ in range(LIMIT // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'

    streamed = client.post("/api/reports", content=chunks(), headers=JSON)
    assert streamed.status_code == 413 and str(LIMIT) in streamed.json()["detail"], streamed.text
    assert rejected(client, "too_large") == before + 2
    small = client.post("/api/reports", content=report("30.5"), headers=JSON)
    assert small.status_code == 201
