//! A durable [`TopicLog`] on fjall, an embedded LSM key-value store written in Rust
//! (feature `fjall`).
//!
//! # Packaging
//!
//! A cargo feature of the core crate, off by default, rather than an `integrations/` crate:
//! the log implements the core's own trait with the core's record codec (the same
//! versioned, CRC-checked blobs the C ABI's host stores receive), so it needs nothing an
//! integration would add, and a feature lets the one C library (cargo-c included) carry it
//! when built with `--features fjall`, instead of a second shared library and header. The
//! default build links no storage engine.
//!
//! # Layout
//!
//! One [`FjallStore`] (a fjall keyspace in a directory) holds any number of topics. A
//! message is one key, `topic | partition | offset` (big-endian, so keys sort by offset),
//! whose value is the record's blob; an append of several records, with the retention
//! trimming it causes, is one atomic fjall batch. A group's committed offset is one key
//! `topic | group | partition`. On open, each partition's retained range is found by a
//! scan; a partition whose offsets are not contiguous is refused as damaged.
//!
//! # Sync policy
//!
//! [`FjallSync`] says when an append (or a commit) is acknowledged — when
//! [`TopicLog::append`] returns, and with it the publish that fed the topic; from then on
//! consumers can read the message. Each append is one fjall write batch: the records
//! livecore appends in one call (every record one `publish_commit` routes to one partition
//! of the topic, or the message of one `publish_to_topic`) with the retention trimming
//! they cause, recovered whole or not at all. A commit is one write.
//!
//! - [`FjallSync::EveryAppend`] (per batch): fjall's journal is fsynced before each append
//!   and each commit returns. Nothing acknowledged is lost, not even on power loss or a
//!   kernel crash. A publish waits for one fsync per durable partition it feeds, and each
//!   commit for one.
//! - [`FjallSync::Interval`]: before each append and commit returns, its batch is written
//!   to the operating system (a `write` into the page cache, no fsync); a background thread
//!   of fjall's fsyncs the journal every interval. A crash of the process (SIGKILL, panic,
//!   abort) loses nothing acknowledged: the page cache belongs to the kernel. A power loss
//!   or kernel crash may lose the appends and commits acknowledged in the last interval
//!   (a group then resumes from an earlier offset: what it had committed is handed out
//!   again, at least once).
//!
//! Under `Interval` a publish does not wait for an fsync, but it is not free of the disk:
//! each append still makes a `write` system call (normally a copy into the page cache,
//! though the kernel may block it while too many dirty pages wait for write-back); fjall
//! holds its journal lock while the background fsync runs, so an append arriving then
//! waits for that fsync (at most one per interval); and under either policy fjall slows or
//! halts writes for a while (sleeps of 10 to 500 ms, repeated until it catches up) when
//! its journals, write buffers or level-0 segments grow faster than its background
//! flushes and compactions retire them.
//!
//! There is no third policy syncing once for several appends (say every partition a
//! `publish_commit` feeds, or publishes of several threads at once): livecore's
//! [`TopicLog`] contract acknowledges an append when it returns — its records are readable
//! and consumers are woken then — so a sync shared with later appends would let a
//! consumer read and commit a message a power loss could still take back.
//! `EveryAppend` already syncs once per batch livecore writes; a host that wants fewer
//! fsyncs bounds its loss by time with `Interval` instead.
//!
//! Reads check every blob's CRC-32: a damaged record is a store error, never a wrong
//! message.
//!
//! # One opening per directory
//!
//! fjall does not lock its directory, and two keyspaces writing one directory would damage
//! it; so a process opens a directory once at a time: [`FjallStore::open`] refuses a
//! directory this process already holds open (until every handle on that store is
//! dropped). Another process opening the same directory at the same time is the host's
//! to prevent.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fjall::{Batch, Config, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};

use crate::config::MAX_TOPIC_PARTITIONS;
use crate::sync::{lock, read, write, Arc, DataArc, Mutex, RwLock};
use crate::topics::log::TopicRecord;
use crate::topics::log::{PartitionBounds, Retention, TopicLog, TopicLogError, TopicMessage};
use crate::topics::record_codec::{decode_record, encode_record};

