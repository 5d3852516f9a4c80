//! A hash multimap with lock-free reads and copy-on-write buckets.
//!
//! Readers load the slot array and then one bucket, each through arc-swap: no lock, no
//! allocation. A writer copies only the bucket it changes (a handful of entries), so adding
//! or removing one entry costs O(1) however large the map grows; the slot array doubles or
//! halves as the map grows or shrinks, which is O(n) but amortised over as many writes
//! (and made of bucket copies only: a resize hands its entries over as an edit does, below).
//!
//! **Handing entries over instead of counting references.** A bucket's copy does not clone
//! its entries (for the routing index, each clone is three reference counts on three cold
//! lines of a neighbouring subscription): it copies them bit for bit, and the replaced
//! bucket hands its ownership of them to the copy. What the edit removed stays owned by the
//! replaced bucket, so it lives as long as a reader may still be looking at it. When no
//! reader holds the replaced bucket (the usual case, checked after arc-swap has paid its
//! readers' debts) the writer releases the removed entries at once; otherwise it attaches a
//! [`Handover`] to the replaced bucket, which keeps the copy alive (the readers of the old
//! bucket read entries the copy now owns) and releases the removed entries when the last
//! reader lets go. Retired buckets can form chains (each holding its successors); they
//! are released from a work list, never by recursion. A resize is the same transfer for
//! every bucket at once: the new slot array's buckets take the entries over, and each
//! bucket of the old array, if a reader may still walk it, keeps the one or two new
//! buckets its entries went to. No crate offers this transfer for arc-swap cells, hence
//! the hand-written unsafe code here; `loom-tests/tests/route_buckets.rs` models it, with
//! the mutants it must catch.
//!
//! A table admits one writer at a time (a second one at once panics before touching
//! anything: a resize's copies alias values the old slot array owns until its swap), so
//! memory safety never depends on the caller, and an edit is committed by swapping the
//! bucket's cell, which only that writer changes. Callers serialize writers (the routing
//! index holds a per-table writer lock).

use smallvec::SmallVec;

mod bucket;

#[cfg(not(livecore_loom))]
use crate::connection::prefetch::prefetch;
use crate::sync::mutant;
use crate::sync::{Arc, ArcSwap, ArcSwapAny, AtomicBool, AtomicUsize, Guard, Ordering};
use bucket::{extend_with_aliases, release_removed, same_bucket, Handover, Removed, Successors};
pub(crate) use bucket::{Bucket, Entry};

/// Average entries per bucket above which the slot array doubles, for tables read by key.
pub(crate) const KEYED_LOAD: usize = 2;
/// The same for tables read whole: bigger buckets mean fewer loads per entry read, for a
/// few more entries copied per write.
pub(crate) const SCANNED_LOAD: usize = 8;
/// Tables read whole are keyed by subscription id, which livecore hands out in sequence:
/// they keep runs of consecutive keys in one slot and the runs in key order, so a walk
/// meets subscriptions in the order they were made (mostly the order their memory was
/// allocated in), which the hardware prefetchers follow. Keys are never chosen by clients.
const SCANNED_RUN_BITS: u32 = SCANNED_LOAD.trailing_zeros();
/// Average entries per bucket below which (1 in 8 slots used) the slot array halves.
const SHRINK_BELOW_SLOTS_PER_ENTRY: usize = 8;

/// The multimap: keys are 64-bit hashes chosen by the caller; one key may hold many values.
pub(crate) struct CowTable<V> {
    slots: ArcSwap<Slots<V>>,
    /// Set while a writer edits: a second writer at once would break the handover (a
    /// resize's copies would alias values an edit meanwhile released), so it panics
    /// instead, before touching anything. Callers serialize writers; this makes sure.
    writing: AtomicBool,
    len: AtomicUsize,
    grow_at_load: usize,
    /// Slots hold runs of consecutive keys (tables read whole) rather than hashed keys.
    sequential: bool,
}

struct Slots<V> {
    /// log2 of the slot count.
    bits: u32,
    sequential: bool,
    cells: Box<[BucketCell<V>]>,
}

/// The slot array a coming edit will read, as [`CowTable::prefetch_slots`] found it. Dropped
/// before the edit: a writer holding an array counts as its reader, which makes a resize
/// keep the old array's buckets alive instead of freeing them.
pub(crate) struct SlotsHint<V>(Guard<Arc<Slots<V>>>);

