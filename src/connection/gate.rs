//! Snapshot gating and ordered buffering for one subscription.
//!
//! A subscription created with an initial load starts GATED. While gated, a published change
//! at or below the snapshot boundary is dropped (the snapshot holds it) and a later one is
//! buffered in SeqId order; completing the load flushes the buffer and only then marks the
//! gate LIVE, all under the gate's lock. A publisher that saw GATED re-checks the state under
//! the same lock, so a change can neither be stranded in a buffer that was already flushed
//! nor overtake the flush. Once live, passing the gate costs one atomic load and no lock:
//! the gate word holds the boundary itself, so a straggler at or below the boundary (a
//! commit in the snapshot whose publish raced the completion) is still dropped.

use std::collections::VecDeque;

use crate::sync::mutant;
use crate::sync::{lock, AtomicU64, Mutex, Ordering};
use crate::types::ids::SeqId;
use crate::types::shared_commit::SharedCommit;

/// Gate word: GATED, CLOSED, OPENING, or any smaller value, which means LIVE: 0 with no
/// boundary (every SeqId passes), `b + 1` with boundary `b` (so a boundary of 0 is told
/// apart from none: a gap before the first change reports it).
const GATED: u64 = u64::MAX - 1;
const CLOSED: u64 = u64::MAX;
/// A subscription without a load that enters the index under several keys (an IN list):
/// nothing passes until the last key is in and the subscribe opens it. Otherwise a commit
/// found through a key already in could be delivered and a later one missed through a key
/// not yet in: a hole after the first change, with no gap to tell it. (A commit published
/// while the subscribe runs may or may not reach it; once one does, every later one does.)
const OPENING: u64 = u64::MAX - 2;
/// The largest SeqId usable as a snapshot boundary or a resume position (one more is
/// still below OPENING): a larger one is [`LiveError::OutOfBounds`](crate::LiveError).
pub const MAX_BOUNDARY: u64 = u64::MAX - 4;

/// A change held back while the subscription's snapshot loads, with its commit's SeqId for
/// ordering.
pub struct BufferedNotification {
    pub(crate) seq: SeqId,
    /// The delivery's source and match (see `DeliveryKind::Changes`).
    pub(crate) commit: SharedCommit,
    pub(crate) matched: u32,
}

/// The gate of one subscription: GATED while its initial load runs, LIVE after, CLOSED once
/// it has ended.
#[repr(C)]
pub struct SubscriptionFlowControl {
    /// First, so the gate check shares a cache line with the subscription's hot fields.
    state: AtomicU64,
    gate: Mutex<Option<Box<GateBuffer>>>,
}

struct GateBuffer {
    boundary: Option<SeqId>,
    /// The highest SeqId replayed so far (resume). The engine replays the commits the
    /// client missed in log order, so a live publish at or below it is a commit the replay
    /// already delivered (its publish raced the replay's read of the log): like the
    /// snapshot boundary, it is dropped, while gated and once live.
    replayed_upto: Option<SeqId>,
    buffered: VecDeque<BufferedNotification>,
    capacity: usize,
    /// How many changes the boundary dropped, for the load's statistics.
    covered_by_snapshot: u64,
    /// Snapshot batches and rows delivered through livecore so far (they exist only while
    /// the load runs, so they live here rather than in every subscription).
    snapshot_batches: u32,
    snapshot_rows: u64,
}

/// What the gate decided for one change.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum GateDecision {
    /// The subscription is live: send the change now.
    SendNow,
    /// Held in the buffer until the load completes.
    Buffered,
    /// At or below the snapshot boundary: the snapshot already holds it.
    CoveredBySnapshot,
    /// The buffer was full: the subscription is now closed and must resync.
    Overflowed,
    /// The subscription has ended.
    Closed,
    /// The subscribe is still entering it into the index under its keys: a commit
    /// published meanwhile, which may or may not reach it (see [`OPENING`]).
    NotYetOpen,
}

/// What became of one replayed commit.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Replay {
    /// Sent into the channel.
    Sent,
    /// Recorded as replayed, but nothing of it matched: nothing was sent.
    NoMatch,
    /// At or below the boundary or an earlier replayed commit: ignored.
    Skipped,
}

