//! Helpers shared by the topic tests.

use std::sync::Arc;
use std::time::{Duration, Instant};

use livecore::*;

use crate::common::*;

/// Registers and authenticates a consumer session.
pub fn consumer(manager: &ConnectionsManager, user: &str) -> ConnectionId {
    connect(manager, user).connection_id
}

pub fn bytes_of(message: &TopicMessage) -> String {
    match &message.payload {
        TopicPayload::Bytes(bytes) => String::from_utf8(bytes.to_vec()).unwrap(),
        other => panic!("not a direct message: {other:?}"),
    }
}

pub fn change_of(message: &TopicMessage) -> &RowChange {
    match &message.payload {
        TopicPayload::Change(change) => change,
        other => panic!("not a row change: {other:?}"),
    }
}

pub fn publish_bytes(
    manager: &ConnectionsManager,
    topic: &str,
    seq: u64,
    body: &str,
) -> MessagePosition {
    manager
        .publish_to_topic(topic, DirectMessage::new(SeqId(seq), body))
        .unwrap()
}

pub fn offsets(batch: &ConsumeBatch) -> Vec<(u32, u64)> {
    batch
        .messages
        .iter()
        .map(|message| (message.partition, message.offset))
        .collect()
}

/// A manager with a one-partition topic "events" and a group "g" (earliest, 1 s lease).
pub fn with_topic() -> (Arc<ConnectionsManager>, Arc<ManualClock>) {
    let (manager, clock) = manager();
    manager
        .create_topic("events", TopicConfig::partitions(1))
        .unwrap();
    manager
        .create_consumer_group(
            "events",
            "g",
            GroupConfig::default().lease(Duration::from_secs(1)),
        )
        .unwrap();
    (manager, clock)
}

/// A [`ManualClock`] that does not wake parked consumes when it steps, as a clock that moves
/// by itself would not: only a pass or `check_connections` notices that a lease expired.
pub struct Unstepped(pub Arc<ManualClock>);

impl Clock for Unstepped {
    fn now_ms(&self) -> u64 {
        self.0.now_ms()
    }

    fn monotonic_ms(&self) -> u64 {
        self.0.monotonic_ms()
    }
}

/// The lease of `with_topic_on_unstepped_clock`'s group: long enough that a consume may wait
/// as long (real time) without its timeout ending it before a test advances the clock.
pub const UNSTEPPED_LEASE: Duration = Duration::from_secs(20);

/// [`with_topic`] on an [`Unstepped`] clock, its group's lease `UNSTEPPED_LEASE`.
pub fn with_topic_on_unstepped_clock() -> (Arc<ConnectionsManager>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(1_000_000));
    let manager =
        ConnectionsManager::with_clock(ManagerConfig::default(), Unstepped(clock.clone())).unwrap();
    manager
        .create_topic("events", TopicConfig::partitions(1))
        .unwrap();
    manager
        .create_consumer_group("events", "g", GroupConfig::default().lease(UNSTEPPED_LEASE))
        .unwrap();
    (Arc::new(manager), clock)
}

/// Waits until `done` holds, checking every few milliseconds; false if it still does not
/// after `bound`.
pub fn wait_until(bound: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + bound;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

/// Waits (bounded) until the manager has parked `parks` consumes in all.
pub fn wait_for_parks(manager: &ConnectionsManager, parks: u64) {
    assert!(
        wait_until(Duration::from_secs(20), || manager.stats().consume_parks
            >= parks),
        "no consume parked"
    );
}
