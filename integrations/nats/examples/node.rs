//! A livecore front node fed by the NATS JetStream commit stream, from the command line;
//! and, with `--write`, the engine's side appending demo commits.
//!
//! ```text
//! node [--node-id N] [--stream NAME] [--from-first] [--subscribe SQL [--resume-from SEQ]]
//!      [--exit-after N] [--timeout SECONDS]
//! node --write N [--stream NAME] [--after SEQ] [--max-age SECONDS]
//! ```
//!
//! As a node it connects a `ConnectionsManager` to the stream, prints its counters (applied,
//! lag, reconnects, gaps) each second they changed and every error the node reports, and
//! with `--subscribe` runs one local client
//! subscribed to the SQL, printing every notification as livecore's JSON. The subscription
//! waits until the table's schema arrives through the stream; with `--resume-from` the
//! client resumes after that SeqId (the commits after it are replayed from the stream),
//! otherwise it gets the commits applied from then on. `--exit-after N` exits (0) once the
//! node applied N commits and, when subscribed, its client received N `changes`
//! notifications (subscribe to rows every commit touches); `--timeout` exits (1) if that
//! takes longer.
//!
//! With `--write N` it appends the demo table `demo.messages (id, room, body)`'s schema
//! (once per stream) and N commits of one insert each after the stream's last SeqId, then
//! exits. When the stream no longer tells its last SeqId (it held messages, but every one
//! aged out: `BridgeError::UnknownTail`), the engine's own last SeqId is needed: give it
//! with `--after SEQ` and the writer continues after it (`CommitWriter::connect_after`);
//! without it, the command says so and exits (1). `--after` also continues a stream that
//! holds no commit after that SeqId (one deleted and created again, which the writer cannot
//! tell from a new one). When the stream does tell its last SeqId, that one wins, and an
//! `--after` that differs is ignored with a warning. `--max-age
//! SECONDS` (at least 1) sets the retention by age of a stream this command creates (the
//! default is a day).
//!
//! The cluster comes from the environment, as `scripts/cluster.sh env` prints it:
//! `LIVECORE_NATS_URLS` (comma-separated, default `nats://127.0.0.1:14222`), and
//! `LIVECORE_NATS_USER` with `LIVECORE_NATS_PASSWORD`, or `LIVECORE_NATS_TOKEN`.
//! `--stream NAME` names the stream (subject `NAME.commits`, buckets `NAME_schemas` and
//! `NAME_records`); without it, the defaults of `StreamConfig`.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use livecore::*;
use livecore_nats::*;

/// What the command line asked for.
#[derive(Debug, Default)]
struct Args {
    node_id: u64,
    stream: Option<String>,
    from_first: bool,
    subscribe: Option<String>,
    resume_from: Option<u64>,
    exit_after: Option<u64>,
    timeout: Option<Duration>,
    write: Option<u64>,
    after: Option<u64>,
    max_age: Option<Duration>,
}

