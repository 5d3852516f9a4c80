//! Durable topic log throughput (a benchmark, not a test): appends per second and
//! consume-commit round trips per second, on the fjall log under each sync policy and on
//! the in-memory log, in the same run.
//!
//! `cargo bench --features fjall --bench topic_durable` (LIVECORE_BENCH_MESSAGES sets the
//! messages per case; 20,000 by default).

use std::time::{Duration, Instant};

use livecore::*;

fn manager_with(log: Option<FjallLog>) -> ConnectionsManager {
    let manager = ConnectionsManager::new(ManagerConfig::default()).unwrap();
    match log {
        Some(log) => manager
            .create_topic_with_log("t", TopicConfig::partitions(1), Box::new(log))
            .unwrap(),
        None => manager
            .create_topic("t", TopicConfig::partitions(1))
            .unwrap(),
    }
    manager
        .create_consumer_group("t", "g", GroupConfig::default())
        .unwrap();
    manager
}

/// (appends per second, consume-commit round trips per second)
fn run(manager: &ConnectionsManager, messages: u64) -> (f64, f64) {
    let payload = [7u8; 100];
    let started = Instant::now();
    for seq in 0..messages {
        manager
            .publish_to_topic("t", DirectMessage::new(SeqId(seq), payload))
            .unwrap();
    }
    let appends = messages as f64 / started.elapsed().as_secs_f64();
    let consumer = manager.register_connection().unwrap().connection_id;
    manager
        .authenticate(consumer, UserId::from("bench"), None)
        .unwrap();
    let started = Instant::now();
    let mut rounds = 0u64;
    let mut consumed = 0u64;
    while consumed < messages {
        let batch = manager
            .consume(consumer, "t", "g", 1, Duration::ZERO)
            .unwrap();
        consumed += batch.len() as u64;
        manager.commit_batch(consumer, &batch).unwrap();
        rounds += 1;
    }
    (appends, rounds as f64 / started.elapsed().as_secs_f64())
}

fn main() {
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let messages: u64 = std::env::var("LIVECORE_BENCH_MESSAGES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(20_000);
    println!("{messages} messages of 100 bytes, one partition; rounds consume 1 and commit");
    println!(
        "{:<28} {:>14} {:>22}",
        "log", "appends/s", "consume+commit/s"
    );
    let cases: [(&str, Option<FjallSync>); 4] = [
        ("memory", None),
        (
            "fjall interval 100 ms",
            Some(FjallSync::Interval(Duration::from_millis(100))),
        ),
        (
            "fjall interval 10 ms",
            Some(FjallSync::Interval(Duration::from_millis(10))),
        ),
        ("fjall fsync every append", Some(FjallSync::EveryAppend)),
    ];
    for (name, sync) in cases {
        let dir = std::env::temp_dir().join(format!("livecore-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // Fewer messages under fsync-per-append: each waits for the disk.
        let count = if sync == Some(FjallSync::EveryAppend) {
            (messages / 10).max(1)
        } else {
            messages
        };
        let log = sync.map(|sync| {
            FjallStore::open(&dir, sync)
                .unwrap()
                .topic_log("t", 1, Retention::default())
                .unwrap()
        });
        let manager = manager_with(log);
        let (appends, rounds) = run(&manager, count);
        println!("{name:<28} {appends:>14.0} {rounds:>22.0}");
        drop(manager);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
