//! The soak of `core_soak.rs` with its parts on three threads at once: one publishes
//! commits as an engine would (the commit's SeqId made visible, then published), one drains
//! every connection (pausing now and then, so channels fill), and the test's thread
//! subscribes (live, with a load whose boundary is the last commit made, or resuming after
//! a recent commit and replaying what it missed from the log) and unsubscribes. At the end each subscription's stream is checked against the log of
//! commits:
//!
//! - a live subscription hears every commit made after its subscribe returned, and may
//!   hear those made while it ran (from some point on, never with a hole);
//! - a loaded one hears exactly the commits above its boundary, after its marker;
//! - holes are reported in place by gaps that add up to them; nothing of a subscription
//!   arrives after its unsubscribe returned.
//!
//! `LIVECORE_SOAK_SEED` runs one seed (a failure prints its seed) and `LIVECORE_SOAK_STEPS`
//! lengthens each run.

#[path = "common/rng.rs"]
mod rng;
#[path = "common/soak_env.rs"]
mod soak_env;
#[path = "common/soak_model.rs"]
mod soak_model;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use livecore::*;
use soak_model::*;

const CONNECTIONS: usize = 4;

/// How a subscription began.
#[derive(Clone, Copy, Debug)]
enum Start {
    /// Live: the last commit made before its subscribe began, and after it returned
    /// (commits between the two may or may not reach it; later ones must).
    Live { before: u64, after: u64 },
    /// Loaded with this boundary; `completed` when the load completed (else its gate buffer
    /// overflowed first).
    Loaded { boundary: u64, completed: bool },
    /// Loaded, but ended by an overflow before a boundary could be set.
    EndedLoading,
    /// Resumed after `from`: the commits after it up to `upto` were replayed (those of
    /// them it sees in `replayed`), then the load completed, unless `completed` is false
    /// (the gate buffer overflowed first).
    Resumed {
        from: u64,
        upto: u64,
        completed: bool,
    },
}

impl Start {
    /// Livecore may have ended the subscription (its gate buffer overflowed).
    fn may_have_ended(self) -> bool {
        matches!(
            self,
            Start::EndedLoading
                | Start::Loaded {
                    completed: false,
                    ..
                }
                | Start::Resumed {
                    completed: false,
                    ..
                }
        )
    }
}

struct Sub {
    id: LiveQueryId,
    view: View,
    start: Start,
    /// What a resumed subscription's replay sent, in order.
    replayed: Vec<Owed>,
    removed: bool,
}

/// What the three threads share.
struct Shared {
    manager: ConnectionsManager,
    tables: Vec<TableId>,
    /// The last SeqId committed: set before its publish begins, as an engine commits and
    /// then publishes. A snapshot read now holds every commit up to it; a commit above it
    /// is published after this read.
    committed: AtomicU64,
    /// Every commit made: its SeqId and changes, in order.
    log: Mutex<Vec<(u64, Vec<ModelChange>)>>,
    /// Subscriptions removed, in the order their unsubscribe returned; `removed_count` is
    /// raised after each push, so a reader that loaded it before a receive knows those
    /// subscriptions were gone before the receive began.
    removed: Mutex<Vec<LiveQueryId>>,
    removed_count: AtomicUsize,
    stop_publishing: AtomicBool,
    stop_draining: AtomicBool,
    /// Set when the drainer's thread ends, however it ends: a replay waiting for room in
    /// a channel then fails instead of waiting for ever.
    drainer_gone: AtomicBool,
}

/// Sets a flag when dropped: on every way out of a scope, a panic's included.
struct SetOnDrop<'a>(&'a [&'a AtomicBool]);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        for flag in self.0 {
            flag.store(true, Ordering::SeqCst);
        }
    }
}

fn publisher(shared: &Shared, seed: u64) {
    let mut rng = Rng(seed ^ 0x5eed | 1);
    let mut rows = BTreeMap::new();
    let mut next_id = 1;
    let mut seq = 0;
    while !shared.stop_publishing.load(Ordering::Acquire) {
        seq += 1;
        let (changes, model) = random_commit(
            &mut rng,
            &mut rows,
            &mut next_id,
            &shared.tables,
            &[false, false],
        );
        shared.log.lock().unwrap().push((seq, model));
        shared.committed.store(seq, Ordering::SeqCst);
        shared
            .manager
            .publish_commit(SeqId(seq), changes)
            .expect("publish");
        if rng.chance(2) {
            std::thread::yield_now();
        }
    }
}

