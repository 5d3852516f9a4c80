//! A connection's state: identity, authentication, heartbeat, the connection's two channels,
//! and the side paths that make sure nothing is lost when a channel is full.

use crate::clock::Reading;
use crate::connection::delivery::{Delivery, OtherDelivery};
use crate::connection::receiver::{EventReceiver, NotificationReceiver};
use crate::connection::subscription::{SubscriptionCore, SubscriptionState};
use crate::connection::subscription_map::SubscriptionMap;
use crate::stats::StatsCounters;
use crate::sync::{
    channel, lock, Arc, ArcSwapOption, AtomicBool, AtomicU64, AtomicU8, DataArc, LeanArc, Mutex,
    Ordering,
};
use crate::sync::{in_order, mutant};
use crate::types::ending::SubscriptionEnding;
use crate::types::ids::{ConnectionId, UserId, UserKey};
use crate::types::shared_commit::SharedCommit;

/// The sending side of a connection's notification channel (held inside livecore).
pub type NotificationSender = channel::Sender<Delivery>;
/// The sending side of a connection's event channel (held inside livecore).
pub type EventSender = channel::Sender<ConnectionEvent>;
/// A connection's state, shared between the manager and its subscriptions.
pub type SharedConnectionState = Arc<ConnectionState>;

/// Connection-level events for the host, on the connection's event channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ConnectionEvent {
    /// Time to send the client a ping.
    SendPing = 1,
    /// The client did not start authenticating in time: close it.
    AuthTimeout = 2,
    /// The client stopped answering heartbeats: close it.
    HeartbeatTimeout = 4,
    /// The manager is shutting down: close the connection.
    Shutdown = 8,
    /// The client reads too slowly and the slow-consumer policy is to disconnect: close it.
    SlowConsumer = 16,
}

impl ConnectionEvent {
    /// Every event, in the order a receiver reports pending ones.
    pub const ALL: [ConnectionEvent; 5] = [
        ConnectionEvent::Shutdown,
        ConnectionEvent::SlowConsumer,
        ConnectionEvent::AuthTimeout,
        ConnectionEvent::HeartbeatTimeout,
        ConnectionEvent::SendPing,
    ];

    pub(crate) fn bit(self) -> u8 {
        self as u8
    }

    /// The snake-case name used in JSON and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionEvent::SendPing => "send_ping",
            ConnectionEvent::AuthTimeout => "auth_timeout",
            ConnectionEvent::HeartbeatTimeout => "heartbeat_timeout",
            ConnectionEvent::Shutdown => "shutdown",
            ConnectionEvent::SlowConsumer => "slow_consumer",
        }
    }

    /// The event with this number (its `repr`, which is also its C ABI code), if any.
    pub fn from_code(code: u32) -> Option<ConnectionEvent> {
        ConnectionEvent::ALL
            .into_iter()
            .find(|event| u32::from(event.bit()) == code)
    }

    /// The event as one JSON object, `{"type":"event","event":"send_ping"}`: `type` tells
    /// it apart from a notification (whose `type` is its kind), `event` is
    /// [`as_str`](Self::as_str). An event carries nothing but its kind.
    pub fn to_json(self) -> String {
        let mut out = Vec::with_capacity(48);
        self.write_json(&mut out);
        String::from_utf8(out).expect("the JSON writer emits UTF-8")
    }

    /// Appends the event's JSON (see [`to_json`](Self::to_json)) to `out`.
    pub fn write_json(self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"type\":\"event\",\"event\":");
        crate::types::json::write_string(out, self.as_str());
        out.push(b'}');
    }
}

/// What a new connection gets: its id and the receiving ends of its two channels.
pub struct ConnectionRegistration {
    /// The connection's id.
    pub connection_id: ConnectionId,
    /// Notifications for the connection's subscriptions. One consumer at a time.
    pub notifications: NotificationReceiver,
    /// Connection-level events. One consumer at a time.
    pub events: EventReceiver,
}

/// Who the connection authenticated as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthenticatedUser {
    /// The user, as the host names it.
    pub user_id: UserId,
    /// The interned key of the user.
    pub user_key: UserKey,
    /// The role the host granted, if any.
    pub role: Option<String>,
}

