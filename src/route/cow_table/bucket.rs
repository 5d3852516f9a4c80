//! One bucket of a [`CowTable`](super::cow_table::CowTable), in one allocation: a header
//! (handover, reference count, length) with the entries right after it.
//!
//! A bucket was an `Arc` of a header that held a boxed slice: two allocations and two frees
//! per edit, and for every reader two dependent cache misses (the header, then the
//! entries) where one will do. std's `Arc<[T]>` is a wide pointer, which arc-swap cannot
//! hold; triomphe's thin `Arc` (header and slice in one allocation) releases its header
//! apart from its slice, where a bucket has to decide, at its last release, whether it
//! still owns the values of its entries (see the `cow_table` module header). Hence this
//! small counted pointer, written by hand: it implements arc-swap's `RefCnt`, so arc-swap
//! cells hold it as they hold an `Arc`. `loom-tests/tests/route_buckets.rs` models it with
//! the rest of the handover, and loom's allocator checks that every bucket is freed.
//!
//! A private module of `cow_table`: what is `pub(super)` here (aliasing an entry, setting
//! a handover, releasing removed values) is sound only as the table's protocol uses it, so
//! nothing outside the table reaches it.

use std::alloc::Layout;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ptr::{self, NonNull};

use smallvec::SmallVec;

use crate::connection::prefetch::prefetch;
use crate::sync::{alloc, dealloc, fence, AtomicPtr, AtomicU32, Ordering};

/// One entry of a bucket. The value is dropped by hand: by the bucket that owns it, which
/// is not always the bucket it sits in (see the `cow_table` module header).
pub(crate) struct Entry<V> {
    pub(crate) key: u64,
    pub(super) value: ManuallyDrop<V>,
}

impl<V> Entry<V> {
    pub(super) fn new(key: u64, value: V) -> Self {
        Self {
            key,
            value: ManuallyDrop::new(value),
        }
    }

    /// The entry's value.
    #[inline(always)]
    pub(crate) fn value(&self) -> &V {
        &self.value
    }

    /// A bit-for-bit copy that shares ownership of the value with `self`: exactly one of
    /// the two may ever drop it.
    pub(super) fn alias(&self) -> Self {
        Self {
            key: self.key,
            // SAFETY: a bitwise copy of a value behind ManuallyDrop; which copy owns it is
            // tracked by the bucket protocol (`cow_table` module header) and only that one
            // drops it.
            value: unsafe { ptr::read(&self.value) },
        }
    }
}

/// Appends bit-for-bit copies of `from` to `into`, each sharing ownership of its value
/// with the original as [`Entry::alias`] does: one copy of the whole run rather than an
/// entry at a time (a bucket edit copies every entry of the bucket it replaces).
pub(super) fn extend_with_aliases<V, A>(into: &mut SmallVec<A>, from: &[Entry<V>])
where
    A: smallvec::Array<Item = Entry<V>>,
{
    into.reserve(from.len());
    let len = into.len();
    // The copies alias values `from` holds, as `Entry::alias` does; the bucket protocol
    // decides which copy owns each.
    // SAFETY: `reserve` made room for `from.len()` entries after the first `len`, in a
    // buffer `from` cannot overlap (`into` is borrowed mutably); written before counted.
    unsafe {
        ptr::copy_nonoverlapping(from.as_ptr(), into.as_mut_ptr().add(len), from.len());
        into.set_len(len + from.len());
    }
}

/// What a replaced bucket still holds for its readers.
pub(super) struct Handover<V> {
    /// The buckets that took over this bucket's entries, kept alive while this bucket's
    /// readers may read entries they now own: an edit's copy (none if the edit emptied
    /// the slot), or after a resize the one or two buckets of the new slot array its
    /// entries moved to.
    pub(super) successors: Successors<V>,
    /// The entries the edit removed, released with this bucket.
    pub(super) removed: Removed<V>,
}

/// What one edit removed: usually one entry (an unsubscribe), kept inline.
pub(super) type Removed<V> = SmallVec<[ManuallyDrop<V>; 1]>;

