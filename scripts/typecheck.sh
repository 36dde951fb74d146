#!/usr/bin/env bash
# Static checks over the one installed package, ``sharpeye``: mypy --strict, and the layer contracts of
# pyproject.toml ([tool.importlinter]) with import-linter. The stage folders are mapped into the package by setup.py
# (package-dir), which neither tool follows, so this lays a view of links shaped like the installed package
# (build/typecheck/sharpeye/ingest -> ingest/, ...) and checks that. Errors name the view's paths: sharpeye/ingest/x.py
# is ingest/x.py.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
view=build/typecheck
rm -rf "$view/sharpeye"
mkdir -p "$view/sharpeye"
for entry in sharpeye/*; do ln -s "$root/$entry" "$view/sharpeye/"; done
for stage in config ingest alarms governance api simulators; do ln -s "$root/$stage" "$view/sharpeye/$stage"; done
cd "$view"
"$root/.venv/bin/mypy" --config-file "$root/pyproject.toml" "$@"
echo "== layers (import-linter)"
status=0
out=$(PYTHONPATH="$PWD" "$root/.venv/bin/lint-imports" --no-cache "$root/pyproject.toml" 2>&1) || status=$?
echo "$out" | grep -E ' (KEPT|BROKEN)$' || true
if [ "$status" -ne 0 ]; then echo "$out" | sed -n '/Broken contracts/,$p'; exit "$status"; fi
