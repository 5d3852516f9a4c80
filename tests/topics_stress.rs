//! Stress of publish racing long-poll consume: 16 threads, 100k cycles each test.
//!
//! Run in the `race` profile (release speed, debug assertions):
//! `cargo test --profile race --test topics_stress -- --ignored --nocapture`

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use livecore::*;

const PAIRS: usize = 8;
const CYCLES: usize = 100_000;

/// Eight publisher/consumer pairs, each on its own topic, hand 100k messages over one at a
/// time: the publisher publishes, then waits until its consumer has the message, so nearly
/// every consume parks first and must be woken by the publish. A consume that times out
/// (5 s) with a message waiting would be a lost wake-up; none may happen, and every
/// message arrives exactly once and in order.
#[test]
#[ignore = "slow unoptimised: .ci/test.sh runs it in the race profile with --ignored"]
fn ping_pong_never_loses_a_wake_up() {
    let (manager, _) = manager();
    for pair in 0..PAIRS {
        let topic = format!("pp{pair}");
        manager
            .create_topic(&topic, TopicConfig::default())
            .unwrap();
        manager
            .create_consumer_group(&topic, "g", GroupConfig::default())
            .unwrap();
    }
    let per_pair = CYCLES / PAIRS;
    let parked_timeouts = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut threads = Vec::new();
    for pair in 0..PAIRS {
        let topic = format!("pp{pair}");
        let (ack_tx, ack_rx) = mpsc::channel::<u64>();
        let me = connect(&manager, &format!("consumer{pair}")).connection_id;
        let consumer = {
            let (manager, topic, timeouts) =
                (manager.clone(), topic.clone(), parked_timeouts.clone());
            std::thread::spawn(move || {
                let mut expected = 0u64;
                while expected < per_pair as u64 {
                    let batch = manager
                        .consume(me, &topic, "g", 16, Duration::from_secs(5))
                        .unwrap();
                    if batch.is_empty() {
                        timeouts.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    for message in &batch.messages {
                        assert_eq!(message.seq, SeqId(expected), "pair {pair}");
                        assert_eq!(message.offset, expected, "pair {pair}");
                        expected += 1;
                    }
                    manager.commit_batch(me, &batch).unwrap();
                    ack_tx.send(expected).unwrap();
                }
            })
        };
        let publisher = {
            let manager = manager.clone();
            std::thread::spawn(move || {
                for seq in 0..per_pair as u64 {
                    manager
                        .publish_to_topic(&topic, DirectMessage::new(SeqId(seq), seq.to_le_bytes()))
                        .unwrap();
                    // Wait for the consumer to have it, so its next consume parks.
                    while ack_rx.recv().unwrap() <= seq {}
                }
            })
        };
        threads.push(consumer);
        threads.push(publisher);
    }
    assert_eq!(threads.len(), 16);
    for thread in threads {
        thread.join().unwrap();
    }
    let elapsed = started.elapsed();
    eprintln!("ping-pong: {CYCLES} publish/consume cycles over {PAIRS} pairs in {elapsed:?}");
    assert_eq!(parked_timeouts.load(Ordering::SeqCst), 0, "lost wake-ups");
    let stats = manager.stats();
    assert_eq!(stats.topic_messages, CYCLES as u64);
    // Most consumes parked before their message was published: the race was exercised.
    eprintln!("ping-pong: {} consumes parked", stats.consume_parks);
    assert!(
        stats.consume_parks > CYCLES as u64 / 2,
        "{} parks",
        stats.consume_parks
    );
}

/// (partition, offset, room, id) of a consumed message.
type Received = (u32, u64, i64, i64);

/// Eight publishers feed 100k row changes through a keyed route into an 8-partition topic;
/// eight consumers of one group long-poll it, commit every batch, and come and go
/// (each leaves the group and rejoins every few hundred messages, so partitions keep
/// moving between them). Nothing may be lost; with every batch committed before the next
/// consume, nothing may be duplicated either; and each key's changes arrive in the order
/// they were published.
#[test]
#[ignore = "slow unoptimised: .ci/test.sh runs it in the race profile with --ignored"]
fn shared_group_loses_and_duplicates_nothing() {
    let (manager, _) = manager();
    manager
        .create_topic("rows", TopicConfig::partitions(8))
        .unwrap();
    manager
        .add_topic_route(TopicRouteSpec::new("rows", messages()).key_column("room"))
        .unwrap();
    manager
        .create_consumer_group("rows", "g", GroupConfig::default())
        .unwrap();
    const PUBLISHERS: usize = 8;
    const CONSUMERS: usize = 8;
    let per_publisher = CYCLES / PUBLISHERS;
    let seq = Arc::new(AtomicU64::new(1));
    let consumed = Arc::new(AtomicUsize::new(0));
    let received: Arc<Mutex<Vec<Received>>> = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut threads = Vec::new();
    for publisher in 0..PUBLISHERS {
        let (manager, seq) = (manager.clone(), seq.clone());
        threads.push(std::thread::spawn(move || {
            for index in 0..per_publisher {
                let id = (publisher * per_publisher + index) as i64;
                // Each publisher owns four rooms, so a room's order is its publisher's.
                let room = (publisher * 4 + index % 4) as i64;
                let seq = SeqId(seq.fetch_add(1, Ordering::Relaxed));
                let summary = manager
                    .publish(
                        seq,
                        ChangeNotification::insert(messages(), message(id, room, "m")),
                    )
                    .unwrap();
                assert_eq!(summary.topic_messages, 1);
            }
        }));
    }
    for index in 0..CONSUMERS {
        let (manager, consumed, received) = (manager.clone(), consumed.clone(), received.clone());
        let me = connect(&manager, &format!("consumer{index}")).connection_id;
        threads.push(std::thread::spawn(move || {
            let mut mine = Vec::new();
            let mut since_rejoin = 0;
            while consumed.load(Ordering::SeqCst) < CYCLES {
                let batch = manager
                    .consume(me, "rows", "g", 64, Duration::from_millis(100))
                    .unwrap();
                if batch.is_empty() {
                    continue;
                }
                for message in &batch.messages {
                    let TopicPayload::Change(change) = &message.payload else {
                        panic!("a row change");
                    };
                    let (Value::Int(id), Value::Int(room)) =
                        (change.row.value(0), change.row.value(1))
                    else {
                        panic!("integer id and room");
                    };
                    mine.push((message.partition, message.offset, *room, *id));
                }
                manager.commit_batch(me, &batch).unwrap();
                consumed.fetch_add(batch.len(), Ordering::SeqCst);
                since_rejoin += batch.len();
                if since_rejoin > 300 + index * 50 {
                    since_rejoin = 0;
                    manager.leave_group(me, "rows", "g").unwrap();
                }
            }
            received.lock().unwrap().extend(mine);
        }));
    }
    assert_eq!(threads.len(), 16);
    for thread in threads {
        thread.join().unwrap();
    }
    let elapsed = started.elapsed();
    let mut received = std::mem::take(&mut *received.lock().unwrap());
    eprintln!(
        "shared group: {} messages through 8 consumers in {elapsed:?}",
        received.len()
    );
    assert_eq!(received.len(), CYCLES, "lost or duplicated messages");
    // Exactly the published ids, once each.
    let mut ids: Vec<i64> = received.iter().map(|entry| entry.3).collect();
    ids.sort_unstable();
    assert!(ids.iter().copied().eq(0..CYCLES as i64));
    // Every partition's offsets once each, and each room's ids in publish order.
    received.sort_unstable();
    let mut next_offset: HashMap<u32, u64> = HashMap::new();
    let mut last_id_of_room: HashMap<i64, i64> = HashMap::new();
    for (partition, offset, room, id) in received {
        let expected = next_offset.entry(partition).or_insert(0);
        assert_eq!(offset, *expected, "partition {partition}");
        *expected += 1;
        if let Some(previous) = last_id_of_room.insert(room, id) {
            assert!(previous < id, "room {room}: {previous} then {id}");
        }
    }
    let offsets = manager.group_offsets("rows", "g").unwrap();
    assert!(offsets.iter().all(|partition| partition.lag == 0));
}
