//! A subscription's state: the routing handle the index holds, the shared core a delivery
//! carries, the full state a connection keeps, and the results and statistics users read.

use crate::connection::gate::SubscriptionFlowControl;
use crate::connection::prefetch::{prefetch, prefetch_channel};
use crate::connection::state::{NotificationSender, SharedConnectionState};
use crate::query::projection::ColumnNames;
use crate::query::query_text::{QueryText, WrittenSql};
use crate::query::{CompiledQuery, Params};
use crate::sync::mutant;
use crate::sync::{fence, AtomicBool, AtomicU32, AtomicU64, AtomicU8, DataArc, LeanArc, Ordering};
use crate::types::ids::{ConnectionId, LiveQueryId, SeqId, SubscriptionId, TableId, UserKey};

/// The part of a subscription every delivery shares: identity, compiled query, gate and
/// counters. It holds no reference to the connection or its channel, so a queued delivery
/// never keeps a channel alive.
// Laid out in declaration order. The receiver's part comes first, after the reference
// count (which no delivery touches): the tally it writes as it hands deliveries out, and
// the id it copies into them; then the creation time, cold, which puts the publisher's
// part 64 bytes past the count (the two never share a cache line): the attempt number and
// delivery time it writes, then the owner check, the query and the gate word it reads (40
// bytes, which with the allocator's 16-byte alignment straddle two lines half the time;
// with the gate's lock
// between the query and the gate word, 56 bytes did three times in four, and a fan-out
// delivery cost 3-5 % more). The cold fields come last. The tally and the attempt number
// can share a line; a layout that kept the two sides' fields a line apart (8 bytes more:
// the receiver's own copy of the projection) measured no faster end to end. (Aligning the
// publisher's block to 32 bytes, so it never straddles two lines, measured no faster and
// cost 24 bytes a subscription in allocator padding.)
#[repr(C)]
pub(crate) struct SubscriptionCore {
    /// The subscription's first core keeps its tally here (drops, what the receiver handed
    /// out, how it ended); a successor keeps the link to that core (see
    /// [`tally`](Self::tally)). Inline, so a subscription is one allocation.
    tally: TallyHome,
    /// Here, beside the tally, because the receiver copies it into every change set.
    pub(crate) id: SubscriptionId,
    /// Cold: here to keep the publisher's block a line from the reference count (see the
    /// layout note above the struct).
    pub(crate) created_at_ms: u64,
    /// Deliveries attempted (sent or dropped): the number of the latest attempt, with
    /// [`AFTER_DROP`] set while that attempt was dropped.
    attempted: AtomicU64,
    last_update_ms: AtomicU64,
    pub(crate) owner: Option<UserKey>,
    pub(crate) query: DataArc<CompiledQuery>,
    pub(crate) flow: SubscriptionFlowControl,
    /// The subscription's own constants for its shared query's parameters.
    pub(crate) params: Params,
    /// The SQL as the client wrote it, when it subscribed with SQL text.
    pub(crate) sql: Option<WrittenSql>,
    pub(crate) options: PackedOptions,
    /// Live [`SubscriptionHandle`]s of this core: what may still send a delivery naming it
    /// (see `connection::core_ref`). At zero the core is released to its connection. Next
    /// to the options, which leave it exactly four bytes.
    senders: AtomicU32,
    /// Loom builds: set when the release protocol let the core go, so a model sees a
    /// queued delivery that would read it.
    #[cfg(livecore_loom)]
    model_released: AtomicBool,
    /// Unit tests: a token the core drops with itself, so a test can see the core freed
    /// without keeping it alive (a `LeanArc` has no weak references).
    #[cfg(test)]
    drop_witness: std::sync::OnceLock<std::sync::Arc<()>>,
}

