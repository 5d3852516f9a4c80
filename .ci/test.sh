#!/usr/bin/env bash
# The test command: installs what it needs, then runs every test of livecore:
# formatting and lints, unit/integration/doc tests (the C ABI's included, and the check that
# include/livecore.h is what cbindgen generates), the multi-threaded boundary race in the
# `race` profile, the loom models (and the mutants they must catch), a small demo, and the
# C and C++ examples under sanitizers and valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."

# One CI run ran out of disk in its tenth step. A fresh clone gains nothing from
# incremental compilation, whose caches were a quarter of target/ (5.6 of 22 GB at the end
# of a run); full debug info in every test binary, built for three feature sets, was most
# of the rest. Line tables keep file:line in backtraces and in valgrind's reports.
export CARGO_INCREMENTAL=0
export CARGO_PROFILE_DEV_DEBUG=line-tables-only

passed=0
# Each step's wall time is printed as it ends and again in a table at the end of the run
# (also when a step fails). Times are shown, never compared against a budget: the machine
# is shared, and a wall-clock limit would make the suite flaky.
step_names=()
step_seconds=()
current_step=""
step_started=$SECONDS
run_started=$SECONDS
end_step() {
    if [ -n "$current_step" ]; then
        step_names+=("$current_step")
        step_seconds+=($((SECONDS - step_started)))
        printf -- '---- %s: %d s\n' "$current_step" $((SECONDS - step_started))
        # What the builds hold, and what the disk has left, to see a run outgrow its disk.
        printf -- '     target/ %s, %s free\n' "$(du -sh target 2>/dev/null | cut -f1)" \
            "$(df -h --output=avail . | tail -1 | tr -d ' ')"
    fi
    current_step=""
}
step() {
    end_step
    current_step="$*"
    step_started=$SECONDS
    printf '\n==== %s ====\n' "$*"
}
ok() { passed=$((passed + 1)); }
print_times() {
    local status=$?
    end_step
    printf '\n==== step times ====\n'
    local i
    for i in "${!step_names[@]}"; do
        printf '%6d s  %s\n' "${step_seconds[$i]}" "${step_names[$i]}"
    done
    printf '%6d s  total\n' $((SECONDS - run_started))
    return $status
}
trap print_times EXIT

step "system packages (C/C++ compilers, valgrind, SQLite headers, openssl) when missing"
missing=()
command -v gcc >/dev/null || missing+=(gcc)
command -v g++ >/dev/null || missing+=(g++)
[ -f /usr/include/stdio.h ] || missing+=(libc6-dev)
command -v valgrind >/dev/null || missing+=(valgrind)
command -v readelf >/dev/null || missing+=(binutils)
[ -f /usr/include/sqlite3.h ] || missing+=(libsqlite3-dev)
# The PostgreSQL source's TLS test makes a throwaway CA with the openssl command.
command -v openssl >/dev/null || missing+=(openssl)
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
cargo clippy --workspace --all-targets -- -D warnings
rust_dirs=()
for dir in src tests benches loom-tests; do [ -d "$dir" ] && rust_dirs+=("$dir"); done
find "${rust_dirs[@]}" -name '*.rs' | sort | xargs awk -f .ci/safety-comments.awk
ok

step "unit, integration and doc tests"
# The two SQL differentials run in the next step, where their coverage is shown; --skip is
# passed to libtest harnesses only (criterion's bench harness does not take it).
differentials=(--skip livecore_agrees_with_sqlite_on_random_filters
    --skip routed_deliveries_agree_with_the_reference_filters)
