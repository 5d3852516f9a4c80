//! Connecting to NATS and making sure the stream and buckets exist.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, stream};
use async_nats::{Client, ConnectOptions};
use bytes::Bytes;
use futures_util::StreamExt;
use livecore::TableId;

use crate::config::{Auth, ConnectionConfig, StreamConfig};
use crate::error::{BridgeError, NatsResult};

/// Connects with the configured credentials. The client reconnects on its own for as long
/// as it lives (no limit on attempts), trying every configured server (and, unless
/// [`ConnectionConfig::discover_servers`] is off, those the cluster advertises).
pub async fn connect(config: &ConnectionConfig) -> Result<Client, BridgeError> {
    if config.servers.is_empty() {
        return Err(BridgeError::InvalidConfig("servers is empty".into()));
    }
    if config.ping_interval.is_zero() {
        return Err(BridgeError::InvalidConfig(
            "ping_interval must be above zero".into(),
        ));
    }
    let mut options = ConnectOptions::new()
        .connection_timeout(config.connect_timeout)
        .ping_interval(config.ping_interval)
        .request_timeout(Some(config.request_timeout))
        .max_reconnects(None);
    options = match &config.auth {
        Auth::None => options,
        Auth::UserPassword { user, password } => {
            options.user_and_password(user.clone(), password.clone())
        }
        Auth::Token(token) => options.token(token.clone()),
    };
    if config.require_tls {
        options = options.require_tls(true);
    }
    if let Some(ca) = &config.tls_ca_file {
        options = options.add_root_certificates(ca.clone());
    }
    if let Some(name) = &config.client_name {
        options = options.name(name);
    }
    if !config.shuffle_servers {
        options = options.retain_servers_order();
    }
    if !config.discover_servers {
        options = options.ignore_discovered_servers();
    }
    let servers: Vec<async_nats::ServerAddr> = config
        .servers
        .iter()
        .map(|url| {
            url.parse()
                .map_err(|error| BridgeError::InvalidConfig(format!("server URL {url}: {error}")))
        })
        .collect::<Result<_, _>>()?;
    options.connect(servers).await.map_err(connect_error)
}

/// Sorts a failed connection into refused credentials, TLS, or anything else.
fn connect_error(error: async_nats::ConnectError) -> BridgeError {
    use async_nats::ConnectErrorKind as Kind;
    let detail = describe(&error);
    match error.kind() {
        Kind::AuthorizationViolation | Kind::Authentication => BridgeError::Unauthorized(detail),
        Kind::Tls => BridgeError::Tls(detail),
        // A refused certificate surfaces as an I/O error of the handshake.
        _ if caused_by_tls(&error) => BridgeError::Tls(detail),
        _ => BridgeError::Connect(detail),
    }
}

/// The error and its causes, joined.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        next = cause.source();
    }
    text
}

/// Whether a rustls error is among the causes (directly or inside an I/O error).
fn caused_by_tls(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(cause) = next {
        if cause.is::<async_nats::rustls::Error>() {
            return true;
        }
        let inner = cause
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref);
        if inner.is_some_and(|inner| inner.is::<async_nats::rustls::Error>()) {
            return true;
        }
        next = cause.source();
    }
    false
}

/// A JetStream context with the configured request timeout.
pub fn jetstream(client: Client, config: &ConnectionConfig) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(config.request_timeout)
        .build(client)
}

fn check(config: &StreamConfig) -> Result<(), BridgeError> {
    if config.replicas == 0 || config.replicas > 5 {
        return Err(BridgeError::InvalidConfig(
            "replicas must be between 1 and 5".into(),
        ));
    }
    if config.stream.is_empty() || config.subject.is_empty() {
        return Err(BridgeError::InvalidConfig(
            "stream and subject must be named".into(),
        ));
    }
    Ok(())
}

/// The wait before retry `attempt` (from 0) of a JetStream request: 50 ms doubling, at
/// most one second.
pub(crate) fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((50u64 << attempt.min(5)).min(1000))
}

/// Attempts at creating or opening a stream or bucket before giving up on an answered
/// error: a writer and nodes starting together may ask for the same R3 stream at once.
const ENSURE_ATTEMPTS: u32 = 5;