/// Something a connection's notification receiver must report that did not travel through
/// the channel: a gap (deliveries dropped on a full channel) or a subscription that ended.
pub(crate) enum AttentionItem {
    Gap(LeanArc<SubscriptionCore>),
    Notice(LeanArc<SubscriptionCore>, SubscriptionEnding),
    /// A released core whose release marker found the channel full (see
    /// `connection::core_ref`): the receiver holds it until what was queued is processed.
    Release(LeanArc<SubscriptionCore>),
    /// A load whose completion marker found the channel full (see [`LateLoad`]).
    LoadComplete(LateLoad),
}

/// A load-complete marker that found the channel full, with the changes the load's gate
/// held, which follow it out of band too (into a full channel they would be dropped, or
/// cut the connection off); or, the marker sent, the held changes it left no room for.
/// The receiver hands them out once what was queued before them is processed, or before
/// the subscription's first change numbered above `after_attempt`, whichever comes first.
pub(crate) struct LateLoad {
    pub(crate) core: LeanArc<SubscriptionCore>,
    /// `None` when the marker went through the channel.
    pub(crate) marker: Option<DataArc<OtherDelivery>>,
    /// The number of the subscription's last delivery attempt before the marker: its
    /// replayed commits, which were queued ahead of it.
    pub(crate) after_attempt: u64,
    /// The held changes (source and match), numbered from `after_attempt + 1` in order.
    pub(crate) held: Vec<(SharedCommit, u32)>,
}

pub(crate) const ATTENTION_GAP: u8 = 1;
pub(crate) const ATTENTION_NOTICE: u8 = 2;
pub(crate) const ATTENTION_RELEASE: u8 = 4;
pub(crate) const ATTENTION_LOAD: u8 = 8;

/// In the pending-events word beside the events' flags: the Disconnect policy cut the
/// connection off. Set with the SlowConsumer flag in one step, so a receiver that sees the
/// cut-off finds the event pending; never cleared.
const CUT_OFF: u8 = 0x80;

/// What every connection of a manager shares, so each connection holds one pointer for it.
pub(crate) struct ConnectionShared {
    pub(crate) stats: Arc<StatsCounters>,
    /// The manager-wide ready queue, when enabled.
    pub(crate) ready: Option<channel::Sender<ConnectionId>>,
    /// Loom builds: cores the release protocol let go, parked (marked, not freed) so a
    /// model that reads one fails an assertion instead of reading freed memory.
    #[cfg(livecore_loom)]
    pub(crate) model_released: Mutex<Vec<LeanArc<SubscriptionCore>>>,
}

impl ConnectionShared {
    pub(crate) fn new(
        stats: Arc<StatsCounters>,
        ready: Option<channel::Sender<ConnectionId>>,
    ) -> Self {
        Self {
            stats,
            ready,
            #[cfg(livecore_loom)]
            model_released: Mutex::new(Vec::new()),
        }
    }

    /// Lets a released core go: nothing queued names it any more.
    pub(crate) fn let_go(&self, core: LeanArc<SubscriptionCore>) {
        #[cfg(livecore_loom)]
        {
            core.mark_model_released();
            lock(&self.model_released).push(core);
        }
        #[cfg(not(livecore_loom))]
        drop(core);
    }
}

