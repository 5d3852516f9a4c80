#!/usr/bin/env bash
# CI for livecore-nats: installs nats-server when missing, starts a 3-server cluster with
# JetStream on loopback ports in a temporary directory, runs the crate's tests against it,
# and stops the cluster on exit. Prints each step's elapsed seconds.
set -euo pipefail
cd "$(dirname "$0")"
here=$(pwd)

step_start=$SECONDS
step() {
    echo "ci.sh: $1 took $((SECONDS - step_start)) s"
    step_start=$SECONDS
}

# openssl makes the throwaway CA and server certificate of the TLS test.
missing=()
command -v nats-server >/dev/null || missing+=(nats-server)
command -v openssl >/dev/null || missing+=(openssl)
if ((${#missing[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
nats-server --version
step "installing nats-server and openssl"

dir=$(mktemp -d "${TMPDIR:-/tmp}/livecore-nats.XXXXXX")
cleanup() {
    bash "$here/scripts/cluster.sh" stop "$dir" || true
    rm -rf "$dir"
}
trap cleanup EXIT
bash scripts/cluster.sh start "$dir"
eval "$(bash scripts/cluster.sh env "$dir" | sed 's/^/export /')"
step "starting the cluster"

nice -n 10 cargo test -p livecore-nats --no-run
step "building the tests"
nice -n 10 cargo test -p livecore-nats
step "running the tests"
