//! Regenerates `screenshot.png` (committed; CI does not run this): starts the server with
//! some rows, then drives headless Chromium through the DevTools protocol as a person would
//! — types the token, connects, types the SQL, subscribes — and captures the page once the
//! rows are live. (The page reads nothing from its URL: no token or query in links.)
//!
//! `cargo run -p livecore-server --example screenshot [-- OUT.png]`

#[path = "../tests/common/devtools.rs"]
mod devtools;

use devtools::{Browser, Page};
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
    let profile = dir.join("profile");
    let browser = Browser::launch(profile);
    let mut page = Page::open(&browser, &format!("http://{}/", server.addr())).await;
    page.command(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1200, "height": 860, "deviceScaleFactor": 1, "mobile": false}),
    )
    .await;
    page.wait_for(
        "the form",
        "document.readyState === 'complete' && !!document.querySelector('#connect')",
    )
    .await;
    page.type_into("#token", "alice-token").await;
    page.click("#connect").await;
    page.wait_for(
        "the signed-in state",
        "document.body.dataset.phase === 'connected'",
    )
    .await;
    page.type_into("#sql", "SELECT * FROM messages WHERE room = 1")
        .await;
    page.click("#subscribe").await;
    page.wait_for(
        "the live rows",
        "document.body.dataset.phase === 'live' && document.querySelectorAll('#rows tbody tr').length === 4",
    )
    .await;
    let shot = page
        .command("Page.captureScreenshot", json!({"format": "png"}))
        .await;
    let png = decode_base64(shot["data"].as_str().expect("screenshot data"));
    std::fs::write(&out, png).expect("the screenshot is written");
    println!("wrote {out}");
    drop(page);
    drop(browser);
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Standard base64 (what DevTools returns) to bytes.
fn decode_base64(text: &str) -> Vec<u8> {
    let value = |byte: u8| -> u32 {
        match byte {
            b'A'..=b'Z' => u32::from(byte - b'A'),
            b'a'..=b'z' => u32::from(byte - b'a') + 26,
            b'0'..=b'9' => u32::from(byte - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            other => panic!("not base64: {other:?}"),
        }
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|byte| !byte.is_ascii_whitespace() && *byte != b'=')
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut bits = 0u32;
        for &digit in chunk {
            bits = (bits << 6) | value(digit);
        }
        // A chunk of n digits holds n * 6 bits: 4 -> 3 bytes, 3 -> 2, 2 -> 1.
        bits <<= 6 * (4 - chunk.len() as u32);
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}
