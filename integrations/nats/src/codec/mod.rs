//! The bytes this crate stores in JetStream: commits and schema changes in the commit
//! stream, live-query records and node heartbeats in key-value.
//!
//! Every message is framed the same way (one helper, `codec/frame.rs`), after the
//! approach of livecore's topic record codec: a magic, a format version, a kind, the body,
//! and a CRC-32 (IEEE) of everything before it. Lengths and counts are checked against
//! what is left, so damaged or foreign bytes give a typed [`CodecError`], never a wrong
//! value and never a panic. Layout of version 1 (*varint* is unsigned LEB128; signed
//! integers are zigzag-encoded first):
//!
//! ```text
//! magic      'L' 'N'
//! version    1 byte (1)
//! kind       1 byte: 1 commit, 2 schema change, 3 live-query record, 4 heartbeat
//! body       by kind, below
//! crc32      4 bytes, little-endian, over everything before it
//!
//! commit     seq varint, prev (0 | 1 varint: the SeqId of the commit before it),
//!            tables (varint count; each: namespace str, name str, schema version varint),
//!            changes (varint count; each: table index varint, change type byte 0/1/2,
//!            owner (0 | 1 str), row, old row (0 | 1 row))
//! schema     after (0 | 1 varint: the last commit before it), version varint,
//!            namespace str, name str, scope byte (0 user, 1 shared), columns (varint count, strs)
//! record     node varint, connection varint, subscription varint, namespace str, name str,
//!            user (0 | 1 str), query str, initial load byte, batch size varint,
//!            resume from (0 | 1 varint), status byte (0 loading, 1 live, 2 closed),
//!            created, last update, last heartbeat, delivered (varints)
//! heartbeat  node varint, wall clock ms varint, applied stream sequence varint,
//!            applied seq (0 | 1 varint), started ms varint
//!
//! row        varint count, values
//! value      tag byte: 0 NULL, 1 false, 2 true, 3 integer (zigzag varint), 4 float (8 bytes,
//!            little-endian bit pattern), 5 text (str), 6 bytes (varint length, bytes)
//! str        varint length, UTF-8
//! ```

use std::fmt;

use livecore::{
    ChangeNotification, ChangeType, ConnectionId, LiveQueryId, LiveQueryRecord, NodeId, QueryText,
    Row, SeqId, SubscriptionId, SubscriptionOptions, SubscriptionPhase, TableId, TableSchema,
    TableScope, UserId, Value, MAX_COMMIT_CHANGES,
};

mod frame;

pub use frame::FORMAT_VERSION;

const KIND_COMMIT: u8 = 1;
const KIND_SCHEMA: u8 = 2;
const KIND_RECORD: u8 = 3;
const KIND_HEARTBEAT: u8 = 4;

const TAG_NULL: u8 = 0;
const TAG_FALSE: u8 = 1;
const TAG_TRUE: u8 = 2;
const TAG_INT: u8 = 3;
const TAG_FLOAT: u8 = 4;
const TAG_TEXT: u8 = 5;
const TAG_BYTES: u8 = 6;

