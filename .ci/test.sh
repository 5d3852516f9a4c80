#!/usr/bin/env bash
# The test command: installs what it needs, then runs every test of livecore.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==== %s ====\n' "$*"; }

step "unit, integration and doc tests"
cargo test --all-targets
cargo test --doc
