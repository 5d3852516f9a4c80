//! Retention removing what nodes and writers start from: a stream whose every message aged
//! out (the writer must not take it for a fresh stream, resumes must not claim a whole
//! replay they cannot prove, a new node still knows the tables), and a node started from
//! the stream's first message after its head was trimmed (nothing lost for that node).

mod common;

use std::time::Duration;

use common::*;
use livecore::*;
use livecore_nats::*;

/// Waits (bounded, by polling the stream's state) until retention removed every message.
async fn aged_out(stream: &async_nats::jetstream::stream::Stream) {
    let mut stream = stream.clone();
    for _ in 0..300 {
        if stream.info().await.unwrap().state.messages == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the stream's messages did not age out");
}

fn resumed(outcome: &ResumeOutcome) -> Option<u64> {
    match outcome {
        ResumeOutcome::Resumed { replayed, .. } => Some(*replayed),
        ResumeOutcome::Unavailable { .. } => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_every_message_aged_out_nothing_is_silently_lost() {
    let mut stream = stream_config("aged");
    stream.max_age = Duration::from_secs(1);
    stream.duplicate_window = Duration::from_secs(1);
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let node1 = start_node(1, &stream).await;
    let last = append(&mut writer, &mut Vec::new(), 1..=3).await;
    caught_up(&node1, last).await;
    let handle = writer.stream().clone();
    drop(writer);
    aged_out(&handle).await;

    // The writer does not take the stream for a fresh one (it would start again at 1).
    match CommitWriter::connect(&connection(), &stream).await {
        Err(BridgeError::UnknownTail { last_stream_seq }) => assert_eq!(last_stream_seq, last),
        Err(other) => panic!("expected UnknownTail, got {other}"),
        Ok(writer) => panic!("expected UnknownTail, got last_seq {:?}", writer.last_seq()),
    }
    // A node started now knows the tables (from the schema bucket)...
    let node2 = start_node(2, &stream).await;
    let viewer = client(node2.manager(), "bob");
    node2
        .manager()
        .subscribe(
            viewer.connection_id,
            QuerySpec::table(items()),
            SubscriptionOptions::default(),
        )
        .unwrap();
    // ...but cannot prove any client whole; node 1 can for a client that has what it
    // applied.
    let back = client(node2.manager(), "carol");
    let outcome = node2
        .resume(back.connection_id, QuerySpec::table(items()), SeqId(2))
        .await
        .unwrap();
    assert_eq!(resumed(&outcome), None, "{outcome:?}");
    let back1 = client(node1.manager(), "carol");
    let outcome = node1
        .resume(back1.connection_id, QuerySpec::table(items()), SeqId(2))
        .await
        .unwrap();
    assert_eq!(resumed(&outcome), None, "{outcome:?}");
    let outcome = node1
        .resume(back1.connection_id, QuerySpec::table(items()), SeqId(3))
        .await
        .unwrap();
    assert_eq!(resumed(&outcome), Some(0), "{outcome:?}");

    // Keep what comes next (the test reads it back), then go on after the engine's 3.
    let mut config = handle.cached_info().config.clone();
    config.max_age = Duration::ZERO;
    async_nats::jetstream::new(node1_client().await)
        .update_stream(config)
        .await
        .unwrap();
    let mut writer =
        CommitWriter::connect_after(&connection(), &stream, &WriterConfig::default(), SeqId(3))
            .await
            .unwrap();
    assert_eq!(writer.last_seq(), Some(SeqId(3)));
    let last = append(&mut writer, &mut Vec::new(), 4..=4).await;
    caught_up(&node1, last).await;
    caught_up(&node2, last).await;
    let stats = node1.stats();
    assert_eq!((stats.commits_applied, stats.gaps), (4, 0), "{stats:?}");
    assert_eq!(node1.take_errors(), vec![]);
    // The chain says 4 follows 3: a client at 2 missed 3 (gone), a client at 3 did not.
    let late = client(node2.manager(), "dave");
    let outcome = node2
        .resume(late.connection_id, QuerySpec::table(items()), SeqId(2))
        .await
        .unwrap();
    assert_eq!(resumed(&outcome), None, "{outcome:?}");
    let outcome = node2
        .resume(late.connection_id, QuerySpec::table(items()), SeqId(3))
        .await
        .unwrap();
    assert_eq!(resumed(&outcome), Some(1), "{outcome:?}");
}

/// A plain client of the cluster, for a stream update the bridge does not make.
async fn node1_client() -> async_nats::Client {
    let config = connection();
    let Auth::UserPassword { user, password } = config.auth else {
        panic!("the cluster uses a user and password");
    };
    async_nats::ConnectOptions::with_user_and_password(user, password)
        .connect(config.servers[0].as_str())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_from_first_reports_nothing_lost_for_a_head_trimmed_before_the_node() {
    let mut stream = stream_config("from_first");
    stream.max_messages = 10;
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let last = append(&mut writer, &mut Vec::new(), 1..=30).await;
    let node = NodeBridge::start(
        manager(1),
        NodeConfig {
            start: StartFrom::First,
            ..node_config(1, &stream)
        },
    )
    .await
    .unwrap();
    caught_up(&node, last).await;
    let stats = node.stats();
    assert_eq!(node.take_errors(), vec![]);
    assert_eq!((stats.commits_applied, stats.gaps), (10, 0), "{stats:?}");
}
