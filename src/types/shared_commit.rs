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
//! A delivery carries its reference and which of the commit's changes it matched in one
//! word ([`MatchedSource`]): a channel's cost grows with its items' size, and two words
//! measured as cheap as one where three cost twice as much to push and drain. Small matches
//! (the first two changes of a commit, the fan-out's case) ride in the pointer's low bits;
//! any other match is a view ([`SharedCommit::view`]), which one publish shares between
//! the deliveries with the same match ([`ViewRefs`]).
//!
//! Loom builds never free a commit: releasing the last reference marks it released, and
//! any later use or release asserts, so a model sees a reference outliving its count.

use std::ops::Deref;
use std::ptr::NonNull;

use crate::sync::mutant;
use crate::sync::DataArc;
use crate::sync::{fence, AtomicUsize, Ordering};
use crate::types::change::Commit;

/// A counted reference to a published commit (see the module docs).
pub(crate) struct SharedCommit {
    inner: NonNull<Inner>,
}

// 8-aligned on every target: a `MatchedSource` keeps a match in the pointer's low 3 bits.
#[repr(align(8))]
struct Inner {
    refs: AtomicUsize,
    /// What this commit's change sets name without counting it.
    kept: KeptAlive,
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
    /// One match over a commit or run buffer, for a match too large for the pointer's bits.
    View {
        base: SharedCommit,
        matched: u32,
    },
}

