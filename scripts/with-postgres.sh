#!/usr/bin/env bash
# Runs a command against a throwaway PostgreSQL cluster:
#   scripts/with-postgres.sh cargo test --workspace
# Starts initdb + pg_ctl as the `postgres` user on a temporary directory and a free port,
# exports ACCORD_TEST_BACKEND=postgres and ACCORD_TEST_PG_URL (and DATABASE_URL), runs the
# command, and always stops and removes the cluster afterwards.
set -euo pipefail

PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
if [[ -z "${PG_BIN}" || ! -x "${PG_BIN}/initdb" ]]; then
  echo "with-postgres: PostgreSQL server binaries not found (apt-get install postgresql)" >&2
  exit 1
fi

as_postgres() {
  if [[ "$(id -un)" == "postgres" ]]; then "$@"; else runuser -u postgres -- "$@"; fi
}

DATA_DIR=$(mktemp -d /tmp/accord-pg.XXXXXX)
chown postgres:postgres "$DATA_DIR" 2>/dev/null || true
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')

cleanup() {
  as_postgres "$PG_BIN/pg_ctl" -D "$DATA_DIR/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$DATA_DIR"
}
trap cleanup EXIT

as_postgres "$PG_BIN/initdb" -D "$DATA_DIR/data" -U postgres --auth=trust --encoding=UTF8 --no-locale >/dev/null
# Tuned for throwaway test clusters: durability off, enough connections for parallel tests.
as_postgres "$PG_BIN/pg_ctl" -D "$DATA_DIR/data" -l "$DATA_DIR/server.log" -w \
  -o "-p $PORT -k $DATA_DIR -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
  start >/dev/null

export ACCORD_TEST_BACKEND=postgres
export ACCORD_TEST_PG_URL="postgres://postgres@127.0.0.1:${PORT}/postgres"
export DATABASE_URL="$ACCORD_TEST_PG_URL"
echo "with-postgres: PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on port $PORT" >&2
"$@"
