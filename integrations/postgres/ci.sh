#!/usr/bin/env bash
# CI for livecore-postgres: installs PostgreSQL 15 when missing, starts a throwaway cluster
# (wal_level=logical, SCRAM, loopback only, in a temporary directory, as an unprivileged
# user), runs the crate's tests against it and stops it on exit.
#
#   bash integrations/postgres/ci.sh            # build, start, test, stop
#   PG_KEEP=1 bash integrations/postgres/ci.sh --start-only   # start and print the URL
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
pg_bin=${PG_BIN:-/usr/lib/postgresql/15/bin}
pg_user=${PG_OS_USER:-livecore-pg}
pg_port=${PG_PORT:-54329}
password=livecore-ci-secret
step_start=$SECONDS
start_only=0
[[ "${1:-}" == "--start-only" ]] && start_only=1

step() {
    echo "== $1 (step took $((SECONDS - step_start)) s, $SECONDS s in all)"
    step_start=$SECONDS
}

if [[ ! -x "$pg_bin/initdb" ]]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null
fi
step "PostgreSQL installed ($("$pg_bin/postgres" --version))"

# PostgreSQL refuses to run as root: a system user owns the cluster.
if ! id -u "$pg_user" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$pg_user"
fi
work=$(mktemp -d /tmp/livecore-pg.XXXXXX)
chown "$pg_user" "$work"
chmod 700 "$work"
as_pg() { runuser -u "$pg_user" -- "$@"; }

stop_cluster() {
    if [[ -f "$work/data/postmaster.pid" ]]; then
        as_pg "$pg_bin/pg_ctl" -D "$work/data" -m fast -w -t 60 stop >/dev/null || true
    fi
    rm -rf "$work"
}
if [[ $start_only == 0 || -z "${PG_KEEP:-}" ]]; then
    trap stop_cluster EXIT
fi

printf '%s\n' "$password" >"$work/pwfile"
chown "$pg_user" "$work/pwfile"
as_pg "$pg_bin/initdb" -D "$work/data" -U livecore --pwfile="$work/pwfile" \
    --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >"$work/initdb.log"
cat >>"$work/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$work'
password_encryption = 'scram-sha-256'
wal_level = logical
max_replication_slots = 64
max_wal_senders = 64
max_connections = 200
max_slot_wal_keep_size = '1GB'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = '64MB'
wal_writer_delay = '10ms'
EOF
cat >"$work/data/pg_hba.conf" <<EOF
host all all 127.0.0.1/32 scram-sha-256
host replication all 127.0.0.1/32 scram-sha-256
EOF
as_pg "$pg_bin/pg_ctl" -D "$work/data" -l "$work/server.log" -w -t 60 start >/dev/null
step "cluster started on 127.0.0.1:$pg_port in $work"

export LIVECORE_PG_URL="host=127.0.0.1 port=$pg_port user=livecore password=$password dbname=postgres"
if [[ $start_only == 1 ]]; then
    echo "LIVECORE_PG_URL='$LIVECORE_PG_URL'"
    echo "stop with: runuser -u $pg_user -- $pg_bin/pg_ctl -D $work/data stop"
    exit 0
fi

cd "$root"
nice -n 10 cargo build -p livecore-postgres --tests --examples
step "built"
nice -n 10 cargo test -p livecore-postgres -- --test-threads 2
step "tests"
nice -n 10 cargo run -p livecore-postgres --example bench -- --commits 300 --subscriptions 1000
step "bench smoke run (figures in README come from the release run)"