/// Where a core finds the tally its subscription keeps: in itself, for the subscription's
/// first core, or in that first core, for a core that succeeded another after schema
/// changes. Every core of a subscription shares the first one's tally: their deliveries
/// may still be queued (or in flight from a publish that loaded the previous route), and
/// sharing keeps one numbering for the receiver across the change, so a gap is reported in
/// place, before the first delivery after it, and ending the subscription ends every core
/// of it.
///
/// Forty bytes, as the tally alone: the tally's [`TallyMarker`] gives the enum its tag, and
/// the link fits beside it. (A separate `Option` of the first core took eight bytes more
/// in every subscription, for the few that ever succeed another.)
enum TallyHome {
    /// The subscription's first core: the tally itself.
    Own(SubscriptionTally),
    /// A successor.
    Link {
        /// The subscription's first core, whose tally this core shares (a first core, never
        /// a successor: see [`SubscriptionCore::successor`]).
        first: LeanArc<SubscriptionCore>,
        /// The attempt number this core started from: its predecessor's latest (see
        /// [`SubscriptionCore::first_attempt_number`]).
        started_from: u64,
    },
}

#[cfg(not(livecore_loom))]
const _: () = assert!(std::mem::size_of::<TallyHome>() == 40);

/// A field of one value, whose spare values (any byte but 1) the compiler uses for
/// [`TallyHome`]'s tag, which then costs no byte (atomics offer no such spare values).
#[repr(u8)]
enum TallyMarker {
    Tally = 1,
}

/// The part of a subscription its successive cores share (see [`TallyHome`]).
struct SubscriptionTally {
    dropped: AtomicU64,
    /// The highest attempt number that was dropped.
    dropped_upto: AtomicU64,
    /// Receiver side: the last delivery number and SeqId handed to the consumer.
    rx_number: AtomicU64,
    rx_seq: AtomicU64,
    /// True while the connection's attention list holds this subscription for a gap.
    in_attention: AtomicBool,
    /// True while the load-complete marker waits in the connection's attention list (it
    /// found the channel full): the receiver hands it out before the subscription's next
    /// change. In the tally's padding, so it costs no byte.
    marker_waiting: AtomicBool,
    /// How the subscription ended, if it did ([`ACTIVE`], [`ENDED`], [`REMOVED`]).
    ended: AtomicU8,
    /// Constant: gives [`TallyHome`] its tag for free, in the last word's spare bytes.
    _marker: TallyMarker,
}

impl SubscriptionTally {
    fn new() -> Self {
        Self {
            dropped: AtomicU64::new(0),
            dropped_upto: AtomicU64::new(0),
            rx_number: AtomicU64::new(0),
            rx_seq: AtomicU64::new(NO_SEQ),
            in_attention: AtomicBool::new(false),
            marker_waiting: AtomicBool::new(false),
            ended: AtomicU8::new(ACTIVE),
            _marker: TallyMarker::Tally,
        }
    }
}

// Four counters, three flags and the marker: the flags and the marker share the last word.
#[cfg(not(livecore_loom))]
const _: () = assert!(std::mem::size_of::<SubscriptionTally>() == 40);

/// The subscription is active.
const ACTIVE: u8 = 0;
/// livecore ended it (revoked, resume unavailable, ...): its data is skipped, its closing
/// notice still reaches the consumer.
const ENDED: u8 = 1;
/// The host removed it (unsubscribe, unregister): nothing more of it reaches the consumer.
const REMOVED: u8 = 2;

/// In `attempted`: the latest attempt was dropped, so the next one to reach the channel
/// carries its number (see [`Attempt::after_drop`]).
const AFTER_DROP: u64 = 1 << 63;

/// One delivery attempt of a subscription (see [`SubscriptionCore::next_attempt`]).
#[derive(Clone, Copy)]
pub(crate) struct Attempt {
    /// The attempt's number: one more than the last attempt's.
    pub(crate) number: u64,
    /// The attempt before it was dropped. A change delivery is numbered by its place in
    /// the channel (the receiver counts one past the last it handed out), except the first
    /// after a drop, which carries its number so the gap is reported in place.
    pub(crate) after_drop: bool,
}

/// "No SeqId delivered yet", stored in `rx_seq`.
const NO_SEQ: u64 = u64::MAX;

/// What a new subscription is made of.
pub(crate) struct NewSubscription {
    pub(crate) id: SubscriptionId,
    pub(crate) query: DataArc<CompiledQuery>,
    pub(crate) params: Params,
    pub(crate) sql: Option<WrittenSql>,
    pub(crate) owner: Option<UserKey>,
    pub(crate) flow: SubscriptionFlowControl,
    pub(crate) options: SubscriptionOptions,
    pub(crate) now_ms: u64,
}

