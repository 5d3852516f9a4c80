//! Finding a manager from its handle without a lock or a write to a shared line.
//!
//! Every C call starts by finding its manager. Through the handle table that is a shard's
//! lock and a reference count taken and dropped: four atomic writes to two lines that
//! every thread calling into that manager shares. Live managers are few, so each is also
//! kept in one slot of a small direct-mapped array, picked by a hash of its handle,
//! and read there through arc-swap, whose load writes (while the thread holds fewer than
//! eight such references) only the calling thread's own debt slot. The handle table stays
//! the record of which handles are live: a manager whose slot another manager holds is
//! found through the table, as every manager was, and so is any handle whose slot does not
//! hold its manager (stale, foreign or never issued), so every refusal and its message are
//! the table's.
//!
//! A reference found in a slot keeps that manager alive until the call drops it, as the
//! table's reference count did. `lc_manager_free` empties the slot before the manager
//! leaves the table and checks it again after; a free can race the slotting only by
//! guessing a handle before `lc_manager_new` returned it, and then whichever of the two
//! comes second empties the slot. A slotted manager already marked freed is never handed
//! out, so a lookup that begins after `lc_manager_free` returned never finds the manager.

use std::ops::Deref;
use std::sync::LazyLock;

use crate::ffi::handles::Handle;
use crate::ffi::state::ManagerEntry;
use crate::ffi::status::FfiError;
use crate::ffi::types::lc_manager;
use crate::sync::{Arc, ArcSwapOption, Guard};

/// Slots in the direct-mapped array: far more than the managers a process keeps.
const SLOTS: usize = 64;

/// Each live manager whose slot was free when it was made, with its handle's bits.
static SLOTTED: LazyLock<[ArcSwapOption<Slotted>; SLOTS]> =
    LazyLock::new(|| std::array::from_fn(|_| ArcSwapOption::empty()));

/// A manager in its slot, with the handle it was issued under.
struct Slotted {
    bits: u64,
    entry: Arc<ManagerEntry>,
}

/// The slot of a handle: a multiplicative hash of all its bits. A handle's low bits are
/// its index in its handle-table shard, so they alone would put the first manager each
/// thread makes in one slot.
fn slot(bits: u64) -> &'static ArcSwapOption<Slotted> {
    const _: () = assert!(SLOTS.is_power_of_two());
    const SLOT_BITS: u32 = SLOTS.trailing_zeros();
    let hashed = bits.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (u64::BITS - SLOT_BITS);
    &SLOTTED[hashed as usize]
}

/// A manager found for the length of one call.
pub(crate) struct ManagerRef(Found);

enum Found {
    /// Found in its slot: a loaded arc-swap guard, no reference count taken.
    Slotted(Guard<Option<Arc<Slotted>>>),
    /// Found in the handle table.
    Counted(Arc<ManagerEntry>),
}

impl Deref for ManagerRef {
    type Target = ManagerEntry;

    #[inline]
    fn deref(&self) -> &ManagerEntry {
        match &self.0 {
            // A guard is made into a `ManagerRef` only when it holds a manager (`find`).
            Found::Slotted(guard) => match guard.as_deref() {
                Some(slotted) => &slotted.entry,
                None => unreachable!("a slotted manager reference holds its manager"),
            },
            Found::Counted(entry) => entry,
        }
    }
}

/// The manager behind a handle.
#[inline]
pub(crate) fn find(manager: lc_manager) -> Result<ManagerRef, FfiError> {
    let bits = manager.bits();
    let slot = slot(bits);
    let guard = slot.load();
    match guard.as_ref() {
        Some(slotted) if slotted.bits == bits && !slotted.entry.is_freed() => {
            return Ok(ManagerRef(Found::Slotted(guard)));
        }
        // Freed while it was being slotted (a free racing the `lc_manager_new` that issued
        // the handle, before the handle was returned): the slot is emptied here instead.
        Some(slotted) if slotted.bits == bits => {
            let _previous = slot.compare_and_swap(&*guard, None);
        }
        _ => {}
    }
    drop(guard);
    manager.get().map(|entry| ManagerRef(Found::Counted(entry)))
}

/// Issues a handle for a new manager, and gives it its slot if that is free.
pub(crate) fn insert(entry: ManagerEntry) -> lc_manager {
    let (manager, entry) = lc_manager::insert_shared(entry);
    let bits = manager.bits();
    // Taken only if empty: a slot holding a live manager keeps it (the newer one is found
    // through the table).
    let _previous = slot(bits).compare_and_swap(
        &None::<Arc<Slotted>>,
        Some(Arc::new(Slotted { bits, entry })),
    );
    // A free of the handle (guessed: it is not returned yet) that ran before the slot was
    // taken found nothing to empty there; the manager is out of the table then.
    if manager.get().is_err() {
        unslot(bits);
    }
    manager
}