/// Why bytes could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodecError {
    /// The bytes end inside the field that starts at `at`.
    Truncated {
        /// Where the incomplete field starts.
        at: usize,
    },
    /// The bytes do not start with this crate's magic.
    BadMagic,
    /// A layout version this crate does not know.
    UnsupportedVersion(u8),
    /// The checksum does not match: the bytes were damaged.
    Checksum {
        /// The checksum in the message.
        stored: u32,
        /// The checksum of its content.
        computed: u32,
    },
    /// A message of another kind than the one expected here.
    UnexpectedKind {
        /// The kind expected.
        expected: &'static str,
        /// The kind byte found.
        found: u8,
    },
    /// A tag or flag byte has no meaning.
    InvalidTag {
        /// What the byte was for.
        what: &'static str,
        /// The byte.
        tag: u8,
        /// Where.
        at: usize,
    },
    /// A string is not UTF-8.
    InvalidUtf8 {
        /// Where it starts.
        at: usize,
    },
    /// A varint longer than 64 bits.
    VarintOverflow {
        /// Where it starts.
        at: usize,
    },
    /// A length or count larger than the rest of the message could hold, or than a limit.
    LengthTooLarge {
        /// Where it starts.
        at: usize,
        /// The value read.
        len: u64,
    },
    /// A change names a table index the commit's table list does not have.
    UnknownTableIndex {
        /// The index.
        index: u64,
        /// The tables listed.
        tables: usize,
    },
    /// Bytes follow the last field.
    TrailingBytes {
        /// Where they start.
        at: usize,
    },
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::Truncated { at } => write!(f, "truncated at byte {at}"),
            CodecError::BadMagic => f.write_str("not a livecore-nats message (bad magic)"),
            CodecError::UnsupportedVersion(version) => {
                write!(f, "unsupported format version {version}")
            }
            CodecError::Checksum { stored, computed } => write!(
                f,
                "checksum mismatch: stored {stored:#010x}, computed {computed:#010x}"
            ),
            CodecError::UnexpectedKind { expected, found } => {
                write!(f, "expected a {expected} message, found kind {found}")
            }
            CodecError::InvalidTag { what, tag, at } => {
                write!(f, "invalid {what} byte {tag} at byte {at}")
            }
            CodecError::InvalidUtf8 { at } => write!(f, "invalid UTF-8 at byte {at}"),
            CodecError::VarintOverflow { at } => write!(f, "varint overflows at byte {at}"),
            CodecError::LengthTooLarge { at, len } => {
                write!(
                    f,
                    "length {len} at byte {at} exceeds the message or a limit"
                )
            }
            CodecError::UnknownTableIndex { index, tables } => {
                write!(f, "change names table {index} of {tables}")
            }
            CodecError::TrailingBytes { at } => write!(f, "trailing bytes at byte {at}"),
        }
    }
}

impl std::error::Error for CodecError {}

/// One commit as the writer appends it.
#[derive(Clone, Debug, PartialEq)]
pub struct CommitMessage {
    /// The commit's SeqId.
    pub seq: SeqId,
    /// The SeqId of the commit the writer appended before it: a node checks the chain, so
    /// a missing commit is seen, and a resume knows whether the stream still covers a point.
    pub prev: Option<SeqId>,
    /// The schema version of each table the changes touch, as the writer knew them.
    pub schema_versions: Vec<(TableId, u64)>,
    /// The changes, in commit order.
    pub changes: Vec<ChangeNotification>,
}

/// A table's new schema, effective after commit `after`.
#[derive(Clone, Debug, PartialEq)]
pub struct SchemaMessage {
    /// The last commit appended before the change (none before the first commit).
    pub after: Option<SeqId>,
    /// The table's schema version: 1 for the first, then increasing.
    pub version: u64,
    /// The schema.
    pub schema: TableSchema,
}

/// A message of the commit stream.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamEntry {
    /// A commit.
    Commit(CommitMessage),
    /// A schema change.
    Schema(SchemaMessage),
}

impl StreamEntry {
    /// Where the entry sits in SeqId order: a commit's SeqId, a schema change's `after`.
    /// Non-decreasing along the stream.
    pub fn position(&self) -> u64 {
        match self {
            StreamEntry::Commit(commit) => commit.seq.0,
            StreamEntry::Schema(schema) => schema.after.map_or(0, |seq| seq.0),
        }
    }
}

/// A node's sign of life in key-value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// The node.
    pub node_id: NodeId,
    /// Its wall clock when it wrote this (ms since the Unix epoch).
    pub wall_ms: u64,
    /// The last stream sequence it applied.
    pub applied_stream_seq: u64,
    /// The last SeqId it applied.
    pub applied_seq: Option<SeqId>,
    /// When its bridge started (wall clock ms).
    pub started_ms: u64,
}

// ---- encoding ----

struct Writer(Vec<u8>);

impl Writer {
    fn new(kind: u8) -> Self {
        Self(frame::begin(kind))
    }

    fn finish(self) -> Vec<u8> {
        frame::seal(self.0)
    }

    fn byte(&mut self, byte: u8) {
        self.0.push(byte);
    }

