"""Notification channels against real local receivers: an HTTP server standing in for the 企业微信 and 钉钉 group
robots and an SMS gateway, and a real SMTP server (aiosmtpd). Events go through the uplink queue as in the hub:
case events from the case service's outbox, alarm events from the alarm notification log."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
import redis.asyncio as aioredis
import uvicorn
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SmtpServer
from aiosmtpd.smtp import Envelope, Session
from pydantic import ValidationError
from sharpeye.config.governance import Uplink
from sharpeye.config.loader import demo_path, load_file
from sharpeye.config.rule import Severity
from sharpeye.config.site import SiteConfig
from sharpeye.governance.case import Source
from sharpeye.governance.channel import fields, hold_until, render, template_for, wanted
from sharpeye.governance.escalation import Firing
from sharpeye.governance.queue import CaseQueue
from sharpeye.governance.service import CaseService
from sharpeye.governance.store import Database
from sharpeye.governance.uplink import UplinkService
from sharpeye.ingest.registry import installed
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sharpeye.clock import ManualClock, SystemClock
from sharpeye.keys import Keys
from tests.governance.casebook import OPERATOR
from tests.helpers import env_secret

ROBOT_KEY = "robot-key-0123456789"
SIGN_SECRET = "SECabcdef0123456789"
SMS_TOKEN = "sms-token-0123456789"
ZONE = ZoneInfo("Asia/Shanghai")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def until(check: Callable[[], Awaitable[bool] | bool], what: str, within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while True:
        result = check()
        if await result if isinstance(result, Awaitable) else result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def halt(task: asyncio.Task[None]) -> None:
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=1)


class Robots:
    """One HTTP server standing in for the robot endpoints and the SMS gateway, checking what each requires."""

    def __init__(self) -> None:
        self.port = free_port()
        self.wecom: list[dict[str, Any]] = []
        self.dingtalk: list[dict[str, Any]] = []
        self.sms: list[dict[str, Any]] = []
        self.refused: list[str] = []
        self.busy = 0  # answer this many robot requests with errcode 45009 (rate limited) first
        self.server: uvicorn.Server | None = None
        self.task: asyncio.Task[None] | None = None

    async def wecom_hook(self, request: Request) -> Response:
        if request.query_params.get("key") != ROBOT_KEY:
            self.refused.append("wecom key")
            return JSONResponse({"errcode": 93000, "errmsg": "invalid webhook url"})
        if self.busy:
            self.busy -= 1
            return JSONResponse({"errcode": 45009, "errmsg": "api freq out of limit"})
        self.wecom.append(orjson.loads(await request.body()))
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    async def dingtalk_hook(self, request: Request) -> Response:
        q = request.query_params
        stamp = q.get("timestamp", "")
        mac = hmac.new(SIGN_SECRET.encode(), f"{stamp}\n{SIGN_SECRET}".encode(), hashlib.sha256).digest()
        if q.get("access_token") != ROBOT_KEY or q.get("sign") != base64.b64encode(mac).decode():
            self.refused.append("dingtalk sign")
            return JSONResponse({"errcode": 310000, "errmsg": "sign not match"})
        if abs(int(stamp) / 1000 - time.time()) > 3600:
            self.refused.append("dingtalk stale")
            return JSONResponse({"errcode": 310000, "errmsg": "timestamp"})
        self.dingtalk.append(orjson.loads(await request.body()))
        return JSONResponse({"errcode": 0, "errmsg": "ok"})

    async def sms_hook(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {SMS_TOKEN}":
            self.refused.append("sms token")
            return Response("unauthorised", status_code=401)
        self.sms.append(orjson.loads(await request.body()))
        return Response(status_code=202)

    async def start(self) -> None:
        app = Starlette(
            routes=[
                Route("/cgi-bin/webhook/send", self.wecom_hook, methods=["POST"]),
                Route("/robot/send", self.dingtalk_hook, methods=["POST"]),
                Route("/sms/send", self.sms_hook, methods=["POST"]),
            ]
        )
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        )
        self.task = asyncio.create_task(self.server.serve())
        server = self.server
        await until(lambda: server.started, "the robots to listen", 10)

    async def stop(self) -> None:
        if self.server is not None and self.task is not None:
            self.server.should_exit = True
            await self.task


class Mailbox:
    """aiosmtpd's handler: keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: SmtpServer, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        parsed = message_from_bytes(content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"


@pytest.fixture(scope="module")
def site() -> SiteConfig:
    return load_file(demo_path(), installed())


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'cases.db'}")
    await database.migrate()
    yield database
    await database.close()