/// How long after its first attempt creating or opening a stream or bucket starts new
/// attempts while JetStream cannot answer for now: no answer within the request timeout,
/// or "temporarily unavailable" while the servers elect their meta leader (after an
/// outage ends: seconds, longer on a loaded machine). The call can last one attempt
/// longer (each of its requests up to the request timeout), and each stream or bucket
/// opened has its own; a writer's `connect_deadline` bounds all of its opening.
const ENSURE_PATIENCE: Duration = Duration::from_secs(30);

/// A failed attempt at creating or opening a stream or bucket.
struct EnsureFailure {
    error: BridgeError,
    /// JetStream could not answer for now: worth trying again for [`ENSURE_PATIENCE`].
    for_now: bool,
}

/// Whether a stream's creation failed because JetStream could not answer for now (see
/// [`ENSURE_PATIENCE`]) rather than because it refused. "No responders"
/// (`JetStreamUnavailable`) is a refusal: every server of a JetStream cluster answers its
/// API, leader or not, so nothing answering means JetStream is off for the account (or the
/// domain or prefix is wrong), which waiting does not mend.
fn unavailable_for_now(error: &jetstream::context::CreateStreamError) -> bool {
    match error.kind() {
        jetstream::context::CreateStreamErrorKind::TimedOut => true,
        jetstream::context::CreateStreamErrorKind::JetStream(api) => {
            api.error_code() == jetstream::ErrorCode::CLUSTER_NOT_AVAILABLE
        }
        _ => false,
    }
}

/// Runs `attempt` until it succeeds, tried again with backoff: for
/// [`ENSURE_PATIENCE`] while JetStream cannot answer for now, [`ENSURE_ATTEMPTS`] times
/// in all on an answered error.
async fn ensure<T, Attempt>(mut attempt: impl FnMut() -> Attempt) -> Result<T, BridgeError>
where
    Attempt: std::future::Future<Output = Result<T, EnsureFailure>>,
{
    let patience = tokio::time::Instant::now() + ENSURE_PATIENCE;
    // All tries set the backoff; only answered errors count towards ENSURE_ATTEMPTS.
    let (mut tries, mut answered) = (0, 0);
    loop {
        let failure = match attempt().await {
            Ok(found) => return Ok(found),
            Err(failure) => failure,
        };
        let again = if failure.for_now {
            tokio::time::Instant::now() + backoff(tries) < patience
        } else {
            answered += 1;
            answered < ENSURE_ATTEMPTS
        };
        if !again {
            return Err(failure.error);
        }
        tokio::time::sleep(backoff(tries)).await;
        tries += 1;
    }
}

/// The commit stream, created with the configured retention and replicas when missing.
pub async fn ensure_stream(
    js: &jetstream::Context,
    config: &StreamConfig,
) -> Result<stream::Stream, BridgeError> {
    check(config)?;
    ensure(|| create_or_open_stream(js, config)).await
}

async fn create_or_open_stream(
    js: &jetstream::Context,
    config: &StreamConfig,
) -> Result<stream::Stream, EnsureFailure> {
    js.get_or_create_stream(stream::Config {
        name: config.stream.clone(),
        subjects: vec![config.subject.clone()],
        num_replicas: config.replicas,
        max_messages: if config.max_messages == 0 {
            -1
        } else {
            config.max_messages
        },
        max_bytes: if config.max_bytes == 0 {
            -1
        } else {
            config.max_bytes
        },
        max_age: config.max_age,
        duplicate_window: config.duplicate_window,
        storage: stream::StorageType::File,
        discard: stream::DiscardPolicy::Old,
        allow_direct: true,
        ..Default::default()
    })
    .await
    .map_err(|error| EnsureFailure {
        for_now: unavailable_for_now(&error),
        error: BridgeError::Nats {
            what: "creating the commit stream",
            detail: error.to_string(),
        },
    })
}

/// A key-value bucket, created with the configured replicas when missing.
pub async fn ensure_bucket(
    js: &jetstream::Context,
    config: &StreamConfig,
    bucket: &str,
) -> Result<kv::Store, BridgeError> {
    check(config)?;
    ensure(|| create_or_open_bucket(js, config, bucket)).await
}

