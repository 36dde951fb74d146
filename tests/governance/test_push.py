"""Web Push as a notification channel, against a real local receiver standing in for the browsers' push service:
each "browser" has its own P-256 key pair and auth secret, decrypts what it receives (aes128gcm, RFC 8291) and checks
the VAPID JWT (RFC 8292) against the hub's public key. Events go through the uplink queue as in the hub: retries on
5xx without sending twice to a browser already reached, a 404/410 removes the subscription, dead letters after the
last attempt, every delivery in the case's history."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import http_ece
import orjson
import pytest
import redis.asyncio as aioredis
import uvicorn
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from prometheus_client import CollectorRegistry
from pydantic import ValidationError
from sharpeye.api.routes.push import push_readers
from sharpeye.api.user import UserStore
from sharpeye.config.loader import demo_path, load_file
from sharpeye.config.site import SiteConfig
from sharpeye.governance.case import Source
from sharpeye.governance.push import PushError, PushService, PushSubscriptionIn, b64url, b64url_decode
from sharpeye.governance.queue import CaseQueue
from sharpeye.governance.service import CaseService
from sharpeye.governance.store import Database
from sharpeye.governance.uplink import UplinkService
from sharpeye.ingest.registry import installed
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sharpeye.clock import SystemClock
from sharpeye.keys import Keys
from sharpeye.role import Role
from tests.governance.casebook import OPERATOR
from tests.governance.test_channel import channel, free_port, halt, until

CONTACT = "mailto:duty@qingshui.example.cn"


@dataclass
class Browser:
    """A browser's push subscription: its own key pair and auth secret, and what its push service answers."""

    name: str
    answers: list[int] = field(default_factory=list)  # statuses to answer first; then 201
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    auth: bytes = field(default_factory=lambda: os.urandom(16))
    requests: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)  # (answer, headers, body)

    def subscription(self, port: int) -> PushSubscriptionIn:
        raw = self.key.public_key().public_bytes(serialization.Encoding.X962,
                                                 serialization.PublicFormat.UncompressedPoint)  # fmt: skip
        keys = {"p256dh": b64url(raw), "auth": b64url(self.auth)}
        endpoint = f"http://127.0.0.1:{port}/push/{self.name}"
        return PushSubscriptionIn.model_validate({"endpoint": endpoint, "keys": keys})

    def delivered(self) -> list[dict[str, Any]]:
        """The payloads of the requests answered 2xx, decrypted with this browser's private key."""
        out = []
        for answer, headers, body in self.requests:
            if 200 <= answer < 300:
                assert headers["content-encoding"] == "aes128gcm"
                plain = http_ece.decrypt(body, private_key=self.key, auth_secret=self.auth, version="aes128gcm")
                out.append(orjson.loads(plain))
        return out


def verify_vapid(authorization: str, hub_key: str, audience: str) -> dict[str, Any]:
    """RFC 8292: ``vapid t=<JWT>, k=<key>``; the key must be the hub's, the ES256 signature must hold."""
    scheme, _, params = authorization.partition(" ")
    assert scheme == "vapid"
    parts = dict(p.strip().split("=", 1) for p in params.split(","))
    assert parts["k"] == hub_key
    header_b64, claims_b64, sig_b64 = parts["t"].split(".")
    assert json.loads(b64url_decode(header_b64)) == {"typ": "JWT", "alg": "ES256"}
    raw = b64url_decode(sig_b64)
    assert len(raw) == 64
    signature = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(hub_key))
    public.verify(signature, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))  # raises if forged
    claims: dict[str, Any] = json.loads(b64url_decode(claims_b64))
    assert claims["aud"] == audience and claims["sub"] == CONTACT
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600
    return claims


class PushServiceStandIn:
    """The browsers' push service: one HTTP server, an endpoint per browser."""

    def __init__(self, browsers: list[Browser]) -> None:
        self.port = free_port()
        self.browsers = {b.name: b for b in browsers}
        self.server: uvicorn.Server | None = None
        self.task: asyncio.Task[None] | None = None

    async def push(self, request: Request) -> Response:
        browser = self.browsers.get(request.path_params["name"])
        if browser is None:
            return Response(status_code=404)
        answer = browser.answers.pop(0) if browser.answers else 201
        browser.requests.append((answer, dict(request.headers), await request.body()))
        return Response(status_code=answer)

    async def start(self) -> None:
        app = Starlette(routes=[Route("/push/{name}", self.push, methods=["POST"])])
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        )
        self.task = asyncio.create_task(self.server.serve())
        server = self.server
        await until(lambda: server.started, "the push service to listen", 10)

    async def stop(self) -> None:
        if self.server is not None and self.task is not None:
            self.server.should_exit = True
            await self.task


