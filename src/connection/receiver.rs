//! The receiving ends handed to the host: livecore's own types over flume.
//!
//! A [`NotificationReceiver`] turns deliveries into [`Notification`]s. It skips deliveries
//! of subscriptions that ended after the send (so nothing arrives after `unsubscribe`
//! returns, with no lock on the publish path), reports gaps — in place, when a later
//! delivery's number shows some were dropped, and at the end of the queue when nothing
//! followed — and reports subscriptions that livecore ended. An [`EventReceiver`] reports
//! connection events, which are kept as pending flags so a full event channel never loses
//! one. Both offer blocking, timed, non-blocking and async receives, and each has one
//! consumer at a time (`&mut self`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::connection::core_ref::{CoreRef, ReleasedCores};
use crate::connection::delivery::{
    ChangeSet, Delivery, DeliveryKind, Notification, OtherDelivery, SnapshotBatch, NO_BOUNDARY,
};
use crate::connection::state::{
    AttentionItem, ConnectionEvent, LateLoad, SharedConnectionState, ATTENTION_GAP, ATTENTION_LOAD,
    ATTENTION_NOTICE, ATTENTION_RELEASE,
};
use crate::connection::subscription::SubscriptionCore;
use crate::stats::StatsCounters;
use crate::sync::mutant;
use crate::sync::{channel, DataArc, LeanArc};
use crate::types::ending::SubscriptionEnding;
use crate::types::ids::{ConnectionId, SeqId, SubscriptionId};
use crate::types::shared_commit::{MatchedSource, SharedCommit};

/// Why a receive returned nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiveError {
    /// Nothing is waiting (non-blocking receive).
    Empty,
    /// Nothing arrived before the timeout.
    Timeout,
    /// The connection was unregistered (or disconnected as a slow consumer): nothing more is
    /// handed out. What was still queued is dropped, by this receive once the connection is
    /// unregistered (or when the receiver is dropped), and counted in
    /// [`RegistryStats::discarded`](crate::RegistryStats::discarded); a connection cut off as a slow
    /// consumer keeps its channel full until then, so what is published to it meanwhile is
    /// dropped and counted rather than queued.
    Closed,
}

impl std::fmt::Display for ReceiveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReceiveError::Empty => "nothing to receive",
            ReceiveError::Timeout => "timed out waiting",
            ReceiveError::Closed => "the connection is closed",
        })
    }
}

impl std::error::Error for ReceiveError {}

#[derive(Clone, Copy)]
enum Wait {
    No,
    Forever,
    Until(Instant),
}

impl Wait {
    /// Blocks on `rx` as far as this wait allows: `Ok(Some(item))` when one arrives,
    /// `Ok(None)` when a timed wait woke without one (re-check, then wait again), or why
    /// nothing can come now.
    fn block<T>(self, rx: &channel::Receiver<T>) -> Result<Option<T>, ReceiveError> {
        match self {
            Wait::No => Err(ReceiveError::Empty),
            Wait::Forever => rx.recv().map(Some).map_err(|_| ReceiveError::Closed),
            Wait::Until(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(ReceiveError::Timeout);
                }
                match rx.recv_timeout(left) {
                    Ok(item) => Ok(Some(item)),
                    Err(channel::RecvTimeoutError::Timeout) => Ok(None),
                    Err(channel::RecvTimeoutError::Disconnected) => Err(ReceiveError::Closed),
                }
            }
        }
    }
}

/// A notification built before its turn to be handed out, with its subscription: between
/// the two, the host may unsubscribe it or unregister the connection (after which nothing
/// of it is handed out, not even what was already queued), or livecore may end it (after
/// which its data is skipped and only its terminal notice goes out).
struct Prepared {
    core: LeanArc<SubscriptionCore>,
    notification: Notification,
}

impl Prepared {
    /// True when the notification may still be handed out.
    fn still_due(&self) -> bool {
        // Mutant: what was prepared goes out whatever happened since (the changes behind
        // a gap notice are handed out after unsubscribe returned).
        if mutant!("prepared_not_rechecked") {
            return true;
        }
        match self.notification {
            Notification::ResyncRequired { .. }
            | Notification::ResumeUnavailable { .. }
            | Notification::Closed { .. } => !self.core.is_removed(),
            _ => !self.core.is_ended(),
        }
    }
}

