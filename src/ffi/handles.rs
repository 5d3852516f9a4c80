//! Generation-checked handles.
//!
//! C code never holds a Rust pointer. Every object it owns (a manager, a received
//! notification, a subscription result) lives in a table here, under a 64-bit handle: the
//! kind in the top 8 bits, then the generation, shard and index of the slot that holds it.
//! A slot's generation grows each time the slot is reused, and a slot whose generation
//! runs out is never used again, so a handle is never issued twice. A lookup checks the
//! kind and that the slot holds that very handle, so a zero handle, a handle of another
//! kind, a freed handle (use after free) and a handle freed twice are all reported as
//! `LC_ERR_INVALID_HANDLE` instead of touching freed memory.
//!
//! Each table is split into shards with their own lock, and a thread stores what it
//! inserts in one shard (threads are dealt the 16 shards in turn): threads that receive and
//! free notifications at a high rate do not queue on one lock, and a thread's inserts,
//! lookups and frees find the lock's line in its cache. A shard is pages of slots and a
//! list of the free ones, so every operation is a few loads at an index (a profile of
//! receiving through the C ABI found the B-tree that held them before, searched and
//! rebalanced under the lock, a quarter of the handle's cost); vectors are also what
//! valgrind reads right at exit: a hash table's allocation, referenced from its middle, is
//! reported as "possibly lost" for these static tables, hiding real leaks.
//! A slot keeps its handle's bits for good (8 bytes), but the page its object lives in
//! is let go once all of the page's slots are empty and the shard holds far more pages
//! than it needs, so a burst of notifications held at once costs its memory only while
//! it lasts.
//!
//! Most kinds store an `Arc` of their object, which a lookup clones under the lock and the
//! call uses after it. Notifications, made and freed for every delivery a C host receives,
//! are stored in their slot itself, with no allocation of their own, and read under the
//! lock by short calls ([`Handle::with`]). Nothing hands out a pointer into a slot: what a
//! notification lends the host (its JSON, column names, text and bytes) lives in buffers
//! the entry owns or shares, valid until the notification is freed.

use std::cell::Cell;

use crate::ffi::ptr::Out;
use crate::ffi::state::HandleKind;
use crate::ffi::status::{lc_status, FfiError, FfiResult};
use crate::sync::{lock, AtomicUsize, Mutex, MutexGuard, Ordering};

/// A C handle type (`lc_manager`, `lc_notification`, ...): a copyable struct around the
/// handle's bits, tied once to its kind and to the table of the objects behind it (the
/// [`handle_kinds!`] list in `state.rs` writes every impl). Extern functions go through it
/// (`manager.get()`, `list.free()`), never through a table named by hand, so a handle can
/// only be looked up in its own table.
pub(crate) trait Handle: Copy {
    /// What the table stores for the handle: an `Arc` of the object for kinds that calls
    /// keep using outside the table's lock (most), or the object itself for notifications,
    /// which are made and freed at a high rate and read in short calls under the lock.
    type Object: 'static;
    /// Its kind, in the handle's top bits.
    const KIND: HandleKind;
    /// The live objects of this kind.
    fn table() -> &'static HandleTable<Self::Object>;
    /// The handle's bits.
    fn bits(self) -> u64;
    /// A handle with these bits.
    fn with_bits(bits: u64) -> Self;

    /// Stores `object` and returns its new handle.
    fn insert(object: impl Into<Self::Object>) -> Self {
        Self::with_bits(Self::table().insert(object.into()))
    }

    /// Stores `object` and returns its new handle with a copy of what was stored (for a
    /// lookup that keeps a reference of its own, as `manager_lookup` does).
    fn insert_shared(object: impl Into<Self::Object>) -> (Self, Self::Object)
    where
        Self::Object: Clone,
    {
        let object = object.into();
        let bits = Self::table().insert(object.clone());
        (Self::with_bits(bits), object)
    }

    /// A copy of what the table stores for the handle (an `Arc` of the object).
    fn get(self) -> Result<Self::Object, FfiError>
    where
        Self::Object: Clone,
    {
        Self::table().with(self.bits(), Self::Object::clone)
    }

    /// Runs `read` on the object behind the handle, under its shard's lock: for short
    /// reads only (other calls on objects of the same shard wait meanwhile).
    fn with<R>(self, read: impl FnOnce(&Self::Object) -> R) -> Result<R, FfiError> {
        Self::table().with(self.bits(), read)
    }

    /// Takes the object out of its table: the handle is dead from now on.
    fn remove(self) -> Result<Self::Object, FfiError> {
        Self::table().remove(self.bits())
    }

