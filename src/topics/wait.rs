//! Wake-ups for parked consumers, without a lost wake-up and without a busy loop.
//!
//! Every consume call owns a one-slot token channel ([`Parker`]), registered with its
//! consumer session's [`SessionWake`] for as long as the call lives. A consume that finds
//! nothing registers the session's wake in the [`WaitList`] of each partition it leases
//! (and in its group's list when it wants more partitions), checks once more, and only then
//! parks on its receiver. A publisher appends, raises the partition's `end`, then drains the
//! partition's wait list and wakes each registered session, which puts a token into the
//! channel of every call active on it.
//!
//! Why the session wakes every call, not one: wait lists and group members are kept per
//! session (leases are the session's), but several calls may wait on one session at once —
//! threads, or one `select!` over two groups. A single session token would reach one of
//! them, and another whose group got the message would sleep on. A call joins its session
//! before it registers anywhere, so a wake that follows a registration finds it.
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
use crate::sync::{channel, lock, Arc, AtomicU64, AtomicUsize, Mutex, Ordering};
use crate::types::ids::ConnectionId;

/// A consumer session's wake-up: wakes every consume call active on the session. Wait
/// lists and group members hold it, one per session.
pub(crate) struct SessionWake {
    /// The active calls' token senders, by call number.
    calls: Mutex<Vec<(u64, channel::Sender<()>)>>,
    next_call: AtomicU64,
}

impl SessionWake {
    pub(crate) fn new() -> Self {
        Self {
            calls: Mutex::new(Vec::new()),
            next_call: AtomicU64::new(0),
        }
    }

    /// Leaves a token with every active call (if it has none waiting already). A wake with
    /// no call active is dropped: a call makes a whole pass before it first parks.
    pub(crate) fn wake(&self) {
        // Sent outside the lock: a token may wake an async consume's task, and an executor
        // that polls it from inside the wake would take the lock again (a call ending).
        let calls: Vec<channel::Sender<()>> =
            lock(&self.calls).iter().map(|(_, tx)| tx.clone()).collect();
        for tx in calls {
            let _ = tx.try_send(());
            // Mutant: the single session token of old, which one of several parked calls
            // takes; loom must catch the other one sleeping on.
            if mutant!("session_wakes_one_call") {
                break;
            }
        }
    }

    /// A parker for a new consume call, active until it is dropped.
    pub(crate) fn parker(session: &Arc<Self>) -> Parker {
        let (tx, rx) = channel::bounded(1);
        let call = session.next_call.fetch_add(1, Ordering::Relaxed);
        lock(&session.calls).push((call, tx));
        Parker {
            rx,
            call,
            session: session.clone(),
        }
    }
}

/// One consume call's wake-up channel: one slot, so any number of wake-ups while the call
/// runs collapse into one token. Dropping it (the call returned, or its future was dropped)
/// takes it off its session.
pub(crate) struct Parker {
    rx: channel::Receiver<()>,
    call: u64,
    session: Arc<SessionWake>,
}

impl Parker {
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

impl Drop for Parker {
    fn drop(&mut self) {
        lock(&self.session.calls).retain(|(call, _)| *call != self.call);
    }
}

/// Sessions to wake when something happens (a message is appended, a partition is freed).
pub(crate) struct WaitList {
    /// How many are registered; read by wakers without the lock.
    waiting: AtomicUsize,
    waiters: Mutex<HashMap<ConnectionId, Arc<SessionWake>>>,
}

impl WaitList {
    pub(crate) fn new() -> Self {
        Self {
            waiting: AtomicUsize::new(0),
            waiters: Mutex::new(HashMap::new()),
        }
    }

    /// Registers `session` until the next wake-up. Registering again is a no-op.
    pub(crate) fn register(&self, session: ConnectionId, wake: &Arc<SessionWake>) {
        let mut waiters = lock(&self.waiters);
        waiters.entry(session).or_insert_with(|| wake.clone());
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
        for wake in waiters.values() {
            wake.wake();
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
    /// `None`, counting nothing, when the offsets would pass `u64::MAX` (a store may
    /// report any end).
    pub(crate) fn start_append(&self, count: u64) -> Option<AppendStart> {
        let floor = self.end.load(Ordering::SeqCst);
        let before = self
            .reserved
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |reserved| {
                reserved.checked_add(count)
            })
            .ok()?;
        Some(AppendStart {
            floor,
            counted: before + count,
        })
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

#[cfg(all(test, not(livecore_loom)))]
mod tests {
    use super::*;

    fn has_token(parker: &Parker) -> bool {
        parker.rx.try_recv().is_ok()
    }

    #[test]
    fn a_session_wake_reaches_every_active_call_and_only_those() {
        let session = Arc::new(SessionWake::new());
        let first = SessionWake::parker(&session);
        let second = SessionWake::parker(&session);
        session.wake();
        assert!(has_token(&first) && has_token(&second));
        // Tokens collapse: two wakes while a call runs leave it one.
        session.wake();
        session.wake();
        assert!(has_token(&first));
        assert!(!has_token(&first));
        drop(second);
        assert_eq!(
            lock(&session.calls).len(),
            1,
            "a dropped call stays registered"
        );
        let third = SessionWake::parker(&session);
        session.wake();
        assert!(has_token(&first) && has_token(&third));
        drop((first, third));
        assert!(lock(&session.calls).is_empty());
        // Nobody to wake: nothing is kept for a call that comes later.
        session.wake();
        assert!(!has_token(&SessionWake::parker(&session)));
    }
}