impl<V> SlotsHint<V> {
    /// Hints the header line of the bucket of each of `keys` (the slots' lines asked for
    /// earlier have had time to arrive), and lets the array go.
    pub(crate) fn prefetch_buckets(self, keys: &[u64]) {
        for key in keys {
            if let Some(bucket) = self.0.cell(*key).load().as_ref() {
                bucket.prefetch_header();
            }
        }
    }
}

/// One slot: its bucket, if it holds any entry.
type BucketCell<V> = ArcSwapAny<Option<Bucket<V>>>;

/// A bucket's entries while a writer edits them: bit-for-bit copies of the current
/// bucket's entries, plus what the edit adds; what it removes is set aside for the replaced
/// bucket to release. Nothing here drops a value: ownership is settled when the edit is
/// committed (a panic in between leaks what the edit added, never frees a value twice).
pub(crate) struct Staged<V> {
    entries: SmallVec<[Entry<V>; 8]>,
    removed: SmallVec<[Entry<V>; 1]>,
    changed: bool,
}

impl<V> Staged<V> {
    /// The staged entries, as `(key, value)`.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, &V)> {
        self.entries.iter().map(|entry| (entry.key, entry.value()))
    }

    /// The index of the first entry `matches` accepts.
    pub(crate) fn position(&self, mut matches: impl FnMut(u64, &V) -> bool) -> Option<usize> {
        self.iter().position(|(key, value)| matches(key, value))
    }

    /// The value at `index`.
    pub(crate) fn value(&self, index: usize) -> &V {
        self.entries[index].value()
    }

    /// Adds `value` under `key`.
    pub(crate) fn push(&mut self, key: u64, value: V) {
        self.entries.push(Entry::new(key, value));
        self.changed = true;
    }

    /// Removes the entry at `index` (released once no reader can see it).
    pub(crate) fn remove(&mut self, index: usize) {
        let entry = self.entries.remove(index);
        self.removed.push(entry);
        self.changed = true;
    }

    /// Keeps the entries `keep` accepts, removing the others as [`remove`](Self::remove)
    /// does.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(u64, &V) -> bool) {
        let mut index = 0;
        while index < self.entries.len() {
            let entry = &self.entries[index];
            if keep(entry.key, entry.value()) {
                index += 1;
            } else {
                self.remove(index);
            }
        }
    }
}

impl<V> Slots<V> {
    fn with_bits(bits: u32, sequential: bool) -> Self {
        Self {
            bits,
            sequential,
            cells: (0..1usize << bits).map(|_| BucketCell::new(None)).collect(),
        }
    }

    #[inline]
    fn cell(&self, key: u64) -> &BucketCell<V> {
        &self.cells[slot_of(key, self.bits, self.sequential)]
    }
}

/// The slot of `key` among `1 << bits`: Fibonacci hashing (which spreads sequential keys as
/// well as hashes), or for a sequential table the key's run of consecutive keys.
#[inline]
fn slot_of(key: u64, bits: u32, sequential: bool) -> usize {
    if bits == 0 {
        0
    } else if sequential {
        ((key >> SCANNED_RUN_BITS) & ((1 << bits) - 1)) as usize
    } else {
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
    }
}

impl<V: Clone> CowTable<V> {
    /// A table read by key.
    pub(crate) fn new() -> Self {
        Self::with_load(KEYED_LOAD)
    }

    /// A table whose slot array doubles when it holds more than `grow_at_load` entries per
    /// slot on average, keys spread by hashing.
    pub(crate) fn with_load(grow_at_load: usize) -> Self {
        Self {
            slots: ArcSwap::from_pointee(Slots::with_bits(0, false)),
            writing: AtomicBool::new(false),
            len: AtomicUsize::new(0),
            grow_at_load: grow_at_load.max(1),
            sequential: false,
        }
    }