/// Why a gate operation was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum GateError {
    /// The initial load has already completed.
    AlreadyLive,
    /// The subscription has ended.
    Closed,
    /// A boundary below the one already set: changes between the two may already have
    /// been dropped as covered, and a lower boundary would leave them in neither the
    /// snapshot nor the stream.
    BoundaryMovedBack,
}

impl SubscriptionFlowControl {
    /// A gate that is live from the start (no initial load).
    pub(crate) fn live() -> Self {
        Self {
            state: AtomicU64::new(0),
            gate: Mutex::new(None),
        }
    }

    /// A gate that passes nothing until [`open`](Self::open)ed: for a subscription without
    /// a load that enters the index under several keys (see [`OPENING`]).
    pub(crate) fn opening() -> Self {
        Self {
            state: AtomicU64::new(OPENING),
            gate: Mutex::new(None),
        }
    }

    /// Opens an [`opening`](Self::opening) gate: live from now on. Only from OPENING: a
    /// gate that ended stays ended (no path ends a subscription while its subscribe runs,
    /// which holds the connection's subscription map; this does not rely on it).
    pub(crate) fn open(&self) {
        let _ = self
            .state
            .compare_exchange(OPENING, 0, Ordering::AcqRel, Ordering::Acquire);
    }

    /// A live gate with the same boundary as this one (for a subscription recompiled after
    /// a schema change).
    pub(crate) fn live_successor(&self) -> Self {
        let word = self.state.load(Ordering::Acquire);
        Self {
            state: AtomicU64::new(if word < OPENING { word } else { 0 }),
            gate: Mutex::new(None),
        }
    }

    /// A gate held closed until the initial load completes, buffering up to `capacity`
    /// changes. `boundary` is known up front when resuming from a client's last SeqId.
    pub(crate) fn gated(capacity: usize, boundary: Option<SeqId>) -> Self {
        Self {
            state: AtomicU64::new(GATED),
            gate: Mutex::new(Some(Box::new(GateBuffer {
                boundary: boundary.map(|boundary| SeqId(boundary.0.min(MAX_BOUNDARY))),
                replayed_upto: None,
                buffered: VecDeque::new(),
                capacity,
                covered_by_snapshot: 0,
                snapshot_batches: 0,
                snapshot_rows: 0,
            }))),
        }
    }

    /// Sends one snapshot batch of `rows` rows through `send`, which is given the batch's
    /// number, and counts it if it went. Under the gate's lock, so no batch goes once a
    /// publish has overflowed the buffer (which closes the gate under the same lock): `None`
    /// when the gate no longer holds a load.
    pub(crate) fn send_snapshot_batch<E>(
        &self,
        rows: u64,
        send: impl FnOnce(u32) -> Result<(), E>,
    ) -> Option<Result<(), E>> {
        let mut guard = lock(&self.gate);
        let gate = guard.as_mut()?;
        let sent = send(gate.snapshot_batches);
        if sent.is_ok() {
            gate.snapshot_batches += 1;
            gate.snapshot_rows += rows;
        }
        Some(sent)
    }

    /// True once the initial load has completed and the subscription has not ended.
    #[inline]
    pub(crate) fn is_live(&self) -> bool {
        self.state.load(Ordering::Acquire) < GATED
    }

