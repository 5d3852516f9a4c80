//! Loom models of the routing index's copy-on-write buckets: a bucket's copy takes over its
//! entries without touching their reference counts, and what an edit removes is released
//! only once no reader can still see it (`src/route/cow_table.rs`, module header). The
//! values here report their release, so a model sees a reader meet a released value.
//! Without `--cfg livecore_loom` this file compiles to nothing.
#![cfg(livecore_loom)]

use livecore::ModelTable;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use loom::thread;

/// The key every value of these models is stored under (one bucket).
const KEY: u64 = 7;

/// Flags, one per value, set when the value is released.
struct Released(Vec<AtomicBool>);

impl Released {
    fn new(count: usize) -> Arc<Self> {
        Arc::new(Self((0..count).map(|_| AtomicBool::new(false)).collect()))
    }

    fn is_released(&self, id: usize) -> bool {
        self.0[id].load(Ordering::Acquire)
    }

    fn all_released(&self) -> bool {
        (0..self.0.len()).all(|id| self.is_released(id))
    }
}

/// Sets its value's flag when the last clone of the value goes.
struct Token {
    id: usize,
    released: Arc<Released>,
}

impl Drop for Token {
    fn drop(&mut self) {
        let already = self.released.0[self.id].swap(true, Ordering::AcqRel);
        assert!(!already, "value {} released twice", self.id);
    }
}

/// A value as the index stores it: cloned by reference count.
#[derive(Clone)]
struct Probe {
    id: usize,
    _token: Arc<Token>,
}

fn probe(id: usize, released: &Arc<Released>) -> Probe {
    Probe {
        id,
        _token: Arc::new(Token {
            id,
            released: released.clone(),
        }),
    }
}

/// Walks the bucket as a publish does, checking every value it meets is still alive.
fn walk(table: &ModelTable<Probe>, released: &Released) -> Vec<usize> {
    walk_at(table, KEY, released)
}

/// [`walk`] for the values under `key`.
fn walk_at(table: &ModelTable<Probe>, key: u64, released: &Released) -> Vec<usize> {
    let mut seen = Vec::new();
    table.for_each_at(key, |value| {
        assert!(
            !released.is_released(value.id),
            "a reader met value {} after it was released",
            value.id
        );
        seen.push(value.id);
    });
    seen
}

/// Invariant: a value removed while a reader walks its bucket stays alive until the
/// reader lets go (the replaced bucket keeps it), and is released exactly once after.
#[test]
fn removal_racing_a_reader() {
    loom::model(|| {
        let released = Released::new(2);
        let table = Arc::new(ModelTable::new());
        table.insert(KEY, probe(0, &released));
        table.insert(KEY, probe(1, &released));
        let writer = {
            let table = table.clone();
            thread::spawn(move || assert!(table.remove(KEY, |value| value.id == 0)))
        };
        let seen = walk(&table, &released);
        assert!(seen == [0, 1] || seen == [1], "the walk saw {seen:?}");
        writer.join().unwrap();
        assert_eq!(walk(&table, &released), [1]);
        assert!(
            released.is_released(0),
            "the removed value was never released"
        );
        drop(table);
        assert!(released.all_released(), "a value leaked");
    });
}

/// Invariant: when a reader holds a bucket through two edits (an insert, then the removal
/// of a value it can see), the first copy stays alive for it, and with it the removed
/// value: the replaced bucket holds its successor, which holds what it removed.
#[test]
fn two_edits_racing_a_reader() {
    loom::model(|| {
        let released = Released::new(2);
        let table = Arc::new(ModelTable::new());
        table.insert(KEY, probe(0, &released));
        let writer = {
            let (table, released) = (table.clone(), released.clone());
            thread::spawn(move || {
                table.insert(KEY, probe(1, &released));
                assert!(table.remove(KEY, |value| value.id == 0));
            })
        };
        let seen = walk(&table, &released);
        assert!(
            [&[0][..], &[0, 1], &[1]].contains(&seen.as_slice()),
            "the walk saw {seen:?}"
        );
        writer.join().unwrap();
        assert_eq!(walk(&table, &released), [1]);
        drop(table);
        assert!(released.all_released(), "a value leaked");
    });
}