const USAGE: &str = "usage: node [--node-id N] [--stream NAME] [--from-first] \
                     [--subscribe SQL [--resume-from SEQ]] [--exit-after N] [--timeout SECONDS]\n       \
                     node --write N [--stream NAME] [--after SEQ] [--max-age SECONDS]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        node_id: 1,
        ..Args::default()
    };
    let mut words = std::env::args().skip(1);
    while let Some(word) = words.next() {
        let mut value = |name: &str| words.next().ok_or_else(|| format!("{name} needs a value"));
        let number = |name: &str, text: String| {
            text.parse::<u64>()
                .map_err(|_| format!("{name} takes a number, not {text:?}"))
        };
        match word.as_str() {
            "--node-id" => args.node_id = number("--node-id", value("--node-id")?)?,
            "--stream" => args.stream = Some(value("--stream")?),
            "--from-first" => args.from_first = true,
            "--subscribe" => args.subscribe = Some(value("--subscribe")?),
            "--resume-from" => {
                args.resume_from = Some(number("--resume-from", value("--resume-from")?)?)
            }
            "--exit-after" => {
                args.exit_after = Some(number("--exit-after", value("--exit-after")?)?)
            }
            "--timeout" => {
                let seconds = number("--timeout", value("--timeout")?)?;
                args.timeout = Some(Duration::from_secs(seconds));
            }
            "--write" => args.write = Some(number("--write", value("--write")?)?),
            "--after" => args.after = Some(number("--after", value("--after")?)?),
            "--max-age" => {
                let seconds = number("--max-age", value("--max-age")?)?;
                if seconds == 0 {
                    // Zero is "no limit" to the servers, not "keep nothing".
                    return Err("--max-age must be at least 1 second".into());
                }
                args.max_age = Some(Duration::from_secs(seconds));
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.resume_from.is_some() && args.subscribe.is_none() {
        return Err("--resume-from needs --subscribe".into());
    }
    if args.after.is_some() && args.write.is_none() {
        return Err("--after needs --write".into());
    }
    Ok(args)
}

/// The cluster, from the environment.
fn connection() -> ConnectionConfig {
    let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    let servers = env("LIVECORE_NATS_URLS")
        .map(|urls| urls.split(',').map(str::to_string).collect())
        .unwrap_or_else(|| vec!["nats://127.0.0.1:14222".to_string()]);
    let auth = match (
        env("LIVECORE_NATS_USER"),
        env("LIVECORE_NATS_PASSWORD"),
        env("LIVECORE_NATS_TOKEN"),
    ) {
        (_, _, Some(token)) => Auth::Token(token),
        (Some(user), Some(password), None) => Auth::UserPassword { user, password },
        _ => Auth::None,
    };
    ConnectionConfig {
        servers,
        auth,
        client_name: Some("livecore example node".into()),
        ..ConnectionConfig::default()
    }
}

fn stream_config(name: Option<&str>, max_age: Option<Duration>) -> StreamConfig {
    let config = match name {
        None => StreamConfig::default(),
        Some(name) => StreamConfig {
            stream: name.to_string(),
            subject: format!("{name}.commits"),
            schema_bucket: format!("{name}_schemas"),
            records_bucket: format!("{name}_records"),
            ..StreamConfig::default()
        },
    };
    match max_age {
        // The servers refuse a duplicate window longer than the retention by age.
        Some(max_age) => StreamConfig {
            max_age,
            duplicate_window: config.duplicate_window.min(max_age),
            ..config
        },
        None => config,
    }
}

fn demo_table() -> TableId {
    TableId::new("demo", "messages")
}

/// The engine's side: the demo schema once, then `count` commits after the stream's last
/// (or after `after`, the engine's last SeqId, when the stream no longer tells it). Ok(false)
/// when the stream does not tell it and `after` is not given.
async fn write(count: u64, stream: &StreamConfig, after: Option<u64>) -> Result<bool, BridgeError> {
    let table = demo_table();
    let connection = connection();
    // With the engine's last SeqId (`--after`), the writer continues after it when the
    // stream does not tell its own (every message aged out, or it holds no commit: a
    // stream deleted and created again looks new).
    let opened = match after {
        Some(last) => {
            CommitWriter::connect_after(&connection, stream, &WriterConfig::default(), SeqId(last))
                .await
        }
        None => CommitWriter::connect(&connection, stream).await,
    };
    let mut writer = match opened {
        Ok(writer) => writer,
        // Every message aged out: the stream no longer tells the last SeqId, and starting
        // again at 1 would have nodes drop the commits as duplicates. The engine's log
        // tells it; here, `--after`.
        Err(BridgeError::UnknownTail { last_stream_seq }) => {
            eprintln!(
                "the stream held messages up to stream sequence {last_stream_seq}, but \
                 every one aged out: it no longer tells the last SeqId appended. Give the \
                 engine's last SeqId with --after SEQ"
            );
            return Ok(false);
        }
        Err(error) => return Err(error),
    };
    // `--after` is for a stream that does not tell its last SeqId; one that does wins.
    if let Some(after) = after {
        let known = writer.last_seq().map_or(0, |last| last.0);
        if known != after {
            eprintln!(
                "warning: --after {after} ignored: the stream tells its last SeqId, {known}, \
                 and the writer continues after that"
            );
        }
    }
    for error in writer.take_errors() {
        eprintln!("skipped at the stream's end: {error}");
    }
    if writer.schema_version(&table) == 0 {
        let schema = TableSchema::new(table.clone(), TableScope::Shared, ["id", "room", "body"]);
        let (version, appended) = writer.append_schema(schema).await?;
        println!(
            "appended {table} schema version {version} at stream sequence {}",
            appended.stream_seq
        );
    }
    let first = writer.last_seq().map_or(1, |last| last.0 + 1);
    for seq in first..first + count {
        let row = Row::new(vec![
            Value::Int(seq as i64),
            Value::Int((seq % 3) as i64),
            Value::text(&format!("message {seq}")),
        ]);
        writer
            .send_commit(
                SeqId(seq),
                &[ChangeNotification::insert(table.clone(), row)],
            )
            .await?;
    }
    let last = writer.flush().await?;
    println!(
        "appended commits {first}..={} (last at stream sequence {})",
        first + count - 1,
        last.map_or(0, |appended| appended.stream_seq)
    );
    Ok(true)
}

/// Subscribes (or resumes) the demo client once the table's schema has arrived; None if
/// it has not by `deadline`.
async fn subscribe(
    node: &NodeBridge,
    connection_id: ConnectionId,
    sql: &str,
    resume_from: Option<u64>,
    deadline: Option<Instant>,
) -> Result<Option<LiveQueryId>, BridgeError> {
    loop {
        let attempt = match resume_from {
            Some(seq) => node
                .resume_sql(connection_id, sql, SeqId(seq))
                .await
                .map(|outcome| match outcome {
                    ResumeOutcome::Resumed {
                        subscription,
                        replayed,
                    } => {
                        println!("resumed after {seq}: {replayed} commits replayed");
                        subscription.live_query_id
                    }
                    ResumeOutcome::Unavailable { live_query_id } => {
                        println!("resume after {seq} unavailable: the stream no longer has it");
                        live_query_id
                    }
                }),
            None => node
                .manager()
                .subscribe_sql(connection_id, sql, SubscriptionOptions::default())
                .map(|subscription| subscription.live_query_id)
                .map_err(BridgeError::from),
        };
        match attempt {
            // The table's schema has not come through the stream yet.
            Err(BridgeError::Live(LiveError::UnknownTable(_))) => {
                if deadline.is_some_and(|deadline| Instant::now() > deadline) {
                    return Ok(None);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other.map(Some),
        }
    }
}

async fn run_node(args: &Args, stream: StreamConfig) -> Result<bool, BridgeError> {
    let deadline = args.timeout.map(|timeout| Instant::now() + timeout);
    let node_id = NodeId(args.node_id);
    let manager = Arc::new(ConnectionsManager::new(ManagerConfig {
        node_id,
        ..ManagerConfig::default()
    })?);
    let node = NodeBridge::start(
        manager.clone(),
        NodeConfig {
            node_id,
            connection: connection(),
            stream,
            start: if args.from_first {
                StartFrom::First
            } else {
                StartFrom::Latest
            },
            ..NodeConfig::default()
        },
    )
    .await?;
    println!(
        "node {node_id} started on server {:?}: {:?}",
        node.connected_server(),
        node.stats()
    );

    // The demo client: its notifications printed by a thread of their own, the commits it
    // received counted.
    let received = Arc::new(AtomicU64::new(0));
    let mut _reader = None;
    if let Some(sql) = &args.subscribe {
        let client = manager.register_connection()?;
        manager.authenticate(client.connection_id, UserId::from("demo"), None)?;
        let mut notifications = client.notifications;
        let counter = received.clone();
        _reader = Some(std::thread::spawn(move || {
            while let Ok(notification) = notifications.recv() {
                println!("{}", notification.to_json());
                if matches!(notification, Notification::Changes(_)) {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
        match subscribe(&node, client.connection_id, sql, args.resume_from, deadline).await? {
            Some(id) => println!("subscribed {id}: {sql}"),
            None => {
                eprintln!("timed out: the table of {sql:?} did not arrive through the stream");
                return Ok(false);
            }
        }
    }

    let mut ticker = tokio::time::interval(Duration::from_millis(100));
    let mut ticks = 0u64;
    let mut printed = None;
    loop {
        ticker.tick().await;
        ticks += 1;
        let stats = node.stats();
        for error in node.take_errors() {
            eprintln!("error: {error}");
        }
        let lag = stats
            .lag
            .map_or_else(|| "unknown".to_string(), |lag| lag.to_string());
        let shown = (
            stats.commits_applied,
            stats.lag,
            stats.reconnects,
            stats.gaps,
            received.load(Ordering::Relaxed),
        );
        if ticks.is_multiple_of(10) && printed != Some(shown) {
            printed = Some(shown);
            println!(
                "applied {} commits (stream sequence {}), lag {}, reconnects {}, gaps {}, \
                 client received {} commits",
                stats.commits_applied,
                stats.applied_stream_seq,
                lag,
                stats.reconnects,
                stats.gaps,
                received.load(Ordering::Relaxed)
            );
        }
        if let Some(count) = args.exit_after {
            let client_done = args.subscribe.is_none() || received.load(Ordering::Relaxed) >= count;
            if stats.commits_applied >= count && client_done {
                println!(
                    "done: applied {} commits, client received {}",
                    stats.commits_applied,
                    received.load(Ordering::Relaxed)
                );
                return Ok(true);
            }
        }
        if deadline.is_some_and(|deadline| Instant::now() > deadline) {
            eprintln!(
                "timed out: {stats:?}, client received {}",
                received.load(Ordering::Relaxed)
            );
            return Ok(false);
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(error) => {
            if !error.is_empty() {
                eprintln!("{error}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let stream = stream_config(args.stream.as_deref(), args.max_age);
    let result = match args.write {
        Some(count) => write(count, &stream, args.after).await,
        None => run_node(&args, stream).await,
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
