//! Messages removed from the stream one by one (`delete_message`, as `nats stream rmm`
//! does), not by retention: the stream's first sequence does not move past them. A node
//! reading past such a hole reports it as lost and goes on (rather than making consumers
//! that skip it again, for ever), and a resume whose replay waits for a message removed at
//! the stream's end ends (rather than waiting for it without end, kept alive by the
//! consumer's idle heartbeats).

mod common;

use std::time::Duration;

use common::*;
use livecore::*;
use livecore_nats::*;

/// The stream's handle, for removing a message.
async fn stream_handle(stream: &StreamConfig) -> async_nats::jetstream::stream::Stream {
    let client = cluster::connect(&connection()).await.unwrap();
    cluster::jetstream(client, &connection())
        .get_stream(&stream.stream)
        .await
        .unwrap()
}

/// Waits (bounded) until every server's copy of the stream holds `messages` messages: a
/// removal reaches the replicas after the leader answered, and a consumer on a replica
/// that has not applied it yet would still deliver the message.
async fn removal_replicated(stream: &StreamConfig, messages: u64) {
    let wanted = format!("\"messages\":{messages},");
    let name = format!("\"name\":\"{}\"", stream.stream);
    for n in 1..=3 {
        wait_until(&format!("server {n} to apply the removal"), || {
            let Some(body) = monitor_get(n, "/jsz?streams=true") else {
                return false;
            };
            let body: String = body.chars().filter(|c| !c.is_whitespace()).collect();
            body.split_once(&name).is_some_and(|(_, detail)| {
                let state = detail
                    .split_once("\"state\":")
                    .map_or("", |(_, state)| state);
                state.starts_with(&format!("{{{wanted}")) || state.contains(&wanted)
            })
        })
        .await;
    }
}