/// A load-complete marker that found the channel full, with the changes its gate held
/// (see `ConnectionState::post_load_marker`), taken from the attention list.
struct LateMarker {
    /// The `popped` count after which everything queued before the marker was posted has
    /// been taken: the marker is due then, if its subscription's next change did not come
    /// first.
    due: u64,
    load: LateLoad,
}

/// Receives a connection's notifications. One consumer at a time.
pub struct NotificationReceiver {
    rx: channel::Receiver<Delivery>,
    connection: SharedConnectionState,
    /// Notifications produced ahead of their turn (a gap before a change, the changes
    /// after it, terminal notices), each checked again when its turn comes.
    ready: VecDeque<Prepared>,
    /// Released subscription cores held until the deliveries queued before their release
    /// are processed (`connection::core_ref`).
    released: ReleasedCores,
    /// Load-complete markers that went out of band, until they are handed out.
    late_markers: Vec<LateMarker>,
}

impl NotificationReceiver {
    pub(crate) fn new(rx: channel::Receiver<Delivery>, connection: SharedConnectionState) -> Self {
        Self {
            rx,
            connection,
            ready: VecDeque::new(),
            released: ReleasedCores::new(),
            late_markers: Vec::new(),
        }
    }

    /// The connection this receiver belongs to.
    pub fn connection_id(&self) -> ConnectionId {
        self.connection.id
    }

    /// Waits for the next notification.
    // `#[inline]` on the receives: without it a host's crate calls them, and gets the
    // notification back through memory it then copies 16 bytes at a time right after the
    // receive wrote it 8 (a store-forwarding stall); inlined, the common case is built where
    // the host uses it. A 10k-receiver drain measured about a fifth less per notification.
    #[inline]
    pub fn recv(&mut self) -> Result<Notification, ReceiveError> {
        self.next(Wait::Forever)
    }

    /// Returns the next notification if one is waiting.
    ///
    /// `&mut self`, as every receive here: a receiver has one consumer by design. Gap
    /// notices are made from what the receiver saw last, and a connection's commits are
    /// handed out in order; two threads taking turns on one receiver would split one
    /// subscription's stream between them and lose that order. Serve a connection from one
    /// task or thread; to serve many from one thread, use the ready queue.
    #[inline]
    pub fn try_recv(&mut self) -> Result<Notification, ReceiveError> {
        self.next(Wait::No)
    }

    /// Waits up to `timeout` for the next notification.
    #[inline]
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Notification, ReceiveError> {
        // What is already waiting is taken without reading the clock.
        match self.next(Wait::No) {
            Err(ReceiveError::Empty) => self.recv_within(timeout),
            taken => taken,
        }
    }

    /// A timeout too long for a deadline (`Duration::MAX`) waits without one.
    #[inline(never)]
    fn recv_within(&mut self, timeout: Duration) -> Result<Notification, ReceiveError> {
        let wait = Instant::now()
            .checked_add(timeout)
            .map_or(Wait::Forever, Wait::Until);
        self.next(wait)
    }

    /// Waits for the next notification without blocking a thread.
    #[cfg(not(livecore_loom))]
    pub async fn recv_async(&mut self) -> Result<Notification, ReceiveError> {
        loop {
            match self.next(Wait::No) {
                Err(ReceiveError::Empty) => {}
                other => return other,
            }
            match self.rx.recv_async().await {
                Ok(delivery) => {
                    if let Some(notification) = self.process(delivery) {
                        return Ok(notification);
                    }
                }
                Err(_) => return self.next(Wait::No).map_err(|_| ReceiveError::Closed),
            }
        }
    }

    /// Items queued in the channel: deliveries, including ones that will be skipped, and
    /// livecore's own markers (a removed subscription's release follows its deliveries).
    pub fn queued(&self) -> usize {
        self.rx.len()
    }

    /// For hosts using the manager's ready queue: asks to have this connection put on the
    /// queue when it next has something to read. Call it after draining the receivers; if
    /// something is already waiting, the connection is queued at once.
    pub fn arm_ready(&self) {
        let connection = &self.connection;
        connection.arm_ready(|| {
            !self.ready.is_empty()
                || !self.late_markers.is_empty()
                || !self.rx.is_empty()
                || connection.attention_flags() != 0
                || connection.has_pending_events()
                || connection.is_cut_off()
                || connection.is_closed()
        });
    }

