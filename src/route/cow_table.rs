//! A hash multimap with lock-free reads and copy-on-write buckets.
//!
//! Readers load the slot array and then one bucket, each through arc-swap: no lock, no
//! allocation. A writer copies only the bucket it changes (a handful of entries), so adding
//! or removing one entry costs O(1) however large the map grows; the slot array doubles or
//! halves as the map grows or shrinks, which is O(n) but amortised over as many writes.
//!
//! Writers must be serialized by the caller (the routing index holds a per-table writer
//! lock); concurrent writers would lose updates, never memory safety.

use crate::sync::{Arc, ArcSwap, ArcSwapOption, AtomicUsize, Ordering};

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

/// A bucket's entries while a writer edits them.
pub(crate) type BucketEntries<V> = smallvec::SmallVec<[(u64, V); 8]>;

/// The multimap: keys are 64-bit hashes chosen by the caller; one key may hold many values.
pub(crate) struct CowTable<V> {
    slots: ArcSwap<Slots<V>>,
    len: AtomicUsize,
    grow_at_load: usize,
    /// Slots hold runs of consecutive keys (tables read whole) rather than hashed keys.
    sequential: bool,
}

struct Slots<V> {
    /// log2 of the slot count.
    bits: u32,
    sequential: bool,
    cells: Box<[ArcSwapOption<Bucket<V>>]>,
}

/// One bucket's entries, replaced whole on every change.
pub(crate) struct Bucket<V> {
    entries: Box<[(u64, V)]>,
}

impl<V> Bucket<V> {
    /// The bucket's entries, as `(key, value)` pairs.
    pub(crate) fn entries(&self) -> &[(u64, V)] {
        &self.entries
    }
}

impl<V> Slots<V> {
    fn with_bits(bits: u32, sequential: bool) -> Self {
        Self {
            bits,
            sequential,
            cells: (0..1usize << bits)
                .map(|_| ArcSwapOption::empty())
                .collect(),
        }
    }

    #[inline]
    fn cell(&self, key: u64) -> &ArcSwapOption<Bucket<V>> {
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
            for (entry_key, value) in bucket.entries.iter() {
                if *entry_key == key {
                    visit(value);
                }
            }
        }
    }

    /// Calls `visit` with every bucket in turn (readers walk whole buckets to amortise the
    /// load of each).
    pub(crate) fn for_each_bucket(&self, mut visit: impl FnMut(&Bucket<V>)) {
        let slots = self.slots.load();
        for cell in slots.cells.iter() {
            let bucket = cell.load();
            if let Some(bucket) = bucket.as_ref() {
                visit(bucket);
            }
        }
    }

    /// Calls `visit` with every value.
    pub(crate) fn for_each(&self, mut visit: impl FnMut(&V)) {
        self.for_each_bucket(|bucket| bucket.entries.iter().for_each(|(_, value)| visit(value)));
    }

    /// Calls `visit` with every entry's key and value.
    pub(crate) fn for_each_entry(&self, mut visit: impl FnMut(u64, &V)) {
        self.for_each_bucket(|bucket| {
            bucket
                .entries
                .iter()
                .for_each(|(key, value)| visit(*key, value))
        });
    }

    /// Writer: adds a value under `key`.
    pub(crate) fn insert(&self, key: u64, value: V) {
        self.modify(key, |entries| {
            entries.push((key, value));
            true
        });
    }

    /// Writer: removes the first value under `key` that `is_target` accepts, and returns it.
    pub(crate) fn remove(&self, key: u64, is_target: impl Fn(&V) -> bool) -> Option<V> {
        let mut removed = None;
        self.modify(key, |entries| {
            match entries
                .iter()
                .position(|(entry_key, value)| *entry_key == key && is_target(value))
            {
                Some(index) => {
                    removed = Some(entries.remove(index).1);
                    true
                }
                None => false,
            }
        });
        removed
    }

    /// Writer: lets `change` edit the bucket that holds `key` (it sees every entry of that
    /// bucket, whatever their keys) and returns whether it changed anything. The bucket is
    /// replaced whole, so readers see either all of the change or none of it.
    pub(crate) fn modify(&self, key: u64, change: impl FnOnce(&mut BucketEntries<V>) -> bool) {
        let slots = self.slots.load_full();
        let cell = slots.cell(key);
        let current = cell.load_full();
        // Staged on the stack, so the new bucket costs one exact allocation (plus its Arc).
        let mut entries: BucketEntries<V> = current
            .as_ref()
            .map(|bucket| bucket.entries.iter().cloned().collect())
            .unwrap_or_default();
        let before = entries.len();
        if !change(&mut entries) {
            return;
        }
        let after = entries.len();
        cell.store(if entries.is_empty() {
            None
        } else {
            Some(Arc::new(Bucket {
                entries: entries.into_vec().into_boxed_slice(),
            }))
        });
        let len = self.len.load(Ordering::Relaxed) + after - before;
        self.len.store(len, Ordering::Release);
        self.resize_if_needed(&slots, len);
    }

    fn resize_if_needed(&self, slots: &Slots<V>, len: usize) {
        let slot_count = slots.cells.len();
        let bits = if len > slot_count * self.grow_at_load {
            slots.bits + 1
        } else if slots.bits > 0 && len * SHRINK_BELOW_SLOTS_PER_ENTRY < slot_count {
            slots.bits - 1
        } else {
            return;
        };
        let mut rebucketed: Vec<Vec<(u64, V)>> = (0..1usize << bits).map(|_| Vec::new()).collect();
        for cell in slots.cells.iter() {
            if let Some(bucket) = cell.load_full() {
                for (key, value) in bucket.entries.iter() {
                    rebucketed[slot_of(*key, bits, self.sequential)].push((*key, value.clone()));
                }
            }
        }
        let cells = rebucketed
            .into_iter()
            .map(|entries| {
                ArcSwapOption::new(if entries.is_empty() {
                    None
                } else {
                    Some(Arc::new(Bucket {
                        entries: entries.into_boxed_slice(),
                    }))
                })
            })
            .collect();
        self.slots.store(Arc::new(Slots {
            bits,
            sequential: self.sequential,
            cells,
        }));
    }
}

impl<V: Clone> Default for CowTable<V> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(all(test, not(livecore_loom)))]
mod tests {
    use super::*;

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
                assert_eq!(table.remove(u64::from(i % 1000), |v| *v == i), Some(i));
            }
        }
        assert_eq!(table.len(), 10);
        assert_eq!(values_at(&table, 7).len(), 10);
        assert_eq!(table.remove(7, |v| *v == 3), None);
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
    fn a_table_read_whole_walks_consecutive_keys_in_order() {
        let table = CowTable::scanned();
        for key in 1..=5_000u64 {
            table.insert(key, key);
        }
        for key in (1..=5_000u64).filter(|key| key % 3 == 0) {
            assert_eq!(table.remove(key, |value| *value == key), Some(key));
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
            assert_eq!(entries.as_slice(), &[(1, 10)]);
            false
        });
        assert_eq!(values_at(&table, 1), vec![10]);
    }
}
