#!/usr/bin/env bash
# CI for the reference server: installs headless Chromium when missing, then runs the
# crate's tests (unit, loopback WebSocket, security, SIGTERM of the binary, and the page
# in Chromium). The tests start the server themselves on 127.0.0.1 port 0 with databases
# in temporary directories, and stop it; Chromium is started and killed by its test.
set -euo pipefail
cd "$(dirname "$0")/../.."

step_start=$SECONDS
step() {
    echo "== $1 (previous step: $((SECONDS - step_start)) s)"
    step_start=$SECONDS
}

step "chromium"
if ! command -v chromium >/dev/null 2>&1; then
    # As root directly; otherwise through sudo (as .ci/test.sh does).
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
chromium --version 2>/dev/null | head -n 1

step "build"
nice -n 10 cargo test -p livecore-server --no-run

step "tests"
nice -n 10 cargo test -p livecore-server

step "done"