    /// The body of an extern `_free` function.
    fn free(self) -> FfiResult {
        self.remove()?;
        Ok(lc_status::LC_OK)
    }

    /// The body of an extern list `_count` function.
    fn write_count<U>(self, out: Out<usize>) -> FfiResult
    where
        Self::Object: std::ops::Deref<Target = Box<[U]>>,
    {
        out.write(self.with(|list| list.len())?);
        Ok(lc_status::LC_OK)
    }
}

/// Declares the kinds of handle, once each: its number (kept in a handle's top 8 bits),
/// its C type, the object behind it and the static table holding those objects. From that
/// one list come the [`HandleKind`] enum, its names and number lookup, the tables, each
/// C type's [`Handle`] impl, and `live_handle_counts`.
macro_rules! handle_kinds {
    ($($kind:ident = $number:literal: $c_type:ident => $object:ty, $table:ident;)+) => {
        /// The kinds of handle. The number is stored in a handle's top 8 bits.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u8)]
        pub(crate) enum HandleKind {
            $($kind = $number,)+
        }

        impl HandleKind {
            const ALL: [HandleKind; [$($number),+].len()] = [$(HandleKind::$kind),+];

            /// The C type of handles of this kind.
            pub(crate) fn name(self) -> &'static str {
                match self {
                    $(HandleKind::$kind => stringify!($c_type),)+
                }
            }

            /// The kind in a handle's top bits, if any.
            pub(crate) fn from_bits(bits: u64) -> Option<HandleKind> {
                let number = bits >> $crate::ffi::handles::KIND_SHIFT;
                Self::ALL.into_iter().find(|kind| *kind as u64 == number)
            }
        }

        $(
            static $table: LazyLock<HandleTable<$object>> =
                LazyLock::new(|| HandleTable::new(<$c_type as Handle>::KIND));

            impl Handle for $c_type {
                type Object = $object;
                const KIND: HandleKind = HandleKind::$kind;
                fn table() -> &'static HandleTable<$object> {
                    &$table
                }
                fn bits(self) -> u64 {
                    self.id
                }
                fn with_bits(bits: u64) -> Self {
                    Self { id: bits }
                }
            }
        )+

        /// Live handles of each kind, in the order of the list.
        pub(crate) fn live_counts() -> [usize; [$($number),+].len()] {
            [$($table.len()),+]
        }
    };
}
pub(crate) use handle_kinds;

pub(crate) const KIND_SHIFT: u32 = 56;
/// Bits of a slot's index in its shard: a shard holds up to 2^24 slots, live or retired.
const INDEX_BITS: u32 = 24;
/// Bits of the shard's number, above the index.
const SHARD_BITS: u32 = 4;
/// Shards of a table.
const SHARDS: usize = 1 << SHARD_BITS;
/// Where the generation starts, above the shard's number (it ends below the kind).
const GENERATION_SHIFT: u32 = INDEX_BITS + SHARD_BITS;
/// A slot's generations: 1 to 2^28 - 1 (0 is never issued, so a made-up handle of small
/// number is refused). Reused over and over by one thread, a slot runs out after about a
/// minute and is retired: one slot (its 8 bytes of handle bits, once its page is let go)
/// a minute per busy thread.
const LAST_GENERATION: u64 = (1 << (KIND_SHIFT - GENERATION_SHIFT)) - 1;

/// The shard the next thread to insert stores its objects in.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's shard, picked on its first insert.
    static THREAD_SHARD: Cell<Option<usize>> = const { Cell::new(None) };
}

/// This thread's shard.
fn thread_shard() -> usize {
    THREAD_SHARD.with(|shard| match shard.get() {
        Some(index) => index,
        None => {
            let index = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
            shard.set(Some(index));
            index
        }
    })
}

/// The live objects of one kind, by handle.
pub(crate) struct HandleTable<T> {
    kind: HandleKind,
    shards: [Mutex<Shard<T>>; SHARDS],
}

/// Slots a page of a shard holds.
const PAGE: usize = 64;

/// Empty pages a shard keeps, beyond those its live objects need four times over, before it
/// lets one go (see [`Shard::release_if_idle`]).
const SPARE_PAGES: usize = 8;

