"""Uplinks against a real HTTP receiver (uvicorn on 127.0.0.1): while it is down (not listening, then
answering 503) the events wait and are retried with backoff, across a restart of the uplink service; when
it comes back it receives every case and alarm event exactly once, each signed and fresh. Events that
exhaust their attempts become dead letters and are replayed through the API."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis
import uvicorn
from sharpeye.api.permission import Role
from sharpeye.config.governance import Uplink
from sharpeye.config.loader import demo_path, load_file
from sharpeye.config.rule import Severity
from sharpeye.config.site import SiteConfig
from sharpeye.governance.case import Source
from sharpeye.governance.queue import CaseQueue
from sharpeye.governance.service import CaseService
from sharpeye.governance.store import Database
from sharpeye.governance.uplink import SIGNATURE, TIMESTAMP, UplinkService, sign, verify
from sharpeye.ingest.registry import installed
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sharpeye.clock import SystemClock
from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from tests.conftest import HubClient, app_client, hub_settings
from tests.governance.casebook import OPERATOR
from tests.helpers import env_secret

SECRET = "uplink-test-secret-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(check: Callable[[], Awaitable[bool]], what: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def halt(task: asyncio.Task[None]) -> None:
    """Cancel until the task ends: redis-py can swallow a cancellation that lands while it opens a
    connection, so one cancel() is not always enough."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1)


