//! livecore-postgres: feeds [livecore](livecore) from PostgreSQL logical decoding.
//!
//! See the crate README for the design, the type table and the snapshot boundary argument.

#![warn(missing_docs)]

mod config;
mod error;
mod load;
pub mod pgoutput;
pub mod schema;
mod source;
pub mod types;

pub use config::{SourceConfig, TableConfig};
pub use error::{PgError, PgResult};
pub use load::{LoadReport, ResumeOutcome};
pub use source::{PgSource, SourceStats};
