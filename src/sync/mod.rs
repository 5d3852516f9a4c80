//! The one place that chooses between std and loom.
//!
//! Every atomic, `Arc`, `Mutex`, arc-swap cell and channel the library uses comes from here.
//! A normal build gets std, arc-swap, flume and triomphe. A build with `--cfg livecore_loom` (used only
//! by the `loom-tests` crate, with its own target directory) gets loom's types and small
//! loom-modelled stand-ins for arc-swap and flume with the same interface, so the protocols
//! built on top are what loom explores.
//!
//! The module also keeps a per-thread count of the locks livecore itself takes, so tests can
//! show by counting that publishing to live subscriptions takes none.

use std::cell::Cell;

#[cfg(not(livecore_loom))]
pub(crate) use std::sync::{
    atomic::{fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering},
    Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
};

#[cfg(livecore_loom)]
pub(crate) use loom::sync::{
    atomic::{fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering},
    Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
};

/// Reference counting for immutable data (strings, rows, compiled filters) that is shared
/// read-only and takes part in no synchronization protocol, so loom need not model it. It is
/// std's `Arc` in every build, which also lets unsized values (`str`, slices) use it.
pub type DataArc<T> = std::sync::Arc<T>;

// `LeanArc`: reference counting without a weak count, for the values livecore makes by the
// million (subscription cores): triomphe's `Arc`, whose header is one count, 8 bytes less
// than std's. Loom builds use loom's `Arc`, which models the count's synchronization.
#[cfg(livecore_loom)]
pub(crate) use loom::sync::Arc as LeanArc;
#[cfg(not(livecore_loom))]
pub(crate) use triomphe::Arc as LeanArc;

#[cfg(not(livecore_loom))]
pub(crate) use arc_swap::{ArcSwap, ArcSwapAny, ArcSwapOption, Guard};

#[cfg(livecore_loom)]
pub(crate) use loom_stand_ins::{ArcSwap, ArcSwapAny, ArcSwapOption, Guard, SamePointer};

/// Raw allocation, for livecore's own counted allocations (the routing index's buckets):
/// loom's allocator in a model, which reports what a model leaks.
#[cfg(not(livecore_loom))]
pub(crate) use std::alloc::{alloc, dealloc};

#[cfg(livecore_loom)]
pub(crate) use loom::alloc::{alloc, dealloc};

/// Threads, for the optional background checker (which loom builds leave out).
#[cfg(not(livecore_loom))]
pub(crate) use std::thread;

/// Lazily initialized statics and cells, for the C ABI's handle tables (which loom builds
/// leave out: the C ABI is not part of any model).
#[cfg(not(livecore_loom))]
pub(crate) use std::sync::{LazyLock, OnceLock, TryLockError};

/// Bounded multi-producer channels: flume normally, a loom-modelled queue in a model.
pub(crate) mod channel {
    #[cfg(not(livecore_loom))]
    pub use flume::{
        bounded, unbounded, Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError,
    };

    #[cfg(livecore_loom)]
    pub use super::loom_stand_ins::channel::{
        bounded, unbounded, Receiver, RecvTimeoutError, Sender, TryRecvError, TrySendError,
    };
}

thread_local! {
    static LOCKS_TAKEN: Cell<u64> = const { Cell::new(0) };
}

/// Counts a lock acquisition for this thread. During thread-local teardown (a C destructor
/// calling into livecore) there is nothing to count into: the count is skipped, never a
/// panic.
#[inline]
fn count_lock() {
    let _ = LOCKS_TAKEN.try_with(|count| count.set(count.get() + 1));
}

