//! Topic storage: the messages, the [`TopicLog`] trait a host implements to plug in its own
//! (durable) store, and [`MemoryLog`], the in-memory log with count and byte retention that
//! topics use by default.
//!
//! A topic has `N` partitions; each partition is an append-only sequence of messages
//! numbered by offsets `0, 1, 2, ...`. Retention removes the oldest messages, so a partition
//! holds the offsets `start..end`, where `end` is the offset the next message will get.

use std::collections::{HashMap, VecDeque};

use crate::config::MAX_TOPIC_PARTITIONS;
use crate::error::{LiveError, LiveResult};
use crate::sync::{lock, DataArc, Mutex};
use crate::types::change::ChangeType;
use crate::types::ids::{SeqId, TableId, UserId};
use crate::types::json;
use crate::types::value::{Row, Value};

/// What a message carries.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum TopicPayload {
    /// A row change fed by a topic route.
    Change(RowChange),
    /// Bytes published directly to the topic.
    Bytes(DataArc<[u8]>),
}

/// A row change as a topic route delivers it: the row (and, for updates, the old row) seen
/// through the route's projection.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct RowChange {
    /// The table the row belongs to.
    pub table_id: TableId,
    /// The change as the route's filter sees it, as for live queries: an update whose row
    /// entered the filter is an insert, one whose row left it a delete.
    pub change_type: ChangeType,
    /// The change as the engine published it.
    pub source_type: ChangeType,
    /// The user owning the row, on user-scoped tables.
    pub owner: Option<UserId>,
    /// The projected columns' names, in order.
    pub columns: DataArc<[DataArc<str>]>,
    /// The projected row as the route sees it, as for live queries: after the change for an
    /// insert or update, as it was for a delete (a deleted row, or an updated row that left
    /// the filter).
    pub row: Row,
    /// The projected row before the change, when the engine published an update.
    pub old_row: Option<Row>,
}

/// A message not yet appended: what livecore hands to [`TopicLog::append`].
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TopicRecord {
    /// The SeqId of the commit that produced it (for direct publishes, the one given).
    pub seq: SeqId,
    /// The manager clock's reading when it was published (ms).
    pub timestamp_ms: u64,
    /// The partitioning key: the key column's value, or the key of a direct publish.
    pub key: Option<Value>,
    /// The content.
    pub payload: TopicPayload,
}

/// A message in a topic partition.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TopicMessage {
    /// The partition it is in.
    pub partition: u32,
    /// Its offset in the partition.
    pub offset: u64,
    /// The SeqId of the commit that produced it.
    pub seq: SeqId,
    /// The manager clock's reading when it was published (ms).
    pub timestamp_ms: u64,
    /// The partitioning key, if any.
    pub key: Option<Value>,
    /// The content.
    pub payload: TopicPayload,
}

/// Fixed part of a message's accounted size, in bytes.
const MESSAGE_OVERHEAD: usize = 48;

impl TopicRecord {
    /// The message this record becomes at `offset` of `partition`.
    pub fn into_message(self, partition: u32, offset: u64) -> TopicMessage {
        TopicMessage {
            partition,
            offset,
            seq: self.seq,
            timestamp_ms: self.timestamp_ms,
            key: self.key,
            payload: self.payload,
        }
    }

    /// The size retention accounts for: see [`TopicMessage::size_bytes`].
    pub fn size_bytes(&self) -> usize {
        message_size(self.key.as_ref(), &self.payload)
    }
}

impl TopicMessage {
    /// The size retention accounts for this message, in bytes: 48 bytes of overhead, plus
    /// the key and every value of the payload (text and bytes by their length, every other
    /// value as 8 bytes), plus the table name for row changes.
    pub fn size_bytes(&self) -> usize {
        message_size(self.key.as_ref(), &self.payload)
    }

