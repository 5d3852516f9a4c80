//! A node whose NATS server dies reconnects on its own and goes on from the last stream
//! sequence it applied: one node pinned to the server that is killed (its only URL, the
//! cluster's advertised servers ignored) waits for it to come back; another that prefers
//! it (servers tried in the order given) fails over to the next one. Neither loses or
//! repeats a commit. Its own test binary, so no other test runs while a server is down.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use livecore::*;
use livecore_nats::*;

fn node_on(node: u64, stream: &StreamConfig, connection: ConnectionConfig) -> NodeConfig {
    NodeConfig {
        connection,
        // Neither node is declared offline by the other while one is cut off.
        node_stale_after: Duration::from_secs(120),
        ..node_config(node, stream)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_whose_server_dies_reconnect_and_go_on_from_the_last_applied_sequence() {
    let cluster = connection();
    assert_eq!(cluster.servers.len(), 3, "{:?}", cluster.servers);
    let url = |n: usize| cluster.servers[n - 1].clone();
    let stream = stream_config("reconnect");
    // The writer never touches server 2: what is tested is the nodes' side.
    let writer_connection = ConnectionConfig {
        servers: vec![url(1), url(3)],
        discover_servers: false,
        ..cluster.clone()
    };
    let mut writer = CommitWriter::connect(&writer_connection, &stream)
        .await
        .unwrap();
    writer.append_schema(items_schema()).await.unwrap();

    // Node 1 knows only server 2; node 2 prefers it and falls back to 1, then 3.
    let pinned = NodeBridge::start(
        manager(1),
        node_on(
            1,
            &stream,
            ConnectionConfig {
                servers: vec![url(2)],
                discover_servers: false,
                ..cluster.clone()
            },
        ),
    )
    .await
    .unwrap();
    let ordered = NodeBridge::start(
        manager(2),
        node_on(
            2,
            &stream,
            ConnectionConfig {
                servers: vec![url(2), url(1), url(3)],
                shuffle_servers: false,
                ..cluster.clone()
            },
        ),
    )
    .await
    .unwrap();
    let nodes = [pinned, ordered];
    for node in &nodes {
        assert_eq!(node.connected_server().as_deref(), Some("n2"));
    }
    let mut subscriptions = Vec::new();
    let mut drains = Vec::new();
    for node in &nodes {
        let connection = client(node.manager(), "alice");
        let all = node
            .manager()
            .subscribe(
                connection.connection_id,
                QuerySpec::table(items()),
                SubscriptionOptions::default(),
            )
            .unwrap();
        subscriptions.push(all.live_query_id);
        drains.push(spawn_drain(connection.notifications));
    }

    let mut log = Vec::new();
    let last = append(&mut writer, &mut log, 1..=100).await;
    for node in &nodes {
        caught_up(node, last).await;
        assert_eq!(node.stats().reconnects, 0);
    }

    kill_server(2);
    let last = append(&mut writer, &mut log, 101..=250).await;
    // The ordered node moves to server 1 and applies everything while server 2 is down.
    let [pinned, ordered] = &nodes;
    caught_up(ordered, last).await;
    wait_until("the ordered node reconnected to another server", || {
        ordered.stats().reconnects >= 1
            && ordered
                .connected_server()
                .is_some_and(|server| server != "n2")
    })
    .await;
    // The pinned node has no server to read from: nothing after commit 100 reaches it.
    wait_until("the pinned node saw its server go", || {
        pinned.connected_server().is_none()
    })
    .await;
    assert_eq!(pinned.stats().applied_stream_seq, 101);

    restart_server(2);
    let last = append(&mut writer, &mut log, 251..=300).await;
    // The pinned node reconnects to server 2 and goes on from sequence 101.
    for node in &nodes {
        caught_up(node, last).await;
    }
    assert_eq!(pinned.connected_server().as_deref(), Some("n2"));

    for (index, (node, (all, (task, stop)))) in nodes
        .iter()
        .zip(subscriptions.into_iter().zip(drains))
        .enumerate()
    {
        stop.store(true, Ordering::Release);
        let received = task.await.unwrap();
        let stats = node.stats();
        // Reconnected; the consumer was recreated if it died with the server or went
        // silent past its heartbeat, and kept otherwise: either way, from the last
        // applied sequence (checked by what the subscriber received).
        assert!(stats.reconnects >= 1, "node {}: {stats:?}", index + 1);
        assert_eq!(
            stats.duplicates + stats.gaps + stats.decode_errors + stats.apply_errors,
            0,
            "node {}: {stats:?}: {:?}",
            index + 1,
            node.take_errors()
        );
        assert_eq!(stats.commits_applied, 300, "node {}: {stats:?}", index + 1);
        assert_eq!(
            changes_of(&received, all),
            expected_for(&log, None, |_| true),
            "node {}",
            index + 1
        );
    }
}