@pytest.fixture(scope="module")
def site() -> SiteConfig:
    return load_file(demo_path(), installed())


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'cases.db'}")
    await database.migrate()
    yield database
    await database.close()


def test_a_webpush_channel_names_its_recipients_and_nothing_else() -> None:
    with pytest.raises(ValidationError, match="needs recipients"):
        channel(id="push", format="webpush")
    with pytest.raises(ValidationError, match="takes no url or secret"):
        channel(id="push", format="webpush", to=["duty"], url="https://push.example.cn/")
    assert channel(id="push", format="webpush", to=["duty", "role:supervisor"]).rate == 60


async def test_subscriptions_are_validated_and_kept_per_user(redis_client: aioredis.Redis, keys: Keys) -> None:
    push = PushService(redis_client, keys, contact=CONTACT)
    good = Browser("a").subscription(443).model_dump()
    with pytest.raises(PushError, match="https://"):
        await push.subscribe("duty", "operator", PushSubscriptionIn.model_validate(good))  # http:// not allowed
    secure = {**good, "endpoint": "https://push.example.cn/send/abc"}
    with pytest.raises(ValidationError, match="p256dh"):
        off_curve = b64url(b"\x04" + b"\x01" * 64)
        PushSubscriptionIn.model_validate({**secure, "keys": {**good["keys"], "p256dh": off_curve}})
    with pytest.raises(ValidationError, match="auth must be 16 bytes"):
        PushSubscriptionIn.model_validate({**secure, "keys": {**good["keys"], "auth": b64url(b"short")}})
    with pytest.raises(PushError, match="credentials"):
        await push.subscribe("duty", "operator", PushSubscriptionIn.model_validate(
            {**secure, "endpoint": "https://u:p@push.example.cn/x"}))  # fmt: skip
    first = await push.subscribe("duty", "operator", PushSubscriptionIn.model_validate(secure))
    assert [s.id for s in await push.of_user("duty")] == [first.id]
    assert not await push.unsubscribe("other", secure["endpoint"])  # not someone else's
    assert await push.unsubscribe("duty", secure["endpoint"]) and await push.of_user("duty") == []
    # one key per site, shared by every node (the first node's wins)
    assert await PushService(redis_client, keys).public_key() == await push.public_key()
    assert len(b64url_decode(await push.public_key())) == 65