/// When a [`FjallLog`] acknowledges an append or a commit; see "Sync policy" in the
/// module documentation for what each loses on power loss and when publish waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FjallSync {
    /// fsync before each acknowledgement (each append — one batch: the records of one
    /// call — and each commit): survives power loss; publish waits for the fsync.
    EveryAppend,
    /// Written to the OS (a `write`, no fsync) before each acknowledgement, fsynced in the
    /// background every interval (1 to 65,535 ms): survives a process crash; a power loss
    /// or kernel crash may lose what was acknowledged in the last interval. Publish waits
    /// for no fsync of its own, but may wait for the background one (fjall holds its
    /// journal lock during it) and for fjall's write stalls.
    Interval(Duration),
}

impl Default for FjallSync {
    /// Background fsync every 100 ms.
    fn default() -> Self {
        FjallSync::Interval(Duration::from_millis(100))
    }
}

fn store_error(what: &str, error: impl std::fmt::Display) -> TopicLogError {
    TopicLogError::Store(format!("fjall store: {what}: {error}"))
}

/// An error of fjall's, said as what it means for the store: an I/O failure, or files
/// fjall cannot read back (damaged).
fn engine_error(what: &str, error: fjall::Error) -> TopicLogError {
    let kind = match error {
        fjall::Error::Io(_) => "I/O error",
        fjall::Error::Poisoned => "I/O error (an earlier write failed)",
        _ => "damaged or unreadable files",
    };
    store_error(what, format!("{kind}: {error}"))
}

/// The directories this process holds open, canonical: see "One opening per directory".
static OPEN_DIRECTORIES: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// A directory's place in [`OPEN_DIRECTORIES`], given up when the store drops.
struct DirectoryClaim(PathBuf);

impl DirectoryClaim {
    fn take(path: &Path) -> Result<Self, TopicLogError> {
        std::fs::create_dir_all(path).map_err(|error| store_error("create directory", error))?;
        let canonical = path
            .canonicalize()
            .map_err(|error| store_error("directory", error))?;
        let mut open = OPEN_DIRECTORIES
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if open.contains(&canonical) {
            return Err(store_error(
                "open",
                format!(
                    "{} is already open in this process (drop every handle on that store first)",
                    canonical.display()
                ),
            ));
        }
        open.push(canonical.clone());
        Ok(Self(canonical))
    }
}

impl Drop for DirectoryClaim {
    fn drop(&mut self) {
        let mut open = OPEN_DIRECTORIES
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        open.retain(|path| *path != self.0);
    }
}

/// A fjall keyspace holding durable topic logs; open one per directory and process.
pub struct FjallStore {
    keyspace: Keyspace,
    messages: PartitionHandle,
    offsets: PartitionHandle,
    sync: FjallSync,
    /// The topics with a live [`FjallLog`]: a second log over the same keys would keep its
    /// own idea of each partition's end.
    live_topics: Mutex<Vec<Vec<u8>>>,
    // Declared last: dropped after the keyspace is closed.
    _claim: DirectoryClaim,
}

impl std::fmt::Debug for FjallStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallStore")
            .field("sync", &self.sync)
            .finish_non_exhaustive()
    }
}

impl FjallStore {
    /// Opens (or creates, with its parents) the store in directory `path`, recovering what
    /// the last process acknowledged. Refused with [`TopicLogError::Store`], whose text
    /// says which: a path that is not a directory, a directory this process already holds
    /// open, an I/O error, or files damaged beyond fjall's recovery.
    pub fn open(path: impl AsRef<Path>, sync: FjallSync) -> Result<Arc<Self>, TopicLogError> {
        let fsync_ms = match sync {
            FjallSync::EveryAppend => None,
            FjallSync::Interval(interval) => Some(
                u16::try_from(interval.as_millis().max(1))
                    .map_err(|_| store_error("sync interval", "at most 65535 ms"))?,
            ),
        };
        let claim = DirectoryClaim::take(path.as_ref())?;
        let keyspace = Config::new(path.as_ref())
            .fsync_ms(fsync_ms)
            .open()
            .map_err(|error| engine_error("open", error))?;
        let messages = keyspace
            .open_partition("messages", PartitionCreateOptions::default())
            .map_err(|error| engine_error("open messages", error))?;
        let offsets = keyspace
            .open_partition("offsets", PartitionCreateOptions::default())
            .map_err(|error| engine_error("open offsets", error))?;
        Ok(Arc::new(Self {
            keyspace,
            messages,
            offsets,
            sync,
            live_topics: Mutex::new(Vec::new()),
            _claim: claim,
        }))
    }

