//! Topic stores: failing, durable and gappy ones.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use livecore::*;

use crate::common::*;
use crate::support::*;

/// A store whose appends fail while `failing` is set, which gives appends the first
/// offset `made_up_first` holds unless it is [`TRUTHFUL`], and which remembers committed
/// offsets like a durable store would.
struct FlakyLog {
    inner: MemoryLog,
    failing: Arc<AtomicBool>,
    made_up_first: Arc<AtomicU64>,
    commits: Arc<Mutex<Vec<(String, u32, u64)>>>,
    /// When set, the next `bounds` call takes it: it says it entered, then waits for go.
    bounds_gate: Arc<Mutex<Option<BoundsGate>>>,
    /// [`READS_PASS`], or [`FAIL_AFTER_SKIP`]: the first read after one that met the
    /// retained start fails (then [`READ_FAILED`]).
    read_phase: AtomicU64,
}

/// `FlakyLog::read_phase`: reads pass.
const READS_PASS: u64 = 0;
/// `FlakyLog::read_phase`: armed; the read after one out of range fails.
const FAIL_AFTER_SKIP: u64 = 1;
/// `FlakyLog::read_phase`: the next read fails.
const FAIL_NEXT_READ: u64 = 2;
/// `FlakyLog::read_phase`: the read failed.
const READ_FAILED: u64 = 3;

/// (entered, go) of [`FlakyLog::bounds_gate`].
type BoundsGate = (mpsc::Sender<()>, mpsc::Receiver<()>);

/// `FlakyLog::made_up_first` when the store tells the truth.
const TRUTHFUL: u64 = u64::MAX;

/// What a test keeps of a [`FlakyLog`] a topic owns.
struct FlakyHandles {
    failing: Arc<AtomicBool>,
    made_up_first: Arc<AtomicU64>,
    commits: Arc<Mutex<Vec<(String, u32, u64)>>>,
    bounds_gate: Arc<Mutex<Option<BoundsGate>>>,
}

/// A manager with topic "f" of `partitions` partitions over a [`FlakyLog`].
fn flaky_topic(partitions: u32) -> (Arc<ConnectionsManager>, FlakyHandles) {
    let (manager, _) = manager();
    let log = FlakyLog::new(partitions);
    let handles = FlakyHandles {
        failing: log.failing.clone(),
        made_up_first: log.made_up_first.clone(),
        commits: log.commits.clone(),
        bounds_gate: log.bounds_gate.clone(),
    };
    manager
        .create_topic_with_log("f", TopicConfig::partitions(partitions), Box::new(log))
        .unwrap();
    (manager, handles)
}

impl FlakyLog {
    fn new(partitions: u32) -> Self {
        Self::with_retention(partitions, Retention::default())
    }

    fn with_retention(partitions: u32, retention: Retention) -> Self {
        Self {
            inner: MemoryLog::new(partitions, retention).unwrap(),
            failing: Arc::default(),
            made_up_first: Arc::new(AtomicU64::new(TRUTHFUL)),
            commits: Arc::default(),
            bounds_gate: Arc::default(),
            read_phase: AtomicU64::new(READS_PASS),
        }
    }
}

