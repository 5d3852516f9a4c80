//! A published commit shared by every delivery made from it, with its references taken in
//! blocks by the publish that makes them.
//!
//! Every delivery of a publish holds a reference to its commit until the receiver is done
//! with it. Through `Arc`, each reference is an atomic increment of the commit's count on
//! the publisher, on every delivery, and a locked instruction there also stalls the cache
//! misses of the next delivery behind it. Here the publisher reserves references in blocks
//! ([`CommitRefs`]) and hands them out with no atomic operation, giving back the unused part
//! of the last block when the publish is done; receivers release theirs one at a time, as
//! with `Arc`. std's `Arc` only counts up by one, which is why this type is written here.
//!
//! The same counted handle also serves as a delivery's source of several matches: a run
//! buffer ([`SharedCommit::with_runs`]) holds a reference to its commit and the runs of
//! matches of the deliveries of one publish that matched several changes each, and derefs
//! to the commit, so a delivery is one pointer to whichever it needs.
//!
//! Loom builds never free a commit: releasing the last reference marks it released, and
//! any later use or release asserts, so a model sees a reference outliving its count.

use std::ops::Deref;
use std::ptr::NonNull;

use crate::sync::mutant;
use crate::sync::{fence, AtomicUsize, Ordering};
use crate::types::change::Commit;

/// A counted reference to a published commit (see the module docs).
pub(crate) struct SharedCommit {
    inner: NonNull<Inner>,
}

struct Inner {
    refs: AtomicUsize,
    /// Loom builds: set when the last reference was released. A std atomic, not a loom
    /// one: reading it is no scheduling point (loom runs its threads one at a time, so it
    /// reads exactly), and a commit read more or fewer times never changes what loom
    /// explores.
    #[cfg(livecore_loom)]
    released: std::sync::atomic::AtomicBool,
    body: Body,
}

enum Body {
    Commit(Commit),
    /// Runs of matches over a commit, each its length then its matches.
    Runs {
        commit: SharedCommit,
        runs: Box<[u32]>,
    },
}

// SAFETY: a `SharedCommit` gives shared access to a `Commit` (which is `Send + Sync`) and
// releases it through an atomic count, exactly as `Arc<Commit>` does.
unsafe impl Send for SharedCommit {}
// SAFETY: as above: only `&Commit` is reachable through a shared `SharedCommit`.
unsafe impl Sync for SharedCommit {}

/// Above this many references the count would be close to overflowing: abort, as `Arc`.
const MAX_REFS: usize = isize::MAX as usize;

impl SharedCommit {
    /// A commit with one reference, the caller's.
    pub(crate) fn new(commit: Commit) -> Self {
        Self::with_body(Body::Commit(commit))
    }

    /// Runs of matches over `commit` (each run its length, then its matches), shared by the
    /// deliveries that matched several of its changes; derefs to the commit.
    pub(crate) fn with_runs(commit: SharedCommit, runs: Box<[u32]>) -> Self {
        Self::with_body(Body::Runs { commit, runs })
    }

    fn with_body(body: Body) -> Self {
        let inner = Box::new(Inner {
            refs: AtomicUsize::new(1),
            #[cfg(livecore_loom)]
            released: std::sync::atomic::AtomicBool::new(false),
            body,
        });
        Self {
            inner: NonNull::from(Box::leak(inner)),
        }
    }

    /// The runs of matches, when this is a run buffer.
    #[inline]
    pub(crate) fn runs(&self) -> Option<&[u32]> {
        match &self.inner().body {
            Body::Commit(_) => None,
            Body::Runs { runs, .. } => Some(runs),
        }
    }

    #[inline]
    fn inner(&self) -> &Inner {
        // SAFETY: `inner` came from `Box::leak` and is freed only when the last reference
        // is released; `self` is one of those references, so it is still allocated.
        let inner = unsafe { self.inner.as_ref() };
        #[cfg(livecore_loom)]
        assert!(
            !inner.released.load(Ordering::SeqCst),
            "a commit was used after its last reference was released"
        );
        inner
    }

    /// True when both name the same commit.
    #[cfg(test)]
    pub(crate) fn ptr_eq(a: &Self, b: &Self) -> bool {
        a.inner == b.inner
    }

