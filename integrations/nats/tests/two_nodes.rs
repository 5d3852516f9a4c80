//! Two nodes and one writer on the 3-server cluster: every matching commit reaches the
//! subscriptions of both nodes exactly once and in order; a retried append is applied
//! once; a message that cannot be decoded, or a commit whose predecessor the node never
//! applied, is reported and counted.

mod common;

use std::sync::atomic::Ordering;

use bytes::Bytes;
use common::*;
use livecore::*;
use livecore_nats::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_nodes_receive_every_commit_once_in_order_while_the_writer_commits() {
    let stream = stream_config("two_nodes");
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let nodes = [start_node(1, &stream).await, start_node(2, &stream).await];
    // The schema reached both nodes (from key-value at start, or from the stream).
    let mut subscriptions = Vec::new();
    let mut drains = Vec::new();
    for node in &nodes {
        let manager = node.manager();
        let connection = client(manager, "alice");
        let all = manager
            .subscribe(
                connection.connection_id,
                QuerySpec::table(items()),
                SubscriptionOptions::default(),
            )
            .unwrap();
        let room = manager
            .subscribe_sql(
                connection.connection_id,
                "SELECT * FROM app.items WHERE room = 1",
                SubscriptionOptions::default(),
            )
            .unwrap();
        subscriptions.push((all.live_query_id, room.live_query_id));
        drains.push(spawn_drain(connection.notifications));
    }

    // The writer keeps up to 64 appends in flight (the default).
    let mut log = Vec::new();
    for seq in 1..=400u64 {
        let changes = workload_commit(seq);
        writer.send_commit(SeqId(seq), &changes).await.unwrap();
        assert!(writer.in_flight() <= WriterConfig::default().max_in_flight);
        log.push((seq, changes));
    }
    let appended = writer.flush().await.unwrap().unwrap();
    assert_eq!(writer.acknowledged_seq(), Some(SeqId(400)));
    assert_eq!(writer.resent(), 0);
    assert!(!appended.duplicate);
    // The schema, then one message per commit: none stored twice or out of place.
    let last_stream_seq = appended.stream_seq;
    assert_eq!(last_stream_seq, 401);
    for node in &nodes {
        caught_up(node, last_stream_seq).await;
    }
    for (node, ((all, room), (task, stop))) in
        nodes.iter().zip(subscriptions.into_iter().zip(drains))
    {
        stop.store(true, Ordering::Release);
        let received = task.await.unwrap();
        assert_eq!(
            changes_of(&received, all),
            expected_for(&log, None, |_| true)
        );
        assert_eq!(
            changes_of(&received, room),
            expected_for(&log, Some(1), |_| true)
        );
        assert!(notices_of(&received, all).is_empty());
        let stats = node.stats();
        assert_eq!(stats.commits_applied, 400, "{stats:?}");
        assert_eq!(stats.duplicates, 0);
        assert_eq!(stats.decode_errors + stats.apply_errors + stats.gaps, 0);
        assert_eq!(stats.lag, Some(0));
        assert_eq!(stats.applied_seq, Some(SeqId(400)));
        assert!(node.take_errors().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_append_is_stored_and_applied_once() {
    let stream = stream_config("retry");
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let node = start_node(1, &stream).await;
    let connection = client(node.manager(), "alice");
    let sub = node
        .manager()
        .subscribe(
            connection.connection_id,
            QuerySpec::table(items()),
            SubscriptionOptions::default(),
        )
        .unwrap();
    let (task, stop) = spawn_drain(connection.notifications);

    let changes = workload_commit(1);
    let bytes = writer.encode_commit(SeqId(1), &changes);
    let first = writer.append_commit(SeqId(1), &changes).await.unwrap();
    // The engine lost the acknowledgement and sends the same commit again.
    let again = writer
        .append_bytes(&CommitWriter::commit_message_id(SeqId(1)), bytes)
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.stream_seq, first.stream_seq);
    let second = writer
        .append_commit(SeqId(2), &workload_commit(2))
        .await
        .unwrap();
    assert_eq!(
        second.stream_seq,
        first.stream_seq + 1,
        "the retry took no place"
    );
    let mut info_stream = writer.stream().clone();
    let info = info_stream.info().await.unwrap();
    assert_eq!(info.state.messages, 3, "schema, commit 1, commit 2");

    caught_up(&node, second.stream_seq).await;
    stop.store(true, Ordering::Release);
    let received = task.await.unwrap();
    let seqs: Vec<u64> = changes_of(&received, sub.live_query_id)
        .iter()
        .map(|received| received.seq)
        .collect();
    // Ending a subscription drops what was still queued for it: a prefix of 1, 2 arrived.
    assert!([1, 2].starts_with(&seqs), "{seqs:?}");
    assert_eq!(node.stats().commits_applied, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_messages_are_reported_and_counted_and_the_stream_goes_on() {
    let stream = stream_config("damaged");
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let node = start_node(1, &stream).await;
    writer
        .append_commit(SeqId(1), &workload_commit(1))
        .await
        .unwrap();
    // A foreign message on the subject, and a damaged copy of a real commit.
    writer
        .append_bytes("foreign-1", Bytes::from_static(b"{\"not\":\"livecore\"}"))
        .await
        .unwrap();
    let mut damaged = writer.encode_commit(SeqId(2), &workload_commit(2)).to_vec();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    writer
        .append_bytes("damaged-2", Bytes::from(damaged))
        .await
        .unwrap();
    let last = writer
        .append_commit(SeqId(3), &workload_commit(3))
        .await
        .unwrap();
    caught_up(&node, last.stream_seq).await;

    let stats = node.stats();
    assert_eq!(stats.decode_errors, 2, "{stats:?}");
    assert_eq!(stats.commits_applied, 2);
    // The writer never appended commit 2 itself: commit 3 follows commit 1, no gap.
    assert_eq!(stats.gaps, 0);
    let errors = node.take_errors();
    assert!(matches!(
        errors[0],
        BridgeError::Decode {
            error: livecore_nats::codec::CodecError::BadMagic,
            ..
        }
    ));
    assert!(matches!(
        errors[1],
        BridgeError::Decode {
            error: livecore_nats::codec::CodecError::Checksum { .. },
            ..
        }
    ));
    assert_eq!(errors.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_chain_is_a_typed_error_reported_and_counted() {
    let stream = stream_config("chain");
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let node = start_node(1, &stream).await;
    let connection = client(node.manager(), "alice");
    let sub = node
        .manager()
        .subscribe(
            connection.connection_id,
            QuerySpec::table(items()),
            SubscriptionOptions::default(),
        )
        .unwrap();
    let (task, stop) = spawn_drain(connection.notifications);
    for seq in 1..=2 {
        writer
            .append_commit(SeqId(seq), &workload_commit(seq))
            .await
            .unwrap();
    }
    // Commit 5 names 4 as its predecessor: commits 3 and 4 never reached the stream (as
    // if trimmed, or appended by a writer that lost them).
    let orphan =
        livecore_nats::codec::encode_commit(SeqId(5), Some(SeqId(4)), &workload_commit(5), |_| 1);
    let appended = writer
        .append_bytes(
            &CommitWriter::commit_message_id(SeqId(5)),
            Bytes::from(orphan),
        )
        .await
        .unwrap();
    caught_up(&node, appended.stream_seq).await;

    let stats = node.stats();
    assert_eq!(stats.gaps, 1, "{stats:?}");
    assert_eq!(stats.decode_errors + stats.apply_errors, 0);
    assert_eq!(
        node.take_errors(),
        vec![BridgeError::ChainBroken {
            stream_seq: appended.stream_seq,
            seq: SeqId(5),
            prev: Some(SeqId(4)),
            applied: Some(SeqId(2)),
        }]
    );
    // Reported, and still applied (the node's position moves on to it), but the
    // subscribers present could not be made whole: their subscriptions end with
    // `ResyncRequired` before commit 5, never silently passed over.
    assert_eq!(stats.commits_applied, 3);
    assert_eq!(stats.applied_seq, Some(SeqId(5)));
    assert_eq!(stats.resynced_subscriptions, 1, "{stats:?}");
    stop.store(true, Ordering::Release);
    let received = task.await.unwrap();
    let seqs: Vec<u64> = changes_of(&received, sub.live_query_id)
        .iter()
        .map(|received| received.seq)
        .collect();
    assert_eq!(seqs, vec![1, 2]);
    assert_eq!(
        notices_of(&received, sub.live_query_id),
        vec!["resync_required".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipelined_append_refused_behind_a_foreign_message_is_resent_in_order() {
    let stream = stream_config("pipeline");
    let mut writer = CommitWriter::connect_with(
        &connection(),
        &stream,
        &WriterConfig {
            max_in_flight: 8,
            ..WriterConfig::default()
        },
    )
    .await
    .unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let node = start_node(1, &stream).await;
    let connection = client(node.manager(), "alice");
    let sub = node
        .manager()
        .subscribe(
            connection.connection_id,
            QuerySpec::table(items()),
            SubscriptionOptions::default(),
        )
        .unwrap();
    let (task, stop) = spawn_drain(connection.notifications);
    writer
        .append_commit(SeqId(1), &workload_commit(1))
        .await
        .unwrap();
    writer
        .send_commit(SeqId(2), &workload_commit(2))
        .await
        .unwrap();
    // Another publisher's message lands between commit 2 and commit 3, which is sent
    // expecting commit 2 last: JetStream refuses it, and the writer sends it again.
    writer
        .append_bytes("foreign-1", Bytes::from_static(b"not livecore"))
        .await
        .unwrap();
    for seq in 3..=6 {
        writer
            .send_commit(SeqId(seq), &workload_commit(seq))
            .await
            .unwrap();
    }
    let last = writer.flush().await.unwrap().unwrap();
    assert_eq!(writer.acknowledged_seq(), Some(SeqId(6)));
    assert_eq!(writer.in_flight(), 0);
    assert_eq!(
        writer.resent(),
        4,
        "commits 3 to 6 were refused and sent again"
    );
    let mut info_stream = writer.stream().clone();
    let info = info_stream.info().await.unwrap();
    assert_eq!(
        info.state.messages, 8,
        "schema, commits 1 and 2, the foreign message, commits 3 to 6: each once"
    );
    assert_eq!(last.stream_seq, 8);

    caught_up(&node, last.stream_seq).await;
    stop.store(true, Ordering::Release);
    let received = task.await.unwrap();
    let seqs: Vec<u64> = changes_of(&received, sub.live_query_id)
        .iter()
        .map(|received| received.seq)
        .collect();
    assert_eq!(seqs, (1..=6).collect::<Vec<_>>());
    let stats = node.stats();
    assert_eq!(stats.commits_applied, 6);
    assert_eq!(stats.decode_errors, 1, "the foreign message: {stats:?}");
    assert_eq!(stats.gaps + stats.duplicates + stats.apply_errors, 0);
}

/// A commit larger than the servers' max_payload is a typed error at once (not retried as
/// if the cluster were down), alone or among pipelined commits; the writer goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_over_max_payload_is_too_large_at_once_and_the_writer_goes_on() {
    let stream = stream_config("too_large");
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let node = start_node(1, &stream).await;
    let big = |seq: u64| {
        let row = Row::new(vec![
            Value::Int(seq as i64),
            Value::Int(1),
            Value::text(&"x".repeat(2 << 20)),
        ]);
        vec![ChangeNotification::insert(items(), row)]
    };
    writer
        .send_commit(SeqId(1), &workload_commit(1))
        .await
        .unwrap();
    match writer.send_commit(SeqId(2), &big(2)).await {
        Err(BridgeError::TooLarge {
            seq, max_payload, ..
        }) => assert_eq!((seq, max_payload), (Some(SeqId(2)), 1 << 20)),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // Moved past: commit 2 is a hole the next commit's predecessor shows, never a silent
    // one (commit 3 naming commit 1 would hide it from nodes and resumes).
    assert_eq!(writer.last_seq(), Some(SeqId(2)));
    writer
        .send_commit(SeqId(3), &workload_commit(3))
        .await
        .unwrap();
    let last = writer.flush().await.unwrap().unwrap();
    assert_eq!(writer.acknowledged_seq(), Some(SeqId(3)));
    caught_up(&node, last.stream_seq).await;
    let stats = node.stats();
    assert_eq!((stats.commits_applied, stats.gaps), (2, 1), "{stats:?}");
    assert!(matches!(
        node.take_errors().as_slice(),
        [BridgeError::ChainBroken { seq, prev, applied, .. }]
            if (*seq, *prev, *applied) == (SeqId(3), Some(SeqId(2)), Some(SeqId(1)))
    ));
}

/// An undecodable message at the stream's end does not keep a node or a writer from
/// starting: it is reported, and the last message that decodes tells where the stream
/// ends (so the chain goes on unbroken).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_last_message_is_reported_on_start_and_skipped() {
    let stream = stream_config("junk_tail");
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    append(&mut writer, &mut Vec::new(), 1..=3).await;
    let junk = writer
        .append_bytes("foreign-tail", Bytes::from_static(b"not a livecore frame"))
        .await
        .unwrap()
        .stream_seq;
    drop(writer);
    let node = start_node(1, &stream).await;
    assert!(matches!(
        node.take_errors().as_slice(),
        [BridgeError::Decode { stream_seq, .. }] if *stream_seq == junk
    ));
    assert_eq!(node.stats().decode_errors, 1);
    assert_eq!(node.stats().applied_seq, Some(SeqId(3)));
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    assert_eq!(writer.last_seq(), Some(SeqId(3)));
    assert!(matches!(
        writer.take_errors().as_slice(),
        [BridgeError::Decode { stream_seq, .. }] if *stream_seq == junk
    ));
    let last = append(&mut writer, &mut Vec::new(), 4..=4).await;
    caught_up(&node, last).await;
    let stats = node.stats();
    assert_eq!((stats.commits_applied, stats.gaps), (1, 0), "{stats:?}");
    assert_eq!(node.take_errors(), vec![]);
}
