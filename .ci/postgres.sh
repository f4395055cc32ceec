#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on 127.0.0.1 for the storage test suite.
#
#   eval "$(bash .ci/postgres.sh)"        # installs (Debian, as root) if needed, starts, exports
#   bash .ci/postgres.sh stop             # stops the server this script started
#
# Everything but the final `export ADASAM_TEST_POSTGRES_URL=...` line goes to stderr, so the
# command substitution above captures only that line. The URL is also written to
# ${ADASAM_PG_DIR}/url. Exit status is non-zero when no server could be started.
set -euo pipefail

PG_DIR="${ADASAM_PG_DIR:-/tmp/adasam-ci-postgres}"
PG_PORT="${ADASAM_PG_PORT:-54329}"
PG_USER="adasam"
PG_DB="adasam_test"

log() { echo "postgres.sh: $*" >&2; }

find_bin() {
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then
        echo "$dir"
    fi
}

# Run a command as the cluster's owner: postgres refuses to run as root.
as_owner() {
    if [[ "$(id -u)" == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

BIN="$(find_bin)"
if [[ "${1:-}" == "stop" ]]; then
    if [[ -n "$BIN" && -f "$PG_DIR/data/postmaster.pid" ]]; then
        as_owner "$BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >&2
    fi
    exit 0
fi

if [[ -z "$BIN" ]]; then
    if [[ "$(id -u)" != 0 ]]; then
        log "PostgreSQL server binaries are missing and installing them needs root"
        exit 1
    fi
    log "installing PostgreSQL from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y --no-install-recommends postgresql >&2
    BIN="$(find_bin)"
    [[ -n "$BIN" ]] || { log "initdb not found after installing postgresql"; exit 1; }
fi

# Stop a server left over from an earlier run, then start from a fresh cluster.
if [[ -f "$PG_DIR/data/postmaster.pid" ]]; then
    as_owner "$BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >&2 || true
fi
rm -rf "$PG_DIR"
mkdir -p "$PG_DIR"
if [[ "$(id -u)" == 0 ]]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$PG_DIR" postgres
    chown postgres: "$PG_DIR"
fi
chmod 700 "$PG_DIR"

log "initdb in $PG_DIR/data ($BIN)"
as_owner "$BIN/initdb" -D "$PG_DIR/data" -U "$PG_USER" -A trust -E UTF8 --locale=C.UTF-8 >&2
log "starting on 127.0.0.1:$PG_PORT"
as_owner "$BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 start \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c max_connections=200" >&2 \
    || { cat "$PG_DIR/server.log" >&2; exit 1; }
as_owner "$BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" "$PG_DB" >&2

URL="postgresql+psycopg://${PG_USER}@127.0.0.1:${PG_PORT}/${PG_DB}"
if [[ "$(id -u)" == 0 ]]; then
    echo "$URL" | runuser -u postgres -- tee "$PG_DIR/url" >/dev/null
else
    echo "$URL" >"$PG_DIR/url"
fi
log "ready: $URL"
echo "export ADASAM_TEST_POSTGRES_URL=$URL"
