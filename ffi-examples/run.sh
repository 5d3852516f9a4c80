#!/usr/bin/env bash
# Builds and runs the C and C++ examples against livecore's C ABI, and checks them.
#
# For each example: a build with -fsanitize=address,undefined, run directly, and a plain
# build run under valgrind (--error-exitcode=1 --leak-check=full); both outputs must equal
# the example's .expected file. Every build uses -Wall -Wextra -Werror and links the static
# library with the native libraries rustc names (--print native-static-libs). Example 1 is
# also linked against the shared library, whose soname must be liblivecore.so.<ABI>.
# Example 5 links the static library built with the `fjall` feature (built last).
#
# Needs gcc, g++, valgrind, readelf and SQLite's headers (.ci/test.sh installs them).
# Set LIVECORE_BLESS=1 to rewrite the .expected files from the plain runs.
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/ffi-examples
mkdir -p "$out/lib"

for tool in gcc g++ valgrind readelf; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (bash .ci/test.sh installs it)"; exit 1; }
done
[ -f /usr/include/sqlite3.h ] || { echo "run.sh: sqlite3.h is missing (apt-get install libsqlite3-dev)"; exit 1; }

# The dev profile (debug assertions, overflow checks): the test command has built its
# dependencies already, so only livecore itself compiles here (in CI, without incremental
# compilation: a few tens of seconds).
echo "-- building liblivecore.a and liblivecore.so (dev profile)"
cargo rustc --lib --crate-type staticlib,cdylib -- --print native-static-libs >"$out/build.log" 2>&1 \
    || { cat "$out/build.log"; exit 1; }
native=$(sed -n 's/.*native-static-libs: //p' "$out/build.log" | tail -1)
[ -n "$native" ] || { cat "$out/build.log"; echo "run.sh: rustc named no native libraries"; exit 1; }
echo "   native libraries: $native"

abi=$(sed -n 's/^#define LIVECORE_ABI_VERSION \([0-9]*\)$/\1/p' include/livecore.h)
soname=$(readelf -d target/debug/liblivecore.so | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = "liblivecore.so.$abi" ] || { echo "run.sh: soname is '$soname', expected liblivecore.so.$abi"; exit 1; }
echo "   soname: $soname"