    fn varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.0.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.0.push(value as u8);
    }

    fn opt_varint(&mut self, value: Option<u64>) {
        match value {
            None => self.byte(0),
            Some(value) => {
                self.byte(1);
                self.varint(value);
            }
        }
    }

    fn bytes(&mut self, bytes: &[u8]) {
        self.varint(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    fn str(&mut self, text: &str) {
        self.bytes(text.as_bytes());
    }

    fn opt_str(&mut self, text: Option<&str>) {
        match text {
            None => self.byte(0),
            Some(text) => {
                self.byte(1);
                self.str(text);
            }
        }
    }

    fn value(&mut self, value: &Value) {
        match value {
            Value::Null => self.byte(TAG_NULL),
            Value::Bool(false) => self.byte(TAG_FALSE),
            Value::Bool(true) => self.byte(TAG_TRUE),
            Value::Int(int) => {
                self.byte(TAG_INT);
                self.varint(((*int << 1) ^ (*int >> 63)) as u64);
            }
            Value::Float(float) => {
                self.byte(TAG_FLOAT);
                self.0.extend_from_slice(&float.to_bits().to_le_bytes());
            }
            Value::Text(text) => {
                self.byte(TAG_TEXT);
                self.str(text);
            }
            Value::Bytes(bytes) => {
                self.byte(TAG_BYTES);
                self.bytes(bytes);
            }
        }
    }

    fn row(&mut self, row: &Row) {
        self.varint(row.len() as u64);
        for value in row.values() {
            self.value(value);
        }
    }

    fn table(&mut self, table: &TableId) {
        self.str(table.namespace());
        self.str(table.name());
    }
}

fn change_type_byte(change_type: ChangeType) -> u8 {
    match change_type {
        ChangeType::Insert => 0,
        ChangeType::Update => 1,
        ChangeType::Delete => 2,
    }
}

/// Encodes a commit. The table list is built from the changes; each table's schema version
/// comes from `version_of` (the writer's record of what it appended).
pub fn encode_commit(
    seq: SeqId,
    prev: Option<SeqId>,
    changes: &[ChangeNotification],
    mut version_of: impl FnMut(&TableId) -> u64,
) -> Vec<u8> {
    let mut tables: Vec<&TableId> = Vec::new();
    let mut indexes = Vec::with_capacity(changes.len());
    for change in changes {
        let index = match tables.iter().position(|table| **table == change.table_id) {
            Some(index) => index,
            None => {
                tables.push(&change.table_id);
                tables.len() - 1
            }
        };
        indexes.push(index);
    }
    let mut out = Writer::new(KIND_COMMIT);
    out.varint(seq.0);
    out.opt_varint(prev.map(|seq| seq.0));
    out.varint(tables.len() as u64);
    for table in &tables {
        out.table(table);
        out.varint(version_of(table));
    }
    out.varint(changes.len() as u64);
    for (change, index) in changes.iter().zip(indexes) {
        out.varint(index as u64);
        out.byte(change_type_byte(change.change_type));
        out.opt_str(change.owner.as_ref().map(UserId::as_str));
        out.row(&change.row);
        match &change.old_row {
            None => out.byte(0),
            Some(row) => {
                out.byte(1);
                out.row(row);
            }
        }
    }
    out.finish()
}

/// Encodes a schema change.
pub fn encode_schema(message: &SchemaMessage) -> Vec<u8> {
    let mut out = Writer::new(KIND_SCHEMA);
    out.opt_varint(message.after.map(|seq| seq.0));
    out.varint(message.version);
    out.table(&message.schema.table_id);
    out.byte(match message.schema.scope {
        TableScope::User => 0,
        TableScope::Shared => 1,
    });
    out.varint(message.schema.columns.len() as u64);
    for column in &message.schema.columns {
        out.str(&column.name);
    }
    out.finish()
}

/// Encodes a live-query record.
pub fn encode_record(record: &LiveQueryRecord) -> Vec<u8> {
    let mut out = Writer::new(KIND_RECORD);
    out.varint(record.node_id.0);
    out.varint(record.live_query_id.connection_id.0);
    out.varint(record.live_query_id.subscription_id.0);
    out.table(&record.table_id);
    out.opt_str(record.user_id.as_ref().map(UserId::as_str));
    out.str(&record.query.to_sql());
    out.byte(u8::from(record.options.initial_load));
    out.varint(record.options.batch_size as u64);
    out.opt_varint(record.options.resume_from.map(|seq| seq.0));
    out.byte(match record.status {
        SubscriptionPhase::Loading => 0,
        SubscriptionPhase::Live => 1,
        SubscriptionPhase::Closed => 2,
    });
    out.varint(record.created_at_ms);
    out.varint(record.last_update_ms);
    out.varint(record.last_heartbeat_ms);
    out.varint(record.changes_delivered);
    out.finish()
}

/// Encodes a heartbeat.
pub fn encode_heartbeat(heartbeat: &Heartbeat) -> Vec<u8> {
    let mut out = Writer::new(KIND_HEARTBEAT);
    out.varint(heartbeat.node_id.0);
    out.varint(heartbeat.wall_ms);
    out.varint(heartbeat.applied_stream_seq);
    out.opt_varint(heartbeat.applied_seq.map(|seq| seq.0));
    out.varint(heartbeat.started_ms);
    out.finish()
}

// ---- decoding ----

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// Checks the frame and returns a reader over the body, with the kind byte.
    fn open(bytes: &'a [u8]) -> Result<(Self, u8), CodecError> {
        let opened = frame::open(bytes)?;
        Ok((
            Self {
                bytes: opened.content,
                at: opened.body_at,
            },
            opened.kind,
        ))
    }

    fn done(&self) -> Result<(), CodecError> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(CodecError::TrailingBytes { at: self.at })
        }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    fn byte(&mut self) -> Result<u8, CodecError> {
        let byte = *self
            .bytes
            .get(self.at)
            .ok_or(CodecError::Truncated { at: self.at })?;
        self.at += 1;
        Ok(byte)
    }

    fn flag(&mut self, what: &'static str) -> Result<bool, CodecError> {
        let at = self.at;
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            tag => Err(CodecError::InvalidTag { what, tag, at }),
        }
    }

    fn varint(&mut self) -> Result<u64, CodecError> {
        let start = self.at;
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self
                .byte()
                .map_err(|_| CodecError::Truncated { at: start })?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(CodecError::VarintOverflow { at: start });
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(CodecError::VarintOverflow { at: start })
    }

    fn opt_varint(&mut self, what: &'static str) -> Result<Option<u64>, CodecError> {
        if self.flag(what)? {
            Ok(Some(self.varint()?))
        } else {
            Ok(None)
        }
    }

    /// A count of items that take at least `min_item` bytes each, checked against what is
    /// left and against `max`.
    fn count(&mut self, min_item: usize, max: usize) -> Result<usize, CodecError> {
        let at = self.at;
        let len = self.varint()?;
        if len > max as u64 || len.saturating_mul(min_item as u64) > self.remaining() as u64 {
            return Err(CodecError::LengthTooLarge { at, len });
        }
        Ok(len as usize)
    }

    fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let len = self.count(1, usize::MAX)?;
        let slice = &self.bytes[self.at..self.at + len];
        self.at += len;
        Ok(slice)
    }

    fn str(&mut self) -> Result<&'a str, CodecError> {
        let at = self.at;
        std::str::from_utf8(self.bytes()?).map_err(|_| CodecError::InvalidUtf8 { at })
    }

    fn opt_str(&mut self, what: &'static str) -> Result<Option<&'a str>, CodecError> {
        if self.flag(what)? {
            Ok(Some(self.str()?))
        } else {
            Ok(None)
        }
    }

    fn value(&mut self) -> Result<Value, CodecError> {
        let at = self.at;
        Ok(match self.byte()? {
            TAG_NULL => Value::Null,
            TAG_FALSE => Value::Bool(false),
            TAG_TRUE => Value::Bool(true),
            TAG_INT => {
                let raw = self.varint()?;
                Value::Int(((raw >> 1) as i64) ^ -((raw & 1) as i64))
            }
            TAG_FLOAT => {
                if self.remaining() < 8 {
                    return Err(CodecError::Truncated { at: self.at });
                }
                let bits = u64::from_le_bytes(
                    self.bytes[self.at..self.at + 8]
                        .try_into()
                        .expect("eight bytes"),
                );
                self.at += 8;
                Value::Float(f64::from_bits(bits))
            }
            TAG_TEXT => Value::text(self.str()?),
            TAG_BYTES => Value::bytes(self.bytes()?),
            tag => {
                return Err(CodecError::InvalidTag {
                    what: "value",
                    tag,
                    at,
                })
            }
        })
    }

    fn row(&mut self) -> Result<Row, CodecError> {
        let len = self.count(1, livecore::MAX_COLUMNS)?;
        let mut values = Vec::with_capacity(len);
        for _ in 0..len {
            values.push(self.value()?);
        }
        Ok(Row::new(values))
    }

    fn table(&mut self) -> Result<TableId, CodecError> {
        let namespace = self.str()?;
        let name = self.str()?;
        Ok(TableId::new(namespace, name))
    }
}

