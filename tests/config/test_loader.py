"""`sharpeye config check`: good files pass; every wrong key, type and reference is named with its path and line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sharpeye.config.loader import ConfigError, demo_path, load_text
from sharpeye.config.reference_doc import render
from sharpeye.ingest.registry import installed

ROOT = Path(__file__).resolve().parents[2]


def check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sharpeye.node", "config", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


def test_demo_config_is_valid() -> None:
    result = check(demo_path())
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout and "fence" in result.stdout


def broken_demo() -> str:
    text = demo_path().read_text(encoding="utf-8")
    # 1. a zone that points at a camera that does not exist
    text = text.replace("cameras: [cam-reservoir-n], position: {x: 0.18", "cameras: [cam-nowhere], position: {x: 0.18")
    # 2. an unknown key in a device
    text = text.replace("    heartbeat_s: 30\n    zones:", "    heartbeat_s: 30\n    colour: red\n    zones:", 1)
    # 3. a wrong type
    text = text.replace("    heartbeat_s: 30\n", "    heartbeat_s: often\n", 1)
    return text


def test_broken_file_names_every_problem_with_path_and_line(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(broken_demo(), encoding="utf-8")
    result = check(path)
    assert result.returncode == 1
    err = result.stderr
    assert "devices[0].colour: unknown key" in err
    assert "devices[0].heartbeat_s" in err and "number" in err
    # type errors stop validation before references are checked: fix them, then the reference shows
    fixed = broken_demo().replace("    colour: red\n", "").replace("heartbeat_s: often", "heartbeat_s: 30")
    path.write_text(fixed, encoding="utf-8")
    result = check(path)
    assert result.returncode == 1
    line = next(i for i, text in enumerate(fixed.splitlines(), 1) if "cam-nowhere" in text)
    assert f"line {line}: devices[0].zones[0].cameras[0]: no camera 'cam-nowhere'" in result.stderr


GRID = "grid: shanxia-g1\n    position: {x: 0.22"
DEPT = "unit: qingshui, categories: [perimeter_intrusion, illegal"
SEVERITY = "severity: major\n    category: perimeter_intrusion"
MISTAKES = [
    (("kind: fence\n", "kind: sprinkler\n"), "devices[0].kind: unknown kind 'sprinkler'"),
    ((GRID, GRID.replace("shanxia-g1", "mars")), "devices[0].grid: no org unit 'mars'"),
    (("match: {kind: fence.intrusion}", "match: {kind: fence.teleport}"), "rules[0].match.kind: no installed driver"),
    ((DEPT, DEPT.replace("qingshui", "atlantis")), "departments[0].unit: no org unit 'atlantis'"),
    (("id: cam-school-gate\n", "id: cam-reservoir-n\n"), "device id 'cam-reservoir-n' is used twice"),
    ((SEVERITY, SEVERITY.replace("major", "urgent")), "rules[0].severity"),
]


@pytest.mark.parametrize(("patch", "expected"), MISTAKES)
def test_each_kind_of_mistake(patch: tuple[str, str], expected: str) -> None:
    text = demo_path().read_text(encoding="utf-8")
    assert patch[0] in text, patch[0]
    with pytest.raises(ConfigError) as info:
        load_text(text.replace(patch[0], patch[1], 1), installed(), "site.yaml")
    assert expected in str(info.value)


def test_not_yaml_and_empty() -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_text("site: [unclosed", installed())
    with pytest.raises(ConfigError, match="empty"):
        load_text("", installed())


def test_configuration_reference_is_current() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    stale = "docs/configuration.md is stale: run `sharpeye config docs > docs/configuration.md`"
    assert doc == render(installed()), stale