impl SubscriptionCore {
    pub(crate) fn new(parts: NewSubscription) -> Self {
        let NewSubscription {
            id,
            query,
            params,
            sql,
            owner,
            flow,
            options,
            now_ms,
        } = parts;
        Self {
            id,
            query,
            params,
            sql,
            owner,
            flow,
            options: PackedOptions::pack(&options),
            created_at_ms: now_ms,
            attempted: AtomicU64::new(0),
            last_update_ms: AtomicU64::new(now_ms),
            tally: TallyHome::Own(SubscriptionTally::new()),
            senders: AtomicU32::new(0),
            #[cfg(livecore_loom)]
            model_released: AtomicBool::new(false),
            #[cfg(test)]
            drop_witness: std::sync::OnceLock::new(),
        }
    }

    /// The same subscription recompiled for a new schema version: it keeps its id and
    /// counters, and numbering continues, so the receiver sees no gap that did not happen
    /// and every gap that did, in place. The old core stays live for deliveries already
    /// queued, which it renders with the old projection; the two share their tally (drops,
    /// receiver progress, ending), so removing the subscription ends both.
    /// `params` replaces its constants when its SQL was read again (`None`: kept).
    pub(crate) fn successor(
        this: &LeanArc<Self>,
        query: DataArc<CompiledQuery>,
        params: Option<Params>,
    ) -> Self {
        // The successor continues the numbering, and whether its first delivery follows a
        // drop.
        let attempted = this.attempted.load(Ordering::SeqCst);
        let mut successor = Self::new(NewSubscription {
            id: this.id,
            query,
            params: params.unwrap_or_else(|| this.params.clone()),
            sql: this.sql.clone(),
            owner: this.owner,
            flow: this.flow.live_successor(),
            options: this.options.unpack(),
            now_ms: this.last_update_ms.load(Ordering::Relaxed),
        });
        // Mutant: a fresh tally; unsubscribing ends the new core only, and what the old
        // one queued (or a publish still on the old route sends) arrives afterwards.
        if mutant!("successor_own_removed_flag") {
            let tally = successor.tally();
            tally
                .rx_number
                .store(this.received_number(), Ordering::SeqCst);
            tally.rx_seq.store(
                this.tally().rx_seq.load(Ordering::Acquire),
                Ordering::Release,
            );
        } else {
            let first = match &this.tally {
                TallyHome::Own(_) => LeanArc::clone(this),
                TallyHome::Link { first, .. } => LeanArc::clone(first),
            };
            // It keeps the number numbering resumes from, so its release knows whether it
            // sent anything.
            successor.tally = TallyHome::Link {
                first,
                started_from: attempted & !AFTER_DROP,
            };
        }
        successor.created_at_ms = this.created_at_ms;
        successor.attempted.store(attempted, Ordering::SeqCst);
        successor
    }

    /// The tally every core of this subscription shares: the first core's.
    #[inline(always)]
    fn tally(&self) -> &SubscriptionTally {
        match &self.tally {
            TallyHome::Own(tally) => tally,
            TallyHome::Link { first, .. } => match &first.tally {
                TallyHome::Own(tally) => tally,
                // `successor` links to a first core only (its own, or the one it was
                // linked to).
                TallyHome::Link { .. } => {
                    unreachable!("a successor's link leads to a first core")
                }
            },
        }
    }

    /// The query's SQL: as the client wrote it, or rendered from the query spec.
    pub(crate) fn sql_text(&self) -> String {
        self.query_text().to_string()
    }

    /// The query's SQL, unrendered until asked.
    pub(crate) fn query_text(&self) -> QueryText {
        match &self.sql {
            Some(sql) => QueryText::written(sql.clone()),
            None => QueryText::template(self.query.clone(), self.params.clone()),
        }
    }

    /// Ends the subscription at the host's request: the gate closes and the receiver drops
    /// whatever is still queued for it, notices included.
    pub(crate) fn remove(&self) {
        self.tally().ended.store(REMOVED, Ordering::Release);
        self.flow.close();
    }

