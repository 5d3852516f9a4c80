//! Benchmark (not a test): deliveries per second and latency from SQLite commit to
//! WebSocket receipt, with 1,000 and 10,000 clients on loopback, beside livecore's
//! in-process path with the same connections, subscriptions and commits.
//!
//! `cargo run --release -p livecore-server --example bench [-- CLIENTS...]`
//! `cargo run --release -p livecore-server --example bench -- --paced [CLIENTS RATE COMMITS]`
//! (a steady low load: by default 1,000 clients, 20 commits a second, 200 commits)
//!
//! The clients run in a child process (this example started again with `--clients`), so
//! each side has its own file-descriptor limit. Client i subscribes to
//! `SELECT id, room, body FROM messages WHERE room = i % 100`; each commit inserts one row
//! per room, so every commit is one delivery to every client. Commits are written back to
//! back; each row carries the wall-clock time taken just before its write was handed to
//! the writer, so the latency includes the SQLite commit itself. One run, medians of what
//! it measured: figures on a shared 2-core machine are indicative only.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use livecore::{
    ChangeNotification, ConnectionsManager, ManagerConfig, Notification, Row, SeqId,
    SubscriptionOptions, TableId, TableSchema, TableScope, UserId, Value,
};
use livecore_server::{Identity, RunningServer, ServerConfig, WriteOp};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const ROOMS: usize = 100;

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn commits_for(clients: usize) -> usize {
    if clients >= 5000 {
        60
    } else {
        200
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--clients") {
        let url = args[2].clone();
        let clients: usize = args[3].parse().unwrap();
        let commits: usize = args[4].parse().unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(client_process(url, clients, commits));
        return;
    }
    if args.get(1).map(String::as_str) == Some("--paced") {
        // A steady low load: latency without queueing behind a backlog.
        let number = |i: usize, default: u64| {
            args.get(i)
                .map_or(default, |arg| arg.parse().expect("a number"))
        };
        let (clients, rate, commits) = (number(2, 1000), number(3, 20), number(4, 200));
        let pace = Duration::from_secs(1) / rate.max(1) as u32;
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let (delivered, p50, p99, _) =
            runtime.block_on(server_run(clients as usize, commits as usize, Some(pace)));
        println!("| clients | commits | pace | deliveries/s | p50 latency | p99 latency |");
        println!("|---:|---:|---:|---:|---:|---:|");
        println!("| {clients} | {commits} | {rate} commits/s ({} deliveries/s) | {delivered:.0} | {p50} µs | {p99} µs |", rate * clients);
        return;
    }
    let sizes: Vec<usize> = if args.len() > 1 {
        args[1..]
            .iter()
            .map(|arg| arg.parse().expect("client counts"))
            .collect()
    } else {
        vec![1000, 10_000]
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    println!("| clients | commits | path | deliveries/s | p50 latency | p99 latency |");
    println!("|---:|---:|---|---:|---:|---:|");
    for clients in sizes {
        let commits = commits_for(clients);
        let (rate, p50, p99, interval) = runtime.block_on(server_run(clients, commits, None));
        println!("| {clients} | {commits} | server: SQLite commit → WebSocket receipt | {rate:.0} | {p50} µs | {p99} µs |");
        let (rate, p50, p99) = runtime.block_on(in_process_run(clients, commits, interval));
        println!("| {clients} | {commits} | livecore in process: publish → recv_async | {rate:.0} | {p50} µs | {p99} µs |");
    }
}

/// Returns the delivery rate, latency percentiles and the mean interval between commits.
/// Commits are written back to back, or one every `pace` when given.
async fn server_run(
    clients: usize,
    commits: usize,
    pace: Option<Duration>,
) -> (f64, u64, u64, Duration) {
    let dir = std::env::temp_dir().join(format!("livecore-bench-{}-{clients}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut config = ServerConfig::demo("127.0.0.1:0".parse().unwrap(), dir.join("bench.db"));
    config.limits.max_connections_per_address = clients + 100;
    config.manager.notification_channel_capacity = 1024;
    let server = RunningServer::start(config).await.unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--clients",
            &format!("ws://{}/ws", server.addr()),
            &clients.to_string(),
            &commits.to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = tokio::task::spawn_blocking(move || {
        let line = lines.next().unwrap().unwrap();
        (line, lines)
    })
    .await
    .unwrap();
    assert_eq!(ready.0, "ready");
    let mut lines = ready.1;
    let identity = Identity {
        user: "bench".into(),
        role: None,
    };
    let writing = Instant::now();
    let mut ticks = pace.map(|pace| {
        let mut ticks = tokio::time::interval(pace);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });
    for _ in 0..commits {
        if let Some(ticks) = ticks.as_mut() {
            ticks.tick().await;
        }
        let sent = now_us();
        let ops: Vec<WriteOp> = (0..ROOMS)
            .map(|room| {
                serde_json::from_value(json!({"op": "insert", "table": "messages",
                    "values": {"room": room, "body": sent.to_string()}}))
                .unwrap()
            })
            .collect();
        server.write(&identity, ops).await.unwrap();
    }
    let interval = writing.elapsed() / commits as u32;
    let result = tokio::task::spawn_blocking(move || lines.next().unwrap().unwrap())
        .await
        .unwrap();
    let _ = child.wait();
    let dropped = server.manager().stats().dropped;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(dropped, 0, "no delivery dropped");
    let result: serde_json::Value = serde_json::from_str(&result).unwrap();
    (
        result["rate"].as_f64().unwrap(),
        result["p50"].as_u64().unwrap(),
        result["p99"].as_u64().unwrap(),
        interval,
    )
}

/// The child process: connects, subscribes, says `ready`, receives every commit, prints
/// the delivery rate and latency percentiles as one JSON line.
async fn client_process(url: String, clients: usize, commits: usize) {
    let mut sockets = Vec::with_capacity(clients);
    for chunk in (0..clients).collect::<Vec<_>>().chunks(200) {
        let connecting: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let url = url.clone();
                tokio::spawn(async move {
                    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
                        .await
                        .unwrap();
                    ws.send(Message::text(
                        json!({"type": "auth", "token": "bob-token"}).to_string(),
                    ))
                    .await
                    .unwrap();
                    let sql = format!(
                        "SELECT id, room, body FROM messages WHERE room = {}",
                        i % ROOMS
                    );
                    ws.send(Message::text(
                        json!({"type": "subscribe", "sql": sql}).to_string(),
                    ))
                    .await
                    .unwrap();
                    loop {
                        if let Some(Ok(Message::Text(text))) = ws.next().await {
                            if text.contains("\"subscribed\"") {
                                return ws;
                            }
                            assert!(!text.contains("\"error\""), "{text}");
                        }
                    }
                })
            })
            .collect();
        for socket in connecting {
            sockets.push(socket.await.unwrap());
        }
    }
    let started = Arc::new(std::sync::OnceLock::<Instant>::new());
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|mut ws| {
            let started = started.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(commits);
                while latencies.len() < commits {
                    match ws.next().await {
                        Some(Ok(Message::Text(text))) => {
                            let received = now_us();
                            started.get_or_init(Instant::now);
                            let message: serde_json::Value = serde_json::from_str(&text).unwrap();
                            if message["type"] == "changes" {
                                let sent: u64 = message["changes"][0]["row"]["body"]
                                    .as_str()
                                    .unwrap()
                                    .parse()
                                    .unwrap();
                                latencies.push(received.saturating_sub(sent));
                            }
                        }
                        Some(Ok(_)) => {}
                        other => panic!("connection ended: {other:?}"),
                    }
                }
                (latencies, Instant::now())
            })
        })
        .collect();
    println!("ready");
    std::io::stdout().flush().unwrap();
    let mut all = Vec::with_capacity(clients * commits);
    let mut last = Instant::now();
    for reader in readers {
        let (latencies, done) = reader.await.unwrap();
        all.extend(latencies);
        last = last.max(done);
    }
    let elapsed = last
        .duration_since(*started.get().unwrap())
        .max(Duration::from_micros(1));
    all.sort_unstable();
    println!(
        "{}",
        json!({"rate": all.len() as f64 / elapsed.as_secs_f64(), "p50": percentile(&all, 0.5), "p99": percentile(&all, 0.99)})
    );
}

