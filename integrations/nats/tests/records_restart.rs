//! A node that comes back (same node id, its live queries again under the same keys)
//! while a survivor's failover pass is deleting its old records keeps the records it
//! wrote: the survivor deletes each record only at the revision it read, and the node
//! writes again any of its records missing from key-value at its next sync, not at its
//! refresh (a minute by default). The delete at the revision read is tested apart from the
//! read (`NodeBridge::delete_records_at`), with revisions made stale on purpose: the race
//! of a real pass and a node coming back is timing.

mod common;

use std::time::Duration;

use common::*;
use livecore::*;
use livecore_nats::*;

const CONNECTIONS: usize = 10;
const PER_CONNECTION: i64 = 100;

/// Subscribes `connection` on `node` to the items whose id is each of `ids`.
fn subscribe_ids(
    node: &NodeBridge,
    connection: &ConnectionRegistration,
    ids: impl IntoIterator<Item = i64>,
) {
    for id in ids {
        node.manager()
            .subscribe(
                connection.connection_id,
                QuerySpec::table(items()).filter(Expr::col("id").eq(Expr::lit(id))),
                SubscriptionOptions::default(),
            )
            .unwrap();
    }
}

/// Live queries on a node: `CONNECTIONS` clients with `PER_CONNECTION` subscriptions each
/// (their registrations are kept, so the connections stay open).
fn subscribe_all(node: &NodeBridge) -> Vec<ConnectionRegistration> {
    (0..CONNECTIONS)
        .map(|_| {
            let connection = client(node.manager(), "alice");
            subscribe_ids(node, &connection, 0..PER_CONNECTION);
            connection
        })
        .collect()
}

/// The records bucket, read directly.
async fn records_bucket(
    stream: &StreamConfig,
) -> (
    async_nats::jetstream::Context,
    async_nats::jetstream::kv::Store,
) {
    let client = cluster::connect(&connection()).await.unwrap();
    let js = cluster::jetstream(client, &connection());
    let store = js.get_key_value(&stream.records_bucket).await.unwrap();
    (js, store)
}