    /// Ends the subscription on livecore's initiative: the gate closes and the receiver
    /// drops what is still queued for it (of this core and of the cores it succeeded), but
    /// hands out its closing notice. True only for the call that ended it: the one that
    /// posts its terminal notice (a subscription gets exactly one).
    pub(crate) fn end(&self) -> bool {
        let ended = self
            .tally()
            .ended
            .compare_exchange(ACTIVE, ENDED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        self.flow.close();
        ended
    }

    /// True once the host removed it (or the subscription that succeeded it).
    pub(crate) fn is_removed(&self) -> bool {
        self.tally().ended.load(Ordering::Acquire) == REMOVED
    }

    /// True once the subscription has ended, by livecore or by the host: the receiver
    /// skips whatever of it is still queued. Read from the tally alone: every ending is
    /// recorded there (`remove`, `end`) before the gate closes, except a load buffer's
    /// overflow, which closes the gate and has the publisher end the subscription right
    /// after; a delivery handed out in between was queued before the overflow, and could
    /// as well have been taken a moment earlier. The gate word sits on the publisher's
    /// line of the core: the receiver, which asks on every delivery, no longer reads it.
    // Deliberately not `#[inline(always)]`: forced into the receive, it led the compiler to
    // copy each delivery taken from the channel as one 16-byte value just after the channel
    // wrote it as two words (a store-forwarding stall). As it is, a drained delivery costs
    // about a tenth less, and the end-to-end fan-out about as much (see the changelog).
    pub(crate) fn is_ended(&self) -> bool {
        self.tally().ended.load(Ordering::Acquire) != ACTIVE
    }

    /// The subscription's id as the host knows it. The core does not keep its connection's
    /// id (every caller has the connection at hand, and every subscription would carry 8
    /// bytes more).
    pub(crate) fn live_query_id(&self, connection_id: ConnectionId) -> LiveQueryId {
        LiveQueryId::new(connection_id, self.id)
    }

    /// True if a delivery of this core may have entered its channel: some attempt was
    /// made (a failed replay gives its number back, so zero means none was sent).
    pub(crate) fn may_have_queued(&self) -> bool {
        self.attempted.load(Ordering::Relaxed) & !AFTER_DROP != self.first_attempt_number()
    }

    /// The attempt number this core started from: zero, or for a successor the number its
    /// predecessor had reached (numbering continues across a schema change).
    fn first_attempt_number(&self) -> u64 {
        match &self.tally {
            TallyHome::Own(_) => 0,
            TallyHome::Link { started_from, .. } => *started_from,
        }
    }

    /// Unit tests: a weak reference to a token this core drops when it is freed.
    #[cfg(test)]
    pub(crate) fn drop_witness(&self) -> std::sync::Weak<()> {
        std::sync::Arc::downgrade(self.drop_witness.get_or_init(|| std::sync::Arc::new(())))
    }

    /// Loom builds: marks the core as let go by the release protocol.
    #[cfg(livecore_loom)]
    pub(crate) fn mark_model_released(&self) {
        self.model_released.store(true, Ordering::SeqCst);
    }

    /// Loom builds: true once the release protocol let the core go.
    #[cfg(livecore_loom)]
    pub(crate) fn model_released(&self) -> bool {
        self.model_released.load(Ordering::SeqCst)
    }

    /// Takes the number of the next delivery attempt. Attempts for one subscription are
    /// serialized (one table's commits are published in order, and the gate's lock orders
    /// the flush), so numbers reach the channel in order.
    #[inline]
    pub(crate) fn next_attempt(&self) -> Attempt {
        // A load and a store rather than a read-modify-write: the attempts of one
        // subscription never run concurrently (see above), and this is on every delivery.
        let latest = self.attempted.load(Ordering::Relaxed);
        let number = (latest & !AFTER_DROP) + 1;
        self.attempted.store(number, Ordering::Relaxed);
        Attempt {
            number,
            // Mutant: number the first delivery after a drop by its place; the receiver
            // counts it as the dropped one and the gap is never reported.
            after_drop: latest & AFTER_DROP != 0 && !mutant!("resumed_by_place"),
        }
    }

    /// Gives back the attempt just taken by [`next_attempt`](Self::next_attempt), for one
    /// that was not made (a replay the channel had no room for).
    /// The number of the latest delivery attempt (zero before the first).
    pub(crate) fn attempts_made(&self) -> u64 {
        self.attempted.load(Ordering::Relaxed) & !AFTER_DROP
    }

    pub(crate) fn retract_attempt(&self, attempt: Attempt) {
        let mark = if attempt.after_drop { AFTER_DROP } else { 0 };
        self.attempted
            .store((attempt.number - 1) | mark, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn record_delivered(&self, now_ms: u64) {
        self.last_update_ms.store(now_ms, Ordering::Relaxed);
    }

    /// Records a dropped attempt (the latest: the next one carries its number).
    pub(crate) fn record_dropped(&self, number: u64) {
        self.attempted.store(number | AFTER_DROP, Ordering::Relaxed);
        self.tally().dropped.fetch_add(1, Ordering::Relaxed);
        self.tally()
            .dropped_upto
            .fetch_max(number, Ordering::SeqCst);
    }

    /// True the first time after the attention slot was released.
    pub(crate) fn take_attention_slot(&self) -> bool {
        !self.tally().in_attention.swap(true, Ordering::SeqCst)
    }

    pub(crate) fn release_attention_slot(&self) {
        // A swap rather than a store: the same on hardware (this is the cold gap path), but
        // it makes loom order the release after the publisher's latest take of the slot.
        // Loom does not carry read-modify-write atomicity into its modification order, so
        // against a plain store it explores a stale `true` that C11 rules out.
        self.tally().in_attention.swap(false, Ordering::SeqCst);
    }

    /// Records that the load-complete marker went to the attention list, before any change
    /// flushed after it can be queued.
    pub(crate) fn set_marker_waiting(&self) {
        self.tally().marker_waiting.store(true, Ordering::SeqCst);
    }

    /// Receiver side: true while the load-complete marker waits in the attention list.
    #[inline(always)]
    pub(crate) fn marker_waiting(&self) -> bool {
        self.tally().marker_waiting.load(Ordering::Acquire)
    }

    /// Receiver side: the marker was handed out (or dropped with its subscription).
    pub(crate) fn clear_marker_waiting(&self) {
        self.tally().marker_waiting.store(false, Ordering::Release);
    }

    pub(crate) fn dropped_upto(&self) -> u64 {
        self.tally().dropped_upto.load(Ordering::SeqCst)
    }

    /// Receiver side: the last delivery number handed out.
    pub(crate) fn received_number(&self) -> u64 {
        self.tally().rx_number.load(Ordering::Acquire)
    }

    /// The last SeqId the subscriber is known to hold: the last one handed out, else the
    /// snapshot boundary (or the highest replayed commit) once known, else the SeqId it
    /// resumes after. What a gap notice reports as `last_seq`.
    pub(crate) fn last_known_seq(&self) -> Option<SeqId> {
        self.received_seq()
            .or_else(|| self.flow.covered_upto())
            .or_else(|| self.options.resume_from())
    }

    /// Receiver side: the last SeqId handed out, if any.
    pub(crate) fn received_seq(&self) -> Option<SeqId> {
        match self.tally().rx_seq.load(Ordering::Acquire) {
            NO_SEQ => None,
            seq => Some(SeqId(seq)),
        }
    }

    /// Receiver side, for a change delivery numbered by its place: records it (with `seq`)
    /// as the one after the last handed out. One look at the shared tally.
    #[inline(always)]
    pub(crate) fn take_next_number(&self, seq: SeqId) {
        let tally = self.tally();
        let last = tally.rx_number.load(Ordering::Acquire);
        tally.rx_number.store(last + 1, Ordering::Release);
        tally.rx_seq.store(seq.0, Ordering::Release);
    }

    /// Receiver side, for a change delivery that carried its `number`: the last number
    /// handed out before it. Records it as handed out (with `seq`) unless missed deliveries
    /// precede it (`number > last + 1`): the caller reports the gap first (from the state
    /// before it), then records it.
    pub(crate) fn take_delivery_number(&self, number: u64, seq: SeqId) -> u64 {
        let tally = self.tally();
        let last = tally.rx_number.load(Ordering::Acquire);
        if number <= last + 1 {
            tally.rx_number.store(number, Ordering::Release);
            tally.rx_seq.store(seq.0, Ordering::Release);
        }
        last
    }

    /// Receiver side: records what was handed out (or skipped over as a gap).
    pub(crate) fn mark_received(&self, number: u64, seq: Option<SeqId>) {
        self.tally().rx_number.store(number, Ordering::Release);
        if let Some(seq) = seq {
            self.tally().rx_seq.store(seq.0, Ordering::Release);
        }
    }

    /// Deliveries enqueued (attempted minus dropped).
    pub(crate) fn delivered(&self) -> u64 {
        let attempted = self.attempted.load(Ordering::Relaxed) & !AFTER_DROP;
        attempted.saturating_sub(self.tally().dropped.load(Ordering::Relaxed))
    }

    /// The clock reading of the publish that last delivered to it.
    pub(crate) fn last_update_ms(&self) -> u64 {
        self.last_update_ms.load(Ordering::Relaxed)
    }

    /// Where the subscription is in its life.
    pub(crate) fn phase(&self) -> SubscriptionPhase {
        if self.flow.is_closed() {
            SubscriptionPhase::Closed
        } else if self.flow.is_live() {
            SubscriptionPhase::Live
        } else {
            SubscriptionPhase::Loading
        }
    }

    pub(crate) fn stats(&self) -> SubscriptionStats {
        SubscriptionStats {
            delivered: self.delivered(),
            dropped: self.tally().dropped.load(Ordering::Relaxed),
            last_update_ms: self.last_update_ms(),
            last_received_seq: self.received_seq(),
            buffered: self.flow.buffered_len(),
        }
    }
}

/// What the routing index holds for one subscription: its shared core, its connection, and
/// a sender of the connection's channel, so a delivery goes from the index entry to the
/// channel without reading the connection's state. Three pointers. (The extra sender never
/// keeps a channel open: the connection's receivers report its end from the connection's
/// state, not from the senders.)
///
/// Only a handle sends a delivery of its core, and the core counts its handles: when the
/// last one goes, the core is released to its connection (see `connection::core_ref`).
pub struct SubscriptionHandle {
    pub(crate) core: LeanArc<SubscriptionCore>,
    pub(crate) notification_tx: NotificationSender,
    pub(crate) connection: SharedConnectionState,
}

impl SubscriptionHandle {
    /// The first handle of a fresh `core`, a subscription of `connection`.
    pub(crate) fn first(
        core: LeanArc<SubscriptionCore>,
        connection: SharedConnectionState,
    ) -> Self {
        let before = core.senders.fetch_add(1, Ordering::Relaxed);
        debug_assert_eq!(before, 0, "a core's first handle is made once");
        Self::counted(core, connection)
    }

    /// Another handle of `core`, unless its handles are all gone (the core was released:
    /// nothing may send for it again).
    pub(crate) fn new(
        core: LeanArc<SubscriptionCore>,
        connection: SharedConnectionState,
    ) -> Option<Self> {
        let mut senders = core.senders.load(Ordering::Relaxed);
        loop {
            if senders == 0 {
                return None;
            }
            match core.senders.compare_exchange_weak(
                senders,
                senders + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(Self::counted(core, connection)),
                Err(now) => senders = now,
            }
        }
    }

    /// A handle whose place in `core`'s count is already taken.
    fn counted(core: LeanArc<SubscriptionCore>, connection: SharedConnectionState) -> Self {
        Self {
            notification_tx: connection.notification_tx.clone(),
            core,
            connection,
        }
    }

    /// Asks for the cache lines a delivery to this handle touches (the subscription's
    /// publisher block, its channel), so a caller about to deliver to many handles has their misses
    /// overlap.
    #[inline(always)]
    pub(crate) fn prefetch(&self) {
        // The publisher's block: its first and last words (it may straddle two lines). The
        // flow control is `repr(C)` with its gate word first.
        prefetch(std::ptr::from_ref(&self.core.attempted).cast());
        prefetch(std::ptr::from_ref(&self.core.flow).cast());
        prefetch_channel(&self.notification_tx);
    }

    /// The live query this handle routes to.
    pub fn live_query_id(&self) -> LiveQueryId {
        self.core.live_query_id(self.connection.id)
    }
}

impl Clone for SubscriptionHandle {
    fn clone(&self) -> Self {
        // A clone comes from a live handle: the count is above zero and stays so.
        self.core.senders.fetch_add(1, Ordering::Relaxed);
        Self::counted(self.core.clone(), self.connection.clone())
    }
}

impl Drop for SubscriptionHandle {
    fn drop(&mut self) {
        // Release, then acquire for the last: every send through any handle of this core
        // happens before the core is released, so its deliveries are all in the channel.
        if self.core.senders.fetch_sub(1, Ordering::Release) == 1 {
            fence(Ordering::Acquire);
            self.connection.release_core(self.core.clone());
        }
    }
}

/// [`SubscriptionOptions`] in twelve bytes, as each subscription's shared core keeps them:
/// three 32-bit words (so the core's sender count fits beside them in sixteen bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PackedOptions {
    /// The SeqId to resume after, or `u64::MAX` for none, as low and high halves.
    resume_from: [u32; 2],
    /// The batch size (below 2^31, as the configuration allows), and `initial_load` in the
    /// top bit.
    batch_and_load: u32,
}

/// The bit of [`PackedOptions::batch_and_load`] that holds `initial_load`.
const INITIAL_LOAD: u32 = 1 << 31;

impl PackedOptions {
    /// Packs validated options (a batch size below 2^31).
    pub(crate) fn pack(options: &SubscriptionOptions) -> Self {
        let resume_from = options
            .resume_from
            .map_or(u64::MAX, |seq| seq.0.min(u64::MAX - 1));
        let batch_size = u32::try_from(options.batch_size)
            .map_or(INITIAL_LOAD - 1, |size| size.min(INITIAL_LOAD - 1));
        Self {
            resume_from: [resume_from as u32, (resume_from >> 32) as u32],
            batch_and_load: batch_size
                | if options.initial_load {
                    INITIAL_LOAD
                } else {
                    0
                },
        }
    }

    pub(crate) fn unpack(&self) -> SubscriptionOptions {
        SubscriptionOptions {
            initial_load: self.batch_and_load & INITIAL_LOAD != 0,
            batch_size: self.batch_size(),
            resume_from: self.resume_from(),
        }
    }

    /// The SeqId to resume after, if resuming.
    pub(crate) fn resume_from(&self) -> Option<SeqId> {
        let [low, high] = self.resume_from;
        let resume_from = u64::from(low) | (u64::from(high) << 32);
        (resume_from != u64::MAX).then_some(SeqId(resume_from))
    }

    pub(crate) fn batch_size(&self) -> usize {
        (self.batch_and_load & !INITIAL_LOAD) as usize
    }
}

/// How a subscription starts.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SubscriptionOptions {
    /// Start gated: the host sets the snapshot boundary, sends the snapshot (itself or
    /// through livecore), then completes the initial load.
    pub initial_load: bool,
    /// Rows per snapshot batch when the snapshot goes through livecore: between 1 and
    /// [`ManagerConfig::max_snapshot_batch_size`](crate::ManagerConfig::max_snapshot_batch_size)
    /// ([`LiveError::OutOfBounds`](crate::LiveError::OutOfBounds) otherwise).
    pub batch_size: usize,
    /// Resume after this SeqId (the client's last): the host replays what the client
    /// missed, then completes the load, or declares resume unavailable. At most
    /// [`MAX_SNAPSHOT_BOUNDARY`](crate::MAX_SNAPSHOT_BOUNDARY)
    /// ([`LiveError::OutOfBounds`](crate::LiveError::OutOfBounds) otherwise).
    pub resume_from: Option<SeqId>,
}

impl Default for SubscriptionOptions {
    fn default() -> Self {
        Self {
            initial_load: false,
            batch_size: 1000,
            resume_from: None,
        }
    }
}

impl SubscriptionOptions {
    /// Options for a subscription that loads an initial snapshot.
    pub fn with_initial_load() -> Self {
        Self {
            initial_load: true,
            ..Self::default()
        }
    }

