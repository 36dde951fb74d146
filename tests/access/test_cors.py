"""CORS: closed by default; with SHARPEYE_CORS_ORIGINS, a listed origin may send the console's cookie session
(credentials and the CSRF header), and any other origin gets no CORS grant."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sharpeye.api.deps import CSRF_HEADER

from sharpeye.settings import Settings
from tests.conftest import hub_app

ALLOWED = "https://console.example.gov.cn"


def _client(tmp_path: Path, origins: list[str]) -> TestClient:
    # Preflights are answered by the middleware: no lifespan (no hub) is needed, so the client is not entered.
    settings = Settings(data_dir=tmp_path, cors_origins=origins, redis_url="redis://127.0.0.1:1/0", mqtt_url="mqtt://x")
    return TestClient(hub_app(settings)[0])


def _preflight(client: TestClient, origin: str, method: str = "POST") -> tuple[int, dict[str, str]]:
    response = client.options(
        "/api/alarms/some-alarm/ack",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": f"content-type,{CSRF_HEADER.lower()}",
        },
    )
    return response.status_code, {k.lower(): v for k, v in response.headers.items()}


def test_a_listed_origin_may_send_the_cookie_and_the_csrf_header(tmp_path: Path) -> None:
    status, headers = _preflight(_client(tmp_path, [ALLOWED]), ALLOWED)
    assert status == 200
    assert headers["access-control-allow-origin"] == ALLOWED  # never "*" together with credentials
    assert headers["access-control-allow-credentials"] == "true"
    assert CSRF_HEADER.lower() in headers["access-control-allow-headers"].lower()
    assert "POST" in headers["access-control-allow-methods"]
    _, patch = _preflight(_client(tmp_path, [ALLOWED]), ALLOWED, "PATCH")
    assert "PATCH" in patch["access-control-allow-methods"]


def test_another_origin_is_refused(tmp_path: Path) -> None:
    status, headers = _preflight(_client(tmp_path, [ALLOWED]), "https://evil.example.com")
    assert status == 400
    assert "access-control-allow-origin" not in headers


def test_cors_is_closed_without_origins(tmp_path: Path) -> None:
    _, headers = _preflight(_client(tmp_path, []), ALLOWED)
    assert not any(name.startswith("access-control-") for name in headers)
