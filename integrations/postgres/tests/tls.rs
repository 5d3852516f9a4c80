//! TLS as the connection string asks for it, against ci.sh's cluster: it serves a
//! certificate made at test time, and lets the role `livecore_tls` in over TLS only, so a
//! source that works as that role encrypted both its SQL connections and its replication
//! sessions.
#![cfg(feature = "tls")]

mod common;

use std::time::Duration;

use common::*;
use livecore::*;
use livecore_postgres::{PgError, PgSource, SourceConfig, TableConfig};

const SYNC: Duration = Duration::from_secs(60);
const PASSWORD: &str = "livecore-tls-secret";

fn ca(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| panic!("{variable} is not set: run ci.sh"))
}

/// The port of ci.sh's cluster, read from its URL.
fn port() -> String {
    url()
        .split_whitespace()
        .find_map(|pair| pair.strip_prefix("port="))
        .expect("a port in LIVECORE_PG_URL")
        .to_string()
}

fn tls_config(host: &str, tls: &str) -> SourceConfig {
    SourceConfig::new(
        format!(
            "host={host} port={} user=livecore_tls password={PASSWORD} dbname=postgres {tls}",
            port()
        ),
        "tlsrc_slot",
        "tlsrc_pub",
        vec![TableConfig::shared("tlsrc", "items")],
    )
}

/// Inserts a row, waits for the source to pass it, and checks a subscriber got it.
async fn round_trip(
    client: &tokio_postgres::Client,
    source: &PgSource,
    manager: &std::sync::Arc<ConnectionsManager>,
    id: i64,
) {
    let subscriber = Subscriber::open(
        manager,
        "u",
        &format!("SELECT * FROM tlsrc.items WHERE id = {id}"),
        SubscriptionOptions::with_initial_load(),
    );
    // The load opens a replication session of its own (a temporary slot), over TLS too.
    source.load(subscriber.live_query_id).await.unwrap();
    client
        .batch_execute(&format!(
            "INSERT INTO tlsrc.items VALUES ({id}, 'over tls')"
        ))
        .await
        .unwrap();
    source.sync(SYNC).await.unwrap();
    let view = subscriber.finish();
    assert!(view.errors.is_empty(), "{:?}", view.errors);
    assert_eq!(view.rows.keys().copied().collect::<Vec<_>>(), vec![id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_connects_over_tls_when_asked_and_verifies_the_server() {
    let client = fresh("tlsrc").await;
    client
        .batch_execute(&format!(
            "DO $$ BEGIN
               CREATE ROLE livecore_tls LOGIN SUPERUSER PASSWORD '{PASSWORD}';
             EXCEPTION WHEN duplicate_object THEN NULL; END $$;
             CREATE TABLE tlsrc.items (id bigint PRIMARY KEY, body text);
             ALTER TABLE tlsrc.items REPLICA IDENTITY FULL;"
        ))
        .await
        .unwrap();
    let manager = manager();

    // In plain text the role is turned away by pg_hba.conf: what follows is TLS.
    let plain = PgSource::start(manager.clone(), tls_config("127.0.0.1", "sslmode=disable")).await;
    assert!(matches!(plain, Err(PgError::Sql(_))), "{:?}", plain.err());

    // sslmode=require: encrypted, the certificate not checked.
    let source = start(&manager, tls_config("127.0.0.1", "sslmode=require")).await;
    round_trip(&client, &source, &manager, 1).await;
    let encrypted_walsenders = client
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE usename = 'livecore_tls' AND backend_type = 'walsender' AND ssl",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert!(
        encrypted_walsenders >= 1,
        "the replication session is over TLS"
    );
    source.stop().await.unwrap();

    // verify-full: the certificate chains to the CA and names the host.
    let verified = format!(
        "sslmode=verify-full sslrootcert={}",
        ca("LIVECORE_PG_TLS_CA")
    );
    let source = start(&manager, tls_config("localhost", &verified)).await;
    round_trip(&client, &source, &manager, 2).await;
    source.stop().await.unwrap();

    // verify-ca: the chain only (an IP address the certificate also names, unchecked).
    let chain = format!("sslmode=verify-ca sslrootcert={}", ca("LIVECORE_PG_TLS_CA"));
    let source = start(&manager, tls_config("127.0.0.1", &chain)).await;
    round_trip(&client, &source, &manager, 3).await;
    source.stop().await.unwrap();

    // A CA the server's certificate does not chain to: refused, typed, never plain text.
    let foreign = format!(
        "sslmode=verify-full sslrootcert={}",
        ca("LIVECORE_PG_TLS_OTHER_CA")
    );
    let refused = PgSource::start(manager.clone(), tls_config("localhost", &foreign)).await;
    assert!(
        matches!(refused, Err(PgError::Tls(_))),
        "{:?}",
        refused.err()
    );

    // verify-full without a root certificate: a configuration error before connecting.
    let missing = PgSource::start(
        manager.clone(),
        tls_config("localhost", "sslmode=verify-full"),
    )
    .await;
    assert!(
        matches!(missing, Err(PgError::Config(_))),
        "{:?}",
        missing.err()
    );

    client
        .batch_execute("SELECT pg_drop_replication_slot('tlsrc_slot'); DROP PUBLICATION tlsrc_pub")
        .await
        .unwrap();
}