cargo test --lib --bins --tests -- "${differentials[@]}"
cargo test --benches --examples
cargo test --doc
# Each program in examples/ asserts what it shows.
for example in examples/*.rs; do cargo run -q --example "$(basename "$example" .rs)"; done
ok

step "API docs build without warnings, and the layers of src/ hold"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p livecore
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p livecore --all-features
cargo test --test layers
ok

step "the optional features (stream, tracing, metrics, serde): lints and tests, and the package"
cargo clippy -p livecore --all-targets --all-features -- -D warnings
# The SIGKILL tests of tests/topics_durable.rs (about a minute, and nothing in them depends
# on the other features) run once, in the durable topic log step below; the rest of that
# file runs here too.
sigkill_tests=(--skip acknowledged_appends_survive_sigkill
    --skip per_key_order_holds_across_nacks_and_sigkill)
cargo test -p livecore --all-features --lib --tests -- "${differentials[@]}" "${sigkill_tests[@]}"
# The crate as it would be published: the file list and a build of the packaged sources.
cargo package -p livecore --allow-dirty
ok

step "SQL differentials: against SQLite, and through subscribe/publish routing (coverage shown)"
cargo test --test sql_differential --test sql_routing_differential -- --nocapture \
    livecore_agrees_with_sqlite_on_random_filters routed_deliveries_agree_with_the_reference_filters
ok

step "snapshot boundary race and topic wake-up stress (release with debug assertions)"
cargo test --profile race --test race_snapshot_boundary -- --ignored --nocapture
cargo test --profile race --test topics_stress -- --ignored --nocapture --test-threads 1
ok

step "durable topic log (feature fjall): lints, tests, SIGKILL crash test, damaged files, C ABI"
# A child process appending and committing is killed 30 times at random points (about a
# minute); a longer run: LIVECORE_CRASH_ITERATIONS=500 (LIVECORE_CRASH_SEED replays one).
# The only run of the SIGKILL tests (the optional-features step skips them).
cargo clippy --features fjall --lib --tests -- -D warnings
cargo test --features fjall --test topics_durable -- --nocapture
# The C ABI's fjall functions (declared under LC_HAS_FJALL): their contract cases, with
# every other function's, and a store written, reopened by path and read back.
cargo test --features fjall --test ffi -- fjall every_header_function_has_a_case
ok

step "filter evaluations flat from 1k to 1M subscriptions (release with debug assertions)"
cargo test --profile race --test sql_routing -- --ignored --nocapture
ok

step "loom models and mutants (LOOM_MAX_PREEMPTIONS=2, release, own target directory)"
# The models are built once with --cfg livecore_loom (never a cargo feature), warnings
# denied as in the normal build, into their own target directory, so the normal build's
# artifacts are left alone.
loom_test() {
    RUSTFLAGS="--cfg livecore_loom -D warnings" CARGO_TARGET_DIR=target/loom LOOM_MAX_PREEMPTIONS=2 \
        cargo test --release -p livecore-loom-tests "$@"
}
loom_test
echo "loom models: passed"

# Every mutant is a deliberate bug at a `mutant!("<name>")` site in src/, selected at run
# time by LIVECORE_MUTANT in the loom build above (so no mutant rebuilds anything), listed
# with the model file that must catch it (only that file is run for it). A model must
# panic (a failed assertion, or loom reporting a deadlock or leak), and the run must fail.
mutants=(
    gate_no_recheck:snapshot_gate
    gate_live_before_flush:snapshot_gate
    live_gate_forgets_boundary:snapshot_gate
    replay_not_remembered:snapshot_gate
    gated_close_without_lock:snapshot_gate
    load_marker_before_gate_lock:snapshot_gate
    change_ahead_of_late_marker:snapshot_gate
    closing_flag_after_drain:subscription_lifecycle
    successor_own_removed_flag:subscription_lifecycle
    receiver_keeps_ended:subscription_lifecycle
    revoke_ends_outside_map:subscription_lifecycle
    unsubscribe_removes_after_map:subscription_lifecycle
    gap_wake_before_flag:receivers
    resumed_by_place:receivers
    prepared_not_rechecked:receivers
    gap_after_disconnect:receivers
    cut_off_before_event:receivers
    ready_armed_after_check:receivers
    commit_refs_uncounted:receivers
    directory_blind_store:connections
    index_writer_unlocked:connections
    register_unlocked_shutdown_check:connections
    event_sent_before_flag:connections
    topic_recheck_load:topic_models
    nack_skips_expiry:topic_models
    extend_revives_expired:topic_models
    append_ceiling_at_start:topic_models
    session_wakes_one_call:topic_models
    bucket_removed_released_early:route_buckets
    bucket_successor_not_kept:route_buckets
    resize_successors_not_kept:route_buckets
    resize_keeps_one_successor:route_buckets
    core_released_before_queue:subscription_lifecycle
    released_stamp_ignores_queue:core_release
)
# The list above and the sites in src/ name the same mutants, each site once.
listed=$(printf '%s\n' "${mutants[@]%%:*}" | sort)
in_src=$(grep -rhE 'mutant!\("[a-z0-9_]+"\)' src | grep -vE '^\s*//' \
    | grep -oE 'mutant!\("[a-z0-9_]+"\)' | sed -E 's/mutant!\("(.*)"\)/\1/' | sort)
