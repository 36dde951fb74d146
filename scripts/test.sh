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
echo "== ruff"; .venv/bin/ruff check .
echo "== mypy"; bash scripts/typecheck.sh
if [ -z "${SHARPEYE_TEST_POSTGRES_URL:-}" ]; then
  # shellcheck source=scripts/test-postgres.sh
  source scripts/test-postgres.sh
  trap stop_test_postgres EXIT
  start_test_postgres
fi
echo "== pytest"; .venv/bin/pytest "$@"