/// One connection: identity, authentication, heartbeat, its subscriptions, and its channels.
// Laid out in declaration order: what every delivery touches (the channel, the ready
// queue) shares the first cache line with the reference count.
#[repr(C)]
pub struct ConnectionState {
    pub(crate) notification_tx: NotificationSender,
    /// The manager's statistics and ready queue.
    pub(crate) shared: Arc<ConnectionShared>,
    /// True while the connection's consumer waits for "something is ready".
    ready_armed: AtomicBool,
    /// Set by unregister once every subscription is unrouted; the receivers then report the
    /// end of the stream.
    closed: AtomicBool,
    /// Set by unregister, under the subscription map's lock, before it takes the map's
    /// subscriptions: from then on no subscription may be added.
    closing: AtomicBool,
    /// Set once authentication starts; the user is set once it completes (lock-free reads;
    /// writes take the subscription map's lock).
    auth_started: AtomicBool,
    /// Set once a timeout event has been raised, so it is raised once.
    timed_out: AtomicBool,
    attention_flags: AtomicU8,
    pending_events: AtomicU8,
    pub(crate) id: ConnectionId,
    /// When it registered: wall reading (reported), monotonic reading (the auth timeout).
    pub(crate) registered_at_ms: u64,
    pub(crate) event_tx: EventSender,
    user: ArcSwapOption<AuthenticatedUser>,
    /// The last heartbeat: wall reading (reported, in records compared across nodes) and
    /// monotonic reading (the heartbeat timeout), so a wall-clock step times nobody out.
    last_heartbeat_ms: AtomicU64,
    last_heartbeat_monotonic_ms: AtomicU64,
    /// The last ping (monotonic reading). Until authentication starts no ping is sent, and
    /// it holds the monotonic reading of the registration, which the auth timeout counts
    /// from (one field for both keeps a never-used connection 8 bytes smaller).
    last_ping_ms: AtomicU64,
    pub(crate) subscriptions: Mutex<SubscriptionMap>,
    /// Gaps and notices for the receiver; allocated when first used, since most connections
    /// never have any (a never-used connection holds one null pointer for it).
    attention: ArcSwapOption<Mutex<Vec<AttentionItem>>>,
}

impl ConnectionState {
    pub(crate) fn new(
        id: ConnectionId,
        now: Reading,
        notification_tx: NotificationSender,
        event_tx: EventSender,
        shared: Arc<ConnectionShared>,
    ) -> Self {
        let ready_queue_enabled = shared.ready.is_some();
        Self {
            notification_tx,
            shared,
            // Armed from the start, so a host need not arm a connection it never drained.
            ready_armed: AtomicBool::new(ready_queue_enabled),
            id,
            registered_at_ms: now.wall_ms,
            event_tx,
            auth_started: AtomicBool::new(false),
            user: ArcSwapOption::empty(),
            last_heartbeat_ms: AtomicU64::new(now.wall_ms),
            last_heartbeat_monotonic_ms: AtomicU64::new(now.monotonic_ms),
            last_ping_ms: AtomicU64::new(now.monotonic_ms),
            timed_out: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            subscriptions: Mutex::new(SubscriptionMap::default()),
            attention: ArcSwapOption::empty(),
            attention_flags: AtomicU8::new(0),
            pending_events: AtomicU8::new(0),
        }
    }

    /// The connection's id.
    pub fn id(&self) -> ConnectionId {
        self.id
    }

    /// When the connection registered: the manager clock's wall reading, in milliseconds.
    pub fn registered_at_ms(&self) -> u64 {
        self.registered_at_ms
    }

    /// The authenticated user, if any.
    pub fn user(&self) -> Option<AuthenticatedUser> {
        self.user.load_full().map(|user| (*user).clone())
    }

    /// True once authentication has started (or completed).
    pub fn auth_started(&self) -> bool {
        self.auth_started.load(Ordering::Acquire)
    }

    /// The last heartbeat: the manager clock's wall reading then, in milliseconds.
    pub fn last_heartbeat_ms(&self) -> u64 {
        self.last_heartbeat_ms.load(Ordering::Acquire)
    }

    /// Number of live subscriptions.
    pub fn subscription_count(&self) -> usize {
        lock(&self.subscriptions).active_count()
    }