/// A stream holding the schema (stream sequence 1) and commits 1..=4 (2..=5), with commit 2
/// (stream sequence 3) removed and the removal applied by every server; returns the
/// writer, its log and the last stream sequence.
async fn commits_with_the_second_removed(
    stream: &StreamConfig,
) -> (CommitWriter, Vec<(u64, Vec<ChangeNotification>)>, u64) {
    let mut writer = CommitWriter::connect(&connection(), stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let mut log = Vec::new();
    let last = append(&mut writer, &mut log, 1..=4).await;
    assert_eq!(last, 5);
    let handle = stream_handle(stream).await;
    assert!(handle.delete_message(3).await.unwrap());
    removal_replicated(stream, 4).await;
    (writer, log, last)
}

/// Node 1 on `manager`, reading `stream` from its first message.
async fn node_from_first(
    manager: std::sync::Arc<ConnectionsManager>,
    stream: &StreamConfig,
) -> NodeBridge {
    NodeBridge::start(
        manager,
        NodeConfig {
            start: StartFrom::First,
            ..node_config(1, stream)
        },
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reads_past_a_message_deleted_from_the_stream() {
    let stream = stream_config("removed_mid");
    let (mut writer, mut log, last) = commits_with_the_second_removed(&stream).await;

    let node = node_from_first(manager(1), &stream).await;
    // Every message after the hole is applied, within a generous bound.
    caught_up(&node, last).await;
    let stats = node.stats();
    assert_eq!(
        (stats.commits_applied, stats.gaps, stats.applied_seq),
        (3, 1, Some(SeqId(4))),
        "{stats:?}"
    );
    let errors = node.take_errors();
    assert!(
        errors.contains(&BridgeError::Lost { from: 3, to: 3 }),
        "{errors:?}"
    );

    // And the node goes on with live commits.
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
    let last = append(&mut writer, &mut log, 5..=6).await;
    caught_up(&node, last).await;
    received_up_to(node.manager(), all.live_query_id, 6).await;
    stop.store(true, std::sync::atomic::Ordering::Release);
    let received = task.await.unwrap();
    assert_eq!(
        changes_of(&received, all.live_query_id),
        expected_for(&log, None, |seq| seq >= 5)
    );
    assert_eq!(node.stats().gaps, 1, "{:?}", node.stats());
}

/// The subscribers a lost commit may have concerned are told: their subscriptions end with
/// `ResyncRequired` (a resume could not bring the commit back), and later subscriptions
/// see the live commits after the hole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_present_at_a_lost_commit_must_resync() {
    let stream = stream_config("removed_resync");
    let (mut writer, mut log, last) = commits_with_the_second_removed(&stream).await;

    // A subscriber on the node's manager before the node reads the stream (its table
    // registered by the host, as a node's first schema message would).
    let manager = manager(1);
    manager.register_table(items_schema()).unwrap();
    let connection = client(&manager, "alice");
    let early = manager
        .subscribe(
            connection.connection_id,
            QuerySpec::table(items()),
            SubscriptionOptions::default(),
        )
        .unwrap();
    let (task, stop) = spawn_drain(connection.notifications);
    let node = node_from_first(manager.clone(), &stream).await;
    caught_up(&node, last).await;
    let stats = node.stats();
    assert_eq!(
        (stats.gaps, stats.resynced_subscriptions),
        (1, 1),
        "{stats:?}"
    );

    let connection = client(&manager, "bob");
    let late = manager
        .subscribe(
            connection.connection_id,
            QuerySpec::table(items()),
            SubscriptionOptions::default(),
        )
        .unwrap();
    let (late_task, late_stop) = spawn_drain(connection.notifications);
    let last = append(&mut writer, &mut log, 5..=6).await;
    caught_up(&node, last).await;
    received_up_to(&manager, late.live_query_id, 6).await;
    stop.store(true, std::sync::atomic::Ordering::Release);
    late_stop.store(true, std::sync::atomic::Ordering::Release);
    let early_received = task.await.unwrap();
    let late_received = late_task.await.unwrap();
    // Commit 1 reached the early subscriber unless the resync found it still queued (an
    // ending drops what is queued), and nothing after.
    let arrived = changes_of(&early_received, early.live_query_id);
    assert!(
        expected_for(&log, None, |seq| seq == 1).starts_with(&arrived),
        "{arrived:?}"
    );
    assert_eq!(
        notices_of(&early_received, early.live_query_id),
        vec!["resync_required".to_string()]
    );
    assert_eq!(
        changes_of(&late_received, late.live_query_id),
        expected_for(&log, None, |seq| seq >= 5)
    );
    assert_eq!(node.stats().resynced_subscriptions, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_whose_last_message_was_removed_ends_instead_of_waiting() {
    let stream = stream_config("removed_end");
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let mut log = Vec::new();
    let last = append(&mut writer, &mut log, 1..=5).await;
    assert_eq!(last, 6);
    let mut handle = stream_handle(&stream).await;
    // The last commit (stream sequence 6) removed: the stream's last sequence stays 6.
    assert!(handle.delete_message(6).await.unwrap());
    removal_replicated(&stream, 5).await;
    let info = handle.info().await.unwrap();
    assert_eq!(
        (info.state.last_sequence, info.state.messages),
        (6, 5),
        "{:?}",
        info.state
    );

    let node = start_node(1, &stream).await;
    let connection = client(node.manager(), "alice");
    // Commits 1..=4 are there, commit 5 is not: the client cannot be made whole. The
    // replay must say so (or fail) rather than wait for stream sequence 6 for ever; a
    // minute is far beyond any bound the node sets itself.
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        node.resume(
            connection.connection_id,
            QuerySpec::table(items()),
            SeqId(0),
        ),
    )
    .await
    .expect("the resume still waits for a message removed from the stream");
    assert!(
        matches!(outcome, Ok(ResumeOutcome::Unavailable { .. })),
        "{outcome:?}"
    );
    let mut notifications = connection.notifications;
    let ended = loop {
        match notifications.recv_timeout(Duration::from_secs(30)) {
            Ok(Notification::Changes(_)) => continue,
            other => break other,
        }
    };
    assert!(
        matches!(ended, Ok(Notification::ResumeUnavailable { .. })),
        "{ended:?}"
    );
}

/// A long run of removed messages (as a subject-filtered purge leaves) is reported as one
/// hole, and the node applies what follows it. (It is found in one question to the
/// stream's leader, where it took one per message: this checks the answer's use, the
/// first message held from a sequence on; the request count is not observed here.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_run_of_removed_messages_is_one_hole() {
    let stream = stream_config("removed_run");
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let mut log = Vec::new();
    // Commits 1..=200 at stream sequences 2..=201; commits 2..=181 (sequences 3..=182)
    // are removed.
    let last = append(&mut writer, &mut log, 1..=200).await;
    assert_eq!(last, 201);
    let handle = stream_handle(&stream).await;
    for stream_seq in 3..=182 {
        assert!(handle.delete_message(stream_seq).await.unwrap());
    }
    removal_replicated(&stream, 201 - 180).await;

    let node = node_from_first(manager(1), &stream).await;
    caught_up(&node, last).await;
    let stats = node.stats();
    assert_eq!(
        (stats.commits_applied, stats.gaps, stats.applied_seq),
        (1 + 19, 1, Some(SeqId(200))),
        "{stats:?}"
    );
    let errors = node.take_errors();
    assert!(
        errors.contains(&BridgeError::Lost { from: 3, to: 182 }),
        "{errors:?}"
    );
}

/// The stream's last message removed before the node read it: no consumer will ever
/// deliver it, nor anything after it until the next append. The node finds the hole
/// itself once its consumer has been silent a while: reported `Lost`, its lag back to
/// zero; the next commit's broken chain resyncs the subscribers (as for any hole).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_removed_at_the_end_is_reported_without_waiting_for_the_next() {
    let stream = stream_config("removed_end");
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let mut log = Vec::new();
    let last = append(&mut writer, &mut log, 1..=4).await;
    assert_eq!(last, 5);
    let handle = stream_handle(&stream).await;
    assert!(handle.delete_message(5).await.unwrap());
    removal_replicated(&stream, 4).await;

    let node = node_from_first(manager(1), &stream).await;
    caught_up(&node, last).await;
    let stats = node.stats();
    assert_eq!(
        (stats.commits_applied, stats.gaps, stats.applied_seq),
        (3, 1, Some(SeqId(3))),
        "{stats:?}"
    );
    assert!(
        node.take_errors()
            .contains(&BridgeError::Lost { from: 5, to: 5 }),
        "{:?}",
        node.stats()
    );
    assert_eq!(node.lag(), Some(0), "{:?}", node.stats());
}