    /// A table read whole, keyed by subscription id: runs of consecutive ids share a slot
    /// and a walk meets them in id order (see [`SCANNED_RUN_BITS`]).
    pub(crate) fn scanned() -> Self {
        Self {
            slots: ArcSwap::from_pointee(Slots::with_bits(0, true)),
            writing: AtomicBool::new(false),
            len: AtomicUsize::new(0),
            grow_at_load: SCANNED_LOAD,
            sequential: true,
        }
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// True when the map holds nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `visit` with every value stored under `key`.
    #[inline]
    pub(crate) fn for_each_at(&self, key: u64, mut visit: impl FnMut(&V)) {
        let slots = self.slots.load();
        let bucket = slots.cell(key).load();
        if let Some(bucket) = bucket.as_ref() {
            for entry in bucket.entries() {
                if entry.key == key {
                    visit(entry.value());
                }
            }
        }
    }

    /// Hints the lines of the slots of `keys`, ahead of an edit, which reads them; the
    /// array they were found in is kept for [`SlotsHint::prefetch_buckets`], which then need
    /// not load it again. `None` (and no hint) for no keys, and in loom builds: a hint
    /// models nothing.
    pub(crate) fn prefetch_slots(&self, keys: &[u64]) -> Option<SlotsHint<V>> {
        #[cfg(not(livecore_loom))]
        {
            if keys.is_empty() {
                return None;
            }
            let slots = self.slots.load();
            for key in keys {
                prefetch((slots.cell(*key) as *const BucketCell<V>).cast());
            }
            Some(SlotsHint(slots))
        }
        #[cfg(livecore_loom)]
        {
            let _ = keys;
            None
        }
    }

    /// Calls `visit` with every bucket in turn (readers walk whole buckets to amortise the
    /// load of each). A table read whole is a chain of separate allocations, each cold:
    /// the walk asks for a bucket's first line (its header and first entries) two buckets
    /// before visiting it, and, once that line tells how many entries follow, for the next
    /// lines one bucket before, so those misses overlap with the visits in between.
    pub(crate) fn for_each_bucket(&self, mut visit: impl FnMut(&Bucket<V>)) {
        let slots = self.slots.load();
        let mut cells = slots.cells.iter();
        let mut load_ahead = || {
            cells.next().map(|cell| {
                let bucket = cell.load();
                if let Some(bucket) = bucket.as_ref() {
                    bucket.prefetch_header();
                }
                bucket
            })
        };
        let mut next = load_ahead();
        let mut after_next = load_ahead();
        while let Some(bucket) = next {
            next = after_next;
            after_next = load_ahead();
            if let Some(Some(coming)) = next.as_ref().map(|coming| coming.as_ref()) {
                coming.prefetch_entries();
            }
            if let Some(bucket) = bucket.as_ref() {
                visit(bucket);
            }
        }
    }

    /// Calls `visit` with every value.
    pub(crate) fn for_each(&self, mut visit: impl FnMut(&V)) {
        self.for_each_bucket(|bucket| {
            bucket
                .entries()
                .iter()
                .for_each(|entry| visit(entry.value()))
        });
    }

    /// Calls `visit` with every entry's key and value.
    pub(crate) fn for_each_entry(&self, mut visit: impl FnMut(u64, &V)) {
        self.for_each_bucket(|bucket| {
            bucket
                .entries()
                .iter()
                .for_each(|entry| visit(entry.key, entry.value()))
        });
    }

    /// Writer: adds a value under `key`.
    pub(crate) fn insert(&self, key: u64, value: V) {
        self.modify(key, |entries| entries.push(key, value));
    }

    /// Writer: removes the first value under `key` that `is_target` accepts; true if one
    /// was there.
    pub(crate) fn remove(&self, key: u64, is_target: impl Fn(&V) -> bool) -> bool {
        let mut removed = false;
        self.modify(key, |entries| {
            if let Some(index) =
                entries.position(|entry_key, value| entry_key == key && is_target(value))
            {
                entries.remove(index);
                removed = true;
            }
        });
        removed
    }

    /// Writer: lets `change` edit the bucket that holds `key` (it sees every entry of that
    /// bucket, whatever their keys). The bucket is replaced whole when `change` changed
    /// anything, so readers see either all of the change or none of it.
    pub(crate) fn modify(&self, key: u64, change: impl FnOnce(&mut Staged<V>)) {
        let _sole = SoleWriter::enter(&self.writing);
        // Guards rather than counted references: no atomic increment and decrement on
        // the bucket's (usually cold) line.
        let slots = self.slots.load();
        let cell = slots.cell(key);
        let current = cell.load();
        let mut staged = Staged {
            entries: SmallVec::new(),
            removed: SmallVec::new(),
            changed: false,
        };
        if let Some(bucket) = current.as_ref() {
            extend_with_aliases(&mut staged.entries, bucket.entries());
        }
        let before = staged.entries.len();
        change(&mut staged);
        if !staged.changed {
            // Only aliases of the current bucket's entries: dropping them drops nothing.
            return;
        }
        let after = staged.entries.len();
        let successor =
            (!staged.entries.is_empty()).then(|| Bucket::with_aliases_of(&staged.entries));
        // The sole writer (see `SoleWriter`): the cell still holds `current`, so a plain
        // swap replaces it (a compare-and-swap would load the cell once more, behind a
        // debt slot, to compare what cannot differ).
        let previous = cell.swap(successor.clone());
        if !same_bucket(&previous, &current) {
            // Cannot happen (one writer at a time); were it to, unwinding would drop
            // values the successor now owns, so nothing unwinds.
            std::process::abort();
        }
        // This writer's own read of the bucket ends here, so it does not count as a reader
        // below; `previous` holds the reference the cell had.
        drop(current);
        let removed = staged
            .removed
            .into_iter()
            .map(|entry| entry.value)
            .collect();
        match previous {
            Some(replaced) => retire(replaced, successor, removed),
            None => debug_assert!(removed.is_empty(), "removed from an empty bucket"),
        }
        let len = self.len.load(Ordering::Relaxed) + after - before;
        self.len.store(len, Ordering::Release);
        self.resize_if_needed(slots, len);
    }

    /// Doubles or halves the slot array when `len` entries call for it. The new array's
    /// buckets take the entries over bit for bit, as an edit's copy does, so a resize reads
    /// the buckets and touches no value (for the routing index, no subscription's,
    /// connection's or channel's line: cloning and dropping each made three cold reference
    /// counts twice, 300 ms in the one subscribe that doubled 262,144 slots). The old
    /// array's buckets then own nothing: freed at once when no reader holds the old array,
    /// else each hands over to the new buckets its entries went to, which it keeps alive
    /// for its readers as an edit's replaced bucket does.
    fn resize_if_needed(&self, slots: Guard<Arc<Slots<V>>>, len: usize) {
        let slot_count = slots.cells.len();
        let bits = if len > slot_count * self.grow_at_load {
            slots.bits + 1
        } else if slots.bits > 0 && len * SHRINK_BELOW_SLOTS_PER_ENTRY < slot_count {
            slots.bits - 1
        } else {
            return;
        };
        let sequential = self.sequential;
        // Until the old array's buckets are settled, the new buckets' entries alias values
        // the old ones own: an unwind in between would drop them twice, so it aborts.
        let bomb = AbortOnUnwind;
        let mut moved = 0;
        let cells: Box<[BucketCell<V>]> = (0..1usize << bits)
            .map(|slot| {
                let sources = source_slots(slot, slots.bits, bits, sequential);
                let buckets: SmallVec<[Guard<Option<Bucket<V>>>; 2]> = sources
                    .iter()
                    .map(|&source| slots.cells[source].load())
                    .collect();
                let mut entries = buckets
                    .iter()
                    .filter_map(|bucket| bucket.as_ref())
                    .flat_map(|bucket| bucket.entries())
                    .filter(|entry| slot_of(entry.key, bits, sequential) == slot);
                let count = entries.clone().count();
                moved += count;
                BucketCell::new((count > 0).then(|| {
                    Bucket::new(count, |_| {
                        entries.next().expect("as many entries as counted").alias()
                    })
                }))
            })
            .collect();
        debug_assert_eq!(moved, len, "a resize moves every entry");
        let resized = Arc::new(Slots {
            bits,
            sequential,
            cells,
        });
        let old = self.slots.swap(resized.clone());
        drop(slots);
        // The swap counted every reader still holding the old array (arc-swap pays its
        // readers' debts), and no bucket outlives the array it was loaded from except
        // through a retired bucket's handover, which `retire_resized` sees in its count.
        match Arc::try_unwrap(old) {
            Ok(old) => {
                for cell in old.cells.into_vec() {
                    if let Some(bucket) = cell.into_inner() {
                        retire_resized(bucket, &resized);
                    }
                }
            }
            Err(old) => {
                // Readers still walk it: each bucket keeps what its entries became.
                for cell in old.cells.iter() {
                    if let Some(bucket) = cell.load_full() {
                        handover_to_resized(&bucket, &resized);
                    }
                }
            }
        }
        // Every value has one owner again.
        std::mem::forget(bomb);
    }
}

/// Marks a table's writer for as long as it edits (see [`CowTable::writing`]).
struct SoleWriter<'a>(&'a AtomicBool);

