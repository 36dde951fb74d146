"""The distribution lists its packages explicitly: every package in the tree must be listed, with its data."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP = ("sharpeye", "config", "ingest", "alarms", "governance", "api", "simulators")


def test_every_package_is_listed() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in TOP
        for init in (ROOT / top).rglob("__init__.py")
        if ".venv" not in init.parts
    }
    assert found == listed


def test_data_files_are_declared() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "*.yaml" in data["config"] and "*.lua" in data["alarms"]
    assert any("migrations" in pattern for pattern in data["governance"])
    assert any("static" in pattern for pattern in data["api"])
