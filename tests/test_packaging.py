"""One installed name: the wheel puts ``sharpeye`` alone into site-packages, with every package and its data."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("config", "ingest", "alarms", "governance", "api", "simulators")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (path,) = out.glob("sharpeye-*.whl")
    return zipfile.ZipFile(path)


def test_one_top_level_name(wheel: zipfile.ZipFile) -> None:
    (top_level,) = [n for n in wheel.namelist() if n.endswith(".dist-info/top_level.txt")]
    assert wheel.read(top_level).decode().split() == ["sharpeye"]
    assert {name.split("/")[0] for name in wheel.namelist() if not name.split("/")[0].endswith(".dist-info")} == {
        "sharpeye"
    }


def test_every_package_of_the_tree_is_in_the_wheel(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for stage in STAGES:
        for init in (ROOT / stage).rglob("__init__.py"):
            assert f"sharpeye/{init.relative_to(ROOT).as_posix()}" in names
    assert "sharpeye/node/cli.py" in names and "sharpeye/py.typed" in names


def test_data_files_are_in_the_wheel(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    assert "sharpeye/config/demo.yaml" in names and "sharpeye/alarms/script.lua" in names
    assert any(n.startswith("sharpeye/governance/migrations/versions/") for n in names)
    assert any(n.startswith("sharpeye/api/static/") for n in names)
    assert any(n.startswith("sharpeye/ingest/fence/fixtures/") for n in names)


def test_a_bare_stage_import_fails_in_the_tests() -> None:
    """tests/conftest.py blocks the stage folders as top-level names: code must import ``sharpeye.<stage>``."""
    for stage in STAGES:
        with pytest.raises(ImportError, match="sharpeye"):
            __import__(stage)
