"""Garbage on the SIP port (datagrams that are not SIP at all) is counted in /metrics by reason and kept as dead
letters with the sender's address, through a real hub on the test Redis; the platform still answers afterwards."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from sharpeye.config.loader import demo_path, load_text
from sharpeye.ingest.deadletter import recent
from sharpeye.ingest.registry import installed
from sharpeye.ingest.transport.sip.endpoint import Peer

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedMosquitto, EmbeddedRedis
from sharpeye.node.hub import PENDING_LETTERS, Hub
from sharpeye.settings import Settings
from tests.conftest import own_mqtt_session

OPTIONS = (b"OPTIONS sip:34020000002000000001@127.0.0.1 SIP/2.0\r\n"
           b"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKgarbage1\r\nFrom: <sip:a@b>;tag=1\r\n"
           b"To: <sip:34020000002000000001@3402000000>\r\nCall-ID: g1\r\nCSeq: 1 OPTIONS\r\n"
           b"Content-Length: 0\r\n\r\n")  # fmt: skip


@pytest.fixture
async def hub(
    tmp_path: Path, redis_server: EmbeddedRedis, mqtt_broker: EmbeddedMosquitto, keys: Keys
) -> AsyncIterator[Hub]:
    data: dict[str, Any] = yaml.safe_load(demo_path().read_text(encoding="utf-8"))
    data["gb28181"] = {"sip_id": "34020000002000000001", "port": 0, "tcp": False}
    settings = Settings(cameras=False, data_dir=tmp_path, redis_url=redis_server.url, mqtt_url=mqtt_broker.url,  # type: ignore[arg-type]
                        redis_prefix=keys.prefix, node_id=keys.prefix,
                        mqtt_client_id=own_mqtt_session(mqtt_broker.url, keys.prefix))  # fmt: skip
    made = Hub(settings, load_text(yaml.safe_dump(data, allow_unicode=True), installed()))
    await made.start()
    yield made
    await made.stop()


async def poll(check: Any, what: str, seconds: float = 10) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not (found := await check()):
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return found


async def test_garbage_datagrams_are_counted_and_dead_lettered_with_their_source(hub: Hub, keys: Keys) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    source = sock.getsockname()[1]
    try:
        for payload in (b"\x00\xffnot sip at all", b"HELLO\r\n\r\n", b"INVITE sip:x SIP/2.0\r\nbroken header\r\n\r\n"):
            sock.sendto(payload, ("127.0.0.1", hub.gb_platform_port))

        async def sip_letters() -> list[dict[str, str]]:
            letters = [d for d in await recent(hub.redis, keys) if d["source"] == "sip"]
            return letters if len(letters) >= 3 else []

        letters = await poll(sip_letters, "three SIP dead letters")
        assert {d["origin"] for d in letters} == {f"udp:127.0.0.1:{source}"}
        assert all(d["reason"].startswith("parse_error.") and d["detail"] for d in letters)
        assert any(d["payload_preview"].startswith("HELLO") for d in letters)
        text = generate_latest(hub.metrics.registry).decode()
        counted = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                      if line.startswith('sharpeye_deadletters_total{kind="sip",reason="parse_error.'))  # fmt: skip
        assert counted == 3
        sock.sendto(OPTIONS, ("127.0.0.1", hub.gb_platform_port))  # the platform still answers
        answer = await asyncio.to_thread(sock.recv, 4096)
        assert answer.startswith(b"SIP/2.0 200")
    finally:
        sock.close()


async def test_a_flood_of_garbage_is_counted_but_kept_bounded(hub: Hub, keys: Keys) -> None:
    peer = Peer("udp", "127.0.0.1", 9)
    for _ in range(3000):  # in one go, faster than any socket: the letters waiting to be written stay bounded
        hub._sip_garbage("parse_error.bad_header", "x", b"junk", peer)
    assert len(hub._rejected) == PENDING_LETTERS
    assert hub.metrics.deadletters.labels("sip", "parse_error.bad_header")._value.get() == 3000

    async def written() -> int:
        n = int(await hub.redis.xlen(keys.deadletters))
        return n if n >= PENDING_LETTERS else 0

    assert await poll(written, "the kept letters written") == PENDING_LETTERS