/// The buckets a replaced bucket hands its entries to: one for an edit, at most two for a
/// resize (a slot array that doubles splits each slot in two).
pub(super) type Successors<V> = SmallVec<[Bucket<V>; 2]>;

/// The start of a bucket's allocation; `len` entries follow it. Sixteen bytes: a 32-bit
/// count and length beside the handover pointer (most buckets hold one or two entries, so
/// the header is a fair share of what a subscription costs the index).
#[repr(C)]
pub(crate) struct Header<V> {
    /// Null while the bucket owns its entries' values. Set once, by the writer that
    /// replaced this bucket while readers still held it: the values are then owned by the
    /// successor.
    handover: AtomicPtr<Handover<V>>,
    count: AtomicU32,
    len: u32,
}

// The header's size is what the README's figures (16 + 32n bytes a bucket) assume.
#[cfg(not(livecore_loom))]
const _: () = assert!(std::mem::size_of::<Header<()>>() == 16);

/// References beyond which a count is taken to be corrupt (as std's `Arc` does, at half
/// the counter's range): far more than the threads that can read a bucket at once.
const MAX_COUNT: u32 = i32::MAX as u32;

/// A counted reference to one bucket: its header and its entries, replaced whole on every
/// change.
pub(crate) struct Bucket<V> {
    header: NonNull<Header<V>>,
    /// Shares a header and entries holding `V`s: `Send` and `Sync` are implemented below,
    /// and `V` stays invariant (as in the `Arc<Bucket<V>>` this replaced).
    _owns: PhantomData<(Header<V>, Entry<V>)>,
}

// A bucket is shared between threads like an `Arc` of its entries: a reference on another
// thread hands out `&V` there, and the last reference, wherever it goes, drops the values.
// The header's fields are atomics, or written only before the bucket is shared.
// SAFETY: hence the same bounds as `Arc<V>`.
unsafe impl<V: Send + Sync> Send for Bucket<V> {}
// SAFETY: as above.
unsafe impl<V: Send + Sync> Sync for Bucket<V> {}

impl<V> Bucket<V> {
    /// A bucket of `len` entries, the `i`-th made by `entry_at(i)`, owning their values.
    pub(super) fn new(len: usize, mut entry_at: impl FnMut(usize) -> Entry<V>) -> Self {
        let header = Self::allocate(len);
        // Should `entry_at` panic, the allocation and what it holds are leaked, never read
        // or dropped: its entries may be aliases of values another bucket still owns, so
        // they could not be dropped here (and the table's own closures do not panic).
        // SAFETY: `allocate` made room for `len` entries after the header; each slot is
        // written once before the bucket is returned.
        unsafe {
            let entries = Self::entries_start(header);
            for index in 0..len {
                entries.add(index).write(entry_at(index));
            }
        }
        Self {
            header,
            _owns: PhantomData,
        }
    }

    /// A bucket of bit-for-bit copies of `entries` (aliases of their values, as
    /// [`Entry::alias`] makes), copied as one run: an edit's new bucket.
    pub(super) fn with_aliases_of(entries: &[Entry<V>]) -> Self {
        let header = Self::allocate(entries.len());
        // SAFETY: `allocate` made room for `entries.len()` entries after the header, in a
        // fresh allocation that cannot overlap `entries`; every slot is written here.
        unsafe {
            ptr::copy_nonoverlapping(entries.as_ptr(), Self::entries_start(header), entries.len());
        }
        Self {
            header,
            _owns: PhantomData,
        }
    }

    /// Allocates a bucket for `len` entries and writes its header (one reference, no
    /// handover); the caller writes the `len` entries before anything reads them.
    fn allocate(len: usize) -> NonNull<Header<V>> {
        let stored_len = u32::try_from(len).expect("a bucket holds fewer than 2^32 entries");
        let layout = Self::layout(len);
        // SAFETY: the layout has a non-zero size (it holds the header at least).
        let start = unsafe { alloc(layout) };
        let Some(header) = NonNull::new(start.cast::<Header<V>>()) else {
            std::alloc::handle_alloc_error(layout)
        };
        // SAFETY: `header` is a fresh allocation of `layout`, aligned for the header and
        // the entries and large enough for both.
        unsafe {
            header.as_ptr().write(Header {
                handover: AtomicPtr::new(ptr::null_mut()),
                count: AtomicU32::new(1),
                len: stored_len,
            });
        }
        header
    }

