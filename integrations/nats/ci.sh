#!/usr/bin/env bash
# CI for livecore-nats: installs nats-server when missing, starts a 3-server cluster with
# JetStream on loopback ports in a temporary directory, runs the crate's tests against it,
# runs the example node against it (a writer appends commits, the node applies them and its
# client receives them), and stops the cluster on exit. Prints each step's elapsed seconds.
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
    # As root directly; otherwise through sudo (as .ci/test.sh does).
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
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
nice -n 10 cargo build -p livecore-nats --examples
step "building the tests and examples"
nice -n 10 cargo test -p livecore-nats
step "running the tests"

# The example node, as the README runs it: the writer appends the demo schema and two
# commits; a node started from the stream's first message, whose client resumes after
# SeqId 0, must receive all five commits (three appended while it runs) and exit 0.
node_log="$dir/example-node.log"
run_example() { nice -n 10 cargo run -q -p livecore-nats --example node -- "$@"; }
run_example --stream CI_EXAMPLE --write 2
run_example --node-id 7 --stream CI_EXAMPLE --from-first \
    --subscribe "SELECT * FROM demo.messages" --resume-from 0 \
    --exit-after 5 --timeout 60 >"$node_log" 2>&1 &
node_pid=$!
run_example --stream CI_EXAMPLE --write 3
node_status=0
wait "$node_pid" || node_status=$?
cat "$node_log"
received=$(grep -c '"type":"changes"' "$node_log" || true)
if [[ $node_status != 0 || $received != 5 ]]; then
    echo "ci.sh: the example node exited with $node_status and printed $received changes (expected 0 and 5)" >&2
    exit 1
fi
step "running the example node against the cluster"
