#!/usr/bin/env bash
# The test command: installs what it needs, then runs every test of livecore:
# formatting and lints, unit/integration/doc tests (the C ABI's included, and the check that
# include/livecore.h is what cbindgen generates), the multi-threaded boundary race in the
# `race` profile, the loom models (and the mutants they must catch), a small demo, and the
# C and C++ examples under sanitizers and valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."

passed=0
step() { printf '\n==== %s ====\n' "$*"; }
ok() { passed=$((passed + 1)); }

step "system packages (C/C++ compilers, valgrind, SQLite headers) when missing"
missing=()
command -v gcc >/dev/null || missing+=(gcc)
command -v g++ >/dev/null || missing+=(g++)
[ -f /usr/include/stdio.h ] || missing+=(libc6-dev)
command -v valgrind >/dev/null || missing+=(valgrind)
command -v readelf >/dev/null || missing+=(binutils)
[ -f /usr/include/sqlite3.h ] || missing+=(libsqlite3-dev)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo=sudo
    $sudo apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    echo "all present"
fi

step "format, lints, and a SAFETY: comment on every unsafe block"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
rust_dirs=()
for dir in src tests benches loom-tests; do [ -d "$dir" ] && rust_dirs+=("$dir"); done
find "${rust_dirs[@]}" -name '*.rs' | sort | xargs awk -f .ci/safety-comments.awk
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

step "C ABI: the Rust FFI tests under valgrind, the C and C++ examples (sanitizers and valgrind)"
ffi_tests=$(cargo test --test ffi --no-run 2>&1 | sed -n 's|.*Executable tests/ffi/main.rs (\(.*\))|\1|p')
[ -n "$ffi_tests" ] || { echo "could not find the ffi test binary"; exit 1; }
valgrind --error-exitcode=1 --leak-check=full --suppressions=ffi-examples/valgrind.supp -q "$ffi_tests" -q
bash ffi-examples/run.sh
ok

echo
echo "ci: $passed passed, 0 failed"
