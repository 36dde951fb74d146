"""The alarm script's fencing check: a batch carries the lease value its node holds for the batch's source, and
is applied only while the lease still holds that value (ingest/ownership.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sharpeye.config.site import SiteConfig
from sharpeye.ingest.ownership import Ownership

from tests.alarms.conftest import Rig, make_site, state_rule

Factory = Callable[[SiteConfig], Awaitable[Rig]]


async def test_a_stale_lease_changes_nothing_and_a_held_one_applies(rig_factory: Factory) -> None:
    rig = await rig_factory(make_site([state_rule("r")]))
    units = {"d1": 1.0}
    old = Ownership(rig.redis, rig.keys, "old", lambda: units, ttl_s=0.5, period_s=0.1)
    await old.round()
    stale = old.fence("d1")
    assert stale is not None
    held = [t.outcome for t in await rig.engine.process([rig.reading("r", "alarm", 1)], stale)]
    assert held == ["raised"]
    # the lease and the node's record expired while "old" was paused...
    await rig.redis.delete(rig.keys.device_lease("d1"), rig.keys.node("old"))
    new = Ownership(rig.redis, rig.keys, "new", lambda: units, ttl_s=5, period_s=1)
    await new.round()  # ...and another node took it, with a higher token
    fence = new.fence("d1")
    assert fence is not None and fence[0] == stale[0] and fence[1] != stale[1]
    late = [rig.reading("r", "restore", 2), rig.reading("r", "alarm", 3)]
    assert [t.outcome for t in await rig.engine.process(late, stale)] == ["fenced", "fenced"]
    (alarm,), _ = await rig.store.page()
    assert alarm.state == "active_unack" and alarm.count == 1  # nothing of the refused batch was applied
    assert [e["type"] for e in await rig.events()] == ["raised"]
    assert [t.outcome for t in await rig.engine.process(late, fence)] == ["cleared", "raised"]
    assert [t.outcome for t in await rig.engine.process([rig.reading("r", "alarm", 4)], None)] == ["repeated"]