/// One shard's slots. A slot's handle bits are kept for the table's life (8 bytes a slot,
/// so its generations go on however its object's memory comes and goes); the objects are
/// in pages of [`PAGE`], allocated when a slot of theirs is used and let go when a burst
/// is over (all of a page's slots are empty and the shard holds far more pages than it
/// needs), so a host that once held a million notifications does not keep their slots'
/// memory for good.
struct Shard<T> {
    /// The handle of the object each slot holds, or held last while empty (its generation
    /// is where the next one's starts). Its length is the slots ever used.
    bits: Vec<u64>,
    /// `PAGE` objects each, `None` while empty; a page is `None` while let go.
    pages: Vec<Option<Box<[Option<T>]>>>,
    /// Objects held in each page.
    page_live: Vec<u32>,
    /// Pages allocated now.
    allocated: usize,
    /// Pages that were emptied, most recent last, to let go once the shard holds far
    /// more than it needs; one may have been used again since (it is then skipped).
    idle: Vec<u32>,
    /// Whether each page is in `idle`, so it is listed once.
    listed_idle: Vec<bool>,
    /// Indexes of empty slots that may be used again.
    free: Vec<u32>,
    /// Slots holding an object.
    live: usize,
}

/// Where a handle's bits point.
struct Place {
    /// The shard's number.
    shard: usize,
    /// The slot's index in that shard.
    index: usize,
}

impl Place {
    /// The slot named by a handle's bits (checked against what the slot holds by
    /// [`Shard::holding`]).
    fn of(bits: u64) -> Self {
        Self {
            shard: (bits >> INDEX_BITS) as usize % SHARDS,
            index: (bits & ((1 << INDEX_BITS) - 1)) as usize,
        }
    }
}

impl<T> Shard<T> {
    /// Whether a slot is free or may still be added.
    fn has_room(&self) -> bool {
        !self.free.is_empty() || self.bits.len() < 1 << INDEX_BITS
    }

    /// Stores `object` in an empty slot (the shard [has room](Self::has_room)); returns
    /// its handle's bits.
    fn store(&mut self, kind: HandleKind, shard: usize, object: T) -> u64 {
        let (index, generation) = match self.free.pop() {
            Some(index) => {
                let last = self.bits[index as usize];
                (
                    index as usize,
                    ((last >> GENERATION_SHIFT) & LAST_GENERATION) + 1,
                )
            }
            None => {
                self.bits.push(0);
                if self.pages.len() * PAGE < self.bits.len() {
                    self.pages.push(None);
                    self.page_live.push(0);
                    self.listed_idle.push(false);
                }
                (self.bits.len() - 1, 1)
            }
        };
        let bits = ((kind as u64) << KIND_SHIFT)
            | (generation << GENERATION_SHIFT)
            | ((shard as u64) << INDEX_BITS)
            | index as u64;
        self.bits[index] = bits;
        let page = &mut self.pages[index / PAGE];
        if page.is_none() {
            *page = Some((0..PAGE).map(|_| None).collect());
            self.allocated += 1;
        }
        let objects = page.as_mut().expect("allocated above");
        objects[index % PAGE] = Some(object);
        self.page_live[index / PAGE] += 1;
        self.live += 1;
        bits
    }

    /// The place of the object of handle `bits` in slot `index`, if the slot still holds
    /// it.
    fn holding(&mut self, bits: u64, index: usize) -> Option<&mut Option<T>> {
        if self.bits.get(index) != Some(&bits) {
            return None;
        }
        self.pages[index / PAGE]
            .as_mut()
            .map(|objects| &mut objects[index % PAGE])
            .filter(|object| object.is_some())
    }

    /// After slot `index` was emptied: lists its page as idle if no slot of it holds
    /// anything, then lets idle pages go, most recently emptied first, while the shard
    /// keeps far more pages than its live objects need (four times over, and
    /// [`SPARE_PAGES`] more): a steady load that frees and takes slots on a few pages
    /// does not allocate them again and again, and a burst's pages go once it is freed.
    fn release_if_idle(&mut self, index: usize) {
        let page = index / PAGE;
        self.page_live[page] -= 1;
        if self.page_live[page] == 0 && !self.listed_idle[page] {
            self.listed_idle[page] = true;
            self.idle.push(page as u32);
        }
        while self.allocated * PAGE > 4 * self.live + SPARE_PAGES * PAGE {
            let Some(page) = self.idle.pop() else {
                break;
            };
            let page = page as usize;
            self.listed_idle[page] = false;
            if self.page_live[page] == 0 && self.pages[page].take().is_some() {
                self.allocated -= 1;
            }
        }
    }
}

impl<T> HandleTable<T> {
    pub(crate) fn new(kind: HandleKind) -> Self {
        Self {
            kind,
            shards: std::array::from_fn(|_| {
                Mutex::new(Shard {
                    bits: Vec::new(),
                    pages: Vec::new(),
                    page_live: Vec::new(),
                    allocated: 0,
                    idle: Vec::new(),
                    listed_idle: Vec::new(),
                    free: Vec::new(),
                    live: 0,
                })
            }),
        }
    }