/// Takes a manager's handle out of use: its slot is emptied first, then the table entry is
/// removed (refusing a stale handle as the table does).
pub(crate) fn remove(manager: lc_manager) -> Result<Arc<ManagerEntry>, FfiError> {
    let bits = manager.bits();
    unslot(bits);
    let removed = manager.remove();
    // A new manager's slotting that raced this free (on a guessed handle) may have taken
    // the slot between the two steps above.
    unslot(bits);
    removed
}

/// Empties the slot of the manager issued as `bits`, if it holds that manager: another
/// manager sharing the slot keeps it.
fn unslot(bits: u64) {
    let slot = slot(bits);
    let current = slot.load_full();
    if current.as_ref().is_some_and(|slotted| slotted.bits == bits) {
        let _previous = slot.compare_and_swap(&current, None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::status::lc_status;
    use crate::{ConnectionsManager, ManagerConfig};

    /// The slots are process-wide: the tests here take turns with them.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn new_entry() -> ManagerEntry {
        ManagerEntry::new(
            ConnectionsManager::new(ManagerConfig::default()).expect("manager"),
            None,
            None,
        )
    }

    fn is_slotted(manager: lc_manager) -> bool {
        let found = find(manager).expect("a live manager is found");
        matches!(found.0, Found::Slotted(_))
    }

    /// A new manager that took a free slot (those made before it on the way stay live).
    fn new_slotted_manager() -> lc_manager {
        (0..SLOTS * 4)
            .map(|_| insert(new_entry()))
            .find(|&manager| is_slotted(manager))
            .expect("a manager in its slot")
    }

    /// Freeing a manager that shares a slot with the slot's holder leaves the holder in it.
    #[test]
    fn freeing_a_manager_leaves_a_slot_another_holds() {
        let _turn = ONE_AT_A_TIME.lock();
        let holder = new_slotted_manager();
        let sharer = (0..SLOTS * 64)
            .map(|_| insert(new_entry()))
            .find(|&manager| {
                let shares = slot(manager.bits()).load().as_ref().map(|held| held.bits)
                    == Some(holder.bits());
                if !shares {
                    remove(manager).expect("freed");
                }
                shares
            })
            .expect("a manager sharing the holder's slot");
        assert!(!is_slotted(sharer), "the sharer is found through the table");
        remove(sharer).expect("the sharer freed");
        assert!(is_slotted(holder), "the holder keeps its slot");
        remove(holder).expect("the holder freed");
    }

    /// A free that raced the slotting (the table entry removed and the manager closed
    /// while its slot still held it) is refused, and the slot emptied.
    #[test]
    fn a_manager_freed_while_slotted_is_refused_and_unslotted() {
        let _turn = ONE_AT_A_TIME.lock();
        let manager = new_slotted_manager();
        let entry = manager.remove().expect("out of the table, still slotted");
        entry.close();
        match find(manager) {
            Err(error) => assert_eq!(error.status, lc_status::LC_ERR_INVALID_HANDLE),
            Ok(_) => panic!("a freed manager was found in its slot"),
        }
        let slotted = slot(manager.bits()).load();
        assert!(
            slotted
                .as_ref()
                .is_none_or(|held| held.bits != manager.bits()),
            "the freed manager left its slot"
        );
    }

    /// Managers are found in their slot or, when another holds it, in the table; a freed
    /// one is refused either way, and its slot is free again for the next.
    #[test]
    fn managers_are_found_slotted_or_counted_and_refused_once_freed() {
        let _turn = ONE_AT_A_TIME.lock();
        let managers: Vec<lc_manager> = (0..SLOTS + 3).map(|_| insert(new_entry())).collect();
        let mut slotted = 0;
        for &manager in &managers {
            let found = find(manager).expect("a live manager is found");
            let expected = manager.get().expect("in the table");
            assert!(std::ptr::eq(&*found, &*expected), "its own entry");
            slotted += usize::from(matches!(found.0, Found::Slotted(_)));
        }
        assert!(slotted >= 1, "at least the first manager is slotted");
        assert!(
            slotted < managers.len(),
            "more managers than slots: some counted"
        );
        for &manager in &managers {
            remove(manager).expect("freed once");
            let refused = |result: Result<ManagerRef, FfiError>| match result {
                Err(error) => assert_eq!(error.status, lc_status::LC_ERR_INVALID_HANDLE),
                Ok(_) => panic!("a freed manager was found"),
            };
            refused(find(manager));
            assert!(remove(manager).is_err(), "freed twice");
        }
        assert!(
            SLOTTED.iter().all(|slot| slot
                .load()
                .as_ref()
                .is_none_or(|held| !managers.iter().any(|m| m.bits() == held.bits))),
            "no freed manager keeps a slot"
        );
    }
}