    /// The log of topic `topic` with `partitions` partitions, trimmed by `retention` (bytes
    /// counted as [`TopicMessage::size_bytes`] counts them, as in `MemoryLog`, not as the
    /// stored blobs' length), for `create_topic_with_log`. A topic stored before with another partition count is
    /// refused; a partition found damaged (offsets not contiguous, or a record whose
    /// checksum fails) is refused; so is a topic whose log from this store is still alive
    /// (one log per topic at a time).
    pub fn topic_log(
        self: &Arc<Self>,
        topic: &str,
        partitions: u32,
        retention: Retention,
    ) -> Result<FjallLog, TopicLogError> {
        let name = topic_prefix(topic)?;
        if partitions > MAX_TOPIC_PARTITIONS {
            return Err(store_error(
                "topic shape",
                format!("{partitions} partitions: at most {MAX_TOPIC_PARTITIONS}"),
            ));
        }
        {
            let mut live = lock(&self.live_topics);
            if live.contains(&name) {
                return Err(store_error(
                    "topic",
                    format!("topic {topic:?} already has a live log in this store"),
                ));
            }
            live.push(name.clone());
        }
        // Until the log exists (and its drop takes over), a failed or panicking load must
        // not leave the topic marked live.
        let registration = LiveRegistration {
            store: self,
            name: &name,
        };
        let log = self.load_topic_log(&name, topic, partitions, retention)?;
        std::mem::forget(registration);
        Ok(log)
    }

    fn load_topic_log(
        self: &Arc<Self>,
        name: &[u8],
        topic: &str,
        partitions: u32,
        retention: Retention,
    ) -> Result<FjallLog, TopicLogError> {
        let name = name.to_vec();
        let meta = meta_key(&name);
        match self
            .offsets
            .get(&meta)
            .map_err(|error| store_error("read topic shape", error))?
        {
            Some(stored) => {
                let stored = read_u64(&stored, "topic shape")?;
                if stored != u64::from(partitions) {
                    return Err(store_error(
                        "topic shape",
                        format!(
                            "topic {topic:?} was stored with {stored} partitions, not {partitions}"
                        ),
                    ));
                }
            }
            None => {
                self.offsets
                    .insert(&meta, u64::from(partitions).to_le_bytes())
                    .map_err(|error| store_error("write topic shape", error))?;
                self.persist()?;
            }
        }
        let mut states = Vec::with_capacity(partitions as usize);
        for partition in 0..partitions {
            states.push(Mutex::new(self.scan(&name, partition)?));
        }
        Ok(FjallLog {
            store: Arc::clone(self),
            name,
            partitions: states.into_boxed_slice(),
            retention,
            erased: RwLock::new(false),
        })
    }

    /// Finds a partition's retained range, checking every record.
    fn scan(&self, name: &[u8], partition: u32) -> Result<PartitionState, TopicLogError> {
        let mut state = PartitionState {
            start: 0,
            end: 0,
            sizes: VecDeque::new(),
            bytes: 0,
        };
        let mut first = true;
        for item in self.messages.prefix(partition_prefix(name, partition)) {
            let (key, value) = item.map_err(|error| store_error("scan", error))?;
            let offset = key_offset(&key)?;
            if first {
                state.start = offset;
                state.end = offset;
                first = false;
            }
            if offset != state.end {
                return Err(store_error(
                    "damaged partition",
                    format!(
                        "partition {partition} jumps from offset {} to {offset}",
                        state.end
                    ),
                ));
            }
            let record = decode_record(&value)
                .map_err(|error| store_error(&format!("record {partition}/{offset}"), error))?;
            let size = record.size_bytes() as u64;
            state.sizes.push_back(size);
            state.bytes += size;
            state.end += 1;
        }
        Ok(state)
    }