impl<'a> SoleWriter<'a> {
    fn enter(writing: &'a AtomicBool) -> Self {
        if writing.swap(true, Ordering::Acquire) {
            panic!("two writers edit one routing table at once (callers serialize writers)");
        }
        Self(writing)
    }
}

impl Drop for SoleWriter<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Aborts the process if dropped while unwinding (forgotten on success).
struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        if std::thread::panicking() {
            std::process::abort();
        }
    }
}

/// The slots of an array of `1 << from_bits` whose entries can belong to `slot` of an array
/// of `1 << to_bits` (one more or one fewer bit), as [`slot_of`] places keys: hashed keys
/// keep their top bits, runs of sequential keys their low bits.
fn source_slots(
    slot: usize,
    from_bits: u32,
    to_bits: u32,
    sequential: bool,
) -> SmallVec<[usize; 2]> {
    if to_bits > from_bits {
        let source = if sequential {
            slot & ((1 << from_bits) - 1)
        } else {
            slot >> 1
        };
        SmallVec::from_iter([source])
    } else if sequential {
        SmallVec::from_iter([slot, slot + (1 << to_bits)])
    } else {
        SmallVec::from_iter([slot << 1, (slot << 1) | 1])
    }
}

/// Settles a bucket of a slot array a resize replaced, once the table no longer holds the
/// array: freed if nothing else holds it (its values belong to the new array's buckets),
/// else handed over to them.
fn retire_resized<V>(bucket: Bucket<V>, resized: &Slots<V>) {
    match bucket.try_unwrap() {
        Ok(bucket) => bucket.free(),
        // Held by an older retired bucket's handover: its readers may still come here.
        Err(bucket) => handover_to_resized(&bucket, resized),
    }
}

