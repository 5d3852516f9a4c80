//! A commit stream deleted under a running node: the node reports it as
//! `BridgeError::StreamNotFound` once for the episode (not once per attempt at a new
//! consumer), and its lag is unknown, not zero, while the stream is missing. The stream
//! created again under the same name is `BridgeError::StreamReset` (its sequences start
//! anew: the node's position is in the old one), and the lag stays unknown; deleted
//! again, it is a second `StreamNotFound`. A writer whose stream is deleted and created
//! again refuses to append to it (`BridgeError::StreamRecreated`) rather than write into
//! it as if it were the old one; a writer connected after the engine's last SeqId goes on
//! from there, so SeqIds never go back.

mod common;

use std::time::Duration;

use common::*;
use livecore::SeqId;
use livecore_nats::codec::{self, StreamEntry};
use livecore_nats::*;

/// Waits (bounded) until `condition` holds, polling every 50 ms, gathering the node's
/// errors into `errors` as it goes.
async fn wait_until(
    what: &str,
    node: &NodeBridge,
    errors: &mut Vec<BridgeError>,
    condition: impl Fn(&NodeStats, &[BridgeError]) -> bool,
) {
    for _ in 0..1200 {
        errors.extend(node.take_errors());
        if condition(&node.stats(), errors) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "waited 60 s for: {what}; {:?}, errors {errors:?}",
        node.stats()
    );
}

fn resets(errors: &[BridgeError]) -> usize {
    errors
        .iter()
        .filter(|error| matches!(error, BridgeError::StreamReset { .. }))
        .count()
}

