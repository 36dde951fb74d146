"""Task notifications (任务提醒): a webpush uplink sending to ``task:assignees`` reaches the phones of the people whose
task the case is (its lead department's, then a co-handling department's, within their units) and nobody else."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from pydantic import ValidationError
from sharpeye.config.site import SiteConfig
from sharpeye.governance.case import Source
from sharpeye.governance.flow import Action, Args
from sharpeye.governance.push import PushService
from sharpeye.governance.queue import CaseQueue
from sharpeye.governance.service import CaseService
from sharpeye.governance.store import Database
from sharpeye.governance.uplink import UplinkService
from sharpeye.ingest.inventory import DeviceInventory
from sharpeye.ingest.registry import installed

from sharpeye.clock import SystemClock
from sharpeye.keys import Keys
from tests.governance.casebook import OPERATOR
from tests.governance.test_channel import channel, halt, until
from tests.governance.test_push import CONTACT, Browser, PushServiceStandIn, db, site

__all__ = ["db", "site"]  # fixtures


def test_task_assignees_is_a_recipient_and_typos_are_named() -> None:
    assert channel(id="tasks", format="webpush", to=["task:assignees", "role:supervisor", "duty.1"]).to
    with pytest.raises(ValidationError, match="'role:boss': no such role"):
        channel(id="tasks", format="webpush", to=["role:boss"])
    with pytest.raises(ValidationError, match="'task:everyone' is not a user name"):
        channel(id="tasks", format="webpush", to=["task:everyone"])


async def test_a_dispatched_case_reaches_its_assignees_phones_only(
    site: SiteConfig, db: Database, redis_client: aioredis.Redis, keys: Keys, tmp_path: Path
) -> None:
    clock = SystemClock()
    cases = CaseService(site, db, redis_client, keys, clock)
    case = await cases.report(title="井盖缺失", category="city_appearance", severity="major",
                              source=Source.grid_worker, org_unit="hedong-g1", actor=OPERATOR)  # fmt: skip
    await cases.accept(case.id, OPERATOR)
    lead = (await cases.dispatch(case.id, OPERATOR)).department
    assert lead is not None
    helper = next(d.id for d in site.departments if d.id != lead)
    inventory = DeviceInventory(site, installed(), redis_client, keys)
    worker = Browser("worker")  # a grid worker of hedong-g1 whose grid's team leads the case
    elsewhere = Browser("elsewhere")  # the same department's tasks, but another grid
    handler = Browser("handler")  # the lead department's handler, site-wide
    co = Browser("co")  # the co-handling department's handler: told when it is added
    operator = Browser("operator")  # the centre: not an assignee
    service = PushServiceStandIn([worker, elsewhere, handler, co, operator])
    await service.start()
    push = PushService(redis_client, keys, contact=CONTACT, allow_http=True, units_below=inventory.units_below)
    for user, role, browser, departments, unit in [
        ("gw1", "grid_worker", worker, {lead}, "hedong-g1"),
        ("gw2", "grid_worker", elsewhere, {lead}, "shanxia-g1"),
        ("h1", "handler", handler, {lead}, None),
        ("h2", "handler", co, {helper}, None),
        ("duty", "operator", operator, set(), None),
    ]:
        await push.subscribe(user, role, browser.subscription(service.port), departments=frozenset(departments),
                             org_unit=unit)  # fmt: skip
    tasks = channel(id="tasks", format="webpush", to=["task:assignees"], types=["case.dispatch", "case.assist"])
    uplink = UplinkService([tasks], redis_client, keys, clock, site_id="demo", consumer="n1", poll_s=0.05,
                           case_lookup=cases.get, on_delivered=cases.record_delivery, push=push)  # fmt: skip
    await uplink.ensure_groups()
    running = asyncio.create_task(uplink.run())
    try:
        await CaseQueue(redis_client, keys, db).relay(clock.now())
        await until(lambda: len(worker.delivered()) == 1 and len(handler.delivered()) == 1, "the dispatch at both")
        await cases.act(case.id, Action.assist, OPERATOR, Args(departments=(helper,)))
        await CaseQueue(redis_client, keys, db).relay(clock.now())
        await until(lambda: len(co.delivered()) == 1, "the assist at the co-handling department")
        await until(lambda: len(worker.delivered()) == 2, "the assist at the lead's grid worker too")
    finally:
        await halt(running)
        await service.stop()
    assert elsewhere.requests == [] and operator.requests == []
    first = worker.delivered()[0]
    assert (
        first["open"] == f"case:{case.id}"
        and first["type"] == "case.dispatch"
        and "井盖缺失" in first["body"] + first["title"]
    )
    assert [p["type"] for p in co.delivered()] == ["case.assist"]  # not the dispatch it was no party to
