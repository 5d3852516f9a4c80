//! Wake-ups for parked consumers, without a lost wake-up and without a busy loop.
//!
//! Every consumer session owns a one-slot token channel ([`Parker`]). A consume that finds
//! nothing registers the session's sender in the [`WaitList`] of each partition it leases
//! (and in its group's list when it wants more partitions), checks once more, and only then
//! parks on its receiver. A publisher appends, raises the partition's `end`, then drains the
//! partition's wait list and puts a token into each registered channel.
//!
//! Why no wake-up is lost: the consumer writes its registration (`waiting`) and then reads
//! `end` with a read-modify-write; the publisher raises `end` with a read-modify-write and
//! then reads `waiting`. Read-modify-writes of `end` are totally ordered and each reads the
//! latest value. If the consumer's comes first, the publisher's reads from it and so
//! (release/acquire) sees the registration, and leaves a token, which a later park consumes
//! at once; if the publisher's comes first, the consumer reads the new `end` and does not
//! park. This holds with acquire/release alone — it does not lean on sequentially
//! consistent loads (a store-load "Dekker" handshake), which is also what lets loom check
//! it. A token left behind by an earlier wake-up costs one extra pass of the consume loop,
//! never a spin: each token is one event.

use std::collections::HashMap;

use crate::sync::mutant;
use crate::sync::{channel, lock, AtomicU64, AtomicUsize, Mutex, Ordering};
use crate::types::ids::ConnectionId;

/// A session's wake-up channel: one slot, so any number of wake-ups while the consumer
/// runs collapse into one token.
pub(crate) struct Parker {
    tx: channel::Sender<()>,
    rx: channel::Receiver<()>,
}

impl Parker {
    pub(crate) fn new() -> Self {
        let (tx, rx) = channel::bounded(1);
        Self { tx, rx }
    }

    /// Leaves a token (if none is waiting already).
    pub(crate) fn wake(&self) {
        let _ = self.tx.try_send(());
    }

    /// A sender to register in wait lists.
    pub(crate) fn sender(&self) -> &channel::Sender<()> {
        &self.tx
    }

    /// Waits for a token, up to `timeout`. A loom build has no clock: it waits until woken,
    /// so a lost wake-up shows as a deadlock loom reports.
    #[cfg(not(livecore_loom))]
    pub(crate) fn park(&self, timeout: std::time::Duration) {
        let _ = self.rx.recv_timeout(timeout);
    }

    /// Waits for a token (loom build: no timeout, see above).
    #[cfg(livecore_loom)]
    pub(crate) fn park(&self, _timeout: std::time::Duration) {
        let _ = self.rx.recv();
    }

    /// Waits for a token without blocking a thread.
    #[cfg(not(livecore_loom))]
    pub(crate) async fn park_async(&self) {
        let _ = self.rx.recv_async().await;
    }
}

/// Sessions to wake when something happens (a message is appended, a partition is freed).
pub(crate) struct WaitList {
    /// How many are registered; read by wakers without the lock.
    waiting: AtomicUsize,
    waiters: Mutex<HashMap<ConnectionId, channel::Sender<()>>>,
}

impl WaitList {
    pub(crate) fn new() -> Self {
        Self {
            waiting: AtomicUsize::new(0),
            waiters: Mutex::new(HashMap::new()),
        }
    }

    /// Registers `session` until the next wake-up. Registering again is a no-op.
    pub(crate) fn register(&self, session: ConnectionId, tx: &channel::Sender<()>) {
        let mut waiters = lock(&self.waiters);
        waiters.entry(session).or_insert_with(|| tx.clone());
        // A sequentially consistent write, ordered before the caller's re-check.
        self.waiting.swap(waiters.len(), Ordering::SeqCst);
    }

    /// Forgets `session` (its lease ended or it went away).
    pub(crate) fn remove(&self, session: ConnectionId) {
        if self.waiting.load(Ordering::SeqCst) == 0 {
            return;
        }
        let mut waiters = lock(&self.waiters);
        waiters.remove(&session);
        self.waiting.store(waiters.len(), Ordering::SeqCst);
    }