async fn create_or_open_bucket(
    js: &jetstream::Context,
    config: &StreamConfig,
    bucket: &str,
) -> Result<kv::Store, EnsureFailure> {
    if let Ok(store) = js.get_key_value(bucket).await {
        return Ok(store);
    }
    // The bucket's stream is created here, laid out as key-value buckets are (ADR-8),
    // rather than by `create_key_value`: that first reads the account info, whose 2.9
    // form lacks fields async-nats 0.51 requires.
    let created = js
        .create_stream(stream::Config {
            name: format!("KV_{bucket}"),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            max_bytes: -1,
            max_messages: -1,
            max_message_size: -1,
            storage: stream::StorageType::File,
            num_replicas: config.replicas,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await;
    match js.get_key_value(bucket).await {
        Ok(store) => Ok(store),
        Err(open) => Err(EnsureFailure {
            for_now: created.as_ref().is_err_and(unavailable_for_now),
            error: BridgeError::Nats {
                what: "creating a bucket",
                detail: match created {
                    Err(create) => format!("{create}; then opening it: {open}"),
                    Ok(_) => open.to_string(),
                },
            },
        }),
    }
}

/// Hex, so any namespace or table name makes a valid key token.
pub(crate) fn hex(text: &str) -> String {
    text.bytes().map(|byte| format!("{byte:02x}")).collect()
}

/// The key of a table's schema version in the schema bucket.
pub(crate) fn schema_key(table: &TableId, version: u64) -> String {
    format!(
        "schema.{}.{}.{version}",
        hex(table.namespace()),
        hex(table.name())
    )
}

/// The key prefix of a table's schema versions.
pub(crate) fn schema_prefix(table: &TableId) -> String {
    format!("schema.{}.{}.", hex(table.namespace()), hex(table.name()))
}

/// Every live value under `prefix` (keys without the bucket's prefix), read once: the
/// latest value of each key, deleted keys left out. Bounded by `timeout`.
pub async fn read_prefix(
    js: &jetstream::Context,
    store: &kv::Store,
    prefix: &str,
    timeout: Duration,
) -> Result<Vec<(String, Bytes)>, BridgeError> {
    Ok(read_prefix_entries(js, store, prefix, timeout)
        .await?
        .into_iter()
        .map(|entry| (entry.key, entry.value))
        .collect())
}

/// One live key-value entry as [`read_prefix_entries`] reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvEntry {
    /// The key, without the bucket's prefix.
    pub key: String,
    /// Its revision (the bucket stream's sequence of this value): a delete or update that
    /// names it lands only if the key was not written since.
    pub revision: u64,
    /// The value.
    pub value: Bytes,
}

/// As [`read_prefix`], with each key's revision. Each key appears once, with its latest
/// value: a key written (or deleted) again while it is read is delivered again, and the
/// later delivery wins.
pub async fn read_prefix_entries(
    js: &jetstream::Context,
    store: &kv::Store,
    prefix: &str,
    timeout: Duration,
) -> Result<Vec<KvEntry>, BridgeError> {
    let consumer = store
        .stream
        .create_consumer(consumer::push::OrderedConfig {
            deliver_subject: js.client().new_inbox(),
            filter_subject: format!("{}{prefix}>", store.prefix),
            deliver_policy: consumer::DeliverPolicy::LastPerSubject,
            replay_policy: consumer::ReplayPolicy::Instant,
            ..Default::default()
        })
        .await
        .nats("reading key-value")?;
    // In the order first met; None once deleted.
    let mut out: Vec<Option<KvEntry>> = Vec::new();
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    if consumer.cached_info().num_pending == 0 {
        return Ok(Vec::new());
    }
    let mut messages = consumer.messages().await.nats("reading key-value")?;
    let read = async {
        while let Some(message) = messages.next().await {
            let message = message.nats("reading key-value")?;
            let info = message.info().nats("reading key-value metadata")?;
            let (pending, revision) = (info.pending, info.stream_sequence);
            let deleted = message
                .headers
                .as_ref()
                .and_then(|headers| headers.get("KV-Operation"))
                .is_some_and(|operation| operation.as_str() != "PUT");
            let key = message
                .subject
                .as_str()
                .strip_prefix(store.prefix.as_str())
                .unwrap_or(message.subject.as_str())
                .to_string();
            let entry = (!deleted).then(|| KvEntry {
                key: key.clone(),
                revision,
                value: message.payload.clone(),
            });
            match at.get(&key) {
                Some(&index) => out[index] = entry,
                None => {
                    at.insert(key, out.len());
                    out.push(entry);
                }
            }
            if pending == 0 {
                break;
            }
        }
        Ok::<_, BridgeError>(())
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| BridgeError::Nats {
            what: "reading key-value",
            detail: "timed out".into(),
        })??;
    Ok(out.into_iter().flatten().collect())
}

/// The most undecodable (or deleted) messages read back from the stream's end when looking
/// for its last decodable entry.
const TAIL_WALK: u64 = 1000;

/// Where the commit stream ends, as its messages tell.
pub(crate) struct Tail {
    /// The SeqId of the last commit appended: `Some(None)` when no commit was (a stream
    /// that never held a message, or whose last decodable entry is a schema change before
    /// the first commit), `None` when the stream held messages but none left tells (every
    /// message aged out, or those at its end cannot be decoded).
    pub(crate) last_commit: Option<Option<livecore::SeqId>>,
    /// The messages at the stream's end that could not be decoded (skipped, newest first).
    pub(crate) undecodable: Vec<BridgeError>,
}

/// Reads back from the stream's last message to the last one that decodes, skipping (and
/// returning as errors) those that do not, at most [`TAIL_WALK`] of them.
pub(crate) async fn stream_tail(
    stream: &stream::Stream,
    state: &stream::State,
) -> Result<Tail, BridgeError> {
    use crate::codec::{decode_stream_entry, StreamEntry};
    let mut tail = Tail {
        last_commit: None,
        undecodable: Vec::new(),
    };
    if state.last_sequence == 0 {
        // Never held a message.
        tail.last_commit = Some(None);
        return Ok(tail);
    }
    if state.messages == 0 {
        return Ok(tail);
    }
    let lowest = state
        .first_sequence
        .max(state.last_sequence.saturating_sub(TAIL_WALK - 1))
        .max(1);
    let mut stream_seq = state.last_sequence;
    while stream_seq >= lowest {
        match stream.get_raw_message(stream_seq).await {
            Ok(message) => match decode_stream_entry(&message.payload) {
                Ok(StreamEntry::Commit(commit)) => {
                    tail.last_commit = Some(Some(commit.seq));
                    return Ok(tail);
                }
                Ok(StreamEntry::Schema(schema)) => {
                    tail.last_commit = Some(schema.after);
                    return Ok(tail);
                }
                Err(error) => tail
                    .undecodable
                    .push(BridgeError::Decode { stream_seq, error }),
            },
            Err(error)
                if matches!(
                    error.kind(),
                    stream::LastRawMessageErrorKind::NoMessageFound
                ) => {}
            Err(error) => {
                return Err(BridgeError::Nats {
                    what: "reading the stream's last message",
                    detail: error.to_string(),
                })
            }
        }
        stream_seq -= 1;
    }
    Ok(tail)
}

/// The longest the probe before a forced reconnect waits for the server's answer (at most
/// the configured request timeout, if that is shorter).
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether the server the client is connected to answers a round trip now, within
/// `timeout`: a request on a fresh inbox subject, which nobody serves, so the server itself
/// answers it (no responders) without involving JetStream. A hung server (stopped, its
/// machine frozen) does not answer; one whose JetStream is slow (a stream without a leader,
/// a stalled disk) still does, and reconnecting would not help it. A client not allowed to
/// publish on `_INBOX.>` never gets an answer: for it the probe always fails.
pub(crate) async fn server_answers(client: &Client, timeout: Duration) -> bool {
    let request = async_nats::Request::new()
        .payload(Bytes::new())
        .timeout(Some(timeout));
    match tokio::time::timeout(timeout, client.send_request(client.new_inbox(), request)).await {
        Ok(Ok(_)) => true,
        Ok(Err(error)) => error.kind() == async_nats::RequestErrorKind::NoResponders,
        Err(_) => false,
    }
}

/// How a failed request on the stream is to be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The server answered: the stream does not exist (JetStream error 10059).
    StreamNotFound,
    /// The server answered with another JetStream error: the connection works.
    Answered,
    /// No answer (a timeout, no responders, a lost connection): the server may be hung.
    Silent,
}

