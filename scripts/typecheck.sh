#!/usr/bin/env bash
# mypy --strict over the one installed package, ``sharpeye``. The stage folders are mapped into it by setup.py
# (package-dir), which mypy cannot follow, so this lays a view of links (build/typecheck/sharpeye/ingest -> ingest/,
# ...) and checks that. Errors name the view's paths: sharpeye/ingest/x.py is ingest/x.py.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
view=build/typecheck
rm -rf "$view/sharpeye"
mkdir -p "$view/sharpeye"
for entry in sharpeye/*; do ln -s "$root/$entry" "$view/sharpeye/"; done
for stage in config ingest alarms governance api simulators; do ln -s "$root/$stage" "$view/sharpeye/$stage"; done
cd "$view"
exec "$root/.venv/bin/mypy" --config-file "$root/pyproject.toml" "$@"