@pytest.fixture
async def robots() -> AsyncIterator[Robots]:
    server = Robots()
    await server.start()
    yield server
    await server.stop()


def channel(**spec: Any) -> Uplink:
    base = {"backoff_s": 0.05, "backoff_max_s": 0.2, "max_attempts": 50, "timeout_s": 2.0}
    return Uplink.model_validate({**base, **spec})


def envelope(kind: str = "case", action: str = "dispatch", severity: str = "minor", **extra: Any) -> dict[str, Any]:
    if kind == "alarm":
        return {"kind": "alarm", "type": f"alarm.{action}", "site": "demo", "occurred_at": "2026-12-07T01:00:00Z",
                "data": {"type": action, "alarm": "a1"},
                "alarm": {"id": "a1", "title": "围界入侵", "severity": severity, "place": "水库北侧围栏",
                          "device_id": "fence-reservoir"}, **extra}  # fmt: skip
    return {"kind": "case", "type": f"case.{action}", "site": "demo", "occurred_at": "2026-12-07T01:00:00Z",
            "data": {"case_id": "QS-1", "action": action, **extra.pop("data", {})},
            "case": {"id": "QS-1", "title": "占道经营", "category": "city_appearance", "severity": severity,
                     "department": "urban", "due_at": "2026-12-08T09:00:00Z", "light": "green"}, **extra}  # fmt: skip


def test_a_channel_says_what_is_wrong_with_its_config() -> None:
    with pytest.raises(ValidationError, match="needs recipients"):
        channel(id="sms", format="sms", url="http://127.0.0.1/sms")
    with pytest.raises(ValidationError, match="smtp:// or smtps://"):
        channel(id="mail", format="email", url="http://mail", to=["a@b.c"], sender="hub@b.c")
    with pytest.raises(ValidationError, match="robot needs its key"):
        channel(id="wx", format="wecom")
    with pytest.raises(ValidationError, match="sign_secret is for dingtalk"):
        channel(id="wx", format="wecom", secret=env_secret(ROBOT_KEY), sign_secret=env_secret(SIGN_SECRET))
    with pytest.raises(ValidationError, match="webhook needs a secret"):
        channel(id="hook", url="http://127.0.0.1/hook")
    robot = channel(id="wx", format="wecom", secret=env_secret(ROBOT_KEY))
    assert robot.endpoint.startswith("https://qyapi.weixin.qq.com/") and robot.rate == 20


def test_filters_choose_the_events() -> None:
    urban = channel(id="wx", format="wecom", secret=env_secret(ROBOT_KEY), types=["case.dispatch", "case.supervise"],
                    departments=["urban"], min_severity="minor")  # fmt: skip
    assert wanted(urban, envelope())
    assert not wanted(urban, envelope(action="claim"))
    assert not wanted(urban, envelope(severity="warning"))
    other = envelope()
    other["case"]["department"] = "police"
    assert not wanted(urban, other)
    aimed = envelope(action="supervise", data={"target": "urban"})
    aimed["case"]["department"] = None
    assert wanted(urban, aimed)  # 督办 aimed at the department
    alarms = channel(id="wx2", format="wecom", secret=env_secret(ROBOT_KEY), types=["alarm.raised"],
                     min_severity="major")  # fmt: skip
    assert wanted(alarms, envelope("alarm", "raised", "critical"))
    assert not wanted(alarms, envelope("alarm", "raised", "minor"))
    assert not wanted(alarms, envelope("alarm", "cleared", "critical"))


def test_quiet_hours_hold_all_but_the_severe() -> None:
    quiet = channel(id="sms", format="sms", url="http://x/sms", to=["13800000000"],
                    quiet_hours={"start": 22, "end": 7, "send_from": "major"})  # fmt: skip
    night = datetime(2026, 12, 7, 23, 30, tzinfo=ZONE)
    held = hold_until(quiet, envelope(severity="minor"), night, ZONE)
    assert held == datetime(2026, 12, 8, 7, 0, tzinfo=ZONE)
    assert hold_until(quiet, envelope(severity="major"), night, ZONE) is None
    assert hold_until(quiet, envelope(severity="minor"), datetime(2026, 12, 7, 12, 0, tzinfo=ZONE), ZONE) is None
    early = hold_until(quiet, envelope(severity="minor"), datetime(2026, 12, 7, 6, 59, tzinfo=ZONE), ZONE)
    assert early == datetime(2026, 12, 7, 7, 0, tzinfo=ZONE)


