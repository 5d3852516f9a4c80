#!/usr/bin/env bash
# CI for livecore-postgres: installs PostgreSQL 15 when missing, starts a throwaway cluster
# (wal_level=logical, SCRAM, TLS with a certificate made here, loopback only, in a
# temporary directory, as an unprivileged user), runs the crate's tests against it and
# stops it on exit. As root it does the privileged steps itself; otherwise through sudo
# (apt-get, useradd, and running commands as the cluster's user), as .ci/test.sh does.
# PG_BIN names the directory of initdb/pg_ctl/postgres (default: Debian's postgresql-15).
#
#   bash integrations/postgres/ci.sh            # build, start, test, stop
#   bash integrations/postgres/ci.sh --test lag # start, run one test file (tests/lag.rs), stop
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
test_file=
case "${1:-}" in
    --start-only) start_only=1 ;;
    --test) test_file=${2:?"--test needs the name of a file in tests/, e.g. lag"} ;;
    "") ;;
    *) echo "usage: $0 [--start-only | --test NAME]" >&2; exit 2 ;;
esac

# The privileged steps: installing packages, adding the cluster's user, acting as it.
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo

step() {
    echo "== $1 (step took $((SECONDS - step_start)) s, $SECONDS s in all)"
    step_start=$SECONDS
}

if [[ ! -x "$pg_bin/initdb" ]]; then
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null
fi
if ! command -v openssl >/dev/null 2>&1; then
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssl >/dev/null
fi
step "PostgreSQL installed ($("$pg_bin/postgres" --version))"

# PostgreSQL refuses to run as root: a system user owns the cluster.
if ! id -u "$pg_user" >/dev/null 2>&1; then
    $sudo useradd --system --no-create-home --shell /usr/sbin/nologin "$pg_user"
fi
# $work is the caller's (the tests read the CA certificates in it); the cluster's user owns
# data/ (the cluster) and run/ (its socket, log and password file).
work=$(mktemp -d /tmp/livecore-pg.XXXXXX)
chmod 711 "$work"
mkdir "$work/data" "$work/run"
chmod 700 "$work/data" "$work/run"
$sudo chown "$pg_user" "$work/data" "$work/run"
# From / : the caller's directory may be closed to the cluster's user.
as_pg() { (cd / && $sudo runuser -u "$pg_user" -- "$@"); }

stop_cluster() {
    if as_pg test -f "$work/data/postmaster.pid"; then
        as_pg "$pg_bin/pg_ctl" -D "$work/data" -m fast -w -t 60 stop >/dev/null || true
    fi
    $sudo rm -rf "$work"
}
if [[ $start_only == 0 || -z "${PG_KEEP:-}" ]]; then
    trap stop_cluster EXIT
fi

printf '%s\n' "$password" | as_pg tee "$work/run/pwfile" >/dev/null
as_pg "$pg_bin/initdb" -D "$work/data" -U livecore --pwfile="$work/run/pwfile" \
    --auth=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >"$work/initdb.log"
# TLS: a throwaway CA and a server certificate for localhost and 127.0.0.1, made now (and
# a second CA the server's certificate does not chain to, for the refusal test).
tls_cert() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "$@" 2>/dev/null; }
tls_cert -x509 -days 2 -subj "/CN=livecore test CA" -keyout "$work/ca.key" -out "$work/ca.crt"
tls_cert -x509 -days 2 -subj "/CN=another CA" -keyout "$work/other-ca.key" -out "$work/other-ca.crt"
tls_cert -subj "/CN=localhost" -keyout "$work/server.key" -out "$work/server.csr"
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$work/san.ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
    -CAcreateserial -days 2 -extfile "$work/san.ext" -out "$work/server.crt" 2>/dev/null
$sudo install -o "$pg_user" -m 600 "$work/server.key" "$work/data/server.key"
$sudo install -o "$pg_user" -m 644 "$work/server.crt" "$work/data/server.crt"
rm -f "$work/server.key"
as_pg tee -a "$work/data/postgresql.conf" >/dev/null <<EOF
ssl = on
listen_addresses = '127.0.0.1'
port = $pg_port
unix_socket_directories = '$work/run'
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
# The role livecore_tls (created by tests/tls.rs) may only connect over TLS.
as_pg tee "$work/data/pg_hba.conf" >/dev/null <<EOF
hostnossl all livecore_tls 127.0.0.1/32 reject
hostnossl replication livecore_tls 127.0.0.1/32 reject
host all all 127.0.0.1/32 scram-sha-256
host replication all 127.0.0.1/32 scram-sha-256
EOF
as_pg "$pg_bin/pg_ctl" -D "$work/data" -l "$work/run/server.log" -w -t 60 start >/dev/null
step "cluster started on 127.0.0.1:$pg_port in $work"

export LIVECORE_PG_URL="host=127.0.0.1 port=$pg_port user=livecore password=$password dbname=postgres"
export LIVECORE_PG_TLS_CA="$work/ca.crt" LIVECORE_PG_TLS_OTHER_CA="$work/other-ca.crt"
if [[ $start_only == 1 ]]; then
    echo "LIVECORE_PG_URL='$LIVECORE_PG_URL'"
    echo "LIVECORE_PG_TLS_CA='$LIVECORE_PG_TLS_CA' LIVECORE_PG_TLS_OTHER_CA='$LIVECORE_PG_TLS_OTHER_CA'"
    echo "stop with: $sudo runuser -u $pg_user -- $pg_bin/pg_ctl -D $work/data stop"
    exit 0
fi

cd "$root"
if [[ -n $test_file ]]; then
    nice -n 10 cargo test -p livecore-postgres --features tls --test "$test_file" -- --test-threads 2
    step "tests/$test_file.rs"
    exit 0
fi
nice -n 10 cargo build -p livecore-postgres --features tls --tests --examples
step "built (with the tls feature)"
# The workspace lint step builds without features; the TLS code is linted here.
nice -n 10 cargo clippy -p livecore-postgres --all-targets --features tls -- -D warnings
step "lints (with the tls feature)"
nice -n 10 cargo test -p livecore-postgres --features tls -- --test-threads 2
step "tests"
nice -n 10 cargo run -p livecore-postgres --features tls --example bench -- --commits 300 --subscriptions 1000
step "bench smoke run (figures in README come from the release run)"
