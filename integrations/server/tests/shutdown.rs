//! The real binary: started as `livecore-server --bind 127.0.0.1:0`, it serves the page
//! and clients, and on SIGTERM closes every client with 1001 and a reason, then exits 0.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_every_client_with_a_reason_and_exits() {
    let dir = temp_dir();
    let mut child = Command::new(env!("CARGO_BIN_EXE_livecore-server"))
        .args(["--bind", "127.0.0.1:0", "--db"])
        .arg(dir.join("live.db"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("the server starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().expect("a first line").expect("readable");
    let base = first
        .strip_prefix("livecore-server listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_string();
    let url = format!("{}/ws", base.replace("http://", "ws://"));

    let mut clients = Vec::new();
    for token in ["alice-token", "bob-token", "admin-token"] {
        let mut client = Client::signed_in(&url, token).await;
        client
            .subscribe(json!({"sql": "SELECT * FROM messages", "initial_load": true}))
            .await;
        client.recv_until(|m| m["type"] == "load_complete").await;
        clients.push(client);
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for client in &mut clients {
        assert_eq!(
            client.expect_close().await,
            (1001, "server shutting down".to_string())
        );
    }
    let exit = tokio::task::spawn_blocking(move || {
        let status = child.wait().unwrap();
        let rest: Vec<String> = lines.map_while(Result::ok).collect();
        (status, rest)
    });
    let (status, rest) = tokio::time::timeout(WAIT, exit)
        .await
        .expect("exits in time")
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(
        rest.iter()
            .any(|line| line.contains("3 clients closed, 0 dropped")),
        "{rest:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