    /// The next notification. The common cases (no held core due, nothing ready, no flag
    /// raised, and a delivery waiting or, for a poll, none) are inlined into each receive;
    /// anything else goes to `next_slow`, which starts over with every check.
    #[inline(always)]
    fn next(&mut self, wait: Wait) -> Result<Notification, ReceiveError> {
        if !self.released.any_due()
            && self.ready.is_empty()
            && self.late_markers.is_empty()
            && self.connection.attention_flags() == 0
            && !self.connection.is_cut_off()
        {
            match self.rx.try_recv() {
                // A change of a live subscription, the common case, is built right where it
                // is returned: through `process`, it went through a temporary and was
                // copied out.
                Ok(Delivery(DeliveryKind::Changes { core, source })) => {
                    self.released.count_popped();
                    if let Some(notification) = self.changes(&core, source) {
                        return Ok(notification);
                    }
                }
                Ok(Delivery(DeliveryKind::Other(other))) => {
                    self.released.count_popped();
                    if let Some(notification) = self.other(other) {
                        return Ok(notification);
                    }
                }
                // A poll of an empty channel ends here, as the full loop would end it: no
                // flag was raised before the channel was found empty, and none can have
                // been raised for a gap since (a drop needs the channel full, and only
                // this receiver takes from it).
                Err(channel::TryRecvError::Empty)
                    if matches!(wait, Wait::No) && !self.connection.is_closed() =>
                {
                    return Err(ReceiveError::Empty);
                }
                Err(_) => {}
            }
        }
        self.next_slow(wait)
    }

    #[inline(never)]
    fn next_slow(&mut self, wait: Wait) -> Result<Notification, ReceiveError> {
        loop {
            self.let_go_due();
            // Before what was prepared: once the connection is unregistered (or cut off as
            // a slow consumer), nothing more is handed out, not even a terminal notice.
            if self.connection.is_cut_off() || self.connection.is_closed() {
                self.discard_queued();
                return Err(ReceiveError::Closed);
            }
            if let Some(prepared) = self.ready.pop_front() {
                if prepared.still_due() {
                    self.count_handed_out(&prepared.notification);
                    return Ok(prepared.notification);
                }
                if matches!(prepared.notification, Notification::Changes(_)) {
                    self.count_discarded(1);
                }
                continue;
            }
            let flags = self.connection.attention_flags();
            if flags & ATTENTION_NOTICE != 0 {
                self.collect_notices();
                continue;
            }
            if flags & ATTENTION_RELEASE != 0 {
                self.take_released();
            }
            if flags & ATTENTION_LOAD != 0 {
                self.take_late_markers();
            }
            if self.hand_out_due_markers() {
                continue;
            }
            if self.connection.is_cut_off() {
                self.discard_queued();
                return Err(ReceiveError::Closed);
            }
            match self.rx.try_recv() {
                Ok(delivery) => {
                    if let Some(notification) = self.process(delivery) {
                        return Ok(notification);
                    }
                    continue;
                }
                Err(channel::TryRecvError::Disconnected) => return Err(ReceiveError::Closed),
                Err(channel::TryRecvError::Empty) => {}
            }
            // The channel is empty: now is the time to report gaps at the end of the queue.
            if self.connection.attention_flags() & ATTENTION_GAP != 0 {
                self.collect_gaps();
                if !self.ready.is_empty() {
                    continue;
                }
            }
            if self.connection.is_closed() {
                return Err(ReceiveError::Closed);
            }
            let Some(delivery) = wait.block(&self.rx)? else {
                continue;
            };
            if let Some(notification) = self.process(delivery) {
                return Ok(notification);
            }
        }
    }

    /// Lets go the released cores that nothing queued can name any more. Called only
    /// between deliveries, never while one is being processed.
    #[inline(always)]
    fn let_go_due(&mut self) {
        if let Some(due) = self.released.take_due() {
            due.into_iter()
                .for_each(|core| self.connection.shared.let_go(core));
        }
    }