/// Invariant: an edit that also doubles the slot array, while a reader holds the slot
/// array and the bucket the edit replaced, keeps that bucket's values alive for the reader;
/// the resized array's buckets take the values over, and each is released exactly once,
/// with the table, and no bucket leaks.
#[test]
fn resize_racing_a_reader() {
    loom::model(|| {
        let released = Released::new(2);
        let table = Arc::new(ModelTable::with_load(1));
        table.insert(KEY, probe(0, &released));
        let writer = {
            let (table, released) = (table.clone(), released.clone());
            thread::spawn(move || table.insert(KEY, probe(1, &released)))
        };
        let seen = walk(&table, &released);
        assert!(
            [&[0][..], &[0, 1]].contains(&seen.as_slice()),
            "the walk saw {seen:?}"
        );
        writer.join().unwrap();
        let mut after = walk(&table, &released);
        after.sort_unstable();
        assert_eq!(after, [0, 1]);
        assert!(!released.is_released(0) && !released.is_released(1));
        drop(table);
        assert!(released.all_released(), "a value leaked");
    });
}

/// Invariant: a reader holding the slot array a resize replaced reads the values its
/// buckets show, though an edit after the resize removes one of them from the new array:
/// the old array's buckets keep the new buckets their entries went to alive, and so what
/// the new buckets' edits remove. Each value is released exactly once, none leaks.
#[test]
fn removal_after_a_resize_racing_a_reader_of_the_old_array() {
    loom::model(|| {
        let released = Released::new(2);
        let table = Arc::new(ModelTable::with_load(1));
        table.insert(KEY, probe(0, &released));
        let writer = {
            let (table, released) = (table.clone(), released.clone());
            thread::spawn(move || {
                // The second entry doubles the slot array.
                table.insert(KEY, probe(1, &released));
                assert!(table.remove(KEY, |value| value.id == 0));
            })
        };
        let seen = walk(&table, &released);
        assert!(
            [&[0][..], &[0, 1], &[1]].contains(&seen.as_slice()),
            "the walk saw {seen:?}"
        );
        writer.join().unwrap();
        assert_eq!(walk(&table, &released), [1]);
        assert!(
            released.is_released(0),
            "the removed value was never released"
        );
        drop(table);
        assert!(released.all_released(), "a value leaked");
    });
}

/// A key whose slot differs from [`KEY`]'s once the slot array has two slots.
const OTHER_SLOT_KEY: u64 = 8;

/// Invariant: when a resize splits a bucket in two (its two keys go to different slots of
/// the doubled array), a reader of the old array keeps both new buckets alive: a removal
/// from the second one leaves the value it walks alive, released once after.
#[test]
fn removal_from_the_second_half_of_a_split_racing_a_reader_of_the_old_array() {
    loom::model(|| {
        let released = Released::new(2);
        let table = Arc::new(ModelTable::with_load(1));
        table.insert(KEY, probe(0, &released));
        let writer = {
            let (table, released) = (table.clone(), released.clone());
            thread::spawn(move || {
                // The second entry doubles the slot array and splits the bucket.
                table.insert(OTHER_SLOT_KEY, probe(1, &released));
                assert!(table.remove(OTHER_SLOT_KEY, |value| value.id == 1));
            })
        };
        let seen = walk_at(&table, OTHER_SLOT_KEY, &released);
        assert!(seen.is_empty() || seen == [1], "the walk saw {seen:?}");
        writer.join().unwrap();
        assert!(walk_at(&table, OTHER_SLOT_KEY, &released).is_empty());
        assert_eq!(walk(&table, &released), [0]);
        assert!(
            released.is_released(1),
            "the removed value was never released"
        );
        drop(table);
        assert!(released.all_released(), "a value leaked");
    });
}
