//! The JSON messages clients send, the server's own replies, and the WebSocket close codes.
//! Notifications themselves are livecore's JSON ([`livecore::Notification::to_json`]) and
//! connection events livecore's event JSON, sent as they are.

use livecore::LiveError;
use serde::Deserialize;
use serde_json::{json, Value as Json};

use crate::db::WriteOp;

/// A message from the client.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// The first message: the token to verify.
    Auth {
        /// The client's tag, echoed in the reply.
        #[serde(default)]
        id: Option<Json>,
        /// The bearer token.
        #[serde(default)]
        token: String,
    },
    /// Opens a live query.
    Subscribe {
        /// The client's tag for this request, echoed in the reply.
        #[serde(default)]
        id: Option<Json>,
        /// `SELECT col, ... | * FROM table [WHERE ...]`.
        sql: String,
        /// Send the current rows first (snapshot batches, then `load_complete`).
        #[serde(default)]
        initial_load: bool,
        /// Resume after this SeqId (the client's last): replay what it missed.
        #[serde(default)]
        resume_from: Option<u64>,
    },
    /// Ends a live query.
    Unsubscribe {
        /// The client's tag, echoed.
        #[serde(default)]
        id: Option<Json>,
        /// The live query, as `subscribed` named it.
        live_query_id: String,
    },
    /// Writes rows: one transaction, one commit.
    Write {
        /// The client's tag, echoed.
        #[serde(default)]
        id: Option<Json>,
        /// The row operations.
        ops: Vec<WriteOp>,
    },
    /// Application-level ping; answered with `pong`.
    Ping {
        /// The client's tag, echoed.
        #[serde(default)]
        id: Option<Json>,
    },
}

/// WebSocket close codes the server uses; each close also carries a reason text.
pub mod close {
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A WebSocket protocol violation (RFC 6455: an unmasked frame, reserved bits or
    /// opcodes, a fragmented or oversized control frame, a continuation out of place, a
    /// close frame with a 1-byte payload).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A binary frame: the protocol is JSON text.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A text frame that is not valid UTF-8.
    pub const INVALID_TEXT: u16 = 1007;
    /// A frame or message over the size limit.
    pub const TOO_BIG: u16 = 1009;
    /// The server holds as many connections as livecore allows.
    pub const SERVER_FULL: u16 = 1013;
    /// A missing, forged or unknown token.
    pub const AUTH_FAILED: u16 = 4001;
    /// Something other than `auth` as the first message.
    pub const AUTH_REQUIRED: u16 = 4002;
    /// No `auth` message within the auth timeout.
    pub const AUTH_TIMEOUT: u16 = 4008;
    /// No sign of life within the heartbeat timeout.
    pub const HEARTBEAT_TIMEOUT: u16 = 4009;
    /// The client reads too slowly (slow-consumer policy `Disconnect`).
    pub const SLOW_CONSUMER: u16 = 4010;
    /// More messages than the rate limit allows.
    pub const RATE_LIMITED: u16 = 4029;
    /// Too many connections from the client's address.
    pub const TOO_MANY_CONNECTIONS: u16 = 4030;
}

/// `{"type":"error", "id":..., "code":..., "message":...}`.
pub fn error(id: Option<&Json>, code: &str, message: &str) -> String {
    json!({"type": "error", "id": id, "code": code, "message": message}).to_string()
}

/// The error code for a livecore refusal.
pub fn live_error_code(error: &LiveError) -> &'static str {
    match error {
        LiveError::SubscriptionLimitReached { .. } => "subscription_limit",
        LiveError::Sql { .. } => "sql",
        LiveError::UnknownTable(_) => "unknown_table",
        LiveError::UnknownColumn { .. } => "unknown_column",
        LiveError::FilterTooDeep { .. }
        | LiveError::FilterTooLarge { .. }
        | LiveError::InListTooLong { .. }
        | LiveError::LikePatternTooLong { .. } => "filter_limit",
        LiveError::InvalidFilter(_) => "invalid_filter",
        LiveError::UnknownSubscription(_) => "unknown_subscription",
        LiveError::ShuttingDown => "shutting_down",
        _ => "refused",
    }
}
