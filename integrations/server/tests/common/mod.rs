//! Shared test helpers: a server on a loopback port with its own database file, and a
//! WebSocket client (tokio-tungstenite) that waits on conditions with a bound.
#![allow(dead_code)]

pub mod devtools;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use livecore_server::{Identity, RunningServer, ServerConfig, WriteOp};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The bound on every wait in the tests: generous, since CI machines are shared.
pub const WAIT: Duration = Duration::from_secs(30);

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory for one server's database, removed when the test server drops.
pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "livecore-server-test-{}-{}",
        std::process::id(),
        NEXT_DIR.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

pub struct TestServer {
    pub server: Option<RunningServer>,
    pub dir: PathBuf,
}

impl TestServer {
    pub fn addr(&self) -> std::net::SocketAddr {
        self.server().addr()
    }

    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().expect("running")
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ws", self.addr())
    }

    /// Writes as alice, in-process (the same path as the WebSocket write endpoint).
    pub async fn write(&self, ops: Vec<Value>) -> u64 {
        self.write_as("alice", ops).await
    }

    pub async fn write_as(&self, user: &str, ops: Vec<Value>) -> u64 {
        let ops: Vec<WriteOp> = ops
            .into_iter()
            .map(|op| serde_json::from_value(op).expect("a valid op"))
            .collect();
        let identity = Identity {
            user: user.into(),
            role: None,
        };
        self.server()
            .write(&identity, ops)
            .await
            .expect("write")
            .seq
            .0
    }

    pub async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts a demo server on 127.0.0.1:0 after `configure` adjusted its configuration.
pub async fn start(configure: impl FnOnce(&mut ServerConfig)) -> TestServer {
    let dir = temp_dir();
    let mut config = ServerConfig::demo("127.0.0.1:0".parse().unwrap(), dir.join("live.db"));
    config.check_interval = Duration::from_millis(50);
    configure(&mut config);
    let server = RunningServer::start(config).await.expect("server starts");
    TestServer {
        server: Some(server),
        dir,
    }
}

pub fn insert(room: i64, body: &str) -> Value {
    json!({"op": "insert", "table": "messages", "values": {"room": room, "author": "t", "body": body}})
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub struct Client {
    pub ws: Ws,
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect in time")
            .expect("connect");
        Client { ws }
    }

    /// Connects with an `Origin` header, as a browser would.
    pub async fn connect_from(
        url: &str,
        origin: &str,
    ) -> Result<Client, tokio_tungstenite::tungstenite::Error> {
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Origin", origin.parse().unwrap());
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("connect in time")?;
        Ok(Client { ws })
    }

    /// Connects and authenticates.
    pub async fn signed_in(url: &str, token: &str) -> Client {
        let mut client = Client::connect(url).await;
        let reply = client.auth(token).await;
        assert_eq!(reply["type"], "authenticated", "{reply}");
        client
    }

    pub async fn send(&mut self, message: Value) {
        self.ws
            .send(Message::text(message.to_string()))
            .await
            .expect("send");
    }

    /// The next JSON text message (pings and pongs skipped); panics on a close or timeout.
    pub async fn recv(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a message in time")
                .expect("the stream open")
                .expect("no error");
            match message {
                Message::Text(text) => return serde_json::from_str(&text).expect("JSON"),
                Message::Close(frame) => panic!("closed: {frame:?}"),
                _ => {}
            }
        }
    }

    /// Reads until a message satisfies `done`; returns every message read, that one last.
    pub async fn recv_until(&mut self, mut done: impl FnMut(&Value) -> bool) -> Vec<Value> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "not seen in time; read: {seen:?}"
            );
            let message = self.recv().await;
            let stop = done(&message);
            seen.push(message);
            if stop {
                return seen;
            }
        }
    }

    pub async fn auth(&mut self, token: &str) -> Value {
        self.send(json!({"type": "auth", "token": token})).await;
        self.recv().await
    }

    /// Subscribes and returns the live query id from the `subscribed` reply.
    pub async fn subscribe(&mut self, request: Value) -> String {
        let mut request = request;
        request["type"] = json!("subscribe");
        self.send(request).await;
        let reply = self
            .recv_until(|message| message["type"] == "subscribed" || message["type"] == "error")
            .await
            .pop()
            .unwrap();
        assert_eq!(reply["type"], "subscribed", "{reply}");
        reply["live_query_id"].as_str().unwrap().to_string()
    }

    /// Reads until the server's close frame; returns its code and reason.
    pub async fn expect_close(&mut self) -> (u16, String) {
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a close in time");
            match next {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (u16::from(frame.code), frame.reason.to_string())
                }
                Some(Ok(Message::Close(None))) => {
                    return (u16::from(CloseCode::Status), String::new())
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => panic!("error before the close frame: {error}"),
                None => panic!("stream ended without a close frame"),
            }
        }
    }
}

/// The answers (`written` or `error`) to `count` writes, in order; other messages are
/// skipped.
pub async fn write_answers(client: &mut Client, count: usize) -> Vec<Value> {
    let mut answers = Vec::new();
    while answers.len() < count {
        let message = client.recv().await;
        if message["type"] == "written" || message["type"] == "error" {
            answers.push(message);
        }
    }
    answers
}

/// The rows of a snapshot or change message, as (op, row) pairs.
pub fn changes_of(message: &Value) -> Vec<(String, Value)> {
    match message["type"].as_str() {
        Some("snapshot") => message["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| ("snapshot".to_string(), row.clone()))
            .collect(),
        Some("changes") => message["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|change| {
                (
                    change["op"].as_str().unwrap().to_string(),
                    change["row"].clone(),
                )
            })
            .collect(),
        _ => Vec::new(),
    }
}
