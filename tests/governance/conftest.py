"""Shared pieces of the governance tests: the demo site's org tree, departments and governance tables."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import yaml
from sharpeye.config.governance import Governance
from sharpeye.config.loader import demo_path
from sharpeye.config.org import Department, OrgUnit
from sharpeye.governance.calendar import WorkingCalendar
from sharpeye.governance.dispatch import Dispatcher
from sharpeye.governance.flow import Flow
from sharpeye.governance.sla import SlaPolicy
from sharpeye.governance.store import Database
from sqlalchemy.engine import make_url


@pytest.fixture(scope="session")
def demo() -> dict[str, object]:
    return dict(yaml.safe_load(demo_path().read_text(encoding="utf-8")))


@pytest.fixture(scope="session")
def org(demo: dict[str, object]) -> OrgUnit:
    return OrgUnit.model_validate(demo["org"])


@pytest.fixture(scope="session")
def departments(demo: dict[str, object]) -> list[Department]:
    return [Department.model_validate(d) for d in demo["departments"]]  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def governance_config(demo: dict[str, object]) -> Governance:
    return Governance.model_validate(demo["governance"])


@pytest.fixture(scope="session")
def dispatcher(org: OrgUnit, departments: list[Department], governance_config: Governance) -> Dispatcher:
    return Dispatcher(org, departments, governance_config.dispatch)


@pytest.fixture(scope="session")
def calendar() -> WorkingCalendar:
    return WorkingCalendar(9, 17, "Asia/Shanghai")


@pytest.fixture(scope="session")
def sla(governance_config: Governance) -> SlaPolicy:
    return SlaPolicy.from_config(governance_config)


@pytest.fixture(scope="session")
def flow(sla: SlaPolicy) -> Flow:
    return Flow(sla)


# --- the durable record on both backends --------------------------------------------------------------------------
# The PostgreSQL server the tests use (trust auth on these machines and in CI). Each test gets a database of its own,
# created on that server under a random name and dropped afterwards; no other database is read or written.
POSTGRES_URL = os.environ.get("SHARPEYE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A fresh, uniquely named database on the shared server (its SQLAlchemy async URL), dropped on exit.
    An unreachable server fails the test: CI has one, and a skipped backend would hide a broken one."""
    name = f"sharpeye_test_{secrets.token_hex(6)}"
    try:
        admin = await asyncpg.connect(POSTGRES_URL, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is unreachable ({exc}); set SHARPEYE_TEST_POSTGRES_URL")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = make_url(POSTGRES_URL).set(drivername="postgresql+asyncpg", database=name)
            yield url.render_as_string(hide_password=False)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database (no schema yet): a SQLite file, or a database of its own on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'cases.db'}"
    else:
        async with postgres_database() as url:
            yield url


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A migrated, empty case database on each backend."""
    db = Database(database_url)
    try:
        await db.migrate()
        yield db
    finally:
        await db.close()