// SAFETY: a `SharedCommit` gives shared access to a `Commit` (which is `Send + Sync`) and
// releases it through an atomic count, exactly as `Arc<Commit>` does.
unsafe impl Send for SharedCommit {}
// SAFETY: as above: only `&Commit` is reachable through a shared `SharedCommit`, and the
// values it keeps alive, which `KeptAlive::keep` adds under its own atomic protocol.
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
            kept: KeptAlive::default(),
            #[cfg(livecore_loom)]
            released: std::sync::atomic::AtomicBool::new(false),
            body,
        });
        Self {
            inner: NonNull::from(Box::leak(inner)),
        }
    }

    /// A view of one match over `base` (a commit or run buffer).
    pub(crate) fn view(base: SharedCommit, matched: u32) -> Self {
        Self::with_body(Body::View { base, matched })
    }

    /// The runs of matches, when this is a run buffer (or a view of one).
    #[inline]
    pub(crate) fn runs(&self) -> Option<&[u32]> {
        match &self.inner().body {
            Body::Commit(_) => None,
            Body::Runs { runs, .. } => Some(runs),
            Body::View { base, .. } => base.runs(),
        }
    }

    /// Keeps `value` alive as long as this commit (or the commit under this run buffer or
    /// view): a change set of it then names its subscription's projection without counting
    /// it (see `ChangeSet`). Call before sending a delivery that will name it, while the
    /// subscription, which holds it, is alive. The first value kept is kept once however
    /// often it is asked for; callers skip the others they kept already.
    pub(crate) fn keep_alive<T: Send + Sync + 'static>(&self, value: &DataArc<T>) {
        self.root().kept.keep(value);
    }

    /// True when the commit (under any run buffer or view) keeps the value at `address`.
    #[cfg(test)]
    pub(crate) fn keeps(&self, address: *const ()) -> bool {
        use std::sync::atomic::Ordering::Acquire;
        let kept = &self.root().kept;
        if kept.state.load(Acquire) == FILLED {
            // SAFETY: FILLED (acquired) says the slot was written and is never written again.
            let first = unsafe { &*kept.first.get() };
            if first
                .as_ref()
                .is_some_and(|first| DataArc::as_ptr(first).cast::<()>() == address)
            {
                return true;
            }
        }
        let mut node = kept.more.load(Acquire);
        while !node.is_null() {
            // SAFETY: listed nodes are freed only with the commit, which `self` holds.
            let listed = unsafe { &*node };
            if DataArc::as_ptr(&listed.value).cast::<()>() == address {
                return true;
            }
            node = listed.next;
        }
        false
    }

    /// The commit's own `Inner`, under any run buffer or view.
    fn root(&self) -> &Inner {
        match &self.inner().body {
            Body::Commit(_) => self.inner(),
            Body::Runs { commit, .. } => commit.root(),
            Body::View { base, .. } => base.root(),
        }
    }

    /// The address that identifies this commit, run buffer or view.
    #[inline]
    pub(crate) fn address(&self) -> usize {
        self.inner.as_ptr() as usize
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
            Body::View { base, .. } => base,
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

/// What a commit keeps alive for its change sets (see [`SharedCommit::keep_alive`]), one
/// reference each, given back when the commit is freed. The publish, a gate's flush and a
/// replay may add to it from different threads at once (a host completing a load flushes
/// a held delivery of a commit still being published), so it is lock-free: the first value
/// in a slot of its own (a fan-out's subscribers usually share one projection, and it
/// costs no allocation), written by the one thread that moves it from EMPTY to FILLING and
/// read by others only once FILLED is acquired; any other value pushed on a list, read only
/// when the commit is freed, after the count's acquire fence. std atomics in every build,
/// as for `released`: which subscriptions' projections a commit keeps changes nothing a
/// loom model checks; the unit test `keeping_from_many_threads_keeps_each_value_once`
/// races it on real threads.
#[derive(Default)]
struct KeptAlive {
    /// [`EMPTY`], [`FILLING`] (one thread is writing `first`) or [`FILLED`].
    state: std::sync::atomic::AtomicU8,
    first: std::cell::UnsafeCell<Option<DataArc<dyn Kept>>>,
    more: std::sync::atomic::AtomicPtr<KeptNode>,
}

const EMPTY: u8 = 0;
const FILLING: u8 = 1;
const FILLED: u8 = 2;

// The slot's cell is written once, by the thread that took it, before FILLED is
// published, and the kept values are immutable: a panic elsewhere leaves nothing half
// written that a caller could observe (as `Arc<T>` for `T: RefUnwindSafe`).
impl std::panic::RefUnwindSafe for KeptAlive {}
impl std::panic::UnwindSafe for KeptAlive {}

/// Anything a commit can keep alive: shared, immutable data.
trait Kept: Send + Sync {}
impl<T: Send + Sync> Kept for T {}

struct KeptNode {
    value: DataArc<dyn Kept>,
    next: *mut KeptNode,
}

impl KeptAlive {
    fn keep<T: Send + Sync + 'static>(&self, value: &DataArc<T>) {
        use std::sync::atomic::Ordering::{AcqRel, Acquire, Release};
        let address = DataArc::as_ptr(value).cast::<()>();
        match self
            .state
            .compare_exchange(EMPTY, FILLING, Acquire, Acquire)
        {
            Ok(_) => {
                // SAFETY: the exchange to FILLING gave this thread the slot; nothing reads
                // it before FILLED is published below.
                unsafe { *self.first.get() = Some(DataArc::clone(value) as DataArc<dyn Kept>) };
                self.state.store(FILLED, Release);
                return;
            }
            Err(FILLED) => {
                // SAFETY: FILLED (acquired) says the slot was written and is never written
                // again.
                let first = unsafe { &*self.first.get() };
                if first
                    .as_ref()
                    .is_some_and(|first| DataArc::as_ptr(first).cast::<()>() == address)
                {
                    return;
                }
            }
            // Another thread is filling the slot: keep this value on the list.
            Err(_) => {}
        }
        let node = Box::into_raw(Box::new(KeptNode {
            value: DataArc::clone(value) as DataArc<dyn Kept>,
            next: std::ptr::null_mut(),
        }));
        let mut head = self.more.load(Acquire);
        loop {
            // SAFETY: `node` is this thread's until the exchange below publishes it.
            unsafe { (*node).next = head };
            match self.more.compare_exchange(head, node, AcqRel, Acquire) {
                Ok(_) => return,
                Err(now) => head = now,
            }
        }
    }
}

impl Drop for KeptAlive {
    fn drop(&mut self) {
        let mut node = *self.more.get_mut();
        while !node.is_null() {
            // SAFETY: every node was pushed by `keep` from `Box::into_raw` and is freed
            // only here, once.
            let KeptNode { value, next } = *unsafe { Box::from_raw(node) };
            drop(value);
            node = next;
        }
        // `first` drops with the struct.
    }
}

/// One delivery's counted reference to its source (a commit, a run buffer or a view) and
/// its match, in one word (see the module docs). A match below [`VIEW_TAG`] is the
/// pointer's low bits (`Inner` is 8-aligned); [`VIEW_TAG`] says the pointer is a view that
/// holds the match.
pub(crate) struct MatchedSource {
    tagged: NonNull<u8>,
}