impl TopicLog for FlakyLog {
    fn partitions(&self) -> u32 {
        self.inner.partitions()
    }
    fn append(&self, partition: u32, records: Vec<TopicRecord>) -> Result<u64, TopicLogError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(TopicLogError::Store("disk full".into()));
        }
        let first = self.inner.append(partition, records)?;
        Ok(match self.made_up_first.load(Ordering::SeqCst) {
            TRUTHFUL => first,
            made_up => made_up,
        })
    }
    fn read(
        &self,
        partition: u32,
        offset: u64,
        max_messages: usize,
        out: &mut Vec<std::sync::Arc<TopicMessage>>,
    ) -> Result<(), TopicLogError> {
        let phase = &self.read_phase;
        if phase
            .compare_exchange(
                FAIL_NEXT_READ,
                READ_FAILED,
                Ordering::SeqCst,
                Ordering::SeqCst,
            )
            .is_ok()
        {
            return Err(TopicLogError::Store("transient failure".into()));
        }
        let read = self.inner.read(partition, offset, max_messages, out);
        if matches!(read, Err(TopicLogError::OutOfRange(_))) {
            let _ = phase.compare_exchange(
                FAIL_AFTER_SKIP,
                FAIL_NEXT_READ,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
        }
        read
    }
    fn bounds(&self, partition: u32) -> Result<PartitionBounds, TopicLogError> {
        let gate = self.bounds_gate.lock().unwrap().take();
        if let Some((entered, go)) = gate {
            entered.send(()).unwrap();
            go.recv().unwrap();
        }
        self.inner.bounds(partition)
    }
    fn commit_offset(&self, group: &str, partition: u32, offset: u64) -> Result<(), TopicLogError> {
        self.commits
            .lock()
            .unwrap()
            .push((group.to_string(), partition, offset));
        self.inner.commit_offset(group, partition, offset)
    }
    fn committed_offset(&self, group: &str, partition: u32) -> Result<Option<u64>, TopicLogError> {
        self.inner.committed_offset(group, partition)
    }
    fn delete_group(&self, group: &str) -> Result<(), TopicLogError> {
        self.inner.delete_group(group)
    }
}

#[test]
fn a_failing_store_is_counted_and_surfaced_never_silent() {
    let (manager, handles) = flaky_topic(1);
    let FlakyHandles {
        failing, commits, ..
    } = handles;
    manager
        .add_topic_route(TopicRouteSpec::new("f", messages()))
        .unwrap();
    let mut live = connect(&manager, "watcher");
    manager
        .subscribe(
            live.connection_id,
            QuerySpec::table(messages()),
            SubscriptionOptions::default(),
        )
        .unwrap();
    failing.store(true, Ordering::SeqCst);
    let summary = manager
        .publish_commit(
            SeqId(1),
            vec![
                ChangeNotification::insert(messages(), message(1, 1, "a")),
                ChangeNotification::insert(messages(), message(2, 1, "b")),
            ],
        )
        .unwrap();
    // The live query is served; the topic write failure is counted and explained.
    assert_eq!(summary.enqueued, 1);
    assert_eq!(summary.topic_messages, 0);
    assert_eq!(summary.topic_write_failures, 2);
    assert_eq!(changes_of(&drain(&mut live.notifications)).len(), 2);
    let info = manager.topic_info("f").unwrap();
    assert_eq!(info.write_failures, 2);
    assert_eq!(
        info.last_write_error.as_deref(),
        Some("the store of topic f failed: disk full")
    );
    assert_eq!(manager.stats().topic_write_failures, 2);
    // A direct publish gets the error itself.
    assert_eq!(
        manager.publish_to_topic("f", DirectMessage::new(SeqId(2), "x")),
        Err(LiveError::TopicStore {
            topic: "f".into(),
            reason: "disk full".into()
        })
    );
    failing.store(false, Ordering::SeqCst);
    let summary = manager
        .publish(
            SeqId(3),
            ChangeNotification::insert(messages(), message(3, 1, "c")),
        )
        .unwrap();
    assert_eq!(summary.topic_messages, 1);
    assert_eq!(manager.stats().topic_messages, 1);
    assert_eq!(manager.stats().topic_write_failures, 3);
    // Commits go through the store, which restores a re-created group.
    manager
        .create_consumer_group("f", "g", GroupConfig::default())
        .unwrap();
    let me = consumer(&manager, "a");
    let batch = manager.consume(me, "f", "g", 10, Duration::ZERO).unwrap();
    manager.commit_batch(me, &batch).unwrap();
    assert_eq!(
        commits.lock().unwrap().as_slice(),
        [("g".to_string(), 0, 1)]
    );
}

