//! Cost claims checked by counting, which noisy machines cannot blur: a counting allocator
//! and livecore's lock counter show that publishing allocates and locks the same for 10 and
//! 10k subscribers, and that subscribing on a table of 100k subscriptions allocates a
//! bounded number of bytes.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::*;
use livecore::*;

/// Counts this thread's allocations (other test threads do not disturb the counts).
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
    static FREED: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: delegates every call to the system allocator unchanged; the thread-local
// counters are const-initialised, so touching them never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        BYTES.with(|bytes| bytes.set(bytes.get() + layout.size() as u64));
        // SAFETY: the caller upholds `alloc`'s contract, which we pass on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        FREED.with(|freed| freed.set(freed.get() + layout.size() as u64));
        // SAFETY: `ptr` was allocated by `System` with this layout (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|count| count.set(count.get() + 1));
        BYTES.with(|bytes| bytes.set(bytes.get() + new_size as u64));
        FREED.with(|freed| freed.set(freed.get() + layout.size() as u64));
        // SAFETY: the caller upholds `realloc`'s contract, which we pass on as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Allocations, bytes and livecore locks that `work` caused on this thread.
fn counted<T>(work: impl FnOnce() -> T) -> (T, u64, u64, u64) {
    let allocations = ALLOCATIONS.with(Cell::get);
    let bytes = BYTES.with(Cell::get);
    let locks = livecore::locks_taken_by_this_thread();
    let result = work();
    (
        result,
        ALLOCATIONS.with(Cell::get) - allocations,
        BYTES.with(Cell::get) - bytes,
        livecore::locks_taken_by_this_thread() - locks,
    )
}

/// Publishes to `subscribers` matching live subscriptions and returns the allocations and
/// locks of one publish (after a warm-up publish, so channels have their buffers).
fn publish_cost(subscribers: usize, filtered: bool, changes_per_commit: usize) -> (u64, u64) {
    let (manager, _) = manager();
    let mut receivers = Vec::with_capacity(subscribers);
    for i in 0..subscribers {
        let registration = connect(&manager, &format!("user{}", i % 50));
        let spec = if filtered {
            in_room(7)
        } else {
            QuerySpec::table(messages())
        };
        manager
            .subscribe(
                registration.connection_id,
                spec,
                SubscriptionOptions::default(),
            )
            .unwrap();
        receivers.push(registration);
    }
    let mut seq = 0;
    let mut publish_once = || {
        seq += 1;
        let changes = (0..changes_per_commit)
            .map(|n| {
                ChangeNotification::insert(messages(), message((seq * 100 + n) as i64, 7, "hello"))
            })
            .collect();
        let (summary, allocations, _, locks) =
            counted(|| manager.publish_commit(SeqId(seq as u64), changes).unwrap());
        assert_eq!(summary.enqueued, subscribers);
        (allocations, locks)
    };
    publish_once();
    for receiver in &mut receivers {
        drain(&mut receiver.notifications);
    }
    let cost = publish_once();
    for receiver in &mut receivers {
        let received = drain(&mut receiver.notifications);
        assert_eq!(received.len(), 1, "one delivery per commit");
        let Notification::Changes(set) = &received[0] else {
            panic!("expected changes, got {:?}", received[0]);
        };
        assert_eq!(set.len(), changes_per_commit, "every change of the commit");
    }
    cost
}

#[test]
fn publish_allocates_and_locks_the_same_for_10_and_10k_subscribers() {
    // A commit of one change, and one of three changes that every subscriber matches (its
    // deliveries carry several matches each).
    for (changes, most_allocations) in [(1, 1), (3, 3)] {
        for filtered in [false, true] {
            let (allocations_10, locks_10) = publish_cost(10, filtered, changes);
            let (allocations_10k, locks_10k) = publish_cost(10_000, filtered, changes);
            println!("publish of {changes} change(s) (filtered: {filtered}): {allocations_10} allocations and {locks_10} locks at 10 subscribers, {allocations_10k} and {locks_10k} at 10k");
            let case = format!("changes: {changes}, filtered: {filtered}");
            assert_eq!(allocations_10, allocations_10k, "{case}");
            assert_eq!(locks_10, locks_10k, "{case}");
            assert_eq!(
                locks_10k, 0,
                "publishing to live subscriptions takes no livecore lock ({case})"
            );
            assert!(
                allocations_10k <= most_allocations,
                "per commit, not per subscriber: {allocations_10k} ({case})"
            );
        }
    }
}

