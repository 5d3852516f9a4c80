//! A schema change (ALTER TABLE) travelling mid-stream: the writer appends commits, the
//! change, then more commits, pausing only until the subscribers have taken what came
//! before the change. Both nodes recompile at the same point of the stream: the
//! subscription on the dropped column is closed with the reason, the others go on and
//! receive every commit exactly once, in order, on either side of it.

mod common;

use std::sync::atomic::Ordering;

use common::*;
use livecore::*;
use livecore_nats::*;

/// The table after the change: `room` dropped, `lane` and `note` added; four columns, so
/// a commit applied against the wrong version is refused for its arity, not misread.
fn altered_schema() -> TableSchema {
    TableSchema::new(items(), TableScope::Shared, ["id", "lane", "body", "note"])
}

/// A commit of the altered table: two inserts (the body stays at index 2, as before).
fn altered_commit(seq: u64) -> Vec<ChangeNotification> {
    (0..2)
        .map(|i| {
            let id = (seq * 4 + i) as i64;
            ChangeNotification::insert(
                items(),
                Row::new(vec![
                    Value::Int(id),
                    Value::Int((seq % 2) as i64),
                    Value::text(&format!("c{seq}.{i}")),
                    Value::Null,
                ]),
            )
        })
        .collect()
}

/// What an `id >= 600` subscriber receives from the commits of `log`.
fn expected_high_ids(log: &[(u64, Vec<ChangeNotification>)]) -> Vec<Received> {
    log.iter()
        .filter_map(|(seq, changes)| {
            let bodies: Vec<String> = changes
                .iter()
                .filter(|change| matches!(change.row.value(0), Value::Int(id) if *id >= 600))
                .map(|change| match change.row.value(2) {
                    Value::Text(text) => text.to_string(),
                    other => panic!("body is text, got {other:?}"),
                })
                .collect();
            (!bodies.is_empty()).then_some(Received { seq: *seq, bodies })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alter_mid_stream_recompiles_every_node_at_the_same_point() {
    const BEFORE: u64 = 200;
    const AFTER: u64 = 400;
    let stream = stream_config("alter");
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let nodes = [start_node(1, &stream).await, start_node(2, &stream).await];
    let mut subscriptions = Vec::new();
    let mut drains = Vec::new();
    for node in &nodes {
        let manager = node.manager();
        let connection = client(manager, "alice");
        let subscribe = |spec: QuerySpec| {
            manager
                .subscribe(
                    connection.connection_id,
                    spec,
                    SubscriptionOptions::default(),
                )
                .unwrap()
                .live_query_id
        };
        let all = subscribe(QuerySpec::table(items()));
        let high =
            subscribe(QuerySpec::table(items()).filter(Expr::col("id").gt_eq(Expr::lit(600i64))));
        let room = subscribe(room_spec(1));
        subscriptions.push((all, high, room));
        drains.push(spawn_drain(connection.notifications));
    }

    let mut log = Vec::new();
    let mut before_stream_seq = 0;
    for seq in 1..=BEFORE {
        let changes = workload_commit(seq);
        before_stream_seq = writer
            .append_commit(SeqId(seq), &changes)
            .await
            .unwrap()
            .stream_seq;
        log.push((seq, changes));
    }
    // livecore discards what is still queued for a subscription it ends: the `room`
    // subscribers take every commit before the change first, so that all of them are
    // expected below (the nodes read the change itself whenever they reach it).
    let last_room_seq = expected_for(&log, Some(1), |_| true)
        .last()
        .expect("room 1 matched")
        .seq;
    for (node, (_, _, room)) in nodes.iter().zip(&subscriptions) {
        caught_up(node, before_stream_seq).await;
        received_up_to(node.manager(), *room, last_room_seq).await;
    }
    let (version, _) = writer.append_schema(altered_schema()).await.unwrap();
    assert_eq!(version, 2);
    let mut last_stream_seq = 0;
    for seq in BEFORE + 1..=AFTER {
        let changes = altered_commit(seq);
        last_stream_seq = writer
            .append_commit(SeqId(seq), &changes)
            .await
            .unwrap()
            .stream_seq;
        log.push((seq, changes));
    }
    for node in &nodes {
        caught_up(node, last_stream_seq).await;
    }

    for (node, ((all, high, room), (task, stop))) in
        nodes.iter().zip(subscriptions.into_iter().zip(drains))
    {
        stop.store(true, Ordering::Release);
        let received = task.await.unwrap();
        // The unfiltered and the `id` subscriptions span the change, nothing lost or twice.
        assert_eq!(
            changes_of(&received, all),
            expected_for(&log, None, |_| true)
        );
        assert_eq!(changes_of(&received, high), expected_high_ids(&log));
        assert!(notices_of(&received, all).is_empty());
        assert!(notices_of(&received, high).is_empty());
        // The `room` subscription got every matching commit before the change, then its
        // closing with the column it lost.
        assert_eq!(
            changes_of(&received, room),
            expected_for(&log, Some(1), |seq| seq <= BEFORE)
        );
        assert_eq!(
            notices_of(&received, room),
            vec![format!(
                "closed: schema_changed {}",
                CloseReason::SchemaChanged {
                    column: "room".into()
                }
            )]
        );
        let stats = node.stats();
        assert_eq!(stats.commits_applied, AFTER, "{stats:?}");
        assert_eq!(
            stats.decode_errors + stats.apply_errors + stats.gaps + stats.duplicates,
            0,
            "{stats:?}: {:?}",
            node.take_errors()
        );
        assert_eq!(stats.schemas_applied, 1, "the change, met in the stream");
        assert_eq!(
            node.manager().table_schema(&items()).unwrap().columns,
            altered_schema().columns
        );
    }
}

/// A same-width ALTER (v1 `[id, room, body]`, v2 `[id, body, note]`): the old rows would
/// decode as the new columns without error, so a resume from before the change must
/// answer `ResumeUnavailable` (on the node that saw the change and on one started after
/// it), and a resume from after it goes on as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_across_a_same_width_alter_is_resume_unavailable() {
    let stream = stream_config("same_width");
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let node1 = start_node(1, &stream).await;
    let mut log = Vec::new();
    append(&mut writer, &mut log, 1..=3).await;
    let v2 = TableSchema::new(items(), TableScope::Shared, ["id", "body", "note"]);
    writer.append_schema(v2).await.unwrap();
    let row = Row::new(vec![Value::Int(4), Value::text("c4"), Value::text("n4")]);
    let last = writer
        .append_commit(SeqId(4), &[ChangeNotification::insert(items(), row)])
        .await
        .unwrap();
    caught_up(&node1, last.stream_seq).await;
    let node2 = start_node(2, &stream).await;
    for node in [&node1, &node2] {
        let connection = client(node.manager(), "alice");
        let across = node
            .resume(
                connection.connection_id,
                QuerySpec::table(items()),
                SeqId(0),
            )
            .await
            .unwrap();
        assert!(
            matches!(across, ResumeOutcome::Unavailable { .. }),
            "resume from 0 across the ALTER: {across:?}"
        );
        let after = node
            .resume(
                connection.connection_id,
                QuerySpec::table(items()),
                SeqId(3),
            )
            .await
            .unwrap();
        let ResumeOutcome::Resumed { replayed, .. } = after else {
            panic!("resume from 3 (after the ALTER): {after:?}");
        };
        assert_eq!(replayed, 1);
    }
}
