//! Regenerates `screenshot.png` (committed; CI does not run this): starts the server with
//! some rows, then has headless Chromium open the page, connect and subscribe through its
//! `?token=...&sql=...&autorun=1` link, and save a screenshot once the rows are live.
//!
//! `cargo run -p livecore-server --example screenshot [-- OUT.png]`

use std::process::Command;

use livecore_server::{Identity, RunningServer, ServerConfig, WriteOp};
use serde_json::json;

#[tokio::main]
async fn main() {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/screenshot.png").into());
    let dir = std::env::temp_dir().join(format!("livecore-screenshot-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let server = RunningServer::start(ServerConfig::demo(
        "127.0.0.1:0".parse().unwrap(),
        dir.join("live.db"),
    ))
    .await
    .expect("server starts");
    let rows = [
        (1, "alice", "Deploy finished on all nodes", 4.5),
        (2, "bob", "Lunch at noon?", 1.0),
        (1, "carol", "Latency p99 back under 2 ms", 3.25),
        (1, "alice", "Rolling restart scheduled for 18:00", 2.0),
        (3, "dave", "Not in room 1", 0.0),
        (1, "bob", "<b>markup</b> shows as text", 1.5),
    ];
    let alice = Identity {
        user: "alice".into(),
        role: None,
    };
    for (room, author, body, score) in rows {
        let op: WriteOp = serde_json::from_value(json!({"op": "insert", "table": "messages",
            "values": {"room": room, "author": author, "body": body, "score": score}}))
        .unwrap();
        server.write(&alice, vec![op]).await.unwrap();
    }
    let url = format!(
        "http://{}/?token=alice-token&autorun=1&sql=SELECT%20*%20FROM%20messages%20WHERE%20room%20%3D%201",
        server.addr()
    );
    let profile = dir.join("profile");
    // The virtual-time budget lets the page connect, load and render before the capture.
    let status = tokio::task::spawn_blocking(move || {
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--window-size=1200,860",
                "--virtual-time-budget=5000",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--screenshot={out}"))
            .arg(url)
            .status()
    })
    .await
    .unwrap()
    .expect("chromium runs");
    assert!(status.success());
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
