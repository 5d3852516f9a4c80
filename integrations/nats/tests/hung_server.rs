//! A NATS server hung with SIGSTOP (its sockets stay open, it answers nothing), then
//! resumed with SIGCONT. Nodes and the writer leave it rather than waiting minutes for the
//! client's default pings: a node that prefers it moves to another server after requests
//! on the stream went unanswered and applies what the writer appended meanwhile; a node
//! pinned to it shows an unknown lag (not the stale zero of an end it saw before the
//! hang) and goes on once the server is back; a writer that prefers it reconnects after
//! the first acknowledgement that timed out, and one pinned to it gets
//! `BridgeError::AppendTimeout` at its deadline instead of blocking. Its own test binary,
//! so no other test runs while a server hangs.

mod common;

use std::time::Duration;

use common::*;
use livecore::*;
use livecore_nats::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_and_writers_leave_a_hung_server() {
    let cluster = connection();
    assert_eq!(cluster.servers.len(), 3, "{:?}", cluster.servers);
    let url = |n: usize| cluster.servers[n - 1].clone();
    // Server 2 first, then the others, in that order.
    let prefers_2 = ConnectionConfig {
        servers: vec![url(2), url(1), url(3)],
        shuffle_servers: false,
        // The client's pings alone would take minutes: what moves these off the hung
        // server is the bridge's reconnect after unanswered requests.
        ping_interval: Duration::from_secs(120),
        ..cluster.clone()
    };
    let only_2 = ConnectionConfig {
        servers: vec![url(2)],
        discover_servers: false,
        // Short pings: the connection to the hung server is seen dead within seconds.
        ping_interval: Duration::from_secs(1),
        ..cluster.clone()
    };

    let stream = stream_config("hung");
    let mut writer = CommitWriter::connect(&prefers_2, &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    // A writer of its own stream that can only reach server 2.
    let pinned_stream = stream_config("hung_pinned");
    let mut pinned_writer = CommitWriter::connect_with(
        &ConnectionConfig {
            ping_interval: Duration::from_secs(120),
            ..only_2.clone()
        },
        &pinned_stream,
        &WriterConfig {
            append_deadline: Duration::from_secs(4),
            ..WriterConfig::default()
        },
    )
    .await
    .unwrap();
    pinned_writer.append_schema(items_schema()).await.unwrap();

    let node_on = |node: u64, connection: &ConnectionConfig| NodeConfig {
        connection: connection.clone(),
        // Neither node is declared offline by the other while one is cut off.
        node_stale_after: Duration::from_secs(120),
        stream_end_stale_after: Duration::from_secs(2),
        ..node_config(node, &stream)
    };
    let ordered = NodeBridge::start(manager(1), node_on(1, &prefers_2))
        .await
        .unwrap();
    let pinned = NodeBridge::start(manager(2), node_on(2, &only_2))
        .await
        .unwrap();
    let mut log = Vec::new();
    let last = append(&mut writer, &mut log, 1..=20).await;
    for node in [&ordered, &pinned] {
        assert_eq!(node.connected_server().as_deref(), Some("n2"));
        caught_up(node, last).await;
        assert_eq!(node.lag(), Some(0), "{:?}", node.stats());
    }

    let hung = Hung::stop(2);
    // The writer's acknowledgements time out; it reconnects to server 1 and appends.
    let last = append(&mut writer, &mut log, 21..=40).await;
    // The pinned writer cannot: it says so at its deadline.
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        pinned_writer.append_commit(SeqId(1), &workload_commit(1)),
    )
    .await
    .expect("the pinned writer's append blocked past its deadline");
    assert!(
        matches!(outcome, Err(BridgeError::AppendTimeout { .. })),
        "{outcome:?}"
    );
    // The node that prefers server 2 moves on and applies what was appended meanwhile.
    caught_up(&ordered, last).await;
    assert_ne!(ordered.connected_server().as_deref(), Some("n2"));
    assert!(
        ordered.stats().forced_reconnects >= 1,
        "{:?}",
        ordered.stats()
    );
    // The pinned node loses its connection, and its lag is unknown, not the zero it had.
    wait_until("the pinned node left the hung server, lag unknown", || {
        pinned.connected_server().is_none() && pinned.lag().is_none()
    })
    .await;
    assert_eq!(pinned.stats().applied_stream_seq, 21);

    drop(hung);
    // Back: the pinned node reconnects and goes on from where it stopped.
    caught_up(&pinned, last).await;
    wait_until("the pinned node's lag is known again", || {
        pinned.lag() == Some(0)
    })
    .await;
    let last = append(&mut writer, &mut log, 41..=45).await;
    for node in [&ordered, &pinned] {
        caught_up(node, last).await;
        let stats = node.stats();
        assert_eq!(
            stats.duplicates + stats.gaps + stats.decode_errors + stats.apply_errors,
            0,
            "{stats:?}: {:?}",
            node.take_errors()
        );
        assert_eq!(stats.commits_applied, 45, "{stats:?}");
        assert!(stats.reconnects >= 1, "{stats:?}");
    }
}