def test_templates_render_in_chinese_with_local_times() -> None:
    values = fields(envelope(action="supervise", data={"notify": "handler", "step": "s1"}), ZONE)
    text = render(template_for(channel(id="wx", format="wecom", secret=env_secret(ROBOT_KEY)),
                               envelope(action="supervise")), values)  # fmt: skip
    assert text.startswith("【SharpEye 督办】提醒承办部门：占道经营")
    assert "2026-12-08 17:00" in text  # due 09:00 UTC is 17:00 Beijing time
    custom = render("${case_id} ${nonsense}", values)
    assert custom == "QS-1 ${nonsense}"


async def _case(cases: CaseService, title: str, severity: Severity = Severity.minor) -> str:
    case = await cases.report(title=title, category="city_appearance", severity=severity, source=Source.grid_worker,
                              org_unit="hedong-g1", actor=OPERATOR)  # fmt: skip
    await cases.accept(case.id, OPERATOR)
    return case.id


async def test_robots_and_sms_gateway_receive_rendered_messages(
    site: SiteConfig, db: Database, redis_client: aioredis.Redis, keys: Keys, robots: Robots
) -> None:
    clock = SystemClock()
    cases = CaseService(site, db, redis_client, keys, clock)
    base = f"http://127.0.0.1:{robots.port}"
    uplinks = [
        channel(id="wx", format="wecom", url=f"{base}/cgi-bin/webhook/send", secret=env_secret(ROBOT_KEY),
                to=["13800000001"], types=["case.accept"]),
        channel(id="dd", format="dingtalk", url=f"{base}/robot/send", secret=env_secret(ROBOT_KEY),
                sign_secret=env_secret(SIGN_SECRET), types=["case.accept"]),
        channel(id="sms", format="sms", url=f"{base}/sms/send", secret=env_secret(SMS_TOKEN),
                to=["13800000002", "13800000003"], types=["case.accept"],
                template="${type_zh} ${case_title} ${case_id}"),
    ]  # fmt: skip
    robots.busy = 2  # the WeCom robot is over its limit twice: retried, not lost
    service = UplinkService(uplinks, redis_client, keys, clock, site_id="demo", consumer="n1", poll_s=0.05,
                            case_lookup=cases.get, on_delivered=cases.record_delivery)  # fmt: skip
    await service.ensure_groups()
    running = asyncio.create_task(service.run())
    try:
        made = [await _case(cases, f"占道经营 {i}") for i in range(2)]
        await CaseQueue(redis_client, keys, db).relay(clock.now())
        await until(lambda: len(robots.wecom) >= 2 and len(robots.dingtalk) >= 2 and len(robots.sms) >= 2,
                    "every channel to receive both cases")  # fmt: skip

        async def noted() -> bool:
            history = await cases.history(made[0])
            return len([e for e in history if e.action == "notified"]) == 3

        await until(noted, "every delivery in the case's history")
    finally:
        await halt(running)
    assert not robots.refused
    texts = sorted(m["text"]["content"] for m in robots.wecom)
    assert [t.split("\n")[0] for t in texts] == [f"【SharpEye 综治】立案：占道经营 {i}" for i in range(2)]
    assert all(m["text"]["mentioned_mobile_list"] == ["13800000001"] for m in robots.wecom)
    assert all(m["msgtype"] == "text" and "立案" in m["text"]["content"] for m in robots.dingtalk)
    assert sorted(m["text"] for m in robots.sms) == sorted(f"立案 占道经营 {i} {made[i]}" for i in range(2))
    assert all(m["phones"] == ["13800000002", "13800000003"] for m in robots.sms)
    assert len(robots.wecom) == 2 and len(robots.dingtalk) == 2 and len(robots.sms) == 2  # none twice

    lines = sorted(e.note for e in await cases.history(made[0]) if e.action == "notified")
    assert lines[0].startswith("dingtalk → dd: case.accept") and lines[1].startswith("sms → 13800000002、13800000003")


async def test_email_through_a_real_smtp_server(
    site: SiteConfig, db: Database, redis_client: aioredis.Redis, keys: Keys
) -> None:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    clock = SystemClock()
    cases = CaseService(site, db, redis_client, keys, clock)
    mail = channel(id="mail", format="email", url=f"smtp://127.0.0.1:{port}", to=["duty@qingshui.example"],
                   sender="sharpeye@qingshui.example", types=["case.accept"],
                   subject="${type_zh} ${case_id}")  # fmt: skip
    service = UplinkService([mail], redis_client, keys, clock, site_id="demo", consumer="n1", poll_s=0.05,
                            case_lookup=cases.get)  # fmt: skip
    await service.ensure_groups()
    running = asyncio.create_task(service.run())
    try:
        case_id = await _case(cases, "井盖缺失")
        await CaseQueue(redis_client, keys, db).relay(clock.now())
        await until(lambda: len(mailbox.messages) >= 1, "the mail")
    finally:
        await halt(running)
        controller.stop()
    [message] = mailbox.messages
    assert message["Subject"] == f"立案 {case_id}"
    assert message["To"] == "duty@qingshui.example"
    body = message.get_body(("plain",))
    assert body is not None and "井盖缺失" in body.get_content()


