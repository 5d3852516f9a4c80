//! A NATS server killed with SIGKILL mid-stream, then restarted: the stream survives on
//! the other two, and neither node loses or repeats a commit. Its own test binary, so no
//! other test runs while a server is down.

mod common;

use std::sync::atomic::Ordering;

use common::*;
use livecore::*;
use livecore_nats::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_and_restarted_costs_no_commit_on_either_node() {
    let stream = stream_config("server_kill");
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let nodes = [start_node(1, &stream).await, start_node(2, &stream).await];
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
        let room = node
            .manager()
            .subscribe(
                connection.connection_id,
                room_spec(0),
                SubscriptionOptions::default(),
            )
            .unwrap();
        subscriptions.push((all.live_query_id, room.live_query_id));
        drains.push(spawn_drain(connection.notifications));
    }

    let mut log = Vec::new();
    for seq in 1..=600u64 {
        if seq == 150 {
            // Every server leads something (the stream, a consumer, a bucket): kill one
            // without warning.
            kill_server(2);
        }
        if seq == 400 {
            restart_server(2);
        }
        // Up to 64 appends in flight: those a dead server leaves unanswered are sent again,
        // in order, with their message ids.
        let changes = workload_commit(seq);
        writer.send_commit(SeqId(seq), &changes).await.unwrap();
        log.push((seq, changes));
    }
    let last = writer.flush().await.unwrap().unwrap().stream_seq;
    // One message per commit, plus the schema: no append was stored twice.
    assert_eq!(last, 601);
    for node in &nodes {
        caught_up(node, last).await;
    }
    for (node, ((all, room), (task, stop))) in
        nodes.iter().zip(subscriptions.into_iter().zip(drains))
    {
        stop.store(true, Ordering::Release);
        let received = task.await.unwrap();
        let stats = node.stats();
        assert_eq!(
            stats.duplicates + stats.gaps + stats.decode_errors + stats.apply_errors,
            0,
            "{stats:?}: {:?}",
            node.take_errors()
        );
        assert_eq!(
            changes_of(&received, all),
            expected_for(&log, None, |_| true)
        );
        assert_eq!(
            changes_of(&received, room),
            expected_for(&log, Some(0), |_| true)
        );
        assert_eq!(stats.commits_applied, 600, "{stats:?}");
    }

    // The stream's creation time (how a node tells a stream created again under the same
    // name) is the same whichever server leads it, the restarted one included: moving the
    // leader around is no `StreamReset`, and the lag stays known.
    let client = cluster::connect(&connection()).await.unwrap();
    let js = cluster::jetstream(client.clone(), &connection());
    let created = js
        .get_stream(&stream.stream)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .created;
    for _ in 0..3 {
        let _ = client
            .request(
                format!("$JS.API.STREAM.LEADER.STEPDOWN.{}", stream.stream),
                "".into(),
            )
            .await;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let mut handle = js.get_stream(&stream.stream).await.unwrap();
        let info = handle.info().await.unwrap();
        assert_eq!(info.created, created, "{:?}", info.cluster);
    }
    for node in &nodes {
        let stats = node.stats();
        assert_eq!((stats.stream_resets, stats.lag), (0, Some(0)), "{stats:?}");
    }
}
