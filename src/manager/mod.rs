//! The connections manager: connection lifecycle (register, authenticate, heartbeat,
//! timeouts, unregister, shutdown), limits, table schemas and statistics. It serves both
//! WebSocket live-query connections and long-poll topic consumers.
//!
//! Lock order, where more than one is held: the connection map, then the channel pool
//! (registering) or a connection's subscription map, then a table route's writer lock;
//! topic locks come after all of these (see [`crate::topics`]). Publishing takes none of
//! them (a topic append takes the partition's lock in the topic's log).

mod channel_pool;
mod commits;
pub(crate) mod connections;
pub(crate) mod failover;
#[cfg(feature = "metrics")]
mod metrics;
pub(crate) mod records;
mod revocation;
pub(crate) mod subscribe;
mod subscribe_sql;
mod tables;
mod topics;

use std::collections::{HashMap, HashSet};

use crate::clock::{Clock, ClockWake, Reading, SystemClock};
use crate::config::ManagerConfig;
use crate::connection::state::{ConnectionShared, SharedConnectionState};
use crate::error::LiveResult;
use crate::publish::ReapQueue;
use crate::query::cache::QueryCache;
use crate::route::index::RoutingIndex;
use crate::stats::RegistryStats;
use crate::stats::StatsCounters;
use crate::sync::{
    channel, lock, Arc, AtomicBool, AtomicU64, Condvar, DataArc, Mutex, Ordering, RwLock,
};
use crate::topics::wait::WaitList;
use crate::topics::Topics;
use crate::types::ids::ConnectionId;
use channel_pool::ChannelPool;

/// The notification core of one database node: connections, subscriptions, the routing
/// index and publishing. Share it between threads with an `Arc`.
pub struct ConnectionsManager {
    pub(crate) config: ManagerConfig,
    pub(crate) clock: Box<dyn Clock>,
    pub(crate) index: RoutingIndex,
    pub(crate) stats: Arc<StatsCounters>,
    connections: Mutex<HashMap<ConnectionId, SharedConnectionState, ahash::RandomState>>,
    /// Notification channels made ahead, in batches (taken under the connection map's lock).
    channels: ChannelPool,
    /// Signalled when a connection unregisters (shutdown waits on it).
    unregistered: Condvar,
    /// Connections a shutdown took out of the map and has not finished closing: a call
    /// naming one waits for its close (see `not_registered`), so it is closed by the time
    /// the caller hears it is gone. Taken after the connection map's lock, never before.
    closing_at_shutdown: Mutex<HashSet<ConnectionId>>,
    /// Signalled as the shutdown closes each of them.
    closed_at_shutdown: Condvar,
    next_connection: AtomicU64,
    pub(crate) next_subscription: AtomicU64,
    pub(crate) shutting_down: AtomicBool,
    /// Held shared by subscription writers (subscribe, unsubscribe, unregister, load
    /// protocol) and exclusively by a schema change, which rewrites subscriptions of many
    /// connections at once. Publishing never takes it.
    pub(crate) lifecycle: RwLock<()>,
    /// Subscriptions livecore ended on the publish path, to unroute on the next writer call.
    pub(crate) reap: ReapQueue,
    /// Parse and compiled-query caches shared by identical subscriptions.
    pub(crate) queries: QueryCache,
    /// Topics, their routes, consumer groups and consumer sessions.
    pub(crate) topics: Topics,
    ready: Option<(
        channel::Sender<ConnectionId>,
        channel::Receiver<ConnectionId>,
    )>,
    /// Handed to every connection: the statistics and the ready queue's sender.
    connection_shared: Arc<ConnectionShared>,
}

/// The wait list a stepping clock wakes (see [`Clock::on_step`]); `None` for a clock that
/// moves by itself. A loom build registers none: its parks have no timeout to shorten.
fn clock_waiters(clock: &dyn Clock) -> Option<DataArc<WaitList>> {
    if cfg!(livecore_loom) {
        return None;
    }
    let waiters = DataArc::new(WaitList::new());
    let weak = DataArc::downgrade(&waiters);
    let wake = ClockWake::new(move || match weak.upgrade() {
        Some(waiters) => {
            waiters.wake_all();
            true
        }
        None => false,
    });
    clock.on_step(wake).then_some(waiters)
}