    /// A disconnected connection hands nothing out again: what is queued now is dropped
    /// unread, and the released cores it held back are let go (nothing unread names them).
    ///
    /// A connection cut off as a slow consumer keeps its channel as the drop left it, full:
    /// publishes until the host unregisters it are then dropped, and counted so, rather
    /// than queued, counted as delivered and thrown away by the next receive. (What is
    /// queued goes at the first receive after the host unregisters the connection, or when
    /// this receiver is dropped. A delivery the receiver took in the moment before it saw
    /// the cut-off frees a slot, which one later publish may fill, counted as delivered.)
    fn discard_queued(&mut self) {
        let prepared = self
            .ready
            .drain(..)
            .filter(|prepared| matches!(prepared.notification, Notification::Changes(_)))
            .count();
        self.count_discarded(prepared as u64);
        self.discard_late_markers();
        if !self.connection.is_closed() && self.connection.is_cut_off() {
            return;
        }
        // And the markers posted out of band since, with the changes their gates held.
        self.take_late_markers();
        self.discard_late_markers();
        self.take_released();
        let mut changes = 0;
        for _ in 0..self.rx.len() {
            let Ok(delivery) = self.rx.try_recv() else {
                break;
            };
            changes += u64::from(delivery.is_change());
            drop(delivery);
            self.released.count_popped();
        }
        self.count_discarded(changes);
        self.let_go_due();
    }

    /// Drops the out-of-band load-complete markers taken so far, counting the changes their
    /// gates held (counted as delivered when the load completed).
    fn discard_late_markers(&mut self) {
        let held: usize = self
            .late_markers
            .drain(..)
            .map(|late| late.load.held.len())
            .sum();
        self.count_discarded(held as u64);
    }

    /// Counts `count` change deliveries discarded unread (see `RegistryStats::discarded`).
    #[cold]
    fn count_discarded(&self, count: u64) {
        StatsCounters::add(&self.connection.shared.stats.discarded, count);
    }

    /// Takes the released cores the connection holds for this receiver (their release
    /// markers found the channel full), to let go once what is queued now is processed.
    fn take_released(&mut self) {
        let cores = self
            .connection
            .take_attention(ATTENTION_RELEASE)
            .into_iter()
            .filter_map(|item| match item {
                AttentionItem::Release(core) => Some(core),
                _ => None,
            })
            .collect();
        let free = self.released.hold(cores, self.rx.len());
        free.into_iter()
            .for_each(|core| self.connection.shared.let_go(core));
    }

    /// Turns a delivery into a notification, or `None` when it is skipped. Inlined, with
    /// the change delivery's path inlined too and everything else out of line: per
    /// delivery, a call and a copy of the notification fewer.
    #[inline(always)]
    fn process(&mut self, delivery: Delivery) -> Option<Notification> {
        self.released.count_popped();
        match delivery.0 {
            DeliveryKind::Changes { core, source } => self.changes(&core, source),
            DeliveryKind::Other(other) => self.other(other),
        }
    }

    /// A change delivery's notification (`None` when its subscription ended).
    ///
    /// Built as the `Notification` it is returned as: returning the change set and
    /// wrapping it in the caller made the compiler copy it through the stack in pieces,
    /// re-reading its last word eight bytes wide right after writing four of them (a
    /// store-forwarding stall, about a tenth of a drained delivery's time).
    #[inline(always)]
    fn changes(&mut self, core_ref: &CoreRef, source: MatchedSource) -> Option<Notification> {
        // SAFETY: this receiver took the delivery from its connection's channel, and lets
        // released cores go only between deliveries (`let_go_due`).
        let core = unsafe { core_ref.core() };
        // Mutant: trusting the index alone; what was queued before unsubscribe (or
        // unregister) returned is still handed out after it.
        if !mutant!("receiver_keeps_ended") && core.is_ended() {
            self.count_discarded(1);
            return None;
        }
        // Mutant: the change goes out without looking for a marker that waits out of
        // band; a change the flush queued is handed out before its load-complete marker.
        if core.marker_waiting() && !mutant!("change_ahead_of_late_marker") {
            return self
                .change_behind_marker(core, source)
                .map(Notification::Changes);
        }
        let (source, matched) = source.into_parts();
        // Numbered by its place: the one after the last handed out (a delivery that
        // follows a drop comes as `Resumed`, with its number).
        core.take_next_number(source.seq);
        Some(Notification::Changes(ChangeSet::new(
            source,
            core,
            self.connection.id,
            matched,
        )))
    }

    /// The first change of a subscription whose load-complete marker waits out of band:
    /// the marker is handed out first, and the change set queued to follow it.
    #[cold]
    #[inline(never)]
    fn change_behind_marker(
        &mut self,
        core: &SubscriptionCore,
        source: MatchedSource,
    ) -> Option<ChangeSet> {
        // Numbered by its place: one past the last handed out.
        let marker_core = self.marker_first(core.id, core.received_number() + 1);
        let (source, matched) = source.into_parts();
        core.take_next_number(source.seq);
        let changes = ChangeSet::new(source, core, self.connection.id, matched);
        let Some(marker_core) = marker_core else {
            return Some(changes);
        };
        self.ready.push_back(Prepared {
            core: marker_core,
            notification: Notification::Changes(changes),
        });
        None
    }

