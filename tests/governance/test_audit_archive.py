"""The audit log in the SQL record, on SQLite and PostgreSQL: entries of the Redis audit stream are archived once,
in order, hash-chained; the database refuses to change or delete them; a row changed or removed behind the
triggers' back is found and named; two archivers at once never fork the chain."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from sharpeye.governance.audit_archive import AuditArchive, verify
from sharpeye.governance.store import AuditRow, Database
from sqlalchemy import event, select, text
from sqlalchemy.exc import DBAPIError

from sharpeye.audit import record
from sharpeye.keys import Keys


async def archive_all(archive: AuditArchive, redis: aioredis.Redis, keys: Keys) -> None:
    """Run the archiver until every entry of the stream is in the database."""
    task = asyncio.create_task(archive.run(block_ms=50))
    try:
        total = await redis.xlen(keys.audit)
        for _ in range(400):
            async with archive.db.sessions() as session:
                if len((await session.scalars(select(AuditRow.seq))).all()) >= total:
                    return
            await asyncio.sleep(0.05)
        raise AssertionError("the archiver did not catch up")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_entries_are_archived_once_in_a_chain_the_database_will_not_change(
    database: Database, redis_client: aioredis.Redis, keys: Keys
) -> None:
    for i in range(5):
        await record(redis_client, keys, "user:duty", "alarm.acknowledge", f"a{i}", {"note": f"第{i}条"}, "10.0.0.9")
    archive = AuditArchive(redis_client, keys, database, "n1")
    await archive_all(archive, redis_client, keys)
    again = AuditArchive(redis_client, keys, database, "n1")  # a restart re-reads nothing new
    await record(redis_client, keys, "user:admin", "users.add", "bob")
    await archive_all(again, redis_client, keys)
    check = await verify(database)
    assert check.ok and check.rows == 6
    async with database.sessions() as session:
        rows = (await session.scalars(select(AuditRow).order_by(AuditRow.seq))).all()
    assert [r.target for r in rows] == ["a0", "a1", "a2", "a3", "a4", "bob"]
    assert rows[0].details == {"note": "第0条"} and rows[0].origin == "10.0.0.9"

    refused = ("UPDATE audit_log SET actor = 'user:nobody' WHERE seq = 2", "DELETE FROM audit_log WHERE seq = 3")
    for statement in refused:
        with pytest.raises(DBAPIError, match="append-only"):
            async with database.engine.begin() as conn:
                await conn.execute(text(statement))
    assert (await verify(database)).ok


async def _drop_triggers(database: Database) -> None:
    async with database.engine.begin() as conn:
        if database.engine.dialect.name == "postgresql":
            await conn.execute(text("DROP TRIGGER audit_log_append_only ON audit_log"))
        else:
            await conn.execute(text("DROP TRIGGER audit_log_no_update"))
            await conn.execute(text("DROP TRIGGER audit_log_no_delete"))


async def test_a_change_behind_the_triggers_back_is_named(
    database: Database, redis_client: aioredis.Redis, keys: Keys
) -> None:
    for i in range(4):
        await record(redis_client, keys, "user:duty", "case.dispatch", f"c{i}")
    await archive_all(AuditArchive(redis_client, keys, database, "n1"), redis_client, keys)
    await _drop_triggers(database)  # what someone with the database's owner rights could do
    async with database.engine.begin() as conn:
        await conn.execute(text("UPDATE audit_log SET target = 'c9' WHERE seq = 2"))
    changed = await verify(database)
    assert changed.broken_at == 2 and "changed" in changed.reason
    async with database.engine.begin() as conn:
        await conn.execute(text("UPDATE audit_log SET target = 'c1' WHERE seq = 2"))
        await conn.execute(text("DELETE FROM audit_log WHERE seq = 3"))
    removed = await verify(database)
    assert removed.broken_at == 4 and "removed" in removed.reason


async def test_two_archivers_at_once_keep_one_chain(
    database: Database, redis_client: aioredis.Redis, keys: Keys
) -> None:
    for i in range(60):
        await record(redis_client, keys, "user:duty", "alarm.comment", f"a{i}")
    one = AuditArchive(redis_client, keys, database, f"n1-{uuid.uuid4().hex[:4]}")
    two = AuditArchive(redis_client, keys, database, f"n2-{uuid.uuid4().hex[:4]}")
    tasks = [asyncio.create_task(a.run(block_ms=50)) for a in (one, two)]
    try:
        for _ in range(400):
            if one.archived + two.archived >= 60:
                break
            await asyncio.sleep(0.05)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    check = await verify(database)
    assert check.ok and check.rows == 60


async def test_a_batch_of_entries_is_archived_in_one_commit(
    database: Database, redis_client: aioredis.Redis, keys: Keys
) -> None:
    """A verdict's audit entry was a transaction of its own (a commit, an fsync on SQLite, per verdict); what the
    archiver reads in one go is one transaction, and entries archived before are left out of it."""
    for i in range(50):
        await record(redis_client, keys, "user:duty", "alarm.verdict.false_alarm", f"a{i}")
    entries = [(i.decode(), {k.decode(): v.decode() for k, v in f.items()})
               for i, f in await redis_client.xrange(keys.audit)]  # fmt: skip
    commits = 0

    def counted(_conn: object) -> None:
        nonlocal commits
        commits += 1

    archive = AuditArchive(redis_client, keys, database, "n1")
    event.listen(database.engine.sync_engine, "commit", counted)
    try:
        assert await archive.append_many(entries[:10]) == 10
        assert commits == 1
        assert await archive.append_many(entries) == 40  # the first ten are there already
        assert commits == 2 and await archive.append_many(entries) == 0
    finally:
        event.remove(database.engine.sync_engine, "commit", counted)
    check = await verify(database)
    assert check.ok and check.rows == 50
    async with database.sessions() as session:
        targets = (await session.scalars(select(AuditRow.target).order_by(AuditRow.seq))).all()
    assert targets == [f"a{i}" for i in range(50)]


async def test_the_verify_command(redis_client: aioredis.Redis, keys: Keys, tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'sharpeye.db'}"
    database = Database(url)
    await database.migrate()
    try:
        await record(redis_client, keys, "user:duty", "alarm.acknowledge", "a1")
        await archive_all(AuditArchive(redis_client, keys, database, "n1"), redis_client, keys)
    finally:
        await database.close()
    env = {**os.environ, "SHARPEYE_DATABASE_URL": url}
    ok = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "sharpeye.node", "audit", "verify"], env=env,
                                 capture_output=True, text=True, timeout=60)  # fmt: skip
    assert ok.returncode == 0 and "1 entries, the chain is intact" in ok.stdout, ok.stdout + ok.stderr