/// Drains every connection until told to stop and then until all are empty; returns each
/// subscription's stream, and any notification that arrived after its subscription's
/// unsubscribe returned or on another connection's receiver.
fn drainer(
    shared: &Shared,
    mut receivers: Vec<(ConnectionId, NotificationReceiver)>,
    seed: u64,
) -> (HashMap<LiveQueryId, Vec<Got>>, Vec<String>) {
    let mut rng = Rng(seed ^ 0xd4a1 | 1);
    let mut streams: HashMap<LiveQueryId, Vec<Got>> = HashMap::new();
    let mut late = Vec::new();
    loop {
        let stopping = shared.stop_draining.load(Ordering::Acquire);
        let mut took = 0;
        for (connection, receiver) in receivers.iter_mut() {
            for _ in 0..1 + rng.below(8) {
                let removed_before = shared.removed_count.load(Ordering::Acquire);
                let Ok(notification) = receiver.try_recv() else {
                    break;
                };
                took += 1;
                let id = notification.live_query_id();
                if id.connection_id != *connection {
                    late.push(format!("{id:?}: received on {connection:?}'s receiver"));
                }
                if shared.removed.lock().unwrap()[..removed_before].contains(&id) {
                    late.push(format!(
                        "{id:?}: {} after its unsubscribe returned",
                        notification.kind()
                    ));
                }
                streams.entry(id).or_default().push(Got::of(&notification));
            }
        }
        if stopping && took == 0 {
            return (streams, late);
        }
        if !stopping && rng.chance(10) {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// Subscribes and unsubscribes at random while the others run.
fn controller(
    shared: &Shared,
    connections: &[(ConnectionId, usize)],
    seed: u64,
    steps: usize,
) -> Vec<Sub> {
    let mut rng = Rng(seed ^ 0xc0de | 1);
    let mut subs: Vec<Sub> = Vec::new();
    for _ in 0..steps {
        let (connection, user) = rng.pick(connections);
        let view = View::random(&mut rng, user);
        match rng.below(11) {
            0..=3 => {
                let before = shared.committed.load(Ordering::SeqCst);
                let Some(subscribed) = subscribed(shared.manager.subscribe_sql(
                    connection,
                    &view.sql(),
                    SubscriptionOptions::default(),
                )) else {
                    continue;
                };
                let after = shared.committed.load(Ordering::SeqCst);
                subs.push(Sub {
                    id: subscribed.live_query_id,
                    view,
                    start: Start::Live { before, after },
                    replayed: Vec::new(),
                    removed: false,
                });
            }
            4..=6 => {
                let options = SubscriptionOptions {
                    initial_load: true,
                    ..SubscriptionOptions::default()
                };
                let Some(subscribed) = subscribed(shared.manager.subscribe_sql(
                    connection,
                    &view.sql(),
                    options,
                )) else {
                    continue;
                };
                let id = subscribed.live_query_id;
                if rng.chance(50) {
                    std::thread::yield_now();
                }
                // The host's snapshot read: everything committed so far.
                let boundary = shared.committed.load(Ordering::SeqCst);
                let start = match shared.manager.set_snapshot_boundary(id, SeqId(boundary)) {
                    Err(LiveError::SubscriptionEnded { .. }) => Start::EndedLoading,
                    Err(error) => panic!("set boundary: {error}"),
                    Ok(_) => {
                        if rng.chance(50) {
                            std::thread::yield_now();
                        }
                        let completed = match shared.manager.complete_initial_load(id) {
                            Ok(_) => true,
                            Err(LiveError::SubscriptionEnded { .. }) => false,
                            Err(error) => panic!("complete: {error}"),
                        };
                        Start::Loaded {
                            boundary,
                            completed,
                        }
                    }
                };
                subs.push(Sub {
                    id,
                    view,
                    start,
                    replayed: Vec::new(),
                    removed: false,
                });
            }
            7 => {
                if let Some(sub) = resume(shared, connection, view, &mut rng) {
                    subs.push(sub);
                }
            }
            _ => {
                let live: Vec<usize> = (0..subs.len())
                    .filter(|&index| !subs[index].removed)
                    .collect();
                if live.is_empty() {
                    continue;
                }
                let sub = &mut subs[rng.pick(&live)];
                match shared.manager.unsubscribe(sub.id) {
                    Ok(()) => {}
                    // Ended by an overflow, and its connection has since forgotten the
                    // ending (it remembers only its latest ones).
                    Err(LiveError::UnknownSubscription(_)) if sub.start.may_have_ended() => {}
                    Err(error) => panic!("unsubscribe {:?}: {error}", sub.id),
                }
                sub.removed = true;
                shared.removed.lock().unwrap().push(sub.id);
                shared.removed_count.fetch_add(1, Ordering::Release);
            }
        }
        if rng.chance(30) {
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    subs
}

/// A subscribe's result: `None` when the connection is at its limit (removed subscriptions
/// still queued count), a panic on any other error.
fn subscribed(result: LiveResult<SubscriptionResult>) -> Option<SubscriptionResult> {
    match result {
        Ok(subscribed) => Some(subscribed),
        Err(LiveError::SubscriptionLimitReached { .. }) => None,
        Err(error) => panic!("subscribe: {error}"),
    }
}

/// A client resuming after an earlier commit: subscribes with `resume_from`, replays from
/// the log the commits it missed up to the last one made when its subscribe returned
/// (retrying while the channel is full, which the drainer empties), then completes: the
/// gate held the later ones, published meanwhile, and flushes them behind the marker.
fn resume(shared: &Shared, connection: ConnectionId, view: View, rng: &mut Rng) -> Option<Sub> {
    let committed = shared.committed.load(Ordering::SeqCst);
    let from = committed.saturating_sub(rng.below(30) as u64);
    let options = SubscriptionOptions {
        resume_from: Some(SeqId(from)),
        ..SubscriptionOptions::default()
    };
    let id = subscribed(
        shared
            .manager
            .subscribe_sql(connection, &view.sql(), options),
    )?
    .live_query_id;
    // Every commit made from now on is published after the subscription was routed: the
    // gate holds it. The host replays up to here.
    let target = shared.committed.load(Ordering::SeqCst);
    let mut replayed = Vec::new();
    let mut upto = from;
    let ended = |start| Sub {
        id,
        view,
        start,
        replayed: Vec::new(),
        removed: false,
    };
    {
        let commits: Vec<(u64, Vec<ModelChange>)> = shared
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|(seq, _)| *seq > upto && *seq <= target)
            .cloned()
            .collect();
        for (seq, model) in commits {
            let changes: Vec<ChangeNotification> = model
                .iter()
                .map(|change| change.notification(&shared.tables))
                .collect();
            let sent = loop {
                match shared
                    .manager
                    .replay_commit(id, SeqId(seq), changes.clone())
                {
                    Ok(sent) => break sent,
                    Err(LiveError::WouldBlock { .. }) => {
                        assert!(
                            !shared.drainer_gone.load(Ordering::SeqCst),
                            "the drainer stopped"
                        );
                        std::thread::yield_now();
                    }
                    Err(LiveError::SubscriptionEnded { .. }) => {
                        let start = Start::Resumed {
                            from,
                            upto,
                            completed: false,
                        };
                        return Some(Sub {
                            replayed,
                            ..ended(start)
                        });
                    }
                    Err(error) => panic!("replay_commit {seq}: {error}"),
                }
            };
            let seen = seen_by(view, &model);
            assert_eq!(sent, !seen.is_empty(), "replay of {seq}: sent");
            if sent {
                replayed.push(Owed { seq, changes: seen });
            }
            upto = seq;
        }
    }
    let completed = match shared.manager.complete_initial_load(id) {
        Ok(_) => true,
        Err(LiveError::SubscriptionEnded { .. }) => false,
        Err(error) => panic!("complete a resume: {error}"),
    };
    Some(Sub {
        replayed,
        ..ended(Start::Resumed {
            from,
            upto,
            completed,
        })
    })
}

/// Checks one subscription against the commits it is owed.
fn check_sub(sub: &Sub, log: &[(u64, Vec<ModelChange>)], received: &[Got]) -> Result<(), String> {
    let owed_from = |first: u64| -> Vec<Owed> {
        log.iter()
            .filter(|(seq, _)| *seq >= first)
            .filter_map(|(seq, model)| {
                let changes = seen_by(sub.view, model);
                (!changes.is_empty()).then_some(Owed { seq: *seq, changes })
            })
            .collect()
    };
    match sub.start {
        Start::EndedLoading
        | Start::Loaded {
            completed: false, ..
        } => match received {
            [] if sub.removed => Ok(()),
            [Got::Resync] => Ok(()),
            other => Err(format!("an overflowed load gave {other:?}")),
        },
        Start::Loaded {
            boundary,
            completed: true,
        } => match received.split_first() {
            None if sub.removed => Ok(()),
            Some((
                Got::LoadComplete {
                    boundary: said,
                    batches: 0,
                    rows: 0,
                },
                rest,
            )) if *said == Some(boundary) => {
                follow(&owed_from(boundary + 1), rest, Some(boundary), sub.removed)
            }
            other => Err(format!("expected the load-complete marker, got {other:?}")),
        },
        Start::Resumed {
            from,
            upto,
            completed,
        } => {
            // The replayed commits come first, each once and whole.
            let cut = sub.removed || !completed;
            let (last_replayed, rest) = take_replayed(received, &sub.replayed, cut)?;
            if !completed {
                return match rest {
                    [] if sub.removed => Ok(()),
                    [Got::Resync] => Ok(()),
                    other => Err(format!("a resume that overflowed gave {other:?}")),
                };
            }
            match rest.split_first() {
                None if sub.removed => Ok(()),
                Some((
                    Got::LoadComplete {
                        boundary,
                        batches: 0,
                        rows: 0,
                    },
                    rest,
                )) if *boundary == Some(from) => {
                    let held = last_replayed.unwrap_or(upto.max(from));
                    follow(&owed_from(upto + 1), rest, Some(held), sub.removed)
                }
                other => Err(format!("expected the load-complete marker, got {other:?}")),
            }
        }
        Start::Live { before, after } => {
            // Commit `before` may have been publishing as the subscribe began; commits up
            // to `after` may have published before it was routed. The stream may start
            // at any of them, never later.
            let owed = owed_from(before);
            let racing = owed.iter().take_while(|owed| owed.seq <= after).count();
            let mut last = String::new();
            for start in 0..=racing {
                match follow(&owed[start..], received, None, sub.removed) {
                    Ok(()) => return Ok(()),
                    Err(problem) => last = problem,
                }
            }
            Err(last)
        }
    }
}

fn run(seed: u64, steps: usize, coverage: &mut BTreeMap<&'static str, u64>) {
    let config = ManagerConfig {
        notification_channel_capacity: 16,
        gate_buffer_capacity: 64,
        ..ManagerConfig::default()
    };
    let (manager, tables) = soak_manager(config);
    let mut connections = Vec::new();
    let mut receivers = Vec::new();
    for index in 0..CONNECTIONS {
        let registration = manager.register_connection().expect("connect");
        let user = index % USERS.len();
        manager
            .authenticate(registration.connection_id, UserId::from(USERS[user]), None)
            .expect("authenticate");
        connections.push((registration.connection_id, user));
        receivers.push((registration.connection_id, registration.notifications));
    }
    let shared = Shared {
        manager,
        tables,
        committed: AtomicU64::new(0),
        log: Mutex::new(Vec::new()),
        removed: Mutex::new(Vec::new()),
        removed_count: AtomicUsize::new(0),
        stop_publishing: AtomicBool::new(false),
        stop_draining: AtomicBool::new(false),
        drainer_gone: AtomicBool::new(false),
    };
    let (subs, (streams, late)) = std::thread::scope(|scope| {
        let publishing = scope.spawn(|| publisher(&shared, seed));
        let draining = scope.spawn(|| {
            let _gone = SetOnDrop(&[&shared.drainer_gone]);
            drainer(&shared, receivers, seed)
        });
        // Should the controller panic, the other two still stop and the scope ends.
        let stop_all = [&shared.stop_publishing, &shared.stop_draining];
        let _stop = SetOnDrop(&stop_all);
        let subs = controller(&shared, &connections, seed, steps);
        shared.stop_publishing.store(true, Ordering::Release);
        publishing.join().expect("publisher");
        shared.stop_draining.store(true, Ordering::Release);
        (subs, draining.join().expect("drainer"))
    });
    assert!(late.is_empty(), "seed {seed}: {late:?}");
    let log = shared.log.lock().unwrap();
    for sub in &subs {
        let received = streams.get(&sub.id).map(Vec::as_slice).unwrap_or(&[]);
        for got in received {
            let kind = match got {
                Got::Changes(_) => "changes",
                Got::Gap { .. } => "gaps",
                Got::LoadComplete { .. } => "loads completed",
                _ => "other",
            };
            *coverage.entry(kind).or_default() += 1;
        }
        if sub.removed {
            *coverage.entry("unsubscribes").or_default() += 1;
        }
        if matches!(
            sub.start,
            Start::Resumed {
                completed: true,
                ..
            }
        ) {
            *coverage.entry("resumes").or_default() += 1;
        }
        if let Err(problem) = check_sub(sub, &log, received) {
            panic!(
                "seed {seed}: {:?} ({}, {:?}, removed {}): {problem}\nreceived: {:?}",
                sub.id,
                sub.view.sql(),
                sub.start,
                sub.removed,
                received
            );
        }
    }
}

#[test]
fn concurrent_publish_drain_and_subscribe_keep_every_stream_whole() {
    let steps = soak_steps(400);
    let mut coverage = BTreeMap::new();
    if let Some(seed) = soak_seed() {
        return run(seed, steps, &mut coverage);
    }
    for seed in 1..=8u64 {
        run(
            seed.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            steps,
            &mut coverage,
        );
    }
    println!("concurrent soak coverage: {coverage:?}");
    // Changes, gaps, completed loads and resumes, unsubscribes all occurred: the soak is
    // not vacuous.
    for kind in [
        "changes",
        "gaps",
        "loads completed",
        "unsubscribes",
        "resumes",
    ] {
        assert!(coverage.contains_key(kind), "no {kind}: {coverage:?}");
    }
}