    /// The message as one JSON object:
    /// `{"partition":0,"offset":5,"seq":12,"timestamp_ms":..,"key":..,"change":{"op":"insert","source_op":"update","table":"chat.messages","row":{..},"old":{..}}}`
    /// for row changes (`owner` when the table is user-scoped, `old` when the engine
    /// published an update), and `"payload":"<base64>"` instead of `change` for direct
    /// publishes. Values follow [`crate::json`].
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(b"{\"partition\":");
        out.extend_from_slice(self.partition.to_string().as_bytes());
        out.extend_from_slice(b",\"offset\":");
        out.extend_from_slice(self.offset.to_string().as_bytes());
        out.extend_from_slice(b",\"seq\":");
        out.extend_from_slice(self.seq.0.to_string().as_bytes());
        out.extend_from_slice(b",\"timestamp_ms\":");
        out.extend_from_slice(self.timestamp_ms.to_string().as_bytes());
        out.extend_from_slice(b",\"key\":");
        json::write_value(&mut out, self.key.as_ref().unwrap_or(&Value::Null));
        match &self.payload {
            TopicPayload::Bytes(bytes) => {
                out.extend_from_slice(b",\"payload\":");
                json::write_value(&mut out, &Value::Bytes(bytes.clone()));
            }
            TopicPayload::Change(change) => {
                out.extend_from_slice(b",\"change\":{\"op\":");
                json::write_string(&mut out, change.change_type.as_str());
                out.extend_from_slice(b",\"source_op\":");
                json::write_string(&mut out, change.source_type.as_str());
                out.extend_from_slice(b",\"table\":");
                json::write_string(&mut out, &change.table_id.to_string());
                if let Some(owner) = &change.owner {
                    out.extend_from_slice(b",\"owner\":");
                    json::write_string(&mut out, owner.as_str());
                }
                out.extend_from_slice(b",\"row\":");
                write_row(&mut out, &change.columns, &change.row);
                if let Some(old_row) = &change.old_row {
                    out.extend_from_slice(b",\"old\":");
                    write_row(&mut out, &change.columns, old_row);
                }
                out.push(b'}');
            }
        }
        out.push(b'}');
        String::from_utf8(out).expect("the JSON writer emits UTF-8")
    }
}

fn write_row(out: &mut Vec<u8>, columns: &[DataArc<str>], row: &Row) {
    json::write_object(
        out,
        columns
            .iter()
            .zip(row.values())
            .map(|(name, value)| (&**name, value)),
    );
}

fn message_size(key: Option<&Value>, payload: &TopicPayload) -> usize {
    let key = key.map_or(0, Value::size_bytes);
    let payload = match payload {
        TopicPayload::Bytes(bytes) => bytes.len(),
        TopicPayload::Change(change) => {
            let table = change.table_id.namespace().len() + change.table_id.name().len();
            let rows = std::iter::once(&change.row)
                .chain(change.old_row.as_ref())
                .flat_map(|row| row.values())
                .map(Value::size_bytes)
                .sum::<usize>();
            table + rows
        }
    };
    MESSAGE_OVERHEAD + key + payload
}

/// The offsets a partition holds: `start..end`. `end` is the offset the next message gets;
/// the partition is empty when `start == end`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct PartitionBounds {
    /// The oldest retained offset.
    pub start: u64,
    /// The offset the next appended message will get.
    pub end: u64,
}

/// What a [`TopicLog`] can fail with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TopicLogError {
    /// A read asked for an offset outside `start..=end` (reading at `end` is not an
    /// error: it finds nothing yet).
    OutOfRange(PartitionBounds),
    /// The store failed; the text says how.
    Store(String),
}