/// Locks a livecore mutex, ignoring poisoning (every critical section leaves its data
/// consistent before anything can panic), and counts the acquisition for this thread.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    count_lock();
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Takes a read lock (shared), ignoring poisoning, and counts it.
pub(crate) fn read<T>(rw: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    count_lock();
    match rw.read() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Takes a write lock (exclusive), ignoring poisoning, and counts it.
pub(crate) fn write<T>(rw: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    count_lock();
    match rw.write() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// Loom builds only: true when the deliberate bug `name` is selected for this run, by the
/// `LIVECORE_MUTANT` environment variable. Selecting at run time lets one loom build serve
/// every mutant (`.ci/test.sh` runs the same test binaries once per mutant). In every other
/// build it is a constant `false`, and the mutated branch compiles away.
#[cfg(livecore_loom)]
pub(crate) fn mutant_selected(name: &str) -> bool {
    static SELECTED: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SELECTED.get_or_init(|| std::env::var("LIVECORE_MUTANT").unwrap_or_default()) == name
}

/// See the loom build's `mutant_selected`: outside loom no mutant is ever selected.
#[cfg(not(livecore_loom))]
#[inline(always)]
pub(crate) const fn mutant_selected(_name: &str) -> bool {
    false
}

/// Runs `first` then `second`, or the other way round when `swapped` (a `mutant!`): the
/// shape of the mutants that move a wake-up ahead of the flag it announces, written so
/// each statement appears once.
#[inline(always)]
pub(crate) fn in_order(swapped: bool, first: impl FnOnce(), second: impl FnOnce()) {
    if swapped {
        second();
        first();
    } else {
        first();
        second();
    }
}

/// `mutant!(<name literal>)`: true when the deliberate bug `name` is selected (loom builds only).
/// Every mutated site names its mutant through this macro, so `.ci/test.sh` can check the
/// names in src/ against the list of mutants it runs.
macro_rules! mutant {
    ($name:literal) => {
        $crate::sync::mutant_selected($name)
    };
}
pub(crate) use mutant;

/// How many livecore locks the calling thread has taken so far. Used by the cost tests.
#[doc(hidden)]
pub fn locks_taken_by_this_thread() -> u64 {
    LOCKS_TAKEN.try_with(Cell::get).unwrap_or(0)
}

#[cfg(livecore_loom)]
mod loom_stand_ins {
    //! Loom-modelled stand-ins for arc-swap and flume, with the subset of their interface
    //! that livecore uses. They are deliberately simple (a loom mutex around the value):
    //! what loom must explore is livecore's protocol on top, and every lock acquisition here
    //! is a point where loom can switch threads.
    // The interface mirrors the crates': a mutant build may leave part of it unused.
    #![allow(dead_code)]

    use loom::sync::{Arc, Mutex};
    use std::ops::Deref;

    /// A loaded value; derefs like arc-swap's guard.
    pub struct Guard<T>(T);

    impl<T> Deref for Guard<T> {
        type Target = T;
        fn deref(&self) -> &T {
            &self.0
        }
    }

    /// Pointers a stand-in cell compares by address.
    pub trait SamePointer {
        /// True when `self` and `other` point to the same value (both null counts).
        fn same_pointer(&self, other: &Self) -> bool;
    }

    impl<T> SamePointer for Arc<T> {
        fn same_pointer(&self, other: &Self) -> bool {
            Arc::ptr_eq(self, other)
        }
    }

    impl<T> SamePointer for Option<Arc<T>> {
        fn same_pointer(&self, other: &Self) -> bool {
            match (self, other) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
        }
    }

    /// Stand-in for `arc_swap::ArcSwapAny`: a loom mutex around the pointer. As in
    /// arc-swap, the `Arc` and `Option<Arc>` cells are this one with those pointers.
    pub struct ArcSwapAny<P> {
        cell: Mutex<P>,
    }

    /// Stand-in for `arc_swap::ArcSwap`.
    pub type ArcSwap<T> = ArcSwapAny<Arc<T>>;

    /// Stand-in for `arc_swap::ArcSwapOption`.
    pub type ArcSwapOption<T> = ArcSwapAny<Option<Arc<T>>>;

    impl<P: Clone + SamePointer> ArcSwapAny<P> {
        pub fn new(value: P) -> Self {
            Self {
                cell: Mutex::new(value),
            }
        }
        pub fn load(&self) -> Guard<P> {
            Guard(self.load_full())
        }
        pub fn load_full(&self) -> P {
            self.cell.lock().unwrap().clone()
        }
        pub fn store(&self, value: P) {
            *self.cell.lock().unwrap() = value;
        }
        pub fn swap(&self, value: P) -> P {
            std::mem::replace(&mut *self.cell.lock().unwrap(), value)
        }
        pub fn into_inner(self) -> P {
            self.cell.into_inner().unwrap()
        }
        /// Replaces the value only if it is still `current` (compared by address), and
        /// returns what was there before, like arc-swap.
        pub fn compare_and_swap<C: Deref<Target = P>>(&self, current: C, new: P) -> Guard<P> {
            let mut cell = self.cell.lock().unwrap();
            let previous = cell.clone();
            if previous.same_pointer(&current) {
                *cell = new;
            }
            Guard(previous)
        }
    }

    impl<T> ArcSwapAny<Arc<T>> {
        pub fn from_pointee(value: T) -> Self {
            Self {
                cell: Mutex::new(Arc::new(value)),
            }
        }
    }

    impl<T> ArcSwapAny<Option<Arc<T>>> {
        pub fn empty() -> Self {
            Self {
                cell: Mutex::new(None),
            }
        }
    }

    impl<T> Default for ArcSwapAny<Option<Arc<T>>> {
        fn default() -> Self {
            Self::empty()
        }
    }

    impl<T> Guard<T> {
        pub fn into_inner(guard: Self) -> T {
            guard.0
        }
    }

    pub mod channel {
        //! Stand-in for a bounded flume channel: a loom mutex around a queue, a condvar for
        //! blocking receives, and sender/receiver counts for disconnection.

        use loom::sync::atomic::{AtomicUsize, Ordering};
        use loom::sync::{Arc, Condvar, Mutex};
        use std::collections::VecDeque;
        use std::time::Duration;

        struct Shared<T> {
            queue: Mutex<VecDeque<T>>,
            ready: Condvar,
            capacity: usize,
            senders: AtomicUsize,
            receivers: AtomicUsize,
        }

        // The crate's public sender aliases name this type in a model, where it has no
        // public path of its own (flume's has one).
        #[allow(unnameable_types)]
        pub struct Sender<T>(Arc<Shared<T>>);
        pub struct Receiver<T>(Arc<Shared<T>>);

        // Reached through the public sender, as `Sender` is.
        #[allow(unnameable_types)]
        #[derive(Debug, PartialEq, Eq)]
        pub enum TrySendError<T> {
            Full(T),
            Disconnected(T),
        }
        #[derive(Debug, PartialEq, Eq)]
        pub enum TryRecvError {
            Empty,
            Disconnected,
        }
        #[derive(Debug, PartialEq, Eq)]
        pub enum RecvError {
            Disconnected,
        }
        #[derive(Debug, PartialEq, Eq)]
        pub enum RecvTimeoutError {
            Timeout,
            Disconnected,
        }

        pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
            bounded(usize::MAX)
        }

        pub fn bounded<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
            let shared = Arc::new(Shared {
                queue: Mutex::new(VecDeque::new()),
                ready: Condvar::new(),
                capacity,
                senders: AtomicUsize::new(1),
                receivers: AtomicUsize::new(1),
            });
            (Sender(shared.clone()), Receiver(shared))
        }

        impl<T> Sender<T> {
            pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
                if self.0.receivers.load(Ordering::SeqCst) == 0 {
                    return Err(TrySendError::Disconnected(value));
                }
                let mut queue = self.0.queue.lock().unwrap();
                if queue.len() >= self.0.capacity {
                    return Err(TrySendError::Full(value));
                }
                queue.push_back(value);
                drop(queue);
                self.0.ready.notify_all();
                Ok(())
            }
            pub fn len(&self) -> usize {
                self.0.queue.lock().unwrap().len()
            }
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }
            pub fn is_disconnected(&self) -> bool {
                self.0.receivers.load(Ordering::SeqCst) == 0
            }
            pub fn is_full(&self) -> bool {
                self.len() >= self.0.capacity
            }
            pub fn capacity(&self) -> Option<usize> {
                Some(self.0.capacity)
            }
        }

        impl<T> Clone for Sender<T> {
            fn clone(&self) -> Self {
                self.0.senders.fetch_add(1, Ordering::SeqCst);
                Sender(self.0.clone())
            }
        }

        impl<T> Drop for Sender<T> {
            fn drop(&mut self) {
                if self.0.senders.fetch_sub(1, Ordering::SeqCst) == 1 {
                    let _queue = self.0.queue.lock().unwrap();
                    self.0.ready.notify_all();
                }
            }
        }

        impl<T> Receiver<T> {
            pub fn try_recv(&self) -> Result<T, TryRecvError> {
                let mut queue = self.0.queue.lock().unwrap();
                match queue.pop_front() {
                    Some(value) => Ok(value),
                    None if self.0.senders.load(Ordering::SeqCst) == 0 => {
                        Err(TryRecvError::Disconnected)
                    }
                    None => Err(TryRecvError::Empty),
                }
            }
            pub fn recv(&self) -> Result<T, RecvError> {
                let mut queue = self.0.queue.lock().unwrap();
                loop {
                    if let Some(value) = queue.pop_front() {
                        return Ok(value);
                    }
                    if self.0.senders.load(Ordering::SeqCst) == 0 {
                        return Err(RecvError::Disconnected);
                    }
                    queue = self.0.ready.wait(queue).unwrap();
                }
            }
            /// Loom has no clock: a model never waits for time, so this is a `try_recv`.
            pub fn recv_timeout(&self, _timeout: Duration) -> Result<T, RecvTimeoutError> {
                self.try_recv().map_err(|error| match error {
                    TryRecvError::Empty => RecvTimeoutError::Timeout,
                    TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                })
            }
            pub fn len(&self) -> usize {
                self.0.queue.lock().unwrap().len()
            }
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }
        }

        impl<T> Clone for Receiver<T> {
            fn clone(&self) -> Self {
                self.0.receivers.fetch_add(1, Ordering::SeqCst);
                Receiver(self.0.clone())
            }
        }

        impl<T> Drop for Receiver<T> {
            fn drop(&mut self) {
                self.0.receivers.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}