    /// Stores `object` in this thread's shard or, when that one is full, the next with
    /// room; returns its new handle.
    ///
    /// # Panics
    /// With every shard's 2^24 slots live or retired (2^28 objects live would take tens of
    /// gigabytes; a slot is retired after 2^28 reuses): the panic boundary reports it as
    /// `LC_ERR_PANIC`.
    pub(crate) fn insert(&self, object: T) -> u64 {
        let home = thread_shard();
        let mut object = Some(object);
        for shard in (home..home + SHARDS).map(|shard| shard % SHARDS) {
            let mut guard = lock(&self.shards[shard]);
            if guard.has_room() {
                let object = object.take().expect("stored once");
                return guard.store(self.kind, shard, object);
            }
        }
        panic!(
            "every one of the 2^{} {} slots is live or retired",
            INDEX_BITS + SHARD_BITS,
            self.kind.name(),
        )
    }

    /// Runs `read` on the object behind a handle, under its shard's lock.
    pub(crate) fn with<R>(&self, bits: u64, read: impl FnOnce(&T) -> R) -> Result<R, FfiError> {
        let (mut shard, place) = self.locked(bits)?;
        let object = shard
            .holding(bits, place.index)
            .and_then(|object| object.as_ref())
            .ok_or_else(|| self.stale(bits))?;
        Ok(read(object))
    }

    /// The shard a handle of this kind points into, locked, and where in it.
    fn locked(&self, bits: u64) -> Result<(MutexGuard<'_, Shard<T>>, Place), FfiError> {
        self.check_kind(bits)?;
        let place = Place::of(bits);
        Ok((lock(&self.shards[place.shard]), place))
    }

    /// Takes the object out of the table: the handle is dead from now on. It is dropped by
    /// the caller, after the shard's lock is released.
    pub(crate) fn remove(&self, bits: u64) -> Result<T, FfiError> {
        let (mut shard, place) = self.locked(bits)?;
        let object = shard
            .holding(bits, place.index)
            .and_then(Option::take)
            .ok_or_else(|| self.stale(bits))?;
        shard.live -= 1;
        shard.release_if_idle(place.index);
        // A slot whose generations ran out is retired, so no handle is issued twice.
        if (bits >> GENERATION_SHIFT) & LAST_GENERATION < LAST_GENERATION {
            shard.free.push(place.index as u32);
        }
        Ok(object)
    }

    fn check_kind(&self, bits: u64) -> Result<(), FfiError> {
        if bits == 0 {
            return Err(FfiError::new(
                lc_status::LC_ERR_INVALID_HANDLE,
                format!("the {} handle is zero (never set)", self.kind.name()),
            ));
        }
        match HandleKind::from_bits(bits) {
            Some(kind) if kind == self.kind => Ok(()),
            Some(kind) => Err(FfiError::new(
                lc_status::LC_ERR_INVALID_HANDLE,
                format!(
                    "an {} handle was passed where an {} handle is expected",
                    kind.name(),
                    self.kind.name()
                ),
            )),
            None => Err(FfiError::new(
                lc_status::LC_ERR_INVALID_HANDLE,
                format!("0x{bits:016x} is not an {} handle", self.kind.name()),
            )),
        }
    }

    fn stale(&self, bits: u64) -> FfiError {
        FfiError::new(
            lc_status::LC_ERR_INVALID_HANDLE,
            format!(
                "{} handle 0x{bits:016x} was already freed, or never issued",
                self.kind.name()
            ),
        )
    }

