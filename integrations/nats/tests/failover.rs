//! Live-query records and heartbeats in key-value: a view of every node's live queries
//! from any node, and a node that stops heartbeating has its records removed by the
//! survivor.

mod common;

use std::time::Duration;

use common::*;
use livecore::*;
use livecore_nats::*;

async fn records_of(node: &NodeBridge) -> Vec<LiveQueryRecord> {
    node.cluster_live_queries().await.unwrap()
}

/// The cluster's view once it holds `count` records. Another node's writes reach a reader
/// through the bucket's replication (a read may be served by a replica a moment behind),
/// so the view is awaited, with a bound, rather than read once.
async fn records_once_there_are(node: &NodeBridge, count: usize) -> Vec<LiveQueryRecord> {
    let mut records = records_of(node).await;
    for _ in 0..100 {
        if records.len() >= count {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        records = records_of(node).await;
    }
    records
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_heartbeating_has_its_records_removed_by_the_survivor() {
    let stream = stream_config("failover");
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let node1 = start_node(1, &stream).await;
    let node2 = start_node(2, &stream).await;
    let c1 = client(node1.manager(), "alice");
    node1
        .manager()
        .subscribe_sql(
            c1.connection_id,
            "SELECT * FROM app.items WHERE room = 1",
            SubscriptionOptions::default(),
        )
        .unwrap();
    let c2 = client(node2.manager(), "bob");
    for room in 0..3 {
        node2
            .manager()
            .subscribe(
                c2.connection_id,
                room_spec(room),
                SubscriptionOptions::default(),
            )
            .unwrap();
    }
    node1.sync_records().await.unwrap();
    node2.sync_records().await.unwrap();

    // Both nodes' live queries, read from either node.
    for node in [&node1, &node2] {
        let records = records_once_there_are(node, 4).await;
        let per_node: Vec<u64> = records.iter().map(|record| record.node_id.0).collect();
        assert_eq!(per_node, vec![1, 2, 2, 2]);
        let sql: Vec<String> = records.iter().map(|record| record.query.to_sql()).collect();
        assert!(sql[0].contains("room = 1"), "{sql:?}");
        assert_eq!(records[1].user_id, Some(UserId::from("bob")));
    }
    let heartbeats = node1.heartbeats().await.unwrap();
    assert_eq!(
        heartbeats
            .iter()
            .map(|heartbeat| heartbeat.node_id)
            .collect::<Vec<_>>(),
        vec![NodeId(1), NodeId(2)]
    );
    let pass = node1.failover_pass().await.unwrap();
    assert_eq!(pass.active_nodes, vec![NodeId(1), NodeId(2)]);
    assert!(pass.report.orphaned.is_empty());

    // Node 2 hangs: no more heartbeats. Node 1's own loop removes its records once the
    // heartbeat is older than node_stale_after + max_clock_skew (2.5 s here).
    node2.stop_heartbeat();
    let mut remaining = records_of(&node1).await;
    for _ in 0..200 {
        if remaining.iter().all(|record| record.node_id == NodeId(1)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        remaining = records_of(&node1).await;
    }
    assert_eq!(
        remaining
            .iter()
            .map(|record| record.node_id.0)
            .collect::<Vec<_>>(),
        vec![1],
        "node 2's records were not removed"
    );
    // Node 2's live queries are still in its own manager: only the replicated view lost
    // them (the node is taken for dead; its clients reconnect elsewhere).
    assert_eq!(node2.manager().live_query_records().len(), 3);
    let pass = node1.failover_pass().await.unwrap();
    assert_eq!(pass.active_nodes, vec![NodeId(1)]);
    // The view read from node 2 agrees.
    assert_eq!(
        records_of(&node2)
            .await
            .iter()
            .filter(|record| record.node_id == NodeId(1))
            .count(),
        1
    );
}
