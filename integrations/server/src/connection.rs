//! One task per WebSocket: it reads the client's messages, drains the connection's livecore
//! receivers with `recv_async` and writes to the socket. tokio's runtime runs these tasks on
//! one worker thread per core, so a few threads serve every connection; a client that stops
//! reading stalls only its own task (its channel fills and livecore drops with a gap notice,
//! or disconnects it, by configuration).
//!
//! Initial loads and resumes run on the blocking pool (SQLite reads), beside the task, which
//! keeps draining so `push_snapshot_rows` always finds room eventually.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::SinkExt;
use livecore::{
    ConnectionEvent, ConnectionId, LiveError, LiveQueryId, Notification, SeqId,
    SubscriptionOptions, UserId,
};
use serde_json::{json, Value as Json};
use tokio::sync::{mpsc, oneshot};

use crate::auth::{AuthError, Identity};
use crate::db::{integer_json, RowsOf};
use crate::protocol::{self, close, ClientMessage};
use crate::{AddressSlot, Shared};

/// Most notifications written to the socket before one flush.
const SEND_BATCH: usize = 64;
/// Past this many bytes rendered, a batch is flushed without taking more notifications.
/// Notifications are rendered one at a time and handed to the WebSocket layer at once, so
/// a connection holds at most one rendered notification besides the layer's write buffer.
const SEND_BATCH_BYTES: usize = 256 * 1024;
/// How often a connection's heartbeat is recorded in livecore at most.
const HEARTBEAT_EVERY: Duration = Duration::from_millis(500);
/// How long to wait for the client's answer to our close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// A token bucket: `rate` messages a second, bursts up to `burst`.
struct RateLimit {
    tokens: f64,
    rate: f64,
    burst: f64,
    at: Instant,
}