    /// True once the subscription has ended; its remaining deliveries are skipped.
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) == CLOSED
    }

    /// What the snapshot or the replay covered: the boundary (or the highest replayed
    /// SeqId, when above it), once known.
    pub(crate) fn covered_upto(&self) -> Option<SeqId> {
        match self.state.load(Ordering::Acquire) {
            0 | CLOSED | OPENING => None,
            GATED => {
                let gate = lock(&self.gate);
                match gate.as_ref() {
                    Some(gate) => gate.boundary.max(gate.replayed_upto),
                    // The load completed (or the subscription ended) while this waited for
                    // the lock: the word, set before the lock was released, says which.
                    None => match self.state.load(Ordering::Acquire) {
                        0 | GATED | CLOSED | OPENING => None,
                        live => Some(SeqId(live - 1)),
                    },
                }
            }
            live => Some(SeqId(live - 1)),
        }
    }

    /// True when the gate is live and passes `seq` (above its boundary): the fast path of
    /// [`admit`](Self::admit), one atomic load.
    #[inline]
    pub(crate) fn passes_live(&self, seq: SeqId) -> bool {
        let word = self.state.load(Ordering::Acquire);
        word < OPENING && seq.0 >= word
    }

    /// True while the initial load runs.
    pub(crate) fn is_gated(&self) -> bool {
        self.state.load(Ordering::Acquire) == GATED
    }

    /// Passes one change through the gate. The fast path (live) is one atomic load; `buffer`
    /// builds the buffered form only when the change is actually held.
    #[inline]
    pub(crate) fn admit(
        &self,
        seq: SeqId,
        buffer: impl FnOnce() -> BufferedNotification,
    ) -> GateDecision {
        match self.state.load(Ordering::Acquire) {
            word if word < OPENING => live_decision(seq, word),
            CLOSED => GateDecision::Closed,
            OPENING => GateDecision::NotYetOpen,
            _ => self.admit_gated(seq, buffer),
        }
    }

    #[cold]
    fn admit_gated(
        &self,
        seq: SeqId,
        buffer: impl FnOnce() -> BufferedNotification,
    ) -> GateDecision {
        let mut gate = lock(&self.gate);
        // Re-check under the lock: the load may have completed (or the subscription ended)
        // since the state was read. Reading GATED again here means the completer has not
        // flushed yet, so what is buffered now will be flushed. (Mutant: without the
        // re-check, a change buffered after the flush is stranded, never delivered.)
        if !mutant!("gate_no_recheck") {
            match self.state.load(Ordering::Acquire) {
                word if word < OPENING => return live_decision(seq, word),
                CLOSED => return GateDecision::Closed,
                _ => {}
            }
        }
        let Some(gate_buffer) = gate.as_mut() else {
            return GateDecision::Closed;
        };
        if gate_buffer.covers(seq) {
            gate_buffer.covered_by_snapshot += 1;
            return GateDecision::CoveredBySnapshot;
        }
        if gate_buffer.buffered.len() >= gate_buffer.capacity {
            *gate = None;
            self.state.store(CLOSED, Ordering::Release);
            return GateDecision::Overflowed;
        }
        gate_buffer.insert_in_order(buffer());
        GateDecision::Buffered
    }

    /// Sets the snapshot boundary: buffered changes at or below it are dropped, and so are
    /// later arrivals at or below it. Set again, it may stay or move forward, never back.
    pub(crate) fn set_boundary(&self, boundary: SeqId) -> Result<u64, GateError> {
        let boundary = SeqId(boundary.0.min(MAX_BOUNDARY));
        let mut gate = lock(&self.gate);
        let gate_buffer = self.gated_buffer(&mut gate)?;
        if gate_buffer.boundary.is_some_and(|set| boundary < set) {
            return Err(GateError::BoundaryMovedBack);
        }
        gate_buffer.boundary = Some(boundary);
        Ok(gate_buffer.drop_covered(boundary))
    }

    /// Passes one replayed commit (resume) straight to the channel through `send`, under
    /// the gate's lock so it is ordered with the flush. Replayed commits are the host's own
    /// data at the host's pace, so they never take room in the buffer meant for live
    /// commits racing the load: a full channel is the caller's `Err` from `send`, handed
    /// back with nothing recorded, for the host to retry. `send` is not called for a
    /// commit at or below the boundary or the highest already replayed (a duplicate, or
    /// out of log order): that is `Ok(Replay::Skipped)`. Once sent, live copies of it (or
    /// of any earlier commit) already buffered are dropped, and later live publishes at
    /// or below it are dropped too, while gated and once live: the replay delivered them.
    /// With the outcome comes the number of buffered copies dropped, counted as covered
    /// (as a live copy arriving after the replay is).
    pub(crate) fn replay<E>(
        &self,
        seq: SeqId,
        send: impl FnOnce() -> Result<bool, E>,
    ) -> Result<Result<(Replay, u64), E>, GateError> {
        let mut gate = lock(&self.gate);
        let gate_buffer = self.gated_buffer(&mut gate)?;
        if gate_buffer
            .boundary
            .max(gate_buffer.replayed_upto)
            .is_some_and(|covered| seq <= covered)
        {
            return Ok(Ok((Replay::Skipped, 0)));
        }
        let sent = match send() {
            Ok(sent) => sent,
            Err(error) => return Ok(Err(error)),
        };
        // Mutant (the bug this fixed): without it, a live publish of a commit already
        // replayed is held again, or sent once live, and the client gets it twice.
        let mut covered = 0;
        if !mutant!("replay_not_remembered") {
            gate_buffer.replayed_upto = Some(seq);
            covered = gate_buffer.drop_covered(seq);
        }
        let outcome = if sent { Replay::Sent } else { Replay::NoMatch };
        Ok(Ok((outcome, covered)))
    }

    /// Completes the initial load: hands every buffered change, in order, to `flush` and
    /// then marks the gate live, all under the lock so no publisher slips between. (The
    /// manager completes through [`complete_announced`](Self::complete_announced).)
    #[cfg(any(test, livecore_loom))]
    pub(crate) fn complete(
        &self,
        flush: impl FnMut(BufferedNotification),
    ) -> Result<CompletedLoad, GateError> {
        match self.complete_announced(
            |_: &mut LoadSoFar| Ok::<(), std::convert::Infallible>(()),
            flush,
        )? {
            Ok(completed) => Ok(completed),
            Err(never) => match never {},
        }
    }

    /// [`complete`](Self::complete), calling `announce` first, under the gate's lock once
    /// the load is known to be still running, with what it did so far: the caller queues
    /// the subscriber's completion marker there, so the marker goes out only for a load
    /// that does complete (a gate that overflowed meanwhile sends none), and ahead of the
    /// flushed changes. `announce` may take the buffered changes itself (to hand them to
    /// the receiver with a marker that found no room); what it leaves is flushed. An `Err`
    /// from `announce` is handed back with the load still running (and its buffer as it
    /// was, which `announce` must then leave alone).
    pub(crate) fn complete_announced<E>(
        &self,
        announce: impl FnOnce(&mut LoadSoFar) -> Result<(), E>,
        mut flush: impl FnMut(BufferedNotification),
    ) -> Result<Result<CompletedLoad, E>, GateError> {
        let mut gate = lock(&self.gate);
        let gate_buffer = self.gated_buffer(&mut gate)?;
        let held = gate_buffer.buffered.len() as u64;
        let mut so_far = LoadSoFar {
            boundary: gate_buffer.boundary,
            snapshot_batches: gate_buffer.snapshot_batches,
            snapshot_rows: gate_buffer.snapshot_rows,
            buffered: std::mem::take(&mut gate_buffer.buffered),
        };
        let announced = announce(&mut so_far);
        gate_buffer.buffered = so_far.buffered;
        if let Err(error) = announced {
            return Ok(Err(error));
        }
        let covered_by_snapshot = gate_buffer.covered_by_snapshot;
        let boundary = gate_buffer.boundary;
        // What `announce` took counts as flushed.
        let mut flushed = held - gate_buffer.buffered.len() as u64;
        let live = boundary
            .max(gate_buffer.replayed_upto)
            .map_or(0, |covered| covered.0.min(MAX_BOUNDARY) + 1);
        // Mutant: the live gate passes every SeqId, so a commit in the snapshot whose publish
        // raced the completion is delivered as well (twice for the client).
        let live = if mutant!("live_gate_forgets_boundary") {
            0
        } else {
            live
        };
        // Mutant: marking the gate live before the flush lets a racing publisher take the
        // lock-free path and send ahead of the buffered changes (out of order).
        if mutant!("gate_live_before_flush") {
            self.state.store(live, Ordering::Release);
        }
        while let Some(held) = gate_buffer.buffered.pop_front() {
            flush(held);
            flushed += 1;
        }
        *gate = None;
        self.state.store(live, Ordering::Release);
        Ok(Ok(CompletedLoad {
            flushed,
            covered_by_snapshot,
            boundary,
        }))
    }

    /// Ends the subscription: publishers skip it from now on and receivers drop what is
    /// still queued for it. Returns false if it had already ended.
    pub(crate) fn close(&self) -> bool {
        // A live gate never holds a buffer again (only `gated` makes one, and completing
        // the load drops it before the word turns live), so closing it needs no lock.
        let word = self.state.load(Ordering::Acquire);
        // Closed is final, and a closed gate holds no buffer (closing under the lock drops
        // it first): a second close, as unsubscribing does, needs no lock either.
        if word == CLOSED {
            return false;
        }
        // Mutant: a gated gate closed without the lock too; a completion flushing under the
        // lock then marks it live again, after the close returned.
        if word < GATED || (word == GATED && mutant!("gated_close_without_lock")) {
            return self
                .state
                .compare_exchange(word, CLOSED, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
                || self.close_locked();
        }
        self.close_locked()
    }

    fn close_locked(&self) -> bool {
        let mut gate = lock(&self.gate);
        *gate = None;
        self.state.swap(CLOSED, Ordering::AcqRel) != CLOSED
    }

    /// How many changes are buffered now.
    pub(crate) fn buffered_len(&self) -> usize {
        lock(&self.gate)
            .as_ref()
            .map_or(0, |gate| gate.buffered.len())
    }

    fn gated_buffer<'a>(
        &self,
        gate: &'a mut Option<Box<GateBuffer>>,
    ) -> Result<&'a mut GateBuffer, GateError> {
        match (self.state.load(Ordering::Acquire), gate.as_mut()) {
            (GATED, Some(gate_buffer)) => Ok(gate_buffer),
            (CLOSED, _) | (GATED, None) => Err(GateError::Closed),
            _ => Err(GateError::AlreadyLive),
        }
    }
}

