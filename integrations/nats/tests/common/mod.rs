//! Shared test support: the cluster that ci.sh started, unique stream names, nodes,
//! clients, and the writer's own record of what it committed.
#![allow(dead_code)]

pub mod single_server;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use livecore::*;
use livecore_nats::*;

/// The cluster's client URLs and credentials, from the variables ci.sh exports.
pub fn connection() -> ConnectionConfig {
    let urls = std::env::var("LIVECORE_NATS_URLS").expect(
        "LIVECORE_NATS_URLS is not set: run integrations/nats/ci.sh, which starts the \
         3-server cluster and exports it",
    );
    ConnectionConfig {
        servers: urls.split(',').map(str::to_string).collect(),
        auth: Auth::UserPassword {
            user: std::env::var("LIVECORE_NATS_USER").unwrap_or_else(|_| "livecore".into()),
            password: std::env::var("LIVECORE_NATS_PASSWORD")
                .unwrap_or_else(|_| "livecore-test".into()),
        },
        request_timeout: Duration::from_secs(5),
        ..ConnectionConfig::default()
    }
}

/// A stream and buckets of their own for one test, replicated on all three servers.
pub fn stream_config(test: &str) -> StreamConfig {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let unique = format!(
        "{}_{}_{}",
        test,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    StreamConfig {
        stream: format!("T_{unique}"),
        subject: format!("t.{unique}.commits"),
        schema_bucket: format!("s_{unique}"),
        records_bucket: format!("r_{unique}"),
        replicas: 3,
        // Small: JetStream reserves a stream's byte limit on every replica.
        max_bytes: 16 << 20,
        ..StreamConfig::default()
    }
}

pub fn items() -> TableId {
    TableId::new("app", "items")
}

pub fn items_schema() -> TableSchema {
    TableSchema::new(items(), TableScope::Shared, ["id", "room", "body"])
}

pub fn node_config(node: u64, stream: &StreamConfig) -> NodeConfig {
    NodeConfig {
        node_id: NodeId(node),
        connection: connection(),
        stream: stream.clone(),
        consumer_heartbeat: Duration::from_millis(500),
        heartbeat_interval: Duration::from_millis(300),
        node_stale_after: Duration::from_secs(2),
        max_clock_skew: Duration::from_millis(500),
        ..NodeConfig::default()
    }
}

pub fn manager(node: u64) -> Arc<ConnectionsManager> {
    Arc::new(
        ConnectionsManager::new(ManagerConfig {
            node_id: NodeId(node),
            notification_channel_capacity: 100_000,
            gate_buffer_capacity: 100_000,
            ..ManagerConfig::default()
        })
        .unwrap(),
    )
}

pub async fn start_node(node: u64, stream: &StreamConfig) -> NodeBridge {
    NodeBridge::start(manager(node), node_config(node, stream))
        .await
        .unwrap()
}

/// A client on a node: a connection, authenticated.
pub fn client(manager: &ConnectionsManager, user: &str) -> ConnectionRegistration {
    let connection = manager.register_connection().unwrap();
    manager
        .authenticate(connection.connection_id, UserId::from(user), None)
        .unwrap();
    connection
}

/// The commit `seq` of the standard workload: one to three inserts or updates across
/// rooms 0..3. Updates keep their room, so a `room = k` filter sees whole changes.
pub fn workload_commit(seq: u64) -> Vec<ChangeNotification> {
    let count = 1 + (seq % 3) as usize;
    (0..count)
        .map(|i| {
            let id = (seq * 4 + i as u64) as i64;
            let room = ((seq + i as u64) % 4) as i64;
            let row = Row::new(vec![
                Value::Int(id),
                Value::Int(room),
                Value::text(&format!("c{seq}.{i}")),
            ]);
            if seq.is_multiple_of(5) && i == 0 {
                let old = Row::new(vec![Value::Int(id), Value::Int(room), Value::text("old")]);
                ChangeNotification::update(items(), old, row)
            } else {
                ChangeNotification::insert(items(), row)
            }
        })
        .collect()
}

/// What a subscriber to `room` (or every room) must receive from one commit: the bodies
/// of the matching changes, in commit order.
pub fn expected_bodies(changes: &[ChangeNotification], room: Option<i64>) -> Vec<String> {
    changes
        .iter()
        .filter(|change| room.is_none_or(|room| change.row.value(1) == &Value::Int(room)))
        .map(|change| match change.row.value(2) {
            Value::Text(text) => text.to_string(),
            other => panic!("body is text, got {other:?}"),
        })
        .collect()
}

/// One delivery as a subscriber saw it: the commit and the bodies of its changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub seq: u64,
    pub bodies: Vec<String>,
}

