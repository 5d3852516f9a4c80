//! The server end to end with real WebSocket clients over loopback: initial loads racing
//! writes, enter/leave, resume, slow clients (gap notice or disconnect), timeouts, and
//! 1,000 clients.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use livecore::Value as LiveValue;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// Applies a subscriber's stream to its copy of the result set, asserting exactly-once:
/// a snapshot row or an insert never finds its row present, an update or delete always does.
struct Replica {
    rows: BTreeMap<i64, Value>,
    last_seq: u64,
    boundary: Option<u64>,
    live: bool,
}

impl Replica {
    fn new() -> Self {
        Self {
            rows: BTreeMap::new(),
            last_seq: 0,
            boundary: None,
            live: false,
        }
    }

    fn apply(&mut self, message: &Value) {
        match message["type"].as_str().unwrap() {
            "snapshot" => {
                assert!(!self.live, "a snapshot batch after load_complete");
                for row in message["rows"].as_array().unwrap() {
                    let id = row["id"].as_i64().unwrap();
                    assert!(
                        self.rows.insert(id, row.clone()).is_none(),
                        "snapshot row {id} twice"
                    );
                }
            }
            "load_complete" => {
                self.live = true;
                self.boundary = message["boundary"].as_u64();
                self.last_seq = self.boundary.unwrap_or(0);
            }
            "changes" => {
                assert!(self.live, "a change before load_complete");
                let seq = message["seq"].as_u64().unwrap();
                assert!(
                    seq > self.last_seq,
                    "commit {seq} after {}: twice or out of order",
                    self.last_seq
                );
                self.last_seq = seq;
                for change in message["changes"].as_array().unwrap() {
                    let row = &change["row"];
                    let id = row["id"].as_i64().unwrap();
                    match change["op"].as_str().unwrap() {
                        "insert" => assert!(
                            self.rows.insert(id, row.clone()).is_none(),
                            "insert of present row {id} at {seq}"
                        ),
                        "update" => assert!(
                            self.rows.insert(id, row.clone()).is_some(),
                            "update of absent row {id} at {seq}"
                        ),
                        "delete" => assert!(
                            self.rows.remove(&id).is_some(),
                            "delete of absent row {id} at {seq}"
                        ),
                        other => panic!("unknown op {other}"),
                    }
                }
            }
            "subscribed" | "written" | "event" | "pong" => {}
            other => panic!("unexpected message {other}: {message}"),
        }
    }
}

fn json_of(value: &LiveValue) -> Value {
    match value {
        LiveValue::Null => Value::Null,
        LiveValue::Int(value) => json!(value),
        LiveValue::Float(value) => json!(value),
        LiveValue::Text(text) => json!(&**text),
        other => panic!("unexpected value {other:?}"),
    }
}

