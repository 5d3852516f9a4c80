//! Setup shared by the benches and the `compare` runner: one table shape, rows built alike for
//! livecore and for the seed baseline, fixtures that register connections and subscriptions
//! on each side, draining, chunked publisher-side timing and an end-to-end drainer thread;
//! in [`ffi`], the native API against the C ABI loaded from the shared library.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use livecore::{
    ChangeNotification, ConnectionId, ConnectionsManager, EventReceiver, LiveQueryId,
    ManagerConfig, Notification, NotificationReceiver, QuerySpec, Row, SeqId, SubscriptionOptions,
    TableId, TableSchema, TableScope, UserId, Value,
};
use tokio::sync::mpsc;

#[path = "../baselines/mod.rs"]
pub mod baselines;

pub mod ffi;

use baselines::seed::{self, ParsedQuery, SeedRegistry};

/// The columns of every bench table, in row order.
pub const COLUMNS: [&str; 6] = ["id", "room", "score", "name", "active", "body"];

/// The namespace of the bench tables.
pub const NAMESPACE: &str = "bench";

/// Most commits published before channels are drained in publisher-side timing: far below
/// both sides' channel capacity (livecore 1024, seed 1000), so nothing is ever dropped.
const MAX_CHUNK: u64 = 16;
/// Deliveries allowed to queue across all channels between drains, to bound memory.
const MAX_QUEUED_DELIVERIES: u64 = 2_000_000;

/// The values of row `id`, shared by both sides so they filter and render the same data.
fn row_values(id: i64) -> (i64, i64, i64, String, bool, &'static str) {
    (
        id,
        id % 100,
        (id * 7) % 1000,
        format!("user_{id}"),
        id % 2 == 0,
        "hello from the bench",
    )
}

/// Row `id` for livecore.
pub fn live_row(id: i64) -> Row {
    let (id, room, score, name, active, body) = row_values(id);
    Row::new(vec![
        Value::Int(id),
        Value::Int(room),
        Value::Int(score),
        Value::from(name),
        Value::Bool(active),
        Value::text(body),
    ])
}

/// Row `id` for the seed (a map from column name to value).
pub fn seed_row(id: i64) -> seed::Row {
    let (id, room, score, name, active, body) = row_values(id);
    seed::Row::new(
        [
            ("id", seed::ScalarValue::Int64(id)),
            ("room", seed::ScalarValue::Int64(room)),
            ("score", seed::ScalarValue::Int64(score)),
            ("name", seed::ScalarValue::Utf8(name)),
            ("active", seed::ScalarValue::Boolean(active)),
            ("body", seed::ScalarValue::Utf8(body.to_string())),
        ]
        .into_iter()
        .map(|(column, value)| (column.to_string(), value))
        .collect(),
    )
}

/// An insert of row `id` into `table`, for the seed.
pub fn seed_insert(table: &seed::TableId, id: i64, seq: u64) -> seed::ChangeNotification {
    seed::ChangeNotification {
        change_type: seed::ChangeType::Insert,
        table_id: table.clone(),
        row_data: seed_row(id),
        old_data: None,
        seq: Some(seq as i64),
    }
}

/// The user every connection on a shared bench table authenticates as.
pub const READER: &str = "reader";

/// The user the seed keys shared-table subscriptions under: its index is per (user, table),
/// and the engine names the user whose subscriptions a change is routed to.
pub fn seed_shared_user() -> seed::UserId {
    seed::UserId(READER.to_string())
}

/// Counts the change notifications among what `receivers` hold now, handing each out.
pub fn drain_live(receivers: &mut [NotificationReceiver]) -> u64 {
    let mut taken = 0;
    for rx in receivers.iter_mut() {
        while let Ok(notification) = rx.try_recv() {
            if matches!(notification, Notification::Changes(_)) {
                taken += 1;
            }
            std::hint::black_box(notification);
        }
    }
    taken
}

/// Counts the notifications waiting on seed receivers, taking each.
pub fn drain_seed(receivers: &mut [seed::NotificationReceiver]) -> u64 {
    let mut taken = 0;
    for rx in receivers.iter_mut() {
        while let Ok(notification) = rx.try_recv() {
            std::hint::black_box(notification);
            taken += 1;
        }
    }
    taken
}

/// How many commits may be published between drains when each reaches `fanout` channels.
pub fn chunk_for(fanout: u64) -> u64 {
    (MAX_QUEUED_DELIVERIES / fanout.max(1)).clamp(1, MAX_CHUNK)
}