/// Hands a bucket of a resized-away slot array over to the buckets of `resized` its entries
/// went to, which it keeps alive for its readers.
fn handover_to_resized<V>(bucket: &Bucket<V>, resized: &Slots<V>) {
    let mut successors: Successors<V> = SmallVec::new();
    // Mutants: the successors not kept, or only the first of a split's two, so an edit of
    // a new bucket can release an entry a reader of the old one is reading.
    let keep = !mutant!("resize_successors_not_kept");
    let at_most = if mutant!("resize_keeps_one_successor") {
        1
    } else {
        2
    };
    for entry in bucket.entries().iter().filter(|_| keep) {
        if successors.len() == at_most {
            break;
        }
        if let Some(successor) = resized.cell(entry.key).load_full() {
            if !successors
                .iter()
                .any(|kept| Bucket::ptr_eq(kept, &successor))
            {
                successors.push(successor);
            }
        }
    }
    bucket.set_handover(Box::new(Handover {
        successors,
        removed: SmallVec::new(),
    }));
}

/// Settles ownership after `replaced` was swapped out of its cell for `successor`, which
/// took over the entries it kept; `removed` are the entries the edit took out.
fn retire<V>(replaced: Bucket<V>, successor: Option<Bucket<V>>, mut removed: Removed<V>) {
    let replaced = match replaced.try_unwrap() {
        Ok(replaced) => {
            // Nobody else holds it: arc-swap paid its readers' debts in the swap, and an
            // older bucket's handover would hold a reference. Free it (its values belong to
            // the successor); the removed entries can go now.
            replaced.free();
            release_removed(&mut removed);
            return;
        }
        Err(replaced) => replaced,
    };
    // Readers may still walk it: they read entries the successor now owns, and the
    // removed ones, so both live as long as this bucket does.
    if mutant!("bucket_removed_released_early") {
        // Mutant: the removed entries released now, under a reader's feet.
        release_removed(&mut removed);
    }
    // Mutant: the successor not kept; once replaced in turn it can release what this
    // bucket's readers are still reading.
    let successors = successor
        .filter(|_| !mutant!("bucket_successor_not_kept"))
        .into_iter()
        .collect();
    replaced.set_handover(Box::new(Handover {
        successors,
        removed,
    }));
}

impl<V: Clone> Default for CowTable<V> {
    fn default() -> Self {
        Self::new()
    }
}

/// Loom builds only: a [`CowTable`] for the models in `loom-tests`, which check the bucket
/// handover on values whose release they can observe.
#[cfg(livecore_loom)]
#[doc(hidden)]
pub struct ModelTable<V>(CowTable<V>);

