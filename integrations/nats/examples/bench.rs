//! The bridge's benchmark (not a test): commits per second and append-to-receive latency
//! (p50, p99) through the 3-server loopback cluster, with 1 and 2 nodes and 10k
//! subscriptions per node, against the same work in process (publish_commit straight into
//! the manager).
//!
//! Needs the cluster: `integrations/nats/scripts/bench.sh` starts one, runs this and
//! stops it. `LIVECORE_NATS_BENCH_COMMITS` sets the commits per scenario (3000),
//! `LIVECORE_NATS_BENCH_IN_FLIGHT` the appends the writer keeps unacknowledged (64; 1
//! waits for each acknowledgement before the next append).

use std::sync::Arc;
use std::time::{Duration, Instant};

use livecore::*;
use livecore_nats::*;

const SUBSCRIPTIONS_PER_NODE: i64 = 10_000;
const CONNECTIONS_PER_NODE: i64 = 100;

fn table() -> TableId {
    TableId::new("bench", "events")
}

fn connection() -> ConnectionConfig {
    let urls = std::env::var("LIVECORE_NATS_URLS")
        .expect("LIVECORE_NATS_URLS is not set: run integrations/nats/scripts/bench.sh");
    ConnectionConfig {
        servers: urls.split(',').map(str::to_string).collect(),
        auth: Auth::UserPassword {
            user: std::env::var("LIVECORE_NATS_USER").unwrap_or_else(|_| "livecore".into()),
            password: std::env::var("LIVECORE_NATS_PASSWORD")
                .unwrap_or_else(|_| "livecore-test".into()),
        },
        ..ConnectionConfig::default()
    }
}

/// A node's manager with 10k `id = k` subscriptions on 100 connections, and one probe
/// connection subscribed to every row, whose receiver is returned.
fn populated_manager(
    node: u64,
) -> (
    Arc<ConnectionsManager>,
    NotificationReceiver,
    Vec<ConnectionRegistration>,
) {
    let manager = Arc::new(
        ConnectionsManager::new(ManagerConfig {
            node_id: NodeId(node),
            notification_channel_capacity: 100_000,
            max_subscriptions_per_connection: 1000,
            ..ManagerConfig::default()
        })
        .unwrap(),
    );
    manager
        .register_table(TableSchema::new(
            table(),
            TableScope::Shared,
            ["id", "sent_ns"],
        ))
        .unwrap();
    let mut keep = Vec::new();
    for c in 0..CONNECTIONS_PER_NODE {
        let connection = manager.register_connection().unwrap();
        manager
            .authenticate(connection.connection_id, UserId::from("bench"), None)
            .unwrap();
        for k in 0..SUBSCRIPTIONS_PER_NODE / CONNECTIONS_PER_NODE {
            let id = c * (SUBSCRIPTIONS_PER_NODE / CONNECTIONS_PER_NODE) + k;
            manager
                .subscribe(
                    connection.connection_id,
                    QuerySpec::table(table()).filter(Expr::col("id").eq(Expr::lit(id))),
                    SubscriptionOptions::default(),
                )
                .unwrap();
        }
        keep.push(connection);
    }
    let probe = manager.register_connection().unwrap();
    manager
        .authenticate(probe.connection_id, UserId::from("probe"), None)
        .unwrap();
    manager
        .subscribe(
            probe.connection_id,
            QuerySpec::table(table()),
            SubscriptionOptions::default(),
        )
        .unwrap();
    (manager, probe.notifications, keep)
}

fn commit(seq: u64, origin: Instant) -> Vec<ChangeNotification> {
    let row = Row::new(vec![
        Value::Int((seq % SUBSCRIPTIONS_PER_NODE as u64) as i64),
        Value::Int(origin.elapsed().as_nanos() as i64),
    ]);
    vec![ChangeNotification::insert(table(), row)]
}

