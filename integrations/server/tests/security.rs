//! Each refusal as the README documents it, with a bystander client subscribed throughout
//! that keeps getting its changes.

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;

/// A signed-in client subscribed to room 1, to show others are unaffected.
async fn bystander(server: &TestServer) -> Client {
    let mut client = Client::signed_in(&server.url(), "bob-token").await;
    client
        .subscribe(json!({"sql": "SELECT id, body FROM messages WHERE room = 1"}))
        .await;
    client
}

/// Waits (bounded) until a new connection is let in and signs in: places are freed when
/// the server has seen a closed connection go.
async fn admitted_eventually(server: &TestServer) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut next = Client::connect(&server.url()).await;
        let reply = tokio::time::timeout(Duration::from_secs(5), async {
            next.send(json!({"type": "auth", "token": "alice-token"}))
                .await;
            next.ws.next().await
        })
        .await;
        if matches!(reply, Ok(Some(Ok(Message::Text(ref text)))) if text.contains("authenticated"))
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place was never freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends `text` as one WebSocket text message in frames of at most `frame` bytes (the
/// first a text frame, the rest continuations, the last final). A send failing because
/// the server already closed is left to the close frame to explain.
async fn send_fragmented(client: &mut Client, text: &str, frame: usize) {
    let chunks: Vec<&[u8]> = text.as_bytes().chunks(frame).collect();
    for (index, chunk) in chunks.iter().enumerate() {
        let opcode = if index == 0 {
            OpCode::Data(Data::Text)
        } else {
            OpCode::Data(Data::Continue)
        };
        let last = index + 1 == chunks.len();
        let sent = client
            .ws
            .send(Message::Frame(Frame::message(chunk.to_vec(), opcode, last)))
            .await;
        if sent.is_err() {
            return;
        }
    }
}

/// The bystander gets the next commit in room 1.
async fn still_served(server: &TestServer, client: &mut Client) {
    let seq = server.write(vec![insert(1, "still here")]).await;
    let received = client.recv_until(|m| m["type"] == "changes").await;
    assert_eq!(received.last().unwrap()["seq"], json!(seq));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_missing_or_skipped_tokens_are_refused() {
    let server = start(|_| {}).await;
    let mut other = bystander(&server).await;
    let cases = [
        (
            json!({"type": "auth", "token": "alice-tokem"}),
            4001,
            "authentication failed: invalid token",
        ),
        (
            json!({"type": "auth", "token": ""}),
            4001,
            "authentication failed: missing token",
        ),
        (
            json!({"type": "auth"}),
            4001,
            "authentication failed: missing token",
        ),
        (
            json!({"type": "subscribe", "sql": "SELECT * FROM messages"}),
            4002,
            "authenticate first",
        ),
        (
            json!({"type": "write", "ops": []}),
            4002,
            "authenticate first",
        ),
    ];
    for (first, code, reason) in cases {
        let mut client = Client::connect(&server.url()).await;
        client.send(first.clone()).await;
        assert_eq!(
            client.expect_close().await,
            (code, reason.to_string()),
            "{first}"
        );
    }
    // A client cannot name itself: there is no user field; an `auth` naming one is
    // refused as unreadable, and the connection stays unauthenticated.
    let mut client = Client::connect(&server.url()).await;
    client.send(json!({"type": "auth", "user": "alice"})).await;
    assert_eq!(client.recv().await["code"], "bad_message");
    client
        .send(json!({"type": "subscribe", "sql": "SELECT * FROM messages"}))
        .await;
    assert_eq!(
        client.expect_close().await,
        (4002, "authenticate first".to_string())
    );
    still_served(&server, &mut other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_origin_is_refused_before_the_upgrade() {
    let server = start(|config| config.allowed_origins = vec!["https://app.example".into()]).await;
    let mut other = bystander(&server).await;
    match Client::connect_from(&server.url(), "https://evil.example").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403);
            let body = response.body().as_deref().map(String::from_utf8_lossy);
            assert_eq!(body.as_deref(), Some("origin not allowed\n"));
        }
        other => panic!("expected HTTP 403, got {:?}", other.map(|_| "a connection")),
    }
    // The configured origin and the server's own are accepted.
    let own = format!("http://{}", server.addr());
    for origin in ["https://app.example", own.as_str()] {
        let mut client = Client::connect_from(&server.url(), origin)
            .await
            .expect(origin);
        assert_eq!(client.auth("alice-token").await["type"], "authenticated");
    }
    still_served(&server, &mut other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_or_a_binary_frame_closes_only_its_connection() {
    let server = start(|config| {
        config.limits.max_message_bytes = 16 * 1024;
        config.limits.max_frame_bytes = 16 * 1024;
    })
    .await;
    let mut other = bystander(&server).await;
    let mut big = Client::signed_in(&server.url(), "alice-token").await;
    let sql = format!(
        "SELECT * FROM messages WHERE body = '{}'",
        "x".repeat(20 * 1024)
    );
    big.send(json!({"type": "subscribe", "sql": sql})).await;
    assert_eq!(
        big.expect_close().await,
        (1009, "message too big".to_string())
    );

    let mut binary = Client::signed_in(&server.url(), "alice-token").await;
    binary
        .ws
        .send(Message::binary(vec![1, 2, 3]))
        .await
        .unwrap();
    assert_eq!(
        binary.expect_close().await,
        (1003, "binary frames are not supported".to_string())
    );
    still_served(&server, &mut other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_messages_is_cut_off_at_the_rate_limit() {
    let server = start(|config| {
        config.limits.messages_per_second = 20;
        config.limits.message_burst = 40;
    })
    .await;
    let mut other = bystander(&server).await;
    let mut flood = Client::signed_in(&server.url(), "alice-token").await;
    for _ in 0..400 {
        // The server may close mid-flood; later sends then fail, which is the point.
        if flood
            .ws
            .send(Message::text(json!({"type": "ping"}).to_string()))
            .await
            .is_err()
        {
            break;
        }
    }
    let pongs_then_close = async {
        let mut pongs = 0;
        loop {
            match flood.ws.next().await {
                Some(Ok(Message::Text(text))) if text.contains("pong") => pongs += 1,
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (pongs, u16::from(frame.code), frame.reason.to_string())
                }
                Some(Ok(_)) => {}
                other => panic!("closed without a frame: {other:?}"),
            }
        }
    };
    let (pongs, code, reason) = tokio::time::timeout(WAIT, pongs_then_close)
        .await
        .expect("in time");
    assert_eq!((code, reason.as_str()), (4029, "message rate exceeded"));
    // The burst (40, the auth message included) and what the rate refilled meanwhile
    // were answered before the close, nothing like 400.
    assert!(
        (39..100).contains(&pongs),
        "{pongs} pongs before the cut-off"
    );
    still_served(&server, &mut other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address_and_subscriptions_per_connection_are_limited() {
    let server = start(|config| {
        config.limits.max_connections_per_address = 3;
        config.manager.max_subscriptions_per_connection = 2;
    })
    .await;
    let mut other = bystander(&server).await;
    let mut second = Client::signed_in(&server.url(), "alice-token").await;
    let _third = Client::signed_in(&server.url(), "alice-token").await;
    let mut fourth = Client::connect(&server.url()).await;
    assert_eq!(
        fourth.expect_close().await,
        (4030, "too many connections from this address".to_string())
    );
    // Subscriptions per connection: the third is refused with a typed error, the
    // connection stays.
    for room in [1, 2] {
        second
            .subscribe(json!({"sql": format!("SELECT * FROM messages WHERE room = {room}")}))
            .await;
    }
    second
        .send(json!({"type": "subscribe", "id": 3, "sql": "SELECT * FROM messages"}))
        .await;
    let refused = second.recv().await;
    assert_eq!(refused["type"], "error");
    assert_eq!(refused["code"], "subscription_limit");
    assert_eq!(refused["id"], 3);
    // Closing one frees its address slot for a new connection.
    drop(second);
    admitted_eventually(&server).await;
    still_served(&server, &mut other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_connection_limit_closes_with_server_full() {
    let server = start(|config| config.manager.max_connections = 2).await;
    let mut other = bystander(&server).await;
    let second = Client::signed_in(&server.url(), "alice-token").await;
    // The third connection: the upgrade succeeds, then the server closes it at once.
    let mut third = Client::connect(&server.url()).await;
    assert_eq!(
        third.expect_close().await,
        (1013, "server full".to_string())
    );
    // Closing one frees its place for a new connection.
    drop(second);
    admitted_eventually(&server).await;
    still_served(&server, &mut other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_over_the_limit_in_small_frames_is_refused() {
    // Frames of at most 4 KiB, messages of at most 16 KiB.
    let server = start(|config| {
        config.limits.max_frame_bytes = 4 * 1024;
        config.limits.max_message_bytes = 16 * 1024;
    })
    .await;
    let mut other = bystander(&server).await;
    let mut client = Client::signed_in(&server.url(), "alice-token").await;
    // A message in several frames is put back together and answered.
    send_fragmented(
        &mut client,
        &json!({"type": "ping", "id": 7}).to_string(),
        5,
    )
    .await;
    let pong = client.recv().await;
    assert_eq!(
        (pong["type"].as_str(), pong["id"].as_i64()),
        (Some("pong"), Some(7))
    );
    // 20 KiB in 2 KiB frames: every frame is under the frame limit, the message is over
    // the message limit.
    let sql = format!(
        "SELECT * FROM messages WHERE body = '{}'",
        "x".repeat(20 * 1024)
    );
    let text = json!({"type": "subscribe", "sql": sql}).to_string();
    send_fragmented(&mut client, &text, 2 * 1024).await;
    assert_eq!(
        client.expect_close().await,
        (1009, "message too big".to_string())
    );
    still_served(&server, &mut other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_see_and_touch_only_what_they_may() {
    let server = start(|config| {
        config.tables[0].write = livecore_server::WriteAccess::Role("admin".into());
    })
    .await;
    let mut alice = Client::signed_in(&server.url(), "alice-token").await;
    let mut bob = Client::signed_in(&server.url(), "bob-token").await;
    let mut admin = Client::signed_in(&server.url(), "admin-token").await;
    // Bad SQL and several statements are refused with a typed error, not run anywhere.
    alice
        .send(json!({"type": "subscribe", "id": "q", "sql": "SELECT * FROM messages; DROP TABLE messages"}))
        .await;
    let refused = alice.recv().await;
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("sql"))
    );
    alice
        .send(json!({"type": "subscribe", "sql": "SELECT * FROM _livecore_log"}))
        .await;
    assert_eq!(alice.recv().await["code"], "unknown_table");

    // Per-user rows: bob's subscription never sees alice's notes, and the owner column is
    // set by the server, not the client.
    let bobs = bob
        .subscribe(json!({"sql": "SELECT * FROM notes", "initial_load": true}))
        .await;
    assert_eq!(
        bob.recv_until(|m| m["type"] == "load_complete").await.len(),
        1
    );
    alice
        .send(json!({"type": "write", "id": "w1", "ops": [{"op": "insert", "table": "notes", "values": {"owner": "bob", "title": "forged"}}]}))
        .await;
    let refused = alice.recv().await;
    assert_eq!(refused["code"], "bad_column", "{refused}");
    alice
        .send(json!({"type": "write", "id": "w2", "ops": [{"op": "insert", "table": "notes", "values": {"title": "alice's"}}]}))
        .await;
    let written = alice.recv().await;
    assert_eq!(written["type"], "written", "{written}");
    let alice_note = written["ids"][0].as_i64().unwrap();
    // Bob cannot change or delete alice's note: to him it does not exist.
    bob.send(json!({"type": "write", "id": "w3", "ops": [{"op": "delete", "table": "notes", "id": alice_note}]}))
        .await;
    assert_eq!(bob.recv().await["code"], "not_found");
    // The shared table is writable by the admin role only.
    alice
        .send(json!({"type": "write", "id": "w4", "ops": [{"op": "insert", "table": "messages", "values": {"room": 1}}]}))
        .await;
    assert_eq!(alice.recv().await["code"], "forbidden");
    admin
        .send(json!({"type": "write", "id": "w5", "ops": [{"op": "insert", "table": "messages", "values": {"room": 1, "body": 5}}]}))
        .await;
    assert_eq!(admin.recv().await["code"], "bad_value");
    // Alice cannot end bob's live query by naming it.
    alice
        .send(json!({"type": "unsubscribe", "live_query_id": bobs}))
        .await;
    assert_eq!(alice.recv().await["code"], "unknown_subscription");
    // Bob's own note reaches bob, and only it.
    bob.send(json!({"type": "write", "id": "w6", "ops": [{"op": "insert", "table": "notes", "values": {"title": "bob's"}}]}))
        .await;
    let seen = bob.recv_until(|m| m["type"] == "changes").await;
    let change = &seen.last().unwrap()["changes"][0]["row"];
    assert_eq!(
        (change["owner"].as_str(), change["title"].as_str()),
        (Some("bob"), Some("bob's"))
    );
}
