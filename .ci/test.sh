#!/usr/bin/env bash
# The test command: installs what it needs, then runs every test of livecore:
# formatting and lints, unit/integration/doc tests, the multi-threaded boundary race in
# the `race` profile, the loom models (and the mutants they must catch), and a small demo.
set -euo pipefail
cd "$(dirname "$0")/.."

passed=0
step() { printf '\n==== %s ====\n' "$*"; }
ok() { passed=$((passed + 1)); }

step "format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
ok

step "unit, integration and doc tests"
cargo test --all-targets
cargo test --doc
ok

step "snapshot boundary race (release with debug assertions)"
cargo test --profile race --test race_snapshot_boundary -- --nocapture
ok

step "filter evaluations flat from 1k to 1M subscriptions (release with debug assertions)"
cargo test --profile race --test sql_routing -- --ignored --nocapture
ok

step "loom models (LOOM_MAX_PREEMPTIONS=2, release, own target directory)"
RUSTFLAGS="--cfg livecore_loom" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=2 \
    cargo test --release -p livecore-loom-tests
ok

step "loom must catch every mutant"
for mutant in gate_no_recheck gate_live_before_flush directory_blind_store; do
    if RUSTFLAGS="--cfg livecore_loom --cfg livecore_mutant=\"$mutant\"" \
        CARGO_TARGET_DIR=target/loom-mutant LOOM_MAX_PREEMPTIONS=2 \
        cargo test --release -p livecore-loom-tests >"target/mutant-$mutant.log" 2>&1; then
        echo "mutant $mutant survived: the loom models did not catch it"
        exit 1
    fi
    grep -q "panicked" "target/mutant-$mutant.log" || { cat "target/mutant-$mutant.log"; echo "mutant $mutant: build failed rather than a model"; exit 1; }
    echo "mutant $mutant: caught"
done
ok

step "demo (small)"
cargo run --release --bin demo -- --connections 300 --commits 2000
ok

echo
echo "ci: $passed passed, 0 failed"