/// Publisher-side timing: for `i in 0..iters`, `chunk` at a time, builds the inputs with
/// `prepare(i)` and publishes them with `publish`, timing only the publishing; `drain` runs
/// between chunks with the clock stopped, so no channel ever fills.
pub fn timed_in_chunks<T>(
    iters: u64,
    chunk: u64,
    mut prepare: impl FnMut(u64) -> T,
    mut publish: impl FnMut(T),
    mut drain: impl FnMut(),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0;
    let mut inputs = Vec::with_capacity(chunk.min(iters) as usize);
    while done < iters {
        let batch = chunk.min(iters - done);
        inputs.extend((done..done + batch).map(&mut prepare));
        let start = Instant::now();
        for input in inputs.drain(..) {
            publish(input);
        }
        total += start.elapsed();
        drain();
        done += batch;
    }
    total
}

/// A thread that keeps draining a set of receivers and counts what it took: the receiving
/// side of the end-to-end benches, on the second core.
pub struct Drainer {
    received: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    active: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drainer {
    /// Starts draining `receivers` with `drain` (which returns how many it took). Between
    /// runs the thread parks, so several drainers can stay alive and take turns without the
    /// idle ones stealing a core.
    pub fn spawn<R: Send + 'static>(mut receivers: R, drain: fn(&mut R) -> u64) -> Self {
        let received = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let active = Arc::new(AtomicBool::new(false));
        let thread = {
            let (received, stop, active) = (
                Arc::clone(&received),
                Arc::clone(&stop),
                Arc::clone(&active),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Acquire) {
                    if !active.load(Ordering::Acquire) {
                        // Idle between runs; `run` unparks it.
                        std::thread::park_timeout(Duration::from_millis(1));
                        continue;
                    }
                    let taken = drain(&mut receivers);
                    if taken != 0 {
                        received.fetch_add(taken, Ordering::AcqRel);
                    }
                }
            })
        };
        Self {
            received,
            stop,
            active,
            thread: Some(thread),
        }
    }

    /// Items taken so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Acquire)
    }

    /// End to end: publishes `iters` commits with `publish(i)` (returning the deliveries it
    /// enqueued) and returns the time until the drainer has taken every one. At most
    /// `window` commits of `fanout` deliveries are in flight, so no channel fills.
    pub fn run(
        &self,
        iters: u64,
        fanout: u64,
        window: u64,
        mut publish: impl FnMut(u64) -> u64,
    ) -> Duration {
        self.active.store(true, Ordering::Release);
        if let Some(thread) = &self.thread {
            thread.thread().unpark();
        }
        let base = self.received();
        let in_flight_limit = window.saturating_sub(1) * fanout;
        let mut expected = 0;
        let start = Instant::now();
        for i in 0..iters {
            while expected - (self.received() - base) > in_flight_limit {
                std::hint::spin_loop();
            }
            expected += publish(i);
        }
        while self.received() - base < expected {
            std::hint::spin_loop();
        }
        let elapsed = start.elapsed();
        self.active.store(false, Ordering::Release);
        elapsed
    }
}

impl Drop for Drainer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// A livecore manager with one bench table, its connections and their receivers.
pub struct LiveBench {
    /// The manager.
    pub manager: Arc<ConnectionsManager>,
    /// The bench table.
    pub table: TableId,
    /// Registered connections, in order.
    pub connections: Vec<ConnectionId>,
    /// Their notification receivers (same order).
    pub receivers: Vec<NotificationReceiver>,
    /// Their event receivers, kept open as a host would.
    pub events: Vec<EventReceiver>,
    /// Subscriptions opened, in order.
    pub live_ids: Vec<LiveQueryId>,
    next_seq: u64,
}

/// A manager configuration roomy enough for every bench.
pub fn bench_config() -> ManagerConfig {
    ManagerConfig {
        max_connections: 1_000_000,
        max_subscriptions_per_connection: 1_000_000,
        ..ManagerConfig::default()
    }
}

impl LiveBench {
    /// A manager with table `bench.<name>` of the given scope.
    pub fn new(name: &str, scope: TableScope) -> Self {
        Self::with_config(name, scope, bench_config())
    }

    /// The same, with an explicit configuration.
    pub fn with_config(name: &str, scope: TableScope, config: ManagerConfig) -> Self {
        let manager = Arc::new(ConnectionsManager::new(config).expect("valid config"));
        let table = TableId::new(NAMESPACE, name);
        manager
            .register_table(TableSchema::new(table.clone(), scope, COLUMNS))
            .expect("table registers");
        Self {
            manager,
            table,
            connections: Vec::new(),
            receivers: Vec::new(),
            events: Vec::new(),
            live_ids: Vec::new(),
            next_seq: 0,
        }
    }