    /// A source of references to this commit (or run buffer) for one publish, reserved in
    /// blocks.
    pub(crate) fn refs(&self) -> CommitRefs<'_> {
        CommitRefs {
            commit: self,
            reserved: 0,
        }
    }

    /// Adds `count` references to the count.
    #[inline]
    fn acquire(&self, count: usize) {
        // Relaxed, as `Arc::clone`: the new references are made from one the caller holds,
        // so the commit cannot be released meanwhile, and handing a reference to another
        // thread (through a channel) synchronizes on its own.
        let before = self.inner().refs.fetch_add(count, Ordering::Relaxed);
        if before > MAX_REFS {
            std::process::abort();
        }
    }

    /// Gives back `count` references; frees the commit when they were the last.
    #[inline]
    fn release(&self, count: usize) {
        // Release, as `Arc`'s drop: this thread's uses of the commit happen before whoever
        // frees it sees the count reach zero (and then takes the acquire fence below).
        let before = self.inner().refs.fetch_sub(count, Ordering::Release);
        assert!(
            before >= count,
            "more references to a commit were released than were taken"
        );
        if before != count {
            return;
        }
        fence(Ordering::Acquire);
        #[cfg(livecore_loom)]
        {
            self.inner().released.store(true, Ordering::SeqCst);
        }
        #[cfg(not(livecore_loom))]
        // SAFETY: the count reached zero: this was the last reference, no other exists or
        // can be made, and `inner` came from `Box::leak` in `new`.
        unsafe {
            drop(Box::from_raw(self.inner.as_ptr()));
        }
    }
}

impl Deref for SharedCommit {
    type Target = Commit;

    #[inline]
    fn deref(&self) -> &Commit {
        match &self.inner().body {
            Body::Commit(commit) => commit,
            Body::Runs { commit, .. } => commit,
        }
    }
}

impl Clone for SharedCommit {
    #[inline]
    fn clone(&self) -> Self {
        self.acquire(1);
        Self { inner: self.inner }
    }
}

impl Drop for SharedCommit {
    #[inline]
    fn drop(&mut self) {
        self.release(1);
    }
}

/// References to one commit for the deliveries of one publish: the count is raised a block
/// at a time, each [`take`](Self::take) is a plain decrement of what is left, and what is
/// left is given back on drop. Borrowing the caller's reference keeps the commit alive (and
/// its count above zero) until then, so receivers releasing early never free it.
pub(crate) struct CommitRefs<'a> {
    commit: &'a SharedCommit,
    /// References added to the count and not yet handed out.
    reserved: usize,
}

impl CommitRefs<'_> {
    /// References reserved at a time: one atomic operation per this many deliveries.
    const BLOCK: usize = 1024;

    /// What the references are to.
    pub(crate) fn source(&self) -> &SharedCommit {
        self.commit
    }

    /// One reference, for one delivery.
    #[inline]
    pub(crate) fn take(&mut self) -> SharedCommit {
        if self.reserved == 0 {
            // Mutant: hand out references without counting them; a receiver releasing its
            // own frees the commit under the others.
            if !mutant!("commit_refs_uncounted") {
                self.commit.acquire(Self::BLOCK);
            }
            self.reserved = Self::BLOCK;
        }
        self.reserved -= 1;
        SharedCommit {
            inner: self.commit.inner,
        }
    }
}

impl Drop for CommitRefs<'_> {
    fn drop(&mut self) {
        if self.reserved > 0 {
            self.commit.release(self.reserved);
        }
    }
}

#[cfg(all(test, not(livecore_loom)))]
mod tests {
    use super::*;
    use crate::types::ids::SeqId;

    fn commit() -> SharedCommit {
        SharedCommit::new(Commit::new(SeqId(7), Vec::new()))
    }

    fn count(commit: &SharedCommit) -> usize {
        commit.inner().refs.load(Ordering::SeqCst)
    }

    #[test]
    fn references_taken_in_blocks_are_counted_exactly_once_the_publish_ends() {
        let commit = commit();
        let taken: Vec<SharedCommit> = {
            let mut refs = commit.refs();
            let taken = (0..CommitRefs::BLOCK + 3).map(|_| refs.take()).collect();
            assert_eq!(
                count(&commit),
                1 + 2 * CommitRefs::BLOCK,
                "two blocks reserved"
            );
            taken
        };
        assert_eq!(count(&commit), 1 + CommitRefs::BLOCK + 3);
        assert!(taken.iter().all(|one| one.seq == SeqId(7)));
        drop(taken);
        assert_eq!(count(&commit), 1);
        let copy = commit.clone();
        assert!(SharedCommit::ptr_eq(&copy, &commit));
        assert_eq!(count(&commit), 2);
    }

    #[test]
    fn an_unused_source_changes_nothing_and_the_last_release_frees() {
        let commit = commit();
        drop(commit.refs());
        assert_eq!(count(&commit), 1);
        let other = {
            let mut refs = commit.refs();
            refs.take()
        };
        drop(commit);
        // `other` now holds the only reference; releasing it frees the commit (checked by
        // the allocator under valgrind in CI, and by the loom models' released flag).
        assert_eq!(count(&other), 1);
    }
}