/// Allocations of a publish to `subscribers` whose channels (capacity 1, never read)
/// were full for the publish before as well: every delivery is dropped again.
fn publish_to_full_channels_cost(subscribers: usize) -> u64 {
    let (manager, _) = with_capacity(1);
    let registrations: Vec<_> = (0..subscribers)
        .map(|i| {
            let registration = connect(&manager, &format!("user{}", i % 50));
            subscribe(&manager, registration.connection_id, in_room(7));
            registration
        })
        .collect();
    let publish = |seq: u64| {
        let change = ChangeNotification::insert(messages(), message(seq as i64, 7, "x"));
        manager.publish(SeqId(seq), change).unwrap()
    };
    assert_eq!(
        publish(1).enqueued,
        subscribers,
        "the first fills every channel"
    );
    assert_eq!(
        publish(2).dropped,
        subscribers,
        "the second finds them full"
    );
    let (summary, allocations, _, _) = counted(|| publish(3));
    assert_eq!(summary.dropped, subscribers);
    drop(registrations);
    allocations
}

#[test]
fn a_publish_to_channels_that_stay_full_allocates_per_commit_not_per_subscriber() {
    // The first delivery after a drop goes out of line (an allocation); while the channel
    // stays full it is not built.
    let (few, many) = (
        publish_to_full_channels_cost(10),
        publish_to_full_channels_cost(1_000),
    );
    println!("publish to full channels: {few} allocations at 10 subscribers, {many} at 1k");
    assert_eq!(few, many, "the same for 10 and 1k subscribers");
}

/// Net bytes (allocated minus freed) that `work` left allocated on this thread.
fn net_bytes<T>(work: impl FnOnce() -> T) -> (T, i64) {
    let before = BYTES.with(Cell::get) as i64 - FREED.with(Cell::get) as i64;
    let result = work();
    let after = BYTES.with(Cell::get) as i64 - FREED.with(Cell::get) as i64;
    (result, after - before)
}

#[test]
fn a_never_used_connection_holds_at_most_448_bytes() {
    // Everything registering leaves allocated, the manager's map of connections and both
    // channels included, averaged over enough registrations that the map's doublings
    // amortise as they do for a host.
    const CONNECTIONS: usize = 100_000;
    let (manager, _) = manager_with(ManagerConfig {
        max_connections: CONNECTIONS,
        ..ManagerConfig::default()
    });
    let mut registrations = Vec::with_capacity(CONNECTIONS);
    let ((), bytes) = net_bytes(|| {
        for _ in 0..CONNECTIONS {
            registrations.push(manager.register_connection().unwrap());
        }
    });
    let per_connection = bytes / CONNECTIONS as i64;
    println!("a never-used connection holds {per_connection} bytes");
    assert!(
        per_connection <= 448,
        "a never-used connection holds {per_connection} bytes"
    );
}

#[test]
fn a_connection_keeps_its_subscription_map_between_pairs() {
    // The first subscribe of a connection allocates its subscription map; later
    // subscribe+unsubscribe pairs reuse it rather than freeing and allocating it again.
    let (manager, _) = manager_with(ManagerConfig::default());
    let warm = connect(&manager, "w");
    let connection = connect(&manager, "u");
    let pair_on = |connection: &ConnectionRegistration, room: i64| {
        let result = manager
            .subscribe(
                connection.connection_id,
                in_room(room),
                SubscriptionOptions::default(),
            )
            .unwrap();
        manager.unsubscribe(result.live_query_id).unwrap();
    };
    // The query's shared template is compiled by this pair, on another connection, so
    // what the pairs below allocate differs only by the connection's own map.
    pair_on(&warm, 0);
    let pair = |room: i64| pair_on(&connection, room);
    let (((), first, _, _), first_net) = net_bytes(|| counted(|| pair(1)));
    let (((), second, _, _), second_net) = net_bytes(|| counted(|| pair(2)));
    let (((), third, _, _), third_net) = net_bytes(|| counted(|| pair(3)));
    println!("pairs: {first} allocations ({first_net} net bytes), then {second} ({second_net}), {third} ({third_net})");
    assert!(first_net > 0, "the first pair leaves the map allocated");
    assert!(
        second < first,
        "the second pair allocated {second} times, the first {first}"
    );
    assert_eq!(second_net, 0, "a later pair leaves nothing behind");
    assert_eq!(third, second);
    assert_eq!(third_net, 0);
}

