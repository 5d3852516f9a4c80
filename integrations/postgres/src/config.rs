//! What the source connects to and what it publishes.

use std::str::FromStr;
use std::time::Duration;

use livecore::{SeqId, TableScope};

use crate::error::{PgError, PgResult};
use crate::tls::split_tls_options;
use crate::types::SESSION_SETTINGS;
#[cfg(feature = "tls")]
use crate::{tls::TlsOptions, tls_rustls::RustlsConnector};

/// A PostgreSQL table the source publishes to livecore, as `namespace.name` =
/// `schema.table`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableConfig {
    /// The PostgreSQL schema (and livecore namespace).
    pub schema: String,
    /// The table's name.
    pub name: String,
    /// For a user-scoped table, the column whose value (as text) names the row's owner.
    pub owner_column: Option<String>,
}

impl TableConfig {
    /// A table whose rows every user may subscribe to.
    pub fn shared(schema: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            name: name.into(),
            owner_column: None,
        }
    }

    /// A user-scoped table: each row belongs to the user named by `owner_column`.
    pub fn user_scoped(
        schema: impl Into<String>,
        name: impl Into<String>,
        owner_column: impl Into<String>,
    ) -> Self {
        Self {
            schema: schema.into(),
            name: name.into(),
            owner_column: Some(owner_column.into()),
        }
    }

    /// The livecore scope this table is registered with.
    pub fn scope(&self) -> TableScope {
        match self.owner_column {
            Some(_) => TableScope::User,
            None => TableScope::Shared,
        }
    }

    /// `"schema"."name"`, quoted for SQL.
    pub(crate) fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

/// Quotes an identifier for SQL.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The longest slot name the configuration accepts: a load's temporary slot is named
/// `{slot}_load_{process id, hex}_{load number, hex}`, at most 31 characters more, and
/// PostgreSQL's names stop at 63.
pub(crate) const MAX_SLOT_NAME: usize = 63 - "_load_".len() - 8 - "_".len() - 16;

/// The name of a load's temporary slot.
pub(crate) fn load_slot_name(slot: &str, process: u32, number: u64) -> String {
    format!("{slot}_load_{process:x}_{number:x}")
}

/// The source's configuration. [`SourceConfig::new`] gives the defaults.
#[derive(Clone, Debug)]
pub struct SourceConfig {
    /// libpq-style connection string (`host=.. port=.. user=.. password=.. dbname=..`) or
    /// URL. The user needs the REPLICATION attribute (or superuser). Authentication is
    /// whatever the server asks: SCRAM-SHA-256 included. TLS (rustls) with `sslmode=require`,
    /// `verify-ca` or `verify-full` (the last two with `sslrootcert`, a PEM file);
    /// `disable`, `allow`, `prefer` or no `sslmode` connect in plain text. Settings given
    /// with `options` (`-c statement_timeout=5000`) apply to every connection the source
    /// opens, except those it pins for decoding (date, interval and float styles, time
    /// zone, `bytea_output`, encoding), which come after them and win.
    pub connection: String,
    /// The logical replication slot the change stream reads (created when missing): 1 to
    /// 32 characters of a-z, 0-9 and _ (each load names a temporary slot after it).
    pub slot: String,
    /// The publication the slot decodes (created for `tables` when missing).
    pub publication: String,
    /// The tables to publish.
    pub tables: Vec<TableConfig>,
    /// Columns of types without a mapping carry PostgreSQL's text output instead of being
    /// refused with [`PgError::UnsupportedType`].
    pub unsupported_as_text: bool,
    /// How many recent commits the source keeps for clients resuming with their last
    /// SeqId; older positions get `ResumeUnavailable`.
    pub history_commits: usize,
    /// The most changes (rows inserted, updated or deleted) those commits may hold
    /// together: the history keeps a copy of each, so without this bound a few bulk
    /// transactions (`INSERT ... SELECT` of millions of rows) would be held in memory for
    /// as long as 10,000 commits. The oldest commits go first; a resume from before them
    /// gets `ResumeUnavailable`.
    pub history_changes: usize,
    /// Skip commits at or below this SeqId: the last one a previous run of the source
    /// published (see [`PgSource::last_published`](crate::PgSource::last_published)).
    pub resume_after: Option<SeqId>,
    /// Reconnection attempts after a lost connection before the source fails with
    /// [`PgError::ConnectionLost`].
    pub max_reconnect_attempts: u32,
    /// The longest wait between reconnection attempts (the wait doubles from 50 ms).
    pub max_reconnect_backoff: Duration,
    /// How often the acknowledged position is reported to PostgreSQL at most.
    pub status_interval: Duration,
    /// Rows fetched per round trip while reading a snapshot.
    pub snapshot_fetch_rows: usize,
    /// How long an initial load waits for a full connection channel to drain before it
    /// gives up with `LiveError::WouldBlock`.
    pub snapshot_push_patience: Duration,
    /// How long a load waits for its temporary slot: PostgreSQL creates it once every
    /// transaction that holds a transaction id at that moment has ended, so a session
    /// left idle in a write transaction, or a prepared transaction never committed,
    /// would hold the load (and its gated subscriptions) forever. Past it the load fails
    /// with [`PgError::Replication`](crate::PgError::Replication) and its subscriptions
    /// are ended.
    pub load_slot_patience: Duration,
}

