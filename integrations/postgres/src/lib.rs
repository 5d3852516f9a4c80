#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod config;
mod error;
mod load;
pub mod pgoutput;
pub mod schema;
mod source;
mod tls;
#[cfg(feature = "tls")]
mod tls_rustls;
pub mod types;

pub use config::{SourceConfig, TableConfig};
pub use error::{PgError, PgResult};
pub use load::{LoadReport, ResumeOutcome};
pub use source::{PgSource, SourceStats};