impl ConnectionsManager {
    /// A manager with the system clock.
    pub fn new(config: ManagerConfig) -> LiveResult<Self> {
        Self::with_clock(config, SystemClock)
    }

    /// A manager reading time from `clock` (inject a [`ManualClock`] in tests).
    ///
    /// The manager takes the clock by value; `Arc<C>` is a [`Clock`] whenever `C` is, so a
    /// host that needs to move the clock afterwards passes an `Arc<ManualClock>` and keeps
    /// a clone:
    ///
    /// ```
    /// use std::sync::Arc;
    /// use livecore::{ConnectionsManager, ManagerConfig, ManualClock};
    ///
    /// let clock = Arc::new(ManualClock::new(5_000));
    /// let manager = ConnectionsManager::with_clock(ManagerConfig::default(), clock.clone())?;
    /// clock.advance(1_000);
    /// assert_eq!(manager.now_ms(), 6_000);
    /// # Ok::<(), livecore::LiveError>(())
    /// ```
    ///
    /// Timers (auth, ping and heartbeat timeouts, topic leases, a parked consume's
    /// deadline) run on the clock's monotonic reading; records and reported times use its
    /// wall reading (see [`Clock`]).
    ///
    /// [`ManualClock`]: crate::ManualClock
    pub fn with_clock(config: ManagerConfig, clock: impl Clock) -> LiveResult<Self> {
        config.validate()?;
        let ready = config.ready_queue.then(channel::unbounded);
        let stats = Arc::new(StatsCounters::default());
        let connection_shared = Arc::new(ConnectionShared::new(
            stats.clone(),
            ready.as_ref().map(|(tx, _)| tx.clone()),
        ));
        Ok(Self {
            queries: QueryCache::new(config.query_cache_capacity),
            channels: ChannelPool::new(config.notification_channel_capacity),
            config,
            topics: Topics::new(clock_waiters(&clock)),
            clock: Box::new(clock),
            index: RoutingIndex::new(),
            stats,
            connections: Mutex::new(HashMap::default()),
            unregistered: Condvar::new(),
            closing_at_shutdown: Mutex::new(HashSet::new()),
            closed_at_shutdown: Condvar::new(),
            next_connection: AtomicU64::new(1),
            next_subscription: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
            lifecycle: RwLock::new(()),
            reap: ReapQueue::new(),
            ready,
            connection_shared,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ManagerConfig {
        &self.config
    }

    /// The clock's wall reading now, in milliseconds (see [`Clock::now_ms`]).
    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// The clock's monotonic reading now, in milliseconds (see [`Clock::monotonic_ms`]).
    pub fn monotonic_ms(&self) -> u64 {
        self.clock.monotonic_ms()
    }

    /// Both clock readings now.
    pub(crate) fn reading(&self) -> Reading {
        Reading::of(&*self.clock)
    }

    /// Manager-wide statistics.
    pub fn stats(&self) -> RegistryStats {
        let connections = self.all_connections();
        let subscriptions = connections
            .iter()
            .map(|connection| connection.subscription_count())
            .sum();
        let mut stats = self.stats.snapshot(connections.len(), subscriptions);
        stats.topic_messages = self.topics.totals.appended.load(Ordering::Relaxed);
        stats.topic_write_failures = self.topics.totals.write_failures.load(Ordering::Relaxed);
        stats.consume_parks = self.topics.totals.parks.load(Ordering::Relaxed);
        stats
    }
}

impl Drop for ConnectionsManager {
    fn drop(&mut self) {
        // Connections and subscriptions reference each other until unregistered.
        let remaining: Vec<_> = lock(&self.connections).drain().map(|(_, c)| c).collect();
        for connection in remaining {
            self.close_connection(&connection);
        }
    }
}