/// The low bits of a [`MatchedSource`] that carry a small match.
const TAG_MASK: usize = 0b111;
/// The tag of a view. Matches below it ride in the bits: single matches of the first two
/// changes (`encode_match` never gives 3 or 7: no change type is 3) and run starts below
/// 7; a run starting at 7 or later goes through a view like any larger match.
const VIEW_TAG: usize = 0b111;

const _: () = assert!(std::mem::align_of::<Inner>() > TAG_MASK);

// SAFETY: as for `SharedCommit`, whose reference this is.
unsafe impl Send for MatchedSource {}
// SAFETY: as above.
unsafe impl Sync for MatchedSource {}

impl MatchedSource {
    /// True when `matched` rides in the pointer's bits: no view is needed.
    #[inline(always)]
    pub(crate) fn fits(matched: u32) -> bool {
        (matched as usize) < VIEW_TAG
    }

    /// From one reference of `source` and a match that [`fits`](Self::fits).
    #[inline(always)]
    pub(crate) fn small(source: SharedCommit, matched: u32) -> Self {
        debug_assert!(Self::fits(matched));
        let source = std::mem::ManuallyDrop::new(source);
        let tagged = source
            .inner
            .as_ptr()
            .cast::<u8>()
            .wrapping_add(matched as usize);
        Self {
            // SAFETY: `inner` is non-null and 8-aligned, so adding less than 8 stays
            // non-null (the pointer is only dereferenced after the bits are masked off).
            tagged: unsafe { NonNull::new_unchecked(tagged) },
        }
    }

    /// From one reference of a view made by [`SharedCommit::view`].
    #[inline(always)]
    pub(crate) fn of_view(view: SharedCommit) -> Self {
        debug_assert!(matches!(view.inner().body, Body::View { .. }));
        let view = std::mem::ManuallyDrop::new(view);
        let tagged = view.inner.as_ptr().cast::<u8>().wrapping_add(VIEW_TAG);
        Self {
            // SAFETY: as in `small`.
            tagged: unsafe { NonNull::new_unchecked(tagged) },
        }
    }

    /// From one reference of `source` and any match: a view is made (an allocation) when
    /// the match does not fit in the bits. For the rare paths (replays, the gate's flush);
    /// a publish shares its views through [`ViewRefs`].
    pub(crate) fn new(source: SharedCommit, matched: u32) -> Self {
        if Self::fits(matched) {
            Self::small(source, matched)
        } else {
            Self::of_view(SharedCommit::view(source, matched))
        }
    }

    /// The reference and the match: a small match's source, or the view (which derefs to
    /// its commit and resolves through its base) with its match. No count changes.
    #[inline(always)]
    pub(crate) fn into_parts(self) -> (SharedCommit, u32) {
        let this = std::mem::ManuallyDrop::new(self);
        let address = this.tagged.as_ptr() as usize;
        let tag = address & TAG_MASK;
        let inner = this.tagged.as_ptr().wrapping_sub(tag).cast::<Inner>();
        let source = SharedCommit {
            // SAFETY: the untagged pointer is the non-null `Inner` this reference was made
            // from (`small` and `of_view` added the tag to it); the reference moves to
            // `source`, since `self` is not dropped.
            inner: unsafe { NonNull::new_unchecked(inner) },
        };
        if tag != VIEW_TAG {
            return (source, tag as u32);
        }
        match &source.inner().body {
            Body::View { matched, .. } => {
                let matched = *matched;
                (source, matched)
            }
            _ => unreachable!("the view tag is only set on views"),
        }
    }
}

impl Drop for MatchedSource {
    fn drop(&mut self) {
        let copy = MatchedSource {
            tagged: self.tagged,
        };
        drop(copy.into_parts());
    }
}

/// References to one source for the deliveries of one publish, owning the source (a view
/// the publish made): as [`CommitRefs`], the count is raised a block at a time and what is
/// left is given back on drop, with the publish's own reference.
pub(crate) struct ViewRefs {
    view: SharedCommit,
    reserved: usize,
}

impl ViewRefs {
    /// A view of `matched` over `base` and its references.
    pub(crate) fn new(base: SharedCommit, matched: u32) -> Self {
        Self {
            view: SharedCommit::view(base, matched),
            reserved: 0,
        }
    }

    /// One reference, for one delivery.
    #[inline]
    pub(crate) fn take(&mut self) -> MatchedSource {
        if self.reserved == 0 {
            self.view.acquire(CommitRefs::BLOCK);
            self.reserved = CommitRefs::BLOCK;
        }
        self.reserved -= 1;
        MatchedSource::of_view(SharedCommit {
            inner: self.view.inner,
        })
    }
}

