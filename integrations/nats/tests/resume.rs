//! A node killed mid-stream: its clients re-subscribe on the other node (and on the node
//! once restarted, empty) with `resume_from` and get exactly what they missed, then live
//! commits; past the stream's retention they get `ResumeUnavailable`.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use livecore::*;
use livecore_nats::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_of_a_killed_node_resume_on_the_other_node_and_on_its_restart() {
    let stream = stream_config("resume");
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let node1 = start_node(1, &stream).await;
    let node2 = start_node(2, &stream).await;

    // Two clients on node 1: every room, and room 2.
    let connection = client(node1.manager(), "alice");
    let all = node1
        .manager()
        .subscribe(
            connection.connection_id,
            QuerySpec::table(items()),
            SubscriptionOptions::default(),
        )
        .unwrap();
    let room = node1
        .manager()
        .subscribe(
            connection.connection_id,
            room_spec(2),
            SubscriptionOptions::default(),
        )
        .unwrap();
    let (task, stop) = spawn_drain(connection.notifications);

    let mut log = Vec::new();
    let mut last = append(&mut writer, &mut log, 1..=120).await;
    caught_up(&node1, last).await;
    stop.store(true, Ordering::Release);
    let before = task.await.unwrap();
    let before_all = changes_of(&before, all.live_query_id);
    let before_room = changes_of(&before, room.live_query_id);
    assert_eq!(before_all, expected_for(&log, None, |_| true));
    // The clients' last SeqIds; node 1 dies (nothing cleaned up).
    let last_all = before_all.last().unwrap().seq;
    let last_room = before_room.last().unwrap().seq;
    node1.kill();

    // The writer goes on while the clients move.
    for seq in 121..=200u64 {
        let changes = workload_commit(seq);
        writer.append_commit(SeqId(seq), &changes).await.unwrap();
        log.push((seq, changes));
    }
    let moved = client(node2.manager(), "alice");
    let resumed_all = node2
        .resume(
            moved.connection_id,
            QuerySpec::table(items()),
            SeqId(last_all),
        )
        .await
        .unwrap();
    let resumed_room = node2
        .resume_sql(
            moved.connection_id,
            "SELECT * FROM app.items WHERE room = 2",
            SeqId(last_room),
        )
        .await
        .unwrap();
    let (task, stop) = spawn_drain(moved.notifications);
    // And live commits after the resume.
    append(&mut writer, &mut log, 201..=260).await;

    // Node 1 restarts empty; a third client comes back to it from SeqId 150.
    let node1 = start_node(1, &stream).await;
    let back = client(node1.manager(), "alice");
    let resumed_back = node1
        .resume(back.connection_id, room_spec(3), SeqId(150))
        .await
        .unwrap();
    let (task_back, stop_back) = spawn_drain(back.notifications);
    last = append(&mut writer, &mut log, 261..=300).await;
    caught_up(&node2, last).await;
    caught_up(&node1, last).await;
    stop.store(true, Ordering::Release);
    stop_back.store(true, Ordering::Release);
    let after = task.await.unwrap();
    let after_back = task_back.await.unwrap();

    // (How many commits the replay held, rather than the gate, depends on timing; what the
    // client received is checked whole below.)
    let ResumeOutcome::Resumed {
        subscription: all2, ..
    } = resumed_all
    else {
        panic!("resume within retention: {resumed_all:?}");
    };
    let ResumeOutcome::Resumed {
        subscription: room2,
        ..
    } = resumed_room
    else {
        panic!("resume within retention: {resumed_room:?}");
    };
    let ResumeOutcome::Resumed {
        subscription: back3,
        ..
    } = resumed_back
    else {
        panic!("resume within retention: {resumed_back:?}");
    };
    // Exactly what each missed, in order, then the live commits: no gap, no repeat.
    assert_eq!(
        changes_of(&after, all2.live_query_id),
        expected_for(&log, None, |seq| seq > last_all)
    );
    assert_eq!(
        changes_of(&after, room2.live_query_id),
        expected_for(&log, Some(2), |seq| seq > last_room)
    );
    assert_eq!(
        notices_of(&after, all2.live_query_id),
        vec!["load_complete"]
    );
    assert_eq!(
        changes_of(&after_back, back3.live_query_id),
        expected_for(&log, Some(3), |seq| seq > 150)
    );
    assert_eq!(node1.stats().decode_errors + node1.stats().apply_errors, 0);
    assert_eq!(node2.stats().gaps, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_retention_the_answer_is_resume_unavailable() {
    let mut stream = stream_config("retention");
    stream.max_messages = 30;
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let node = start_node(1, &stream).await;
    let mut last = 0;
    for seq in 1..=100u64 {
        last = writer
            .append_commit(SeqId(seq), &workload_commit(seq))
            .await
            .unwrap()
            .stream_seq;
    }
    caught_up(&node, last).await;
    let connection = client(node.manager(), "alice");
    // Commits 71..=100 are retained: resuming after 10 cannot be made whole.
    let gone = node
        .resume(
            connection.connection_id,
            QuerySpec::table(items()),
            SeqId(10),
        )
        .await
        .unwrap();
    let ResumeOutcome::Unavailable { live_query_id } = gone else {
        panic!("expected ResumeUnavailable, got {gone:?}");
    };
    // Resuming after 70 (the last trimmed commit's successor is retained) works.
    let kept = node
        .resume(
            connection.connection_id,
            QuerySpec::table(items()),
            SeqId(70),
        )
        .await
        .unwrap();
    let ResumeOutcome::Resumed {
        subscription,
        replayed,
    } = kept
    else {
        panic!("expected a resume, got {kept:?}");
    };
    assert_eq!(replayed, 30);
    let (task, stop) = spawn_drain(connection.notifications);
    stop.store(true, Ordering::Release);
    let received = task.await.unwrap();
    assert_eq!(
        notices_of(&received, live_query_id),
        vec!["resume_unavailable"]
    );
    let seqs: Vec<u64> = changes_of(&received, subscription.live_query_id)
        .iter()
        .map(|received| received.seq)
        .collect();
    assert_eq!(seqs, (71..=100).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_nothing_cannot_hold_a_resume() {
    let stream = stream_config("stalled");
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let mut log = Vec::new();
    let mut last = append(&mut writer, &mut log, 1..=60).await;
    // A node whose clients' channels hold 8 notifications, and which waits 300 ms for a
    // client to make room.
    let manager = Arc::new(
        ConnectionsManager::new(ManagerConfig {
            node_id: NodeId(1),
            notification_channel_capacity: 8,
            ..ManagerConfig::default()
        })
        .unwrap(),
    );
    let node = NodeBridge::start(
        manager,
        NodeConfig {
            start: StartFrom::First,
            resume_stall_timeout: Duration::from_millis(300),
            ..node_config(1, &stream)
        },
    )
    .await
    .unwrap();
    caught_up(&node, last).await;

    // The client reads nothing while 60 commits are replayed into its channel: the resume
    // ends (the bound here only turns a hang into a failure) with a typed error.
    let stalled = client(node.manager(), "alice");
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        node.resume(stalled.connection_id, QuerySpec::table(items()), SeqId(0)),
    )
    .await
    .expect("a resume into a channel nobody reads must end");
    let Err(BridgeError::ResumeStalled {
        live_query_id,
        replayed_to: Some(replayed_to),
        waited,
    }) = outcome
    else {
        panic!("expected ResumeStalled, got {outcome:?}");
    };
    assert_eq!(waited, Duration::from_millis(300));
    assert!(replayed_to.0 < 60, "the replay stopped at {replayed_to}");

    // When the client reads again it finds `resume_unavailable`: it must resubscribe,
    // nothing is silently missing.
    let (task, stop) = spawn_drain(stalled.notifications);
    // The node is unharmed: a reading client on it resumes whole, live commits included.
    let reader = client(node.manager(), "bob");
    let (reader_task, reader_stop) = spawn_drain(reader.notifications);
    let resumed = node
        .resume(reader.connection_id, QuerySpec::table(items()), SeqId(0))
        .await
        .unwrap();
    let ResumeOutcome::Resumed {
        subscription,
        replayed,
    } = resumed
    else {
        panic!("expected a resume, got {resumed:?}");
    };
    assert_eq!(replayed, 60);
    let changes = workload_commit(61);
    last = writer
        .append_commit(SeqId(61), &changes)
        .await
        .unwrap()
        .stream_seq;
    log.push((61, changes));
    caught_up(&node, last).await;
    stop.store(true, Ordering::Release);
    reader_stop.store(true, Ordering::Release);
    let received = task.await.unwrap();
    let reader_received = reader_task.await.unwrap();

    // What was queued for the ended subscription may be dropped by livecore; whatever
    // arrived is a prefix of what the replay gave, in order, and the notice follows.
    let given = changes_of(&received, live_query_id);
    let replay = expected_for(&log, None, |seq| seq <= replayed_to.0);
    assert!(
        given.len() <= replay.len() && given[..] == replay[..given.len()],
        "the stalled client got {given:?}"
    );
    assert_eq!(
        notices_of(&received, live_query_id),
        vec!["resume_unavailable"]
    );
    assert_eq!(
        changes_of(&reader_received, subscription.live_query_id),
        expected_for(&log, None, |_| true)
    );
    let stats = node.stats();
    assert_eq!(
        stats.gaps + stats.decode_errors + stats.apply_errors,
        0,
        "{stats:?}"
    );
}

/// A second copy of a commit (a writer re-sending after its duplicate window) is given
/// once, not taken for a break in the chain: when the replay meets it after the commit
/// itself, and when the search for where a resume starts lands on it (its position is
/// below its neighbours', so the search can skip commits the client lacks: the replay
/// then reads the stream from its start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_copy_of_a_commit_is_given_once() {
    let stream = stream_config("resume_copy");
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let node = start_node(1, &stream).await;
    let mut log = Vec::new();
    append(&mut writer, &mut log, 1..=14).await;
    // Commit 15 as its writer encoded it, appended again after commit 20 under another
    // message id (JetStream's duplicate window no longer covers it).
    let copy = writer.encode_commit(SeqId(15), &workload_commit(15));
    append(&mut writer, &mut log, 15..=20).await;
    writer.append_bytes("copy-of-15", copy).await.unwrap();
    let last = append(&mut writer, &mut log, 21..=40).await;
    caught_up(&node, last).await;

    // From 10 the replay meets commit 15, then its copy; from 17 the halving search
    // probes the copy (position 15, at stream sequence 22) and would start at commit 21.
    for after in [10, 17] {
        let connection = client(node.manager(), "alice");
        let resumed = node
            .resume(
                connection.connection_id,
                QuerySpec::table(items()),
                SeqId(after),
            )
            .await
            .unwrap();
        let (subscription, replayed) = common::resumed(resumed);
        assert_eq!(replayed, 40 - after, "commits after {after}, each once");
        let (task, stop) = spawn_drain(connection.notifications);
        stop.store(true, Ordering::Release);
        let received = task.await.unwrap();
        assert_eq!(
            changes_of(&received, subscription.live_query_id),
            expected_for(&log, None, |seq| seq > after)
        );
    }
}