    /// Makes what was written durable as the sync policy says.
    fn persist(&self) -> Result<(), TopicLogError> {
        let mode = match self.sync {
            FjallSync::EveryAppend => PersistMode::SyncAll,
            FjallSync::Interval(_) => PersistMode::Buffer,
        };
        self.keyspace
            .persist(mode)
            .map_err(|error| store_error("persist", error))
    }

    fn batch(&self) -> Batch {
        self.keyspace.batch()
    }
}

struct PartitionState {
    start: u64,
    end: u64,
    /// The size of each retained message as retention counts it
    /// ([`TopicMessage::size_bytes`]), oldest first, for the byte bound.
    sizes: VecDeque<u64>,
    bytes: u64,
}

/// One topic's log in a [`FjallStore`].
pub struct FjallLog {
    store: Arc<FjallStore>,
    /// The topic's key prefix.
    name: Vec<u8>,
    partitions: Box<[Mutex<PartitionState>]>,
    retention: Retention,
    /// Set when the topic was deleted and its keys erased. Appends and commits hold the
    /// read side while they write, the erase the write side: nothing of the topic is
    /// written back after it.
    erased: RwLock<bool>,
}

impl std::fmt::Debug for FjallLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallLog")
            .field("partitions", &self.partitions.len())
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

/// The longest key the store takes (fjall's limit).
const MAX_KEY_LEN: usize = u16::MAX as usize;

/// The bytes a key adds after a topic's name: a message's partition and offset, or a
/// group's name length, name and partition (checked with the group's own length).
const MESSAGE_KEY_TAIL: usize = 4 + 8;

fn topic_prefix(topic: &str) -> Result<Vec<u8>, TopicLogError> {
    if 2 + topic.len() + MESSAGE_KEY_TAIL > MAX_KEY_LEN {
        return Err(store_error(
            "topic name",
            format!("{} bytes: too long for the store's keys", topic.len()),
        ));
    }
    let len = u16::try_from(topic.len()).map_err(|_| store_error("topic name", "too long"))?;
    let mut name = len.to_be_bytes().to_vec();
    name.extend_from_slice(topic.as_bytes());
    Ok(name)
}

fn partition_prefix(name: &[u8], partition: u32) -> Vec<u8> {
    let mut key = name.to_vec();
    key.extend_from_slice(&partition.to_be_bytes());
    key
}

fn message_key(name: &[u8], partition: u32, offset: u64) -> Vec<u8> {
    let mut key = partition_prefix(name, partition);
    key.extend_from_slice(&offset.to_be_bytes());
    key
}

fn key_offset(key: &[u8]) -> Result<u64, TopicLogError> {
    key.len()
        .checked_sub(8)
        .and_then(|at| key[at..].try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| store_error("damaged key", format!("{} bytes", key.len())))
}

/// `topic | 0xFF`: the topic's partition count (no group key starts with 0xFF 0xFF).
fn meta_key(name: &[u8]) -> Vec<u8> {
    let mut key = name.to_vec();
    key.extend_from_slice(&[0xFF, 0xFF]);
    key
}

fn group_prefix(name: &[u8], group: &str) -> Result<Vec<u8>, TopicLogError> {
    // The topic's prefix, the group's length and name, then a partition.
    if name.len() + 2 + group.len() + 4 > MAX_KEY_LEN {
        return Err(store_error(
            "group name",
            format!(
                "{} bytes with a topic name of {}: too long for the store's keys",
                group.len(),
                name.len() - 2
            ),
        ));
    }
    let len = u16::try_from(group.len()).map_err(|_| store_error("group name", "too long"))?;
    let mut key = name.to_vec();
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(group.as_bytes());
    Ok(key)
}

fn read_u64(bytes: &[u8], what: &str) -> Result<u64, TopicLogError> {
    bytes
        .try_into()
        .map(u64::from_le_bytes)
        .map_err(|_| store_error(what, format!("a value of {} bytes", bytes.len())))
}

/// A topic marked live in its store while its log is being loaded: unmarked when dropped.
struct LiveRegistration<'a> {
    store: &'a FjallStore,
    name: &'a [u8],
}

impl Drop for LiveRegistration<'_> {
    fn drop(&mut self) {
        lock(&self.store.live_topics).retain(|live| live.as_slice() != self.name);
    }
}

