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

/// What one of the insert-then-remove models saw: the walk racing the writer, the walk
/// under the walked key after it, and the walk under [`KEY`] after it.
struct Walks {
    during: Vec<usize>,
    after: Vec<usize>,
    at_key_after: Vec<usize>,
}

/// The insert-then-remove models' shared shape: `table` holds value 0 under [`KEY`]; a
/// writer inserts value 1 under `second_key`, then removes the value `removed` names
/// (its key and id), while this thread walks the values under `walked`. Checks that the
/// walks met no released value, that the removed value is released once the race is
/// over, and that every value is released with the table.
fn insert_then_remove_racing_a_walk(
    table: ModelTable<Probe>,
    second_key: u64,
    removed: (u64, usize),
    walked: u64,
) -> Walks {
    let released = Released::new(2);
    let table = Arc::new(table);
    table.insert(KEY, probe(0, &released));
    let writer = {
        let (table, released) = (table.clone(), released.clone());
        thread::spawn(move || {
            table.insert(second_key, probe(1, &released));
            assert!(table.remove(removed.0, |value| value.id == removed.1));
        })
    };
    let during = walk_at(&table, walked, &released);
    writer.join().unwrap();
    let walks = Walks {
        during,
        after: walk_at(&table, walked, &released),
        at_key_after: walk(&table, &released),
    };
    assert!(
        released.is_released(removed.1),
        "the removed value was never released"
    );
    drop(table);
    assert!(released.all_released(), "a value leaked");
    walks
}

/// Invariant: when a reader holds a bucket through two edits (an insert, then the removal
/// of a value it can see), the first copy stays alive for it, and with it the removed
/// value: the replaced bucket holds its successor, which holds what it removed.
#[test]
fn two_edits_racing_a_reader() {
    loom::model(|| {
        let walks = insert_then_remove_racing_a_walk(ModelTable::new(), KEY, (KEY, 0), KEY);
        assert!(
            [&[0][..], &[0, 1], &[1]].contains(&walks.during.as_slice()),
            "the walk saw {:?}",
            walks.during
        );
        assert_eq!(walks.after, [1]);
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
        // The second entry doubles the slot array.
        let walks = insert_then_remove_racing_a_walk(ModelTable::with_load(1), KEY, (KEY, 0), KEY);
        assert!(
            [&[0][..], &[0, 1], &[1]].contains(&walks.during.as_slice()),
            "the walk saw {:?}",
            walks.during
        );
        assert_eq!(walks.after, [1]);
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
        // The second entry doubles the slot array and splits the bucket.
        let walks = insert_then_remove_racing_a_walk(
            ModelTable::with_load(1),
            OTHER_SLOT_KEY,
            (OTHER_SLOT_KEY, 1),
            OTHER_SLOT_KEY,
        );
        assert!(
            walks.during.is_empty() || walks.during == [1],
            "the walk saw {:?}",
            walks.during
        );
        assert!(walks.after.is_empty());
        assert_eq!(walks.at_key_after, [0]);
    });
}