async def test_rate_limit_and_quiet_hours_hold_messages_without_losing_them(
    site: SiteConfig, db: Database, redis_client: aioredis.Redis, keys: Keys, robots: Robots
) -> None:
    # 23:00 Beijing time: quiet until 07:00 for anything below major.
    clock = ManualClock(datetime(2026, 12, 7, 15, 0, 30, tzinfo=UTC))
    cases = CaseService(site, db, redis_client, keys, clock)
    wx = channel(id="wx", format="wecom", url=f"http://127.0.0.1:{robots.port}/cgi-bin/webhook/send",
                 secret=env_secret(ROBOT_KEY), types=["case.accept"], rate_per_min=2,
                 quiet_hours={"start": 22, "end": 7, "send_from": "major"})  # fmt: skip
    service = UplinkService([wx], redis_client, keys, clock, site_id="demo", consumer="n1", poll_s=0.05,
                            case_lookup=cases.get)  # fmt: skip
    await service.ensure_groups()
    running = asyncio.create_task(service.run())
    try:
        for i in range(3):
            await _case(cases, f"重大火情 {i}", Severity.major)
        await _case(cases, "路灯不亮", Severity.minor)
        await CaseQueue(redis_client, keys, db).relay(clock.now())
        await until(lambda: len(robots.wecom) >= 2 and service.held >= 2, "two severe messages, the rest held")
        assert len(robots.wecom) == 2  # this minute's rate is spent; the third waits for the next minute
        clock.advance(60)
        await until(lambda: len(robots.wecom) >= 3, "the third severe message in the next minute")
        await asyncio.sleep(0.3)  # nothing else is due: the minor one waits for the morning
        assert len(robots.wecom) == 3
        clock.set(datetime(2026, 12, 7, 23, 0, 1, tzinfo=UTC))  # 07:00:01 Beijing time
        await until(lambda: len(robots.wecom) >= 4, "the held minor message after the quiet hours")

        async def settled() -> bool:
            [state] = await service.states()
            return state.pending == 0 and state.delivered_recently == 4

        await until(settled, "the queue to empty")
    finally:
        await halt(running)
    assert "路灯不亮" in robots.wecom[-1]["text"]["content"]
    assert len(robots.wecom) == 4


async def test_a_fired_supervision_step_reaches_the_departments_channel(
    site: SiteConfig, db: Database, redis_client: aioredis.Redis, keys: Keys, robots: Robots
) -> None:
    clock = SystemClock()
    cases = CaseService(site, db, redis_client, keys, clock)
    case_id = await _case(cases, "垃圾堆放")
    wx = channel(id="wx", format="wecom", url=f"http://127.0.0.1:{robots.port}/cgi-bin/webhook/send",
                 secret=env_secret(ROBOT_KEY), types=["case.supervise"], departments=["hd-jwh"])  # fmt: skip
    service = UplinkService([wx], redis_client, keys, clock, site_id="demo", consumer="n1", poll_s=0.05,
                            case_lookup=cases.get)  # fmt: skip
    await service.ensure_groups()
    running = asyncio.create_task(service.run())
    try:
        firing = Firing(entry_id="1-0", case_id=case_id, step="remind", notify="handler", target="hd-jwh",
                        due=time.time(), at=time.time(), generation="g1")  # fmt: skip
        assert await cases.record_firing(firing)
        other = Firing(entry_id="2-0", case_id=case_id, step="remind", notify="handler", target="police",
                       due=time.time(), at=time.time(), generation="g2")  # fmt: skip
        assert await cases.record_firing(other)
        await CaseQueue(redis_client, keys, db).relay(clock.now())
        await until(lambda: len(robots.wecom) >= 1 and service.filtered >= 1, "the 督办 message")
        await asyncio.sleep(0.2)
    finally:
        await halt(running)
    [message] = robots.wecom
    assert message["text"]["content"].startswith("【SharpEye 督办】提醒承办部门：垃圾堆放")