impl SourceConfig {
    /// A configuration with the defaults: 10,000 commits (at most 1,000,000 changes) of
    /// history, 30 reconnection
    /// attempts with waits up to 2 s, status every 100 ms, 1000 rows per fetch.
    pub fn new(
        connection: impl Into<String>,
        slot: impl Into<String>,
        publication: impl Into<String>,
        tables: Vec<TableConfig>,
    ) -> Self {
        Self {
            connection: connection.into(),
            slot: slot.into(),
            publication: publication.into(),
            tables,
            unsupported_as_text: false,
            history_commits: 10_000,
            history_changes: 1_000_000,
            resume_after: None,
            max_reconnect_attempts: 30,
            max_reconnect_backoff: Duration::from_secs(2),
            status_interval: Duration::from_millis(100),
            snapshot_fetch_rows: 1000,
            snapshot_push_patience: Duration::from_secs(30),
            load_slot_patience: Duration::from_secs(60),
        }
    }

    /// Checks names and limits.
    pub(crate) fn validate(&self) -> PgResult<()> {
        let simple = |what: &str, name: &str| -> PgResult<()> {
            let ok = !name.is_empty()
                && name.len() <= 63
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if ok {
                Ok(())
            } else {
                Err(PgError::Config(format!(
                    "{what} '{name}' must be 1-63 characters of a-z, 0-9 and _"
                )))
            }
        };
        simple("slot", &self.slot)?;
        // Every load creates a temporary slot named after this one; PostgreSQL's names
        // stop at 63 bytes.
        if self.slot.len() > MAX_SLOT_NAME {
            return Err(PgError::Config(format!(
                "slot '{}' is {} characters long; at most {MAX_SLOT_NAME}, so that the \
                 temporary slot of a load ('{}') fits in PostgreSQL's 63",
                self.slot,
                self.slot.len(),
                load_slot_name(&self.slot, u32::MAX, u64::MAX)
            )));
        }
        simple("publication", &self.publication)?;
        if self.tables.is_empty() {
            return Err(PgError::Config("no tables to publish".into()));
        }
        for table in &self.tables {
            if table.schema.is_empty() || table.name.is_empty() {
                return Err(PgError::Config("a table needs a schema and a name".into()));
            }
        }
        if self.history_commits == 0 || self.history_changes == 0 || self.snapshot_fetch_rows == 0 {
            return Err(PgError::Config(
                "history_commits, history_changes and snapshot_fetch_rows must be at least 1"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// The connection string, read once for both kinds of connection.
#[derive(Clone, Debug)]
pub(crate) struct Connection {
    pub(crate) sql: tokio_postgres::Config,
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) user: String,
    pub(crate) password: String,
    pub(crate) dbname: String,
    /// The host's `options`, then the settings the decoder needs.
    options: String,
    #[cfg(feature = "tls")]
    tls: TlsOptions,
    /// The SQL connections' TLS connector; `None` in plain text.
    #[cfg(feature = "tls")]
    connector: Option<RustlsConnector>,
}

impl Connection {
    pub(crate) fn parse(text: &str) -> PgResult<Self> {
        let (text, tls) = split_tls_options(text)?;
        let mut sql = tokio_postgres::Config::from_str(&text)
            .map_err(|error| PgError::Config(format!("connection string: {error}")))?;
        #[cfg(feature = "tls")]
        let connector = tls.connector()?;
        #[cfg(feature = "tls")]
        let encrypted = connector.is_some();
        #[cfg(not(feature = "tls"))]
        let encrypted = if tls.mode == crate::tls::TlsMode::Disable {
            false
        } else {
            return Err(PgError::Tls(
                "the connection string asks for TLS and this build has none \
                 (enable livecore-postgres's `tls` feature)"
                    .into(),
            ));
        };
        // With a connector, TLS or nothing: never a fallback to plain text.
        sql.ssl_mode(if encrypted {
            tokio_postgres::config::SslMode::Require
        } else {
            tokio_postgres::config::SslMode::Disable
        });
        // The host's own settings are kept; the pinned ones come after them, so they win
        // where both set a parameter (a later `-c` overrides an earlier one).
        let options = match sql.get_options().map(str::trim) {
            Some(own) if !own.is_empty() => format!("{own} {SESSION_SETTINGS}"),
            _ => SESSION_SETTINGS.to_string(),
        };
        sql.options(&options);
        sql.application_name("livecore-postgres");
        let host = match sql.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
            None => "localhost".to_string(),
        };
        let port = sql.get_ports().first().copied().unwrap_or(5432);
        let user = sql
            .get_user()
            .ok_or_else(|| PgError::Config("connection string names no user".into()))?
            .to_string();
        let password = sql
            .get_password()
            .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
            .unwrap_or_default();
        let dbname = sql.get_dbname().unwrap_or(&user).to_string();
        Ok(Self {
            sql,
            host,
            port,
            user,
            password,
            dbname,
            options,
            #[cfg(feature = "tls")]
            tls,
            #[cfg(feature = "tls")]
            connector,
        })
    }

    /// A replication session's configuration.
    pub(crate) fn replication(
        &self,
        slot: &str,
        publication: &str,
        status_interval: Duration,
    ) -> pgwire_replication::ReplicationConfig {
        let config = pgwire_replication::ReplicationConfig::new(
            self.host.clone(),
            self.user.clone(),
            self.password.clone(),
            self.dbname.clone(),
            slot.to_string(),
            publication.to_string(),
        )
        .with_port(self.port)
        .with_options(self.options.clone())
        .with_application_name("livecore-postgres")
        .with_status_interval(status_interval);
        #[cfg(feature = "tls")]
        let config = config.with_tls(self.tls.replication());
        config
    }

    /// Opens an SQL connection; its driver runs on the current runtime.
    pub(crate) async fn connect_sql(&self) -> PgResult<tokio_postgres::Client> {
        // The driver ends with the client; its error surfaces on the client's calls.
        #[cfg(feature = "tls")]
        if let Some(connector) = &self.connector {
            let (client, connection) = self.sql.connect(connector.clone()).await?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            return Ok(client);
        }
        let (client, connection) = self.sql.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hosts_options_are_kept_before_the_pinned_settings() {
        let own = Connection::parse(
            "host=localhost user=u options='-c statement_timeout=5000 -c TimeZone=Europe/Paris'",
        )
        .unwrap();
        let expected =
            format!("-c statement_timeout=5000 -c TimeZone=Europe/Paris {SESSION_SETTINGS}");
        assert_eq!(own.sql.get_options(), Some(expected.as_str()));
        assert_eq!(own.options, expected);
        // The pinned time zone comes last, so it is the one the session uses.
        assert!(expected.rfind("TimeZone=UTC") > expected.find("TimeZone=Europe/Paris"));
        let none = Connection::parse("postgres://u@localhost/db").unwrap();
        assert_eq!(none.sql.get_options(), Some(SESSION_SETTINGS));
        assert_eq!(none.options, SESSION_SETTINGS);
    }

    #[test]
    fn slot_names_leave_room_for_the_load_slots() {
        assert_eq!(MAX_SLOT_NAME, 32);
        let longest = "s".repeat(MAX_SLOT_NAME);
        assert_eq!(load_slot_name(&longest, u32::MAX, u64::MAX).len(), 63);
        let config =
            |slot: &str| SourceConfig::new("", slot, "p", vec![TableConfig::shared("public", "t")]);
        assert_eq!(config(&longest).validate(), Ok(()));
        match config(&format!("{longest}s")).validate() {
            Err(PgError::Config(reason)) => assert!(reason.contains("at most 32"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }
}