    /// Wraps a manager whose table `table` was registered by the caller.
    pub fn adopt(manager: Arc<ConnectionsManager>, table: TableId) -> Self {
        Self {
            manager,
            table,
            connections: Vec::new(),
            receivers: Vec::new(),
            events: Vec::new(),
            live_ids: Vec::new(),
            next_seq: 0,
        }
    }

    /// Registers and authenticates a connection as `user`; returns its index.
    pub fn connect(&mut self, user: &str) -> usize {
        let registration = self
            .manager
            .register_connection()
            .expect("connection registers");
        self.manager
            .authenticate(registration.connection_id, UserId::from(user), None)
            .expect("connection authenticates");
        self.connections.push(registration.connection_id);
        self.receivers.push(registration.notifications);
        self.events.push(registration.events);
        self.connections.len() - 1
    }

    /// Registers `count` connections, connection `i` as user `user(i)`.
    pub fn connect_many(&mut self, count: usize, user: impl Fn(usize) -> String) {
        for index in 0..count {
            self.connect(&user(index));
        }
    }

    /// A query on the bench table.
    pub fn spec(&self) -> QuerySpec {
        QuerySpec::table(self.table.clone())
    }

    /// Opens a subscription on connection `connection`.
    pub fn subscribe(&mut self, connection: usize, spec: QuerySpec) -> LiveQueryId {
        self.subscribe_with(connection, spec, SubscriptionOptions::default())
    }

    /// Opens a subscription with explicit options.
    pub fn subscribe_with(
        &mut self,
        connection: usize,
        spec: QuerySpec,
        options: SubscriptionOptions,
    ) -> LiveQueryId {
        let live_query_id = self
            .manager
            .subscribe(self.connections[connection], spec, options)
            .expect("subscription opens")
            .live_query_id;
        self.live_ids.push(live_query_id);
        live_query_id
    }

    /// The next commit number.
    pub fn next_seq(&mut self) -> SeqId {
        self.next_seq += 1;
        SeqId(self.next_seq)
    }

    /// An insert of row `id` into the bench table.
    pub fn insert(&self, id: i64) -> ChangeNotification {
        ChangeNotification::insert(self.table.clone(), live_row(id))
    }

    /// Publishes an insert of row `id` (owned by `owner` on a user-scoped table); returns
    /// the deliveries enqueued.
    pub fn publish_insert(&mut self, id: i64, owner: Option<&str>) -> u64 {
        let seq = self.next_seq();
        let mut change = self.insert(id);
        if let Some(owner) = owner {
            change = change.owned_by(owner);
        }
        let summary = self.manager.publish(seq, change).expect("publish succeeds");
        summary.enqueued as u64
    }

    /// Hands out everything waiting; returns the change notifications taken.
    pub fn drain(&mut self) -> u64 {
        drain_live(&mut self.receivers)
    }
}

/// The seed's registry with one bench table, its connections and their receivers.
pub struct SeedBench {
    /// The registry.
    pub registry: SeedRegistry,
    /// The bench table.
    pub table: seed::TableId,
    /// Registered connections.
    pub connections: Vec<seed::ConnectionId>,
    /// The users they authenticated as.
    pub users: Vec<seed::UserId>,
    /// Their notification receivers.
    pub receivers: Vec<seed::NotificationReceiver>,
    /// Their event receivers, kept open as a host would.
    pub events: Vec<mpsc::Receiver<seed::ConnectionEvent>>,
    /// Subscriptions opened, in order.
    pub live_ids: Vec<seed::LiveQueryId>,
    next_seq: u64,
}

impl SeedBench {
    /// A registry serving table `bench.<name>`.
    pub fn new(name: &str) -> Self {
        Self {
            registry: SeedRegistry::default(),
            table: seed::TableId::new(NAMESPACE, name),
            connections: Vec::new(),
            users: Vec::new(),
            receivers: Vec::new(),
            events: Vec::new(),
            live_ids: Vec::new(),
            next_seq: 0,
        }
    }

    /// Registers and authenticates a connection as `user`; returns its index.
    pub fn connect(&mut self, user: &str) -> usize {
        let registration = self.registry.register_connection();
        self.registry
            .authenticate(&registration.connection_id, user);
        self.connections.push(registration.connection_id);
        self.users.push(seed::UserId(user.to_string()));
        self.receivers.push(registration.notification_rx);
        self.events.push(registration.event_rx);
        self.connections.len() - 1
    }

    /// Registers `count` connections, connection `i` as user `user(i)`.
    pub fn connect_many(&mut self, count: usize, user: impl Fn(usize) -> String) {
        for index in 0..count {
            self.connect(&user(index));
        }
    }