#[test]
fn subscribe_on_a_table_of_100k_allocates_a_bounded_number_of_bytes() {
    let (manager, _) = manager_with(ManagerConfig {
        max_subscriptions_per_connection: 1_000,
        ..ManagerConfig::default()
    });
    let connections: Vec<_> = (0..200)
        .map(|i| connect(&manager, &format!("u{i}")))
        .collect();
    let subscribe = |n: usize| {
        let connection = &connections[n % connections.len()];
        // Distinct constants (indexed) and unfiltered (scan list) subscriptions alike.
        let spec = if n.is_multiple_of(2) {
            in_room(n as i64)
        } else {
            QuerySpec::table(messages())
        };
        manager
            .subscribe(
                connection.connection_id,
                spec,
                SubscriptionOptions::default(),
            )
            .unwrap()
    };
    let mut worst_small = 0;
    for n in 0..1_000 {
        let (_, _, bytes, _) = counted(|| subscribe(n));
        worst_small = worst_small.max(bytes);
    }
    for n in 1_000..100_000 {
        subscribe(n);
    }
    // Each index table (50k pinned, 50k scanned here) doubles past 65,536 of its own
    // entries; 100k..100.1k holds no resize, so every subscribe here is the steady cost.
    let mut worst_large = 0;
    let mut total = 0;
    for n in 100_000..100_100 {
        let (result, _, bytes, _) = counted(|| subscribe(n));
        worst_large = worst_large.max(bytes);
        total += bytes;
        let (_, _, unsubscribe_bytes, _) =
            counted(|| manager.unsubscribe(result.live_query_id).unwrap());
        assert!(
            unsubscribe_bytes < 4_096,
            "unsubscribe allocated {unsubscribe_bytes} bytes"
        );
    }
    println!("subscribe: at most {worst_small} bytes on a table of <1k, at most {worst_large} (mean {}) on 100k", total / 100);
    assert!(
        worst_large < 4_096,
        "a subscribe on 100k allocated {worst_large} bytes"
    );
    assert!(
        total / 100 <= worst_small.max(1_024) * 2,
        "subscribe cost grew with the table: {} bytes at 100k vs at most {worst_small} at 1k",
        total / 100
    );
    // Growing from 100k to 200k crosses the doubling of both index tables (past 65,536
    // entries each): each rebuilds its slot array once, O(n), amortised over as many writes.
    // Averaged over the window, the cost stays close to the steady one.
    let ((), _, window_bytes, _) = counted(|| {
        for n in 100_100..200_000 {
            subscribe(n);
        }
    });
    let window_mean = window_bytes / 99_900;
    println!("subscribe: mean {window_mean} bytes from 100k to 200k, doublings included");
    assert!(
        window_mean <= (total / 100) * 2,
        "doublings are not amortised: {window_mean} bytes per subscribe vs {} steady",
        total / 100
    );
}

/// Bytes of one more subscribe and of its unsubscribe, once `fill` subscriptions of the
/// same kind exist.
fn next_subscribe_bytes(fill: usize, spec: impl Fn() -> QuerySpec) -> (u64, u64) {
    let (manager, _) = manager_with(ManagerConfig {
        max_subscriptions_per_connection: 1_000,
        ..ManagerConfig::default()
    });
    // One user on many connections (the limit is per connection).
    let connections: Vec<_> = (0..fill / 1_000 + 2)
        .map(|_| connect(&manager, "hot"))
        .collect();
    let subscribe = |n: usize| {
        manager
            .subscribe(
                connections[n / 1_000].connection_id,
                spec(),
                SubscriptionOptions::default(),
            )
            .unwrap()
    };
    for n in 0..fill {
        subscribe(n);
    }
    let (result, _, subscribe_bytes, _) = counted(|| subscribe(fill));
    let (_, _, unsubscribe_bytes, _) =
        counted(|| manager.unsubscribe(result.live_query_id).unwrap());
    (subscribe_bytes, unsubscribe_bytes)
}

