"""Redis through Sentinel: a master, a replica and one Sentinel as real processes on free ports; the hub's client
(``sharpeye.redis_connection.connect``) finds the master by name and follows a failover to the replica."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as sync_redis

from sharpeye.node.embedded import free_port
from sharpeye.redis_connection import RedisUrlError, connect, sentinel_parts
from tests.helpers import wait_for

SERVER = "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else shutil.which("redis-server")


def test_sentinel_urls_are_parsed_and_bad_ones_named() -> None:
    assert sentinel_parts("redis+sentinel://:pw@s1:26379,s2:26380/sharpeye/2") == (
        [("s1", 26379), ("s2", 26380)], "sharpeye", 2, "pw",
    )  # fmt: skip
    assert sentinel_parts("redis+sentinel://s1/m") == ([("s1", 26379)], "m", 0, None)
    for bad in (
        "redis+sentinel://s1:26379",
        "redis+sentinel:///m",
        "redis+sentinel://s1:x/m",
        "redis+sentinel://s/m/x",
    ):
        with pytest.raises(RedisUrlError):
            sentinel_parts(bad)


@pytest.fixture
def sentinel_setup(tmp_path: Path) -> Iterator[tuple[str, int, int]]:
    assert SERVER is not None
    master, replica, sentinel = free_port(), free_port(), free_port()
    procs = []
    for port, extra in ((master, []), (replica, ["--replicaof", "127.0.0.1", str(master)])):
        procs.append(subprocess.Popen([SERVER, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                       "--dir", str(tmp_path), *extra], stdout=subprocess.DEVNULL))  # fmt: skip
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"port {sentinel}\nbind 127.0.0.1\nsentinel monitor sharpeye 127.0.0.1 {master} 1\n"
        "sentinel down-after-milliseconds sharpeye 1000\nsentinel failover-timeout sharpeye 5000\n",
        encoding="utf-8",
    )
    procs.append(subprocess.Popen([SERVER, str(conf), "--sentinel"], stdout=subprocess.DEVNULL))
    try:
        replica_client = sync_redis.Redis(port=replica)
        wait_for(lambda: _linked(replica_client), timeout=15, what="the replica in sync")
        yield f"redis+sentinel://127.0.0.1:{sentinel}/sharpeye/0", master, replica
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)


def _linked(client: sync_redis.Redis) -> bool:
    try:
        return bool(client.info("replication").get("master_link_status") == "up")
    except sync_redis.ConnectionError:
        return False


async def test_the_client_finds_the_master_and_follows_a_failover(sentinel_setup: tuple[str, int, int]) -> None:
    url, master, replica = sentinel_setup
    client = connect(url)
    try:
        await client.set("k", "before")
        assert sync_redis.Redis(port=master).get("k") == b"before"
        assert sync_redis.Redis(port=master).execute_command("WAIT", 1, 5000) == 1  # copied to the replica
        sentinel_port = int(url.split(":")[2].split("/")[0])
        deadline = time.monotonic() + 30
        while True:  # the Sentinel must know the replica before it can promote it
            try:
                sync_redis.Redis(port=sentinel_port).execute_command("SENTINEL", "FAILOVER", "sharpeye")
                break
            except sync_redis.ResponseError:
                assert time.monotonic() < deadline, "the Sentinel never saw the replica"
                await asyncio.sleep(0.2)
        wait_for(lambda: sync_redis.Redis(port=replica).info("replication")["role"] == "master", timeout=20,
                 what="the replica promoted")  # fmt: skip
        wait_for(lambda: _linked(sync_redis.Redis(port=master)), timeout=20, what="the old master a replica now")
        deadline = time.monotonic() + 20
        while True:  # the first commands after the switch may meet the old master (now read-only) or a closed link
            try:
                await client.set("k", "after")
                break
            except Exception:
                assert time.monotonic() < deadline, "the client did not follow the failover"
                await asyncio.sleep(0.2)
        assert sync_redis.Redis(port=replica).get("k") == b"after"
    finally:
        await client.aclose()