    /// Before the subscription's delivery attempt `number` is handed out: queues the
    /// waiting load-complete marker of subscription `id` to be handed out next, ahead of
    /// whatever the caller queues after it, if the attempt came after the marker. Returns
    /// its core, or `None` when no marker of it waits or the attempt came first (a
    /// replayed commit, queued before it).
    fn marker_first(
        &mut self,
        id: SubscriptionId,
        number: u64,
    ) -> Option<LeanArc<SubscriptionCore>> {
        self.take_late_markers();
        let at = self
            .late_markers
            .iter()
            .position(|late| late.load.core.id == id && number > late.load.after_attempt)?;
        let late = self.late_markers.remove(at);
        let core = late.load.core.clone();
        self.hand_out_marker(late.load);
        Some(core)
    }

    /// Takes the markers posted out of band, each due once what is queued now is taken.
    fn take_late_markers(&mut self) {
        let due = self.released.popped() + self.rx.len() as u64;
        for item in self.connection.take_attention(ATTENTION_LOAD) {
            if let AttentionItem::LoadComplete(load) = item {
                self.late_markers.push(LateMarker { due, load });
            }
        }
    }

    /// Queues the markers that are due; true when something is now ready.
    fn hand_out_due_markers(&mut self) -> bool {
        let popped = self.released.popped();
        if !self.late_markers.iter().any(|late| late.due <= popped) {
            return false;
        }
        let (due, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.late_markers)
            .into_iter()
            .partition(|late| late.due <= popped);
        self.late_markers = waiting;
        due.into_iter()
            .for_each(|late| self.hand_out_marker(late.load));
        !self.ready.is_empty()
    }

    /// Queues `load`'s marker (if it did not go through the channel) and then the changes
    /// its gate held, numbered in order, unless its subscription ended.
    fn hand_out_marker(&mut self, load: LateLoad) {
        let LateLoad {
            core, marker, held, ..
        } = load;
        core.clear_marker_waiting();
        if core.is_ended() {
            self.count_discarded(held.len() as u64);
            return;
        }
        if let Some(notification) = marker.and_then(|marker| self.other(marker)) {
            self.ready.push_back(Prepared {
                core: core.clone(),
                notification,
            });
        }
        for (source, matched) in held {
            core.take_next_number(source.seq);
            let changes = ChangeSet::new(source, &core, self.connection.id, matched);
            self.ready.push_back(Prepared {
                core: core.clone(),
                notification: Notification::Changes(changes),
            });
        }
    }

    /// A change delivery that carries its number (the first after a dropped one): when
    /// deliveries were missed since the last one handed out, the gap notice is handed out
    /// first and the changes are queued to follow it.
    fn resumed(
        &mut self,
        core: LeanArc<SubscriptionCore>,
        source: SharedCommit,
        matched: u32,
        number: u64,
    ) -> Option<Notification> {
        if core.is_ended() {
            self.count_discarded(1);
            return None;
        }
        let behind_marker = core.marker_waiting() && self.marker_first(core.id, number).is_some();
        let seq = source.seq;
        let last = core.take_delivery_number(number, seq);
        let changes =
            Notification::Changes(ChangeSet::new(source, &core, self.connection.id, matched));
        let gap = if number <= last + 1 {
            None
        } else {
            // Built before the number is recorded: it names the last SeqId handed out.
            let Some(gap) = self.gap(&core, number - last - 1) else {
                self.count_discarded(1);
                return None;
            };
            core.mark_received(number, Some(seq));
            Some(gap)
        };
        if behind_marker {
            // The marker is queued: the gap and the changes follow it.
            if let Some(gap) = gap {
                self.ready.push_back(Prepared {
                    core: core.clone(),
                    notification: gap,
                });
            }
            self.ready.push_back(Prepared {
                core,
                notification: changes,
            });
            return None;
        }
        let Some(gap) = gap else {
            return Some(changes);
        };
        self.ready.push_back(Prepared {
            core,
            notification: changes,
        });
        self.count_handed_out(&gap);
        Some(gap)
    }

