//! The durable topic log (feature `fjall`) under crashes and damage.
//!
//! `acknowledged_appends_survive_sigkill` runs this test binary again as a child process
//! (the `crash_child` test, selected by `LIVECORE_CRASH_DIR`) that appends and commits
//! offsets under load, printing each acknowledgement, and kills it with SIGKILL at a random
//! point; then it reopens the store and checks what was acknowledged. It runs
//! `LIVECORE_CRASH_ITERATIONS` kills (default 30: about a minute in CI); a longer
//! run: `LIVECORE_CRASH_ITERATIONS=500 cargo test --release --features fjall --test
//! topics_durable -- --nocapture`. `LIVECORE_CRASH_SEED` replays a run's kill points.
//!
//! `damaged_files_never_give_a_wrong_message` truncates and corrupts the store's files: a
//! reopen either fails with a store error or recovers a prefix of what was written, and
//! never reads back a wrong message.
//!
//! `per_key_order_holds_across_nacks_and_sigkill` runs a consumer (the `order_child` test,
//! selected by `LIVECORE_ORDER_DIR`) on a topic in the fjall log, publishing keyed
//! messages, nacking some at random and committing the others, and kills it with SIGKILL
//! `LIVECORE_ORDER_ITERATIONS` times (default 8); each key's messages must be processed in
//! log order across nacks and crashes (a message again only after a rewind, never one
//! before its predecessor), and in the end every message of the log is processed.
//!
//! `retention_trims_the_fjall_log_and_the_trim_survives_reopening` checks retention
//! trimming on the fjall log, and that the trimmed bounds, commits and a group's deletion
//! survive reopening the store by path; `byte_retention_counts_what_the_memory_log_counts`
//! that the byte bound keeps the same messages as on `MemoryLog`, before and after a
//! reopen.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use livecore::*;

const PARTITIONS: u32 = 3;
const TOPIC: &str = "events";

fn retention() -> Retention {
    // Large enough that nothing acknowledged in these tests is trimmed.
    Retention {
        max_messages: 10_000_000,
        max_bytes: 1 << 40,
    }
}

fn record(partition: u32, seq: u64) -> TopicRecord {
    TopicRecord {
        seq: SeqId(seq),
        timestamp_ms: seq,
        key: Some(Value::Int(i64::from(partition))),
        payload: TopicPayload::Bytes(format!("p{partition}:s{seq}").into_bytes().into()),
    }
}

fn payload(message: &TopicMessage) -> String {
    match &message.payload {
        TopicPayload::Bytes(bytes) => String::from_utf8(bytes.to_vec()).unwrap(),
        other => panic!("not bytes: {other:?}"),
    }
}

fn sync_for(iteration: u64) -> FjallSync {
    if iteration.is_multiple_of(2) {
        FjallSync::EveryAppend
    } else {
        FjallSync::Interval(Duration::from_millis(50))
    }
}

/// Every message of every partition, read back (each blob's CRC checked by the log).
fn read_all(log: &FjallLog) -> Vec<Vec<Arc<TopicMessage>>> {
    (0..PARTITIONS)
        .map(|partition| {
            let bounds = log.bounds(partition).unwrap();
            let mut out = Vec::new();
            let mut offset = bounds.start;
            while offset < bounds.end {
                let before = out.len();
                log.read(partition, offset, 1_000, &mut out).unwrap();
                assert!(out.len() > before, "a read below the end found nothing");
                offset = bounds.start + out.len() as u64;
            }
            out.into_iter().map(|m| Arc::new((*m).clone())).collect()
        })
        .collect()
}

/// The child: appends and commits until killed, printing each acknowledgement. Not a test
/// of its own: the crash test runs it, in a child process.
#[test]
#[ignore = "the child process of acknowledged_appends_survive_sigkill"]
fn crash_child() {
    let Ok(dir) = std::env::var("LIVECORE_CRASH_DIR") else {
        return; // Only the crash test runs this, as a child process.
    };
    let iteration: u64 = std::env::var("LIVECORE_CRASH_ITERATION")
        .unwrap()
        .parse()
        .unwrap();
    let store = FjallStore::open(&dir, sync_for(iteration)).unwrap();
    let log = store.topic_log(TOPIC, PARTITIONS, retention()).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY").unwrap();
    out.flush().unwrap();
    let mut seq = iteration * 1_000_000;
    let mut step = 0u64;
    loop {
        step += 1;
        let partition = (step % u64::from(PARTITIONS)) as u32;
        let count = 1 + step % 3;
        let records: Vec<_> = (0..count).map(|n| record(partition, seq + n)).collect();
        let first = log.append(partition, records).unwrap();
        for n in 0..count {
            writeln!(out, "A {partition} {} {}", first + n, seq + n).unwrap();
        }
        out.flush().unwrap();
        seq += count;
        if step.is_multiple_of(4) {
            // Commit somewhere at or below the end, moving forward.
            let end = log.bounds(partition).unwrap().end;
            let committed = log.committed_offset("g", partition).unwrap().unwrap_or(0);
            let offset = committed.max(end.saturating_sub(step % 5));
            log.commit_offset("g", partition, offset).unwrap();
            writeln!(out, "C {partition} {offset}").unwrap();
            out.flush().unwrap();
        }
    }
}

fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("livecore-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    let iterations: u64 = std::env::var("LIVECORE_CRASH_ITERATIONS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(30);
    let seed: u64 = std::env::var("LIVECORE_CRASH_SEED")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("crash test: {iterations} kills, LIVECORE_CRASH_SEED={seed}");
    let mut random = seed;
    let dir = temp_dir("crash");
    let exe = std::env::current_exe().unwrap();
    // Everything ever acknowledged: (partition, offset) -> seq; the highest commit seen.
    let mut acked: HashMap<(u32, u64), u64> = HashMap::new();
    let mut committed_floor = [0u64; PARTITIONS as usize];
    let mut total_acked = 0usize;
    for iteration in 0..iterations {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("LIVECORE_CRASH_DIR", &dir)
            .env("LIVECORE_CRASH_ITERATION", iteration.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let reader = {
            let lines = Arc::clone(&lines);
            let stdout = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push(line);
                }
            })
        };
        // Wait (bounded) until the child has opened the store, then kill it at a random
        // point of its work.
        let mut waited = 0;
        while !lines.lock().unwrap().iter().any(|l| l.ends_with("READY")) && waited < 20_000 {
            std::thread::sleep(Duration::from_millis(5));
            waited += 5;
        }
        assert!(
            lines.lock().unwrap().iter().any(|l| l.ends_with("READY")),
            "the child never opened the store (iteration {iteration})"
        );
        std::thread::sleep(Duration::from_millis(next_random(&mut random) % 400));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        for line in lines.lock().unwrap().iter() {
            let fields: Vec<&str> = line.split(' ').collect();
            match fields.as_slice() {
                ["A", partition, offset, seq] => {
                    acked.insert(
                        (partition.parse().unwrap(), offset.parse().unwrap()),
                        seq.parse().unwrap(),
                    );
                    total_acked += 1;
                }
                ["C", partition, offset] => {
                    let partition: usize = partition.parse().unwrap();
                    let offset: u64 = offset.parse().unwrap();
                    committed_floor[partition] = committed_floor[partition].max(offset);
                }
                _ => {}
            }
        }
        // Reopen (the scan refuses non-contiguous offsets or a damaged record).
        let store = FjallStore::open(&dir, sync_for(iteration)).unwrap();
        let log = store.topic_log(TOPIC, PARTITIONS, retention()).unwrap();
        let messages = read_all(&log);
        for (partition, messages) in messages.iter().enumerate() {
            let bounds = log.bounds(partition as u32).unwrap();
            assert_eq!(bounds.start, 0, "nothing was trimmed");
            for (index, message) in messages.iter().enumerate() {
                assert_eq!(message.offset, index as u64, "offsets are contiguous");
                assert_eq!(message.partition, partition as u32);
                assert_eq!(
                    payload(message),
                    format!("p{partition}:s{}", message.seq.0),
                    "the message is the one written"
                );
            }
            let committed = log.committed_offset("g", partition as u32).unwrap();
            let committed = committed.unwrap_or(0);
            assert!(
                committed >= committed_floor[partition],
                "partition {partition}: committed {committed} is behind the acknowledged {}",
                committed_floor[partition]
            );
            assert!(committed <= bounds.end);
            // Commits never move backwards across crashes.
            committed_floor[partition] = committed;
        }
        for ((partition, offset), seq) in &acked {
            let message = messages[*partition as usize]
                .get(*offset as usize)
                .unwrap_or_else(|| {
                    panic!("acknowledged {partition}/{offset} lost (iteration {iteration})")
                });
            assert_eq!(message.seq.0, *seq, "acknowledged {partition}/{offset}");
        }
        drop(log);
        drop(store);
    }
    println!("crash test: {total_acked} acknowledged appends checked over {iterations} kills");
    assert!(total_acked > 0, "the children acknowledged something");
    let _ = std::fs::remove_dir_all(&dir);
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

