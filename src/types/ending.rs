//! How a subscription ends when livecore ends it: the reason a closed subscription carries,
//! and the terminal outcome its subscriber (and a host calling on it later) is told.

use std::fmt;

/// Why livecore ended a subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum CloseReason {
    /// A column the query reads is gone (the table was re-registered without it) or its
    /// values were rewritten without row changes (the host called
    /// [`columns_rewritten`](crate::ConnectionsManager::columns_rewritten): a change of
    /// type, a name moved to another column).
    SchemaChanged {
        /// The column.
        column: String,
    },
    /// The table was dropped.
    TableDropped,
    /// The host revoked it (token expired, permission withdrawn).
    Revoked {
        /// The host's reason.
        reason: String,
    },
}

impl CloseReason {
    /// A short machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            CloseReason::SchemaChanged { .. } => "schema_changed",
            CloseReason::TableDropped => "table_dropped",
            CloseReason::Revoked { .. } => "revoked",
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::SchemaChanged { column } => {
                write!(f, "column '{column}' was dropped or its values rewritten")
            }
            CloseReason::TableDropped => f.write_str("the table was dropped"),
            CloseReason::Revoked { reason } => write!(f, "revoked: {reason}"),
        }
    }
}

/// How livecore ended a subscription: the terminal notice its subscriber gets (once), and
/// what [`LiveError::SubscriptionEnded`](crate::LiveError::SubscriptionEnded) reports to a
/// host that calls on it afterwards.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum SubscriptionEnding {
    /// Its snapshot buffer overflowed, a schema change arrived during its initial load, or
    /// the host lost commits of its table
    /// ([`resync_table`](crate::ConnectionsManager::resync_table)): the client has nothing
    /// consistent to resume from and must subscribe again with a fresh initial load.
    ResyncRequired,
    /// The engine could not replay from the SeqId the client resumes after.
    ResumeUnavailable,
    /// Closed for the reason given (revoked, table dropped, schema changed).
    Closed(CloseReason),
}

impl SubscriptionEnding {
    /// A short machine-readable code: `resync_required`, `resume_unavailable`, or the
    /// close reason's code.
    pub fn code(&self) -> &'static str {
        match self {
            SubscriptionEnding::ResyncRequired => "resync_required",
            SubscriptionEnding::ResumeUnavailable => "resume_unavailable",
            SubscriptionEnding::Closed(reason) => reason.code(),
        }
    }
}