/// A live gate passes changes above its boundary; those at or below it are in the snapshot.
/// `word` is the live gate word: 0, or the boundary plus one.
#[inline]
fn live_decision(seq: SeqId, word: u64) -> GateDecision {
    if seq.0 >= word {
        GateDecision::SendNow
    } else {
        GateDecision::CoveredBySnapshot
    }
}

/// What a load did before it completed, for its completion marker.
#[derive(Default)]
pub(crate) struct LoadSoFar {
    pub(crate) boundary: Option<SeqId>,
    pub(crate) snapshot_batches: u32,
    pub(crate) snapshot_rows: u64,
    /// The changes buffered above the boundary, in order.
    pub(crate) buffered: VecDeque<BufferedNotification>,
}

/// What completing a load did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CompletedLoad {
    pub(crate) flushed: u64,
    pub(crate) covered_by_snapshot: u64,
    pub(crate) boundary: Option<SeqId>,
}

impl GateBuffer {
    /// True when `seq` is already held by the snapshot or was replayed.
    fn covers(&self, seq: SeqId) -> bool {
        self.boundary.max(self.replayed_upto) >= Some(seq)
    }

    /// Drops the held changes at or below `upto` (the snapshot or a replay delivered them)
    /// and counts them covered; returns how many.
    fn drop_covered(&mut self, upto: SeqId) -> u64 {
        let before = self.buffered.len();
        self.buffered.retain(|held| held.seq > upto);
        let dropped = (before - self.buffered.len()) as u64;
        self.covered_by_snapshot += dropped;
        dropped
    }

