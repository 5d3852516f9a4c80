//! A resume begun while the stream has no leader (two of the three servers hung with
//! SIGSTOP, so the stream's replicas cannot elect one): its requests fail until the
//! servers come back, and it goes on then instead of ending with `ResumeUnavailable`,
//! since the stream kept everything the client missed. A resume whose host drops its
//! future meanwhile tells its client `ResumeUnavailable` rather than leaving it gated.
//! A writer and a node opening a stream during such an outage wait for its end rather than
//! giving up after a few quick attempts.
//! Its own test binary, so no other test runs while servers hang.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use livecore::*;
use livecore_nats::*;

/// The tests of this binary hang the same servers: one at a time.
static SERVERS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Node 1 of `stream` on `manager`, whose requests fail within a second while servers
/// hang, and which no one declares offline meanwhile; `config` adjusts it further.
async fn outage_node(
    manager: Arc<ConnectionsManager>,
    stream: &StreamConfig,
    config: impl FnOnce(NodeConfig) -> NodeConfig,
) -> Arc<NodeBridge> {
    let node = NodeBridge::start(
        manager,
        config(NodeConfig {
            connection: ConnectionConfig {
                request_timeout: Duration::from_secs(1),
                ..connection()
            },
            node_stale_after: Duration::from_secs(120),
            // The cluster's recovery after the outage may take a while on a loaded
            // machine: the default 30 s counts from the resume's start.
            resume_retry_patience: Duration::from_secs(90),
            ..node_config(1, stream)
        }),
    )
    .await
    .unwrap();
    Arc::new(node)
}

/// A resume of the items table after SeqId 10, for `connection_id`, on its own task.
fn resume_after_10(
    node: &Arc<NodeBridge>,
    connection_id: ConnectionId,
) -> tokio::task::JoinHandle<Result<ResumeOutcome, BridgeError>> {
    let node = node.clone();
    tokio::spawn(async move {
        node.resume(connection_id, QuerySpec::table(items()), SeqId(10))
            .await
    })
}

/// What `resume` ended with once the servers are back: a resumed subscription and how
/// many commits it replayed.
async fn resumed_after(
    node: &NodeBridge,
    resume: tokio::task::JoinHandle<Result<ResumeOutcome, BridgeError>>,
) -> (SubscriptionResult, u64) {
    let outcome = tokio::time::timeout(Duration::from_secs(90), resume)
        .await
        .expect("the resume ends within its patience")
        .unwrap()
        .unwrap_or_else(|error| panic!("{error}: {:?}", node.stats()));
    resumed(outcome)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_outlasts_a_stream_without_a_leader() {
    let _servers = SERVERS.lock().await;
    // The other test's servers may still be finding their leaders.
    cluster_healthy().await;
    let stream = stream_config("resume_outage");
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let node = outage_node(manager(1), &stream, |config| config).await;
    let mut log = Vec::new();
    let last = append(&mut writer, &mut log, 1..=40).await;
    caught_up(&node, last).await;

    let connection = client(node.manager(), "alice");
    // A second client whose host gives up on its resume while the stream is out.
    let given_up = client(node.manager(), "bob");
    let hung = [Hung::stop(2), Hung::stop(3)];
    stream_without_leader(&stream).await;
    let mut resume = resume_after_10(&node, connection.connection_id);
    let mut abandoned = resume_after_10(&node, given_up.connection_id);
    // Long enough for several of the resume's requests to fail (each waits for the
    // request timeout, or is refused at once for want of a leader).
    tokio::time::sleep(Duration::from_secs(5)).await;
    for resume in [&mut resume, &mut abandoned] {
        if resume.is_finished() {
            panic!("the resume did not wait for the stream: {:?}", resume.await);
        }
    }
    // Dropping the resume's future tells its client, rather than leaving the
    // subscription gated with nothing to open it.
    abandoned.abort();
    assert!(abandoned.await.unwrap_err().is_cancelled());
    assert!(node
        .manager()
        .subscriptions_of(given_up.connection_id)
        .unwrap()
        .is_empty());
    let (task, stop) = spawn_drain(given_up.notifications);
    stop.store(true, Ordering::Release);
    let notices: Vec<String> = task
        .await
        .unwrap()
        .into_iter()
        .map(|(_, received)| received.expect_err("no change reaches it"))
        .collect();
    assert_eq!(notices, vec!["resume_unavailable"]);
    drop(hung);

    let (subscription, replayed) = resumed_after(&node, resume).await;
    assert_eq!(replayed, 30, "commits 11..=40, each once");
    assert!(node.stats().resume_retries > 0, "{:?}", node.stats());

    let (task, stop) = spawn_drain(connection.notifications);
    stop.store(true, Ordering::Release);
    let received = task.await.unwrap();
    assert_eq!(
        changes_of(&received, subscription.live_query_id),
        expected_for(&log, None, |seq| seq > 10)
    );
    assert!(
        notices_of(&received, subscription.live_query_id)
            .iter()
            .all(|notice| notice != "resume_unavailable"),
        "{received:?}"
    );
}

/// The stream goes out in the middle of a replay (its client reads slowly: a small
/// channel, so the replay waits for room, and reads few messages a request): the resume
/// goes on from the last commit it settled once the stream is back, each commit given
/// once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_goes_on_from_where_an_outage_stopped_it() {
    let _servers = SERVERS.lock().await;
    // The other test's servers may still be finding their leaders.
    cluster_healthy().await;
    let stream = stream_config("resume_outage_mid");
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let manager = Arc::new(
        ConnectionsManager::new(ManagerConfig {
            node_id: NodeId(1),
            notification_channel_capacity: 8,
            gate_buffer_capacity: 100_000,
            ..ManagerConfig::default()
        })
        .unwrap(),
    );
    // Few messages a request, and a replay that waits for its client's room.
    let node = outage_node(manager, &stream, |config| NodeConfig {
        batch: 4,
        resume_stall_timeout: Duration::from_secs(120),
        ..config
    })
    .await;
    let mut log = Vec::new();
    let last = append(&mut writer, &mut log, 1..=60).await;
    caught_up(&node, last).await;

    let connection = client(node.manager(), "alice");
    let resume = resume_after_10(&node, connection.connection_id);
    // The replay fills the channel (8 commits) and waits for room.
    wait_until("the replay to fill the channel", || {
        node.manager()
            .subscriptions_of(connection.connection_id)
            .unwrap()
            .first()
            .is_some_and(|subscription| subscription.stats.delivered >= 8)
    })
    .await;
    let hung = [Hung::stop(2), Hung::stop(3)];
    // The client reads: the replay needs more of the stream. Its requests usually fail
    // (and the resume goes on from where it got), unless the one server left serves the
    // replay's consumer without a leader: either way, each commit once.
    let (task, stop) = spawn_drain(connection.notifications);
    tokio::time::sleep(Duration::from_secs(5)).await;
    drop(hung);
    let (subscription, replayed) = resumed_after(&node, resume).await;
    assert_eq!(replayed, 50, "commits 11..=60, each once");
    received_up_to(node.manager(), subscription.live_query_id, 60).await;
    stop.store(true, Ordering::Release);
    let received = task.await.unwrap();
    assert_eq!(
        changes_of(&received, subscription.live_query_id),
        expected_for(&log, None, |seq| seq > 10)
    );
}