    /// The rare items: snapshots, load completions, wake-ups and release markers.
    #[cold]
    #[inline(never)]
    fn other(&mut self, other: DataArc<OtherDelivery>) -> Option<Notification> {
        if matches!(
            &*other,
            OtherDelivery::Release(_) | OtherDelivery::Resumed { .. }
        ) {
            // Both are made for this one item, so the receiver owns them.
            match DataArc::try_unwrap(other) {
                // Every delivery naming this core was queued ahead of its marker.
                Ok(OtherDelivery::Release(core)) => self.connection.shared.let_go(core),
                Ok(OtherDelivery::Resumed {
                    core,
                    source,
                    matched,
                    number,
                }) => return self.resumed(core, source, matched, number),
                // Never shared today; were one ever, its change would still be counted.
                Err(shared) => {
                    if matches!(*shared, OtherDelivery::Resumed { .. }) {
                        self.count_discarded(1);
                    }
                }
                Ok(_) => {}
            }
            return None;
        }
        match &*other {
            OtherDelivery::Snapshot { core, batch, rows } => (!core.is_ended()).then(|| {
                Notification::Snapshot(SnapshotBatch {
                    connection_id: self.connection.id,
                    core: core.clone(),
                    batch: *batch,
                    rows: rows.clone(),
                })
            }),
            OtherDelivery::LoadComplete {
                core,
                boundary,
                batches,
                rows,
            } => (!core.is_ended()).then(|| Notification::InitialLoadComplete {
                live_query_id: core.live_query_id(self.connection.id),
                boundary: (*boundary != NO_BOUNDARY).then_some(SeqId(*boundary)),
                batches: *batches,
                rows: *rows,
            }),
            OtherDelivery::Wake | OtherDelivery::Release(_) | OtherDelivery::Resumed { .. } => None,
        }
    }

    /// A gap notice of `missed` deliveries, naming the last SeqId the subscriber knows of;
    /// `None` when the subscription ended meanwhile (its gate may then no longer know its
    /// boundary, and nothing more of it is due), or when the drop cut the connection off
    /// (the Disconnect policy: the end of the stream, not a gap notice, reports it; the
    /// receiver may have passed its check of the cut-off before the drop, and meet the
    /// first delivery after it).
    fn gap(&self, core: &SubscriptionCore, missed: u64) -> Option<Notification> {
        let last_seq = core.last_known_seq();
        if core.is_ended()
            || core.flow.is_closed()
            || (!mutant!("gap_after_disconnect") && self.connection.is_cut_off())
        {
            return None;
        }
        // Once per gap notice (a run of drops), never per delivery.
        #[cfg(feature = "tracing")]
        tracing::info!(live_query = %core.live_query_id(self.connection.id), missed, last_seq = ?last_seq, "livecore: gap notice");
        Some(Notification::Gap {
            live_query_id: core.live_query_id(self.connection.id),
            last_seq,
            missed,
        })
    }

    /// Counts a gap notice as it is handed out (one built and then dropped is not).
    fn count_handed_out(&self, notification: &Notification) {
        if matches!(notification, Notification::Gap { .. }) {
            StatsCounters::add(&self.connection.shared.stats.gaps, 1);
        }
    }

    fn collect_notices(&mut self) {
        for item in self.connection.take_attention(ATTENTION_NOTICE) {
            let AttentionItem::Notice(core, notice) = item else {
                continue;
            };
            if core.is_removed() {
                continue;
            }
            let live_query_id = core.live_query_id(self.connection.id);
            let notification = match notice {
                SubscriptionEnding::ResyncRequired => {
                    Notification::ResyncRequired { live_query_id }
                }
                SubscriptionEnding::ResumeUnavailable => {
                    Notification::ResumeUnavailable { live_query_id }
                }
                SubscriptionEnding::Closed(reason) => Notification::Closed {
                    live_query_id,
                    reason,
                },
            };
            self.ready.push_back(Prepared { core, notification });
        }
    }

    /// Reports deliveries dropped with nothing after them. Valid only while the channel is
    /// empty: every attempt up to the highest dropped one was then either handed out or
    /// dropped (attempts of one subscription are serialized). If the channel filled again
    /// meanwhile, the gap waits for the next empty moment.
    fn collect_gaps(&mut self) {
        for item in self.connection.take_attention(ATTENTION_GAP) {
            let AttentionItem::Gap(core) = item else {
                continue;
            };
            core.release_attention_slot();
            if core.is_ended() {
                continue;
            }
            let dropped_upto = core.dropped_upto();
            if !self.rx.is_empty() {
                self.connection.flag_gap(&core);
                continue;
            }
            // A marker that waits out of band goes ahead of the gap after it.
            if core.marker_waiting() {
                self.marker_first(core.id, dropped_upto);
            }
            let last = core.received_number();
            if dropped_upto > last {
                let Some(gap) = self.gap(&core, dropped_upto - last) else {
                    continue;
                };
                core.mark_received(dropped_upto, None);
                self.ready.push_back(Prepared {
                    core,
                    notification: gap,
                });
            }
        }
    }
}