fn not_found(errors: &[BridgeError]) -> usize {
    errors
        .iter()
        .filter(|error| matches!(error, BridgeError::StreamNotFound { .. }))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_stream_is_reported_once_and_its_lag_is_unknown() {
    let stream = stream_config("stream_deleted");
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let node = start_node(1, &stream).await;
    let mut log = Vec::new();
    let last = append(&mut writer, &mut log, 1..=5).await;
    caught_up(&node, last).await;
    assert_eq!(node.lag(), Some(0), "{:?}", node.stats());

    // The stream goes (an operator, a script gone wrong).
    let client = cluster::connect(&connection()).await.unwrap();
    let js = cluster::jetstream(client, &connection());
    js.delete_stream(&stream.stream).await.unwrap();

    let mut errors = Vec::new();
    wait_until(
        "the node reported the missing stream",
        &node,
        &mut errors,
        |_, errors| not_found(errors) >= 1,
    )
    .await;
    assert_eq!(node.lag(), None, "{:?}", node.stats());
    assert!(
        errors.contains(&BridgeError::StreamNotFound {
            stream: stream.stream.clone()
        }),
        "{errors:?}"
    );

    // The node keeps trying (new consumers, the stream's info every heartbeat interval):
    // still one report for the episode, and the lag stays unknown.
    let restarts = node.stats().consumer_restarts;
    wait_until(
        "the node tried again a few times",
        &node,
        &mut errors,
        |stats, _| stats.consumer_restarts >= restarts + 5,
    )
    .await;
    errors.extend(node.take_errors());
    let stats = node.stats();
    assert_eq!(not_found(&errors), 1, "{errors:?}");
    assert_eq!(stats.stream_not_found, 1, "{stats:?}");
    assert_eq!(stats.lag, None, "{stats:?}");
    assert_eq!(node.lag(), None);

    // The stream is created again under the same name (empty, its sequences from 1): the
    // node finds another stream, reports it once, and its lag stays unknown rather than
    // the 0 of an old position past the new stream's end.
    cluster::ensure_stream(&js, &stream).await.unwrap();
    wait_until(
        "the node reported the stream created again",
        &node,
        &mut errors,
        |_, errors| resets(errors) >= 1,
    )
    .await;
    let reset = errors
        .iter()
        .find(|error| matches!(error, BridgeError::StreamReset { .. }))
        .cloned();
    assert!(
        matches!(
            &reset,
            Some(BridgeError::StreamReset {
                stream: name,
                last_stream_seq: 0,
                applied_stream_seq,
            }) if *name == stream.stream && *applied_stream_seq == last_stream_seq_of(&node)
        ),
        "{errors:?}"
    );
    // A few more reads of the new stream's info (every 300 ms here): no second report.
    tokio::time::sleep(Duration::from_secs(1)).await;
    errors.extend(node.take_errors());
    let stats = node.stats();
    assert_eq!((resets(&errors), stats.stream_resets), (1, 1), "{errors:?}");
    assert_eq!(stats.lag, None, "{stats:?}");

    // Deleted again: a second episode, a second report.
    js.delete_stream(&stream.stream).await.unwrap();
    wait_until(
        "the node reported the stream missing again",
        &node,
        &mut errors,
        |_, errors| not_found(errors) >= 2,
    )
    .await;
    let stats = node.stats();
    assert_eq!(stats.stream_not_found, 2, "{stats:?}");
    assert_eq!(stats.lag, None, "{stats:?}");
}

/// The last stream sequence the node applied.
fn last_stream_seq_of(node: &NodeBridge) -> u64 {
    node.stats().applied_stream_seq
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_refuses_a_stream_created_again_and_goes_on_after_its_last_seq() {
    let stream = stream_config("writer_recreated");
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let mut log = Vec::new();
    append(&mut writer, &mut log, 1..=3).await;

    // While the writer is idle (no append fails meanwhile), the stream is deleted and
    // created again under the same name: empty, its sequences from 1.
    let client = cluster::connect(&connection()).await.unwrap();
    let js = cluster::jetstream(client, &connection());
    js.delete_stream(&stream.stream).await.unwrap();
    cluster::ensure_stream(&js, &stream).await.unwrap();

    // The writer's next commit is refused, not stored as the new stream's first message.
    let refused = BridgeError::StreamRecreated {
        stream: stream.stream.clone(),
        last_seq: Some(SeqId(3)),
        last_stream_seq: 0,
    };
    assert_eq!(
        writer.append_commit(SeqId(4), &workload_commit(4)).await,
        Err(refused.clone())
    );
    assert_eq!(writer.last_seq(), Some(SeqId(3)));
    // So is every later append, commit or schema change.
    assert_eq!(
        writer.send_commit(SeqId(4), &workload_commit(4)).await,
        Err(refused.clone())
    );
    assert_eq!(
        writer.append_schema(items_schema()).await.map(|_| ()),
        Err(refused.clone())
    );
    let mut new_stream = js.get_stream(&stream.stream).await.unwrap();
    assert_eq!(new_stream.info().await.unwrap().state.messages, 0);
    assert!(refused.to_string().contains("created again"), "{refused}");

    // A writer connecting for the first time cannot tell the stream from a new one.
    let fresh = CommitWriter::connect(&connection(), &stream).await.unwrap();
    assert_eq!(fresh.last_seq(), None);
    drop(fresh);
    // The host connects after its last SeqId: the new stream's first commit names it as
    // its predecessor, and SeqIds go on from there.
    let mut writer =
        CommitWriter::connect_after(&connection(), &stream, &WriterConfig::default(), SeqId(3))
            .await
            .unwrap();
    assert_eq!(writer.last_seq(), Some(SeqId(3)));
    assert_eq!(writer.schema_version(&items()), 1);
    let appended = writer
        .append_commit(SeqId(4), &workload_commit(4))
        .await
        .unwrap();
    assert_eq!(appended.stream_seq, 1);
    let first = new_stream.get_raw_message(1).await.unwrap();
    match codec::decode_stream_entry(&first.payload).unwrap() {
        StreamEntry::Commit(commit) => {
            assert_eq!((commit.seq, commit.prev), (SeqId(4), Some(SeqId(3))))
        }
        other => panic!("{other:?}"),
    }
    // The stream now tells its last SeqId, which wins over the one given.
    let again =
        CommitWriter::connect_after(&connection(), &stream, &WriterConfig::default(), SeqId(1))
            .await
            .unwrap();
    assert_eq!(again.last_seq(), Some(SeqId(4)));
}