    /// True once the connection has been unregistered.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    pub(crate) fn mark_auth_started(&self) {
        // Authentication starting after an auth timeout: from now on the heartbeat timeout
        // applies, so the connection is watched again.
        if !self.auth_started.swap(true, Ordering::AcqRel) {
            self.timed_out.store(false, Ordering::Release);
        }
    }

    /// Records the user; refuses a second, different user.
    pub(crate) fn set_user(&self, user: AuthenticatedUser) -> bool {
        let _writer = lock(&self.subscriptions);
        if let Some(existing) = self.user.load_full() {
            if existing.user_key != user.user_key {
                return false;
            }
        }
        self.auth_started.store(true, Ordering::Release);
        self.user.store(Some(Arc::new(user)));
        true
    }

    /// The authenticated user's key (lock-free).
    pub(crate) fn user_key(&self) -> Option<UserKey> {
        self.user.load().as_ref().map(|user| user.user_key)
    }

    /// The authenticated user's id (lock-free).
    pub(crate) fn user_id(&self) -> Option<UserId> {
        self.user.load().as_ref().map(|user| user.user_id.clone())
    }

    pub(crate) fn record_heartbeat(&self, now: Reading) {
        let before = self
            .last_heartbeat_monotonic_ms
            .fetch_max(now.monotonic_ms, Ordering::AcqRel);
        // The wall reading of the latest heartbeat, even if the wall clock stepped back.
        if now.monotonic_ms >= before {
            self.last_heartbeat_ms.store(now.wall_ms, Ordering::Release);
        }
        // A heartbeat re-arms the heartbeat timeout, but is no authentication: a connection
        // that timed out before authenticating stays timed out (its timeout is raised once).
        if self.auth_started() {
            self.timed_out.store(false, Ordering::Release);
        }
    }

    /// Decides which event, if any, the connection is due at monotonic reading `now_ms`.
    pub(crate) fn due_event(
        &self,
        now_ms: u64,
        auth_timeout_ms: u64,
        ping_interval_ms: u64,
        heartbeat_timeout_ms: u64,
    ) -> Option<ConnectionEvent> {
        if self.timed_out.load(Ordering::Acquire) {
            return None;
        }
        if !self.auth_started() {
            // Not yet authenticating: `last_ping_ms` still holds the registration's reading.
            let registered_ms = self.last_ping_ms.load(Ordering::Acquire);
            if now_ms.saturating_sub(registered_ms) >= auth_timeout_ms {
                self.timed_out.store(true, Ordering::Release);
                return Some(ConnectionEvent::AuthTimeout);
            }
            return None;
        }
        let since_heartbeat =
            now_ms.saturating_sub(self.last_heartbeat_monotonic_ms.load(Ordering::Acquire));
        if since_heartbeat >= heartbeat_timeout_ms {
            self.timed_out.store(true, Ordering::Release);
            return Some(ConnectionEvent::HeartbeatTimeout);
        }
        let last_ping = self.last_ping_ms.load(Ordering::Acquire);
        if now_ms.saturating_sub(last_ping) >= ping_interval_ms {
            self.last_ping_ms.store(now_ms, Ordering::Release);
            return Some(ConnectionEvent::SendPing);
        }
        None
    }

    /// Raises an event. It is kept as a pending flag first, so a full event channel delays
    /// it but never loses it; the channel message only wakes the receiver.
    pub(crate) fn raise_event(&self, event: ConnectionEvent) {
        // Mutant: the message goes out before the flag is set; a receiver that takes the
        // message first finds no flag, skips it and blocks: the event is lost to it.
        in_order(
            mutant!("event_sent_before_flag"),
            || {
                self.pending_events.fetch_or(event.bit(), Ordering::SeqCst);
            },
            || {
                let _ = self.event_tx.try_send(event);
            },
        );
        self.notify_ready();
    }

    /// Takes a pending event's flag; true if it was pending.
    pub(crate) fn take_event(&self, event: ConnectionEvent) -> bool {
        self.pending_events
            .fetch_and(!event.bit(), Ordering::SeqCst)
            & event.bit()
            != 0
    }

    /// Takes the most urgent pending event, if any.
    pub(crate) fn take_any_event(&self) -> Option<ConnectionEvent> {
        if self.pending_events.load(Ordering::SeqCst) & !CUT_OFF == 0 {
            return None;
        }
        ConnectionEvent::ALL
            .into_iter()
            .find(|event| self.take_event(*event))
    }

    pub(crate) fn has_pending_events(&self) -> bool {
        self.pending_events.load(Ordering::SeqCst) & !CUT_OFF != 0
    }

    /// First step of unregistering: refuses new subscriptions and takes the current ones.
    /// Both happen under the subscription map's lock, which `subscribe` holds while it
    /// checks [`is_closing`](Self::is_closing) and routes, so a racing subscribe is either
    /// refused or among those taken here (to be unrouted by the caller).
    pub(crate) fn begin_close(&self) -> Vec<SubscriptionState> {
        let mut subscriptions = lock(&self.subscriptions);
        let mut taken = Vec::new();
        // Mutant (the bug this method fixed): the flag lands after the map's lock is
        // released, so a racing subscribe can route a subscription nobody will unroute.
        in_order(
            mutant!("closing_flag_after_drain"),
            || self.closing.store(true, Ordering::Release),
            || {
                taken = subscriptions.take_all();
                // Ended for the receiver before the map is let go: a revocation that finds
                // them gone from the map and returns must not see a later commit of theirs
                // handed out while they wait to be unrouted.
                for state in &taken {
                    state.core.remove();
                }
                // The remembered endings go too (their cores with them): nothing can ask
                // for them again, and the receiver, which may live on, hands out nothing
                // more of a closed connection.
                subscriptions.forget_endings();
                drop(subscriptions);
            },
        );
        taken
    }

    /// True once unregistering has begun: no subscription may be added.
    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Last step of unregistering: marks the connection closed and wakes its receivers.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let _ = self.notification_tx.try_send(Delivery::wake());
        // An event message whose flag is not pending is only a wake-up: it lets a receiver
        // blocked on the event channel see that the connection closed.
        let _ = self.event_tx.try_send(ConnectionEvent::Shutdown);
        self.notify_ready();
    }

    /// Applies the Disconnect slow-consumer policy, once: cuts the connection off and
    /// raises [`ConnectionEvent::SlowConsumer`] in one step on the pending-events word, so
    /// a consumer that meets the end of its notifications finds the event pending, and the
    /// receiver hands out nothing from that moment. Then wakes the receivers.
    pub(crate) fn cut_off_slow_consumer(&self) {
        let event = ConnectionEvent::SlowConsumer;
        let cut = if mutant!("cut_off_before_event") {
            // Mutant: the cut-off, then the event, as two steps: a consumer can see its
            // stream end with no event to say why.
            let before = self.pending_events.fetch_or(CUT_OFF, Ordering::SeqCst);
            if before & CUT_OFF == 0 {
                self.pending_events.fetch_or(event.bit(), Ordering::SeqCst);
            }
            before & CUT_OFF == 0
        } else {
            self.pending_events
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |pending| {
                    (pending & CUT_OFF == 0).then_some(pending | CUT_OFF | event.bit())
                })
                .is_ok()
        };
        if !cut {
            return;
        }
        // No wake-up into the notification channel: the drop found it full, so its receiver
        // is not waiting on it (one that drained it meanwhile learns of the end with the
        // next delivery, or when the host, told by the event, unregisters the connection).
        let _ = self.event_tx.try_send(event);
        self.notify_ready();
    }

    /// True once the slow-consumer policy
    /// [`Disconnect`](crate::SlowConsumerPolicy::Disconnect) cut the connection off: its
    /// receiver hands out nothing more, gap notices included, and it takes no new
    /// subscription ([`LiveError::ConnectionCutOff`](crate::LiveError::ConnectionCutOff)).
    /// The host unregisters it.
    pub fn is_cut_off(&self) -> bool {
        self.pending_events.load(Ordering::Acquire) & CUT_OFF != 0
    }

    /// Records that `handle` lost deliveries to a full channel; the receiver reports the gap.
    pub(crate) fn flag_gap(&self, handle: &LeanArc<SubscriptionCore>) {
        if handle.take_attention_slot() {
            lock(&self.attention_list()).push(AttentionItem::Gap(handle.clone()));
        }
        // Mutant: the wake-up goes out before the flag is set; a receiver that consumes it
        // and looks before the flag lands blocks with the tail gap never reported.
        // The flag, then a wake-up for a receiver that drained the channel before it.
        in_order(
            mutant!("gap_wake_before_flag"),
            || {
                self.attention_flags
                    .fetch_or(ATTENTION_GAP, Ordering::SeqCst);
            },
            || {
                let _ = self.notification_tx.try_send(Delivery::wake());
            },
        );
        self.notify_ready();
    }

    /// Ends one of this connection's subscriptions on livecore's initiative and posts its
    /// terminal notice, only if this call is the one that ended it (a subscription gets
    /// exactly one); a resync is then counted in `stats`. Whoever takes the subscription
    /// out of the map remembers the ending.
    pub(crate) fn end_subscription(
        &self,
        core: &LeanArc<SubscriptionCore>,
        ending: SubscriptionEnding,
        stats: &StatsCounters,
    ) -> bool {
        if !core.end() {
            return false;
        }
        if ending == SubscriptionEnding::ResyncRequired {
            StatsCounters::add(&stats.resyncs, 1);
        }
        // Every ending livecore decides (resync, resume unavailable, schema change,
        // revocation, table dropped), once per subscription.
        #[cfg(feature = "tracing")]
        tracing::info!(live_query = %core.live_query_id(self.id), ending = ?ending, "livecore: subscription ended");
        self.post_notice(core, ending);
        true
    }

    /// Queues a terminal notice for `handle`; the receiver reports it on its next call.
    pub(crate) fn post_notice(
        &self,
        handle: &LeanArc<SubscriptionCore>,
        notice: SubscriptionEnding,
    ) {
        lock(&self.attention_list()).push(AttentionItem::Notice(handle.clone(), notice));
        self.attention_flags
            .fetch_or(ATTENTION_NOTICE, Ordering::SeqCst);
        let _ = self.notification_tx.try_send(Delivery::wake());
        self.notify_ready();
    }

    /// Hands a load-complete marker that found the channel full, and the changes its gate
    /// held, to the receiver out of band, so completing a load never waits for room: a busy
    /// connection's live traffic could otherwise take every slot the receiver frees, and
    /// the load would never end. Called under the gate's lock, before the gate opens: the
    /// subscription is marked (under the list's lock, so a receiver that takes the item at
    /// once clears the mark after it is set), so a receiver that takes a later change of it
    /// sees the marker waiting.
    pub(crate) fn post_load_marker(&self, late: LateLoad) {
        {
            let list = self.attention_list();
            let mut list = lock(&list);
            late.core.set_marker_waiting();
            list.push(AttentionItem::LoadComplete(late));
        }
        // The flag, then a wake-up for a receiver that drained the channel before it (as
        // for a gap).
        self.attention_flags
            .fetch_or(ATTENTION_LOAD, Ordering::SeqCst);
        let _ = self.notification_tx.try_send(Delivery::wake());
        self.notify_ready();
    }

    /// Takes a core whose last handle went (see `connection::core_ref`): let go at once if
    /// nothing of it can be queued or nobody will read the channel again, else released
    /// behind its deliveries by a marker, or (the channel full) held for the receiver.
    pub(crate) fn release_core(&self, core: LeanArc<SubscriptionCore>) {
        // Mutant: the core goes at once; a delivery still queued names a released core.
        if !core.may_have_queued() || mutant!("core_released_before_queue") {
            self.shared.let_go(core);
            return;
        }
        let marker = Delivery::other(OtherDelivery::Release(core));
        match self.notification_tx.try_send(marker) {
            Ok(()) => {}
            // No receiver: the queued deliveries are dropped unread.
            Err(channel::TrySendError::Disconnected(marker)) => self.let_go_marker(marker),
            Err(channel::TrySendError::Full(marker)) => {
                let Some(core) = marker.into_released() else {
                    return;
                };
                lock(&self.attention_list()).push(AttentionItem::Release(core));
                // The flag, then a wake-up for a receiver that drained the channel before
                // it (as for a gap).
                self.attention_flags
                    .fetch_or(ATTENTION_RELEASE, Ordering::SeqCst);
                let _ = self.notification_tx.try_send(Delivery::wake());
                self.notify_ready();
            }
        }
    }

    fn let_go_marker(&self, marker: Delivery) {
        if let Some(core) = marker.into_released() {
            self.shared.let_go(core);
        }
    }

    /// Released cores, and the cores of ended subscriptions whose out-of-band load waits,
    /// held for the receiver: they count against the connection's subscription limit (a
    /// connection never read cannot pile them up). A core is counted once, and the load of
    /// a subscription still in the map not at all (the map counts it).
    pub(crate) fn release_backlog(&self) -> usize {
        if self.attention_flags() & (ATTENTION_RELEASE | ATTENTION_LOAD) == 0 {
            return 0;
        }
        self.attention.load_full().map_or(0, |list| {
            let list = lock(&list);
            let released: Vec<*const SubscriptionCore> = list
                .iter()
                .filter_map(|item| match item {
                    AttentionItem::Release(core) => Some(LeanArc::as_ptr(core)),
                    _ => None,
                })
                .collect();
            let ended_loads = list
                .iter()
                .filter(|item| match item {
                    AttentionItem::LoadComplete(load) => {
                        load.core.is_ended() && !released.contains(&LeanArc::as_ptr(&load.core))
                    }
                    _ => false,
                })
                .count();
            released.len() + ended_loads
        })
    }

    pub(crate) fn attention_flags(&self) -> u8 {
        self.attention_flags.load(Ordering::SeqCst)
    }

    /// Takes the queued items of the kinds in `flags`, clearing those flags first so that
    /// anything flagged afterwards is seen by the next call.
    pub(crate) fn take_attention(&self, flags: u8) -> Vec<AttentionItem> {
        self.attention_flags.fetch_and(!flags, Ordering::SeqCst);
        let Some(list) = self.attention.load_full() else {
            return Vec::new();
        };
        let mut attention = lock(&list);
        let (taken, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut *attention)
            .into_iter()
            .partition(|item| match item {
                AttentionItem::Gap(_) => flags & ATTENTION_GAP != 0,
                AttentionItem::Notice(..) => flags & ATTENTION_NOTICE != 0,
                AttentionItem::Release(_) => flags & ATTENTION_RELEASE != 0,
                AttentionItem::LoadComplete(..) => flags & ATTENTION_LOAD != 0,
            });
        *attention = kept;
        taken
    }

    /// The attention list, allocated by the first caller that needs it (a racing caller
    /// that loses the swap uses the winner's list and frees its own).
    fn attention_list(&self) -> Arc<Mutex<Vec<AttentionItem>>> {
        if let Some(list) = self.attention.load_full() {
            return list;
        }
        let fresh = Arc::new(Mutex::new(Vec::new()));
        let previous = self
            .attention
            .compare_and_swap(&None::<Arc<_>>, Some(fresh.clone()));
        match &*previous {
            Some(winner) => winner.clone(),
            None => fresh,
        }
    }

    /// Tells the manager-wide ready queue, once per arming, that this connection has
    /// something for its consumer.
    #[inline]
    pub(crate) fn notify_ready(&self) {
        if let Some(queue) = &self.shared.ready {
            if self.ready_armed.load(Ordering::SeqCst)
                && self.ready_armed.swap(false, Ordering::SeqCst)
            {
                let _ = queue.try_send(self.id);
            }
        }
    }

    /// Arms the ready notification: the next delivery or event puts this connection on the
    /// ready queue. If something is already waiting, it is queued at once.
    pub(crate) fn arm_ready(&self, has_pending: impl Fn() -> bool) {
        if let Some(queue) = &self.shared.ready {
            // Mutant: arming after the check; a delivery landing between the check and the
            // arming sees the connection unarmed, and the wake-up is lost.
            let mut pending = false;
            in_order(
                mutant!("ready_armed_after_check"),
                || self.ready_armed.store(true, Ordering::SeqCst),
                || pending = has_pending(),
            );
            if pending && self.ready_armed.swap(false, Ordering::SeqCst) {
                let _ = queue.try_send(self.id);
            }
        }
    }
}

impl std::fmt::Debug for ConnectionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionState")
            .field("id", &self.id)
            .field("user", &self.user())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}
