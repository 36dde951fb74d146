"""The layer contracts (pyproject.toml, [tool.importlinter]) hold for the tree, and break on an import that runs
against the layers: import-linter runs over a view of the package with one module changed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("config", "ingest", "alarms", "governance", "api", "simulators")
LINT = Path(sys.executable).with_name("lint-imports")


def view(tmp: Path, changed: dict[str, str] | None = None) -> Path:
    """A tree shaped like the installed package, of links to the repository, except the ``changed`` files (path
    below the repository -> text), which are written as copies."""
    changed = changed or {}
    top = tmp / "sharpeye"
    top.mkdir()
    for entry in (ROOT / "sharpeye").iterdir():
        (top / entry.name).symlink_to(entry)
    for stage in STAGES:
        touched = {p for p in changed if p.startswith(f"{stage}/")}
        if not touched:
            (top / stage).symlink_to(ROOT / stage)
            continue
        for source in (ROOT / stage).rglob("*.py"):
            rel = source.relative_to(ROOT).as_posix()
            target = top / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if rel in changed:
                target.write_text(changed[rel], encoding="utf-8")
            else:
                target.symlink_to(source)
    return tmp


def lint(tree: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run([str(LINT), "--no-cache", str(ROOT / "pyproject.toml")], cwd=tree, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_the_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = lint(view(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:]
    assert "4 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("config/base.py", "import sharpeye.alarms.engine", "Layers"),  # config reaching up to alarms
        ("ingest/reading.py", "import sharpeye.simulators.fence", "Nothing imports the simulators"),
        ("api/permission.py", "import sharpeye.node.hub", "Layers"),  # the API taking the hub again
    ],
)
def test_an_upstream_import_breaks_the_contract(tmp_path: Path, module: str, line: str, broken: str) -> None:
    text = (ROOT / module).read_text(encoding="utf-8") + f"\n{line}  # against the layers\n"
    result = lint(view(tmp_path, {module: text}))
    assert result.returncode != 0
    assert f"{broken}" in result.stdout and "BROKEN" in result.stdout
    assert module.split("/")[0] in result.stdout
