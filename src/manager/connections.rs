//! Connections, from the manager's side: registering, authenticating, heartbeats, the
//! timeout checks (on the host's call or a background checker), unregistering, the ready
//! queue and shutdown.

use crate::connection::receiver::EventReceiver;
use crate::connection::receiver::NotificationReceiver;
use crate::connection::receiver::ReadyConnections;
use crate::connection::state::AuthenticatedUser;
use crate::connection::state::ConnectionEvent;
use crate::connection::state::ConnectionRegistration;
use crate::connection::state::ConnectionState;
use crate::connection::state::SharedConnectionState;
use crate::error::LiveError;
use crate::error::LiveResult;
use crate::manager::ConnectionsManager;
use crate::sync::channel;
use crate::sync::lock;
use crate::sync::mutant;
use crate::sync::read;
#[cfg(not(livecore_loom))]
use crate::sync::thread;
use crate::sync::Arc;
use crate::sync::Ordering;
use crate::types::ids::ConnectionId;
use crate::types::ids::UserId;
use crate::types::ids::UserKey;
use std::time::Duration;
use std::time::Instant;

/// What one `check_connections` pass raised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// Connections checked.
    pub checked: usize,
    /// `SendPing` events raised.
    pub pings: usize,
    /// `AuthTimeout` events raised.
    pub auth_timeouts: usize,
    /// `HeartbeatTimeout` events raised.
    pub heartbeat_timeouts: usize,
    /// Topic partition leases that expired (their partitions are free for other consumers,
    /// from the committed offset).
    pub leases_expired: usize,
}

/// What a shutdown did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Connections that were sent `Shutdown`.
    pub notified: usize,
    /// Connections the host unregistered before the timeout.
    pub closed_by_host: usize,
    /// Connections livecore unregistered when the timeout passed.
    pub forced: usize,
}

/// The background checker started by [`ConnectionsManager::spawn_checker`]; dropping it
/// stops the thread and waits for it.
#[cfg(not(livecore_loom))]
pub struct CheckerHandle {
    stop: Option<channel::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

#[cfg(not(livecore_loom))]
impl CheckerHandle {
    /// Stops the checker and waits for its thread.
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(not(livecore_loom))]
impl Drop for CheckerHandle {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

impl ConnectionsManager {
    /// Registers a connection and returns its receivers. Refused when the manager is
    /// shutting down or full.
    pub fn register_connection(&self) -> LiveResult<ConnectionRegistration> {
        // Mutant: the flag checked before the lock; shutdown can set it and walk the map
        // in between, and the registration lands in a map nobody will walk again.
        let unlocked_check = mutant!("register_unlocked_shutdown_check");
        if unlocked_check && self.shutting_down.load(Ordering::Acquire) {
            return Err(LiveError::ShuttingDown);
        }
        let mut connections = lock(&self.connections);
        // Checked under the connection map's lock, which shutdown takes after setting the
        // flag: a registration either is refused or is in the map shutdown walks.
        if !unlocked_check && self.shutting_down.load(Ordering::Acquire) {
            return Err(LiveError::ShuttingDown);
        }
        if connections.len() >= self.config.max_connections {
            return Err(LiveError::ConnectionLimitReached {
                max: self.config.max_connections,
            });
        }
        let id = ConnectionId(self.next_connection.fetch_add(1, Ordering::Relaxed));
        let (notification_tx, notification_rx) = self.channels.take();
        let (event_tx, event_rx) = channel::bounded(self.config.event_channel_capacity);
        let state = Arc::new(ConnectionState::new(
            id,
            self.reading(),
            notification_tx,
            event_tx,
            self.connection_shared.clone(),
        ));
        connections.insert(id, state.clone());
        drop(connections);
        #[cfg(feature = "tracing")]
        tracing::debug!(connection = %id, "livecore: connection registered");
        Ok(ConnectionRegistration {
            connection_id: id,
            notifications: NotificationReceiver::new(notification_rx, state.clone()),
            events: EventReceiver::new(event_rx, state),
        })
    }