    /// Options for a subscription resuming after `seq`.
    pub fn resume_from(seq: SeqId) -> Self {
        Self {
            resume_from: Some(seq),
            ..Self::default()
        }
    }

    /// True when the subscription starts gated.
    pub fn starts_gated(&self) -> bool {
        self.initial_load || self.resume_from.is_some()
    }
}

/// The full state of one subscription, kept by its connection.
pub struct SubscriptionState {
    pub(crate) core: LeanArc<SubscriptionCore>,
}

impl SubscriptionState {
    pub(crate) fn registered(&self, connection: &SharedConnectionState) -> RegisteredSubscription {
        let core = &self.core;
        RegisteredSubscription {
            live_query_id: core.live_query_id(connection.id),
            table_id: core.query.schema.table_id.clone(),
            query: core.sql_text(),
            user: connection.user().map(|user| user.user_id.to_string()),
            options: core.options.unpack(),
            created_at_ms: core.created_at_ms,
            state: core.phase(),
            stats: core.stats(),
        }
    }
}

/// Where a subscription is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub enum SubscriptionPhase {
    /// Gated: its initial load (or resume replay) runs.
    Loading,
    /// Receiving changes as they are published.
    Live,
    /// Ended (resync required, resume unavailable, schema change); awaiting unsubscribe.
    Closed,
}

