#!/usr/bin/env bash
# Starts a 3-server cluster in a temporary directory, runs the bridge benchmark in release
# mode against it, and stops the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=$(mktemp -d "${TMPDIR:-/tmp}/livecore-nats-bench.XXXXXX")
trap 'bash scripts/cluster.sh stop "$dir"; rm -rf "$dir"' EXIT
bash scripts/cluster.sh start "$dir" >/dev/null
eval "$(bash scripts/cluster.sh env "$dir" | sed 's/^/export /')"
nice -n 10 cargo run --release -p livecore-nats --example bench