    /// The state of a registered connection. An id not registered is
    /// [`LiveError::UnknownConnection`], or [`LiveError::ShuttingDown`] once a
    /// [`shutdown`](Self::shutdown) began (it closes the connections the host did not
    /// unregister in time, and forgets them).
    pub fn connection(&self, connection_id: ConnectionId) -> LiveResult<SharedConnectionState> {
        let found = self.registered(connection_id);
        found.ok_or_else(|| self.not_registered(connection_id))
    }

    /// The connection, if registered (never waits).
    pub(crate) fn registered(&self, connection_id: ConnectionId) -> Option<SharedConnectionState> {
        lock(&self.connections).get(&connection_id).cloned()
    }

    /// The error for a connection id that is not registered: after a shutdown began, the
    /// connection may have been one it closed, so the caller is told the manager shut down
    /// once that close is over (a shutdown empties the map first and closes what it took
    /// after: without the wait, a host hearing its connection is gone could still receive
    /// from it). The caller holds none of the locks a close takes (the lifecycle lock, the
    /// connection's).
    pub(crate) fn not_registered(&self, connection_id: ConnectionId) -> LiveError {
        if !self.is_shutting_down() {
            return LiveError::UnknownConnection(connection_id);
        }
        let mut closing = lock(&self.closing_at_shutdown);
        while closing.contains(&connection_id) {
            closing = match self.closed_at_shutdown.wait(closing) {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
        }
        LiveError::ShuttingDown
    }

    /// As [`not_registered`](Self::not_registered), without waiting: for a caller holding
    /// the connection's own locks, which its close takes.
    pub(crate) fn not_registered_now(&self, connection_id: ConnectionId) -> LiveError {
        if self.is_shutting_down() {
            LiveError::ShuttingDown
        } else {
            LiveError::UnknownConnection(connection_id)
        }
    }

    /// Records that the connection began authenticating (stops the auth timeout; from then
    /// on the heartbeat timeout applies, also after an auth timeout was raised).
    pub fn mark_auth_started(&self, connection_id: ConnectionId) -> LiveResult<()> {
        self.connection(connection_id)?.mark_auth_started();
        Ok(())
    }

    /// Records the connection's user and optional role; returns the user's interned key.
    /// Authenticating again as the same user is allowed; as another user it is refused.
    pub fn authenticate(
        &self,
        connection_id: ConnectionId,
        user_id: UserId,
        role: Option<String>,
    ) -> LiveResult<UserKey> {
        let connection = self.connection(connection_id)?;
        let user_key = self.index.intern_user(&user_id);
        let user = AuthenticatedUser {
            user_id,
            user_key,
            role,
        };
        if !connection.set_user(user) {
            return Err(LiveError::AlreadyAuthenticated(connection_id));
        }
        connection.record_heartbeat(self.reading());
        #[cfg(feature = "tracing")]
        tracing::debug!(connection = %connection_id, user = %connection.user_id().map(|u| u.to_string()).unwrap_or_default(), "livecore: connection authenticated");
        Ok(user_key)
    }

    /// Records a heartbeat (any sign of life from the client). It re-arms the heartbeat
    /// timeout of a connection that has started authenticating; it is no authentication,
    /// so a connection whose auth timeout was raised is not watched again until it starts.
    pub fn heartbeat(&self, connection_id: ConnectionId) -> LiveResult<()> {
        self.connection(connection_id)?
            .record_heartbeat(self.reading());
        Ok(())
    }

    /// Unregisters a connection. Every subscription of it has left the routing index when
    /// this returns, and its receivers hand out nothing more of them; once drained they
    /// report [`ReceiveError::Closed`](crate::ReceiveError::Closed). If it is a topic
    /// consumer, its leases end (what it did not commit is handed out again) and a consume
    /// it has parked returns [`LiveError::UnknownConnection`].
    ///
    /// Once a [`shutdown`](Self::shutdown) began, an id not registered (one the host
    /// unregistered already, or one the shutdown took to close, once closed) is
    /// [`LiveError::ShuttingDown`]: there is nothing more to release.
    pub fn unregister_connection(&self, connection_id: ConnectionId) -> LiveResult<()> {
        let removed = lock(&self.connections).remove(&connection_id);
        let connection = removed.ok_or_else(|| self.not_registered(connection_id))?;
        self.close_connection(&connection);
        self.unregistered.notify_all();
        #[cfg(feature = "tracing")]
        tracing::debug!(connection = %connection_id, "livecore: connection unregistered");
        Ok(())
    }

    pub(crate) fn close_connection(&self, connection: &SharedConnectionState) {
        let _lifecycle = read(&self.lifecycle);
        for state in connection.begin_close() {
            self.unroute(&state.core);
        }
        connection.close();
        // After `close`: a consumer session created concurrently sees the connection closed.
        self.end_consumer_session(connection.id());
    }

    /// Number of registered connections.
    pub fn connection_count(&self) -> usize {
        lock(&self.connections).len()
    }

    pub(crate) fn all_connections(&self) -> Vec<SharedConnectionState> {
        lock(&self.connections).values().cloned().collect()
    }

    /// Checks every connection's timers at `now_ms` and raises, through each connection's
    /// event channel: `AuthTimeout` for a connection that never started authenticating,
    /// `HeartbeatTimeout` for one whose client went quiet, `SendPing` when a ping is due.
    /// A timeout is raised once. It also expires topic partition leases not renewed in
    /// time, waking consumers waiting for those partitions.
    ///
    /// `now_ms` is a wall reading of the manager clock ([`now_ms`](Self::now_ms), or a
    /// time ahead of it to look ahead); the timers run on the monotonic reading, so the
    /// check runs at the monotonic reading as far from now as `now_ms` is from the wall
    /// reading now. A wall-clock step between two checks moves no timer.
    pub fn check_connections(&self, now_ms: u64) -> CheckReport {
        let now_ms = self.reading().monotonic_at(now_ms);
        self.check_connections_at(now_ms)
    }

    /// `check_connections` at monotonic reading `now_ms`.
    fn check_connections_at(&self, now_ms: u64) -> CheckReport {
        self.reap_closed_subscriptions();
        let millis = |duration: Duration| duration.as_millis() as u64;
        let (auth, ping, heartbeat) = (
            millis(self.config.auth_timeout),
            millis(self.config.ping_interval),
            millis(self.config.heartbeat_timeout),
        );
        let mut report = CheckReport {
            leases_expired: self.sweep_topic_leases(now_ms),
            ..CheckReport::default()
        };
        for connection in self.all_connections() {
            report.checked += 1;
            let Some(event) = connection.due_event(now_ms, auth, ping, heartbeat) else {
                continue;
            };
            match event {
                ConnectionEvent::SendPing => report.pings += 1,
                ConnectionEvent::AuthTimeout => report.auth_timeouts += 1,
                ConnectionEvent::HeartbeatTimeout => report.heartbeat_timeouts += 1,
                _ => {}
            }
            #[cfg(feature = "tracing")]
            if event != ConnectionEvent::SendPing {
                tracing::info!(connection = %connection.id(), event = event.as_str(), "livecore: connection timed out");
            }
            connection.raise_event(event);
        }
        report
    }

    /// [`check_connections`](Self::check_connections) at the clock's current reading.
    pub fn check_connections_now(&self) -> CheckReport {
        self.check_connections_at(self.clock.monotonic_ms())
    }

    /// Starts a background thread that calls `check_connections` every `interval`, for
    /// hosts that want no timer of their own. It stops when the handle is dropped or the
    /// manager shuts down.
    #[cfg(not(livecore_loom))]
    pub fn spawn_checker(self: &Arc<Self>, interval: Duration) -> CheckerHandle {
        let (stop_tx, stop_rx) = channel::bounded::<()>(1);
        let manager = Arc::downgrade(self);
        let thread = thread::spawn(move || loop {
            match stop_rx.recv_timeout(interval) {
                Err(channel::RecvTimeoutError::Timeout) => {}
                _ => return,
            }
            let Some(manager) = manager.upgrade() else {
                return;
            };
            if manager.shutting_down.load(Ordering::Acquire) {
                return;
            }
            manager.check_connections_now();
        });
        CheckerHandle {
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Shuts down: new connections and subscriptions are refused, every connection gets
    /// `Shutdown`, and the host has until `timeout` to unregister them; any still
    /// registered then are unregistered by livecore. Every parked topic consume wakes at
    /// once and returns [`LiveError::ShuttingDown`], as does any consume called afterwards.
    pub fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        #[cfg(feature = "tracing")]
        let _span =
            tracing::info_span!("livecore.shutdown", timeout_ms = timeout.as_millis() as u64)
                .entered();
        let deadline = Instant::now() + timeout;
        let mut report = ShutdownReport::default();
        let mut connections = lock(&self.connections);
        self.shutting_down.store(true, Ordering::Release);
        for connection in connections.values() {
            connection.raise_event(ConnectionEvent::Shutdown);
            report.notified += 1;
        }
        self.wake_consumer_sessions();
        while !connections.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            connections = match self.unregistered.wait_timeout(connections, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        let remaining: Vec<_> = connections.drain().map(|(_, state)| state).collect();
        // Closing until closed, from the moment they leave the map (under its lock): a call
        // naming one of them meanwhile waits for its close.
        lock(&self.closing_at_shutdown).extend(remaining.iter().map(|state| state.id()));
        drop(connections);
        report.forced = remaining.len();
        report.closed_by_host = report.notified - report.forced;
        let forced_any = !remaining.is_empty();
        {
            // Each id leaves the closing set once its connection is closed, or, should a
            // close panic, as this unwinds: a call waiting on one must not wait for ever.
            let mut closing = ClosingAtShutdown {
                manager: self,
                left: remaining.iter().map(|state| state.id()).collect(),
            };
            for connection in &remaining {
                self.close_connection(connection);
                closing.closed(connection.id());
            }
        }
        // A shutdown waiting on another thread (a longer timeout) is done too: it waits
        // for the map to empty, which this did, and then (below) for the closes.
        if forced_any {
            self.unregistered.notify_all();
        }
        let mut closing = lock(&self.closing_at_shutdown);
        while !closing.is_empty() {
            closing = match self.closed_at_shutdown.wait(closing) {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
        }
        drop(closing);
        #[cfg(feature = "tracing")]
        tracing::info!(
            notified = report.notified,
            forced = report.forced,
            "livecore: shut down"
        );
        report
    }

    /// True once shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// The manager-wide ready queue, when [`ManagerConfig::ready_queue`](crate::ManagerConfig::ready_queue) is on.
    pub fn ready_connections(&self) -> Option<ReadyConnections> {
        self.ready
            .as_ref()
            .map(|(_, rx)| ReadyConnections { rx: rx.clone() })
    }
}

/// The connections a shutdown is closing, taken out of the manager's closing set one by
/// one as they close, and all at once if a close panics.
struct ClosingAtShutdown<'a> {
    manager: &'a ConnectionsManager,
    left: Vec<ConnectionId>,
}

impl ClosingAtShutdown<'_> {
    fn closed(&mut self, id: ConnectionId) {
        self.left.retain(|left| *left != id);
        lock(&self.manager.closing_at_shutdown).remove(&id);
        self.manager.closed_at_shutdown.notify_all();
    }
}

impl Drop for ClosingAtShutdown<'_> {
    fn drop(&mut self) {
        if self.left.is_empty() {
            return;
        }
        let mut closing = lock(&self.manager.closing_at_shutdown);
        for id in self.left.drain(..) {
            closing.remove(&id);
        }
        drop(closing);
        self.manager.closed_at_shutdown.notify_all();
    }
}