/// Per-subscription counters.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct SubscriptionStats {
    /// Deliveries enqueued into the connection's channel.
    pub delivered: u64,
    /// Deliveries dropped (channel full or closed).
    pub dropped: u64,
    /// The clock reading of the publish that last delivered to it (ms).
    pub last_update_ms: u64,
    /// The last SeqId its receiver took for the consumer: handed out, or prepared right
    /// behind a gap notice or a load-complete marker the receiver hands out first (then
    /// it is handed out next, unless the subscription is removed or its connection
    /// unregistered before that read).
    pub last_received_seq: Option<SeqId>,
    /// Changes buffered behind its gate now.
    pub buffered: usize,
}

/// The outcome of subscribing.
#[derive(Clone, Debug, PartialEq)]
pub struct SubscriptionResult {
    /// The new live query's id.
    pub live_query_id: LiveQueryId,
    /// The projected schema: the column names each delivered row carries, in order.
    pub columns: ColumnNames,
    /// True when the subscription starts gated and waits for its load to complete.
    pub gated: bool,
    /// The SeqId it resumes after, when resuming.
    pub resume_from: Option<SeqId>,
}

/// A subscription as the manager lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct RegisteredSubscription {
    /// Its id.
    pub live_query_id: LiveQueryId,
    /// Its table.
    pub table_id: TableId,
    /// Its query, as SQL.
    pub query: String,
    /// The connection's user, if authenticated.
    pub user: Option<String>,
    /// How it was opened.
    pub options: SubscriptionOptions,
    /// When it was created (ms, manager clock).
    pub created_at_ms: u64,
    /// Where it is in its life.
    pub state: SubscriptionPhase,
    /// Its counters.
    pub stats: SubscriptionStats,
}