/// What a drain collects: per delivery, its live query and the changes or the notice kind.
pub type Collected = Vec<(LiveQueryId, Result<Received, String>)>;

/// Drains a connection's notifications into per-subscription lists until `stop` says so
/// and nothing more arrives; other notification kinds are kept by name.
pub fn spawn_drain(
    mut connection: NotificationReceiver,
) -> (
    tokio::task::JoinHandle<Collected>,
    Arc<std::sync::atomic::AtomicBool>,
) {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let task = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        loop {
            match connection.recv_timeout(Duration::from_millis(100)) {
                Ok(Notification::Changes(set)) => {
                    let bodies = set
                        .changes()
                        .map(|change| match change.row.get("body") {
                            Some(Value::Text(text)) => text.to_string(),
                            other => format!("{other:?}"),
                        })
                        .collect();
                    out.push((
                        set.live_query_id(),
                        Ok(Received {
                            seq: set.seq().0,
                            bodies,
                        }),
                    ));
                }
                // A closing keeps its reason: `closed: <code> <reason>`.
                Ok(Notification::Closed {
                    live_query_id,
                    reason,
                }) => out.push((
                    live_query_id,
                    Err(format!("closed: {} {reason}", reason.code())),
                )),
                Ok(other) => out.push((other.live_query_id(), Err(other.kind().to_string()))),
                // Stopped, or the test let go of its handle (it failed and unwinds): a
                // drain left running would keep the runtime from shutting down.
                Err(_) => {
                    if flag.load(std::sync::atomic::Ordering::Acquire)
                        || Arc::strong_count(&flag) == 1
                    {
                        return out;
                    }
                }
            }
        }
    });
    (task, stop)
}

/// The received changes of one subscription, in arrival order.
pub fn changes_of(
    all: &[(LiveQueryId, Result<Received, String>)],
    id: LiveQueryId,
) -> Vec<Received> {
    all.iter()
        .filter(|(of, _)| *of == id)
        .filter_map(|(_, item)| item.as_ref().ok().cloned())
        .collect()
}

/// The notification kinds other than changes one subscription got.
pub fn notices_of(all: &[(LiveQueryId, Result<Received, String>)], id: LiveQueryId) -> Vec<String> {
    all.iter()
        .filter(|(of, _)| *of == id)
        .filter_map(|(_, item)| item.as_ref().err().cloned())
        .collect()
}

/// What a subscriber to `room` must have received for the commits `log` (the writer's
/// record), restricted to SeqIds in `range`.
pub fn expected_for(
    log: &[(u64, Vec<ChangeNotification>)],
    room: Option<i64>,
    range: impl Fn(u64) -> bool,
) -> Vec<Received> {
    log.iter()
        .filter(|(seq, _)| range(*seq))
        .filter_map(|(seq, changes)| {
            let bodies = expected_bodies(changes, room);
            (!bodies.is_empty()).then_some(Received { seq: *seq, bodies })
        })
        .collect()
}

pub fn room_spec(room: i64) -> QuerySpec {
    QuerySpec::table(items()).filter(Expr::col("room").eq(Expr::lit(room)))
}

/// The subscription a resume made and how many commits it replayed; panics on any other
/// outcome.
pub fn resumed(outcome: ResumeOutcome) -> (SubscriptionResult, u64) {
    match outcome {
        ResumeOutcome::Resumed {
            subscription,
            replayed,
        } => (subscription, replayed),
        other => panic!("expected a resume, got {other:?}"),
    }
}

