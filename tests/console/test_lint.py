"""The console's static checks are real: eslint refuses a raw innerHTML write anywhere but html.js, and the
console as committed passes eslint and tsc (strict, checkJs). Needs the pinned tools: ``npm ci`` (scripts/test.sh
runs it first)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / "node_modules" / ".bin"


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `npm ci` at the repository root (scripts/test.sh does)")
    return str(path)


def eslint_stdin(source: str, filename: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("eslint"), "--stdin", "--stdin-filename", filename],
        input=source, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_eslint_refuses_raw_inner_html_in_a_view() -> None:
    bad = '// @ts-check\nexport function show(/** @type {Element} */ el, /** @type {string} */ name) {\n' \
          '  el.innerHTML = `<b>${name}</b>`;\n}\n'  # fmt: skip
    result = eslint_stdin(bad, "api/static/views/example.js")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "render(el, html`...`)" in result.stdout

    good = '// @ts-check\nimport { html, render } from "../html.js";\n' \
           'export function show(/** @type {Element} */ el, /** @type {string} */ name) {\n' \
           '  render(el, html`<b>${name}</b>`);\n}\n'  # fmt: skip
    result = eslint_stdin(good, "api/static/views/example.js")
    assert result.returncode == 0, result.stdout + result.stderr


def test_console_passes_eslint_and_tsc() -> None:
    lint = subprocess.run([tool("eslint"), "api/static"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          check=False)  # fmt: skip
    assert lint.returncode == 0, lint.stdout + lint.stderr
    types = subprocess.run([tool("tsc"), "--noEmit", "-p", "jsconfig.json"], cwd=ROOT, capture_output=True,
                           text=True, timeout=300, check=False)  # fmt: skip
    assert types.returncode == 0, types.stdout + types.stderr
    modules = sorted((ROOT / "api" / "static").rglob("*.js"))
    assert modules and all(m.read_text(encoding="utf-8").startswith("// @ts-check") for m in modules)
