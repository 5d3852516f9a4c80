//! Hostile clients: sockets that never become WebSockets, a shutdown while a request is
//! half sent, WebSocket protocol violations, write floods, commits too large to fan out,
//! loads and resumes beyond the per-connection cap, and `auth` messages of the wrong shape.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// True once the server closed the socket (EOF or a reset) within the bound.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// True when the socket is still open (nothing to read, no EOF) right now.
async fn still_open(stream: &mut TcpStream) -> bool {
    let mut buffer = [0u8; 1];
    tokio::time::timeout(Duration::from_millis(50), stream.read(&mut buffer))
        .await
        .is_err()
}

/// Waits (bounded) until the server counts `count` sockets waiting for their upgrade.
async fn pending_reaches(server: &TestServer, count: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.server().pending_handshakes() != count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "pending handshakes stayed at {}, expected {count}",
            server.server().pending_handshakes()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_returns_while_a_client_holds_a_half_sent_request() {
    // The handshake timeout is out of the way: only shutdown may close the socket.
    let mut server = start(|config| {
        config.shutdown_timeout = Duration::from_millis(500);
        config.limits.handshake_timeout = Duration::from_secs(3600);
    })
    .await;
    let mut partial = TcpStream::connect(server.addr()).await.unwrap();
    partial
        .write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut idle = TcpStream::connect(server.addr()).await.unwrap();
    let mut client = Client::signed_in(&server.url(), "alice-token").await;
    pending_reaches(&server, 2).await;
    let running = server.server.take().unwrap();
    tokio::time::timeout(WAIT, running.shutdown())
        .await
        .expect("shutdown returns although a request is half sent");
    assert_eq!(
        client.expect_close().await,
        (1001, "server shutting down".to_string())
    );
    assert!(closed_by_server(&mut partial).await);
    assert!(closed_by_server(&mut idle).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_that_never_upgrade_are_closed_after_the_handshake_timeout() {
    let server = start(|config| config.limits.handshake_timeout = Duration::from_millis(300)).await;
    let mut idle = TcpStream::connect(server.addr()).await.unwrap();
    let mut partial = TcpStream::connect(server.addr()).await.unwrap();
    partial
        .write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // A keep-alive connection that fetched the page and then idles.
    let mut keep_alive = TcpStream::connect(server.addr()).await.unwrap();
    keep_alive
        .write_all(b"GET /style.css HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(closed_by_server(&mut idle).await);
    assert!(closed_by_server(&mut partial).await);
    assert!(closed_by_server(&mut keep_alive).await);
    pending_reaches(&server, 0).await;
    // A WebSocket is not held to the handshake timeout.
    let mut client = Client::signed_in(&server.url(), "alice-token").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    client.send(json!({"type": "ping", "id": 1})).await;
    assert_eq!(client.recv().await["type"], "pong");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_pending_limit_the_oldest_waiting_socket_is_closed() {
    let server = start(|config| {
        config.limits.handshake_timeout = Duration::from_secs(3600);
        config.limits.max_pending_handshakes_per_address = 3;
    })
    .await;
    let mut sockets = Vec::new();
    for count in 1..=3 {
        sockets.push(TcpStream::connect(server.addr()).await.unwrap());
        pending_reaches(&server, count).await;
    }
    // A fourth from the same address: the first (oldest) goes, the others stay.
    sockets.push(TcpStream::connect(server.addr()).await.unwrap());
    assert!(closed_by_server(&mut sockets[0]).await);
    pending_reaches(&server, 3).await;
    for socket in &mut sockets[1..] {
        assert!(still_open(socket).await);
    }
    // A real client still gets in (closing the next oldest), and is served.
    let mut client = Client::signed_in(&server.url(), "alice-token").await;
    assert!(closed_by_server(&mut sockets[1]).await);
    client.send(json!({"type": "ping", "id": 2})).await;
    assert_eq!(client.recv().await["id"], 2);
    assert!(still_open(&mut sockets[2]).await);
}

/// A client frame masked with the zero key (valid: XOR with zero).
fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    if payload.len() < 126 {
        out.push(0x80 | payload.len() as u8);
    } else {
        out.push(0x80 | 126);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(payload);
    out
}

/// The code of the first close frame the server sent on the raw socket, if any.
async fn close_code_on(stream: &mut TcpStream) -> Option<u16> {
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut bytes)).await;
    let mut at = 0;
    // Server frames are unmasked; skip any before the close frame.
    while at + 2 <= bytes.len() {
        let (opcode, length) = (bytes[at] & 0x0f, (bytes[at + 1] & 0x7f) as usize);
        let (start, length) = match length {
            126 => (
                at + 4,
                u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]) as usize,
            ),
            127 => return None,
            short => (at + 2, short),
        };
        if opcode == 0x8 && length >= 2 {
            return Some(u16::from_be_bytes([bytes[start], bytes[start + 1]]));
        }
        at = start + length;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_protocol_violations_are_closed_with_1002() {
    let server = start(|_| {}).await;
    let unmasked = {
        let payload = br#"{"type":"ping"}"#;
        let mut bytes = vec![0x81, payload.len() as u8];
        bytes.extend_from_slice(payload);
        bytes
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unmasked frame", unmasked),
        ("RSV1 set", frame(0x80 | 0x40 | 0x1, br#"{"type":"ping"}"#)),
        ("reserved data opcode", frame(0x83, b"x")),
        ("reserved control opcode", frame(0x8B, b"x")),
        ("fragmented ping", frame(0x09, b"x")),
        ("ping of 126 bytes", frame(0x89, &[b'p'; 126])),
        ("continuation without a start", frame(0x80, b"x")),
        (
            "a text frame inside a fragmented one",
            [frame(0x01, b"{"), frame(0x81, b"}")].concat(),
        ),
        ("close with a 1-byte payload", frame(0x88, &[3])),
        ("close code 999", frame(0x88, &999u16.to_be_bytes())),
    ];
    for (name, bytes) in cases {
        let mut client = Client::signed_in(&server.url(), "alice-token").await;
        let raw = match client.ws.get_mut() {
            tokio_tungstenite::MaybeTlsStream::Plain(stream) => stream,
            _ => unreachable!("plain TCP"),
        };
        raw.write_all(&bytes).await.unwrap();
        assert_eq!(close_code_on(raw).await, Some(1002), "{name}");
    }
    // Connections end, nothing is left behind.
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.server().manager().stats().connections != 0 {
        assert!(tokio::time::Instant::now() < deadline, "connections left");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Holds SQLite's write lock, so the server's writer waits (its busy timeout is 5 s) and
/// writes queue behind it deterministically.
fn lock_database(server: &TestServer) -> rusqlite::Connection {
    let connection = rusqlite::Connection::open(server.dir.join("live.db")).unwrap();
    connection.execute_batch("BEGIN IMMEDIATE").unwrap();
    connection
}

/// Sends writes then a ping, and waits for the pong: once it is back, the server has
/// queued (or refused) every write, since it reads a connection's messages in order.
async fn queue_writes(client: &mut Client, ids: &[String]) {
    for id in ids {
        client
            .send(json!({"type": "write", "id": id, "ops": [insert(5, id)]}))
            .await;
    }
    client.send(json!({"type": "ping", "id": "queued"})).await;
    client
        .recv_until(|m| m["type"] == "pong" && m["id"] == "queued")
        .await;
}

fn ids(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|n| format!("{prefix}{n}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_past_the_queue_limits_are_answered_busy_in_order() {
    // Per connection: two writes queued or committing.
    let server = start(|config| config.limits.max_pending_writes_per_connection = 2).await;
    let mut client = Client::signed_in(&server.url(), "alice-token").await;
    let lock = lock_database(&server);
    queue_writes(&mut client, &ids("w", 6)).await;
    drop(lock);
    let answers = write_answers(&mut client, 6).await;
    for (n, answer) in answers.iter().enumerate() {
        assert_eq!(
            answer["id"],
            json!(format!("w{n}")),
            "in order: {answers:?}"
        );
        let expected = if n < 2 { "written" } else { "error" };
        assert_eq!(answer["type"], expected, "{answer}");
        if n >= 2 {
            assert_eq!(answer["code"], "busy", "{answer}");
        }
    }

    // Over every connection: three writes queued or committing.
    let server = start(|config| config.limits.max_queued_writes = 3).await;
    let mut first = Client::signed_in(&server.url(), "alice-token").await;
    let mut second = Client::signed_in(&server.url(), "bob-token").await;
    let lock = lock_database(&server);
    queue_writes(&mut first, &ids("a", 2)).await;
    queue_writes(&mut second, &ids("b", 3)).await;
    drop(lock);
    let codes = |answers: Vec<Value>| -> Vec<String> {
        answers
            .iter()
            .map(|a| a["code"].as_str().unwrap_or("written").to_string())
            .collect()
    };
    assert_eq!(
        codes(write_answers(&mut first, 2).await),
        ["written", "written"]
    );
    assert_eq!(
        codes(write_answers(&mut second, 3).await),
        ["written", "busy", "busy"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bystanders_write_is_not_queued_behind_a_flood() {
    let server = start(|_| {}).await;
    let mut flood = Client::signed_in(&server.url(), "alice-token").await;
    let mut bystander = Client::signed_in(&server.url(), "bob-token").await;
    let lock = lock_database(&server);
    queue_writes(&mut flood, &ids("f", 12)).await;
    queue_writes(&mut bystander, &["by".to_string()]).await;
    drop(lock);
    let flooded = write_answers(&mut flood, 12).await;
    let answer = write_answers(&mut bystander, 1).await.pop().unwrap();
    assert!(
        flooded.iter().all(|a| a["type"] == "written"),
        "{flooded:?}"
    );
    // The writer takes connections in turn: the bystander's write commits right after
    // the flood's second (the first was waiting for the lock), not after all twelve.
    let first = flooded[0]["seq"].as_u64().unwrap();
    assert_eq!(answer["seq"].as_u64(), Some(first + 2), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_over_the_byte_limit_is_refused_whole() {
    let server = start(|config| config.limits.max_commit_bytes = 8_000).await;
    let mut reader = Client::signed_in(&server.url(), "bob-token").await;
    reader
        .subscribe(json!({"sql": "SELECT id, body FROM messages"}))
        .await;
    let mut writer = Client::signed_in(&server.url(), "alice-token").await;
    let body = "b".repeat(2_000);
    for id in 1..=3 {
        writer
            .send(json!({"type": "write", "id": id, "ops": [{"op": "insert", "table": "messages", "values": {"id": id, "room": 1, "body": body}}]}))
            .await;
    }
    let written = write_answers(&mut writer, 3).await;
    assert!(
        written.iter().all(|a| a["type"] == "written"),
        "{written:?}"
    );
    let last_seq = written[2]["seq"].as_u64().unwrap();
    // Three updates carry three old and three new rows: about 12 KB, over the limit.
    let ops: Vec<Value> = (1..=3)
        .map(|id| json!({"op": "update", "table": "messages", "id": id, "values": {"room": 2}}))
        .collect();
    writer
        .send(json!({"type": "write", "id": "big", "ops": ops}))
        .await;
    let refused = writer.recv().await;
    assert_eq!(
        (refused["code"].as_str(), refused["id"].as_str()),
        (Some("commit_too_large"), Some("big")),
        "{refused}"
    );
    // Nothing of it was committed: the rows are unchanged, the next commit follows the
    // last one, and the subscriber gets the inserts and then that next commit only.
    let (seq, rows) = server.server().read_table("messages").await.unwrap();
    assert_eq!(seq.0, last_seq);
    assert!(rows
        .iter()
        .all(|row| matches!(row.value(1), livecore::Value::Int(1))));
    let next = server.write(vec![insert(1, "small")]).await;
    assert_eq!(next, last_seq + 1);
    let seen = reader.recv_until(|m| m["seq"] == json!(next)).await;
    let seqs: Vec<&Value> = seen.iter().map(|m| &m["seq"]).collect();
    assert_eq!(seqs.len(), 4, "{seqs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loads_and_resumes_past_the_per_connection_cap_wait_their_turn() {
    let server = start(|config| {
        config.limits.max_loads_per_connection = 1;
        config.limits.max_concurrent_loads = 1;
    })
    .await;
    for room in 0..20 {
        server.write(vec![insert(room % 3, "row")]).await;
    }
    let mut client = Client::signed_in(&server.url(), "alice-token").await;
    for n in 0..6 {
        let mut request = json!({"type": "subscribe", "id": n, "sql": format!("SELECT id FROM messages WHERE room = {}", n % 3)});
        if n % 2 == 0 {
            request["initial_load"] = json!(true);
        } else {
            request["resume_from"] = json!(0);
        }
        client.send(request).await;
    }
    // Every one completes, one at a time; a load's rows are all there.
    let mut completed = 0;
    let mut snapshot_rows = 0;
    while completed < 6 {
        let message = client.recv().await;
        assert_ne!(message["type"], "error", "{message}");
        match message["type"].as_str() {
            Some("load_complete") => completed += 1,
            Some("snapshot") => snapshot_rows += message["rows"].as_array().unwrap().len(),
            _ => {}
        }
    }
    // Initial loads of rooms 0, 2 and 1: 7 + 7 + 6 rows.
    assert_eq!(snapshot_rows, 20);
}

/// Subscribes to `room`'s messages with an initial load; every message read until the load
/// completed or an error came, that one last.
async fn load_room(client: &mut Client, room: i64) -> Vec<Value> {
    client
        .send(json!({"type": "subscribe", "id": room, "sql": format!("SELECT id FROM messages WHERE room = {room}"), "initial_load": true}))
        .await;
    client
        .recv_until(|m| m["type"] == "error" || m["type"] == "load_complete")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_waiting_for_its_client_holds_no_place_among_the_loads() {
    let server = start(|config| {
        config.limits.max_concurrent_loads = 1;
        config.manager.notification_channel_capacity = 16;
        config.history_limit = 1_000;
        // Long enough that a resume holding its place while it waits would outlast the
        // test's wait below.
        config.send_timeout = Duration::from_secs(300);
    })
    .await;
    // About 25 MiB of log: more than the sockets' buffers take from a client that reads
    // nothing, so the replay waits for the client.
    let body = "x".repeat(64 * 1024);
    for _ in 0..400 {
        server.write(vec![insert(1, &body)]).await;
    }
    let mut hog = Client::signed_in(&server.url(), "alice-token").await;
    hog.subscribe(json!({"id": 1, "sql": "SELECT * FROM messages", "resume_from": 0}))
        .await;
    // Its replay has begun; from here on the client reads nothing.
    let first = hog.recv().await;
    assert_eq!(first["type"], "changes", "{first}");
    // Another client's initial load gets the one place while the replay waits.
    let mut other = Client::signed_in(&server.url(), "bob-token").await;
    let seen = load_room(&mut other, 2).await;
    assert_eq!(seen.last().unwrap()["type"], "load_complete", "{seen:?}");
    drop(hog);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_replays_up_to_the_log_it_first_read_and_the_gate_brings_the_rest() {
    let server = start(|config| {
        config.manager.notification_channel_capacity = 8;
        config.history_limit = 1_000;
    })
    .await;
    let body = "x".repeat(16 * 1024);
    for _ in 0..200 {
        server.write(vec![insert(1, &body)]).await;
    }
    let mut client = Client::signed_in(&server.url(), "alice-token").await;
    client
        .subscribe(json!({"id": 1, "sql": "SELECT id FROM messages", "resume_from": 0}))
        .await;
    // The first batch has been read (the log then ended at 200); the client now reads
    // nothing while 100 more commits are written, so the replay is still under way.
    assert_eq!(client.recv().await["seq"], json!(1));
    for _ in 0..100 {
        server.write(vec![insert(1, &body)]).await;
    }
    let seen = client
        .recv_until(|m| m["type"] == "changes" && m["seq"] == json!(300))
        .await;
    let order: Vec<String> = seen
        .iter()
        .map(|m| match m["type"].as_str() {
            Some("changes") => m["seq"].to_string(),
            other => other.unwrap_or("?").to_string(),
        })
        .collect();
    // The load's end right after the last commit the log held at the first read: 201..300
    // came through the gate, not the log (a resume chasing the log would replay them
    // first).
    let mut replayed: Vec<String> = (2..=200).map(|seq| seq.to_string()).collect();
    replayed.push("load_complete".to_string());
    assert_eq!(order[..replayed.len()], replayed[..], "{order:?}");
    // Then the gate's commits in order; its flush into the small channel may drop some,
    // each gap told in place.
    let mut last = 200;
    for item in &order[replayed.len()..] {
        if item == "gap" {
            continue;
        }
        let seq: u64 = item.parse().expect("a commit");
        assert!(seq > last, "{order:?}");
        last = seq;
    }
    assert_eq!(last, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_initial_load_of_a_table_past_max_snapshot_bytes_is_load_failed() {
    let server = start(|config| {
        config.limits.max_snapshot_bytes = 4 * 1024;
    })
    .await;
    // Every row is read before livecore's filter: the table's size counts, not the
    // filter's share of it.
    for room in 0..10 {
        server.write(vec![insert(room, &"x".repeat(1024))]).await;
    }
    let mut client = Client::signed_in(&server.url(), "alice-token").await;
    let seen = load_room(&mut client, 3).await;
    let last = seen.last().unwrap();
    assert_eq!(last["code"], "load_failed", "{seen:?}");
    assert!(
        last["message"].as_str().unwrap().contains("4096 bytes"),
        "{last}"
    );
    // Under the limit, a load succeeds.
    let mut small = start(|config| {
        config.limits.max_snapshot_bytes = 64 * 1024;
    })
    .await;
    small.write(vec![insert(3, "a row")]).await;
    let mut client = Client::signed_in(&small.url(), "alice-token").await;
    let seen = load_room(&mut client, 3).await;
    assert_eq!(seen.last().unwrap()["type"], "load_complete", "{seen:?}");
    small.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_messages_of_the_wrong_shape_are_answered_not_closed() {
    let server = start(|_| {}).await;
    // An `auth` may carry an `id`, echoed like any request's.
    let mut client = Client::connect(&server.url()).await;
    client
        .send(json!({"type": "auth", "id": 1, "token": "alice-token"}))
        .await;
    let reply = client.recv().await;
    assert_eq!(
        (reply["type"].as_str(), reply["id"].as_i64()),
        (Some("authenticated"), Some(1))
    );
    // A token that is not text, a field the message does not have: `bad_message`, and the
    // connection may still authenticate.
    for (n, bad) in [
        json!({"type": "auth", "id": "a", "token": 123}),
        json!({"type": "auth", "id": "b", "token": null}),
        json!({"type": "auth", "id": "c", "user": "alice"}),
    ]
    .into_iter()
    .enumerate()
    {
        let mut client = Client::connect(&server.url()).await;
        client.send(bad.clone()).await;
        let reply = client.recv().await;
        assert_eq!(reply["type"], "error", "{bad}: {reply}");
        assert_eq!(reply["code"], "bad_message", "{bad}: {reply}");
        assert_eq!(reply["id"], bad["id"], "{bad}: {reply}");
        if n == 2 {
            // Still unauthenticated: anything but `auth` is refused.
            client
                .send(json!({"type": "subscribe", "sql": "SELECT * FROM messages"}))
                .await;
            assert_eq!(
                client.expect_close().await,
                (4002, "authenticate first".to_string())
            );
        } else {
            assert_eq!(client.auth("bob-token").await["type"], "authenticated");
        }
    }
}