fn kind_name(kind: u8) -> &'static str {
    match kind {
        KIND_COMMIT => "commit",
        KIND_SCHEMA => "schema",
        KIND_RECORD => "record",
        KIND_HEARTBEAT => "heartbeat",
        _ => "unknown",
    }
}

/// Decodes a message of the commit stream.
pub fn decode_stream_entry(bytes: &[u8]) -> Result<StreamEntry, CodecError> {
    let (mut reader, kind) = Reader::open(bytes)?;
    let entry = match kind {
        KIND_COMMIT => StreamEntry::Commit(decode_commit_body(&mut reader)?),
        KIND_SCHEMA => StreamEntry::Schema(decode_schema_body(&mut reader)?),
        found => {
            return Err(CodecError::UnexpectedKind {
                expected: "commit or schema",
                found,
            })
        }
    };
    reader.done()?;
    Ok(entry)
}

fn decode_commit_body(reader: &mut Reader<'_>) -> Result<CommitMessage, CodecError> {
    let seq = SeqId(reader.varint()?);
    let prev = reader.opt_varint("prev flag")?.map(SeqId);
    // A table takes at least three bytes (two empty strings and a version).
    let table_count = reader.count(3, MAX_COMMIT_CHANGES)?;
    let mut tables = Vec::with_capacity(table_count);
    for _ in 0..table_count {
        let table = reader.table()?;
        let version = reader.varint()?;
        tables.push((table, version));
    }
    // A change takes at least four bytes (index, type, owner flag, empty row).
    let change_count = reader.count(4, MAX_COMMIT_CHANGES)?;
    let mut changes = Vec::with_capacity(change_count);
    for _ in 0..change_count {
        let index = reader.varint()?;
        let table = tables
            .get(index as usize)
            .ok_or(CodecError::UnknownTableIndex {
                index,
                tables: tables.len(),
            })?
            .0
            .clone();
        let at = reader.at;
        let change_type = match reader.byte()? {
            0 => ChangeType::Insert,
            1 => ChangeType::Update,
            2 => ChangeType::Delete,
            tag => {
                return Err(CodecError::InvalidTag {
                    what: "change type",
                    tag,
                    at,
                })
            }
        };
        let owner = reader.opt_str("owner flag")?.map(UserId::from);
        let row = reader.row()?;
        let old_row = if reader.flag("old row flag")? {
            Some(reader.row()?)
        } else {
            None
        };
        changes.push(ChangeNotification {
            table_id: table,
            change_type,
            row,
            old_row,
            owner,
        });
    }
    Ok(CommitMessage {
        seq,
        prev,
        schema_versions: tables,
        changes,
    })
}

