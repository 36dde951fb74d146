#!/usr/bin/env bash
# The test command: installs what the tests need (Debian packages, a virtualenv with the project and its
# test extra) and runs lint, type checks and the whole test suite against private Redis and Mosquitto, and a private
# PostgreSQL started here (initdb in a temporary directory, a free port, stopped at exit) unless
# SHARPEYE_TEST_POSTGRES_URL names one. Nothing needs to run on the machine beforehand.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-test-deps.sh
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for candidate in python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      PY=$candidate; break
    fi
  done
fi
[ -n "$PY" ] || { echo "Python 3.11+ is required" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
echo "== console (npm ci, eslint, tsc)"
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
  || { echo "Node.js 20+ with npm is required for the console checks (package.json)" >&2; exit 1; }
npm ci --no-audit --no-fund --loglevel=error
missing=$(grep -L '^// @ts-check' $(find api/static -name '*.js') || true)
[ -z "$missing" ] || { echo "console modules without // @ts-check: $missing" >&2; exit 1; }
npm run --silent lint
npm run --silent typecheck
.venv/bin/python -m sharpeye.node models install --data-dir "${SHARPEYE_TEST_MODEL_DIR:-$HOME/.cache/sharpeye-tests}"
.venv/bin/python -m sharpeye.node assets install --data-dir "${SHARPEYE_TEST_MODEL_DIR:-$HOME/.cache/sharpeye-tests}"
echo "== ruff"; .venv/bin/ruff check .
echo "== mypy and layers"; bash scripts/typecheck.sh
if [ -z "${SHARPEYE_TEST_POSTGRES_URL:-}" ]; then
  # shellcheck source=scripts/test-postgres.sh
  source scripts/test-postgres.sh
  trap stop_test_postgres EXIT
  start_test_postgres
fi
# Two pytest-xdist workers by default (SHARPEYE_TEST_WORKERS=0: one process), each with its own Redis and
# Mosquitto (session fixtures); a test file stays on one worker (--dist loadfile), so a module's shared hub or browser
# is started once; the PostgreSQL above is shared (each test makes a database of its own). On a 2-core machine pytest
# takes about 10-14 minutes this way (docs/benchmarks.md, "The test suite"), about 0.64x one process.
echo "== pytest"; .venv/bin/pytest -n "${SHARPEYE_TEST_WORKERS:-2}" --dist loadfile --durations=30 "$@"