    /// Where the entries start after the header: its size rounded up to their alignment
    /// (what `Layout::extend` does; checked in `layout`).
    const ENTRIES_OFFSET: usize =
        std::mem::size_of::<Header<V>>().next_multiple_of(std::mem::align_of::<Entry<V>>());

    fn layout(len: usize) -> Layout {
        let (layout, offset) = Layout::new::<Header<V>>()
            .extend(Layout::array::<Entry<V>>(len).expect("a bucket's size fits in memory"))
            .expect("a bucket's size fits in memory");
        debug_assert_eq!(offset, Self::ENTRIES_OFFSET);
        layout
    }

    /// Where the entries of the bucket at `header` start.
    fn entries_start(header: NonNull<Header<V>>) -> *mut Entry<V> {
        header
            .as_ptr()
            .cast::<u8>()
            .wrapping_add(Self::ENTRIES_OFFSET)
            .cast()
    }

    fn header(&self) -> &Header<V> {
        // SAFETY: the header lives as long as any reference to the bucket (this one).
        unsafe { self.header.as_ref() }
    }

    /// The bucket's entries.
    #[inline]
    pub(crate) fn entries(&self) -> &[Entry<V>] {
        // SAFETY: `len` entries were written after the header in `new` and are never
        // changed or moved while the bucket is referenced (this reference).
        unsafe {
            std::slice::from_raw_parts(Self::entries_start(self.header), self.header().len as usize)
        }
    }

    /// Records what a replaced bucket still holds for its readers (once: by the edit that
    /// replaced it while readers held it).
    pub(super) fn set_handover(&self, handover: Box<Handover<V>>) {
        let before = self
            .header()
            .handover
            .swap(Box::into_raw(handover), Ordering::Release);
        debug_assert!(before.is_null(), "a bucket is replaced once");
    }

    /// True when `a` and `b` are the same bucket.
    pub(super) fn ptr_eq(a: &Self, b: &Self) -> bool {
        a.header == b.header
    }

    /// Hints the header's line, ahead of reading the bucket.
    #[inline(always)]
    pub(super) fn prefetch_header(&self) {
        prefetch(self.header.as_ptr().cast());
    }

    /// Hints the lines of entries past the header's own line (which
    /// [`prefetch_header`](Self::prefetch_header) asked for), at most
    /// [`ENTRY_LINES_HINTED`] of them: a walk reads them in order, and the hardware
    /// follows from there.
    #[inline(always)]
    pub(super) fn prefetch_entries(&self) {
        let start: *const u8 = self.header.as_ptr().cast();
        let end =
            Self::ENTRIES_OFFSET + self.header().len as usize * std::mem::size_of::<Entry<V>>();
        let first_line_past_header = 64 - (start as usize % 64);
        for offset in (first_line_past_header..end)
            .step_by(64)
            .take(ENTRY_LINES_HINTED)
        {
            prefetch(start.wrapping_add(offset));
        }
    }

    /// The bucket itself, if this is its only reference. None can be taken meanwhile:
    /// readers reach a bucket through its cell, which holds a reference while it holds the
    /// bucket, and arc-swap has counted its readers' references once a swap returns.
    pub(super) fn try_unwrap(self) -> Result<Unshared<V>, Self> {
        match self
            .header()
            .count
            .compare_exchange(1, 0, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => {
                let header = ManuallyDrop::new(self).header;
                Ok(Unshared { header })
            }
            Err(_) => Err(self),
        }
    }
}

/// How many lines of a bucket's entries a walk asks for ahead of reading them.
const ENTRY_LINES_HINTED: usize = 2;

impl<V> Clone for Bucket<V> {
    fn clone(&self) -> Self {
        let before = self.header().count.fetch_add(1, Ordering::Relaxed);
        if before > MAX_COUNT {
            std::process::abort();
        }
        Self {
            header: self.header,
            _owns: PhantomData,
        }
    }
}

