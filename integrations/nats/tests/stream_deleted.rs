//! A commit stream deleted under a running node: the node reports it as
//! `BridgeError::StreamNotFound` once for the episode (not once per attempt at a new
//! consumer), and its lag is unknown, not zero, while the stream is missing. The stream
//! created again under the same name is `BridgeError::StreamReset` (its sequences start
//! anew: the node's position is in the old one), and the lag stays unknown; deleted
//! again, it is a second `StreamNotFound`.

mod common;

use std::time::Duration;

use common::*;
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
