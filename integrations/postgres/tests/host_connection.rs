//! The host's calls (`sync`, `slot_lag_bytes`) share one connection, made again once the
//! server ended it, rather than starting a server process per call. Its own test binary:
//! it finds and ends server processes by their application name, which every source's
//! connections share.

mod common;

use std::time::Duration;

use common::*;

const SYNC: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosts_calls_share_one_connection_made_again_once_ended() {
    let client = fresh("hostc").await;
    client
        .batch_execute(
            "CREATE TABLE hostc.items (id int PRIMARY KEY, v text);
             ALTER TABLE hostc.items REPLICA IDENTITY FULL;",
        )
        .await
        .unwrap();
    let manager = manager();
    let source = start(&manager, config("hostc", &["items"])).await;
    // The server processes whose last query was the lag's: the host's connection, idle
    // after a call. (Ended ones may linger a moment.)
    let lag_backends = || async {
        client
            .query(
                "SELECT pid FROM pg_stat_activity \
                 WHERE application_name = 'livecore-postgres' \
                   AND backend_type = 'client backend' AND pid <> pg_backend_pid() \
                   AND query LIKE '%- confirmed_flush_lsn%'",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<_, i32>(0))
            .collect::<Vec<i32>>()
    };
    source.slot_lag_bytes().await.unwrap();
    let first = lag_backends().await;
    assert_eq!(first.len(), 1, "the connection stays open after the call");
    for _ in 0..10 {
        source.slot_lag_bytes().await.unwrap();
    }
    source.sync(SYNC).await.unwrap();
    source.slot_lag_bytes().await.unwrap();
    assert_eq!(
        lag_backends().await,
        first,
        "every call on the one connection"
    );

    // An administrator ends the session: the next calls work on a new connection.
    client
        .execute("SELECT pg_terminate_backend($1)", &[&first[0]])
        .await
        .unwrap();
    source.slot_lag_bytes().await.unwrap();
    source.sync(SYNC).await.unwrap();
    source.slot_lag_bytes().await.unwrap();
    let again: Vec<i32> = lag_backends()
        .await
        .into_iter()
        .filter(|pid| !first.contains(pid))
        .collect();
    assert_eq!(again.len(), 1, "{again:?}");
    assert!(source.failure().is_none(), "{:?}", source.failure());
    source.stop_and_drop().await.unwrap();
}
