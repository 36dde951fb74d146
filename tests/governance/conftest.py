"""Shared pieces of the governance tests: the demo site's org tree, departments and governance tables."""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import subprocess
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
# The PostgreSQL server the tests use: SHARPEYE_TEST_POSTGRES_URL (scripts/test.sh starts a private one and sets it),
# else a private one started here on first use (scripts/test-postgres.sh: initdb in a temporary directory, a free
# port) and stopped at the end of the session; never the machine's own server. Each test gets a database of its own,
# created under a random name and dropped afterwards.
_PRIVATE: dict[str, str] = {}
_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "test-postgres.sh"


def postgres_url() -> str:
    if url := os.environ.get("SHARPEYE_TEST_POSTGRES_URL"):
        return url
    if "url" not in _PRIVATE:
        started = subprocess.run(
            ["bash", "-c", f'source "{_SCRIPT}" && start_test_postgres >&2 && echo "$SHARPEYE_TEST_POSTGRES_URL" '
             '&& echo "$TEST_PG_DIR" && echo "${TEST_PG_CTL[*]}"'],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        if started.returncode != 0:
            pytest.fail(f"could not start a private PostgreSQL: {started.stderr[-2000:]}")
        url, pg_dir, ctl = started.stdout.strip().splitlines()[-3:]
        _PRIVATE.update(url=url, dir=pg_dir)

        def stop() -> None:
            subprocess.run([*ctl.split(), "-m", "immediate", "stop"], capture_output=True, check=False)
            shutil.rmtree(pg_dir, ignore_errors=True)

        atexit.register(stop)
    return _PRIVATE["url"]


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A fresh, uniquely named database on the test server (its SQLAlchemy async URL), dropped on exit.
    An unreachable server fails the test: a skipped backend would hide a broken one."""
    name = f"sharpeye_test_{secrets.token_hex(6)}"
    server = postgres_url()
    try:
        admin = await asyncpg.connect(server, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(f"PostgreSQL at {server} is unreachable ({exc}); set SHARPEYE_TEST_POSTGRES_URL")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = make_url(server).set(drivername="postgresql+asyncpg", database=name)
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