impl Drop for ViewRefs {
    fn drop(&mut self) {
        if self.reserved > 0 {
            self.view.release(self.reserved);
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
    fn a_matched_source_carries_small_matches_in_its_bits_and_others_in_a_view() {
        let commit = commit();
        for matched in 0..7 {
            let source = MatchedSource::new(commit.clone(), matched);
            assert_eq!(count(&commit), 2, "a small match is the reference itself");
            let (source, back) = source.into_parts();
            assert_eq!(back, matched);
            assert!(SharedCommit::ptr_eq(&source, &commit));
        }
        assert_eq!(count(&commit), 1, "every reference was given back");
        let viewed = MatchedSource::new(commit.clone(), 7 << 2);
        assert_eq!(
            count(&commit),
            2,
            "the view holds one reference of its commit"
        );
        let (view, matched) = viewed.into_parts();
        assert_eq!(matched, 7 << 2);
        assert!(!SharedCommit::ptr_eq(&view, &commit));
        assert_eq!(view.seq, SeqId(7), "a view derefs to its commit");
        drop(view);
        assert_eq!(
            count(&commit),
            1,
            "releasing the view released its reference"
        );
        drop(MatchedSource::new(commit.clone(), 3));
        drop(MatchedSource::new(commit.clone(), 100));
        assert_eq!(count(&commit), 1, "dropping a source releases it");
    }

    #[test]
    fn a_view_is_shared_by_the_deliveries_of_one_publish() {
        let commit = commit();
        let taken: Vec<MatchedSource> = {
            let mut refs = ViewRefs::new(commit.clone(), 40);
            (0..3).map(|_| refs.take()).collect()
        };
        assert_eq!(count(&commit), 2, "one view, one reference of the commit");
        let parts: Vec<(SharedCommit, u32)> =
            taken.into_iter().map(MatchedSource::into_parts).collect();
        assert!(parts
            .iter()
            .all(|(view, matched)| *matched == 40 && SharedCommit::ptr_eq(view, &parts[0].0)));
        assert_eq!(
            count(&parts[0].0),
            3,
            "the publish's reference and its block were given back"
        );
        drop(parts);
        assert_eq!(count(&commit), 1);
    }

    #[test]
    fn a_commit_keeps_what_it_is_asked_to_until_it_is_freed() {
        let (one, two, three) = (DataArc::new(1u8), DataArc::new(2u8), DataArc::new(3u8));
        let commit = commit();
        let runs = SharedCommit::with_runs(commit.clone(), Box::new([]));
        let view = SharedCommit::view(runs.clone(), 40);
        commit.keep_alive(&one);
        commit.keep_alive(&one);
        runs.keep_alive(&two);
        view.keep_alive(&three);
        view.keep_alive(&one);
        assert_eq!(
            DataArc::strong_count(&one),
            2,
            "kept once however often asked"
        );
        assert_eq!(
            DataArc::strong_count(&two),
            2,
            "kept on the commit under the runs"
        );
        assert_eq!(DataArc::strong_count(&three), 2, "and under a view of them");
        drop((runs, view));
        assert_eq!(
            DataArc::strong_count(&three),
            2,
            "kept while the commit lives"
        );
        drop(commit);
        for kept in [&one, &two, &three] {
            assert_eq!(
                DataArc::strong_count(kept),
                1,
                "given back when it is freed"
            );
        }
    }

    #[test]
    fn keeping_from_many_threads_keeps_each_value_once() {
        for _ in 0..200 {
            let values: Vec<DataArc<u32>> = (0..6).map(DataArc::new).collect();
            let commit = commit();
            std::thread::scope(|scope| {
                for thread in 0..4 {
                    let (commit, values) = (&commit, &values);
                    scope.spawn(move || {
                        for value in values.iter().cycle().skip(thread).take(12) {
                            commit.keep_alive(value);
                        }
                    });
                }
            });
            // Each value is kept at least once (the first value's slot once exactly; a
            // listed value may be kept more than once when two threads race to push it).
            assert!(values.iter().all(|value| DataArc::strong_count(value) >= 2));
            drop(commit);
            assert!(
                values.iter().all(|value| DataArc::strong_count(value) == 1),
                "everything kept is given back when the commit is freed"
            );
        }
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
