//! The one error type of the source: every failure the host can see, typed.

use std::fmt;

use livecore::LiveError;

/// Everything the PostgreSQL source can refuse or fail at.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum PgError {
    /// The configuration is unusable (a bad connection string, a bad name, a limit of 0).
    Config(String),
    /// A published table is not `REPLICA IDENTITY FULL`: updates and deletes would arrive
    /// without the old row that enter/leave evaluation needs.
    ReplicaIdentityNotFull {
        /// The table, as `schema.table`.
        table: String,
        /// What PostgreSQL reports (`default`, `nothing`, `index`).
        identity: String,
    },
    /// A configured table does not exist in PostgreSQL.
    UnknownTable(String),
    /// A configured table is of a kind the source cannot publish without a gap (a
    /// partitioned table: see the README).
    UnsupportedTable {
        /// The table, as `schema.table`.
        table: String,
        /// Why.
        reason: String,
    },
    /// The existing publication would hide changes of a configured table (it does not
    /// publish every action, filters rows or columns, or publishes partitions under their
    /// root's name): refused rather than streamed with a silent gap.
    Publication {
        /// The publication.
        publication: String,
        /// What is wrong with it, and how to fix it.
        reason: String,
    },
    /// The table's columns in PostgreSQL's catalog differ from the ones the change stream
    /// last described (an `ALTER TABLE` the stream has not reached yet): a load cannot read
    /// rows in the columns its subscription was compiled against.
    SchemaChanged {
        /// The table, as `schema.table`.
        table: String,
        /// What differs.
        detail: String,
    },
    /// A published table was renamed, moved to another schema, or dropped and created
    /// again while the source ran. The source knows its tables by name and by the OID it
    /// found at start: it stops rather than skip the table's changes, or read a table
    /// whose changes the publication no longer sends.
    TableReplaced {
        /// The configured table, as `schema.table`.
        table: String,
        /// What the stream or the catalog showed.
        detail: String,
    },
    /// The owner column named for a user-scoped table is not one of its columns.
    UnknownOwnerColumn {
        /// The table, as `schema.table`.
        table: String,
        /// The configured column.
        column: String,
    },
    /// A column's PostgreSQL type has no mapping (see the type table in the README) and the
    /// configuration does not allow its text form.
    UnsupportedType {
        /// The table, as `schema.table`.
        table: String,
        /// The column.
        column: String,
        /// PostgreSQL's name of the type.
        type_name: String,
    },
    /// A value's text could not be read as its column's type.
    BadValue {
        /// The table, as `schema.table`.
        table: String,
        /// The column.
        column: String,
        /// Why.
        reason: String,
    },
    /// A pgoutput message could not be decoded: the stream stops here, never skipping it.
    Decode(String),
    /// The replication slot does not exist (dropped by someone else, or never created).
    SlotMissing(String),
    /// PostgreSQL invalidated the slot (it fell behind `max_slot_wal_keep_size`): the
    /// changes it held are gone. Clients must resubscribe with an initial load.
    SlotInvalidated(String),
    /// The connection was lost and could not be re-established within the configured
    /// attempts.
    ConnectionLost {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        last: String,
    },
    /// The TLS handshake the connection string asked for failed (the server does not
    /// offer TLS, or its certificate did not verify); the source never falls back to
    /// plain text.
    Tls(String),
    /// A PostgreSQL error on the SQL connection.
    Sql(String),
    /// A replication-protocol error that is not one of the above.
    Replication(String),
    /// livecore refused something the source handed it.
    Live(LiveError),
    /// The source has stopped (asked to, or after a fatal error it already reported).
    Stopped,
}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PgError::Config(reason) => write!(f, "invalid configuration: {reason}"),
            PgError::ReplicaIdentityNotFull { table, identity } => write!(
                f,
                "table {table} has REPLICA IDENTITY {identity}; the source needs FULL \
                 (ALTER TABLE {table} REPLICA IDENTITY FULL) to see old rows"
            ),
            PgError::UnknownTable(table) => write!(f, "table {table} does not exist"),
            PgError::UnsupportedTable { table, reason } => {
                write!(f, "table {table} cannot be published: {reason}")
            }
            PgError::Publication {
                publication,
                reason,
            } => write!(f, "publication {publication} cannot be used: {reason}"),
            PgError::SchemaChanged { table, detail } => write!(
                f,
                "the columns of {table} changed in PostgreSQL and the stream has not caught \
                 up: {detail}"
            ),
            PgError::TableReplaced { table, detail } => write!(
                f,
                "table {table} is no longer the relation the source started with: {detail}"
            ),
            PgError::UnknownOwnerColumn { table, column } => {
                write!(f, "owner column '{column}' is not a column of {table}")
            }
            PgError::UnsupportedType {
                table,
                column,
                type_name,
            } => write!(
                f,
                "column {table}.{column} has type {type_name}, which has no livecore mapping"
            ),
            PgError::BadValue {
                table,
                column,
                reason,
            } => write!(f, "bad value in {table}.{column}: {reason}"),
            PgError::Decode(reason) => write!(f, "cannot decode pgoutput message: {reason}"),
            PgError::SlotMissing(detail) => write!(f, "replication slot missing: {detail}"),
            PgError::SlotInvalidated(detail) => {
                write!(f, "replication slot invalidated: {detail}")
            }
            PgError::ConnectionLost { attempts, last } => {
                write!(f, "connection lost after {attempts} attempts: {last}")
            }
            PgError::Tls(reason) => write!(f, "TLS: {reason}"),
            PgError::Sql(message) => write!(f, "PostgreSQL error: {message}"),
            PgError::Replication(message) => write!(f, "replication error: {message}"),
            PgError::Live(error) => write!(f, "livecore refused: {error}"),
            PgError::Stopped => f.write_str("the source has stopped"),
        }
    }
}