cflags=(-Wall -Wextra -Werror -g -Iinclude)
sanitize=(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# compile NAME COMPILER STD SOURCE EXTRA_LIBS...: the sanitized and the plain build.
compile() {
    local name=$1 compiler=$2 std=$3 source=$4
    shift 4
    # shellcheck disable=SC2086 # $native is a list of flags
    "$compiler" "-std=$std" "${cflags[@]}" "${sanitize[@]}" "$source" target/debug/liblivecore.a "$@" $native \
        -o "$out/$name-asan"
    # shellcheck disable=SC2086
    "$compiler" "-std=$std" "${cflags[@]}" -O1 "$source" target/debug/liblivecore.a "$@" $native -o "$out/$name"
}

# check NAME OUTPUT: the output must equal ffi-examples/NAME.expected.
check() {
    local name=$1 output=$2
    if [ -n "${LIVECORE_BLESS:-}" ]; then
        cp "$output" "ffi-examples/$name.expected"
    fi
    diff -u "ffi-examples/$name.expected" "$output" || { echo "run.sh: $name printed something else"; exit 1; }
}

# Extra valgrind options of the next `run` (examples 1 to 4 take none).
valgrind_extra=()

# run NAME ARGS...: both builds, both checked.
run() {
    local name=$1
    shift
    local started=$SECONDS
    "$out/$name-asan" "$@" >"$out/$name.asan.out"
    check "$name" "$out/$name.asan.out"
    # A program given a path (a database file, a store directory) starts afresh there.
    if [ "${1:-}" != "" ]; then rm -rf "$1" "$1-wal" "$1-shm"; fi
    # --fair-sched=yes: valgrind runs one thread at a time and would otherwise let a thread
    # that retakes a lock at once starve the others (the examples with threads).
    valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,possible -q \
        --fair-sched=yes "${valgrind_extra[@]}" "$out/$name" "$@" >"$out/$name.valgrind.out"
    check "$name" "$out/$name.valgrind.out"
    echo "   $name: sanitizers and valgrind clean, output as expected ($((SECONDS - started)) s)"
}

echo "-- the header alone: C99 and C++11, pedantic (its stated minimum standards), with and without LC_HAS_FJALL"
printf '#include "livecore.h"\nint main(void) { return 0; }\n' >"$out/header_only.c"
gcc -std=c99 -pedantic-errors -Wall -Werror -Iinclude -fsyntax-only "$out/header_only.c"
g++ -std=c++11 -pedantic-errors -Wall -Werror -Iinclude -fsyntax-only -x c++ "$out/header_only.c"
# The declarations guarded by LC_HAS_FJALL (feature fjall) are checked by the compilers too.
gcc -std=c99 -pedantic-errors -Wall -Werror -Iinclude -DLC_HAS_FJALL -fsyntax-only "$out/header_only.c"
g++ -std=c++11 -pedantic-errors -Wall -Werror -Iinclude -DLC_HAS_FJALL -fsyntax-only -x c++ "$out/header_only.c"

echo "-- example 1: minimal C"
compile minimal gcc c11 ffi-examples/minimal.c -lm
run minimal

echo "-- example 2: C++17 server, many publishers, one thread serving many connections"
compile server g++ c++17 ffi-examples/server.cpp -pthread
run server

echo "-- example 3: live queries over SQLite"
compile sqlite_live gcc c11 ffi-examples/sqlite_live.c -lsqlite3
rm -f "$out/live.db" "$out/live.db-wal" "$out/live.db-shm"
run sqlite_live "$out/live.db"

echo "-- example 4: a topic fed by a route, consumed with long poll from another thread"
compile topics_consumer gcc c11 ffi-examples/topics_consumer.c -pthread
run topics_consumer

echo "-- example 1 against the shared library (by its soname)"
ln -sf "$PWD/target/debug/liblivecore.so" "$out/lib/$soname"
gcc -std=c11 "${cflags[@]}" ffi-examples/minimal.c -Ltarget/debug -llivecore -lm -o "$out/minimal-shared"
needed=$(readelf -d "$out/minimal-shared" | sed -n 's/.*Shared library: \[\(liblivecore[^]]*\)\]/\1/p')
[ "$needed" = "$soname" ] || { echo "run.sh: the program needs '$needed', expected $soname"; exit 1; }
LD_LIBRARY_PATH="$out/lib" "$out/minimal-shared" >"$out/minimal.shared.out"
check minimal "$out/minimal.shared.out"
echo "   minimal: loads $needed, output as expected"

echo "-- example 5: durable topics in a fjall store opened by path (library built with --features fjall)"
# Last, since it replaces target/debug/liblivecore.a with the fjall build: only livecore
# itself is compiled again (the fjall test step of .ci/test.sh built its dependencies in
# this profile), and only as the static library.
cargo rustc --lib --features fjall --crate-type staticlib -- --print native-static-libs \
    >"$out/build-fjall.log" 2>&1 || { cat "$out/build-fjall.log"; exit 1; }
native=$(sed -n 's/.*native-static-libs: //p' "$out/build-fjall.log" | tail -1)
[ -n "$native" ] || { cat "$out/build-fjall.log"; echo "run.sh: rustc named no native libraries"; exit 1; }
compile topics_fjall gcc c11 ffi-examples/topics_fjall.c
rm -rf "$out/fjall-store"
# fjall (through tempfile's fastrand) asks Rust's std for the current thread's handle on
# the C main thread, which std never frees there: the one std block valgrind.supp names
# (ASan's leak check, which does not report it, runs without any suppression).
valgrind_extra=(--suppressions=ffi-examples/valgrind.supp)
run topics_fjall "$out/fjall-store"

echo "ffi-examples: 5 examples passed (sanitizers, valgrind, shared library, the fjall build)"
