//! Lag (stream sequence minus applied) grows while a node does not apply and returns to
//! zero once it caught up; a hole that retention made while the node was behind is
//! reported once.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use livecore::*;
use livecore_nats::*;

/// Waits (bounded) until `condition` holds, polling every 20 ms.
async fn wait_until(what: &str, node: &NodeBridge, condition: impl Fn(&NodeStats) -> bool) {
    for _ in 0..3000 {
        if condition(&node.stats()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("waited 60 s for: {what}; {:?}", node.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_grows_while_the_node_does_not_apply_and_returns_to_zero() {
    let stream = stream_config("lag");
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let node = start_node(1, &stream).await;
    let connection = client(node.manager(), "alice");
    let all = node
        .manager()
        .subscribe(
            connection.connection_id,
            QuerySpec::table(items()),
            SubscriptionOptions::default(),
        )
        .unwrap();
    let (task, stop) = spawn_drain(connection.notifications);

    let mut log = Vec::new();
    let applied = append(&mut writer, &mut log, 1..=20).await;
    caught_up(&node, applied).await;
    assert_eq!(node.lag(), Some(0), "{:?}", node.stats());

    // The node stops applying; the writer appends 50 more. Once the node has seen the
    // stream's end (its heartbeat loop reads it), the lag is those 50.
    node.pause_apply();
    let last = append(&mut writer, &mut log, 21..=70).await;
    wait_until("the lag shows the 50 commits not applied", &node, |stats| {
        stats.lag == Some(50)
    })
    .await;
    let stats = node.stats();
    assert_eq!(
        (
            stats.applied_stream_seq,
            stats.stream_last_seq,
            stats.applied_seq
        ),
        (applied, last, Some(SeqId(20)))
    );
    assert_eq!(node.lag(), Some(50));

    // Applying again, it catches up and the lag is back to zero.
    node.resume_apply();
    caught_up(&node, last).await;
    assert_eq!(node.lag(), Some(0), "{:?}", node.stats());
    stop.store(true, Ordering::Release);
    let received = task.await.unwrap();
    assert_eq!(
        changes_of(&received, all.live_query_id),
        expected_for(&log, None, |_| true)
    );
    let stats = node.stats();
    assert_eq!(
        stats.gaps + stats.duplicates + stats.decode_errors + stats.apply_errors,
        0,
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hole_lost_to_retention_is_reported_once() {
    // The stream keeps 10 messages; the node pulls one at a time, so it buffers little.
    let mut stream = stream_config("lost_once");
    stream.max_messages = 10;
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let node = NodeBridge::start(
        manager(1),
        NodeConfig {
            batch: 1,
            ..node_config(1, &stream)
        },
    )
    .await
    .unwrap();
    let connection = client(node.manager(), "alice");
    let all = node
        .manager()
        .subscribe(
            connection.connection_id,
            QuerySpec::table(items()),
            SubscriptionOptions::default(),
        )
        .unwrap();
    let (task, stop) = spawn_drain(connection.notifications);

    let mut log = Vec::new();
    let applied = append(&mut writer, &mut log, 1..=5).await;
    caught_up(&node, applied).await;
    // While the node does not apply, 60 commits are appended and all but the last 10 are
    // trimmed: the node can only have the few it already held.
    node.pause_apply();
    let last = append(&mut writer, &mut log, 6..=65).await;
    wait_until("the node saw the stream's end", &node, |stats| {
        stats.stream_last_seq == last
    })
    .await;
    node.resume_apply();
    caught_up(&node, last).await;
    stop.store(true, Ordering::Release);
    let received = task.await.unwrap();

    // One hole, one error, one gap: `Lost`, not followed by `ChainBroken` for the same hole.
    let errors = node.take_errors();
    let [BridgeError::Lost { from, to }] = errors[..] else {
        panic!("expected one Lost error, got {errors:?}");
    };
    let stats = node.stats();
    assert_eq!(stats.gaps, 1, "{stats:?}");
    // Stream sequence n holds commit n - 1 (the schema is 1). What came before the hole
    // arrived, once and in order (up to where the resync found it); the last 10 commits were retained. The subscriber could
    // not be made whole (the stream no longer has the hole's commits): its subscription
    // ended there with `ResyncRequired`, and nothing of it arrived after.
    assert!(
        from > applied && to >= from && to < last - 9,
        "{from}..={to}"
    );
    // (Ending a subscription drops what was still queued for it: a prefix arrived.)
    let before_hole = expected_for(&log, None, |seq| seq + 1 < from);
    let arrived = changes_of(&received, all.live_query_id);
    assert!(before_hole.starts_with(&arrived), "{arrived:?}");
    assert_eq!(
        notices_of(&received, all.live_query_id),
        vec!["resync_required".to_string()]
    );
    assert_eq!(stats.resynced_subscriptions, 1, "{stats:?}");
    assert_eq!(stats.commits_applied, 65 - (to - from + 1), "{stats:?}");
    assert_eq!(
        stats.duplicates + stats.decode_errors + stats.apply_errors,
        0,
        "{stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_heartbeat_interval_longer_than_the_staleness_bound_keeps_the_lag_known() {
    // The stream's info is read at least three times per `stream_end_stale_after`, not
    // only every heartbeat interval: an idle, healthy node (no deliveries tell it the
    // stream's end) keeps its lag known.
    let stream = stream_config("lag_long_heartbeat");
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let node = NodeBridge::start(
        manager(1),
        NodeConfig {
            heartbeat_interval: Duration::from_secs(30),
            // With a second's margin over the reads' period, for a loaded machine.
            stream_end_stale_after: Duration::from_secs(3),
            ..node_config(1, &stream)
        },
    )
    .await
    .unwrap();
    let mut log = Vec::new();
    let last = append(&mut writer, &mut log, 1..=3).await;
    caught_up(&node, last).await;
    // Twice the staleness bound with nothing appended.
    for _ in 0..120 {
        assert_eq!(node.lag(), Some(0), "{:?}", node.stats());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(node.take_errors().is_empty());
}