    /// Wakes every registered session and empties the list. Costs one atomic load when
    /// nobody waits.
    pub(crate) fn wake_all(&self) {
        if self.waiting.load(Ordering::SeqCst) == 0 {
            return;
        }
        let waiters = {
            let mut waiters = lock(&self.waiters);
            self.waiting.store(0, Ordering::SeqCst);
            std::mem::take(&mut *waiters)
        };
        for tx in waiters.values() {
            let _ = tx.try_send(());
        }
    }
}

/// One partition's publish signal: the end offset livecore has appended up to, and the
/// sessions waiting for it to move.
pub(crate) struct PartitionSignal {
    end: AtomicU64,
    /// The end the partition had when the topic opened plus every message an append has
    /// been started for since: livecore is the log's only writer and offsets are given out
    /// consecutively, so no append can have been given an offset at or past it.
    reserved: AtomicU64,
    pub(crate) waiters: WaitList,
}

/// Where an append started (see [`PartitionSignal::start_append`]): the partition's end as
/// livecore knew it then, the lowest offset the append can be given.
#[derive(Clone, Copy)]
pub(crate) struct AppendStart {
    floor: u64,
    /// What had been counted once this append was: only the mutant below reads it.
    counted: u64,
}

impl PartitionSignal {
    pub(crate) fn new(end: u64) -> Self {
        Self {
            end: AtomicU64::new(end),
            reserved: AtomicU64::new(end),
            waiters: WaitList::new(),
        }
    }

    /// Called before an append of `count` messages is handed to the log: counts them as
    /// written, and notes the end every append that returned before this one has raised.
    pub(crate) fn start_append(&self, count: u64) -> AppendStart {
        let floor = self.end.load(Ordering::SeqCst);
        let counted = self.reserved.fetch_add(count, Ordering::SeqCst) + count;
        AppendStart { floor, counted }
    }

    /// Checks the first offset a log gave an append of `count` messages started at
    /// `start`. Appends that returned before it started took effect before it, so it
    /// begins at or after the end they raised; and every append that took effect before it
    /// had been started (and counted) before it returned, so it ends within what has been
    /// counted. Concurrent appends may finish in any order; neither bound depends on it.
    /// `Err` holds the offsets it could have been given, for the error.
    pub(crate) fn check_append(
        &self,
        start: AppendStart,
        first: u64,
        count: u64,
    ) -> Result<(), (u64, u64)> {
        // Mutant: the ceiling as counted when this append started. An append started
        // later may take effect first, and this one is then refused although the store
        // gave it the right offset.
        let ceiling = if mutant!("append_ceiling_at_start") {
            start.counted
        } else {
            self.reserved.load(Ordering::SeqCst)
        };
        let fits =
            first >= start.floor && first.checked_add(count).is_some_and(|end| end <= ceiling);
        if fits {
            Ok(())
        } else {
            Err((start.floor, ceiling.saturating_sub(count)))
        }
    }

    /// Offsets below this have been appended (and are readable unless retention took them).
    /// A plain load: a hint, for skipping partitions with nothing new.
    pub(crate) fn end(&self) -> u64 {
        self.end.load(Ordering::SeqCst)
    }

    /// `end`, read by a read-modify-write: the consumer's re-check after registering, which
    /// is ordered with every publisher's raise of `end` (see the module documentation).
    pub(crate) fn end_after_registering(&self) -> u64 {
        // Mutant: a plain load, the store-load handshake loom must catch losing a wake-up.
        if mutant!("topic_recheck_load") {
            return self.end.load(Ordering::SeqCst);
        }
        self.end.fetch_add(0, Ordering::SeqCst)
    }

    /// Publisher side, after an append returned: raises `end` and wakes the waiting.
    pub(crate) fn appended(&self, new_end: u64) {
        self.end.fetch_max(new_end, Ordering::SeqCst);
        self.waiters.wake_all();
    }
}