#[test]
fn damaged_files_never_give_a_wrong_message() {
    let pristine = temp_dir("damage-pristine");
    let mut written: Vec<Vec<u64>> = vec![Vec::new(); PARTITIONS as usize];
    {
        let store = FjallStore::open(&pristine, FjallSync::EveryAppend).unwrap();
        let log = store.topic_log(TOPIC, PARTITIONS, retention()).unwrap();
        for seq in 0..300u64 {
            let partition = (seq % u64::from(PARTITIONS)) as u32;
            log.append(partition, vec![record(partition, seq)]).unwrap();
            written[partition as usize].push(seq);
        }
        log.commit_offset("g", 0, 7).unwrap();
    }
    let files = files_under(&pristine);
    assert!(!files.is_empty());
    let mut outcomes = (0usize, 0usize); // (refused, recovered)
    for (index, file) in files.iter().enumerate() {
        let len = std::fs::metadata(file).unwrap().len();
        if len == 0 {
            continue;
        }
        for damage in ["truncate", "flip"] {
            let copy = temp_dir(&format!("damage-{index}-{damage}"));
            copy_dir(&pristine, &copy);
            let target = copy.join(file.strip_prefix(&pristine).unwrap());
            let mut bytes = std::fs::read(&target).unwrap();
            match damage {
                "truncate" => bytes.truncate(bytes.len() / 2),
                _ => {
                    let at = bytes.len() * 2 / 3;
                    bytes[at] ^= 0x5A;
                }
            }
            std::fs::write(&target, &bytes).unwrap();
            let opened = FjallStore::open(&copy, FjallSync::EveryAppend)
                .and_then(|store| store.topic_log(TOPIC, PARTITIONS, retention()));
            match opened {
                Err(TopicLogError::Store(_)) => outcomes.0 += 1,
                Err(other) => panic!("{file:?} {damage}: not a store error: {other:?}"),
                Ok(log) => {
                    // Recovered: every partition reads back a prefix of what was written,
                    // or refuses a damaged record with a store error.
                    for partition in 0..PARTITIONS {
                        let bounds = log.bounds(partition).unwrap();
                        let mut out = Vec::new();
                        match log.read(partition, bounds.start, 10_000, &mut out) {
                            Ok(()) => {
                                for message in &out {
                                    let seqs = &written[partition as usize];
                                    assert_eq!(
                                        Some(&message.seq.0),
                                        seqs.get(message.offset as usize),
                                        "{file:?} {damage}: a wrong message"
                                    );
                                    assert_eq!(
                                        payload(message),
                                        format!("p{partition}:s{}", message.seq.0)
                                    );
                                }
                            }
                            Err(TopicLogError::Store(_)) => {}
                            Err(other) => panic!("{file:?} {damage}: {other:?}"),
                        }
                    }
                    outcomes.1 += 1;
                }
            }
            let _ = std::fs::remove_dir_all(&copy);
        }
    }
    println!("damage: {} refused, {} recovered", outcomes.0, outcomes.1);
    assert!(outcomes.0 + outcomes.1 > 0);
    let _ = std::fs::remove_dir_all(&pristine);
}

const ORDER_TOPIC: &str = "orders";
const ORDER_PARTITIONS: u32 = 2;
const ORDER_KEYS: u64 = 5;

fn order_manager(dir: &str) -> (ConnectionsManager, ConnectionId) {
    let store = FjallStore::open(dir, FjallSync::Interval(Duration::from_millis(20))).unwrap();
    // Within the manager's retention limits, and more than these runs write.
    let config = TopicConfig::partitions(ORDER_PARTITIONS).retention(1_000_000, 1 << 30);
    // The group resumes at the offsets the store committed for it.
    manager_on(&store, ORDER_TOPIC, config)
}

/// A manager with topic `topic` on `store`'s log of it, a group "g" and an authenticated
/// consumer.
fn manager_on(
    store: &Arc<FjallStore>,
    topic: &str,
    config: TopicConfig,
) -> (ConnectionsManager, ConnectionId) {
    let log = store
        .topic_log(topic, config.partitions, config.retention)
        .unwrap();
    let manager = ConnectionsManager::new(ManagerConfig::default()).unwrap();
    manager
        .create_topic_with_log(topic, config, Box::new(log))
        .unwrap();
    manager
        .create_consumer_group(topic, "g", GroupConfig::default())
        .unwrap();
    let consumer = worker(&manager);
    (manager, consumer)
}