/// livecore alone: the same connections and subscriptions on a bare manager, drained by
/// one tokio task each with `recv_async`, and the same commits published from a thread at
/// the pace the server's writer committed them.
async fn in_process_run(clients: usize, commits: usize, interval: Duration) -> (f64, u64, u64) {
    let manager = Arc::new(
        ConnectionsManager::new(ManagerConfig {
            notification_channel_capacity: 1024,
            ..ManagerConfig::default()
        })
        .unwrap(),
    );
    let table = TableId::new("default", "messages");
    manager
        .register_table(TableSchema::new(
            table.clone(),
            TableScope::Shared,
            ["id", "room", "author", "body", "score"],
        ))
        .unwrap();
    let mut readers = Vec::with_capacity(clients);
    let started = Arc::new(std::sync::OnceLock::<Instant>::new());
    for i in 0..clients {
        let mut connection = manager.register_connection().unwrap();
        manager
            .authenticate(connection.connection_id, UserId::from("bench"), None)
            .unwrap();
        let sql = format!(
            "SELECT id, room, body FROM messages WHERE room = {}",
            i % ROOMS
        );
        manager
            .subscribe_sql(
                connection.connection_id,
                &sql,
                SubscriptionOptions::default(),
            )
            .unwrap();
        let started = started.clone();
        readers.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(commits);
            while latencies.len() < commits {
                let notification = connection.notifications.recv_async().await.unwrap();
                let received = now_us();
                started.get_or_init(Instant::now);
                if let Notification::Changes(changes) = &notification {
                    // Rendered as the server would send it.
                    let _json = notification.to_json();
                    let change = changes.change(0).unwrap();
                    let Value::Text(sent) = change.row.get("body").unwrap() else {
                        panic!()
                    };
                    latencies.push(received.saturating_sub(sent.parse::<u64>().unwrap()));
                }
            }
            (latencies, Instant::now(), connection)
        }));
    }
    let publisher = {
        let (manager, table) = (manager.clone(), table.clone());
        std::thread::spawn(move || {
            let mut id = 0i64;
            for commit in 0..commits {
                let sent = now_us().to_string();
                let changes = (0..ROOMS)
                    .map(|room| {
                        id += 1;
                        ChangeNotification::insert(
                            table.clone(),
                            Row::new(vec![
                                Value::Int(id),
                                Value::Int(room as i64),
                                Value::Null,
                                Value::text(&sent),
                                Value::Null,
                            ]),
                        )
                    })
                    .collect();
                manager
                    .publish_commit(SeqId(commit as u64 + 1), changes)
                    .unwrap();
                std::thread::sleep(interval);
            }
        })
    };
    let mut all = Vec::with_capacity(clients * commits);
    let mut last = Instant::now();
    for reader in readers {
        let (latencies, done, _connection) = reader.await.unwrap();
        all.extend(latencies);
        last = last.max(done);
    }
    publisher.join().unwrap();
    assert_eq!(manager.stats().dropped, 0);
    let elapsed = last
        .duration_since(*started.get().unwrap())
        .max(Duration::from_micros(1));
    all.sort_unstable();
    (
        all.len() as f64 / elapsed.as_secs_f64(),
        percentile(&all, 0.5),
        percentile(&all, 0.99),
    )
}