fn decode_schema_body(reader: &mut Reader<'_>) -> Result<SchemaMessage, CodecError> {
    let after = reader.opt_varint("after flag")?.map(SeqId);
    let version = reader.varint()?;
    let table = reader.table()?;
    let at = reader.at;
    let scope = match reader.byte()? {
        0 => TableScope::User,
        1 => TableScope::Shared,
        tag => {
            return Err(CodecError::InvalidTag {
                what: "scope",
                tag,
                at,
            })
        }
    };
    let count = reader.count(1, livecore::MAX_COLUMNS)?;
    let mut columns = Vec::with_capacity(count);
    for _ in 0..count {
        columns.push(reader.str()?);
    }
    Ok(SchemaMessage {
        after,
        version,
        schema: TableSchema::new(table, scope, columns),
    })
}

fn expect_kind(kind: u8, expected: u8) -> Result<(), CodecError> {
    if kind == expected {
        Ok(())
    } else {
        Err(CodecError::UnexpectedKind {
            expected: kind_name(expected),
            found: kind,
        })
    }
}

/// Decodes a live-query record.
pub fn decode_record(bytes: &[u8]) -> Result<LiveQueryRecord, CodecError> {
    let (mut reader, kind) = Reader::open(bytes)?;
    expect_kind(kind, KIND_RECORD)?;
    let node_id = NodeId(reader.varint()?);
    let connection_id = ConnectionId(reader.varint()?);
    let subscription_id = SubscriptionId(reader.varint()?);
    let table_id = reader.table()?;
    let user_id = reader.opt_str("user flag")?.map(UserId::from);
    let query = QueryText::from(reader.str()?);
    let initial_load = reader.flag("initial load")?;
    let batch_size = reader.varint()?;
    let resume_from = reader.opt_varint("resume flag")?.map(SeqId);
    let at = reader.at;
    let status = match reader.byte()? {
        0 => SubscriptionPhase::Loading,
        1 => SubscriptionPhase::Live,
        2 => SubscriptionPhase::Closed,
        tag => {
            return Err(CodecError::InvalidTag {
                what: "status",
                tag,
                at,
            })
        }
    };
    let record = LiveQueryRecord {
        live_query_id: LiveQueryId::new(connection_id, subscription_id),
        connection_id,
        subscription_id,
        table_id,
        user_id,
        query,
        options: SubscriptionOptions {
            initial_load,
            batch_size: usize::try_from(batch_size).unwrap_or(usize::MAX),
            resume_from,
        },
        node_id,
        status,
        created_at_ms: reader.varint()?,
        last_update_ms: reader.varint()?,
        last_heartbeat_ms: reader.varint()?,
        changes_delivered: reader.varint()?,
    };
    reader.done()?;
    Ok(record)
}