    /// Number of live objects (for tests that look for leaks).
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|shard| lock(shard).live).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(table: &HandleTable<u32>, bits: u64) -> Result<u32, FfiError> {
        table.with(bits, |value| *value)
    }

    #[test]
    fn stale_wrong_kind_and_zero_handles_are_refused() {
        let table = HandleTable::new(HandleKind::Notification);
        let other = HandleTable::<u8>::new(HandleKind::Manager);
        let handle = table.insert(5u32);
        assert_eq!(get(&table, handle).unwrap(), 5);
        let foreign = other.insert(1);
        let refused = |result: Result<u32, FfiError>| {
            assert_eq!(result.unwrap_err().status, lc_status::LC_ERR_INVALID_HANDLE)
        };
        refused(get(&table, foreign));
        refused(get(&table, 0));
        refused(get(&table, u64::MAX));
        assert_eq!(table.remove(handle).unwrap(), 5);
        refused(get(&table, handle));
        refused(table.remove(handle));
        // A handle is never issued twice: a new object never revives an old handle.
        let next = table.insert(6);
        assert_ne!(next, handle);
        refused(get(&table, handle));
        assert_eq!(table.len(), 1);
    }

    /// A freed slot is used again under a new generation: the new handle differs, the old
    /// one stays refused, and a slot whose generations ran out is retired.
    #[test]
    fn a_reused_slot_issues_a_new_handle_until_it_is_retired() {
        let table = HandleTable::new(HandleKind::Notification);
        let first = table.insert(1u32);
        table.remove(first).expect("freed");
        let second = table.insert(2u32);
        let place = |bits| {
            let place = Place::of(bits);
            (place.shard, place.index)
        };
        assert_eq!(place(second), place(first), "the slot is used again");
        assert_ne!(second, first, "under another generation");
        assert!(get(&table, first).is_err(), "the old handle stays refused");
        assert_eq!(get(&table, second).unwrap(), 2);

        // The slot's last generation: once freed, the slot is never used again.
        let (shard, index) = place(second);
        let last = {
            let mut guard = lock(&table.shards[shard]);
            let slot = &mut guard.bits[index];
            *slot = (*slot & !(LAST_GENERATION << GENERATION_SHIFT))
                | (LAST_GENERATION << GENERATION_SHIFT);
            *slot
        };
        table.remove(last).expect("the last generation is freed");
        let after = table.insert(3u32);
        assert_ne!(place(after), place(last), "a retired slot is not reused");
        assert!(get(&table, last).is_err());
        assert_eq!(table.len(), 1);
    }

    /// The pages of objects a burst needed are let go once the burst is freed, beyond a
    /// few kept for the next; the handles of the burst stay refused, and the slots are
    /// used again under new generations.
    #[test]
    fn a_burst_freed_gives_its_pages_back() {
        let table = HandleTable::new(HandleKind::Notification);
        let burst: Vec<u64> = (0..100 * PAGE as u32).map(|n| table.insert(n)).collect();
        let shard = Place::of(burst[0]).shard;
        let allocated = || lock(&table.shards[shard]).allocated;
        assert_eq!(allocated(), 100);
        for &bits in &burst {
            table.remove(bits).expect("freed");
        }
        assert!(allocated() <= SPARE_PAGES, "{} pages kept", allocated());
        assert!(burst.iter().all(|&bits| get(&table, bits).is_err()));
        let again: Vec<u64> = (0..100 * PAGE as u32).map(|n| table.insert(n)).collect();
        assert!(
            again.iter().all(|bits| !burst.contains(bits)),
            "never issued twice"
        );
        assert_eq!(get(&table, again[PAGE * 50]).unwrap(), (PAGE * 50) as u32);
        assert_eq!(allocated(), 100);
        assert_eq!(table.len(), 100 * PAGE);
    }

    /// One object taken and freed over and over keeps its page: no allocation a round.
    #[test]
    fn a_steady_load_keeps_its_page() {
        let table = HandleTable::new(HandleKind::Notification);
        let first = table.insert(0u32);
        let shard = Place::of(first).shard;
        table.remove(first).expect("freed");
        for n in 1..1000u32 {
            let bits = table.insert(n);
            assert_eq!(get(&table, bits).unwrap(), n);
            table.remove(bits).expect("freed");
        }
        assert_eq!(lock(&table.shards[shard]).allocated, 1);
    }

    /// A thread stores what it inserts in its one shard (threads are dealt shards in turn);
    /// a handle is found and freed from any thread.
    #[test]
    fn threads_insert_into_their_own_shards_and_free_from_any() {
        let table = HandleTable::new(HandleKind::Notification);
        let table = &table;
        let handles: Vec<u64> = std::thread::scope(|scope| {
            let spawned: Vec<_> = (0..2)
                .map(|n| {
                    scope
                        .spawn(move || (0..3).map(|i| table.insert(n * 10 + i)).collect::<Vec<_>>())
                })
                .collect();
            spawned
                .into_iter()
                .flat_map(|thread| thread.join().unwrap())
                .collect()
        });
        let shards: Vec<usize> = handles.iter().map(|&bits| Place::of(bits).shard).collect();
        assert!(
            shards[..3].iter().all(|&shard| shard == shards[0]),
            "{shards:?}"
        );
        assert!(
            shards[3..].iter().all(|&shard| shard == shards[3]),
            "{shards:?}"
        );
        assert_eq!(table.len(), 6);
        for bits in handles {
            table.remove(bits).expect("freed on this thread");
        }
        assert_eq!(table.len(), 0);
    }
}