class Receiver:
    """An external system's webhook endpoint: checks every request, keeps what it accepted."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.failing = False
        self.accepted: list[dict[str, object]] = []
        self.answered_503 = 0
        self.refused: list[str] = []
        self.server: uvicorn.Server | None = None
        self.task: asyncio.Task[None] | None = None

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        reason = verify(SECRET, request.headers, body, time.time())
        if reason is not None:
            self.refused.append(reason)
            return Response(reason, status_code=401)
        if self.failing:
            self.answered_503 += 1
            return Response("maintenance", status_code=503)
        envelope = orjson.loads(body)
        assert request.headers["idempotency-key"] == envelope["id"] == request.headers["x-sharpeye-delivery"]
        self.accepted.append(envelope)
        return Response(status_code=204)

    async def start(self) -> None:
        app = Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.task = asyncio.create_task(self.server.serve())
        server = self.server

        async def started() -> bool:
            return server.started

        await until(started, "the receiver to listen", 10)

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


def uplink(port: int, **over: object) -> Uplink:
    fields: dict[str, object] = {"id": "city", "url": f"http://127.0.0.1:{port}/hook", "secret": env_secret(SECRET),
                                 "backoff_s": 0.05, "backoff_max_s": 0.3, "max_attempts": 100,
                                 "timeout_s": 1.0}  # fmt: skip
    return Uplink.model_validate({**fields, **over})


async def notify_alarm(redis: aioredis.Redis, keys: Keys, alarm_id: str, kind: str) -> None:
    """An entry of the alarm notification log, as the alarm store writes it."""
    fields = {"type": kind, "alarm": alarm_id, "fingerprint": "fence-school:intrusion", "at": f"{time.time():.3f}",
              "actor": "system", "state": "open", "note": "", "incident": ""}  # fmt: skip
    await redis.xadd(keys.alarm_events, fields)  # type: ignore[arg-type]


def test_signature_binds_body_and_timestamp() -> None:
    body = b'{"id":"case-1-0"}'
    now = int(time.time())
    good = {TIMESTAMP: str(now), SIGNATURE: sign(SECRET, now, body)}
    assert verify(SECRET, good, body, now) is None
    assert verify(SECRET, good, body + b" ", now) == "bad signature"
    assert verify("another-secret-0123456789", good, body, now) == "bad signature"
    assert verify(SECRET, good, body, now + 301) == "stale timestamp (replayed or clock skew)"
    moved = {TIMESTAMP: str(now + 600), SIGNATURE: good[SIGNATURE]}  # a replay with a fresh stamp
    assert verify(SECRET, moved, body, now + 600) == "bad signature"


async def test_receiver_down_then_back_gets_everything_once(
    site: SiteConfig, db: Database, redis_client: aioredis.Redis, keys: Keys
) -> None:
    clock = SystemClock()
    cases = CaseService(site, db, redis_client, keys, clock)
    queue = CaseQueue(redis_client, keys, db)
    port = free_port()
    receiver = Receiver(port)
    first = UplinkService([uplink(port)], redis_client, keys, clock, site_id="demo", consumer="n1", poll_s=0.05,
                          case_lookup=cases.get)  # fmt: skip
    await first.ensure_groups()
    running = asyncio.create_task(first.run())
    try:
        made = []
        for i in range(3):  # report + accept: two case events each
            case = await cases.report(title=f"占道 {i}", category="city_appearance", severity=Severity.minor,
                                      source=Source.grid_worker, org_unit="hedong-g1", actor=OPERATOR)  # fmt: skip
            await cases.accept(case.id, OPERATOR)
            made.append(case.id)
        await queue.relay(clock.now())
        await notify_alarm(redis_client, keys, "alm-1", "raised")
        await notify_alarm(redis_client, keys, "alm-1", "cleared")

        async def all_failed_once() -> bool:
            return first.failures >= 8

        await until(all_failed_once, "every event to fail against a closed port")

        receiver.failing = True  # up, but answering 503 for a while
        await receiver.start()

        async def refused_by_503() -> bool:
            return receiver.answered_503 >= 8

        await until(refused_by_503, "503 answers")
    finally:
        await halt(running)  # the hub restarts while the receiver is still failing

    late = await cases.report(title="夜间施工噪音", category="dispute", severity=Severity.minor, source=Source.resident,
                              org_unit="hedong-g2", actor=OPERATOR)  # fmt: skip
    await queue.relay(clock.now())
    second = UplinkService([uplink(port)], redis_client, keys, clock, site_id="demo", consumer="n2", poll_s=0.05,
                           case_lookup=cases.get)  # fmt: skip
    running = asyncio.create_task(second.run())
    try:
        receiver.failing = False

        async def drained() -> bool:
            [state] = await second.states()
            return len(receiver.accepted) >= 9 and state.pending == 0

        await until(drained, "every event delivered")
    finally:
        await halt(running)
        await receiver.stop()

    ids = [str(e["id"]) for e in receiver.accepted]
    assert len(ids) == len(set(ids)) == 9, ids  # everything, once
    assert receiver.refused == []  # every request was signed and fresh
    types = sorted(str(e["type"]) for e in receiver.accepted)
    assert types == sorted(["case.report"] * 4 + ["case.accept"] * 3 + ["alarm.raised", "alarm.cleared"])
    case_ids = {e["data"]["case_id"] for e in receiver.accepted if e["kind"] == "case"}  # type: ignore[index]
    assert case_ids == {*made, late.id}
    assert all(e["site"] == "demo" for e in receiver.accepted)
    summaries = {e["case"]["id"]: e["case"] for e in receiver.accepted if e["kind"] == "case"}  # type: ignore[index]
    assert {s["category"] for s in summaries.values()} == {"city_appearance", "dispute"}  # type: ignore[index]
    assert summaries[made[0]]["org_unit"] == "hedong-g1"  # type: ignore[index]
    [state] = await second.states()
    assert (state.pending, state.dead, state.delivered_recently) == (0, 0, 9)


PW = "Uplink-Test-Password-1"


@pytest.fixture
def client(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> Iterator[tuple[HubClient, int]]:
    port = free_port()
    site = load_file(demo_path(), installed())
    limited = uplink(port, max_attempts=2, backoff_s=0.05)
    site = site.model_copy(update={"governance": site.governance.model_copy(update={"uplinks": [limited]})})
    settings = hub_settings(tmp_path, redis_server.url, mqtt_broker.url, admin_password=PW, prefix=keys.prefix)
    with app_client(settings, site) as c:
        users = c.users
        assert c.portal is not None
        c.portal.call(lambda: users.add("integ", PW, Role.integrator))
        c.portal.call(lambda: users.add("duty", PW, Role.operator))
        yield c, port


def login(client: HubClient, name: str) -> dict[str, str]:
    token = client.post("/api/auth/token", data={"username": name, "password": PW}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def test_dead_letters_listed_and_replayed_through_the_api(client: tuple[HubClient, int]) -> None:
    c, port = client
    hub = c.hub
    assert c.portal is not None
    integ, duty = login(c, "integ"), login(c, "duty")
    receiver = Receiver(port)

    async def exhaust() -> UplinkService:
        service = UplinkService(hub.site.governance.uplinks, hub.redis, hub.keys, hub.clock, site_id="demo",
                                consumer="t", poll_s=0.05)  # fmt: skip
        await service.ensure_groups()
        task = asyncio.create_task(service.run())
        await notify_alarm(hub.redis, hub.keys, "alm-dead", "raised")

        async def dead() -> bool:
            return (await service.states())[0].dead == 1

        await until(dead, "a dead letter")
        await halt(task)
        return service

    c.portal.call(exhaust)
    [state] = c.get("/api/uplinks", headers=integ).json()
    assert (state["id"], state["dead"], state["pending"]) == ("city", 1, 0) and "secret" not in state
    [letter] = c.get("/api/uplinks/city/dead-letters", headers=integ).json()
    assert letter["attempts"] == 2 and "ConnectError" in letter["error"] and letter["body"]["type"] == "alarm.raised"
    assert c.get("/api/uplinks/nowhere/dead-letters", headers=integ).status_code == 404
    assert c.post("/api/uplinks/city/dead-letters/replay", json={}, headers=duty).status_code == 403

    async def deliver_after_replay() -> None:
        await receiver.start()
        service = UplinkService(hub.site.governance.uplinks, hub.redis, hub.keys, hub.clock, site_id="demo",
                                consumer="t", poll_s=0.05)  # fmt: skip
        task = asyncio.create_task(service.run())
        try:

            async def delivered() -> bool:
                return len(receiver.accepted) == 1

            await until(delivered, "the replayed letter")
        finally:
            await halt(task)
            await receiver.stop()

    replayed = c.post("/api/uplinks/city/dead-letters/replay", json={"ids": None}, headers=integ)
    assert replayed.json() == {"replayed": 1}
    c.portal.call(deliver_after_replay)
    assert receiver.accepted[0]["id"] == letter["id"]
    [state] = c.get("/api/uplinks", headers=integ).json()
    assert (state["dead"], state["pending"], state["delivered_recently"]) == (0, 0, 1)


async def test_backoff_doubles_to_its_cap_and_queue_takes_an_event_once(
    redis_client: aioredis.Redis, keys: Keys
) -> None:
    link = uplink(free_port(), backoff_s=2.0, backoff_max_s=600.0, max_attempts=20)
    service = UplinkService([link], redis_client, keys, SystemClock(), site_id="demo", consumer="n1")
    delays = [service.backoff(link, n) for n in range(1, 20)]
    assert delays[:4] == [2.0, 4.0, 8.0, 16.0] and delays[9:] == [600.0] * 10
    assert sum(delays) > 3600  # the defaults outlast a receiver down for an hour
    assert await service.enqueue(link, "case-7-0", b'{"id":"case-7-0"}')
    assert not await service.enqueue(link, "case-7-0", b'{"id":"case-7-0"}')  # a re-read source entry
    [state] = await service.states()
    assert state.pending == 1