impl std::fmt::Display for TopicLogError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TopicLogError::OutOfRange(bounds) => write!(
                f,
                "offset out of range: retained offsets are {}..{}",
                bounds.start, bounds.end
            ),
            TopicLogError::Store(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for TopicLogError {}

/// The storage of one topic: its partitions' messages and its consumer groups' committed
/// offsets. livecore uses [`MemoryLog`] unless the host plugs in its own store with
/// [`ConnectionsManager::create_topic_with_log`](crate::ConnectionsManager::create_topic_with_log).
///
/// What livecore relies on:
///
/// - every append goes through livecore (it learns of new messages from its own appends,
///   which is what wakes parked consumers);
/// - `append` is atomic and linearizable: offsets are assigned consecutively in the order
///   appends take effect, and the records are readable when it returns;
/// - `read` returns messages in offset order, starting at the offset asked for (or at the
///   first retained offset after it, if the store keeps gaps). A read below the end that
///   returns nothing makes livecore ask [`bounds`](Self::bounds): if the offset is below the
///   retained start, the group moves past the gap as for retention (reset policy, counted
///   in `skipped_by_retention` and the batch's retention skips); if the bounds say the
///   offset is held, the consume fails with a store error. Messages out of order, or of
///   another partition, are a store error; messages at or past livecore's end are dropped
///   (see [`read_until`](Self::read_until));
/// - methods are called from many threads at once, and `append` from the publish path, so
///   it should be quick (a durable store may batch and acknowledge asynchronously only if
///   it can still serve reads of what it acknowledged).
///
/// Offsets committed through [`commit_offset`](Self::commit_offset) are read back with
/// [`committed_offset`](Self::committed_offset) when a consumer group is created, so a
/// durable store lets groups resume where they were after a restart.
pub trait TopicLog: Send + Sync + 'static {
    /// The number of partitions the store holds; it must equal the topic's.
    fn partitions(&self) -> u32;

    /// Appends `records` (at least one) to `partition` and returns the offset given to the
    /// first; the rest follow consecutively. livecore is the log's only writer and checks
    /// the offset: one before the end of the appends that returned before this call
    /// started, or one that runs past the messages livecore has handed the log, is a store
    /// error (counted as a write failure), and the partition's end does not move.
    fn append(&self, partition: u32, records: Vec<TopicRecord>) -> Result<u64, TopicLogError>;

    /// Appends to `out` up to `max_messages` messages of `partition` from `offset` on.
    /// An offset below the retained start or past the end is
    /// [`TopicLogError::OutOfRange`]; reading at the end appends nothing.
    fn read(
        &self,
        partition: u32,
        offset: u64,
        max_messages: usize,
        out: &mut Vec<DataArc<TopicMessage>>,
    ) -> Result<(), TopicLogError>;

    /// [`read`](Self::read), told `end`: the offset after the last message whose append
    /// livecore has seen return, when the read starts. livecore never hands out a message
    /// at or past `end` from this read (it drops them: they are read again once livecore
    /// has seen their append), so a store may stop there. The default calls `read`.
    fn read_until(
        &self,
        partition: u32,
        offset: u64,
        end: u64,
        max_messages: usize,
        out: &mut Vec<DataArc<TopicMessage>>,
    ) -> Result<(), TopicLogError> {
        let _ = end;
        self.read(partition, offset, max_messages, out)
    }

    /// The offsets `partition` holds now.
    fn bounds(&self, partition: u32) -> Result<PartitionBounds, TopicLogError>;

    /// Records `group`'s committed offset on `partition`.
    fn commit_offset(&self, group: &str, partition: u32, offset: u64) -> Result<(), TopicLogError>;

    /// `group`'s committed offset on `partition`, if one was recorded.
    fn committed_offset(&self, group: &str, partition: u32) -> Result<Option<u64>, TopicLogError>;

    /// Forgets `group`'s committed offsets (the group was deleted).
    fn delete_group(&self, group: &str) -> Result<(), TopicLogError>;

    /// The topic was deleted: a store that outlives its logs forgets the topic's messages,
    /// its groups' committed offsets and anything else it keeps for it, so a topic created
    /// again under the name starts empty. Called once, after the topic has left its
    /// manager (a consume still running on it may meet a store error). The default, for
    /// logs whose data lives only as long as they do, does nothing.
    fn delete_topic(&self) -> Result<(), TopicLogError> {
        Ok(())
    }
}