impl Drop for FjallLog {
    fn drop(&mut self) {
        lock(&self.store.live_topics).retain(|live| *live != self.name);
    }
}

impl FjallLog {
    fn state(&self, partition: u32) -> Result<&Mutex<PartitionState>, TopicLogError> {
        self.partitions
            .get(partition as usize)
            .ok_or_else(|| store_error("partition", format!("no partition {partition}")))
    }
}

impl TopicLog for FjallLog {
    fn partitions(&self) -> u32 {
        self.partitions.len() as u32
    }

    fn append(&self, partition: u32, records: Vec<TopicRecord>) -> Result<u64, TopicLogError> {
        let state = self.state(partition)?;
        let erased = read(&self.erased);
        if *erased {
            return Err(store_error("append", "the topic was deleted"));
        }
        // The partition lock orders appends: offsets follow the order appends take effect.
        let mut state = lock(state);
        let first = state.end;
        let mut batch = self.store.batch();
        // The state changes only once the batch is committed; until then the new sizes
        // and the count trimmed are kept aside (cloning the retained sizes, up to
        // `max_messages` of them, cost every append time in proportion to the partition).
        let mut added = Vec::with_capacity(records.len());
        let mut bytes = state.bytes;
        for (index, record) in records.iter().enumerate() {
            let mut blob = Vec::with_capacity(64);
            encode_record(record, &mut blob);
            // Retention counts what `MemoryLog` counts (not the blob's length), so a
            // topic keeps the same messages on either log.
            let size = record.size_bytes() as u64;
            added.push(size);
            bytes += size;
            batch.insert(
                &self.store.messages,
                message_key(&self.name, partition, first + index as u64),
                blob,
            );
        }
        // Trimming goes in the same batch: the retained range is never seen half-trimmed.
        let retained = state.sizes.len() + added.len();
        let mut trimmed = 0;
        while retained - trimmed > 1
            && ((retained - trimmed) as u64 > self.retention.max_messages
                || bytes > self.retention.max_bytes)
        {
            bytes -= match state.sizes.get(trimmed) {
                Some(size) => *size,
                None => added[trimmed - state.sizes.len()],
            };
            batch.remove(
                &self.store.messages,
                message_key(&self.name, partition, state.start + trimmed as u64),
            );
            trimmed += 1;
        }
        batch
            .commit()
            .map_err(|error| store_error("append", error))?;
        self.store.persist()?;
        state.sizes.extend(added);
        state.sizes.drain(..trimmed);
        state.bytes = bytes;
        state.start += trimmed as u64;
        state.end = first + records.len() as u64;
        Ok(first)
    }

    fn read(
        &self,
        partition: u32,
        offset: u64,
        max_messages: usize,
        out: &mut Vec<DataArc<TopicMessage>>,
    ) -> Result<(), TopicLogError> {
        let bounds = self.bounds(partition)?;
        self.read_until(partition, offset, bounds.end, max_messages, out)
    }

    fn read_until(
        &self,
        partition: u32,
        offset: u64,
        end: u64,
        max_messages: usize,
        out: &mut Vec<DataArc<TopicMessage>>,
    ) -> Result<(), TopicLogError> {
        let bounds = self.bounds(partition)?;
        if offset < bounds.start || offset > bounds.end {
            return Err(TopicLogError::OutOfRange(bounds));
        }
        let stop = end.min(bounds.end);
        if offset >= stop {
            return Ok(());
        }
        let range =
            message_key(&self.name, partition, offset)..message_key(&self.name, partition, stop);
        // Read a snapshot: an append committed meanwhile (with the retention trimming of the
        // partition's front it carries) is seen whole or not at all. Without one, the
        // iterator sees a trim that lands halfway through it as a hole in the middle of
        // the range, which read as a damaged partition.
        let snapshot = self
            .store
            .messages
            .snapshot_at(self.store.keyspace.instant());
        let items = snapshot.range(range).take(max_messages);
        let before = out.len();
        for (expected, item) in (offset..).zip(items) {
            let (key, value) = item.map_err(|error| store_error("read", error))?;
            let at = key_offset(&key)?;
            if at != expected {
                // Trimmed meanwhile (retention): what is left is read from the new start.
                if expected == offset && at > offset {
                    return Err(TopicLogError::OutOfRange(self.bounds(partition)?));
                }
                return Err(store_error(
                    "damaged partition",
                    format!("partition {partition} jumps from offset {expected} to {at}"),
                ));
            }
            let record = decode_record(&value)
                .map_err(|error| store_error(&format!("record {partition}/{at}"), error))?;
            out.push(DataArc::new(record.into_message(partition, at)));
        }
        if out.len() == before && max_messages > 0 {
            // Nothing where the bounds said `offset..stop` is: the whole range was trimmed
            // between reading the bounds and taking the snapshot (the start moved past
            // `offset`, as above), or the partition is damaged.
            let now = self.bounds(partition)?;
            if now.start > offset {
                return Err(TopicLogError::OutOfRange(now));
            }
            return Err(store_error(
                "damaged partition",
                format!("partition {partition} holds no message at offset {offset}"),
            ));
        }
        Ok(())
    }

