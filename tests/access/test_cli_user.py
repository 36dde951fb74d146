"""``sharpeye user add|list|disable`` against the hub's Redis: from SHARPEYE_REDIS_URL, the URL a running hub
recorded in its data directory, or the embedded Redis started just for the command."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import redis.asyncio as aioredis
from sharpeye.api.user import User, UserStore

from sharpeye.keys import Keys
from sharpeye.node.embedded import EmbeddedRedis


def sharpeye(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("SHARPEYE_")} | env
    return subprocess.run([sys.executable, "-m", "sharpeye.node", *args], env=full, input=stdin, text=True,
                          capture_output=True, timeout=60, check=False)  # fmt: skip


def authenticate(url: str, prefix: str, username: str, password: str) -> User | None:
    async def check() -> User | None:
        redis = aioredis.Redis.from_url(url)
        try:
            return await UserStore(redis, Keys(prefix), 60).authenticate(username, password)
        finally:
            await redis.aclose()

    return asyncio.run(check())


def test_add_list_disable_on_the_configured_redis(redis_server: EmbeddedRedis) -> None:
    prefix = f"cli{uuid.uuid4().hex[:8]}"
    env = {"SHARPEYE_REDIS_URL": redis_server.url, "SHARPEYE_REDIS_PREFIX": prefix}
    added = sharpeye("user", "add", "wang.li", "--role", "operator", "--org-unit", "hedong", env=env)
    assert added.returncode == 0, added.stderr
    password = re.search(r"Password \(shown once\): (\S+)", added.stdout)
    assert password, added.stdout
    user = authenticate(redis_server.url, prefix, "wang.li", password.group(1))
    assert user is not None and user.role == "operator" and user.org_unit == "hedong" and user.must_change_password
    again = sharpeye("user", "add", "wang.li", "--role", "viewer", env=env)
    assert again.returncode == 1 and "exists" in again.stderr

    chosen = sharpeye("user", "add", "zhao", "--role", "department_handler", "--department", "water",
                      "--password-stdin", env=env, stdin="Chosen-Password-7\n")  # fmt: skip
    assert chosen.returncode == 0, chosen.stderr
    assert "Chosen-Password-7" not in chosen.stdout + chosen.stderr and "shown once" not in chosen.stdout
    assert authenticate(redis_server.url, prefix, "zhao", "Chosen-Password-7") is not None
    weak = sharpeye("user", "add", "li", "--role", "viewer", "--password-stdin", env=env, stdin="short\n")
    assert weak.returncode == 1 and "10 characters" in weak.stderr

    assert sharpeye("user", "disable", "wang.li", env=env).returncode == 0
    assert authenticate(redis_server.url, prefix, "wang.li", password.group(1)) is None
    listing = sharpeye("user", "list", env=env).stdout.splitlines()
    rows = {line.split()[0]: line for line in listing[1:]}
    assert set(rows) == {"wang.li", "zhao"}
    assert "disabled" in rows["wang.li"] and "hedong" in rows["wang.li"] and "water" in rows["zhao"]
    assert sharpeye("user", "disable", "nobody", env=env).returncode == 1


def test_checks_org_unit_against_the_site_config(redis_server: EmbeddedRedis) -> None:
    from sharpeye.config.loader import demo_path

    env = {"SHARPEYE_REDIS_URL": redis_server.url, "SHARPEYE_REDIS_PREFIX": f"cli{uuid.uuid4().hex[:8]}"}
    bad = sharpeye("user", "add", "x1", "--role", "viewer", "--org-unit", "atlantis", "-c", str(demo_path()), env=env)
    assert bad.returncode == 1 and "atlantis" in bad.stderr
    good = sharpeye("user", "add", "x1", "--role", "viewer", "--org-unit", "hedong", "-c", str(demo_path()), env=env)
    assert good.returncode == 0, good.stderr


def test_uses_the_running_hubs_recorded_redis(tmp_path: Path) -> None:
    running = EmbeddedRedis(workdir=tmp_path / "elsewhere")
    running.workdir.mkdir()
    running.start()
    try:
        (tmp_path / "redis-url").write_text(running.url + "\n")
        env = {"SHARPEYE_DATA_DIR": str(tmp_path)}
        assert sharpeye("user", "add", "duty", "--role", "viewer", env=env).returncode == 0
        assert "duty" in sharpeye("user", "list", env=env).stdout
        assert not (tmp_path / "redis").exists()  # no second Redis was started
        assert authenticate(running.url, "se", "duty", "x" * 12) is None  # the user lives in the running Redis
        found = asyncio.run(_exists(running.url, "duty"))
        assert found
    finally:
        running.stop()


async def _exists(url: str, username: str) -> bool:
    redis = aioredis.Redis.from_url(url)
    try:
        return bool(await redis.hexists(Keys().users, username))
    finally:
        await redis.aclose()


def test_starts_the_embedded_redis_when_the_hub_is_not_running(tmp_path: Path) -> None:
    (tmp_path / "redis-url").write_text("redis://127.0.0.1:1/0\n")  # a hub that has stopped
    env = {"SHARPEYE_DATA_DIR": str(tmp_path)}
    added = sharpeye("user", "add", "night", "--role", "supervisor", env=env)
    assert added.returncode == 0, added.stderr
    assert (tmp_path / "redis").is_dir()
    # the user was written to the hub's own Redis files: a later start (as the hub would) still has it
    listing = sharpeye("user", "list", env=env)
    assert "night" in listing.stdout and "supervisor" in listing.stdout