/// How much each partition of a topic keeps. The oldest messages are removed once a
/// partition holds more than `max_messages` messages or more than `max_bytes` bytes (as
/// [`TopicMessage::size_bytes`] counts them: [`MemoryLog`] and the fjall log count alike,
/// so a topic keeps the same messages on either; a host's own store counts as it says);
/// the newest message is always kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Retention {
    /// Most messages a partition keeps.
    pub max_messages: u64,
    /// Most bytes a partition keeps.
    pub max_bytes: u64,
}

impl Default for Retention {
    /// 100,000 messages or 64 MiB per partition, whichever is reached first.
    fn default() -> Self {
        Self {
            max_messages: 100_000,
            max_bytes: 64 << 20,
        }
    }
}

struct MemoryPartition {
    /// The offset of `messages[0]`.
    start: u64,
    messages: VecDeque<DataArc<TopicMessage>>,
    bytes: u64,
}

/// The in-memory topic log: per partition, a queue of messages under a short lock, trimmed
/// by [`Retention`] on every append; committed offsets in a map.
pub struct MemoryLog {
    partitions: Box<[Mutex<MemoryPartition>]>,
    retention: Retention,
    offsets: Mutex<HashMap<(String, u32), u64>>,
}

impl MemoryLog {
    /// An empty log of `partitions` partitions: between 1 and
    /// [`MAX_TOPIC_PARTITIONS`](crate::MAX_TOPIC_PARTITIONS), [`LiveError::OutOfBounds`]
    /// otherwise (each partition is made now, so the bound keeps a call from asking for
    /// more memory than a host has).
    pub fn new(partitions: u32, retention: Retention) -> LiveResult<Self> {
        if partitions == 0 || partitions > MAX_TOPIC_PARTITIONS {
            return Err(LiveError::OutOfBounds {
                what: "topic log partitions",
                value: u64::from(partitions),
                min: 1,
                max: u64::from(MAX_TOPIC_PARTITIONS),
            });
        }
        Ok(Self {
            partitions: (0..partitions)
                .map(|_| {
                    Mutex::new(MemoryPartition {
                        start: 0,
                        messages: VecDeque::new(),
                        bytes: 0,
                    })
                })
                .collect(),
            retention,
            offsets: Mutex::new(HashMap::new()),
        })
    }

    fn partition(&self, partition: u32) -> Result<&Mutex<MemoryPartition>, TopicLogError> {
        self.partitions
            .get(partition as usize)
            .ok_or_else(|| TopicLogError::Store(format!("no partition {partition}")))
    }
}

impl TopicLog for MemoryLog {
    fn partitions(&self) -> u32 {
        self.partitions.len() as u32
    }

    fn append(&self, partition: u32, records: Vec<TopicRecord>) -> Result<u64, TopicLogError> {
        let mut log = lock(self.partition(partition)?);
        let first = log.start + log.messages.len() as u64;
        for (index, record) in records.into_iter().enumerate() {
            let message = record.into_message(partition, first + index as u64);
            log.bytes += message.size_bytes() as u64;
            log.messages.push_back(DataArc::new(message));
        }
        let retention = self.retention;
        while log.messages.len() > 1
            && (log.messages.len() as u64 > retention.max_messages
                || log.bytes > retention.max_bytes)
        {
            let oldest = log.messages.pop_front().expect("more than one message");
            log.bytes -= oldest.size_bytes() as u64;
            log.start += 1;
        }
        Ok(first)
    }