/// A registered connection authenticated as "worker".
fn worker(manager: &ConnectionsManager) -> ConnectionId {
    let consumer = manager.register_connection().unwrap().connection_id;
    manager
        .authenticate(consumer, UserId::from("worker"), None)
        .unwrap();
    consumer
}

fn message_id(message: &TopicMessage) -> String {
    payload(message)
}

/// The child: publishes keyed messages and consumes them, nacking some at random (which
/// rewinds the partition) and committing the others one by one, printing each message
/// before it commits it, until killed.
#[test]
#[ignore = "the child process of per_key_order_holds_across_nacks_and_sigkill"]
fn order_child() {
    let Ok(dir) = std::env::var("LIVECORE_ORDER_DIR") else {
        return; // Only the ordering test runs this, as a child process.
    };
    let iteration: u64 = std::env::var("LIVECORE_ORDER_ITERATION")
        .unwrap()
        .parse()
        .unwrap();
    let (manager, consumer) = order_manager(&dir);
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY").unwrap();
    out.flush().unwrap();
    let mut random = (iteration + 1) * 0x9E37_79B9_7F4A_7C15;
    let mut published = 0u64;
    loop {
        for _ in 0..1 + next_random(&mut random) % 3 {
            let key = next_random(&mut random) % ORDER_KEYS;
            let id = format!("k{key}-i{iteration}-n{published}");
            let message = DirectMessage::new(SeqId(published + 1), id.as_bytes()).key(key as i64);
            manager.publish_to_topic(ORDER_TOPIC, message).unwrap();
            published += 1;
        }
        let batch = manager
            .consume(consumer, ORDER_TOPIC, "g", 8, Duration::ZERO)
            .unwrap();
        // A nack rewinds its partition: the rest of the batch on that partition comes
        // again, so it is not processed now; other partitions go on.
        let mut rewound = [false; ORDER_PARTITIONS as usize];
        for message in &batch.messages {
            let partition = message.partition;
            if rewound[partition as usize] {
                continue;
            }
            if next_random(&mut random).is_multiple_of(4) {
                manager
                    .nack(
                        consumer,
                        ORDER_TOPIC,
                        "g",
                        partition,
                        message.offset,
                        Duration::ZERO,
                    )
                    .unwrap();
                rewound[partition as usize] = true;
                writeln!(out, "N {}", message_id(message)).unwrap();
                continue;
            }
            writeln!(out, "P {}", message_id(message)).unwrap();
            out.flush().unwrap();
            manager
                .commit_offset(consumer, ORDER_TOPIC, "g", partition, message.offset + 1)
                .unwrap();
        }
    }
}

/// Checks that key `key`'s processed messages (`processed`, in processing order) follow
/// its log order `log`: each is the successor of the last one or, after a rewind (a nack
/// or a crash), one already processed; never one further on.
fn check_key_order(key: &str, log: &[String], processed: &[String]) -> usize {
    let index: HashMap<&str, usize> = log
        .iter()
        .enumerate()
        .map(|(at, id)| (id.as_str(), at))
        .collect();
    let mut last: Option<usize> = None;
    let mut highest: Option<usize> = None;
    for id in processed {
        let at = *index
            .get(id.as_str())
            .unwrap_or_else(|| panic!("{key}: processed {id}, which the log does not hold"));
        let allowed = highest.map_or(0, |highest| highest + 1);
        assert!(
            at <= allowed,
            "{key}: {id} (position {at}) processed after position {last:?}, before its predecessor (highest processed {highest:?})"
        );
        last = Some(at);
        highest = Some(highest.map_or(at, |highest: usize| highest.max(at)));
    }
    highest.map_or(0, |highest| highest + 1)
}