async fn keys_of_node(
    js: &async_nats::jetstream::Context,
    store: &async_nats::jetstream::kv::Store,
    node: u64,
) -> Vec<String> {
    // Retried: a cluster still settling after another test binary hung one of its
    // servers can leave one read unanswered (seen once in CI).
    let prefix = format!("lq.{node}.");
    let mut attempt = 0;
    loop {
        match cluster::read_prefix(js, store, &prefix, Duration::from_secs(10)).await {
            Ok(entries) => return entries.into_iter().map(|(key, _)| key).collect(),
            Err(error) if attempt < 2 => {
                attempt += 1;
                eprintln!("reading {prefix} keys again after: {error:?}");
            }
            Err(error) => panic!("reading {prefix} keys: {error:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_back_during_a_failover_pass_keeps_the_records_it_rewrote() {
    let stream = stream_config("records_restart");
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    // The survivor: its failover passes run by hand here.
    let survivor = start_node(1, &stream).await;
    survivor.stop_heartbeat();
    let (js, store) = records_bucket(&stream).await;

    // Node 2's first life: its live queries in key-value, then it dies.
    let total = CONNECTIONS * PER_CONNECTION as usize;
    let first = start_node(2, &stream).await;
    let _clients = subscribe_all(&first);
    first.sync_records().await.unwrap();
    for _ in 0..200 {
        if keys_of_node(&js, &store, 2).await.len() == total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(keys_of_node(&js, &store, 2).await.len(), total);
    first.kill();
    // Its heartbeat goes stale (node_stale_after + max_clock_skew: 2.5 s).
    tokio::time::sleep(Duration::from_secs(3)).await;

    // The survivor's pass takes node 2 for offline and deletes its records one by one;
    // node 2 comes back meanwhile, its live queries again under the same keys, and
    // writes them (its own sync loop every 300 ms, and once more here).
    let comeback = async {
        // Once the survivor is deleting.
        loop {
            if keys_of_node(&js, &store, 2).await.len() < total {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let back = start_node(2, &stream).await;
        let clients = subscribe_all(&back);
        back.sync_records().await.unwrap();
        (back, clients)
    };
    let (pass, (back, _clients)) = tokio::join!(survivor.failover_pass(), comeback);
    let pass = pass.unwrap();
    // Every record was deleted at the revision the pass read, or left because node 2
    // wrote it again since (how many of each is timing).
    assert_eq!(
        pass.deleted_records + pass.kept_records + pass.already_deleted_records,
        total,
        "{pass:?}"
    );
    assert_eq!(pass.already_deleted_records, 0, "{pass:?}");

    // Every record of node 2 is in key-value again. (nats-server 2.9 in a cluster can
    // still apply a delete at the revision read after a write of the key that was in
    // flight: the node's own check of its keys writes such a record again at its next
    // sync.)
    let mut keys = keys_of_node(&js, &store, 2).await;
    for _ in 0..300 {
        if keys.len() == total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        keys = keys_of_node(&js, &store, 2).await;
    }
    assert_eq!(keys.len(), total, "records of the returned node missing");
    assert_eq!(back.manager().live_query_records().len(), total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_missing_from_key_value_is_written_again_at_the_next_sync() {
    let stream = stream_config("records_missing");
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    // live_query_stale_after is the default (120 s): records are refreshed every minute.
    let node = start_node(1, &stream).await;
    let (js, store) = records_bucket(&stream).await;
    let connection = client(node.manager(), "alice");
    for room in 0..3 {
        node.manager()
            .subscribe(
                connection.connection_id,
                room_spec(room),
                SubscriptionOptions::default(),
            )
            .unwrap();
    }
    node.sync_records().await.unwrap();
    let keys = keys_of_node(&js, &store, 1).await;
    assert_eq!(keys.len(), 3, "{keys:?}");

    // Deleted behind the node's back (as a survivor that took it for offline would).
    for key in &keys {
        store.delete(key).await.unwrap();
    }
    let mut now = keys_of_node(&js, &store, 1).await;
    for _ in 0..600 {
        if now.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        now = keys_of_node(&js, &store, 1).await;
    }
    now.sort();
    let mut keys = keys;
    keys.sort();
    assert_eq!(now, keys, "the node did not write its records again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_at_a_stale_revision_keeps_the_keys_written_again_since() {
    let stream = stream_config("records_revision");
    let mut writer = CommitWriter::connect(&connection(), &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let survivor = start_node(1, &stream).await;
    survivor.stop_heartbeat();
    // Node 2's records in key-value; its own sync loop stopped, so only this test writes.
    let node = start_node(2, &stream).await;
    node.stop_heartbeat();
    let connection = client(node.manager(), "alice");
    subscribe_ids(&node, &connection, 0..10);
    node.sync_records().await.unwrap();
    let (js, store) = records_bucket(&stream).await;
    let entries = cluster::read_prefix_entries(&js, &store, "lq.2.", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(entries.len(), 10, "{entries:?}");

    // The read is now stale for four keys: their node wrote them again (as a node back
    // under its id does).
    let (rewritten, others) = entries.split_at(4);
    for entry in rewritten {
        store.put(&entry.key, entry.value.clone()).await.unwrap();
    }
    let stale: Vec<(String, Option<u64>)> = entries
        .iter()
        .map(|entry| (entry.key.clone(), Some(entry.revision)))
        .collect();
    let counts = |outcome: &FailoverOutcome| {
        (
            outcome.deleted_records,
            outcome.kept_records,
            outcome.already_deleted_records,
        )
    };
    let sorted = |entries: &[cluster::KvEntry]| {
        let mut keys: Vec<String> = entries.iter().map(|entry| entry.key.clone()).collect();
        keys.sort();
        keys
    };
    let outcome = survivor.delete_records_at(&stale).await.unwrap();
    assert_eq!(counts(&outcome), (6, 4, 0), "{outcome:?}");
    let mut left = keys_of_node(&js, &store, 2).await;
    left.sort();
    assert_eq!(
        left,
        sorted(rewritten),
        "the rewritten keys survive, the others go"
    );
    assert!(others.iter().all(|entry| !left.contains(&entry.key)));

    // A second survivor with the same read: the six are already deleted (not kept), the
    // four rewritten are still kept.
    let outcome = survivor.delete_records_at(&stale).await.unwrap();
    assert_eq!(counts(&outcome), (0, 4, 6), "{outcome:?}");

    // A record without a revision read is never deleted unconditionally.
    let unread: Vec<(String, Option<u64>)> = rewritten
        .iter()
        .map(|entry| (entry.key.clone(), None))
        .collect();
    let outcome = survivor.delete_records_at(&unread).await.unwrap();
    assert_eq!(counts(&outcome), (0, 0, 0), "{outcome:?}");
    let mut left = keys_of_node(&js, &store, 2).await;
    left.sort();
    assert_eq!(left, sorted(rewritten));
}
