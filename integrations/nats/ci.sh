#!/usr/bin/env bash
# CI for livecore-nats: installs nats-server when missing, starts a 3-server cluster with
# JetStream on loopback ports in a temporary directory, runs the crate's tests against it,
# runs the example node against it (a writer appends commits, the node applies them and its
# client receives them), runs the example writer on a stream whose messages all aged out
# (without --after it must stop and ask for the engine's last SeqId; with --after it
# continues after it) and checks its refusal of --max-age 0 and its warning for an --after
# the stream contradicts, and stops the cluster on exit. Prints each step's elapsed seconds.
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

# The example writer on a stream whose messages all aged out (kept 1 s): the stream no
# longer tells the last SeqId (UnknownTail), so without the engine's last SeqId it stops
# and says to give it; with `--after` it continues after that SeqId.
aged_log="$dir/example-aged.log"
run_example --stream CI_AGED --max-age 1 --write 2
sleep 3
aged_status=0
run_example --stream CI_AGED --max-age 1 --write 1 >"$aged_log" 2>&1 || aged_status=$?
cat "$aged_log"
if [[ $aged_status == 0 ]] || ! grep -q -- "--after" "$aged_log"; then
    echo "ci.sh: the example writer on an aged-out stream exited with $aged_status, without asking for --after" >&2
    exit 1
fi
run_example --stream CI_AGED --max-age 1 --write 1 --after 2 >"$aged_log" 2>&1
cat "$aged_log"
if ! grep -q "appended commits 3..=3" "$aged_log"; then
    echo "ci.sh: the example writer did not continue after SeqId 2 on the aged-out stream" >&2
    exit 1
fi
# Its argument checks: a retention by age of 0 (no limit, to the servers) is refused; an
# `--after` that differs from the last SeqId a stream still tells is ignored with a warning.
zero_status=0
run_example --stream CI_AGED --max-age 0 --write 1 >"$aged_log" 2>&1 || zero_status=$?
cat "$aged_log"
if [[ $zero_status == 0 ]] || ! grep -q "at least 1 second" "$aged_log"; then
    echo "ci.sh: the example writer took --max-age 0 (exit $zero_status)" >&2
    exit 1
fi
run_example --stream CI_EXAMPLE --write 1 --after 99 >"$aged_log" 2>&1
cat "$aged_log"
if ! grep -q -- "--after 99 ignored" "$aged_log" || ! grep -q "appended commits 6..=6" "$aged_log"; then
    echo "ci.sh: the example writer did not warn of an --after the stream contradicts" >&2
    exit 1
fi
step "running the example writer on an aged-out stream"
