"""The API while the hub's Redis is down, restarting or loading: 503 with Retry-After and the reason, not 500, and
the same request answers 200 again once Redis is back. Redis is this test's own, so it can be killed."""

from __future__ import annotations

import time
from pathlib import Path

from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from sharpeye.api.app import redis_unavailable
from starlette.requests import Request

from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.conftest import app_client, hub_settings

PASSWORD = "redis-down-admin-pw"


def test_requests_get_503_with_retry_after_while_redis_is_killed_and_200_once_it_is_back(
    tmp_path: Path, mqtt_broker: EmbeddedMosquitto
) -> None:
    server = EmbeddedRedis(workdir=tmp_path / "redis")
    server.start()
    try:
        settings = hub_settings(tmp_path / "data", server.url, mqtt_broker.url, admin_password=PASSWORD)
        with app_client(settings, sign_in=PASSWORD) as client:
            assert client.get("/api/alarms").status_code == 200
            server.kill()
            answers = [client.get(path) for path in ("/api/alarms", "/api/cases", "/api/devices")]
            for response in answers:
                assert response.status_code == 503, (response.request.url, response.status_code, response.text)
                assert response.headers["Retry-After"] == "5"
                body = response.json()
                assert body["reason"] == "redis_unavailable"
                assert "Redis is unreachable" in body["detail"], body
            server.start()  # same port and files, as the hub's supervisor restarts its embedded Redis
            deadline = time.monotonic() + 15
            status = 0
            while time.monotonic() < deadline:
                status = client.get("/api/alarms").status_code
                if status == 200:
                    break
                assert status == 503, status
                time.sleep(0.1)
            assert status == 200, "the API did not recover after Redis came back"
            metrics = client.get("/metrics").text
            assert any(
                line.startswith("sharpeye_http_request") and 'status="503"' in line for line in metrics.splitlines()
            ), "503 answers not counted in /metrics"
    finally:
        server.stop()


def test_a_redis_still_loading_its_data_is_named_as_such() -> None:
    request = Request({"type": "http", "method": "GET", "path": "/api/alarms", "headers": [], "query_string": b""})
    loading = redis_unavailable(request, BusyLoadingError("Redis is loading the dataset in memory"))
    down = redis_unavailable(request, RedisConnectionError("Connection refused"))
    assert (loading.status_code, down.status_code) == (503, 503)
    assert b"loading its data" in loading.body and b"unreachable" in down.body
    assert loading.headers["Retry-After"] == "5"