/// A store that gives an append an offset livecore cannot have been given (below the end
/// of what earlier appends wrote, or past what has been written at all) fails the append,
/// counted and explained, and the partition's end stays where it was: consumers would
/// otherwise wait on, or skip to, messages that do not exist (found by an outside hostile C
/// host, whose store callbacks made offsets up).
#[test]
fn an_append_given_an_offset_out_of_line_is_a_store_error() {
    let (manager, FlakyHandles { made_up_first, .. }) = flaky_topic(1);
    for seq in 0..2 {
        assert_eq!(publish_bytes(&manager, "f", seq, "ok").offset, seq);
    }
    for (made_up, expected) in [(1000, "from 2 to 2"), (1, "from 2 to 3")] {
        made_up_first.store(made_up, Ordering::SeqCst);
        let reason = format!(
            "the store gave first offset {made_up} to an append of 1 messages to partition 0; \
             livecore, its only writer, expects one {expected}"
        );
        assert_eq!(
            manager.publish_to_topic("f", DirectMessage::new(SeqId(9), "x")),
            Err(LiveError::TopicStore {
                topic: "f".into(),
                reason,
            })
        );
    }
    let info = manager.topic_info("f").unwrap();
    assert_eq!((info.appended, info.write_failures), (2, 2));
    let read = manager.read_topic("f", 0, 0, 10).unwrap();
    assert_eq!(
        read.len(),
        2,
        "the end stays after the two appends livecore accepted"
    );
}

/// Appends racing on one partition, in any order the store takes them, all pass the check
/// of their offsets (the loom model `appends_racing_on_one_partition` explores the orders;
/// this runs real threads).
#[test]
fn racing_appends_to_one_partition_all_pass_the_offset_check() {
    let (manager, _) = flaky_topic(1);
    std::thread::scope(|scope| {
        for thread in 0..4u64 {
            let manager = &manager;
            scope.spawn(move || {
                for index in 0..500 {
                    std::thread::yield_now();
                    manager
                        .publish_to_topic(
                            "f",
                            DirectMessage::new(SeqId(thread * 1000 + index), "m"),
                        )
                        .unwrap();
                }
            });
        }
    });
    let info = manager.topic_info("f").unwrap();
    assert_eq!((info.appended, info.write_failures), (2000, 0));
}

/// A group created `Latest` with no stored offset persists the end it starts at, as if
/// committed: after a restart, a durable store gives it back, and what was handed out
/// before the first commit is handed out again rather than skipped (found by an outside
/// soak on a fjall store). `Earliest` persists nothing: the start it resolves to again is
/// where it was.
#[test]
fn a_latest_group_persists_where_it_starts() {
    let (manager, FlakyHandles { commits, .. }) = flaky_topic(2);
    for (seq, partition) in [(0, 0), (1, 0), (2, 1)] {
        manager
            .publish_to_topic(
                "f",
                DirectMessage::new(SeqId(seq), "m").partition(partition),
            )
            .unwrap();
    }
    manager
        .create_consumer_group("f", "early", GroupConfig::default())
        .unwrap();
    assert!(commits.lock().unwrap().is_empty());
    manager
        .create_consumer_group("f", "late", GroupConfig::with_reset(ResetPolicy::Latest))
        .unwrap();
    assert_eq!(
        commits.lock().unwrap().as_slice(),
        [("late".to_string(), 0, 2), ("late".to_string(), 1, 1)]
    );
}