    fn bounds(&self, partition: u32) -> Result<PartitionBounds, TopicLogError> {
        let state = lock(self.state(partition)?);
        Ok(PartitionBounds {
            start: state.start,
            end: state.end,
        })
    }

    fn commit_offset(&self, group: &str, partition: u32, offset: u64) -> Result<(), TopicLogError> {
        let mut key = group_prefix(&self.name, group)?;
        key.extend_from_slice(&partition.to_be_bytes());
        let erased = read(&self.erased);
        if *erased {
            return Err(store_error("commit", "the topic was deleted"));
        }
        self.store
            .offsets
            .insert(key, offset.to_le_bytes())
            .map_err(|error| store_error("commit", error))?;
        self.store.persist()
    }

    fn committed_offset(&self, group: &str, partition: u32) -> Result<Option<u64>, TopicLogError> {
        let mut key = group_prefix(&self.name, group)?;
        key.extend_from_slice(&partition.to_be_bytes());
        self.store
            .offsets
            .get(key)
            .map_err(|error| store_error("read commit", error))?
            .map(|value| read_u64(&value, "committed offset"))
            .transpose()
    }

    fn delete_group(&self, group: &str) -> Result<(), TopicLogError> {
        let prefix = group_prefix(&self.name, group)?;
        let mut batch = self.store.batch();
        for item in self.store.offsets.prefix(&prefix) {
            let (key, _) = item.map_err(|error| store_error("delete group", error))?;
            // Exactly the group's keys: the prefix plus a 4-byte partition.
            if key.len() == prefix.len() + 4 {
                batch.remove(&self.store.offsets, key);
            }
        }
        batch
            .commit()
            .map_err(|error| store_error("delete group", error))?;
        self.store.persist()
    }

    /// Removes every key of the topic: its messages, its groups' offsets and its shape
    /// (all begin with the topic's length-prefixed name, which no other topic's keys
    /// begin with), in one pass over each keyspace committed in batches of bounded size.
    /// Appends and commits still running on the topic finish first; later ones are
    /// refused, so nothing of it is written back.
    fn delete_topic(&self) -> Result<(), TopicLogError> {
        const KEYS_PER_BATCH: usize = 4096;
        let mut erased = write(&self.erased);
        *erased = true;
        for keys in [&self.store.messages, &self.store.offsets] {
            let mut batch = self.store.batch();
            let mut in_batch = 0;
            // Walked in a snapshot: the batches committed meanwhile do not disturb it, and
            // it never walks what they removed.
            let snapshot = keys.snapshot_at(self.store.keyspace.instant());
            for item in snapshot.prefix(&self.name) {
                let (key, _) = item.map_err(|error| store_error("delete topic", error))?;
                batch.remove(keys, key);
                in_batch += 1;
                if in_batch == KEYS_PER_BATCH {
                    let full = std::mem::replace(&mut batch, self.store.batch());
                    full.commit()
                        .map_err(|error| store_error("delete topic", error))?;
                    in_batch = 0;
                }
            }
            batch
                .commit()
                .map_err(|error| store_error("delete topic", error))?;
        }
        for partition in self.partitions.iter() {
            let mut state = lock(partition);
            state.start = state.end;
            state.sizes.clear();
            state.bytes = 0;
        }
        self.store.persist()
    }
}
