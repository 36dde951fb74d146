#!/usr/bin/env bash
# A private PostgreSQL for the test suite: `initdb` in a temporary directory, a free port on 127.0.0.1, trust auth,
# never the machine's own server. Source it: it exports SHARPEYE_TEST_POSTGRES_URL and defines stop_test_postgres
# (scripts/test.sh calls it at exit). Needs Debian's `postgresql` package (scripts/apt-packages.txt).
# As root, the server runs as the `postgres` user (PostgreSQL refuses to run as root).
start_test_postgres() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
    echo "PostgreSQL is not installed (apt install postgresql), and SHARPEYE_TEST_POSTGRES_URL is not set" >&2
    return 1
  fi
  TEST_PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/sharpeye-test-pg.XXXXXX")
  local port as=()
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$TEST_PG_DIR"
    as=(runuser -u postgres --)
  fi
  "${as[@]}" "$bin/initdb" -D "$TEST_PG_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$TEST_PG_DIR/initdb.log" 2>&1 \
    || { cat "$TEST_PG_DIR/initdb.log" >&2; return 1; }
  "${as[@]}" "$bin/pg_ctl" -D "$TEST_PG_DIR/data" -l "$TEST_PG_DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $TEST_PG_DIR -c fsync=off -c max_connections=200" start >/dev/null \
    || { cat "$TEST_PG_DIR/server.log" >&2; return 1; }
  TEST_PG_CTL=("${as[@]}" "$bin/pg_ctl" -D "$TEST_PG_DIR/data")
  export SHARPEYE_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$port/postgres"
  echo "== private PostgreSQL at $SHARPEYE_TEST_POSTGRES_URL"
}

stop_test_postgres() {
  if [ -n "${TEST_PG_DIR:-}" ]; then
    "${TEST_PG_CTL[@]}" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$TEST_PG_DIR"
    TEST_PG_DIR=""
  fi
}
