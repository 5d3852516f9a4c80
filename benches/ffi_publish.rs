//! Publishing through the C ABI against the native Rust API, both sides starting from the
//! same C array of values (`lc_value`s).
//!
//! - `native`: the array converted to a `Row` (text checked as UTF-8 and copied, as the C
//!   ABI does), then `ConnectionsManager::publish` / `publish_commit`.
//! - `c_abi`: an `lc_change` pointing at the array, then `lc_change_publish` / `lc_commit_publish`
//!   called through function pointers into the built shared library (`liblivecore.so`,
//!   next to this binary in target/<profile>/deps/), loaded with dlopen and RTLD_LOCAL:
//!   its own copy of livecore, as a C host would call it.
//!
//! Both managers are set up alike (`benches/common/ffi.rs`): table `bench.items`, the same
//! SQL subscriptions on connections authenticated as the same user. Cases: 1 and 1000
//! unfiltered subscribers; 1000 `id = k` subscriptions with one match per change; 1000
//! `room = 7` subscriptions all matching. Groups: `ffi_publish` (one insert per commit) and
//! `ffi_publish_commit` (commits of 8 inserts). Publisher side only: channels are drained
//! untimed between chunks. Throughput is in changes published, so elements/s compare
//! directly; the target is C ABI time within 1.25x of native.

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};

mod common;

use common::criterion_config;
use common::ffi::{FfiPair, COMMIT_CHANGES, FFI_CASES};

fn ffi_publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("ffi_publish");
    group.throughput(Throughput::Elements(1));
    for case in FFI_CASES {
        // Built on first use, so a filtered run sets up only what it measures.
        let mut pair = None;
        group.bench_function(BenchmarkId::new("native", case.name), |b| {
            let pair = pair.get_or_insert_with(|| FfiPair::new(case));
            b.iter_custom(|iters| pair.native_publish(iters))
        });
        group.bench_function(BenchmarkId::new("c_abi", case.name), |b| {
            let pair = pair.get_or_insert_with(|| FfiPair::new(case));
            b.iter_custom(|iters| pair.c_publish(iters))
        });
    }
    group.finish();
}

fn ffi_publish_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("ffi_publish_commit");
    group.throughput(Throughput::Elements(COMMIT_CHANGES as u64));
    for case in FFI_CASES {
        let mut pair = None;
        group.bench_function(BenchmarkId::new("native", case.name), |b| {
            let pair = pair.get_or_insert_with(|| FfiPair::new(case));
            b.iter_custom(|iters| pair.native_publish_commit(iters))
        });
        group.bench_function(BenchmarkId::new("c_abi", case.name), |b| {
            let pair = pair.get_or_insert_with(|| FfiPair::new(case));
            b.iter_custom(|iters| pair.c_publish_commit(iters))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = criterion_config();
    targets = ffi_publish, ffi_publish_commit
}

fn main() {
    common::bench_main("ffi_publish", &[benches]);
}
