//! Credentials and TLS: the bridge connects with the right user/password, token or CA,
//! and fails with a typed error (`Unauthorized`, `Tls`) with wrong ones. The token and TLS
//! cases run against a single server of their own (started by the test); user/password
//! against the cluster, which requires them.

mod common;

use common::single_server::{make_certificates, scratch_dir, ServerSetup, SingleServer};
use common::*;
use livecore::*;
use livecore_nats::*;

/// A connection to one server, with the credentials and CA given.
fn single(url: String, auth: Auth, ca: Option<std::path::PathBuf>) -> ConnectionConfig {
    ConnectionConfig {
        servers: vec![url],
        auth,
        tls_ca_file: ca,
        connect_timeout: std::time::Duration::from_secs(3),
        ..ConnectionConfig::default()
    }
}

/// The whole bridge over `connection`: a writer appends a schema and a commit, a node
/// started on the same server applies it and its subscriber receives it.
async fn bridge_works(connection: ConnectionConfig, name: &str) {
    let stream = StreamConfig {
        replicas: 1,
        ..stream_config(name)
    };
    let mut writer = CommitWriter::connect(&connection, &stream).await.unwrap();
    writer.append_schema(items_schema()).await.unwrap();
    let node = NodeBridge::start(
        manager(1),
        NodeConfig {
            connection: connection.clone(),
            ..node_config(1, &stream)
        },
    )
    .await
    .unwrap();
    let client = client(node.manager(), "alice");
    let sub = node
        .manager()
        .subscribe(
            client.connection_id,
            QuerySpec::table(items()),
            SubscriptionOptions::default(),
        )
        .unwrap();
    let (task, stop) = spawn_drain(client.notifications);
    let appended = writer
        .append_commit(SeqId(1), &workload_commit(1))
        .await
        .unwrap();
    caught_up(&node, appended.stream_seq).await;
    stop.store(true, std::sync::atomic::Ordering::Release);
    let received = task.await.unwrap();
    assert_eq!(
        changes_of(&received, sub.live_query_id),
        expected_for(&[(1, workload_commit(1))], None, |_| true)
    );
}

fn assert_unauthorized<T>(result: Result<T, BridgeError>) {
    match result {
        Err(BridgeError::Unauthorized(detail)) => assert!(!detail.is_empty()),
        Err(other) => panic!("expected Unauthorized, got {other:?}"),
        Ok(_) => panic!("expected Unauthorized, the connection was accepted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_and_password_are_checked_by_the_cluster() {
    let stream = stream_config("user_password");
    // The right ones (the other tests use them too) connect.
    CommitWriter::connect(&connection(), &stream).await.unwrap();
    let wrong_password = ConnectionConfig {
        auth: Auth::UserPassword {
            user: "livecore".into(),
            password: "not-the-password".into(),
        },
        ..connection()
    };
    assert_unauthorized(CommitWriter::connect(&wrong_password, &stream).await);
    assert_unauthorized(
        NodeBridge::start(
            manager(1),
            NodeConfig {
                connection: wrong_password,
                ..node_config(1, &stream)
            },
        )
        .await,
    );
    let none = ConnectionConfig {
        auth: Auth::None,
        ..connection()
    };
    assert_unauthorized(CommitWriter::connect(&none, &stream).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_server_takes_the_token_and_refuses_anything_else() {
    let server = SingleServer::start(
        "token",
        ServerSetup {
            authorization: Some("  token: \"livecore-token-1\"".into()),
            tls: None,
        },
    );
    let url = server.url("nats");
    bridge_works(
        single(url.clone(), Auth::Token("livecore-token-1".into()), None),
        "token",
    )
    .await;
    let stream = StreamConfig {
        replicas: 1,
        ..stream_config("token_wrong")
    };
    for auth in [
        Auth::Token("livecore-token-2".into()),
        Auth::UserPassword {
            user: "livecore".into(),
            password: "livecore-token-1".into(),
        },
        Auth::None,
    ] {
        let connection = single(url.clone(), auth.clone(), None);
        let result = CommitWriter::connect(&connection, &stream).await;
        assert!(
            matches!(result, Err(BridgeError::Unauthorized(_))),
            "{auth:?}: {:?}",
            result.err()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_url_connects_with_the_servers_ca_and_fails_typed_with_another() {
    let certificates = make_certificates(&scratch_dir("certificates"));
    let server = SingleServer::start(
        "tls",
        ServerSetup {
            authorization: None,
            tls: Some((
                certificates.server_cert.clone(),
                certificates.server_key.clone(),
            )),
        },
    );
    bridge_works(
        single(server.url("tls"), Auth::None, Some(certificates.ca.clone())),
        "tls",
    )
    .await;
    let stream = StreamConfig {
        replicas: 1,
        ..stream_config("tls_wrong")
    };
    // A CA that did not sign the server's certificate, or none (the system's roots).
    for ca in [Some(certificates.other_ca.clone()), None] {
        let connection = single(server.url("tls"), Auth::None, ca.clone());
        match CommitWriter::connect(&connection, &stream).await {
            Err(BridgeError::Tls(detail)) => assert!(!detail.is_empty()),
            Err(other) => panic!("CA {ca:?}: expected Tls, got {other:?}"),
            Ok(_) => panic!("CA {ca:?}: the server's certificate was accepted"),
        }
    }
    // A CA file that is not there is a TLS setup error too, not a panic.
    let missing = single(
        server.url("tls"),
        Auth::None,
        Some(certificates.ca.with_file_name("missing.pem")),
    );
    assert!(matches!(
        CommitWriter::connect(&missing, &stream).await,
        Err(BridgeError::Tls(_))
    ));
}