#[cfg(livecore_loom)]
impl<V: Clone> ModelTable<V> {
    /// An empty table read by key.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self(CowTable::new())
    }

    /// An empty table read by key whose slot array doubles past `load` entries a slot (one
    /// makes the second entry resize it).
    pub fn with_load(load: usize) -> Self {
        Self(CowTable::with_load(load))
    }

    /// See [`CowTable::insert`].
    pub fn insert(&self, key: u64, value: V) {
        self.0.insert(key, value);
    }

    /// See [`CowTable::remove`].
    pub fn remove(&self, key: u64, is_target: impl Fn(&V) -> bool) -> bool {
        self.0.remove(key, is_target)
    }

    /// See [`CowTable::for_each_at`].
    pub fn for_each_at(&self, key: u64, visit: impl FnMut(&V)) {
        self.0.for_each_at(key, visit);
    }
}

#[cfg(all(test, not(livecore_loom)))]
mod tests {
    use super::*;

    /// True when each of `values` has exactly `count` references.
    fn counted(values: &[Arc<u32>], count: usize) -> bool {
        values.iter().all(|value| Arc::strong_count(value) == count)
    }

    fn values_at(table: &CowTable<u32>, key: u64) -> Vec<u32> {
        let mut found = Vec::new();
        table.for_each_at(key, |value| found.push(*value));
        found.sort_unstable();
        found
    }

    #[test]
    fn insert_lookup_remove_through_growth_and_shrink() {
        let table = CowTable::new();
        for i in 0..10_000u32 {
            table.insert(u64::from(i % 1000), i);
        }
        assert_eq!(table.len(), 10_000);
        assert_eq!(
            values_at(&table, 7),
            (0..10).map(|k| 7 + 1000 * k).collect::<Vec<_>>()
        );
        for i in 0..10_000u32 {
            if i % 1000 != 7 {
                assert!(table.remove(u64::from(i % 1000), |v| *v == i));
            }
        }
        assert_eq!(table.len(), 10);
        assert_eq!(values_at(&table, 7).len(), 10);
        assert!(!table.remove(7, |v| *v == 3));
        let mut all = 0;
        table.for_each(|_| all += 1);
        assert_eq!(all, 10);
        let slots = table.slots.load();
        assert!(
            slots.cells.len() <= 128,
            "the slot array shrank from thousands of slots"
        );
    }

    #[test]
    fn a_walk_visits_every_value_once_however_few_buckets_there_are() {
        // The walk loads buckets ahead of the one it visits: the first and last buckets,
        // empty slots and tables of one or two buckets are its edges.
        for count in [0u64, 1, 2, 3, 8, 9, 17, 24, 25, 100, 1_000] {
            for table in [CowTable::scanned(), CowTable::new()] {
                for key in 0..count {
                    table.insert(key * 3, key);
                }
                let mut walked = Vec::new();
                table.for_each(|value| walked.push(*value));
                walked.sort_unstable();
                assert_eq!(walked, (0..count).collect::<Vec<_>>(), "{count} values");
            }
        }
    }

    #[test]
    fn a_table_read_whole_walks_consecutive_keys_in_order() {
        let table = CowTable::scanned();
        for key in 1..=5_000u64 {
            table.insert(key, key);
        }
        for key in (1..=5_000u64).filter(|key| key % 3 == 0) {
            assert!(table.remove(key, |value| *value == key));
        }
        let mut walked = Vec::new();
        table.for_each(|value| walked.push(*value));
        let expected: Vec<u64> = (1..=5_000u64).filter(|key| key % 3 != 0).collect();
        assert_eq!(walked, expected);
    }

    #[test]
    fn modify_sees_the_whole_bucket_and_can_decline() {
        let table = CowTable::new();
        table.insert(1, 10u32);
        table.modify(1, |entries| {
            assert_eq!(entries.iter().collect::<Vec<_>>(), vec![(1, &10)]);
        });
        assert_eq!(values_at(&table, 1), vec![10]);
    }

    /// The bucket a reader holds while `edit` runs, and the values it can see.
    fn holding_a_bucket<V: Clone>(table: &CowTable<V>, key: u64, edit: impl FnOnce()) -> Vec<V> {
        let slots = table.slots.load();
        let held = slots.cell(key).load_full().expect("a bucket");
        edit();
        held.entries()
            .iter()
            .map(|entry| entry.value().clone())
            .collect()
    }

    /// The values a slot array shows, as a reader holding it reads them.
    fn values_of(slots: &Slots<Arc<u32>>) -> Vec<u32> {
        let mut seen: Vec<u32> = slots
            .cells
            .iter()
            .filter_map(|cell| cell.load_full())
            .flat_map(|bucket| {
                bucket
                    .entries()
                    .iter()
                    .map(|entry| **entry.value())
                    .collect::<Vec<_>>()
            })
            .collect();
        seen.sort_unstable();
        seen
    }