/// Receives `count` deliveries on a probe and returns each one's latency (now minus the
/// sent time the row carries), in microseconds.
fn probe_latencies(mut probe: NotificationReceiver, count: usize, origin: Instant) -> Vec<f64> {
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        match probe.recv_timeout(Duration::from_secs(30)) {
            Ok(Notification::Changes(set)) => {
                let now = origin.elapsed().as_nanos() as i64;
                for change in set.changes() {
                    if let Some(Value::Int(sent)) = change.row.get("sent_ns") {
                        out.push((now - sent) as f64 / 1000.0);
                    }
                }
            }
            Ok(_) => {}
            Err(error) => panic!("probe stopped after {} deliveries: {error:?}", out.len()),
        }
    }
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(name: &str, mut latencies: Vec<f64>, commits: usize, elapsed: Duration) {
    latencies.sort_by(f64::total_cmp);
    println!(
        "RESULT {name} commits_per_s={:.0} p50_us={:.1} p99_us={:.1}",
        commits as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );
}

async fn through_nats(nodes: u64, commits: usize, in_flight: usize, origin: Instant) {
    let unique = format!("{}_{}", std::process::id(), nodes);
    let stream = StreamConfig {
        stream: format!("BENCH_{unique}"),
        subject: format!("bench.{unique}"),
        schema_bucket: format!("bench_s_{unique}"),
        records_bucket: format!("bench_r_{unique}"),
        max_bytes: 64 << 20,
        ..StreamConfig::default()
    };
    let mut writer = CommitWriter::connect_with(
        &connection(),
        &stream,
        &WriterConfig {
            max_in_flight: in_flight,
            ..WriterConfig::default()
        },
    )
    .await
    .unwrap();
    writer
        .append_schema(TableSchema::new(
            table(),
            TableScope::Shared,
            ["id", "sent_ns"],
        ))
        .await
        .unwrap();
    let mut bridges = Vec::new();
    let mut probes = Vec::new();
    for node in 1..=nodes {
        let (manager, probe, keep) = populated_manager(node);
        let bridge = NodeBridge::start(
            manager,
            NodeConfig {
                node_id: NodeId(node),
                connection: connection(),
                stream: stream.clone(),
                // Records of 10k live queries are written once; keep the loop quiet.
                heartbeat_interval: Duration::from_secs(5),
                ..NodeConfig::default()
            },
        )
        .await
        .unwrap();
        probes.push(tokio::task::spawn_blocking(move || {
            probe_latencies(probe, commits, origin)
        }));
        bridges.push((bridge, keep));
    }
    let start = Instant::now();
    for seq in 1..=commits as u64 {
        writer
            .send_commit(SeqId(seq), &commit(seq, origin))
            .await
            .unwrap();
    }
    let last = writer.flush().await.unwrap().unwrap().stream_seq;
    let mut latencies = Vec::new();
    for probe in probes {
        latencies.extend(probe.await.unwrap());
    }
    let elapsed = start.elapsed();
    for (bridge, _) in &bridges {
        // A probe can hold the last delivery before the node counted its commit.
        assert!(bridge.wait_applied(last, Duration::from_secs(30)).await);
        let stats = bridge.stats();
        assert_eq!(stats.commits_applied, commits as u64, "{stats:?}");
    }
    report(
        &format!("nats_{nodes}_node_in_flight_{in_flight}"),
        latencies,
        commits,
        elapsed,
    );
}

fn in_process(commits: usize, origin: Instant) {
    let (manager, probe, _keep) = populated_manager(1);
    let receiver = std::thread::spawn(move || probe_latencies(probe, commits, origin));
    let start = Instant::now();
    for seq in 1..=commits as u64 {
        manager
            .publish_commit(SeqId(seq), commit(seq, origin))
            .unwrap();
    }
    let latencies = receiver.join().unwrap();
    report("in_process", latencies, commits, start.elapsed());
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let commits: usize = std::env::var("LIVECORE_NATS_BENCH_COMMITS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(3000);
    let in_flight: usize = std::env::var("LIVECORE_NATS_BENCH_IN_FLIGHT")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(WriterConfig::default().max_in_flight);
    let origin = Instant::now();
    eprintln!(
        "{commits} commits per scenario, one insert each matching one of {SUBSCRIPTIONS_PER_NODE} \
         `id = k` subscriptions per node plus an unfiltered probe subscription; the writer \
         keeps up to {in_flight} appends unacknowledged (R3)"
    );
    in_process(commits, origin);
    through_nats(1, commits, in_flight, origin).await;
    through_nats(2, commits, in_flight, origin).await;
}