#[test]
fn a_hot_key_or_a_busy_user_keeps_subscribe_bounded() {
    // Every subscription on the same key (`room = 7`), or of one user on a user-scoped
    // table: the index nests such crowds, so the next one costs what the tenth did.
    type Case = (&'static str, fn() -> QuerySpec);
    let cases: [Case; 2] = [
        ("room = 7", || in_room(7)),
        ("one user's notes", || QuerySpec::table(notes())),
    ];
    for (name, spec) in cases {
        let (small_subscribe, small_unsubscribe) = next_subscribe_bytes(10, spec);
        let (large_subscribe, large_unsubscribe) = next_subscribe_bytes(100_000, spec);
        println!(
            "{name}: subscribe {small_subscribe} bytes with 10 alike, {large_subscribe} with 100k; \
             unsubscribe {small_unsubscribe} and {large_unsubscribe}"
        );
        assert!(
            large_subscribe <= small_subscribe.max(1_024) * 2,
            "{name}: subscribe grew with the crowd: {small_subscribe} -> {large_subscribe}"
        );
        assert!(
            large_unsubscribe <= small_unsubscribe.max(1_024) * 2,
            "{name}: unsubscribe grew with the crowd: {small_unsubscribe} -> {large_unsubscribe}"
        );
    }
}

#[test]
fn a_commit_evaluates_each_pinned_subscription_against_its_own_changes() {
    const ROOMS: i64 = 1000;
    let (manager, _) = manager_with(ManagerConfig {
        max_subscriptions_per_connection: 2 * ROOMS as usize,
        notification_channel_capacity: 4 * ROOMS as usize,
        ..ManagerConfig::default()
    });
    let mut registration = connect(&manager, "alice");
    let connection = registration.connection_id;
    let subscribe = |spec: QuerySpec| {
        manager
            .subscribe(connection, spec, SubscriptionOptions::default())
            .unwrap()
            .live_query_id
    };
    let by_room: Vec<LiveQueryId> = (0..ROOMS).map(|room| subscribe(in_room(room))).collect();
    let pair =
        subscribe(QuerySpec::table(messages()).filter(Expr::col("room").in_list([3i64, 500])));
    // One insert per room, then an update moving message 0 from room 0 to room 1.
    let mut changes: Vec<ChangeNotification> = (0..ROOMS)
        .map(|room| ChangeNotification::insert(messages(), message(room, room, "hi")))
        .collect();
    changes.push(ChangeNotification::update(
        messages(),
        message(0, 0, "hi"),
        message(0, 1, "moved"),
    ));
    let summary = manager.publish_commit(SeqId(1), changes).unwrap();
    // Each room's subscription sees its insert, rooms 0 and 1 the update too, the pair
    // its two inserts: a few evaluations per subscription, not one per change of the
    // commit (which was 1001 each).
    assert!(
        summary.evaluated <= 2 * (ROOMS as usize + 2) + 2,
        "{} evaluations",
        summary.evaluated
    );
    let mut got: std::collections::HashMap<LiveQueryId, Vec<(usize, ChangeType)>> =
        Default::default();
    for notification in drain(&mut registration.notifications) {
        let Notification::Changes(set) = notification else {
            panic!("expected changes, got {notification:?}");
        };
        let matched = set.changes().map(|c| (c.position(), c.change_type()));
        assert!(got.insert(set.live_query_id(), matched.collect()).is_none());
    }
    assert_eq!(got.len(), ROOMS as usize + 1);
    let last = ROOMS as usize;
    assert_eq!(
        got[&by_room[0]],
        [(0, ChangeType::Insert), (last, ChangeType::Delete)]
    );
    assert_eq!(
        got[&by_room[1]],
        [(1, ChangeType::Insert), (last, ChangeType::Insert)]
    );
    assert_eq!(got[&by_room[777]], [(777, ChangeType::Insert)]);
    assert_eq!(
        got[&pair],
        [(3, ChangeType::Insert), (500, ChangeType::Insert)]
    );
}