impl std::error::Error for PgError {}

impl From<LiveError> for PgError {
    fn from(error: LiveError) -> Self {
        PgError::Live(error)
    }
}

impl From<tokio_postgres::Error> for PgError {
    fn from(error: tokio_postgres::Error) -> Self {
        match error.as_db_error() {
            Some(db) => PgError::Sql(format!("{} (SQLSTATE {})", db.message(), db.code().code())),
            // tokio-postgres reports a failed handshake only through its text.
            None if error.to_string().contains("TLS") => PgError::Tls(error.to_string()),
            None => PgError::Sql(error.to_string()),
        }
    }
}

/// The result type of the source.
pub type PgResult<T> = Result<T, PgError>;

/// Sorts a replication-session error: fatal ones become their typed error, transient ones
/// (I/O, a server shutting down, the slot still held by the previous session) `None`.
pub(crate) fn classify_replication(error: &pgwire_replication::PgWireError) -> Option<PgError> {
    use pgwire_replication::PgWireError as E;
    let text = error.to_string();
    match error {
        E::Io(_) | E::Task(_) => None,
        E::Server(message) => {
            let code = sqlstate(message);
            match code {
                // admin_shutdown, crash_shutdown, cannot_connect_now, object_in_use
                // (the slot is still held by the session being replaced).
                Some("57P01") | Some("57P02") | Some("57P03") | Some("55006") => None,
                // undefined_object: the publication (dropped while the source ran) or
                // the slot.
                Some("42704") if message.contains("publication") => Some(PgError::Publication {
                    publication: quoted_name(message).unwrap_or_default(),
                    reason: format!("it no longer exists: {message}"),
                }),
                Some("42704") => Some(PgError::SlotMissing(message.clone())),
                // PostgreSQL 15-16 say "cannot read from logical replication slot"
                // (detail: invalidated), 13-14 "can no longer get changes from
                // replication slot"; 55000 alone also covers unrelated states
                // (wal_level too low), so the text decides.
                Some("55000")
                    if message.contains("can no longer")
                        || message.contains("cannot read from logical replication slot")
                        || message.contains("invalidated") =>
                {
                    Some(PgError::SlotInvalidated(message.clone()))
                }
                _ if message.contains("does not exist") && message.contains("slot") => {
                    Some(PgError::SlotMissing(message.clone()))
                }
                _ => Some(PgError::Replication(text)),
            }
        }
        E::Tls(reason) => Some(PgError::Tls(reason.clone())),
        E::Auth(_) | E::Protocol(_) | E::Internal(_) => Some(PgError::Replication(text)),
        _ => Some(PgError::Replication(text)),
    }
}

/// The first double-quoted name in a server message.
fn quoted_name(message: &str) -> Option<String> {
    let start = message.find('"')? + 1;
    let end = start + message[start..].find('"')?;
    Some(message[start..end].to_string())
}

/// The SQLSTATE that pgwire-replication appends to a server message.
fn sqlstate(message: &str) -> Option<&str> {
    let start = message.rfind("(SQLSTATE ")? + "(SQLSTATE ".len();
    message.get(start..start + 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_are_sorted_by_sqlstate() {
        use pgwire_replication::PgWireError as E;
        let missing = E::Server("replication slot \"s\" does not exist (SQLSTATE 42704)".into());
        assert!(matches!(
            classify_replication(&missing),
            Some(PgError::SlotMissing(_))
        ));
        let gone = E::Server(
            "can no longer get changes from replication slot \"s\" (SQLSTATE 55000)".into(),
        );
        assert!(matches!(
            classify_replication(&gone),
            Some(PgError::SlotInvalidated(_))
        ));
        let gone_15 =
            E::Server("cannot read from logical replication slot \"s\" (SQLSTATE 55000)".into());
        assert!(matches!(
            classify_replication(&gone_15),
            Some(PgError::SlotInvalidated(_))
        ));
        let wal_level =
            E::Server("logical decoding requires wal_level >= logical (SQLSTATE 55000)".into());
        assert!(matches!(
            classify_replication(&wal_level),
            Some(PgError::Replication(_))
        ));
        let busy = E::Server("replication slot \"s\" is active for PID 7 (SQLSTATE 55006)".into());
        assert_eq!(classify_replication(&busy), None);
        let io = E::Io(std::sync::Arc::new(std::io::Error::other("reset")));
        assert_eq!(classify_replication(&io), None);
        let auth = E::Auth("password authentication failed".into());
        assert!(matches!(
            classify_replication(&auth),
            Some(PgError::Replication(_))
        ));
    }
}