/// A seek racing the deletion of its group persists nothing once the deletion has gone on
/// to the store: a group created again under the name starts where its own reset policy
/// says, not at the seek's offset (found by an outside soak, through a store whose bounds
/// were slow; consuming into retention and passing dead letters persist the same way).
#[test]
fn a_seek_racing_the_deletion_of_its_group_leaves_no_offset_behind() {
    let (manager, FlakyHandles { bounds_gate, .. }) = flaky_topic(1);
    for seq in 0..4 {
        publish_bytes(&manager, "f", seq, "m");
    }
    manager
        .create_consumer_group("f", "g", GroupConfig::default())
        .unwrap();
    let (entered_tx, entered) = mpsc::channel();
    let (go, go_rx) = mpsc::channel();
    *bounds_gate.lock().unwrap() = Some((entered_tx, go_rx));
    std::thread::scope(|scope| {
        let seek = scope.spawn(|| manager.seek_group("f", "g", 0, 2));
        // The seek read the bounds and waits; the group is deleted meanwhile.
        entered.recv().unwrap();
        manager.delete_consumer_group("f", "g").unwrap();
        go.send(()).unwrap();
        assert_eq!(
            seek.join().unwrap(),
            Err(LiveError::UnknownGroup {
                topic: "f".into(),
                group: "g".into()
            })
        );
    });
    manager
        .create_consumer_group("f", "g", GroupConfig::with_reset(ResetPolicy::Latest))
        .unwrap();
    assert_eq!(
        manager.group_offsets("f", "g").unwrap()[0].committed,
        Some(4)
    );
}

#[test]
fn a_durable_store_restores_messages_and_group_offsets() {
    let log = MemoryLog::new(2, Retention::default()).unwrap();
    for seq in 0..4u64 {
        log.append(
            (seq % 2) as u32,
            vec![TopicRecord {
                seq: SeqId(seq),
                timestamp_ms: 0,
                key: None,
                payload: TopicPayload::Bytes(std::sync::Arc::from(&b"old"[..])),
            }],
        )
        .unwrap();
    }
    log.commit_offset("g", 0, 1).unwrap();
    let (manager, _) = manager();
    assert!(matches!(
        manager.create_topic_with_log(
            "d",
            TopicConfig::partitions(3),
            Box::new(MemoryLog::new(2, Retention::default()).unwrap())
        ),
        Err(LiveError::InvalidConfig(_))
    ));
    manager
        .create_topic_with_log("d", TopicConfig::partitions(2), Box::new(log))
        .unwrap();
    manager
        .create_consumer_group("d", "g", GroupConfig::default())
        .unwrap();
    let me = consumer(&manager, "a");
    let mut got = offsets(&manager.consume(me, "d", "g", 10, Duration::ZERO).unwrap());
    got.sort();
    assert_eq!(got, [(0, 1), (1, 0), (1, 1)]);
    // New messages wake consumers as usual.
    let position = publish_bytes(&manager, "d", 9, "new");
    assert_eq!(position.offset, 2);
}

/// A store that keeps gaps: offsets below `lost_below` are gone, and a read pushes from the
/// first retained offset after the one asked for (so, with nothing retained after it,
/// nothing). Its bounds start at `lost_below`, unless `claims_all` makes them claim every
/// offset. Counts its reads, and its drops.
struct GappyLog {
    inner: MemoryLog,
    lost_below: Arc<AtomicU64>,
    claims_all: Arc<AtomicBool>,
    reads: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
}

impl GappyLog {
    fn new() -> Self {
        Self {
            inner: MemoryLog::new(1, Retention::default()).unwrap(),
            lost_below: Arc::default(),
            claims_all: Arc::default(),
            reads: Arc::default(),
            dropped: Arc::default(),
        }
    }
}

