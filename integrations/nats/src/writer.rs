//! The engine's side: appending commits and schema changes to the commit stream.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, kv, message::PublishMessage, stream};
use bytes::Bytes;
use livecore::{ChangeNotification, SeqId, TableId, TableSchema, MAX_COMMIT_CHANGES};

use crate::cluster::{
    connect, ensure_bucket, ensure_stream, jetstream, read_prefix, schema_key, schema_prefix,
};
use crate::codec::{self, SchemaMessage, StreamEntry};
use crate::config::{ConnectionConfig, StreamConfig};
use crate::error::{BridgeError, NatsResult};

/// Attempts per append before the error is returned (a server election takes a few).
const APPEND_ATTEMPTS: u32 = 20;

/// Where an append landed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// Its stream sequence.
    pub stream_seq: u64,
    /// True when JetStream already had a message with this id: stored once.
    pub duplicate: bool,
}

/// Appends the engine's commits, in SeqId order, to the replicated commit stream. One
/// writer per stream: the engine's commit order is the stream's order.
///
/// Each message carries the id `c-<seq>` (schema changes `s-<table>-<version>`), so an
/// append retried after a lost acknowledgement is stored once (within the stream's
/// duplicate window); an append not acknowledged is retried with the same id.
pub struct CommitWriter {
    js: jetstream::Context,
    stream: stream::Stream,
    schemas: kv::Store,
    subject: String,
    prev: Option<SeqId>,
    versions: HashMap<TableId, u64>,
}

impl CommitWriter {
    /// Connects, creates the stream and the schema bucket when missing, and picks up
    /// where the stream ends (the last SeqId, the schema versions).
    pub async fn connect(
        connection: &ConnectionConfig,
        config: &StreamConfig,
    ) -> Result<Self, BridgeError> {
        let client = connect(connection).await?;
        let js = jetstream(client, connection);
        let mut stream = ensure_stream(&js, config).await?;
        let schemas = ensure_bucket(&js, config, &config.schema_bucket).await?;
        let info = stream.info().await.nats("reading stream info")?.clone();
        let mut prev = None;
        if info.state.messages > 0 {
            let last = stream
                .get_raw_message(info.state.last_sequence)
                .await
                .nats("reading the stream's last message")?;
            prev = match codec::decode_stream_entry(&last.payload) {
                Ok(StreamEntry::Commit(commit)) => Some(commit.seq),
                Ok(StreamEntry::Schema(schema)) => schema.after,
                Err(error) => {
                    return Err(BridgeError::Decode {
                        stream_seq: info.state.last_sequence,
                        error,
                    })
                }
            };
        }
        let mut versions = HashMap::new();
        for (key, value) in
            read_prefix(&js, &schemas, "schema.", connection.request_timeout).await?
        {
            let message = match codec::decode_stream_entry(&value) {
                Ok(StreamEntry::Schema(message)) => message,
                Ok(_) => continue,
                Err(error) => {
                    return Err(BridgeError::Decode {
                        stream_seq: 0,
                        error,
                    })
                }
            };
            debug_assert!(key.starts_with(&schema_prefix(&message.schema.table_id)));
            let version = versions.entry(message.schema.table_id).or_insert(0);
            *version = (*version).max(message.version);
        }
        Ok(Self {
            js,
            stream,
            schemas,
            subject: config.subject.clone(),
            prev,
            versions,
        })
    }

    /// The SeqId of the last commit appended.
    pub fn last_seq(&self) -> Option<SeqId> {
        self.prev
    }

    /// A table's current schema version (0: never appended).
    pub fn schema_version(&self, table: &TableId) -> u64 {
        self.versions.get(table).copied().unwrap_or(0)
    }

    /// The message id of commit `seq`.
    pub fn commit_message_id(seq: SeqId) -> String {
        format!("c-{}", seq.0)
    }

    /// Appends a table's new schema (its first, or an ALTER): every node registers it at
    /// this point of the stream. It is also kept by version in the schema bucket, first,
    /// so a node that starts after this point finds it. Returns the version given.
    pub async fn append_schema(
        &mut self,
        schema: TableSchema,
    ) -> Result<(u64, Appended), BridgeError> {
        schema.validate()?;
        let version = self.schema_version(&schema.table_id) + 1;
        let message = SchemaMessage {
            after: self.prev,
            version,
            schema,
        };
        let bytes = Bytes::from(codec::encode_schema(&message));
        let table = message.schema.table_id;
        self.schemas
            .put(schema_key(&table, version), bytes.clone())
            .await
            .nats("storing a schema version")?;
        let id = format!(
            "s-{}-{}-{version}",
            crate::cluster::hex(table.namespace()),
            crate::cluster::hex(table.name())
        );
        let appended = self.append_bytes(&id, bytes).await?;
        self.versions.insert(table, version);
        Ok((version, appended))
    }

    /// Encodes commit `seq` as [`append_commit`](Self::append_commit) would, without
    /// appending it.
    pub fn encode_commit(&self, seq: SeqId, changes: &[ChangeNotification]) -> Bytes {
        Bytes::from(codec::encode_commit(seq, self.prev, changes, |table| {
            self.schema_version(table)
        }))
    }

    /// Appends one commit and waits for JetStream to acknowledge it (stored on a majority
    /// of the replicas). `seq` must be above the last appended; the changes must name
    /// tables whose schema was appended.
    pub async fn append_commit(
        &mut self,
        seq: SeqId,
        changes: &[ChangeNotification],
    ) -> Result<Appended, BridgeError> {
        if let Some(last) = self.prev {
            if seq <= last {
                return Err(BridgeError::OutOfOrder { seq, last });
            }
        }
        if changes.len() > MAX_COMMIT_CHANGES {
            return Err(livecore::LiveError::CommitTooLarge {
                changes: changes.len(),
                max: MAX_COMMIT_CHANGES,
            }
            .into());
        }
        for change in changes {
            if self.schema_version(&change.table_id) == 0 {
                return Err(livecore::LiveError::UnknownTable(change.table_id.clone()).into());
            }
        }
        let bytes = self.encode_commit(seq, changes);
        let appended = self
            .append_bytes(&Self::commit_message_id(seq), bytes)
            .await?;
        self.prev = Some(seq);
        Ok(appended)
    }

    /// Appends prepared bytes under a message id, retrying (same id) until acknowledged.
    /// Public so a host can re-send what it appended before a crash; a second message with
    /// an id JetStream remembers is acknowledged as a duplicate and stored once.
    pub async fn append_bytes(&self, id: &str, bytes: Bytes) -> Result<Appended, BridgeError> {
        let mut last_error = None;
        for attempt in 0..APPEND_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let sent = self
                .js
                .send_publish(
                    self.subject.clone(),
                    PublishMessage::build()
                        .payload(bytes.clone())
                        .message_id(id),
                )
                .await;
            let ack = match sent {
                Ok(future) => future.await,
                Err(error) => {
                    last_error = Some(error.to_string());
                    continue;
                }
            };
            match ack {
                Ok(ack) => {
                    return Ok(Appended {
                        stream_seq: ack.sequence,
                        duplicate: ack.duplicate,
                    })
                }
                Err(error) => last_error = Some(error.to_string()),
            }
        }
        Err(BridgeError::Nats {
            what: "appending to the commit stream",
            detail: last_error.unwrap_or_default(),
        })
    }

    /// The stream, for inspection.
    pub fn stream(&self) -> &stream::Stream {
        &self.stream
    }
}

pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((50u64 << attempt.min(5)).min(1000))
}
