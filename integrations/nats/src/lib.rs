//! livecore front nodes fed by a NATS JetStream commit stream.
//!
//! The engine's writer appends each commit (its SeqId, changes and the schema versions it
//! was written against) and each schema change to a JetStream stream replicated across
//! the cluster ([`CommitWriter`]). Every front node runs a [`NodeBridge`] that consumes
//! the stream in order and calls its own manager's `publish_commit`, exactly once per
//! commit; clients that come back (after a node restart, or on another node) resume from
//! their last SeqId through livecore's resume protocol, replayed from the stream. Each node
//! keeps its live-query records and a heartbeat in a JetStream key-value bucket, and runs
//! livecore's `FailoverHandler` over that view.
//!
//! The core crate stays free of runtimes and network I/O: this crate brings tokio and
//! `async-nats`, and publishing into livecore never waits on the network (the bridge
//! applies a commit after JetStream delivered it).

#![warn(missing_docs)]

pub mod cluster;
pub mod codec;
mod config;
mod error;
mod node;
mod writer;

pub use config::{Auth, ConnectionConfig, NodeConfig, StartFrom, StreamConfig, WriterConfig};
pub use error::BridgeError;
pub use node::{FailoverOutcome, NodeBridge, NodeStats, ResumeOutcome};
pub use writer::{Appended, CommitWriter};

// The README's Rust code is compiled (not run: it needs a cluster) with the doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
