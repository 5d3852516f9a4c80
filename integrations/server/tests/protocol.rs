//! The protocol's promises one client relies on: writes commit and are answered in the
//! order sent, errors name the request they answer, large integers round-trip as text,
//! a client's close is answered, and `read_table` reads every owner's rows.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_sent_back_to_back_commit_and_are_answered_in_order() {
    // 121 writes in flight at once: over the default per-connection limit (answered
    // `busy`, tests/hardening.rs), so raised here, where the order is what is tested.
    let server = start(|config| config.limits.max_pending_writes_per_connection = 200).await;
    let mut client = Client::signed_in(&server.url(), "alice-token").await;
    // Each update names the row the insert just before it creates: it finds the row only
    // if the insert committed first.
    let pairs = 60;
    for n in 0..pairs {
        let id = 1000 + n;
        client
            .send(json!({"type": "write", "id": format!("ins{n}"), "ops": [
                {"op": "insert", "table": "messages", "values": {"id": id, "room": 1, "author": "a", "body": "new"}}
            ]}))
            .await;
        client
            .send(json!({"type": "write", "id": format!("upd{n}"), "ops": [
                {"op": "update", "table": "messages", "id": id, "values": {"body": "edited"}}
            ]}))
            .await;
    }
    // A write refused before it reaches the writer (no ops) is answered in its turn too.
    client
        .send(json!({"type": "write", "id": "empty", "ops": []}))
        .await;
    let mut answers = write_answers(&mut client, 2 * pairs as usize + 1).await;
    let last = answers.pop().unwrap();
    assert_eq!(last["id"], "empty", "{last}");
    assert_eq!(last["type"], "error", "{last}");
    let mut last_seq = 0;
    for (index, answer) in answers.iter().enumerate() {
        let n = index / 2;
        let expected_id = if index % 2 == 0 {
            format!("ins{n}")
        } else {
            format!("upd{n}")
        };
        assert_eq!(answer["type"], "written", "{answer}");
        assert_eq!(answer["id"], json!(expected_id), "answers out of order");
        let seq = answer["seq"].as_u64().unwrap();
        assert!(seq > last_seq, "{answer} after seq {last_seq}");
        last_seq = seq;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_request_is_answered_with_its_id() {
    let server = start(|_| {}).await;
    let mut client = Client::signed_in(&server.url(), "alice-token").await;
    let requests = [
        json!({"type": "subscribe", "id": "q1", "sql": "SELECT * FROM messages", "initial_load": "yes"}),
        json!({"type": "write", "id": "w1", "ops": [{"op": "upsert", "table": "messages"}]}),
        json!({"type": "unsubscribe", "id": 7}),
        json!({"type": "ping", "id": "p1", "extra": true}),
    ];
    for request in requests {
        client.send(request.clone()).await;
        let reply = client.recv().await;
        assert_eq!(reply["type"], "error", "{request}: {reply}");
        assert_eq!(reply["code"], "bad_message", "{request}: {reply}");
        assert_eq!(reply["id"], request["id"], "{request}: {reply}");
    }
    // Text that is not a JSON object has no id to echo.
    client.ws.send(Message::text("not json")).await.unwrap();
    let reply = client.recv().await;
    assert_eq!(reply["id"], Value::Null, "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integers_beyond_2_pow_53_are_text_both_ways() {
    let server = start(|_| {}).await;
    let mut client = Client::signed_in(&server.url(), "alice-token").await;
    let big_id: i64 = (1 << 60) + 1;
    let big_room: i64 = (1 << 53) + 1;
    client
        .subscribe(json!({"sql": "SELECT id, room FROM messages WHERE room > 1000"}))
        .await;
    client
        .send(json!({"type": "write", "id": "w", "ops": [
            {"op": "insert", "table": "messages", "values": {"id": big_id, "room": big_room, "author": "a", "body": "b"}}
        ]}))
        .await;
    // The answer and the change come in either order.
    let (mut written, mut change) = (None, None);
    while written.is_none() || change.is_none() {
        let message = client.recv().await;
        match message["type"].as_str() {
            Some("written" | "error") => written = Some(message),
            Some("changes") => change = Some(message),
            _ => {}
        }
    }
    let written = written.unwrap();
    assert_eq!(written["ids"], json!([big_id.to_string()]), "{written}");
    let change = change.unwrap();
    let row = &change["changes"][0]["row"];
    assert_eq!(row["id"], json!(big_id.to_string()), "{row}");
    assert_eq!(row["room"], json!(big_room.to_string()), "{row}");
    // What the client received is what it writes back: the id and an INTEGER value.
    client
        .send(json!({"type": "write", "id": "u", "ops": [
            {"op": "update", "table": "messages", "id": row["id"], "values": {"room": row["room"], "body": "again"}}
        ]}))
        .await;
    let answer = write_answers(&mut client, 1).await.remove(0);
    assert_eq!(answer["type"], "written", "{answer}");
    // Text that is not exactly an integer's digits stays a bad value.
    for room in [
        "12.0",
        "+5",
        "007",
        "1e3",
        "x",
        "-0",
        " 5",
        "9223372036854775808",
    ] {
        client
            .send(json!({"type": "write", "id": "bad", "ops": [
                {"op": "insert", "table": "messages", "values": {"room": room}}
            ]}))
            .await;
        let answer = write_answers(&mut client, 1).await.remove(0);
        assert_eq!(answer["code"], "bad_value", "{room}: {answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_close_is_answered_with_a_close_frame() {
    let server = start(|_| {}).await;
    let mut client = Client::signed_in(&server.url(), "alice-token").await;
    client
        .ws
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })))
        .await
        .unwrap();
    // The server's reply completes the closing handshake: the stream ends cleanly, not
    // with a reset.
    loop {
        match tokio::time::timeout(WAIT, client.ws.next())
            .await
            .expect("the close answered in time")
        {
            Some(Ok(Message::Close(_))) | None => break,
            Some(Ok(_)) => {}
            Some(Err(error)) => panic!("closing handshake not completed: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_frame_that_is_not_utf8_closes_with_1007() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;
    let server = start(|_| {}).await;
    let mut client = Client::signed_in(&server.url(), "alice-token").await;
    let frame = Frame::message(vec![0xff, 0xfe, 0x41], OpCode::Data(Data::Text), true);
    client.ws.send(Message::Frame(frame)).await.unwrap();
    let (code, reason) = client.expect_close().await;
    assert_eq!(code, 1007, "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_table_reads_every_owners_rows() {
    let server = start(|_| {}).await;
    for user in ["alice", "bob"] {
        server
            .write_as(
                user,
                vec![
                    json!({"op": "insert", "table": "notes", "values": {"title": user, "done": 0}}),
                ],
            )
            .await;
    }
    let (_, rows) = server.server().read_table("notes").await.unwrap();
    let mut owners: Vec<String> = rows
        .iter()
        .map(|row| match row.value(1) {
            livecore::Value::Text(owner) => owner.to_string(),
            other => panic!("owner {other:?}"),
        })
        .collect();
    owners.sort();
    assert_eq!(owners, ["alice", "bob"]);
}