/// Waits (bounded) until the node applied the stream up to `stream_seq`.
pub async fn caught_up(node: &NodeBridge, stream_seq: u64) {
    assert!(
        node.wait_applied(stream_seq, Duration::from_secs(60)).await,
        "node did not apply stream sequence {stream_seq}: {:?}, errors {:?}",
        node.stats(),
        node.take_errors()
    );
}

/// Waits until the receiver of `live_query_id` has handed out its delivery of `seq` (or a
/// later one); panics after a minute.
pub async fn received_up_to(manager: &ConnectionsManager, live_query_id: LiveQueryId, seq: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let last = match manager.subscription(live_query_id) {
            Ok(subscription) => subscription.stats.last_received_seq,
            Err(error) => panic!("{live_query_id} before it handed out {seq}: {error}"),
        };
        if last.is_some_and(|last| last.0 >= seq) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{live_query_id} handed out up to {last:?}, not {seq}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// ---- the servers, for the tests that kill and restart one ----

fn cluster_dir() -> String {
    std::env::var("LIVECORE_NATS_DIR").expect("LIVECORE_NATS_DIR is not set: run ci.sh")
}

/// Kills server `n` (1..=3) with SIGKILL and waits (bounded) until it is gone.
pub fn kill_server(n: u32) {
    let pid_file = format!("{}/n{n}.pid", cluster_dir());
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_string();
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill -KILL {pid}");
    for _ in 0..100 {
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server {n} (pid {pid}) did not die");
}

/// Starts server `n` again from its configuration, detached (cluster.sh stop ends it by
/// its pid file), and waits (bounded) until it answers its health check.
pub fn restart_server(n: u32) {
    let conf = format!("{}/n{n}.conf", cluster_dir());
    // Left running on purpose: the server outlives the test, and cluster.sh stop ends it
    // by its pid file.
    #[allow(clippy::zombie_processes)]
    std::process::Command::new("nats-server")
        .args(["-c", &conf])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if server_healthy(n) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("server {n} did not come back healthy");
}

/// The body of `GET path` on server `n`'s monitoring port (None while it does not
/// answer).
pub fn monitor_get(n: u32, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let conf = std::fs::read_to_string(format!("{}/n{n}.conf", cluster_dir())).unwrap();
    let http = conf
        .lines()
        .find_map(|line| line.strip_prefix("http: "))
        .unwrap()
        .trim()
        .to_string();
    // Bounded: a stopped server still accepts the connection and then never answers.
    let address: std::net::SocketAddr = http.parse().ok()?;
    let mut socket = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2)).ok()?;
    socket.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    socket
        .set_write_timeout(Some(Duration::from_secs(2)))
        .ok()?;
    socket
        .write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .ok()?;
    let mut body = String::new();
    socket.read_to_string(&mut body).ok()?;
    Some(body)
}

/// Whether a health check's answer says JetStream is current.
fn says_healthy(body: Option<&str>) -> bool {
    body.is_some_and(|body| body.contains("\"ok\""))
}

/// Whether server `n`'s health check says JetStream is current.
fn server_healthy(n: u32) -> bool {
    says_healthy(monitor_get(n, "/healthz").as_deref())
}

/// Whether server `n` leads JetStream's meta layer with both other servers current on it
/// (from its `/jsz` page).
fn leads_whole_meta_layer(n: u32) -> bool {
    let Some(page) = monitor_get(n, "/jsz") else {
        return false;
    };
    let page: String = page.chars().filter(|c| !c.is_whitespace()).collect();
    page.split("\"meta_cluster\":").nth(1).is_some_and(|meta| {
        meta.contains(&format!("\"leader\":\"n{n}\""))
            && meta.matches("\"current\":true").count() == 2
    })
}

