"""Shared pieces of the governance tests: the demo site's org tree, departments and governance tables."""

from __future__ import annotations

import pytest
import yaml

from config.governance import Governance
from config.loader import demo_path
from config.org import Department, OrgUnit
from governance.calendar import WorkingCalendar
from governance.dispatch import Dispatcher
from governance.flow import Flow
from governance.sla import SlaPolicy


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