async def test_pushes_reach_the_named_users_browsers_encrypted_and_signed(
    site: SiteConfig, db: Database, redis_client: aioredis.Redis, keys: Keys
) -> None:
    duty = Browser("duty-pc", answers=[500, 503])  # the push service fails twice: retried
    chief = Browser("chief-phone")  # reached through role:supervisor
    outsider = Browser("outsider")  # subscribed, not a recipient
    gone = Browser("duty-old", answers=[410])  # the push service forgot it: removed, not retried
    night = Browser("night", answers=[503] * 10)  # never answers well: dead letter
    service = PushServiceStandIn([duty, chief, outsider, gone, night])
    await service.start()
    clock = SystemClock()
    cases = CaseService(site, db, redis_client, keys, clock)
    push = PushService(redis_client, keys, contact=CONTACT, allow_http=True)
    for user, role, browser in [("duty", "operator", duty), ("chief", "supervisor", chief),
                                ("eve", "operator", outsider), ("duty", "operator", gone),
                                ("night", "operator", night)]:  # fmt: skip
        await push.subscribe(user, role, browser.subscription(service.port))
    uplinks = [
        channel(id="push", format="webpush", to=["duty", "role:supervisor"], types=["case.accept"]),
        channel(id="push-night", format="webpush", to=["night"], types=["case.accept"], max_attempts=3),
    ]
    uplink = UplinkService(uplinks, redis_client, keys, clock, site_id="demo", consumer="n1", poll_s=0.05,
                           case_lookup=cases.get, on_delivered=cases.record_delivery, push=push)  # fmt: skip
    await uplink.ensure_groups()
    running = asyncio.create_task(uplink.run())
    try:
        case = await cases.report(title="水库围栏破损", category="city_appearance", severity="major",
                                  source=Source.grid_worker, org_unit="hedong-g1", actor=OPERATOR)  # fmt: skip
        await cases.accept(case.id, OPERATOR)
        await CaseQueue(redis_client, keys, db).relay(clock.now())
        await until(lambda: len(duty.delivered()) == 1 and len(chief.delivered()) == 1, "both recipients reached")
        await until(lambda: len(night.requests) == 3, "the night browser's three attempts")

        async def dead() -> bool:
            return len(await uplink.dead_letters("push-night")) == 1

        await until(dead, "the night channel's dead letter")

        async def noted() -> bool:
            return any(e.action == "notified" for e in await cases.history(case.id))

        await until(noted, "the delivery in the case's history")
    finally:
        await halt(running)
        await service.stop()

    assert [a for a, _, _ in duty.requests] == [500, 503, 201]
    assert len(chief.requests) == 1  # not sent again while the duty browser's delivery was retried
    assert outsider.requests == []
    assert [a for a, _, _ in gone.requests] == [410]
    assert {s.username for s in await push.all()} == {"duty", "chief", "eve", "night"}  # duty-old removed
    assert len(await push.of_user("duty")) == 1

    hub_key = await push.public_key()
    audience = f"http://127.0.0.1:{service.port}"
    for browser in (duty, chief):
        for _, headers, _ in browser.requests:
            verify_vapid(headers["authorization"], hub_key, audience)
            assert headers["urgency"] == "high" and int(headers["ttl"]) > 0  # a major case wakes the phone
        payload = browser.delivered()[0]
        assert payload["title"] == "【SharpEye 综治】立案：水库围栏破损"
        assert "承办" in payload["body"] and case.id in payload["body"]
        assert payload["open"] == f"case:{case.id}" and payload["tag"] == f"case:{case.id}"
    # the browser refuses a payload not encrypted for it
    with pytest.raises(http_ece.ECEException, match="InvalidTag"):
        http_ece.decrypt(chief.requests[0][2], private_key=duty.key, auth_secret=duty.auth, version="aes128gcm")

    letter = (await uplink.dead_letters("push-night"))[0]
    assert letter.attempts == 3 and "HTTP 503" in letter.error
    notes = [e.note for e in await cases.history(case.id) if e.action == "notified"]
    assert len(notes) == 1 and notes[0].startswith("webpush → duty、role:supervisor: case.accept")


async def test_only_enabled_users_whose_role_reads_cases_are_pushed_to(
    redis_client: aioredis.Redis, keys: Keys
) -> None:
    """The node's readers are the real user accounts: a disabled user, one whose role lost the right to read cases and
    one whose account is gone get no push, and their subscriptions are removed; ``role:<role>`` matches the role the
    user has now, not the one they subscribed with."""
    users = UserStore(redis_client, keys, 3600)
    for name, role in [("duty", Role.operator), ("night", Role.operator), ("eve", Role.operator),
                       ("chief", Role.supervisor)]:  # fmt: skip
        await users.add(name, "Push-Readers-Password-1", role)
    registry = CollectorRegistry()
    push = PushService(redis_client, keys, contact=CONTACT, allow_http=True, registry=registry,
                       readers=push_readers(users))  # fmt: skip
    for name in ("duty", "night", "eve", "chief", "ghost"):
        await push.subscribe(name, "supervisor" if name == "chief" else "operator", Browser(name).subscription(443))

    await users.set_disabled("night", True)
    eve = await users.get("eve")
    duty = await users.get("duty")
    assert eve is not None and duty is not None
    # role changes as the account store keeps them: eve now wires devices (reads no cases), duty is promoted
    await redis_client.hset(keys.users, "eve", eve.model_copy(update={"role": Role.integrator}).model_dump_json())
    await redis_client.hset(keys.users, "duty", duty.model_copy(update={"role": Role.supervisor}).model_dump_json())

    reached = await push.recipients(["night", "eve", "ghost", "role:supervisor"])
    assert sorted((s.username, s.role) for s in reached) == [("chief", "supervisor"), ("duty", "supervisor")]
    assert {s.username for s in await push.all()} == {"duty", "chief"}  # night's, eve's and ghost's removed
    assert registry.get_sample_value("sharpeye_push_dropped_total") == 3
    assert await push.recipients(["role:operator"]) == []

    assert await push.drop_user("duty") == 1  # an administrator disables duty: at once, not at the next send
    assert [s.username for s in await push.all()] == ["chief"]
    assert await push.drop_user("duty") == 0