    /// Parses `SELECT <columns> FROM bench.<table> [WHERE <filter>]` once, as the seed did
    /// per subscription.
    pub fn parse(&self, columns: &str, filter: Option<&str>) -> ParsedQuery {
        let mut sql = format!(
            "SELECT {columns} FROM {}.{}",
            self.table.namespace, self.table.name
        );
        if let Some(filter) = filter {
            sql.push_str(" WHERE ");
            sql.push_str(filter);
        }
        seed::parse_query(&sql).expect("bench query parses")
    }

    /// Opens a subscription with an already parsed query.
    pub fn subscribe(&mut self, connection: usize, query: &ParsedQuery) -> seed::LiveQueryId {
        self.subscribe_with(connection, query, false)
    }

    /// Opens a subscription, gated for an initial load when `initial_load`.
    pub fn subscribe_with(
        &mut self,
        connection: usize,
        query: &ParsedQuery,
        initial_load: bool,
    ) -> seed::LiveQueryId {
        let live_id = self.registry.subscribe(
            &self.connections[connection],
            &self.table,
            query,
            initial_load,
        );
        self.live_ids.push(live_id.clone());
        live_id
    }

    /// The next commit number.
    pub fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    /// Publishes an insert of row `id` for `user`'s key; returns the notifications enqueued.
    pub fn publish_insert(
        &mut self,
        user: &seed::UserId,
        id: i64,
        dispatch: seed::Dispatch,
    ) -> u64 {
        let seq = self.next_seq();
        let change = seed_insert(&self.table, id, seq);
        self.registry
            .notify_table_change(user, &change, dispatch)
            .enqueued as u64
    }

    /// Takes everything waiting; returns how many notifications were taken.
    pub fn drain(&mut self) -> u64 {
        drain_seed(&mut self.receivers)
    }
}

/// Criterion settings for this 2-core shared machine: few samples, short windows.
pub fn criterion_config() -> criterion::Criterion {
    criterion::Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args()
}

/// A cheap, well-spread sequence over `0..n` (Knuth's multiplicative hash), so lookups land
/// on different buckets and connections as a real stream of changes would.
pub fn spread(i: u64, n: u64) -> u64 {
    i.wrapping_mul(2_654_435_761) % n.max(1)
}

/// Drains only the receivers at `touched` (then clears it): after a chunk that reached a
/// few known connections, draining all of them would dominate the bench's wall time.
pub fn drain_live_touched(receivers: &mut [NotificationReceiver], touched: &mut Vec<usize>) {
    touched.sort_unstable();
    touched.dedup();
    for &index in touched.iter() {
        drain_live(&mut receivers[index..index + 1]);
    }
    touched.clear();
}

/// The seed's counterpart of [`drain_live_touched`].
pub fn drain_seed_touched(receivers: &mut [seed::NotificationReceiver], touched: &mut Vec<usize>) {
    touched.sort_unstable();
    touched.dedup();
    for &index in touched.iter() {
        drain_seed(&mut receivers[index..index + 1]);
    }
    touched.clear();
}

/// Equality-filtered subscriptions `id = k` for `k in 0..count` on the bench table, `per
/// connection` to a connection (subscription k on connection k % connections), for livecore.
pub fn live_equality(name: &str, count: usize, per_connection: usize) -> LiveBench {
    let mut live = LiveBench::new(name, TableScope::Shared);
    let connections = count.div_ceil(per_connection).max(1);
    live.connect_many(connections, |_| READER.to_string());
    for k in 0..count {
        let spec = live
            .spec()
            .filter(livecore::Expr::col("id").eq(livecore::Expr::lit(k as i64)));
        live.subscribe(k % connections, spec);
    }
    live
}

/// The seed's counterpart of [`live_equality`]: each WHERE clause parsed once with sqlparser.
pub fn seed_equality(name: &str, count: usize, per_connection: usize) -> SeedBench {
    let mut seed = SeedBench::new(name);
    let connections = count.div_ceil(per_connection).max(1);
    seed.connect_many(connections, |_| READER.to_string());
    for k in 0..count {
        let query = seed.parse("*", Some(&format!("id = {k}")));
        seed.subscribe(k % connections, &query);
    }
    seed
}

/// The entry point of every bench binary. `cargo bench` passes `--bench`; `cargo test
/// --all-targets` (the project's test command) runs bench binaries without it, and there
/// they only need to have compiled: their fixtures hold up to a million subscriptions, far
/// too slow for an unoptimised test build, so they stop here.
pub fn bench_main(name: &str, groups: &[fn()]) {
    if !std::env::args().skip(1).any(|arg| arg == "--bench") {
        eprintln!("{name}: compiled; measure with `cargo bench --bench {name}`");
        return;
    }
    for group in groups {
        group();
    }
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