#[test]
fn per_key_order_holds_across_nacks_and_sigkill() {
    let iterations: u64 = std::env::var("LIVECORE_ORDER_ITERATIONS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(8);
    let seed: u64 = std::env::var("LIVECORE_CRASH_SEED")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("ordering test: {iterations} kills, LIVECORE_CRASH_SEED={seed}");
    let mut random = seed;
    let dir = temp_dir("order");
    let exe = std::env::current_exe().unwrap();
    let mut processed: Vec<String> = Vec::new();
    let mut nacks = 0;
    for iteration in 0..iterations {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "order_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("LIVECORE_ORDER_DIR", &dir)
            .env("LIVECORE_ORDER_ITERATION", iteration.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let reader = {
            let lines = Arc::clone(&lines);
            let stdout = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().unwrap().push(line);
                }
            })
        };
        let mut waited = 0;
        while !lines.lock().unwrap().iter().any(|l| l.ends_with("READY")) && waited < 20_000 {
            std::thread::sleep(Duration::from_millis(5));
            waited += 5;
        }
        assert!(
            lines.lock().unwrap().iter().any(|l| l.ends_with("READY")),
            "the child never opened the store (iteration {iteration})"
        );
        std::thread::sleep(Duration::from_millis(50 + next_random(&mut random) % 300));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        reader.join().unwrap();
        let lines = lines.lock().unwrap();
        processed.extend(
            lines
                .iter()
                .filter_map(|line| line.strip_prefix("P "))
                .map(String::from),
        );
        nacks += lines.iter().filter(|line| line.starts_with("N ")).count();
    }
    // A last consumer drains what is left, without nacks, and the log is read whole.
    let dir_text = dir.to_str().unwrap().to_string();
    let (manager, consumer) = order_manager(&dir_text);
    loop {
        let batch = manager
            .consume(consumer, ORDER_TOPIC, "g", 100, Duration::ZERO)
            .unwrap();
        if batch.messages.is_empty() {
            break;
        }
        processed.extend(batch.messages.iter().map(|message| message_id(message)));
        manager.commit_batch(consumer, &batch).unwrap();
    }
    let mut log: HashMap<String, Vec<String>> = HashMap::new();
    for partition in 0..ORDER_PARTITIONS {
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let read = manager
                .read_topic(ORDER_TOPIC, partition, offset, 1_000)
                .unwrap();
            if read.is_empty() {
                break;
            }
            offset += read.len() as u64;
            out.extend(read);
        }
        for (at, message) in out.iter().enumerate() {
            assert_eq!(message.offset, at as u64, "offsets are contiguous");
            let id = message_id(message);
            let key = id.split('-').next().unwrap().to_string();
            log.entry(key).or_default().push(id);
        }
    }
    let mut by_key: HashMap<String, Vec<String>> = HashMap::new();
    for id in &processed {
        let key = id.split('-').next().unwrap().to_string();
        by_key.entry(key).or_default().push(id.clone());
    }
    let mut total = 0;
    for (key, ids) in &log {
        let done = check_key_order(key, ids, by_key.get(key).map_or(&[][..], |v| v));
        assert_eq!(
            done,
            ids.len(),
            "{key}: every message of the log is processed"
        );
        total += ids.len();
    }
    let processed_again = processed.len() - total;
    println!(
        "ordering test: {total} messages over {} keys in order, {nacks} nacks, {processed_again} processed again after a crash",
        log.len()
    );
    assert!(total > 0);
    assert!(nacks > 0, "the children nacked something");
    drop(manager);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The bodies of `messages`, with their offsets.
fn offsets_and_bodies<M: std::ops::Deref<Target = TopicMessage>>(
    messages: &[M],
) -> Vec<(u64, String)> {
    messages
        .iter()
        .map(|message| (message.offset, payload(message)))
        .collect()
}

