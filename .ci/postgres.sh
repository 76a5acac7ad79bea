#!/usr/bin/env bash
# A throwaway PostgreSQL server for the store tests, on localhost, in a temp directory.
#
#   .ci/postgres.sh              start one; print its DSN (postgresql://...) on stdout
#   .ci/postgres.sh --export     start one; print `export MLPROV_TEST_POSTGRES=... MLPROV_TEST_POSTGRES_DIR=...`
#   .ci/postgres.sh --stop DIR   stop the server started in DIR and delete DIR
#
# Installs Debian's `postgresql` package with apt-get when no server binaries are found
# (needs root). As root, the server runs as the unprivileged `postgres` user (initdb
# refuses root). Exits 3 when neither a server nor the package can be had.
set -euo pipefail

say() { printf 'postgres.sh: %s\n' "$*" >&2; }

find_bindir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then echo "$dir"; return 0; fi
    done
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(command -v initdb)"; return 0
    fi
    return 1
}

as_server_user() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

if [ "${1:-}" = "--stop" ]; then
    dir=${2:?usage: postgres.sh --stop DIR}
    bindir=$(find_bindir) || exit 0
    [ -f "$dir/data/postmaster.pid" ] && as_server_user "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    exit 0
fi

if ! bindir=$(find_bindir); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing Debian's postgresql package"
        export DEBIAN_FRONTEND=noninteractive
        { apt-get update -qq && apt-get install -y -qq --no-install-recommends postgresql; } >&2 || true
    fi
    bindir=$(find_bindir) || { say "no PostgreSQL server binaries and cannot install them"; exit 3; }
fi
if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin postgres
fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/mlprov-pg.XXXXXX")
chmod 755 "$dir"
[ "$(id -u)" = 0 ] && chown postgres "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

as_server_user "$bindir/initdb" -D "$dir/data" -A trust -U mlprov -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 \
    || { say "initdb failed:"; cat "$dir/initdb.log" >&2; exit 3; }
as_server_user "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50" start >/dev/null \
    || { say "server did not start:"; cat "$dir/server.log" >&2; exit 3; }
"$bindir/createdb" -h 127.0.0.1 -p "$port" -U mlprov mlprov_test

dsn="postgresql://mlprov@127.0.0.1:$port/mlprov_test"
if [ "${1:-}" = "--export" ]; then
    printf 'export MLPROV_TEST_POSTGRES=%q MLPROV_TEST_POSTGRES_DIR=%q\n' "$dsn" "$dir"
else
    printf '%s\n' "$dsn"
    say "data directory $dir (stop with: .ci/postgres.sh --stop $dir)"
fi