impl Drop for GappyLog {
    fn drop(&mut self) {
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

impl TopicLog for GappyLog {
    fn partitions(&self) -> u32 {
        1
    }
    fn append(&self, partition: u32, records: Vec<TopicRecord>) -> Result<u64, TopicLogError> {
        self.inner.append(partition, records)
    }
    fn read(
        &self,
        partition: u32,
        offset: u64,
        max_messages: usize,
        out: &mut Vec<std::sync::Arc<TopicMessage>>,
    ) -> Result<(), TopicLogError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let from = offset.max(self.lost_below.load(Ordering::SeqCst));
        let end = self.inner.bounds(partition)?.end;
        if from >= end {
            return Ok(());
        }
        self.inner.read(partition, from, max_messages, out)
    }
    fn bounds(&self, partition: u32) -> Result<PartitionBounds, TopicLogError> {
        let mut bounds = self.inner.bounds(partition)?;
        if !self.claims_all.load(Ordering::SeqCst) {
            bounds.start = bounds.start.max(self.lost_below.load(Ordering::SeqCst));
        }
        Ok(bounds)
    }
    fn commit_offset(&self, group: &str, partition: u32, offset: u64) -> Result<(), TopicLogError> {
        self.inner.commit_offset(group, partition, offset)
    }
    fn committed_offset(&self, group: &str, partition: u32) -> Result<Option<u64>, TopicLogError> {
        self.inner.committed_offset(group, partition)
    }
    fn delete_group(&self, group: &str) -> Result<(), TopicLogError> {
        self.inner.delete_group(group)
    }
}

/// A manager with topic "gappy" over a [`GappyLog`] holding 3 messages it then lost, and a
/// group "g" that starts at 0 (it was created before the loss).
fn gappy_topic() -> (Arc<ConnectionsManager>, GappyHandles) {
    let (manager, _) = manager();
    let log = GappyLog::new();
    let handles = GappyHandles {
        lost_below: log.lost_below.clone(),
        claims_all: log.claims_all.clone(),
        reads: log.reads.clone(),
        dropped: log.dropped.clone(),
    };
    manager
        .create_topic_with_log("gappy", TopicConfig::partitions(1), Box::new(log))
        .unwrap();
    manager
        .create_consumer_group("gappy", "g", GroupConfig::default())
        .unwrap();
    for seq in 0..3 {
        publish_bytes(&manager, "gappy", seq, "lost");
    }
    handles.lost_below.store(3, Ordering::SeqCst);
    (manager, handles)
}

struct GappyHandles {
    lost_below: Arc<AtomicU64>,
    claims_all: Arc<AtomicBool>,
    reads: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
}

#[test]
fn a_read_that_finds_a_gap_moves_past_it_and_parks_instead_of_spinning() {
    let (manager, store) = gappy_topic();
    let me = consumer(&manager, "worker");
    let parks = manager.stats().consume_parks;
    // The read at 0 finds nothing (everything up to the end is gone): the group moves past
    // the gap as for retention, then parks until the timeout. Before, each pass found
    // nothing while the end stood past the position, so it never parked (a spin).
    let batch = manager
        .consume(me, "gappy", "g", 10, Duration::from_millis(200))
        .unwrap();
    assert!(batch.is_empty());
    assert_eq!(
        batch.retention_skips,
        [RetentionSkip {
            partition: 0,
            from: 0,
            to: 3
        }]
    );
    assert_eq!(batch.positions[0].next, Some(3));
    assert!(manager.stats().consume_parks > parks);
    // A handful of passes, not a loop of reads: the gap read, and at most one per wake-up.
    let reads = store.reads.load(Ordering::SeqCst);
    assert!(reads <= 3, "{reads} reads");
    assert_eq!(
        manager
            .group_stats("gappy", "g")
            .unwrap()
            .skipped_by_retention,
        3
    );
    // Later messages come through.
    publish_bytes(&manager, "gappy", 3, "later");
    let batch = manager
        .consume(me, "gappy", "g", 10, Duration::ZERO)
        .unwrap();
    assert_eq!(offsets(&batch), [(0, 3)]);
    assert_eq!(bytes_of(&batch.messages[0]), "later");
}

#[test]
fn consume_async_parks_on_a_gap_and_completes_with_later_messages() {
    let (manager, _store) = gappy_topic();
    let me = consumer(&manager, "worker");
    let parks = manager.stats().consume_parks;
    let publisher = {
        let manager = manager.clone();
        std::thread::spawn(move || {
            // Publish once the consume parked (counted, not timed).
            while manager.stats().consume_parks == parks {
                std::thread::yield_now();
            }
            publish_bytes(&manager, "gappy", 3, "later");
        })
    };
    let batch = block_on(manager.consume_async(me, "gappy", "g", 10)).unwrap();
    assert_eq!(offsets(&batch), [(0, 3)]);
    assert_eq!(batch.retention_skips[0].to, 3);
    publisher.join().unwrap();
}

#[test]
fn a_read_that_finds_nothing_the_store_claims_to_hold_is_a_store_error() {
    let (manager, store) = gappy_topic();
    store.claims_all.store(true, Ordering::SeqCst);
    let me = consumer(&manager, "worker");
    let error = manager
        .consume(me, "gappy", "g", 10, Duration::from_millis(200))
        .unwrap_err();
    assert!(
        matches!(&error, LiveError::TopicStore { reason, .. } if reason.contains("returned nothing below the end 3")),
        "{error}"
    );
    // Nothing moved: the group is still at 0.
    assert_eq!(
        manager.group_offsets("gappy", "g").unwrap()[0].committed,
        Some(0)
    );
    // lc_topic_read's Rust side says the same.
    assert!(matches!(
        manager.read_topic("gappy", 0, 0, 10),
        Err(LiveError::TopicStore { .. })
    ));
    store.claims_all.store(false, Ordering::SeqCst);
    assert!(matches!(
        manager.read_topic("gappy", 0, 0, 10),
        Err(LiveError::OffsetOutOfRange { start: 3, .. })
    ));
}

#[test]
fn deleting_a_topic_releases_its_store_without_waiting_for_sessions() {
    let (manager, store) = gappy_topic();
    store.lost_below.store(0, Ordering::SeqCst);
    let me = consumer(&manager, "worker");
    let batch = manager
        .consume(me, "gappy", "g", 10, Duration::ZERO)
        .unwrap();
    assert_eq!(batch.len(), 3);
    assert_eq!(store.dropped.load(Ordering::SeqCst), 0);
    manager.delete_topic("gappy").unwrap();
    // The session joined the topic's group, yet the store is dropped now.
    assert_eq!(store.dropped.load(Ordering::SeqCst), 1);
    assert!(matches!(
        manager.consume(me, "gappy", "g", 10, Duration::ZERO),
        Err(LiveError::UnknownTopic(_))
    ));
}

#[test]
fn a_stored_committed_offset_past_the_end_is_a_store_error() {
    let (manager, _) = manager();
    let log = MemoryLog::new(1, Retention::default()).unwrap();
    let record = TopicRecord {
        seq: SeqId(1),
        timestamp_ms: 1,
        key: None,
        payload: TopicPayload::Bytes(b"m".to_vec().into()),
    };
    log.append(0, vec![record]).unwrap();
    // The store says the group finished offsets it never held.
    log.commit_offset("g", 0, 1000).unwrap();
    log.commit_offset("fine", 0, 1).unwrap();
    manager
        .create_topic_with_log("t", TopicConfig::partitions(1), Box::new(log))
        .unwrap();
    let refused = manager.create_consumer_group("t", "g", GroupConfig::default());
    assert!(
        matches!(&refused, Err(LiveError::TopicStore { reason, .. }) if reason.contains("past the partition's end 1")),
        "{refused:?}"
    );
    assert!(matches!(
        manager.group_offsets("t", "g"),
        Err(LiveError::UnknownGroup { .. })
    ));
    manager
        .create_consumer_group("t", "fine", GroupConfig::default())
        .unwrap();
    assert_eq!(
        manager.group_offsets("t", "fine").unwrap()[0].committed,
        Some(1)
    );
}

/// A store that says its partition ends at `end`, and appends there.
struct EdgeLog {
    end: u64,
}

impl TopicLog for EdgeLog {
    fn partitions(&self) -> u32 {
        1
    }
    fn append(&self, _partition: u32, _records: Vec<TopicRecord>) -> Result<u64, TopicLogError> {
        Ok(self.end)
    }
    fn read(
        &self,
        _partition: u32,
        _offset: u64,
        _max_messages: usize,
        _out: &mut Vec<std::sync::Arc<TopicMessage>>,
    ) -> Result<(), TopicLogError> {
        Ok(())
    }
    fn bounds(&self, _partition: u32) -> Result<PartitionBounds, TopicLogError> {
        Ok(PartitionBounds {
            start: self.end,
            end: self.end,
        })
    }
    fn commit_offset(
        &self,
        _group: &str,
        _partition: u32,
        _offset: u64,
    ) -> Result<(), TopicLogError> {
        Ok(())
    }
    fn committed_offset(
        &self,
        _group: &str,
        _partition: u32,
    ) -> Result<Option<u64>, TopicLogError> {
        Ok(None)
    }
    fn delete_group(&self, _group: &str) -> Result<(), TopicLogError> {
        Ok(())
    }
}

#[test]
fn a_store_ending_at_the_largest_offset_refuses_appends_as_a_store_error() {
    // Offsets past u64::MAX cannot be given: the append is refused and counted.
    for (end, fit) in [(u64::MAX, 0), (u64::MAX - 1, 1)] {
        let (manager, _) = manager();
        let log = Box::new(EdgeLog { end });
        manager
            .create_topic_with_log("edge", TopicConfig::partitions(1), log)
            .unwrap();
        for seq in 1..=fit {
            let position = manager
                .publish_to_topic("edge", DirectMessage::new(SeqId(seq), "fits"))
                .unwrap();
            assert_eq!(position.offset, end);
        }
        let error = manager
            .publish_to_topic("edge", DirectMessage::new(SeqId(9), "past the end"))
            .unwrap_err();
        // Refused before the store is asked, naming why: the old count wrapped past the
        // largest offset and blamed the store's answer with a range from u64::MAX to 0.
        assert!(
            matches!(&error, LiveError::TopicStore { reason, .. } if reason.contains("largest offset")),
            "{error:?}"
        );
        let info = manager.topic_info("edge").unwrap();
        assert_eq!(info.write_failures, 1, "{info:?}");
    }
}

#[test]
fn a_skip_met_by_a_consume_that_then_fails_is_reported_by_the_next_batch() {
    let (manager, _) = manager();
    let retention = Retention {
        max_messages: 3,
        max_bytes: 1 << 30,
    };
    let log = FlakyLog::with_retention(1, retention);
    log.read_phase.store(FAIL_AFTER_SKIP, Ordering::SeqCst);
    manager
        .create_topic_with_log(
            "s",
            TopicConfig {
                partitions: 1,
                retention,
            },
            Box::new(log),
        )
        .unwrap();
    manager
        .create_consumer_group("s", "g", GroupConfig::default())
        .unwrap();
    for seq in 0..10 {
        manager
            .publish_to_topic("s", DirectMessage::new(SeqId(seq), b"m"))
            .unwrap();
    }
    // Offsets 0..7 are trimmed; the group (Earliest) has committed nothing past 0.
    let me = consumer(&manager, "c");
    let failed = manager.consume(me, "s", "g", 100, Duration::ZERO);
    assert!(
        matches!(failed, Err(LiveError::TopicStore { .. })),
        "{failed:?}"
    );
    // The skip is counted and committed past already...
    assert_eq!(
        manager.group_stats("s", "g").unwrap().skipped_by_retention,
        7
    );
    // ...and reported once, by the next batch.
    let batch = manager.consume(me, "s", "g", 100, Duration::ZERO).unwrap();
    assert_eq!(
        batch.retention_skips,
        vec![RetentionSkip {
            partition: 0,
            from: 0,
            to: 7
        }]
    );
    assert_eq!(offsets(&batch), vec![(0, 7), (0, 8), (0, 9)]);
    let next = manager.consume(me, "s", "g", 100, Duration::ZERO).unwrap();
    assert!(next.retention_skips.is_empty(), "{next:?}");
}