impl<V> Drop for Bucket<V> {
    fn drop(&mut self) {
        if self.header().count.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Every other reference's use of the bucket happened before its release above.
        fence(Ordering::Acquire);
        Unshared {
            header: self.header,
        }
        .release();
    }
}

/// A bucket nothing else references any more (its count is zero): what is left is to
/// settle its entries' values and free it.
pub(super) struct Unshared<V> {
    header: NonNull<Header<V>>,
}

impl<V> Unshared<V> {
    /// Takes the bucket's handover: null if it still owns its entries' values.
    fn take_handover(&self) -> *mut Handover<V> {
        // SAFETY: the header lives until `free` (which consumes self).
        let header = unsafe { self.header.as_ref() };
        header.handover.swap(ptr::null_mut(), Ordering::Acquire)
    }

    /// Frees the bucket without dropping its entries' values (they belong to another).
    /// Its handover, if it had one, was taken first.
    pub(super) fn free(self) {
        // SAFETY: unshared, so this is the only access; the header was written in `new`
        // and is dropped once, here, before its allocation (of the layout `new` used, as
        // `len` says) is freed.
        unsafe {
            let header = self.header.as_ref();
            debug_assert!(header.handover.load(Ordering::Relaxed).is_null());
            let len = header.len as usize;
            ptr::drop_in_place(self.header.as_ptr());
            dealloc(self.header.as_ptr().cast(), Bucket::<V>::layout(len));
        }
    }

    /// Drops the entries' values (the bucket owns them) and frees the bucket.
    fn drop_values_and_free(self) {
        // SAFETY: unshared and owning its values: each is dropped once, here.
        unsafe {
            let len = self.header.as_ref().len as usize;
            let entries = Bucket::entries_start(self.header);
            for index in 0..len {
                ManuallyDrop::drop(&mut (*entries.add(index)).value);
            }
        }
        self.free();
    }

    /// Releases the bucket as its last reference goes: its values if it owns them, else
    /// what its handover kept for its readers, along the buckets retired after it.
    fn release(self) {
        let handover = self.take_handover();
        if handover.is_null() {
            self.drop_values_and_free();
            return;
        }
        self.free();
        // SAFETY: made by `Box::into_raw` in `set_handover`, taken out once (the swap
        // above).
        let first = unsafe { Box::from_raw(handover) };
        let mut pending: SmallVec<[Box<Handover<V>>; 2]> = SmallVec::from_iter([first]);
        // Release the retired successors from a work list, never by recursion (a reader
        // that held an old bucket through many edits must not make this recurse once per
        // edit).
        while let Some(mut handover) = pending.pop() {
            release_removed(&mut handover.removed);
            for successor in handover.successors.drain(..) {
                let Ok(successor) = successor.try_unwrap() else {
                    // Someone else still holds it: it is released with their reference.
                    continue;
                };
                let next = successor.take_handover();
                if next.is_null() {
                    // Neither replaced nor resized away: it still owns its values, and
                    // drops them as any bucket does.
                    successor.drop_values_and_free();
                    continue;
                }
                // Its values belong further on: free the bucket only.
                successor.free();
                // SAFETY: made by `Box::into_raw` in `set_handover`, taken out once (above).
                pending.push(unsafe { Box::from_raw(next) });
            }
        }
    }
}

/// Drops the values a retired bucket kept for its readers.
pub(super) fn release_removed<V>(removed: &mut Removed<V>) {
    for mut value in removed.drain(..) {
        // SAFETY: a removed value is owned by the retired bucket alone (`cow_table` module
        // header), and drained from its list here, so it is dropped once.
        unsafe { ManuallyDrop::drop(&mut value) };
    }
}

// `into_ptr` and `from_ptr` convert a reference to and from its header pointer without
// touching the count; two buckets with the same pointer share one header and count; the
// pointer is never null and the pointee never moves while referenced; none of the four
// panics (a value's own drop, run by the last release as with an `Arc`, may).
#[cfg(not(livecore_loom))]
// SAFETY: as said above, what `RefCnt` asks of an implementation.
unsafe impl<V> arc_swap::RefCnt for Bucket<V> {
    type Base = Header<V>;

    fn into_ptr(me: Self) -> *mut Header<V> {
        ManuallyDrop::new(me).header.as_ptr()
    }

