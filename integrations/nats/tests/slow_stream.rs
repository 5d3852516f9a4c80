//! A stream whose only replica's server hangs (SIGSTOP), seen from a node and writers
//! connected to another server, which answers: their requests on the stream go
//! unanswered, but their server is alive, so the forced reconnect (meant for a hung server
//! of their own) is skipped after the probe (`NodeStats::forced_reconnects_skipped`,
//! `CommitWriter::forced_reconnects_skipped`) rather than moving them for nothing; once
//! the server is back, the node goes on. A writer connecting meanwhile gives up at its
//! `connect_deadline` (`BridgeError::Connect`) rather than after every retry of every
//! step. Its own test binary, so no other test runs while a server hangs.

mod common;

use std::time::{Duration, Instant};

use common::*;
use livecore::*;
use livecore_nats::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_stream_on_a_live_server_forces_no_reconnect() {
    let cluster = connection();
    assert_eq!(cluster.servers.len(), 3, "{:?}", cluster.servers);
    // One replica: the stream (and its buckets) live on one server.
    let stream = StreamConfig {
        replicas: 1,
        ..stream_config("slow_stream")
    };
    let mut writer = CommitWriter::connect(&cluster, &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let mut log = Vec::new();
    let last = append(&mut writer, &mut log, 1..=5).await;
    let mut info_stream = writer.stream().clone();
    let holder = info_stream
        .info()
        .await
        .unwrap()
        .cluster
        .as_ref()
        .and_then(|cluster| cluster.leader.clone())
        .expect("the stream has a leader");
    let holder: u32 = holder.trim_start_matches('n').parse().unwrap();
    // Another server, and only that one: it stays up and answers.
    let other = if holder == 1 { 2 } else { 1 };
    let on_other = ConnectionConfig {
        servers: vec![cluster.servers[other as usize - 1].clone()],
        discover_servers: false,
        request_timeout: Duration::from_secs(1),
        ..cluster.clone()
    };
    let node = NodeBridge::start(
        manager(1),
        NodeConfig {
            connection: on_other.clone(),
            node_stale_after: Duration::from_secs(120),
            stream_end_stale_after: Duration::from_secs(2),
            ..node_config(1, &stream)
        },
    )
    .await
    .unwrap();
    caught_up(&node, last).await;
    let mut slow_writer = CommitWriter::connect_with(
        &on_other,
        &stream,
        &WriterConfig {
            append_deadline: Duration::from_secs(4),
            ..WriterConfig::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(slow_writer.last_seq(), Some(SeqId(5)));

    let hung = Hung::stop(holder);
    // The node's requests on the stream go unanswered, again and again; its server
    // answers the probe, so no reconnect is forced.
    wait_until("the node skipped forced reconnects", || {
        node.stats().forced_reconnects_skipped >= 2
    })
    .await;
    let stats = node.stats();
    assert_eq!(
        (stats.forced_reconnects, stats.reconnects),
        (0, 0),
        "{stats:?}"
    );
    assert_eq!(stats.lag, None, "{stats:?}");
    // The writer's append times out at its deadline, without moving either.
    let outcome = slow_writer
        .append_commit(SeqId(6), &workload_commit(6))
        .await;
    assert!(
        matches!(outcome, Err(BridgeError::AppendTimeout { .. })),
        "{outcome:?}"
    );
    assert_eq!(slow_writer.forced_reconnects(), 0);
    assert!(slow_writer.forced_reconnects_skipped() >= 1);
    // A writer connecting now gives up at its connect deadline, saying where it was.
    let started = Instant::now();
    let connecting = CommitWriter::connect_with(
        &on_other,
        &stream,
        &WriterConfig {
            connect_deadline: Duration::from_secs(2),
            ..WriterConfig::default()
        },
    )
    .await;
    let waited = started.elapsed();
    match &connecting {
        Err(BridgeError::Connect(detail)) => {
            assert!(detail.contains("connect_deadline"), "{detail}")
        }
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("connected to a stream whose server hangs"),
    }
    assert!(waited < Duration::from_secs(4), "{waited:?}");

    drop(hung);
    cluster_healthy().await;
    // Back: the node goes on from where it stopped, on the same connection.
    let last = append(&mut writer, &mut log, 6..=8).await;
    caught_up(&node, last).await;
    wait_until("the node's lag is known again", || node.lag() == Some(0)).await;
    let stats = node.stats();
    // Started after commit 5 (from the stream's end).
    assert_eq!(stats.commits_applied, 3, "{stats:?}");
    assert_eq!(stats.applied_seq, Some(SeqId(8)), "{stats:?}");
    assert_eq!(
        (stats.forced_reconnects, stats.reconnects),
        (0, 0),
        "{stats:?}"
    );
}