/// Decodes a heartbeat.
pub fn decode_heartbeat(bytes: &[u8]) -> Result<Heartbeat, CodecError> {
    let (mut reader, kind) = Reader::open(bytes)?;
    expect_kind(kind, KIND_HEARTBEAT)?;
    let heartbeat = Heartbeat {
        node_id: NodeId(reader.varint()?),
        wall_ms: reader.varint()?,
        applied_stream_seq: reader.varint()?,
        applied_seq: reader.opt_varint("applied flag")?.map(SeqId),
        started_ms: reader.varint()?,
    };
    reader.done()?;
    Ok(heartbeat)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TableId {
        TableId::new("chat", "messages")
    }

    fn sample_changes() -> Vec<ChangeNotification> {
        let other = TableId::new("chat", "rooms");
        vec![
            ChangeNotification::insert(
                table(),
                Row::new(vec![
                    Value::Int(-5),
                    Value::Float(f64::NAN),
                    Value::text("héllo"),
                    Value::bytes(&[0, 255]),
                    Value::Null,
                    Value::Bool(true),
                ]),
            )
            .owned_by("alice"),
            ChangeNotification::update(
                other.clone(),
                Row::new(vec![Value::Int(i64::MIN)]),
                Row::new(vec![Value::Int(i64::MAX)]),
            ),
            ChangeNotification::delete(other, Row::new(vec![Value::Bool(false)])),
        ]
    }

    #[test]
    fn commits_round_trip_with_versions_per_table() {
        let changes = sample_changes();
        let bytes = encode_commit(SeqId(42), Some(SeqId(40)), &changes, |table| {
            if table.name() == "rooms" {
                3
            } else {
                1
            }
        });
        let StreamEntry::Commit(commit) = decode_stream_entry(&bytes).unwrap() else {
            panic!("a commit decodes as a commit");
        };
        assert_eq!(commit.seq, SeqId(42));
        assert_eq!(commit.prev, Some(SeqId(40)));
        assert_eq!(
            commit.schema_versions,
            vec![(table(), 1), (TableId::new("chat", "rooms"), 3)]
        );
        assert_eq!(commit.changes.len(), 3);
        // NaN is not equal to itself under PartialEq of f64, so compare its bits.
        let Value::Float(nan) = commit.changes[0].row.value(1) else {
            panic!("float survives");
        };
        assert!(nan.is_nan());
        assert_eq!(commit.changes[0].row.value(0), &Value::Int(-5));
        assert_eq!(commit.changes[0].row.value(2), &Value::text("héllo"));
        assert_eq!(commit.changes[0].owner, Some(UserId::from("alice")));
        assert_eq!(commit.changes[1], changes[1]);
        assert_eq!(commit.changes[2], changes[2]);
    }

    #[test]
    fn schema_records_and_heartbeats_round_trip() {
        let schema = SchemaMessage {
            after: Some(SeqId(9)),
            version: 2,
            schema: TableSchema::new(table(), TableScope::User, ["id", "room", "body"]),
        };
        assert_eq!(
            decode_stream_entry(&encode_schema(&schema)).unwrap(),
            StreamEntry::Schema(schema)
        );
        let heartbeat = Heartbeat {
            node_id: NodeId(3),
            wall_ms: 1_700_000_000_000,
            applied_stream_seq: 77,
            applied_seq: Some(SeqId(70)),
            started_ms: 5,
        };
        assert_eq!(
            decode_heartbeat(&encode_heartbeat(&heartbeat)).unwrap(),
            heartbeat
        );
        let record = LiveQueryRecord {
            live_query_id: LiveQueryId::new(ConnectionId(4), SubscriptionId(8)),
            connection_id: ConnectionId(4),
            subscription_id: SubscriptionId(8),
            table_id: table(),
            user_id: Some(UserId::from("bob")),
            query: QueryText::from("SELECT * FROM chat.messages WHERE room = 7"),
            options: SubscriptionOptions::resume_from(SeqId(12)),
            node_id: NodeId(2),
            status: SubscriptionPhase::Live,
            created_at_ms: 1,
            last_update_ms: 2,
            last_heartbeat_ms: 3,
            changes_delivered: 4,
        };
        assert_eq!(decode_record(&encode_record(&record)).unwrap(), record);
        assert!(matches!(
            decode_record(&encode_heartbeat(&heartbeat)),
            Err(CodecError::UnexpectedKind { found: 4, .. })
        ));
    }

    #[test]
    fn every_flipped_bit_and_every_truncation_is_a_typed_error() {
        let bytes = encode_commit(SeqId(1), None, &sample_changes(), |_| 1);
        for position in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[position] ^= 1 << bit;
                assert!(
                    decode_stream_entry(&damaged).is_err(),
                    "bit {bit} of byte {position} flipped went unnoticed"
                );
            }
        }
        for len in 0..bytes.len() {
            assert!(decode_stream_entry(&bytes[..len]).is_err());
        }
    }

    #[test]
    fn foreign_versions_and_lying_lengths_are_refused() {
        let mut bytes = encode_commit(SeqId(1), None, &sample_changes(), |_| 1);
        bytes[2] = 9;
        assert_eq!(
            decode_stream_entry(&bytes),
            Err(CodecError::UnsupportedVersion(9))
        );
        assert_eq!(
            decode_stream_entry(b"{\"json\":1}"),
            Err(CodecError::BadMagic)
        );
        // A well-framed message whose change count claims more than it holds.
        let mut out = Writer::new(KIND_COMMIT);
        out.varint(1);
        out.byte(0);
        out.varint(0);
        out.varint(u64::MAX);
        assert!(matches!(
            decode_stream_entry(&out.finish()),
            Err(CodecError::LengthTooLarge { .. })
        ));
        // A change naming a table the commit does not list.
        let mut out = Writer::new(KIND_COMMIT);
        out.varint(1);
        out.byte(0);
        out.varint(0);
        out.varint(1);
        out.varint(5);
        out.byte(0);
        out.byte(0);
        out.varint(0);
        out.byte(0);
        assert_eq!(
            decode_stream_entry(&out.finish()),
            Err(CodecError::UnknownTableIndex {
                index: 5,
                tables: 0
            })
        );
    }
}