/// SQLite's final rows of `messages` in `room`, as the page would render them.
async fn final_rows(server: &TestServer, room: Option<i64>) -> BTreeMap<i64, Value> {
    let (_, rows) = server.server().read_table("messages").await.unwrap();
    let names = ["id", "room", "author", "body", "score"];
    rows.iter()
        .map(|row| {
            let object: serde_json::Map<String, Value> = names
                .iter()
                .zip(row.values())
                .map(|(name, value)| (name.to_string(), json_of(value)))
                .collect();
            (object["id"].as_i64().unwrap(), Value::Object(object))
        })
        .filter(|(_, row)| room.is_none_or(|room| row["room"] == json!(room)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_loads_racing_writes_see_every_commit_exactly_once() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    const SEED: i64 = 2000;
    const SUBSCRIBERS: usize = 6;
    let server = Arc::new(start(|_| {}).await);
    for batch in 0..SEED / 100 {
        let ops = (0..100)
            .map(|i| insert((batch * 100 + i) % 4, &format!("seed {i}")))
            .collect();
        server.write(ops).await;
    }
    // A writer keeps committing inserts, updates that move rows between rooms, score
    // changes and deletes, until every subscriber's load has completed (and then some).
    let written = Arc::new(AtomicUsize::new(0));
    let loaded = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (server, written, stop) = (server.clone(), written.clone(), stop.clone());
        tokio::spawn(async move {
            let identity = livecore_server::Identity {
                user: "alice".into(),
                role: None,
            };
            let mut i = 0i64;
            while !stop.load(Ordering::Acquire) && i < 20_000 {
                let ops = match i % 4 {
                    0 => vec![
                        insert(i % 3, &format!("new {i}")),
                        insert(1, &format!("also {i}")),
                    ],
                    1 => vec![
                        json!({"op": "update", "table": "messages", "id": 1 + (i * 7) % SEED, "values": {"room": (i / 4) % 4, "body": format!("moved {i}")}}),
                    ],
                    2 => vec![
                        json!({"op": "update", "table": "messages", "id": 1 + (i * 13) % SEED, "values": {"score": i as f64 / 2.0}}),
                    ],
                    _ => vec![
                        json!({"op": "delete", "table": "messages", "id": 1 + (i * 11) % SEED}),
                    ],
                };
                let ops = ops
                    .into_iter()
                    .map(|op| serde_json::from_value(op).unwrap())
                    .collect();
                // An update or delete of a row deleted earlier is refused (not_found): fine.
                let _ = server.server().write(&identity, ops).await;
                written.fetch_add(1, Ordering::Release);
                i += 1;
            }
        })
    };
    let url = server.url();
    let mut subscribers = Vec::new();
    for k in 0..SUBSCRIBERS {
        // Each load starts at a different point of the write stream.
        let deadline = tokio::time::Instant::now() + WAIT;
        while written.load(Ordering::Acquire) < 40 * (k + 1) {
            assert!(tokio::time::Instant::now() < deadline, "the writer stalled");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let (url, loaded) = (url.clone(), loaded.clone());
        subscribers.push(tokio::spawn(async move {
            let mut client = Client::signed_in(&url, "alice-token").await;
            let sql = if k == SUBSCRIBERS - 1 {
                "SELECT * FROM messages".to_string()
            } else {
                "SELECT * FROM messages WHERE room = 1".to_string()
            };
            client
                .subscribe(json!({"sql": sql, "initial_load": true}))
                .await;
            let mut replica = Replica::new();
            loop {
                let message = client.recv().await;
                replica.apply(&message);
                if message["type"] == "load_complete" {
                    loaded.fetch_add(1, Ordering::Release);
                }
                let done = message["type"] == "changes"
                    && message["changes"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|c| c["row"]["body"] == "the end");
                if done {
                    return (k, replica);
                }
            }
        }));
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while loaded.load(Ordering::Acquire) < SUBSCRIBERS {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the loads did not complete"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let at_last_load = written.load(Ordering::Acquire);
    while written.load(Ordering::Acquire) < at_last_load + 50 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    stop.store(true, Ordering::Release);
    writer.await.unwrap();
    let last = server.write(vec![insert(1, "the end")]).await;
    let room_1 = final_rows(&server, Some(1)).await;
    let all = final_rows(&server, None).await;
    let mut boundaries = Vec::new();
    for subscriber in subscribers {
        let (k, replica) = tokio::time::timeout(WAIT, subscriber)
            .await
            .expect("in time")
            .unwrap();
        assert_eq!(
            replica.last_seq, last,
            "subscriber {k} reached the last commit"
        );
        let expected = if k == SUBSCRIBERS - 1 { &all } else { &room_1 };
        assert_eq!(&replica.rows, expected, "subscriber {k} matches SQLite");
        boundaries.push(replica.boundary.unwrap());
    }
    // The loads started at different commits, all during the write stream.
    boundaries.dedup();
    assert!(boundaries.len() > 1, "boundaries: {boundaries:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_enter_and_leave_the_result() {
    let server = start(|_| {}).await;
    let mut client = Client::signed_in(&server.url(), "bob-token").await;
    client
        .subscribe(json!({"sql": "SELECT id, room, body FROM messages WHERE room = 1"}))
        .await;
    let seq_insert_elsewhere = server.write(vec![insert(2, "elsewhere")]).await;
    let id = 1;
    let enter = server
        .write(vec![
            json!({"op": "update", "table": "messages", "id": id, "values": {"room": 1}}),
        ])
        .await;
    let change = server
        .write(vec![
            json!({"op": "update", "table": "messages", "id": id, "values": {"body": "edited"}}),
        ])
        .await;
    let leave = server.write(vec![json!({"op": "update", "table": "messages", "id": id, "values": {"room": 3, "body": "gone"}})]).await;
    let sentinel = server.write(vec![insert(1, "sentinel")]).await;
    let received: Vec<Value> = client
        .recv_until(|m| m["type"] == "changes" && m["seq"] == json!(sentinel))
        .await
        .into_iter()
        .filter(|m| m["type"] == "changes")
        .collect();
    assert!(seq_insert_elsewhere < enter);
    let summary: Vec<(u64, String, Value)> = received
        .iter()
        .flat_map(|m| {
            changes_of(m)
                .into_iter()
                .map(move |(op, row)| (m["seq"].as_u64().unwrap(), op, row))
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                enter,
                "insert".into(),
                json!({"id": 1, "room": 1, "body": "elsewhere"})
            ),
            (
                change,
                "update".into(),
                json!({"id": 1, "room": 1, "body": "edited"})
            ),
            // Leaving is a delete carrying the row as the subscriber last saw it.
            (
                leave,
                "delete".into(),
                json!({"id": 1, "room": 1, "body": "edited"})
            ),
            (
                sentinel,
                "insert".into(),
                json!({"id": 2, "room": 1, "body": "sentinel"})
            ),
        ]
    );
    let update = &received[1]["changes"][0];
    assert_eq!(
        update["old"],
        json!({"id": 1, "room": 1, "body": "elsewhere"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_replays_missed_commits_or_answers_unavailable_past_the_history() {
    let server = start(|config| config.history_limit = 20).await;
    server.write(vec![insert(1, "before")]).await;
    let mut client = Client::signed_in(&server.url(), "alice-token").await;
    client
        .subscribe(json!({"sql": "SELECT * FROM messages WHERE room = 1", "initial_load": true}))
        .await;
    let seen = client.recv_until(|m| m["type"] == "load_complete").await;
    let last_seen = seen.last().unwrap()["boundary"].as_u64().unwrap();
    drop(client);

    // Missed while away: an insert, an update, one in another room, a delete.
    let a = server.write(vec![insert(1, "missed a")]).await;
    let b = server
        .write(vec![
            json!({"op": "update", "table": "messages", "id": 1, "values": {"body": "changed"}}),
        ])
        .await;
    server.write(vec![insert(2, "other room")]).await;
    let c = server
        .write(vec![json!({"op": "delete", "table": "messages", "id": 2})])
        .await;

    let mut client = Client::signed_in(&server.url(), "alice-token").await;
    client
        .subscribe(json!({"sql": "SELECT id, body FROM messages WHERE room = 1", "resume_from": last_seen}))
        .await;
    // The missed commits stream first, in order, then load_complete, then live ones
    // (buffered behind the gate meanwhile).
    let live = server.write(vec![insert(1, "live")]).await;
    // `live` arrives either replayed (the server read its history after the commit) ahead
    // of load_complete, or live behind the gate after it: once either way.
    let mut replayed = client
        .recv_until(|m| m["type"] == "load_complete" || m["seq"] == json!(live))
        .await;
    let complete = replayed.iter().position(|m| m["type"] == "load_complete");
    let live_seen = replayed.iter().any(|m| m["seq"] == json!(live));
    if complete.is_none() || !live_seen {
        let wanted = if complete.is_none() {
            "load_complete"
        } else {
            "changes"
        };
        replayed.extend(
            client
                .recv_until(|m| {
                    m["type"] == wanted && (wanted == "load_complete" || m["seq"] == json!(live))
                })
                .await,
        );
    }
    let complete = replayed
        .iter()
        .position(|m| m["type"] == "load_complete")
        .unwrap_or_else(|| panic!("load_complete arrives: {replayed:?}"));
    assert!(replayed[..complete]
        .iter()
        .all(|m| m["type"] == "changes" && m["seq"].as_u64().unwrap() <= live));
    assert!(replayed[complete + 1..]
        .iter()
        .all(|m| m["seq"] == json!(live)));
    let changes: Vec<(u64, String, Value)> = replayed
        .iter()
        .flat_map(|m| {
            changes_of(m)
                .into_iter()
                .map(move |(op, row)| (m["seq"].as_u64().unwrap_or(0), op, row))
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            (a, "insert".into(), json!({"id": 2, "body": "missed a"})),
            (b, "update".into(), json!({"id": 1, "body": "changed"})),
            (c, "delete".into(), json!({"id": 2, "body": "missed a"})),
            (live, "insert".into(), json!({"id": 4, "body": "live"})),
        ]
    );

    // Past the history (20 commits), and beyond the last commit: resume_unavailable.
    for i in 0..25 {
        server.write(vec![insert(3, &format!("filler {i}"))]).await;
    }
    for resume_from in [last_seen, live + 1000] {
        let mut late = Client::signed_in(&server.url(), "alice-token").await;
        let id = late
            .subscribe(
                json!({"sql": "SELECT * FROM messages WHERE room = 1", "resume_from": resume_from}),
            )
            .await;
        let reply = late.recv().await;
        assert_eq!(reply["type"], "resume_unavailable", "{reply}");
        assert_eq!(reply["live_query_id"], json!(id));
    }
    // A resume from within the history still works after trimming.
    let mut recent = Client::signed_in(&server.url(), "alice-token").await;
    recent
        .subscribe(
            json!({"sql": "SELECT * FROM messages WHERE room = 3", "resume_from": live + 20}),
        )
        .await;
    let marker = server.write(vec![insert(3, "marker")]).await;
    let replayed = recent
        .recv_until(|m| m["type"] == "changes" && m["seq"] == json!(marker))
        .await;
    let seqs: Vec<u64> = replayed.iter().filter_map(|m| m["seq"].as_u64()).collect();
    assert_eq!(seqs, ((live + 21)..=(live + 26)).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_gets_a_gap_notice_while_others_keep_up() {
    let server = start(|config| {
        config.manager.notification_channel_capacity = 16;
        config.send_timeout = Duration::from_secs(120);
    })
    .await;
    let url = server.url();
    let mut stalled = Client::signed_in(&url, "alice-token").await;
    stalled
        .subscribe(json!({"sql": "SELECT id, body FROM messages WHERE room = 1"}))
        .await;
    let mut readers = Vec::new();
    let mut progress = Vec::new();
    for _ in 0..3 {
        let mut client = Client::signed_in(&url, "bob-token").await;
        client
            .subscribe(json!({"sql": "SELECT id, room FROM messages WHERE room = 1"}))
            .await;
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        progress.push(seen.clone());
        readers.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            loop {
                let message = client.recv().await;
                assert_ne!(message["type"], "gap", "a reading client got a gap");
                if message["type"] == "changes" {
                    let seq = message["seq"].as_u64().unwrap();
                    seqs.push(seq);
                    seen.store(seq, std::sync::atomic::Ordering::Release);
                    if message["changes"].as_array().unwrap().len() == 2 {
                        return seqs;
                    }
                }
            }
        }));
    }
    // Large rows fill the stalled client's socket buffers, then its livecore channel; the
    // reading clients keep up with every commit meanwhile (the writer waits for them, so
    // only the stalled client can fall behind).
    let body = "x".repeat(64 * 1024);
    let mut written = Vec::new();
    let stats = || server.server().manager().stats();
    for _ in 0..3000 {
        let seq = server.write(vec![insert(1, &body)]).await;
        written.push(seq);
        let deadline = tokio::time::Instant::now() + WAIT;
        while progress
            .iter()
            .any(|seen| seen.load(std::sync::atomic::Ordering::Acquire) < seq)
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "a reading client fell behind"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if stats().dropped > 0 {
            break;
        }
    }
    assert!(stats().dropped > 0, "the stalled client's channel filled");
    // A few more while it is full, so the gap has a length.
    for _ in 0..3 {
        written.push(server.write(vec![insert(1, "small")]).await);
    }
    // The end marker for the readers: a commit of two rows.
    written.push(server.write(vec![insert(1, "end"), insert(1, "end")]).await);
    for reader in readers {
        let seqs = tokio::time::timeout(WAIT, reader)
            .await
            .expect("in time")
            .unwrap();
        assert_eq!(seqs, written, "a reading client got every commit, in order");
    }
    // The stalled client reads again: what was queued, with a gap notice wherever the
    // stream broke, carrying the last commit it got before and how many it missed. Every
    // commit is either delivered or counted as missed.
    let (mut got, mut missed, mut gaps) = (Vec::<u64>::new(), 0u64, 0);
    while got.len() as u64 + missed < written.len() as u64 {
        let message = stalled.recv().await;
        match message["type"].as_str().unwrap() {
            "changes" => got.push(message["seq"].as_u64().unwrap()),
            "gap" => {
                gaps += 1;
                assert_eq!(
                    message["last_seq"].as_u64(),
                    got.last().copied(),
                    "{message}"
                );
                missed += message["missed"].as_u64().unwrap();
            }
            _ => {}
        }
    }
    assert!(gaps >= 1 && missed >= 1);
    assert_eq!(got.len() as u64 + missed, written.len() as u64);
    assert!(
        got.windows(2).all(|pair| pair[0] < pair[1]),
        "in order: {got:?}"
    );
    assert!(got.iter().all(|seq| written.contains(seq)));
    // With room again, it is live: the next commit arrives.
    let after = server.write(vec![insert(1, "after")]).await;
    let next = stalled.recv_until(|m| m["type"] == "changes").await;
    assert_eq!(next.last().unwrap()["seq"], json!(after));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_disconnect_policy_a_client_that_stops_reading_is_closed_with_4010() {
    let server = start(|config| {
        config.manager.notification_channel_capacity = 16;
        config.manager.slow_consumer_policy = livecore::SlowConsumerPolicy::Disconnect;
        config.send_timeout = Duration::from_secs(120);
    })
    .await;
    let url = server.url();
    let mut stalled = Client::signed_in(&url, "alice-token").await;
    stalled
        .subscribe(json!({"sql": "SELECT id, body FROM messages WHERE room = 1"}))
        .await;
    let mut readers = Vec::new();
    let mut progress = Vec::new();
    for _ in 0..3 {
        let mut client = Client::signed_in(&url, "bob-token").await;
        client
            .subscribe(json!({"sql": "SELECT id, room FROM messages WHERE room = 1"}))
            .await;
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        progress.push(seen.clone());
        readers.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            loop {
                let message = client.recv().await;
                assert_ne!(message["type"], "gap", "a reading client got a gap");
                if message["type"] == "changes" {
                    let seq = message["seq"].as_u64().unwrap();
                    seqs.push(seq);
                    seen.store(seq, std::sync::atomic::Ordering::Release);
                    if message["changes"].as_array().unwrap().len() == 2 {
                        return (seqs, client);
                    }
                }
            }
        }));
    }
    // As in the gap test: large rows fill the stalled client's socket buffers, then its
    // livecore channel, while the readers keep up with every commit.
    let body = "x".repeat(64 * 1024);
    let mut written = Vec::new();
    let stats = || server.server().manager().stats();
    for _ in 0..3000 {
        let seq = server.write(vec![insert(1, &body)]).await;
        written.push(seq);
        let deadline = tokio::time::Instant::now() + WAIT;
        while progress
            .iter()
            .any(|seen| seen.load(std::sync::atomic::Ordering::Acquire) < seq)
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "a reading client fell behind"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        if stats().dropped > 0 {
            break;
        }
    }
    assert!(stats().dropped > 0, "the stalled client's channel filled");
    // More commits after the disconnect decision: the readers get them all.
    for _ in 0..3 {
        written.push(server.write(vec![insert(1, "small")]).await);
    }
    written.push(server.write(vec![insert(1, "end"), insert(1, "end")]).await);
    let mut clients = Vec::new();
    for reader in readers {
        let (seqs, client) = tokio::time::timeout(WAIT, reader)
            .await
            .expect("in time")
            .unwrap();
        assert_eq!(seqs, written, "a reading client got every commit, in order");
        clients.push(client);
    }
    // The stalled client reads again: what was already on its socket, never a gap notice
    // (this policy disconnects instead), then the close frame with the documented code.
    let mut got = Vec::new();
    let (code, reason) = loop {
        let next = tokio::time::timeout(WAIT, stalled.ws.next())
            .await
            .expect("a close in time");
        match next {
            Some(Ok(Message::Text(text))) => {
                let message: Value = serde_json::from_str(&text).unwrap();
                assert_ne!(message["type"], "gap", "{message}");
                if message["type"] == "changes" {
                    got.push(message["seq"].as_u64().unwrap());
                }
            }
            Some(Ok(Message::Close(Some(frame)))) => {
                break (u16::from(frame.code), frame.reason.to_string())
            }
            Some(Ok(_)) => {}
            other => panic!("no close frame: {other:?}"),
        }
    };
    assert_eq!(
        (code, reason.as_str()),
        (livecore_server::close::SLOW_CONSUMER, "slow consumer")
    );
    assert_eq!(code, 4010);
    // What it got before the close is a gap-free prefix of the commits: nothing after a
    // dropped delivery was sent to it.
    assert!(!got.is_empty());
    assert_eq!(got[..], written[..got.len()], "a prefix, in order");
    assert!(got.len() < written.len());
    // The server forgot it; the readers are still connected and live.
    let deadline = tokio::time::Instant::now() + WAIT;
    while stats().connections != 3 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", stats());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let after = server.write(vec![insert(1, "after")]).await;
    for client in &mut clients {
        let next = client.recv_until(|m| m["type"] == "changes").await;
        assert_eq!(next.last().unwrap()["seq"], json!(after));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_authenticates_is_closed_and_others_stay() {
    let server = start(|config| {
        config.manager.auth_timeout = Duration::from_millis(300);
    })
    .await;
    let mut active = Client::signed_in(&server.url(), "alice-token").await;
    let mut silent = Client::connect(&server.url()).await;
    let (code, reason) = silent.expect_close().await;
    assert_eq!((code, reason.as_str()), (4008, "authentication timeout"));
    active.send(json!({"type": "ping", "id": 1})).await;
    assert_eq!(active.recv().await, json!({"type": "pong", "id": 1}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_answering_pings_times_out() {
    let server = start(|config| {
        config.manager.ping_interval = Duration::from_millis(100);
        config.manager.heartbeat_timeout = Duration::from_millis(600);
    })
    .await;
    let mut quiet = Client::signed_in(&server.url(), "alice-token").await;
    let mut lively = Client::signed_in(&server.url(), "bob-token").await;
    // The lively client keeps reading (tungstenite answers each ping with a pong); the
    // quiet one reads nothing, so it answers nothing, until the server has let it go.
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let lively_task = tokio::spawn(async move {
        let mut pings = 0;
        loop {
            tokio::select! {
                _ = &mut stopped => return (lively, pings),
                message = lively.recv() => {
                    if message == json!({"type": "event", "event": "send_ping"}) {
                        pings += 1;
                    }
                }
            }
        }
    });
    let manager = server.server().manager().clone();
    let deadline = tokio::time::Instant::now() + WAIT;
    while manager.connection_count() > 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the quiet client was never let go"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (code, reason) = quiet.expect_close().await;
    assert_eq!((code, reason.as_str()), (4009, "heartbeat timeout"));
    stop.send(()).unwrap();
    let (mut lively, pings) = tokio::time::timeout(WAIT, lively_task)
        .await
        .expect("in time")
        .unwrap();
    // It outlived the quiet one by answering pings, and is still served.
    assert!(pings >= 3, "pings: {pings}");
    lively.send(json!({"type": "ping", "id": 2})).await;
    let pong = lively.recv_until(|m| m["type"] == "pong").await;
    assert_eq!(pong.last().unwrap()["id"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_clients_each_get_exactly_their_filtered_rows() {
    const CLIENTS: usize = 1000;
    const ROOMS: i64 = 50;
    const COMMITS: usize = 20;
    // A last commit touching every room, written after the others: livecore delivers in
    // commit order, so anything extra (a repeat, a stray change) would reach a client
    // before it. Each client reads up to and including it.
    const SENTINEL: u64 = COMMITS as u64 + 1;
    let server = start(|config| {
        config.limits.max_connections_per_address = CLIENTS + 10;
    })
    .await;
    let url = server.url();
    let mut clients = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        let mut client = Client::signed_in(
            &url,
            if i % 2 == 0 {
                "alice-token"
            } else {
                "bob-token"
            },
        )
        .await;
        let room = i as i64 % ROOMS;
        client
            .subscribe(
                json!({"sql": format!("SELECT id, room, body FROM messages WHERE room = {room}")}),
            )
            .await;
        clients.push((room, client));
    }
    let readers: Vec<_> = clients
        .into_iter()
        .map(|(room, mut client)| {
            tokio::spawn(async move {
                let mut got = Vec::with_capacity(COMMITS + 1);
                while got.last() != Some(&SENTINEL) {
                    let message = client.recv().await;
                    match message["type"].as_str() {
                        Some("changes") => {}
                        // Heartbeat events; anything else (a gap, a closing) is a failure.
                        Some("event") => continue,
                        _ => panic!("room {room}: unexpected {message}"),
                    }
                    let changes = changes_of(&message);
                    assert_eq!(
                        changes.len(),
                        1,
                        "one row of the commit matches room {room}"
                    );
                    assert_eq!(changes[0].0, "insert");
                    assert_eq!(changes[0].1["room"], json!(room));
                    let seq = message["seq"].as_u64().unwrap();
                    assert_eq!(changes[0].1["body"], json!(format!("{seq}/{room}")));
                    got.push(seq);
                }
                got
            })
        })
        .collect();
    let mut seqs = Vec::with_capacity(COMMITS + 1);
    for commit in 0..=COMMITS {
        // The next SeqId is known: one writer, commits numbered from 1.
        let seq = commit as u64 + 1;
        let ops = (0..ROOMS)
            .map(|room| insert(room, &format!("{seq}/{room}")))
            .collect();
        assert_eq!(server.write(ops).await, seq);
        seqs.push(seq);
    }
    assert_eq!(seqs.last(), Some(&SENTINEL));
    for reader in readers {
        let got = tokio::time::timeout(WAIT, reader)
            .await
            .expect("in time")
            .unwrap();
        // Every commit once, in order, and nothing else before the sentinel.
        assert_eq!(got, seqs);
    }
    let stats = server.server().manager().stats();
    assert_eq!(stats.dropped, 0);
    assert_eq!(stats.delivered, (CLIENTS * (COMMITS + 1)) as u64);
}