    fn read(
        &self,
        partition: u32,
        offset: u64,
        max_messages: usize,
        out: &mut Vec<DataArc<TopicMessage>>,
    ) -> Result<(), TopicLogError> {
        let log = lock(self.partition(partition)?);
        let end = log.start + log.messages.len() as u64;
        if offset < log.start || offset > end {
            return Err(TopicLogError::OutOfRange(PartitionBounds {
                start: log.start,
                end,
            }));
        }
        let skip = (offset - log.start) as usize;
        out.extend(log.messages.iter().skip(skip).take(max_messages).cloned());
        Ok(())
    }

    fn bounds(&self, partition: u32) -> Result<PartitionBounds, TopicLogError> {
        let log = lock(self.partition(partition)?);
        Ok(PartitionBounds {
            start: log.start,
            end: log.start + log.messages.len() as u64,
        })
    }

    fn commit_offset(&self, group: &str, partition: u32, offset: u64) -> Result<(), TopicLogError> {
        lock(&self.offsets).insert((group.to_string(), partition), offset);
        Ok(())
    }

    fn committed_offset(&self, group: &str, partition: u32) -> Result<Option<u64>, TopicLogError> {
        Ok(lock(&self.offsets)
            .get(&(group.to_string(), partition))
            .copied())
    }

    fn delete_group(&self, group: &str) -> Result<(), TopicLogError> {
        lock(&self.offsets).retain(|(name, _), _| name != group);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: u64, body: &str) -> TopicRecord {
        TopicRecord {
            seq: SeqId(seq),
            timestamp_ms: 0,
            key: None,
            payload: TopicPayload::Bytes(DataArc::from(body.as_bytes())),
        }
    }

    #[test]
    fn a_log_needs_between_one_and_the_most_partitions() {
        for partitions in [0, MAX_TOPIC_PARTITIONS + 1, u32::MAX] {
            assert!(matches!(
                MemoryLog::new(partitions, Retention::default()),
                Err(LiveError::OutOfBounds { value, .. }) if value == u64::from(partitions)
            ));
        }
        assert_eq!(
            MemoryLog::new(1, Retention::default())
                .unwrap()
                .partitions(),
            1
        );
    }

    #[test]
    fn count_retention_trims_the_oldest() {
        let log = MemoryLog::new(
            1,
            Retention {
                max_messages: 3,
                max_bytes: u64::MAX,
            },
        )
        .unwrap();
        for seq in 0..5 {
            assert_eq!(log.append(0, vec![record(seq, "x")]), Ok(seq));
        }
        assert_eq!(log.bounds(0), Ok(PartitionBounds { start: 2, end: 5 }));
        let mut out = Vec::new();
        log.read(0, 2, 10, &mut out).unwrap();
        let offsets: Vec<u64> = out.iter().map(|m| m.offset).collect();
        assert_eq!(offsets, [2, 3, 4]);
        assert_eq!(
            log.read(0, 1, 10, &mut out),
            Err(TopicLogError::OutOfRange(PartitionBounds {
                start: 2,
                end: 5
            }))
        );
        assert_eq!(
            log.read(0, 6, 10, &mut out),
            Err(TopicLogError::OutOfRange(PartitionBounds {
                start: 2,
                end: 5
            }))
        );
        out.clear();
        log.read(0, 5, 10, &mut out).unwrap();
        assert!(out.is_empty());
    }

    #[test]
    fn byte_retention_keeps_the_newest_message() {
        let size = record(0, "0123456789").size_bytes() as u64;
        let log = MemoryLog::new(
            2,
            Retention {
                max_messages: 100,
                max_bytes: 2 * size,
            },
        )
        .unwrap();
        for seq in 0..4 {
            log.append(1, vec![record(seq, "0123456789")]).unwrap();
        }
        assert_eq!(log.bounds(1), Ok(PartitionBounds { start: 2, end: 4 }));
        log.append(1, vec![record(9, &"y".repeat(1000))]).unwrap();
        assert_eq!(log.bounds(1), Ok(PartitionBounds { start: 4, end: 5 }));
        assert_eq!(log.bounds(0), Ok(PartitionBounds { start: 0, end: 0 }));
    }
}