/// The JetStream API error among `error`'s causes, if any.
fn api_error<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a async_nats::jetstream::Error> {
    let mut next = Some(error);
    while let Some(cause) = next {
        if let Some(api) = cause.downcast_ref::<async_nats::jetstream::Error>() {
            return Some(api);
        }
        next = cause.source();
    }
    None
}

fn failure_of_api(api: &async_nats::jetstream::Error) -> Failure {
    if api.error_code() == async_nats::jetstream::ErrorCode::STREAM_NOT_FOUND {
        Failure::StreamNotFound
    } else {
        Failure::Answered
    }
}

/// Reads a failed stream info request.
pub(crate) fn info_failure(error: &stream::InfoError) -> Failure {
    api_error(error).map_or(Failure::Silent, failure_of_api)
}

/// Reads a failed consumer creation.
pub(crate) fn consumer_failure(error: &stream::ConsumerError) -> Failure {
    match error.kind() {
        stream::ConsumerErrorKind::JetStream(api) => failure_of_api(&api),
        _ => api_error(error).map_or(Failure::Silent, failure_of_api),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    /// An attempt that fails as `failures` says, in turn, then succeeds with the number of
    /// attempts made.
    async fn scripted(failures: &[bool], made: &Cell<usize>) -> Result<usize, EnsureFailure> {
        let this = made.get();
        made.set(this + 1);
        match failures.get(this) {
            Some(&for_now) => Err(EnsureFailure {
                error: BridgeError::Nats {
                    what: "a scripted attempt",
                    detail: format!("attempt {this}"),
                },
                for_now,
            }),
            None => Ok(this + 1),
        }
    }

    /// Runs `future` on a paused clock: the backoff's sleeps pass at once.
    fn run<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(future)
    }

    #[test]
    fn a_timeout_is_for_now_and_no_responders_a_refusal() {
        use jetstream::context::{CreateStreamError, CreateStreamErrorKind};
        let for_now = |kind| unavailable_for_now(&CreateStreamError::new(kind));
        assert!(for_now(CreateStreamErrorKind::TimedOut));
        assert!(!for_now(CreateStreamErrorKind::JetStreamUnavailable));
        assert!(!for_now(CreateStreamErrorKind::InvalidStreamName));
    }

    #[test]
    fn unanswered_attempts_do_not_use_up_the_answered_ones() {
        // Six attempts JetStream could not answer, then four answered errors: still within
        // both bounds, so the eleventh attempt runs and succeeds.
        let script = [
            true, true, true, true, true, true, false, false, false, false,
        ];
        let made = Cell::new(0);
        assert_eq!(run(ensure(|| scripted(&script, &made))).unwrap(), 11);
    }

    #[test]
    fn unanswered_attempts_end_at_the_patience() {
        let script = [true; 100];
        let made = Cell::new(0);
        let (outcome, waited) = run(async {
            let started = tokio::time::Instant::now();
            let outcome = ensure(|| scripted(&script, &made)).await;
            (outcome, started.elapsed())
        });
        assert!(outcome.is_err());
        // The last sleep (a second at most) ends within the patience.
        assert!(
            waited <= ENSURE_PATIENCE && waited + Duration::from_secs(1) >= ENSURE_PATIENCE,
            "gave up after {waited:?} and {} attempts",
            made.get()
        );
    }

    #[test]
    fn the_fifth_answered_error_ends_it() {
        let script = [false, true, false, false, false, false];
        let made = Cell::new(0);
        match run(ensure(|| scripted(&script, &made))) {
            Err(BridgeError::Nats { detail, .. }) => assert_eq!(detail, "attempt 5"),
            other => panic!("{other:?}"),
        }
        assert_eq!(made.get(), 6);
    }
}