/// Retention trims the fjall log: the start moves, a trimmed offset reads as out of range
/// (never as other data), and the trimmed bounds, the kept messages, a group's commit and
/// a deleted group's absence all survive dropping and reopening the store by path.
#[test]
fn retention_trims_the_fjall_log_and_the_trim_survives_reopening() {
    const KEPT: &str = "kept";
    let dir = temp_dir("retention");
    let config = TopicConfig::partitions(1).retention(3, 1 << 20);
    let expected_tail: Vec<(u64, String)> = (7..10).map(|at| (at, format!("m{at}"))).collect();
    {
        let store = FjallStore::open(&dir, FjallSync::EveryAppend).unwrap();
        let log = store.topic_log(KEPT, 1, config.retention).unwrap();
        let manager = ConnectionsManager::new(ManagerConfig::default()).unwrap();
        manager
            .create_topic_with_log(KEPT, config, Box::new(log))
            .unwrap();
        for seq in 0..10u64 {
            manager
                .publish_to_topic(KEPT, DirectMessage::new(SeqId(seq), format!("m{seq}")))
                .unwrap();
        }
        let bounds = manager.topic_info(KEPT).unwrap().bounds;
        assert_eq!(bounds, [PartitionBounds { start: 7, end: 10 }]);
        for trimmed in [0, 6] {
            match manager.read_topic(KEPT, 0, trimmed, 10) {
                Err(LiveError::OffsetOutOfRange {
                    offset, start, end, ..
                }) => assert_eq!((offset, start, end), (trimmed, 7, 10)),
                other => panic!("offset {trimmed} was trimmed, read gave {other:?}"),
            }
        }
        let kept = manager.read_topic(KEPT, 0, 7, 10).unwrap();
        assert_eq!(offsets_and_bodies(&kept), expected_tail);

        // Two groups commit what is left; one is then deleted.
        let consumer = worker(&manager);
        for group in ["g", "gone"] {
            manager
                .create_consumer_group(KEPT, group, GroupConfig::default())
                .unwrap();
            let batch = manager
                .consume(consumer, KEPT, group, 10, Duration::ZERO)
                .unwrap();
            assert_eq!(offsets_and_bodies(&batch.messages), expected_tail);
            manager.commit_batch(consumer, &batch).unwrap();
        }
        manager.delete_consumer_group(KEPT, "gone").unwrap();
        // Dropping the manager drops its log and, with it, the store.
    }
    let store = FjallStore::open(&dir, FjallSync::EveryAppend).unwrap();
    let log = store.topic_log(KEPT, 1, config.retention).unwrap();
    assert_eq!(
        log.bounds(0).unwrap(),
        PartitionBounds { start: 7, end: 10 }
    );
    let mut out = Vec::new();
    match log.read(0, 3, 10, &mut out) {
        Err(TopicLogError::OutOfRange(bounds)) => {
            assert_eq!(bounds, PartitionBounds { start: 7, end: 10 })
        }
        other => panic!("offset 3 was trimmed, read gave {other:?}"),
    }
    assert!(out.is_empty(), "a trimmed read returned messages");
    log.read(0, 7, 10, &mut out).unwrap();
    assert_eq!(offsets_and_bodies(&out), expected_tail);
    assert_eq!(log.committed_offset("g", 0).unwrap(), Some(10));
    assert_eq!(log.committed_offset("gone", 0).unwrap(), None);
    // Retention keeps trimming after the reopen.
    assert_eq!(log.append(0, vec![record(0, 10)]).unwrap(), 10);
    assert_eq!(
        log.bounds(0).unwrap(),
        PartitionBounds { start: 8, end: 11 }
    );
    drop(log);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Byte retention on the fjall log counts what `MemoryLog` counts
/// (`TopicMessage::size_bytes`, not the stored blob's length), on appends and after a
/// reopen (where the sizes are rebuilt from the stored records): fed the same records, both
/// logs keep the same offsets.
#[test]
fn byte_retention_counts_what_the_memory_log_counts() {
    const SIZED: &str = "sized";
    let dir = temp_dir("byte-retention");
    let sized = |seq: u64| TopicRecord {
        seq: SeqId(seq),
        timestamp_ms: seq,
        key: seq
            .is_multiple_of(3)
            .then(|| Value::text(&format!("key-{seq}"))),
        payload: TopicPayload::Bytes(vec![b'x'; (seq * 37 % 200) as usize].into()),
    };
    // About four messages' worth, so most appends trim.
    let retention = Retention {
        max_messages: 1_000,
        max_bytes: 4 * sized(1).size_bytes() as u64 + 150,
    };
    let memory = MemoryLog::new(1, retention).unwrap();
    let feed = |log: &FjallLog, records: std::ops::Range<u64>| {
        for seq in records {
            let first = memory.append(0, vec![sized(seq)]).unwrap();
            assert_eq!(log.append(0, vec![sized(seq)]).unwrap(), first);
            assert_eq!(
                log.bounds(0).unwrap(),
                memory.bounds(0).unwrap(),
                "after appending {seq}"
            );
        }
    };
    {
        let store = FjallStore::open(&dir, FjallSync::EveryAppend).unwrap();
        let log = store.topic_log(SIZED, 1, retention).unwrap();
        feed(&log, 0..20);
        // Several records in one append trim as one.
        let batch: Vec<TopicRecord> = (20..23).map(sized).collect();
        memory.append(0, batch.clone()).unwrap();
        log.append(0, batch).unwrap();
        assert_eq!(log.bounds(0).unwrap(), memory.bounds(0).unwrap());
    }
    let store = FjallStore::open(&dir, FjallSync::EveryAppend).unwrap();
    let log = store.topic_log(SIZED, 1, retention).unwrap();
    assert_eq!(log.bounds(0).unwrap(), memory.bounds(0).unwrap());
    feed(&log, 23..40);
    let bounds = log.bounds(0).unwrap();
    assert!(
        bounds.start > 30 && bounds.end - bounds.start > 1,
        "bytes trimmed, several messages kept: {bounds:?}"
    );
    drop(log);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Names the store cannot key and partition counts past the bound are typed errors, and a
/// refused open leaves nothing behind: the same topic opens once given a usable shape.
#[test]
fn unkeyable_names_and_huge_shapes_are_refused_without_a_trace() {
    let dir = temp_dir("unkeyable");
    let store = FjallStore::open(&dir, FjallSync::EveryAppend).unwrap();
    let long = "t".repeat(65_530);
    for _ in 0..2 {
        let Err(error) = store.topic_log(&long, 1, Retention::default()) else {
            panic!("a 65,530-byte topic name was opened");
        };
        assert!(error.to_string().contains("too long"), "{error}");
    }
    let Err(error) = store.topic_log("big", MAX_TOPIC_PARTITIONS + 1, Retention::default()) else {
        panic!("a topic past the partition bound was opened");
    };
    assert!(error.to_string().contains("partitions"), "{error}");
    let log = store.topic_log("big", 2, Retention::default()).unwrap();
    drop(log);
    // A stored topic reopened with another shape is refused, each time for its shape:
    // the failed load does not leave it marked as open.
    for _ in 0..2 {
        let Err(error) = store.topic_log("big", 3, Retention::default()) else {
            panic!("a stored topic reopened with another shape");
        };
        assert!(error.to_string().contains("2 partitions"), "{error}");
    }
    let log = store.topic_log("big", 2, Retention::default()).unwrap();
    // A group name that, with the topic's, no key can hold.
    let long_topic = "n".repeat(40_000);
    drop(log);
    let log = store
        .topic_log(&long_topic, 1, Retention::default())
        .unwrap();
    let Err(error) = log.committed_offset(&"g".repeat(30_000), 0) else {
        panic!("a group key past the store's limit was read");
    };
    assert!(error.to_string().contains("too long"), "{error}");
    drop(log);
    let _ = std::fs::remove_dir_all(dir);
}

/// A consume that skips a range retention removed moves the group's committed offset, and
/// the store keeps the move: after a reopen the group starts there, and the skip is not
/// reported (or counted) again.
#[test]
fn a_retention_skip_of_the_committed_offset_survives_reopening() {
    const SKIPPED: &str = "skipped";
    let dir = temp_dir("retention_skip");
    let config = TopicConfig::partitions(1).retention(3, 1 << 20);
    {
        let store = FjallStore::open(&dir, FjallSync::EveryAppend).unwrap();
        let (manager, consumer) = manager_on(&store, SKIPPED, config);
        manager
            .publish_to_topic(SKIPPED, DirectMessage::new(SeqId(0), "m0"))
            .unwrap();
        let first = manager
            .consume(consumer, SKIPPED, "g", 1, Duration::ZERO)
            .unwrap();
        manager.commit_batch(consumer, &first).unwrap();
        for seq in 1..10u64 {
            manager
                .publish_to_topic(SKIPPED, DirectMessage::new(SeqId(seq), format!("m{seq}")))
                .unwrap();
        }
        // Offsets 1..7 were trimmed before the group finished them.
        let batch = manager
            .consume(consumer, SKIPPED, "g", 10, Duration::ZERO)
            .unwrap();
        assert_eq!(
            batch.retention_skips,
            [RetentionSkip {
                partition: 0,
                from: 1,
                to: 7
            }]
        );
        let offsets = manager.group_offsets(SKIPPED, "g").unwrap();
        assert_eq!(offsets[0].committed, Some(7));
    }
    let store = FjallStore::open(&dir, FjallSync::EveryAppend).unwrap();
    let (manager, consumer) = manager_on(&store, SKIPPED, config);
    assert_eq!(
        manager.group_offsets(SKIPPED, "g").unwrap()[0].committed,
        Some(7)
    );
    let batch = manager
        .consume(consumer, SKIPPED, "g", 10, Duration::ZERO)
        .unwrap();
    assert!(
        batch.retention_skips.is_empty(),
        "{:?}",
        batch.retention_skips
    );
    assert_eq!(
        batch.messages.iter().map(|m| m.offset).collect::<Vec<_>>(),
        [7, 8, 9]
    );
    drop(manager);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Deleting a topic erases it from the fjall store: created again under its name (with
/// another shape, even), it starts empty, and its groups start with no committed offset.
#[test]
fn a_deleted_topic_leaves_nothing_in_the_store() {
    let dir = temp_dir("deleted_topic");
    let store = FjallStore::open(&dir, FjallSync::EveryAppend).unwrap();
    let manager = ConnectionsManager::new(ManagerConfig::default()).unwrap();
    let consumer = worker(&manager);
    let create = |partitions: u32| {
        let config = TopicConfig::partitions(partitions);
        let log = store.topic_log("t", partitions, config.retention).unwrap();
        manager
            .create_topic_with_log("t", config, Box::new(log))
            .unwrap();
        manager
            .create_consumer_group("t", "g", GroupConfig::default())
            .unwrap();
    };
    // A neighbour whose name the deleted one's is a prefix of keeps everything.
    let config = TopicConfig::partitions(1);
    let neighbour = store.topic_log("tt", 1, config.retention).unwrap();
    manager
        .create_topic_with_log("tt", config, Box::new(neighbour))
        .unwrap();
    manager
        .publish_to_topic("tt", DirectMessage::new(SeqId(0), "kept"))
        .unwrap();
    create(1);
    for seq in 0..3u64 {
        manager
            .publish_to_topic("t", DirectMessage::new(SeqId(seq), format!("m{seq}")))
            .unwrap();
    }
    let batch = manager
        .consume(consumer, "t", "g", 2, Duration::ZERO)
        .unwrap();
    manager.commit_batch(consumer, &batch).unwrap();
    manager.delete_topic("t").unwrap();
    create(2);
    let info = manager.topic_info("t").unwrap();
    assert_eq!(
        info.bounds,
        [
            PartitionBounds { start: 0, end: 0 },
            PartitionBounds { start: 0, end: 0 }
        ]
    );
    let offsets = manager.group_offsets("t", "g").unwrap();
    assert!(
        offsets
            .iter()
            .all(|partition| partition.committed == Some(0)),
        "{offsets:?}"
    );
    assert_eq!(
        manager.topic_info("tt").unwrap().bounds,
        [PartitionBounds { start: 0, end: 1 }]
    );
    drop(manager);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A log whose topic was deleted erases every key, however many (in batches), and takes
/// no append or commit after: a topic created again under the name finds nothing.
#[test]
fn a_deleted_log_erases_everything_and_writes_nothing_after() {
    let dir = temp_dir("erased_log");
    let store = FjallStore::open(&dir, FjallSync::Interval(Duration::from_millis(50))).unwrap();
    let log = store.topic_log("big", 2, retention()).unwrap();
    for partition in 0..2u32 {
        let records: Vec<TopicRecord> = (0..6_000u64).map(|seq| record(partition, seq)).collect();
        log.append(partition, records).unwrap();
    }
    log.commit_offset("g", 1, 17).unwrap();
    log.delete_topic().unwrap();
    assert!(
        log.append(0, vec![record(0, 1)]).is_err(),
        "an append after the erase"
    );
    assert!(
        log.commit_offset("g", 0, 1).is_err(),
        "a commit after the erase"
    );
    drop(log);
    let again = store.topic_log("big", 3, retention()).unwrap();
    for partition in 0..3u32 {
        assert_eq!(
            again.bounds(partition).unwrap(),
            PartitionBounds { start: 0, end: 0 }
        );
    }
    assert_eq!(again.committed_offset("g", 1).unwrap(), None);
    drop(again);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn reads_racing_retention_trims_never_see_a_damaged_partition() {
    // Two writers append to a partition whose retention keeps 200 messages, so every
    // append trims its front; a reader reads the partition from its retained start. A
    // trim landing halfway through a read must read as the start having moved (out of
    // range) or not at all, never as a hole in the middle ("damaged partition").
    let dir = temp_dir("read-race");
    let store = FjallStore::open(&dir, FjallSync::Interval(Duration::from_millis(100))).unwrap();
    let retention = Retention {
        max_messages: 200,
        max_bytes: 1 << 30,
    };
    let log = Arc::new(store.topic_log(TOPIC, 1, retention).unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|writer| {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut seq = writer * 1_000_000_000;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    seq += 1;
                    log.append(0, vec![record(0, seq)]).unwrap();
                }
            })
        })
        .collect();
    // Stops the writers however the loop below ends (a failed assertion included).
    struct StopOnDrop(Arc<std::sync::atomic::AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    let stopping = StopOnDrop(stop.clone());
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let mut out = Vec::new();
    while std::time::Instant::now() < deadline {
        let start = log.bounds(0).unwrap().start;
        out.clear();
        match log.read(0, start, 200, &mut out) {
            Ok(()) | Err(TopicLogError::OutOfRange(_)) => {}
            Err(error) => panic!("a read racing retention failed: {error}"),
        }
        for (index, message) in out.iter().enumerate() {
            assert_eq!(message.offset, start + index as u64);
        }
    }
    drop(stopping);
    for writer in writers {
        writer.join().unwrap();
    }
    drop(log);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