if [ "$listed" != "$(printf '%s\n' "$in_src" | sort -u)" ] || [ "$in_src" != "$(printf '%s\n' "$in_src" | sort -u)" ]; then
    echo "the mutant list in .ci/test.sh and the mutant!(..) sites in src/ differ:"
    diff <(echo "$listed") <(echo "$in_src") || true
    exit 1
fi
mkdir -p target
for entry in "${mutants[@]}"; do
    mutant=${entry%%:*}
    models=${entry#*:}
    log="target/mutant-$mutant.log"
    if LIVECORE_MUTANT="$mutant" loom_test --test "$models" >"$log" 2>&1; then
        echo "mutant $mutant survived: the models in $models did not catch it"
        exit 1
    fi
    if ! grep -q "^ *Running tests/" "$log" || ! grep -q "panicked at" "$log"; then
        cat "$log"
        echo "mutant $mutant: the run failed without a model panicking (did the build break?)"
        exit 1
    fi
    caught_by=$(grep -m1 -o "thread '[a-z0-9_]*' ([0-9]*) panicked" "$log" | cut -d"'" -f2)
    echo "mutant $mutant: caught by $models::${caught_by:-?}"
done
ok

step "demo (1,000 connections, 10,000 commits; release with debug assertions)"
# The race step's `cargo test` built the demo too (cargo builds a package's binaries for
# its integration tests): no second optimized build of the crate and its dependencies,
# and the demo runs with debug assertions on.
demo=target/race/demo
[ -x "$demo" ] || { echo "the race step did not build $demo"; exit 1; }
"$demo" --connections 1000 --commits 10000
ok

step "C ABI: the Rust FFI tests under valgrind, the C and C++ examples (sanitizers and valgrind)"
ffi_tests=$(cargo test --test ffi --no-run 2>&1 | sed -n 's|.*Executable tests/ffi/main.rs (\(.*\))|\1|p')
[ -n "$ffi_tests" ] || { echo "could not find the ffi test binary"; exit 1; }
# Valgrind runs one thread at a time; --fair-sched=yes hands the turns out in order, so a
# thread that takes a lock again right after releasing it (a publisher in a loop) cannot
# starve the others for seconds. One test at a time: most of them take the same lock anyway.
valgrind --error-exitcode=1 --leak-check=full --fair-sched=yes \
    --suppressions=ffi-examples/valgrind.supp -q "$ffi_tests" -q --test-threads 1
bash ffi-examples/run.sh
ok

step "integration: PostgreSQL logical-decoding source (throwaway cluster on loopback)"
bash integrations/postgres/ci.sh
ok

step "integration: NATS JetStream front nodes (3-server cluster on loopback)"
bash integrations/nats/ci.sh
ok

step "integration: reference WebSocket server (loopback clients, headless Chromium)"
bash integrations/server/ci.sh
ok

trap - EXIT
print_times
echo
echo "ci: $passed passed, 0 failed"