    fn insert_in_order(&mut self, held: BufferedNotification) {
        // Live changes arrive in order, so this is a push to the back; replayed (older)
        // commits are placed before later ones.
        let index = self.buffered.partition_point(|other| other.seq <= held.seq);
        self.buffered.insert(index, held);
    }
}

impl std::fmt::Debug for SubscriptionFlowControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match self.state.load(Ordering::Acquire) {
            GATED => "gated",
            CLOSED => "closed",
            OPENING => "opening",
            _ => "live",
        };
        f.debug_struct("SubscriptionFlowControl")
            .field("state", &state)
            .finish()
    }
}

/// Loom builds only: a gate on its own, for the models in `loom-tests` that race its
/// close against the completion of a load (the close is lock-free on a live gate).
#[cfg(livecore_loom)]
#[doc(hidden)]
pub struct ModelGate(SubscriptionFlowControl);

#[cfg(livecore_loom)]
impl ModelGate {
    /// A gate held closed for a load, buffering up to `capacity` changes.
    pub fn gated(capacity: usize) -> Self {
        Self(SubscriptionFlowControl::gated(capacity, None))
    }

    /// Offers the change numbered `seq`: "send", "buffered", "covered", "overflowed" or
    /// "closed".
    pub fn admit(&self, seq: u64) -> &'static str {
        let held = || BufferedNotification {
            seq: SeqId(seq),
            commit: SharedCommit::new(crate::types::change::Commit::new(SeqId(seq), Vec::new())),
            matched: 0,
        };
        match self.0.admit(SeqId(seq), held) {
            GateDecision::SendNow => "send",
            GateDecision::Buffered => "buffered",
            GateDecision::CoveredBySnapshot => "covered",
            GateDecision::Overflowed => "overflowed",
            GateDecision::Closed => "closed",
            GateDecision::NotYetOpen => "not yet open",
        }
    }

    /// Completes the load: how many buffered changes were flushed, or `None` if the gate
    /// had closed.
    pub fn complete(&self) -> Option<u64> {
        self.0.complete(|_| {}).ok().map(|done| done.flushed)
    }

    /// Closes the gate; true for the call that closed it.
    pub fn close(&self) -> bool {
        self.0.close()
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

#[cfg(all(test, not(livecore_loom)))]
mod tests {
    use super::*;
    use crate::types::change::Commit;

    fn held(seq: u64) -> BufferedNotification {
        BufferedNotification {
            seq: SeqId(seq),
            commit: SharedCommit::new(Commit::new(SeqId(seq), Vec::new())),
            matched: 0,
        }
    }

    fn flushed_seqs(gate: &SubscriptionFlowControl) -> Vec<u64> {
        let mut seqs = Vec::new();
        gate.complete(|held| seqs.push(held.seq.0)).unwrap();
        seqs
    }

    /// The completion marker is announced under the lock only for a load that completes:
    /// not for a gate that overflowed (its subscriber is told to resync instead), and a
    /// refused announcement leaves the load running with its buffer.
    #[test]
    fn a_completion_is_announced_only_when_the_load_completes() {
        let overflowed = SubscriptionFlowControl::gated(1, None);
        assert_eq!(
            overflowed.admit(SeqId(1), || held(1)),
            GateDecision::Buffered
        );
        assert_eq!(
            overflowed.admit(SeqId(2), || held(2)),
            GateDecision::Overflowed
        );
        let mut announced = false;
        let result = overflowed.complete_announced(
            |_| {
                announced = true;
                Ok::<(), ()>(())
            },
            |_| {},
        );
        assert!(matches!(result, Err(GateError::Closed)));
        assert!(!announced);

        let gate = SubscriptionFlowControl::gated(4, None);
        gate.set_boundary(SeqId(3)).unwrap();
        assert_eq!(gate.admit(SeqId(5), || held(5)), GateDecision::Buffered);
        let refused = gate.complete_announced(
            |so_far| {
                assert_eq!(so_far.boundary, Some(SeqId(3)));
                Err("full")
            },
            |_| panic!("nothing is flushed after a refused announcement"),
        );
        assert!(matches!(refused, Ok(Err("full"))));
        assert!(gate.is_gated());
        assert_eq!(flushed_seqs(&gate), vec![5]);
    }

    /// An opening gate passes nothing, whatever the SeqId, until opened; then it is live
    /// with no boundary. An ended one stays ended when the subscribe opens it.
    #[test]
    fn an_opening_gate_passes_nothing_until_opened() {
        let gate = SubscriptionFlowControl::opening();
        for seq in [0, 1, MAX_BOUNDARY, u64::MAX] {
            assert!(!gate.passes_live(SeqId(seq)));
            assert_eq!(
                gate.admit(SeqId(seq), || held(seq)),
                GateDecision::NotYetOpen
            );
        }
        assert_eq!(gate.covered_upto(), None);
        gate.open();
        assert!(gate.passes_live(SeqId(0)));
        assert_eq!(gate.admit(SeqId(7), || held(7)), GateDecision::SendNow);
        assert_eq!(gate.covered_upto(), None);

        let ended = SubscriptionFlowControl::opening();
        ended.close();
        ended.open();
        assert!(ended.is_closed());
        assert_eq!(ended.admit(SeqId(7), || held(7)), GateDecision::Closed);
    }

    /// A boundary of 0 is a boundary: the live gate reports it (a gap before the first
    /// change names it) and drops a straggler at 0; the largest boundary is kept too.
    #[test]
    fn a_boundary_of_zero_or_the_largest_is_kept_once_live() {
        for (asked, kept) in [(0, 0), (u64::MAX, MAX_BOUNDARY)] {
            let gate = SubscriptionFlowControl::gated(10, None);
            gate.set_boundary(SeqId(asked)).unwrap();
            gate.complete(|_| {}).unwrap();
            assert_eq!(gate.covered_upto(), Some(SeqId(kept)));
            assert!(!gate.passes_live(SeqId(kept)));
            assert!(gate.passes_live(SeqId(kept + 1)));
            assert_eq!(
                gate.admit(SeqId(kept), || held(kept)),
                GateDecision::CoveredBySnapshot
            );
            assert!(gate.is_live());
        }
        let live = SubscriptionFlowControl::live();
        assert_eq!(live.covered_upto(), None);
        assert!(live.passes_live(SeqId(0)));
    }

    #[test]
    fn boundary_drops_covered_changes_and_keeps_later_ones_in_order() {
        let gate = SubscriptionFlowControl::gated(10, None);
        for seq in [3, 5, 8] {
            assert_eq!(gate.admit(SeqId(seq), || held(seq)), GateDecision::Buffered);
        }
        assert_eq!(gate.set_boundary(SeqId(5)), Ok(2));
        // The boundary stays or moves forward: 3 was dropped as covered, and a boundary
        // of 2 would leave it in neither the snapshot nor the stream.
        assert_eq!(
            gate.set_boundary(SeqId(2)),
            Err(GateError::BoundaryMovedBack)
        );
        assert_eq!(gate.set_boundary(SeqId(5)), Ok(0));
        assert_eq!(
            gate.admit(SeqId(4), || held(4)),
            GateDecision::CoveredBySnapshot
        );
        assert_eq!(gate.admit(SeqId(9), || held(9)), GateDecision::Buffered);
        assert_eq!(flushed_seqs(&gate), vec![8, 9]);
        assert!(gate.is_live());
        assert_eq!(gate.admit(SeqId(10), || held(10)), GateDecision::SendNow);
        // A straggler in the snapshot whose publish raced the completion is still dropped.
        assert_eq!(
            gate.admit(SeqId(5), || held(5)),
            GateDecision::CoveredBySnapshot
        );
        assert_eq!(gate.set_boundary(SeqId(1)), Err(GateError::AlreadyLive));
    }

    /// Replays `seq` with a channel that accepts it; the outcome.
    fn replay(gate: &SubscriptionFlowControl, seq: u64, sent: &mut Vec<u64>) -> Replay {
        gate.replay(SeqId(seq), || {
            sent.push(seq);
            Ok::<bool, ()>(true)
        })
        .unwrap()
        .unwrap()
        .0
    }

    #[test]
    fn replay_goes_straight_to_the_channel_in_log_order() {
        let gate = SubscriptionFlowControl::gated(10, Some(SeqId(2)));
        let mut sent = Vec::new();
        assert_eq!(gate.admit(SeqId(6), || held(6)), GateDecision::Buffered);
        assert_eq!(replay(&gate, 2, &mut sent), Replay::Skipped);
        assert_eq!(replay(&gate, 4, &mut sent), Replay::Sent);
        assert_eq!(replay(&gate, 4, &mut sent), Replay::Skipped);
        assert_eq!(replay(&gate, 6, &mut sent), Replay::Sent);
        assert_eq!(sent, vec![4, 6]);
        // The live copy of 6 buffered before its replay is not flushed a second time.
        assert_eq!(gate.admit(SeqId(7), || held(7)), GateDecision::Buffered);
        assert_eq!(flushed_seqs(&gate), vec![7]);
    }

    #[test]
    fn a_replay_the_channel_refuses_is_not_recorded() {
        let gate = SubscriptionFlowControl::gated(10, Some(SeqId(2)));
        let refused = gate.replay(SeqId(3), || Err::<bool, &str>("full")).unwrap();
        assert_eq!(refused, Err("full"));
        assert_eq!(gate.admit(SeqId(3), || held(3)), GateDecision::Buffered);
        let mut sent = Vec::new();
        assert_eq!(replay(&gate, 3, &mut sent), Replay::Sent);
        assert_eq!(sent, vec![3]);
    }

    #[test]
    fn replay_is_not_bounded_by_the_gate_buffer() {
        // Regression: replayed commits took room in the buffer meant for live commits, so
        // a client further behind than its capacity could never resume.
        let gate = SubscriptionFlowControl::gated(2, Some(SeqId(0)));
        let mut sent = Vec::new();
        for seq in 1..=100 {
            assert_eq!(replay(&gate, seq, &mut sent), Replay::Sent);
        }
        assert_eq!(sent.len(), 100);
        assert_eq!(flushed_seqs(&gate), Vec::<u64>::new());
    }

    #[test]
    fn live_publishes_of_replayed_commits_are_dropped_before_and_after_completion() {
        // Regression: a commit the engine replayed and then also published live (its
        // publish raced the replay's read of the log) was held, or sent, twice.
        let gate = SubscriptionFlowControl::gated(10, Some(SeqId(2)));
        let mut sent = Vec::new();
        assert_eq!(replay(&gate, 3, &mut sent), Replay::Sent);
        assert_eq!(replay(&gate, 4, &mut sent), Replay::Sent);
        assert_eq!(
            gate.admit(SeqId(3), || held(3)),
            GateDecision::CoveredBySnapshot
        );
        assert_eq!(gate.admit(SeqId(5), || held(5)), GateDecision::Buffered);
        assert_eq!(flushed_seqs(&gate), vec![5]);
        assert_eq!(
            gate.admit(SeqId(4), || held(4)),
            GateDecision::CoveredBySnapshot
        );
        assert_eq!(gate.admit(SeqId(6), || held(6)), GateDecision::SendNow);
    }

    #[test]
    fn overflow_closes_the_gate() {
        let gate = SubscriptionFlowControl::gated(1, None);
        assert_eq!(gate.admit(SeqId(1), || held(1)), GateDecision::Buffered);
        assert_eq!(gate.admit(SeqId(2), || held(2)), GateDecision::Overflowed);
        assert!(gate.is_closed());
        assert_eq!(gate.admit(SeqId(3), || held(3)), GateDecision::Closed);
        assert!(gate.complete(|_| {}).is_err());
    }

    #[test]
    fn a_gate_closes_once_whether_live_gated_or_completed() {
        let live = SubscriptionFlowControl::live();
        assert!(live.close(), "the first close of a live gate");
        assert!(!live.close(), "and only the first");
        assert_eq!(live.admit(SeqId(1), || held(1)), GateDecision::Closed);

        let gated = SubscriptionFlowControl::gated(4, None);
        assert_eq!(gated.admit(SeqId(1), || held(1)), GateDecision::Buffered);
        assert!(gated.close());
        assert!(!gated.close());
        assert_eq!(gated.buffered_len(), 0, "the buffer goes with the close");
        assert!(gated.complete(|_| {}).is_err());

        let completed = SubscriptionFlowControl::gated(4, Some(SeqId(5)));
        assert!(completed.complete(|_| {}).is_ok());
        assert!(completed.is_live());
        assert!(completed.close(), "live with a boundary");
        assert!(!completed.close());
        assert!(completed.is_closed());
    }
}