/// Waits (bounded) until the cluster is whole again after a test hung or killed servers,
/// so the tests after it find it so: every server's health check says JetStream is
/// current or, past a minute, the meta layer is whole (a server leads it with both others
/// current), which is what a later test needs to create its own streams. nats-server 2.9's
/// health check can stay failing for ever on a stream or consumer it lost track of
/// ("health repair" came in 2.9.17); Debian's is 2.9.10. A timeout shows what each server's
/// health check said last.
pub async fn cluster_healthy() {
    let started = tokio::time::Instant::now();
    let (limit, meta_after) = (Duration::from_secs(180), Duration::from_secs(60));
    loop {
        let said: Vec<Option<String>> = (1..=3).map(|n| monitor_get(n, "/healthz")).collect();
        if said.iter().all(|body| says_healthy(body.as_deref())) {
            return;
        }
        if started.elapsed() >= meta_after && (1..=3).any(leads_whole_meta_layer) {
            eprintln!("cluster_healthy: the meta layer is whole; health checks said {said:?}");
            return;
        }
        assert!(
            started.elapsed() < limit,
            "waited {limit:?} for the cluster's health; the servers said last: {said:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (bounded) until `stream` has no leader as server 1 sees it, once servers 2 and 3
/// hang: had server 1 led it, it goes on serving the stream until it notices it lost its
/// quorum (seconds later), so a test of a stream without a leader starts only then. (The
/// meta leader answers a stream's info without a leader itself, with `leader` empty.)
pub async fn stream_without_leader(stream: &StreamConfig) {
    let pinned = ConnectionConfig {
        servers: vec![connection().servers[0].clone()],
        discover_servers: false,
        request_timeout: Duration::from_secs(1),
        ..connection()
    };
    let client = livecore_nats::cluster::connect(&pinned).await.unwrap();
    let js = livecore_nats::cluster::jetstream(client, &pinned);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    // Three answers in a row without a leader: one request timing out while server 1 still
    // leads (a loaded machine) is not taken for the end of its leadership.
    let mut without = 0;
    loop {
        let leader = match js.get_stream(&stream.stream).await {
            Ok(found) => found
                .cached_info()
                .cluster
                .as_ref()
                .and_then(|cluster| cluster.leader.clone()),
            Err(_) => None,
        };
        let Some(leader) = leader else {
            without += 1;
            if without == 3 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        without = 0;
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} still had leader {leader} after 60 s",
            stream.stream
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Appends the workload's commits `seqs` in order, recording each in `log`; returns the
/// stream sequence of the last.
pub async fn append(
    writer: &mut CommitWriter,
    log: &mut Vec<(u64, Vec<ChangeNotification>)>,
    seqs: std::ops::RangeInclusive<u64>,
) -> u64 {
    let mut last = 0;
    for seq in seqs {
        let changes = workload_commit(seq);
        last = writer
            .append_commit(SeqId(seq), &changes)
            .await
            .unwrap()
            .stream_seq;
        log.push((seq, changes));
    }
    last
}

/// Waits (bounded) until `condition` holds, polling every 50 ms.
pub async fn wait_until(what: &str, condition: impl FnMut() -> bool) {
    wait_until_within(what, Duration::from_secs(60), condition).await;
}

/// [`wait_until`] with a bound of its own.
pub async fn wait_until_within(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("waited {limit:?} for: {what}");
}

/// Sends `signal` (STOP or CONT) to server `n` (1..=3).
pub fn signal_server(n: u32, signal: &str) {
    let dir = std::env::var("LIVECORE_NATS_DIR").expect("LIVECORE_NATS_DIR is not set: run ci.sh");
    let pid = std::fs::read_to_string(format!("{dir}/n{n}.pid")).unwrap();
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), pid.trim()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Server `n` hung until this is dropped (also when the test panics).
pub struct Hung(pub u32);

impl Hung {
    pub fn stop(n: u32) -> Hung {
        signal_server(n, "STOP");
        Hung(n)
    }
}

impl Drop for Hung {
    fn drop(&mut self) {
        signal_server(self.0, "CONT");
    }
}