#[cfg(all(test, not(livecore_loom)))]
mod tests {
    use super::*;

    /// Every option survives packing, at the edges of its range.
    #[test]
    fn options_round_trip_through_their_packing() {
        for initial_load in [false, true] {
            for batch_size in [1, 1000, (1 << 31) - 1] {
                for resume_from in [
                    None,
                    Some(SeqId(0)),
                    Some(SeqId(1 << 40)),
                    Some(SeqId(u64::MAX - 1)),
                ] {
                    let options = SubscriptionOptions {
                        initial_load,
                        batch_size,
                        resume_from,
                    };
                    assert_eq!(PackedOptions::pack(&options).unpack(), options);
                }
            }
        }
    }

    /// The sender count sits in the options' spare word, a single constant is held in the
    /// parameters' own 24 bytes and the SQL text behind a thin pointer: a subscription's
    /// core is no larger than this (what each idle subscription costs is a measured
    /// figure).
    #[test]
    fn a_core_is_160_bytes() {
        assert_eq!(std::mem::size_of::<PackedOptions>(), 12);
        assert_eq!(std::mem::size_of::<Option<WrittenSql>>(), 8);
        // Unit-test builds add a drop witness after the last field.
        assert_eq!(std::mem::offset_of!(SubscriptionCore, drop_witness), 160);
    }

    /// The publisher's block starts 56 bytes into the core and triomphe's reference count
    /// takes the 8 bytes before the core, so the block starts 64 bytes after the count:
    /// the two never share a cache line.
    #[test]
    fn the_publishers_block_is_a_line_away_from_the_reference_count() {
        assert_eq!(std::mem::offset_of!(SubscriptionCore, attempted), 56);
    }
}
