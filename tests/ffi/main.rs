//! The C ABI driven from Rust exactly as C drives it: raw pointers, handles, status codes.
//! This binary also runs under valgrind in the test command (the stable-toolchain stand-in
//! for Miri), so it keeps to small workloads.

mod contract;
mod contract_connection;
mod contract_manager;
mod contract_publish;
mod contract_records;
mod contract_subscription;
mod flows;
mod golden;
mod load_flows;
mod panics;
mod support;
mod topic_contract;
mod topic_contract_consume;
#[cfg(feature = "fjall")]
mod topic_fjall;
mod topic_flows;
mod topic_store;
mod topic_store_contract;