/// A writer and a node opening a new stream while two of the three servers hang (JetStream
/// cannot place it, nor, once the servers are back, answer until they elect their meta
/// leader): they try again until the outage ends (new attempts for up to 30 s), rather
/// than giving up after a few attempts a second apart; then commits flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "one CI run in four: the stream both opened was gone at the first append \
            (\"no stream found for given subject\"), a creation during the outage lost \
            to the meta leader's re-election; not yet understood, run with --ignored"]
async fn a_writer_and_a_node_opening_during_an_outage_open_after_it() {
    let _servers = SERVERS.lock().await;
    cluster_healthy().await;
    let stream = stream_config("outage_open");
    // Pinned to server 1, the one left running, so both open during the outage rather than
    // spend it connecting to a hung server.
    let quick = ConnectionConfig {
        servers: vec![connection().servers[0].clone()],
        discover_servers: false,
        request_timeout: Duration::from_secs(1),
        ..connection()
    };
    let hung = [Hung::stop(2), Hung::stop(3)];
    let writer = tokio::spawn({
        let (quick, stream) = (quick.clone(), stream.clone());
        async move {
            // Its deadline above the 30 s its opening retries for, so that bound is what
            // this exercises.
            let config = WriterConfig {
                connect_deadline: Duration::from_secs(90),
                ..WriterConfig::default()
            };
            CommitWriter::connect_with(&quick, &stream, &config).await
        }
    });
    let node = tokio::spawn({
        let stream = stream.clone();
        async move {
            let config = NodeConfig {
                connection: quick,
                node_stale_after: Duration::from_secs(120),
                ..node_config(1, &stream)
            };
            NodeBridge::start(manager(1), config).await
        }
    });
    // Long enough for the five quick attempts of old to have given up.
    tokio::time::sleep(Duration::from_secs(8)).await;
    for (what, finished) in [
        ("writer", writer.is_finished()),
        ("node", node.is_finished()),
    ] {
        assert!(!finished, "the {what} did not wait for the servers");
    }
    drop(hung);
    let mut writer = tokio::time::timeout(Duration::from_secs(90), writer)
        .await
        .expect("the writer opens")
        .unwrap()
        .unwrap();
    let node = tokio::time::timeout(Duration::from_secs(90), node)
        .await
        .expect("the node opens")
        .unwrap()
        .unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let mut log = Vec::new();
    let last = append(&mut writer, &mut log, 1..=3).await;
    caught_up(&node, last).await;
    assert_eq!(
        node.stats().applied_seq,
        Some(SeqId(3)),
        "{:?}",
        node.stats()
    );
}