impl Drop for NotificationReceiver {
    fn drop(&mut self) {
        // Release what is queued now rather than when the last sender goes away.
        let prepared = self
            .ready
            .iter()
            .filter(|prepared| matches!(prepared.notification, Notification::Changes(_)))
            .count() as u64;
        let mut changes = 0;
        while let Ok(delivery) = self.rx.try_recv() {
            changes += u64::from(delivery.is_change());
        }
        self.count_discarded(prepared + changes);
        self.take_late_markers();
        self.discard_late_markers();
    }
}

/// Receives a connection's events. One consumer at a time.
pub struct EventReceiver {
    rx: channel::Receiver<ConnectionEvent>,
    connection: SharedConnectionState,
}

impl EventReceiver {
    pub(crate) fn new(
        rx: channel::Receiver<ConnectionEvent>,
        connection: SharedConnectionState,
    ) -> Self {
        Self { rx, connection }
    }

    /// Waits for the next event.
    pub fn recv(&mut self) -> Result<ConnectionEvent, ReceiveError> {
        self.next(Wait::Forever)
    }

    /// Returns the next event if one is pending.
    pub fn try_recv(&mut self) -> Result<ConnectionEvent, ReceiveError> {
        self.next(Wait::No)
    }

    /// Waits up to `timeout` for the next event.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<ConnectionEvent, ReceiveError> {
        self.next(Wait::Until(Instant::now() + timeout))
    }

    /// Waits for the next event without blocking a thread.
    #[cfg(not(livecore_loom))]
    pub async fn recv_async(&mut self) -> Result<ConnectionEvent, ReceiveError> {
        loop {
            match self.next(Wait::No) {
                Err(ReceiveError::Empty) => {}
                other => return other,
            }
            match self.rx.recv_async().await {
                Ok(event) if self.connection.take_event(event) => return Ok(event),
                Ok(_) => {}
                Err(_) => return self.next(Wait::No).map_err(|_| ReceiveError::Closed),
            }
        }
    }

    fn next(&mut self, wait: Wait) -> Result<ConnectionEvent, ReceiveError> {
        loop {
            // A message is only a wake-up: the pending flag is the event. A message whose
            // flag was already taken is skipped.
            match self.rx.try_recv() {
                Ok(event) if self.connection.take_event(event) => return Ok(event),
                Ok(_) => continue,
                Err(channel::TryRecvError::Disconnected) => {}
                Err(channel::TryRecvError::Empty) => {}
            }
            if let Some(event) = self.connection.take_any_event() {
                return Ok(event);
            }
            if self.connection.is_closed() {
                return Err(ReceiveError::Closed);
            }
            let Some(event) = wait.block(&self.rx)? else {
                continue;
            };
            if self.connection.take_event(event) {
                return Ok(event);
            }
        }
    }
}

/// The manager-wide ready queue: connections that have something to read. A host serving
/// many connections from one thread waits here, drains the named connection's receivers,
/// then calls [`NotificationReceiver::arm_ready`] on it.
#[derive(Clone)]
pub struct ReadyConnections {
    pub(crate) rx: channel::Receiver<ConnectionId>,
}

impl ReadyConnections {
    /// Waits up to `timeout` for a connection with something to read.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<ConnectionId, ReceiveError> {
        self.rx.recv_timeout(timeout).map_err(|error| match error {
            channel::RecvTimeoutError::Timeout => ReceiveError::Timeout,
            channel::RecvTimeoutError::Disconnected => ReceiveError::Closed,
        })
    }

    /// Returns a ready connection if one is queued.
    pub fn try_recv(&self) -> Result<ConnectionId, ReceiveError> {
        self.rx.try_recv().map_err(|error| match error {
            channel::TryRecvError::Empty => ReceiveError::Empty,
            channel::TryRecvError::Disconnected => ReceiveError::Closed,
        })
    }
}