impl RateLimit {
    fn new(rate: u32, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            tokens: burst,
            rate: f64::from(rate),
            burst,
            at: Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

enum Step {
    Continue,
    Close(u16, &'static str),
    /// The client sent its close frame: the reply the WebSocket layer queued goes out.
    ClosedByClient,
    Gone,
}

struct Session {
    shared: Arc<Shared>,
    connection_id: ConnectionId,
    identity: Option<Identity>,
    /// This connection's live queries by their text id: a client can only name its own.
    subscriptions: HashMap<String, LiveQueryId>,
    rate: RateLimit,
    last_heartbeat: Instant,
    /// Replies produced off the task (writes, failed loads).
    outbox: mpsc::UnboundedSender<String>,
    /// Fires once the latest write's answer is in the outbox.
    last_write_answered: Option<oneshot::Receiver<()>>,
    /// This connection's queue at the writer.
    writer_source: u64,
    /// Initial loads and resumes of this connection running at once.
    loads: Arc<tokio::sync::Semaphore>,
    /// Each running load's place among them, held until its end (`load_complete`,
    /// `resume_unavailable`, ...) is written to the socket: its rows wait in the
    /// connection's channel until then.
    load_places: LoadPlaces,
    /// Loads still waiting for a place: an unsubscribe cancels them.
    waiting_loads: WaitingLoads,
}

/// The tasks of a connection's loads that still wait for a place among its
/// `max_loads_per_connection`. An unsubscribe cancels its load's task while it waits:
/// otherwise a client keeping its places busy (a load it reads slowly) could subscribe and
/// unsubscribe without end, each round leaving a task (and the request's id) queued for
/// as long as the connection lives.
#[derive(Clone, Default)]
struct WaitingLoads(Arc<std::sync::Mutex<HashMap<LiveQueryId, tokio::task::AbortHandle>>>);

impl WaitingLoads {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<LiveQueryId, tokio::task::AbortHandle>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Spawns `load` as `live_query_id`'s waiting load. It must call
    /// [`turn_came`](Self::turn_came) once it holds its place.
    fn spawn(
        &self,
        live_query_id: LiveQueryId,
        load: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        // Under the lock, so the task cannot report its turn before it is listed.
        let mut waiting = self.lock();
        let task = tokio::spawn(load);
        waiting.insert(live_query_id, task.abort_handle());
    }

    /// The load got its place: an unsubscribe from now on retires the place instead.
    /// False when it was cancelled meanwhile (its task may run on until its next await):
    /// it must give the place back at once and not start, since nothing would retire it.
    #[must_use]
    fn turn_came(&self, live_query_id: LiveQueryId) -> bool {
        self.lock().remove(&live_query_id).is_some()
    }

    /// Cancels the load of `live_query_id` if it still waits for a place (the live query
    /// ended: unsubscribed, or ended by livecore).
    fn cancel(&self, live_query_id: LiveQueryId) {
        let task = self.lock().remove(&live_query_id);
        if let Some(task) = task {
            task.abort();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

type LoadPlaces = Arc<std::sync::Mutex<HashMap<LiveQueryId, Place>>>;

/// A load's place among the connection's `max_loads_per_connection`.
struct Place {
    _permit: tokio::sync::OwnedSemaphorePermit,
    /// The load is still running on the blocking pool (reading SQLite, pushing rows).
    reading: bool,
    /// The client unsubscribed while it was reading: the place goes when the reading ends.
    retired: bool,
}

fn free_place(places: &LoadPlaces, live_query_id: LiveQueryId) {
    places
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&live_query_id);
}

/// The client ended the live query: its place is freed, unless its load is still reading
/// (an unsubscribe does not stop a read under way), in which case the load's end frees it.
/// Otherwise unsubscribing would let one connection keep any number of whole-table reads
/// running, each subscribe-and-unsubscribe starting another.
fn retire_place(places: &LoadPlaces, live_query_id: LiveQueryId) {
    let mut places = places.lock().unwrap_or_else(|e| e.into_inner());
    match places.get_mut(&live_query_id) {
        Some(place) if place.reading => place.retired = true,
        Some(_) => {
            places.remove(&live_query_id);
        }
        None => {}
    }
}

/// The load's blocking part ended: a retired place goes now, any other stays until its end
/// marker is written to the socket.
fn done_reading(places: &LoadPlaces, live_query_id: LiveQueryId) {
    let mut places = places.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(place) = places.get_mut(&live_query_id) {
        if place.retired {
            places.remove(&live_query_id);
        } else {
            place.reading = false;
        }
    }
}

/// Serves one upgraded WebSocket until it closes.
pub(crate) async fn serve(shared: Arc<Shared>, mut socket: WebSocket, slot: Option<AddressSlot>) {
    let Some(_slot) = slot else {
        close_socket(
            &mut socket,
            close::TOO_MANY_CONNECTIONS,
            "too many connections from this address",
        )
        .await;
        return;
    };
    let registration = match shared.manager.register_connection() {
        Ok(registration) => registration,
        Err(LiveError::ShuttingDown) => {
            close_socket(&mut socket, close::GOING_AWAY, "server shutting down").await;
            return;
        }
        Err(_) => {
            close_socket(&mut socket, close::SERVER_FULL, "server full").await;
            return;
        }
    };
    let connection_id = registration.connection_id;
    let mut notifications = registration.notifications;
    let mut events = registration.events;
    let (outbox, mut outbox_rx) = mpsc::unbounded_channel();
    let limits = &shared.config.limits;
    let mut session = Session {
        rate: RateLimit::new(limits.messages_per_second, limits.message_burst),
        shared: shared.clone(),
        connection_id,
        identity: None,
        subscriptions: HashMap::new(),
        last_heartbeat: Instant::now(),
        outbox,
        last_write_answered: None,
        writer_source: shared
            .next_writer_source
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        loads: Arc::new(tokio::sync::Semaphore::new(
            limits.max_loads_per_connection.max(1),
        )),
        load_places: LoadPlaces::default(),
        waiting_loads: WaitingLoads::default(),
    };
    let send_timeout = shared.config.send_timeout;
    let ending = loop {
        tokio::select! {
            biased;
            event = events.recv_async() => match event {
                Ok(ConnectionEvent::SendPing) => {
                    let ping = [
                        Message::Ping(Default::default()),
                        Message::text(ConnectionEvent::SendPing.to_json()),
                    ];
                    if send_all(&mut socket, ping, send_timeout).await.is_err() {
                        break Step::Gone;
                    }
                }
                Ok(ConnectionEvent::AuthTimeout) => break Step::Close(close::AUTH_TIMEOUT, "authentication timeout"),
                Ok(ConnectionEvent::HeartbeatTimeout) => break Step::Close(close::HEARTBEAT_TIMEOUT, "heartbeat timeout"),
                Ok(ConnectionEvent::SlowConsumer) => break Step::Close(close::SLOW_CONSUMER, "slow consumer"),
                Ok(ConnectionEvent::Shutdown) | Err(_) => break Step::Close(close::GOING_AWAY, "server shutting down"),
            },
            message = socket.recv() => match message {
                None => break Step::Gone,
                Some(Err(error)) => break read_failure(error),
                Some(Ok(message)) => match session.on_message(message).await {
                    Step::Continue => {}
                    ending => break ending,
                },
            },
            Some(text) = outbox_rx.recv() => {
                if send_all(&mut socket, [Message::text(text)], send_timeout).await.is_err() {
                    break Step::Gone;
                }
            }
            notification = notifications.recv_async() => match notification {
                Ok(first) => {
                    // Rendered one at a time and fed to the WebSocket layer (which writes
                    // out what it gathers past its buffer), flushed once per batch.
                    let write = async {
                        let (mut next, mut count, mut bytes) = (Some(first), 0, 0);
                        while let Some(notification) = next.take() {
                            let text = session.render(notification);
                            bytes += text.len();
                            count += 1;
                            socket.feed(Message::text(text)).await?;
                            if count < SEND_BATCH && bytes < SEND_BATCH_BYTES {
                                next = notifications.try_recv().ok();
                            }
                        }
                        socket.flush().await
                    };
                    if !matches!(tokio::time::timeout(send_timeout, write).await, Ok(Ok(()))) {
                        break Step::Gone;
                    }
                }
                Err(_) => break Step::Close(close::GOING_AWAY, "server shutting down"),
            },
        }
    };
    let closing = match ending {
        Step::Close(code, reason) => {
            // Replies to what was accepted before the refusal go out first.
            let mut replies = Vec::new();
            while let Ok(text) = outbox_rx.try_recv() {
                replies.push(Message::text(text));
            }
            let _ = send_all(&mut socket, replies, CLOSE_WAIT).await;
            send_close(&mut socket, code, reason).await
        }
        Step::ClosedByClient => {
            // The WebSocket layer queued the close reply RFC 6455 asks for; without a
            // flush it would be dropped with the socket (the client then sees a reset).
            let _ = tokio::time::timeout(CLOSE_WAIT, socket.flush()).await;
            false
        }
        _ => false,
    };
    // Loads still waiting for their turn give up.
    session.loads.close();
    // Unregistered once the close frame is out: livecore forgets the connection (and a
    // shutdown stops waiting for it) while the client answers.
    let _ = shared.manager.unregister_connection(connection_id);
    if closing {
        await_close_reply(&mut socket).await;
    }
}

/// Writes every message then flushes once; a socket that cannot take them within the send
/// timeout (a client that stopped reading) is given up.
async fn send_all(
    socket: &mut WebSocket,
    messages: impl IntoIterator<Item = Message>,
    timeout: Duration,
) -> Result<(), ()> {
    let write = async {
        for message in messages {
            socket.feed(message).await?;
        }
        socket.flush().await
    };
    match tokio::time::timeout(timeout, write).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

/// Sends a close frame with a reason, then reads until the client answers (or a bound),
/// so the reason reaches it before the TCP connection goes.
async fn close_socket(socket: &mut WebSocket, code: u16, reason: &'static str) {
    if send_close(socket, code, reason).await {
        await_close_reply(socket).await;
    }
}

/// Sends a close frame; false when the socket would not take it.
async fn send_close(socket: &mut WebSocket, code: u16, reason: &'static str) -> bool {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    send_all(socket, [frame], CLOSE_WAIT).await.is_ok()
}

/// Reads (and drops) what the client still sends until its close frame, within a bound:
/// closing the TCP connection with unread data would reset it and could lose our frame.
async fn await_close_reply(socket: &mut WebSocket) {
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(message)) = socket.recv().await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// How the connection ends after a frame could not be read: a close frame with the
/// RFC 6455 code for an oversized message or a text frame that is not UTF-8; otherwise
/// (the transport failed) nothing more can be sent.
fn read_failure(error: axum::Error) -> Step {
    match error
        .into_inner()
        .downcast::<tungstenite::Error>()
        .map(|error| *error)
    {
        Ok(tungstenite::Error::Capacity(_)) => Step::Close(close::TOO_BIG, "message too big"),
        Ok(tungstenite::Error::Utf8(_)) => {
            Step::Close(close::INVALID_TEXT, "text frame is not valid UTF-8")
        }
        // The WebSocket layer reports the violation without closing: the connection can
        // still carry our close frame (RFC 6455 asks for 1002). A reset is not a violation
        // to answer: the peer is gone.
        Ok(tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake
            | tungstenite::error::ProtocolError::ReceivedAfterClosing
            | tungstenite::error::ProtocolError::SendAfterClosing,
        )) => Step::Gone,
        Ok(tungstenite::Error::Protocol(_)) => {
            Step::Close(close::PROTOCOL_ERROR, "WebSocket protocol error")
        }
        _ => Step::Gone,
    }
}

impl Session {
    /// A notification as the client gets it; forgets live queries livecore ended.
    fn render(&mut self, notification: Notification) -> String {
        if matches!(
            notification,
            Notification::InitialLoadComplete { .. }
                | Notification::ResyncRequired { .. }
                | Notification::ResumeUnavailable { .. }
                | Notification::Closed { .. }
        ) {
            // Retired, not freed: a load livecore ended (a gate overflow, a revocation, a
            // schema change) may still be reading; its place goes when the read ends.
            retire_place(&self.load_places, notification.live_query_id());
        }
        if matches!(
            notification,
            Notification::ResyncRequired { .. }
                | Notification::ResumeUnavailable { .. }
                | Notification::Closed { .. }
        ) {
            // Ended: a load of it still waiting for a place will not run.
            self.waiting_loads.cancel(notification.live_query_id());
            self.subscriptions
                .remove(&notification.live_query_id().to_string());
        }
        notification.to_json()
    }

    fn reply(&self, text: String) {
        let _ = self.outbox.send(text);
    }

    async fn on_message(&mut self, message: Message) -> Step {
        if !self.rate.take() {
            return Step::Close(close::RATE_LIMITED, "message rate exceeded");
        }
        // Recorded at most every HEARTBEAT_EVERY (it takes livecore's connection-map lock),
        // and often enough for any heartbeat timeout.
        let every = HEARTBEAT_EVERY.min(self.shared.config.manager.heartbeat_timeout / 4);
        if self.last_heartbeat.elapsed() >= every {
            self.last_heartbeat = Instant::now();
            let _ = self.shared.manager.heartbeat(self.connection_id);
        }
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => {
                return Step::Close(close::UNSUPPORTED_DATA, "binary frames are not supported")
            }
            Message::Ping(_) | Message::Pong(_) => return Step::Continue,
            Message::Close(_) => return Step::ClosedByClient,
        };
        let parsed = serde_json::from_str::<ClientMessage>(text.as_str());
        let Some(identity) = self.identity.clone() else {
            return match parsed {
                Ok(ClientMessage::Auth { id, token }) => self.authenticate(id, &token),
                // An `auth` that cannot be read (a token that is not text, an unknown
                // field): answered like any unreadable request; the connection stays
                // unauthenticated (the auth timeout still runs).
                Err(error) if message_type(text.as_str()).as_deref() == Some("auth") => {
                    let id = request_id(text.as_str());
                    self.reply(protocol::error(
                        id.as_ref(),
                        "bad_message",
                        &error.to_string(),
                    ));
                    Step::Continue
                }
                _ => Step::Close(close::AUTH_REQUIRED, "authenticate first"),
            };
        };
        match parsed {
            Err(error) => {
                // The request's `id`, when the text is a JSON object holding one, so the
                // client can tell which of its requests was refused.
                let id = request_id(text.as_str());
                self.reply(protocol::error(
                    id.as_ref(),
                    "bad_message",
                    &error.to_string(),
                ));
            }
            Ok(ClientMessage::Auth { id, .. }) => {
                self.reply(protocol::error(
                    id.as_ref(),
                    "already_authenticated",
                    "already authenticated",
                ));
            }
            Ok(ClientMessage::Ping { id }) => {
                self.reply(json!({"type": "pong", "id": id}).to_string())
            }
            Ok(ClientMessage::Subscribe {
                id,
                sql,
                initial_load,
                resume_from,
            }) => self.subscribe(identity, id, &sql, initial_load, resume_from),
            Ok(ClientMessage::Unsubscribe { id, live_query_id }) => {
                let result = match self.subscriptions.remove(&live_query_id) {
                    Some(live_query) => {
                        self.waiting_loads.cancel(live_query);
                        retire_place(&self.load_places, live_query);
                        self.shared.manager.unsubscribe(live_query)
                    }
                    None => Err(LiveError::InvalidFilter(String::new())),
                };
                self.reply(match result {
                    Ok(()) => {
                        json!({"type": "unsubscribed", "id": id, "live_query_id": live_query_id})
                            .to_string()
                    }
                    Err(_) => protocol::error(
                        id.as_ref(),
                        "unknown_subscription",
                        "no such live query on this connection",
                    ),
                });
            }
            Ok(ClientMessage::Write { id, ops }) => {
                // Queued here, so a client's writes commit in the order it sent them (an
                // update right behind the insert of its row finds the row); answered off
                // the task, so the loop keeps draining while the writer commits.
                let queued = self
                    .shared
                    .db
                    .queue_write(Some(self.writer_source), &identity, ops);
                // Answered in the order sent, too, a refusal at queueing included: each
                // answer waits for the one before.
                let (answered, next) = oneshot::channel();
                let previous = self.last_write_answered.replace(next);
                let outbox = self.outbox.clone();
                tokio::spawn(async move {
                    let outcome = match queued {
                        Ok(queued) => queued.outcome().await,
                        Err(error) => Err(error),
                    };
                    let reply = match outcome {
                        Ok(outcome) => {
                            let ids: Vec<Json> =
                                outcome.ids.iter().copied().map(integer_json).collect();
                            json!({"type": "written", "id": id, "seq": outcome.seq.0, "ids": ids})
                                .to_string()
                        }
                        Err(error) => {
                            protocol::error(id.as_ref(), error.code(), &error.to_string())
                        }
                    };
                    if let Some(previous) = previous {
                        let _ = previous.await;
                    }
                    let _ = outbox.send(reply);
                    let _ = answered.send(());
                });
            }
        }
        Step::Continue
    }

    fn authenticate(&mut self, id: Option<Json>, token: &str) -> Step {
        let manager = &self.shared.manager;
        let _ = manager.mark_auth_started(self.connection_id);
        let identity = match self.shared.config.verifier.verify(token) {
            Ok(identity) => identity,
            Err(AuthError::Missing) => {
                return Step::Close(close::AUTH_FAILED, "authentication failed: missing token")
            }
            Err(AuthError::Invalid) => {
                return Step::Close(close::AUTH_FAILED, "authentication failed: invalid token")
            }
        };
        if manager
            .authenticate(
                self.connection_id,
                UserId::from(identity.user.as_str()),
                identity.role.clone(),
            )
            .is_err()
        {
            return Step::Close(close::AUTH_FAILED, "authentication failed");
        }
        let mut reply = json!({
            "type": "authenticated",
            "user": identity.user,
            "connection_id": self.connection_id.to_string(),
            "tables": self.shared.tables_json(&identity),
        });
        if let Some(id) = id {
            reply["id"] = id;
        }
        self.reply(reply.to_string());
        self.identity = Some(identity);
        Step::Continue
    }

    fn subscribe(
        &mut self,
        identity: Identity,
        id: Option<Json>,
        sql: &str,
        initial_load: bool,
        resume_from: Option<u64>,
    ) {
        let max_sql = self.shared.config.limits.max_sql_bytes;
        if sql.len() > max_sql {
            let message = format!("subscription SQL is limited to {max_sql} bytes");
            return self.reply(protocol::error(id.as_ref(), "sql_too_long", &message));
        }
        let options = match (initial_load, resume_from) {
            (true, Some(_)) => {
                return self.reply(protocol::error(
                    id.as_ref(),
                    "bad_message",
                    "initial_load and resume_from exclude each other",
                ))
            }
            (true, None) => SubscriptionOptions::with_initial_load(),
            (false, Some(seq)) => SubscriptionOptions::resume_from(SeqId(seq)),
            (false, None) => SubscriptionOptions::default(),
        };
        let manager = self.shared.manager.clone();
        let subscribed = match manager.subscribe_sql(self.connection_id, sql, options) {
            Ok(subscribed) => subscribed,
            Err(error) => {
                let code = protocol::live_error_code(&error);
                return self.reply(protocol::error(id.as_ref(), code, &error.to_string()));
            }
        };
        let live_query_id = subscribed.live_query_id;
        let name = live_query_id.to_string();
        let columns: Vec<&str> = subscribed.columns.iter().map(|name| &**name).collect();
        self.reply(
            json!({"type": "subscribed", "id": id, "live_query_id": name, "columns": columns, "resume_from": resume_from})
                .to_string(),
        );
        self.subscriptions.insert(name, live_query_id);
        if !subscribed.gated {
            return;
        }
        let (shared, outbox) = (self.shared.clone(), self.outbox.clone());
        let (mine, places) = (self.loads.clone(), self.load_places.clone());
        let waiting = self.waiting_loads.clone();
        // At most `max_loads_per_connection` loads of this connection are under way (from
        // their start until the client has been sent their end, so their rows wait in its
        // channel for at most that many) and `max_concurrent_loads` of all read SQLite at
        // once; the others wait their turn, their live changes buffered by livecore's gate.
        self.waiting_loads.clone().spawn(live_query_id, async move {
            let Ok(mine) = mine.acquire_owned().await else {
                return;
            };
            if !waiting.turn_came(live_query_id) {
                return;
            }
            places.lock().unwrap_or_else(|e| e.into_inner()).insert(
                live_query_id,
                Place {
                    _permit: mine,
                    reading: true,
                    retired: false,
                },
            );
            let Ok(any) = shared.loads.clone().acquire_owned().await else {
                free_place(&places, live_query_id);
                return;
            };
            let _ = tokio::task::spawn_blocking(move || {
                let loaded = load(
                    &shared,
                    &outbox,
                    (live_query_id, id),
                    &identity,
                    resume_from,
                    any,
                );
                if loaded {
                    done_reading(&places, live_query_id);
                } else {
                    free_place(&places, live_query_id);
                }
            })
            .await;
        });
    }
}

/// Runs one initial load or resume; a failure is answered `load_failed` and ends the live
/// query. False when it failed (no end marker will come).
///
/// `reading` is its place among the loads reading SQLite: an initial load gives it up once
/// it has read the table (the rows then wait for the client, not the database); a resume
/// holds one only while it reads a batch of the log.
fn load(
    shared: &Shared,
    outbox: &mpsc::UnboundedSender<String>,
    (live_query_id, id): (LiveQueryId, Option<Json>),
    identity: &Identity,
    resume_from: Option<u64>,
    reading: tokio::sync::OwnedSemaphorePermit,
) -> bool {
    let result = match resume_from {
        Some(after) => resume(shared, live_query_id, SeqId(after), reading),
        None => load_snapshot(shared, live_query_id, identity, reading),
    };
    if let Err(error) = result {
        // A live query the client ended meanwhile (or a connection gone) is no error.
        if !matches!(
            error,
            LoadError::Live(
                LiveError::UnknownSubscription(_)
                    | LiveError::UnknownConnection(_)
                    | LiveError::ShuttingDown
            )
        ) {
            let _ = shared.manager.unsubscribe(live_query_id);
            let _ = outbox.send(protocol::error(
                id.as_ref(),
                "load_failed",
                &error.to_string(),
            ));
        }
        return false;
    }
    true
}

/// The `type` of a JSON object's text, when it has a text one.
fn message_type(text: &str) -> Option<String> {
    serde_json::from_str::<Json>(text)
        .ok()?
        .get("type")?
        .as_str()
        .map(str::to_string)
}

/// The request's `id`, when the text is a JSON object holding one, so the client can tell
/// which of its requests was refused.
fn request_id(text: &str) -> Option<Json> {
    serde_json::from_str::<Json>(text)
        .ok()
        .and_then(|mut value| value.get_mut("id").map(Json::take))
}

#[derive(Debug)]
enum LoadError {
    Live(LiveError),
    Database(String),
    /// The table was larger than one load reads (`max_snapshot_bytes`).
    TooLarge(String),
    Stalled,
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Live(error) => write!(f, "{error}"),
            LoadError::Database(error) => write!(f, "database: {error}"),
            LoadError::TooLarge(why) => f.write_str(why),
            LoadError::Stalled => f.write_str("the client did not read its initial load in time"),
        }
    }
}

impl From<LiveError> for LoadError {
    fn from(error: LiveError) -> Self {
        LoadError::Live(error)
    }
}

/// Retries `step` while the connection's channel is full (the task is draining it), up to
/// the send timeout; `step` gets how many items of its input are already done.
fn until_room<T>(
    shared: &Shared,
    mut step: impl FnMut(usize) -> Result<T, LiveError>,
) -> Result<T, LoadError> {
    let deadline = Instant::now() + shared.config.send_timeout;
    let mut done = 0;
    // Backs off to 32 ms while nothing goes in: a try may copy a whole commit (livecore
    // takes it by value), which a client that stopped reading should not cost every
    // millisecond.
    let mut pause = Duration::from_millis(1);
    loop {
        match step(done) {
            Err(LiveError::WouldBlock { consumed }) => {
                done += consumed;
                if Instant::now() >= deadline {
                    return Err(LoadError::Stalled);
                }
                std::thread::sleep(pause);
                pause = if consumed > 0 {
                    Duration::from_millis(1)
                } else {
                    (pause * 2).min(Duration::from_millis(32))
                };
            }
            other => return other.map_err(LoadError::Live),
        }
    }
}

/// The snapshot protocol: the subscription is indexed (subscribe returned), so reading the
/// snapshot's SeqId now and setting it as the boundary gives every commit exactly once:
/// those at or below it are in the rows read in the same SQLite transaction, later ones
/// come through the gate.
fn load_snapshot(
    shared: &Shared,
    live_query_id: LiveQueryId,
    identity: &Identity,
    reading: tokio::sync::OwnedSemaphorePermit,
) -> Result<(), LoadError> {
    let manager = &shared.manager;
    let table = manager.subscription(live_query_id)?.table_id;
    let (boundary, rows) = shared
        .db
        .snapshot_within(
            table.name(),
            RowsOf::User(identity.user.as_str()),
            match shared.config.limits.max_snapshot_bytes {
                0 => usize::MAX,
                max => max,
            },
        )
        .map_err(|error| LoadError::Database(error.to_string()))?
        .map_err(|too_large| LoadError::TooLarge(too_large.to_string()))?;
    drop(reading);
    manager.set_snapshot_boundary(live_query_id, boundary)?;
    until_room(shared, |done| {
        manager.push_snapshot_rows(live_query_id, &rows[done..])
    })?;
    // Never waits for room: a marker that finds the channel full goes out of band.
    manager.complete_initial_load(live_query_id)?;
    Ok(())
}

/// Commits a resume reads from the log at a time, each batch in its own short read
/// transaction.
const REPLAY_BATCH_COMMITS: usize = 64;
/// Log text a resume reads at a time, at most (past a batch's first commit).
const REPLAY_BATCH_BYTES: usize = 1024 * 1024;

/// The resume protocol: replays the commits after `after` from the log (read after
/// subscribe returned, so none is missed), or tells the client its point is gone.
///
/// The log is read a batch at a time, each in a short read transaction under a place among
/// the `max_concurrent_loads`, given back while the batch streams into the client's
/// channel: a resume waiting for its client to read holds neither (a client reading one
/// commit per send timeout held both for as long as it liked, which starved every other
/// load, and the open read kept SQLite from checkpointing its write-ahead log). It reads
/// up to the last commit the log held at its first batch: any later one was committed
/// after subscribe returned, so the gate holds it (a resume chasing the log's head would
/// never end while writes outpace its client). Commits published meanwhile that a batch
/// does read have their live copies dropped at the gate, as at or below what was
/// replayed. A batch that finds the log trimmed past the resume point ends it
/// `resume_unavailable`.
fn resume(
    shared: &Shared,
    live_query_id: LiveQueryId,
    mut after: SeqId,
    reading: tokio::sync::OwnedSemaphorePermit,
) -> Result<(), LoadError> {
    let manager = &shared.manager;
    let namespace = &shared.config.manager.default_namespace;
    let mut reading = Some(reading);
    let mut until = None;
    loop {
        let place = match reading.take() {
            Some(place) => place,
            // On the blocking pool, inside the runtime: waits for a place as the first
            // batch did (a closed semaphore is a shutdown).
            None => tokio::runtime::Handle::current()
                .block_on(shared.loads.clone().acquire_owned())
                .map_err(|_| LoadError::Live(LiveError::ShuttingDown))?,
        };
        let batch = shared
            .db
            .log_after(
                (after, until),
                namespace,
                REPLAY_BATCH_COMMITS,
                REPLAY_BATCH_BYTES,
            )
            .map_err(|error| LoadError::Database(error.to_string()))?;
        drop(place);
        let Ok(batch) = batch else {
            manager.resume_unavailable(live_query_id)?;
            return Ok(());
        };
        until.get_or_insert(batch.last);
        // A full channel is WouldBlock, retried with the same commit once the client has
        // read.
        for (seq, changes) in batch.commits {
            until_room(shared, |_| {
                manager.replay_commit(live_query_id, seq, changes.clone())
            })?;
            after = seq;
        }
        if !batch.more {
            manager.complete_initial_load(live_query_id)?;
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use livecore::{ConnectionId, SubscriptionId};

    /// One place of a connection allowed one, held by a load still reading, and the
    /// semaphore it came from.
    fn reading_load(subscription: u64) -> (Arc<tokio::sync::Semaphore>, LoadPlaces, LiveQueryId) {
        let semaphore = Arc::new(tokio::sync::Semaphore::new(1));
        let places: LoadPlaces = Arc::default();
        let live_query = LiveQueryId::new(ConnectionId(1), SubscriptionId(subscription));
        let place = Place {
            _permit: semaphore.clone().try_acquire_owned().expect("a free place"),
            reading: true,
            retired: false,
        };
        places.lock().unwrap().insert(live_query, place);
        (semaphore, places, live_query)
    }

    #[test]
    fn a_load_unsubscribed_while_reading_keeps_its_place_until_the_reading_ends() {
        let (semaphore, places, live_query) = reading_load(1);
        retire_place(&places, live_query);
        assert_eq!(
            semaphore.available_permits(),
            0,
            "still reading: the place is held"
        );
        done_reading(&places, live_query);
        assert_eq!(semaphore.available_permits(), 1, "read: the place is free");
    }

    #[test]
    fn an_unsubscribe_cancels_a_load_still_waiting_for_its_place() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            // The connection's one place is taken: every load after it waits.
            let places = Arc::new(tokio::sync::Semaphore::new(1));
            let busy = places.clone().try_acquire_owned().unwrap();
            let waiting = WaitingLoads::default();
            let started = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            for subscription in 0..100 {
                let live_query = LiveQueryId::new(ConnectionId(1), SubscriptionId(subscription));
                let (places, waiting_too, started) =
                    (places.clone(), waiting.clone(), started.clone());
                waiting.spawn(live_query, async move {
                    let Ok(_place) = places.acquire_owned().await else {
                        return;
                    };
                    if !waiting_too.turn_came(live_query) {
                        return;
                    }
                    started.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                });
                tokio::task::yield_now().await;
                waiting.cancel(live_query);
            }
            assert_eq!(waiting.len(), 0, "every cancelled load left the list");
            // A load whose turn came is not cancelled by a later unsubscribe.
            let live_query = LiveQueryId::new(ConnectionId(1), SubscriptionId(100));
            let (waiting_too, started_too) = (waiting.clone(), started.clone());
            let places_too = places.clone();
            waiting.spawn(live_query, async move {
                let Ok(_place) = places_too.acquire_owned().await else {
                    return;
                };
                assert!(waiting_too.turn_came(live_query), "not cancelled");
                started_too.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            });
            drop(busy);
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            waiting.cancel(live_query);
            assert_eq!(
                started.load(std::sync::atomic::Ordering::Relaxed),
                1,
                "only the load that was not cancelled ran"
            );
            assert_eq!(
                places.available_permits(),
                1,
                "no cancelled load kept a place"
            );
            // A load whose place came just as it was cancelled (its task not yet aborted)
            // learns it from turn_came and gives the place back instead of starting.
            let live_query = LiveQueryId::new(ConnectionId(1), SubscriptionId(101));
            waiting.spawn(live_query, std::future::pending());
            waiting.cancel(live_query);
            assert!(!waiting.turn_came(live_query));
        });
    }

    #[test]
    fn a_load_done_reading_keeps_its_place_until_unsubscribed_or_its_end_marker() {
        let (semaphore, places, live_query) = reading_load(2);
        done_reading(&places, live_query);
        assert_eq!(
            semaphore.available_permits(),
            0,
            "its rows wait for the client"
        );
        retire_place(&places, live_query);
        assert_eq!(semaphore.available_permits(), 1);
    }
}