    #[test]
    fn a_reader_of_a_resized_away_slot_array_reads_live_values_until_it_lets_go() {
        let values: Vec<Arc<u32>> = (0..512).map(Arc::new).collect();
        let table = CowTable::new();
        for value in &values[..64] {
            table.insert(u64::from(**value), value.clone());
        }
        // A reader holds the slot array while the table doubles it three times over (the
        // first resize hands over to the next array, the later ones from arrays nobody
        // reads), then loses every value the held array shows.
        let held = table.slots.load_full();
        let held_bits = held.bits;
        for value in &values[64..] {
            table.insert(u64::from(**value), value.clone());
        }
        assert!(table.slots.load().bits >= held_bits + 3);
        for value in &values[..64] {
            assert!(table.remove(u64::from(**value), |other| other == value));
        }
        // The insert that made the first resize edited the held array first.
        assert_eq!(values_of(&held), (0..65).collect::<Vec<_>>());
        assert!(counted(&values[..64], 2), "kept for the reader");
        drop(held);
        assert!(
            counted(&values[..64], 1),
            "released with the reader's last reference"
        );
        assert!(counted(&values[64..], 2));
        // Halving while a reader holds the array, then emptying it.
        let held = table.slots.load_full();
        for value in &values[64..490] {
            assert!(table.remove(u64::from(**value), |other| other == value));
        }
        assert!(table.slots.load().bits < held.bits);
        // The removals before the first halving edited the held array.
        let shown = values_of(&held);
        assert!(shown.len() > 22 && shown.iter().all(|&value| value >= 64));
        assert!(
            shown
                .iter()
                .all(|&value| Arc::strong_count(&values[value as usize]) == 2),
            "kept for the reader"
        );
        assert_eq!(
            values_of(&table.slots.load()),
            (490..512).collect::<Vec<_>>()
        );
        drop(held);
        assert!(counted(&values[..490], 1));
        assert!(counted(&values[490..], 2));
        drop(table);
        assert!(counted(&values, 1));
    }

    #[test]
    #[should_panic(expected = "two writers edit one routing table at once")]
    fn a_second_writer_at_once_is_refused_before_it_touches_anything() {
        let table = CowTable::new();
        table.insert(1, Arc::new(1u32));
        table.modify(1, |_| table.insert(2, Arc::new(2)));
    }

    #[test]
    fn a_resize_nobody_watches_moves_every_value_without_counting_it() {
        let values: Vec<Arc<u32>> = (0..1000).map(Arc::new).collect();
        for table in [CowTable::new(), CowTable::scanned()] {
            for value in &values {
                table.insert(u64::from(**value), value.clone());
                assert_eq!(Arc::strong_count(value), 2, "one reference, the table's");
            }
            assert_eq!(
                values_of(&table.slots.load()),
                (0..1000).collect::<Vec<_>>()
            );
            for value in &values[..990] {
                assert!(table.remove(u64::from(**value), |other| other == value));
                assert_eq!(Arc::strong_count(value), 1);
            }
            assert_eq!(
                values_of(&table.slots.load()),
                (990..1000).collect::<Vec<_>>()
            );
            drop(table);
            assert!(counted(&values, 1));
        }
    }

    #[test]
    fn a_value_lives_while_a_reader_holds_a_bucket_that_shows_it_and_is_dropped_once() {
        let values: Vec<Arc<u32>> = (0..4).map(Arc::new).collect();
        let table = CowTable::new();
        for value in &values[..2] {
            table.insert(1, value.clone());
        }
        // A reader holds the bucket {0, 1} while a writer adds 2, removes 0, adds 3 and
        // removes 1: the reader's values stay alive, each held once by the table's chain.
        let seen = holding_a_bucket(&table, 1, || {
            table.insert(1, values[2].clone());
            assert!(table.remove(1, |value| **value == 0));
            table.insert(1, values[3].clone());
            assert!(table.remove(1, |value| **value == 1));
            assert_eq!(Arc::strong_count(&values[0]), 2, "kept for the reader");
            assert_eq!(Arc::strong_count(&values[1]), 2, "kept for the reader");
        });
        assert_eq!(seen.iter().map(|value| **value).collect::<Vec<_>>(), [0, 1]);
        drop(seen);
        // The reader let go: what was removed is released, what the table holds is held once.
        let counts: Vec<usize> = values.iter().map(Arc::strong_count).collect();
        assert_eq!(counts, [1, 1, 2, 2]);
        drop(table);
        assert!(counted(&values, 1));
    }