    fn as_ptr(me: &Self) -> *mut Header<V> {
        me.header.as_ptr()
    }

    unsafe fn from_ptr(pointer: *const Header<V>) -> Self {
        Self {
            // SAFETY: arc-swap passes back only pointers `into_ptr` gave it: never null.
            header: unsafe { NonNull::new_unchecked(pointer.cast_mut()) },
            _owns: PhantomData,
        }
    }
}

/// True when two cells' contents are the same bucket, or both empty.
pub(super) fn same_bucket<V>(a: &Option<Bucket<V>>, b: &Option<Bucket<V>>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => Bucket::ptr_eq(a, b),
        _ => false,
    }
}

#[cfg(livecore_loom)]
impl<V> crate::sync::SamePointer for Option<Bucket<V>> {
    fn same_pointer(&self, other: &Self) -> bool {
        same_bucket(self, other)
    }
}

#[cfg(all(test, not(livecore_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn bucket_of(values: &[Arc<u32>]) -> Bucket<Arc<u32>> {
        Bucket::new(values.len(), |index| {
            Entry::new(index as u64, values[index].clone())
        })
    }

    #[test]
    fn a_bucket_holds_its_entries_in_order_and_drops_their_values_at_its_last_reference() {
        for len in [0usize, 1, 2, 3, 17] {
            let values: Vec<Arc<u32>> = (0..len as u32).map(Arc::new).collect();
            let bucket = bucket_of(&values);
            let copy = bucket.clone();
            assert!(Bucket::ptr_eq(&bucket, &copy));
            let read: Vec<(u64, u32)> = copy
                .entries()
                .iter()
                .map(|entry| (entry.key, **entry.value()))
                .collect();
            let expected: Vec<(u64, u32)> = (0..len).map(|i| (i as u64, i as u32)).collect();
            assert_eq!(read, expected);
            drop(bucket);
            assert!(values.iter().all(|value| Arc::strong_count(value) == 2));
            drop(copy);
            assert!(values.iter().all(|value| Arc::strong_count(value) == 1));
        }
    }

    #[test]
    fn only_the_last_reference_unwraps_and_freeing_leaves_the_values_to_their_owner() {
        let values: Vec<Arc<u32>> = (0..3).map(Arc::new).collect();
        let owner = bucket_of(&values);
        // A copy whose entries alias the owner's, as an edit makes before it takes over.
        let copy = Bucket::new(3, |index| owner.entries()[index].alias());
        let held = copy.clone();
        let copy = copy.try_unwrap().err().expect("another reference is held");
        drop(held);
        copy.try_unwrap().ok().expect("the only reference").free();
        assert!(values.iter().all(|value| Arc::strong_count(value) == 2));
        drop(owner);
        assert!(values.iter().all(|value| Arc::strong_count(value) == 1));
    }

    #[test]
    fn a_retired_bucket_releases_its_removed_values_and_its_chain_with_its_last_reader() {
        let values: Vec<Arc<u32>> = (0..2).map(Arc::new).collect();
        let first = bucket_of(&values);
        let reader = first.clone();
        // An edit removed value 0: the successor takes over value 1, the first bucket keeps
        // value 0 (and the successor) for its reader.
        let successor = Bucket::new(1, |_| first.entries()[1].alias());
        let removed: Removed<Arc<u32>> = SmallVec::from_iter([ManuallyDrop::new(
            // SAFETY: (a test) the first bucket's value 0 moves to the removed list, which
            // becomes its only owner once the handover is set below.
            unsafe { ptr::read(&*first.entries()[0].value) },
        )]);
        first.set_handover(Box::new(Handover {
            successors: SmallVec::from_iter([successor.clone()]),
            removed,
        }));
        drop(first);
        assert_eq!(Arc::strong_count(&values[0]), 2, "kept for the reader");
        drop(reader);
        assert_eq!(
            Arc::strong_count(&values[0]),
            1,
            "released with the last reader"
        );
        assert_eq!(Arc::strong_count(&values[1]), 2, "owned by the successor");
        drop(successor);
        assert_eq!(Arc::strong_count(&values[1]), 1);
    }
}
