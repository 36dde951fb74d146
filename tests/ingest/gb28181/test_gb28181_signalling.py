"""Signalling defects fixed with the media work (issue 16): query order after REGISTER, a re-register while a
query is pending, and the re-query interval when DeviceInfo is never answered."""

from __future__ import annotations

from typing import Any

from sharpeye.ingest.gb28181.manscdp import parse_body
from sharpeye.ingest.transport.sip.endpoint import Peer
from sharpeye.ingest.transport.sip.message import parse
from sharpeye.simulators.gb28181.device import DeviceFleet, SimDevice, code

from sharpeye.clock import ManualClock
from tests.ingest.gb28181.conftest import PLATFORM_ID, device_config, until


def _fleet(platform: Any, devices: list[SimDevice]) -> DeviceFleet:
    return DeviceFleet(devices, platform_id=PLATFORM_ID, platform_port=platform.port, t1=0.1)


async def test_catalog_query_comes_after_the_200_ok_to_register(make_platform: Any) -> None:
    dev = SimDevice(id=code("34020000", 132, 31), password="pw")
    platform = await make_platform([device_config(dev)])
    fleet = _fleet(platform, [dev])
    arrivals: list[str] = []
    receive = fleet.endpoint.receive

    def spy(data: bytes, peer: Peer, *, stream: bool = False) -> None:
        msg = parse(data, stream=stream)
        if msg.is_request:
            arrivals.append(f"{msg.method} {parse_body(msg.body).cmd_type}" if msg.body else msg.method)
        else:
            arrivals.append(f"{msg.status} {msg.cseq[1]}")
        receive(data, peer, stream=stream)

    fleet.endpoint.receive = spy  # type: ignore[method-assign]
    await fleet.endpoint.start()
    try:
        assert await fleet.register(dev) == 200
        await until(lambda: "MESSAGE Catalog" in arrivals)
        assert arrivals.index("200 REGISTER") < arrivals.index("MESSAGE Catalog"), arrivals
    finally:
        await fleet.stop()


async def test_registering_again_while_device_info_is_pending_still_gets_a_catalog_query(
    make_platform: Any, settings: Any
) -> None:
    dev = SimDevice(id=code("34020000", 118, 32), password="pw", kind="nvr", channel_count=2, answer_device_info=False)
    platform = await make_platform([device_config(dev)], settings=settings.model_copy(update={"query_timeout_s": 1.5}))
    fleet = _fleet(platform, [dev])
    await fleet.endpoint.start()
    try:
        assert await fleet.register(dev) == 200
        await until(lambda: any(q.cmd_type == "DeviceInfo" for q in fleet.queries))  # DeviceInfo now pending
        assert platform.device(dev.id).catalog_busy
        dev.channels[0] = (dev.channels[0][0], "改名后的通道")
        assert await fleet.register(dev, expires=0) == 200
        assert await fleet.register(dev) == 200  # a fresh registration while the query is pending
        await until(lambda: platform.device(dev.id).channels[dev.channels[0][0]].name == "改名后的通道", 6)
        assert sum(1 for q in fleet.queries if q.cmd_type == "Catalog") == 2
    finally:
        await fleet.stop()


async def test_device_info_never_answered_keeps_the_catalog_interval(make_platform: Any, settings: Any) -> None:
    clock = ManualClock()
    dev = SimDevice(id=code("34020000", 132, 33), password="pw", answer_device_info=False)
    quick = settings.model_copy(update={"query_timeout_s": 0.3, "catalog_retry_s": 60, "catalog_interval_s": 3600})
    platform = await make_platform([device_config(dev)], settings=quick, clock=clock)
    fleet = _fleet(platform, [dev])
    await fleet.endpoint.start()
    try:
        assert await fleet.register(dev) == 200
        await until(lambda: platform.device(dev.id).catalog_due is not None)
        state = platform.device(dev.id)
        assert state.catalog_complete and not state.info
        assert (state.catalog_due - clock.now()).total_seconds() == 3600  # type: ignore[operator]
        assert platform.stats["query_timeout.DeviceInfo"] == 1
    finally:
        await fleet.stop()