    /// A value that counts how often it is cloned.
    struct Counted(Arc<std::sync::atomic::AtomicUsize>);

    impl Clone for Counted {
        fn clone(&self) -> Self {
            self.0.fetch_add(1, Ordering::Relaxed);
            Self(self.0.clone())
        }
    }

    #[test]
    fn an_edit_never_clones_the_entries_it_keeps() {
        let clones = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let table = CowTable::with_load(usize::MAX);
        for key in 0..16 {
            table.insert(key, Counted(clones.clone()));
        }
        // One slot, sixteen neighbours: adding and removing entries copies that bucket each
        // time, and not one neighbour is cloned (nor dropped: the count of references to
        // the shared counter is the table's sixteen plus this test's one).
        for round in 0..100 {
            table.insert(1_000 + round, Counted(clones.clone()));
            assert!(table.remove(1_000 + round, |_| true));
        }
        assert_eq!(clones.load(Ordering::Relaxed), 0);
        assert_eq!(Arc::strong_count(&clones), 17);
        drop(table);
        assert_eq!(Arc::strong_count(&clones), 1);
    }

    /// A value that flags its release in a shared table, so a reader can check that what it
    /// meets is alive.
    #[derive(Clone)]
    struct Tracked {
        id: usize,
        _token: Arc<Token>,
    }

    struct Token {
        id: usize,
        released: Arc<Vec<std::sync::atomic::AtomicBool>>,
    }

    impl Drop for Token {
        fn drop(&mut self) {
            let twice = self.released[self.id].swap(true, Ordering::AcqRel);
            assert!(!twice, "value {} released twice", self.id);
        }
    }

    #[test]
    fn readers_racing_a_writer_never_meet_a_released_value() {
        const VALUES: usize = 20_000;
        let released: Arc<Vec<std::sync::atomic::AtomicBool>> = Arc::new(
            (0..VALUES)
                .map(|_| std::sync::atomic::AtomicBool::new(false))
                .collect(),
        );
        let tracked = |id: usize| Tracked {
            id,
            _token: Arc::new(Token {
                id,
                released: released.clone(),
            }),
        };
        let table = CowTable::new();
        let done = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    let mut met = 0u64;
                    while !done.load(Ordering::Acquire) {
                        for key in 0..8 {
                            table.for_each_at(key, |value: &Tracked| {
                                assert!(!released[value.id].load(Ordering::Acquire));
                                met += 1;
                            });
                        }
                    }
                    met
                });
            }
            // Eight keys (a few buckets, resizes included): each value is inserted, and
            // removed a little later, while the readers walk.
            for id in 0..VALUES {
                table.insert((id % 8) as u64, tracked(id));
                if id >= 16 {
                    let old = id - 16;
                    assert!(table.remove((old % 8) as u64, |value| value.id == old));
                }
            }
            done.store(true, Ordering::Release);
        });
        assert_eq!(table.len(), 16);
        drop(table);
        assert!(released.iter().all(|flag| flag.load(Ordering::Acquire)));
    }

    #[test]
    fn a_long_chain_of_retired_buckets_is_released_without_recursion() {
        let kept = Arc::new(0u32);
        let table = CowTable::new();
        table.insert(1, kept.clone());
        // 200,000 edits while a reader holds the first bucket: each retired bucket holds
        // its successor, and the chain is released when the reader lets go.
        let seen = holding_a_bucket(&table, 1, || {
            for round in 0..100_000u32 {
                table.insert(1, Arc::new(round + 1));
                assert!(table.remove(1, |value| **value == round + 1));
            }
        });
        drop(seen);
        assert_eq!(Arc::strong_count(&kept), 2);
        drop(table);
        assert_eq!(Arc::strong_count(&kept), 1);
    }

    #[test]
    fn resizing_while_a_reader_holds_an_old_bucket_drops_every_value_once() {
        let values: Vec<Arc<u32>> = (0..64).map(Arc::new).collect();
        let table = CowTable::new();
        table.insert(0, values[0].clone());
        let seen = holding_a_bucket(&table, 0, || {
            for value in &values[1..] {
                table.insert(u64::from(**value), value.clone());
            }
            for value in &values[1..32] {
                assert!(table.remove(u64::from(**value), |other| other == value));
            }
        });
        drop(seen);
        assert!(counted(&values[1..32], 1));
        assert!(counted(&values[32..], 2));
        drop(table);
        assert!(counted(&values, 1));
    }
}
