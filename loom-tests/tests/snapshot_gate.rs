//! Loom models of the initial-load protocol: the snapshot gate (buffering, the boundary,
//! completion) racing publishes, snapshot batches through a full channel, and commits
//! delivered whole. Without `--cfg livecore_loom` this file compiles to nothing.
#![cfg(livecore_loom)]

mod common;

use common::*;
use livecore::*;
use loom::thread;

/// Invariant: publishes racing the completion of an initial load deliver every change above
/// the boundary exactly once, in order, after the load-complete marker; nothing is
/// stranded in the gate buffer.
#[test]
fn publish_racing_complete_initial_load() {
    loom::model(|| {
        let manager = manager(ManagerConfig::default());
        let mut registration = connect(&manager);
        let sub = subscribe(
            &manager,
            registration.connection_id,
            SubscriptionOptions::with_initial_load(),
        );
        manager.set_snapshot_boundary(sub, SeqId(0)).unwrap();
        // Commit 1 arrives during the load and is held; 2 and 3 race the completion.
        manager.publish(SeqId(1), insert(1)).unwrap();
        let publisher = {
            let manager = manager.clone();
            thread::spawn(move || {
                for seq in 2..=3 {
                    manager.publish(SeqId(seq), insert(seq as i64)).unwrap();
                }
            })
        };
        manager.complete_initial_load(sub).unwrap();
        publisher.join().unwrap();
        let (seen, _) = drain(&mut registration.notifications);
        assert_eq!(
            seen.first(),
            Some(&Seen::LoadComplete),
            "marker first: {seen:?}"
        );
        assert_eq!(
            change_ids(&seen),
            vec![1, 2, 3],
            "every change once, in order"
        );
        assert_eq!(seen.len(), 4, "nothing else: {seen:?}");
    });
}

/// Invariant: the snapshot boundary holds across the race with completion. With the
/// boundary at 1, commit 1 is in the snapshot and is never delivered (not when buffered
/// before the boundary was set, nor as a straggler published after the load completed),
/// and commit 2 is delivered exactly once.
#[test]
fn publish_racing_snapshot_boundary() {
    loom::model(|| {
        let manager = manager(ManagerConfig::default());
        let mut registration = connect(&manager);
        let sub = subscribe(
            &manager,
            registration.connection_id,
            SubscriptionOptions::with_initial_load(),
        );
        let publisher = {
            let manager = manager.clone();
            thread::spawn(move || {
                for seq in 1..=2 {
                    manager.publish(SeqId(seq), insert(seq as i64)).unwrap();
                }
            })
        };
        manager.set_snapshot_boundary(sub, SeqId(1)).unwrap();
        manager.complete_initial_load(sub).unwrap();
        publisher.join().unwrap();
        let (seen, _) = drain(&mut registration.notifications);
        assert_eq!(
            change_ids(&seen),
            vec![2],
            "only what the snapshot lacks: {seen:?}"
        );
    });
}

/// Invariant: resuming, a commit the engine replays and also publishes live (its log
/// already held it when the replay read it, and its live publish raced the replay) is
/// delivered exactly once, whichever of the two reaches the gate first.
#[test]
fn replay_racing_live_publish() {
    loom::model(|| {
        let manager = manager(ManagerConfig::default());
        let mut registration = connect(&manager);
        let sub = subscribe(
            &manager,
            registration.connection_id,
            SubscriptionOptions::resume_from(SeqId(0)),
        );
        let publisher = {
            let manager = manager.clone();
            thread::spawn(move || {
                manager.publish(SeqId(1), insert(1)).unwrap();
            })
        };
        manager
            .replay_commit(sub, SeqId(1), vec![insert(1)])
            .unwrap();
        manager.complete_initial_load(sub).unwrap();
        publisher.join().unwrap();
        let (seen, _) = drain(&mut registration.notifications);
        assert_eq!(change_ids(&seen), vec![1], "commit 1 once: {seen:?}");
    });
}

/// Invariant: a commit is delivered whole or not at all: one delivery per (commit,
/// subscription) carrying all the changes it matched, in commit order, also when the
/// subscription (pinned to two values, so found through two index keys) is being created
/// and its load completed while the commit is routed.
#[test]
fn commit_batches_never_split() {
    loom::model(|| {
        let manager = manager(ManagerConfig::default());
        let mut registration = connect(&manager);
        let publisher = {
            let manager = manager.clone();
            thread::spawn(move || {
                manager
                    .publish_commit(SeqId(1), vec![insert(1), insert(2)])
                    .unwrap();
            })
        };
        let spec = QuerySpec::table(table()).filter(Expr::col("id").in_list([1i64, 2]));
        let sub = manager
            .subscribe(
                registration.connection_id,
                spec,
                SubscriptionOptions::with_initial_load(),
            )
            .unwrap()
            .live_query_id;
        manager.set_snapshot_boundary(sub, SeqId(0)).unwrap();
        manager.complete_initial_load(sub).unwrap();
        publisher.join().unwrap();
        let (seen, _) = drain(&mut registration.notifications);
        let changes: Vec<_> = seen
            .iter()
            .filter(|seen| matches!(seen, Seen::Changes { .. }))
            .collect();
        assert!(
            changes.is_empty()
                || changes
                    == [&Seen::Changes {
                        seq: 1,
                        ids: vec![1, 2]
                    }],
            "the commit was split or repeated: {seen:?}"
        );
    });
}

/// Invariant: snapshot batches pushed into a full channel return `WouldBlock` with how
/// many rows were taken, and retrying with the rest delivers every row exactly once, in
/// batch order, followed by the load-complete marker (which never waits for room: it goes
/// out of band when the channel is full), while the receiver drains concurrently.
#[test]
fn snapshot_batches_would_block() {
    loom::model(|| {
        let manager = manager(ManagerConfig {
            notification_channel_capacity: 1,
            ..ManagerConfig::default()
        });
        let registration = connect(&manager);
        let options = SubscriptionOptions {
            batch_size: 1,
            ..SubscriptionOptions::with_initial_load()
        };
        let sub = subscribe(&manager, registration.connection_id, options);
        manager.set_snapshot_boundary(sub, SeqId(0)).unwrap();
        let mut notifications = registration.notifications;
        let consumer = thread::spawn(move || {
            let mut seen_all = Vec::new();
            loop {
                let notification = seen(notifications.recv().unwrap());
                let done = notification == Seen::LoadComplete;
                seen_all.push(notification);
                if done {
                    return seen_all;
                }
            }
        });
        let rows = [row(1), row(2)];
        let mut offset = 0;
        while offset < rows.len() {
            match manager.push_snapshot_rows(sub, &rows[offset..]) {
                Ok(progress) => offset += progress.consumed,
                Err(LiveError::WouldBlock { consumed }) => {
                    offset += consumed;
                    thread::yield_now();
                }
                Err(error) => panic!("push_snapshot_rows: {error}"),
            }
        }
        let report = manager.complete_initial_load(sub).unwrap();
        assert_eq!((report.batches, report.rows), (2, 2));
        let seen = consumer.join().unwrap();
        assert_eq!(
            seen,
            vec![
                Seen::Snapshot {
                    batch: 0,
                    ids: vec![1]
                },
                Seen::Snapshot {
                    batch: 1,
                    ids: vec![2]
                },
                Seen::LoadComplete,
            ]
        );
    });
}

/// Invariant: a load-complete marker that found the channel full goes out of band, and
/// the receiver, draining concurrently, hands it out after the snapshot and before any
/// change of the subscription; each buffered or live change is then handed out once or
/// reported in a gap, never lost silently.
#[test]
fn late_marker_racing_the_receiver() {
    loom::model(|| {
        let manager = manager(ManagerConfig {
            notification_channel_capacity: 1,
            ..ManagerConfig::default()
        });
        let registration = connect(&manager);
        let sub = subscribe(
            &manager,
            registration.connection_id,
            SubscriptionOptions::with_initial_load(),
        );
        manager.set_snapshot_boundary(sub, SeqId(0)).unwrap();
        manager.push_snapshot_rows(sub, &[row(100)]).unwrap();
        // Held by the gate; the channel is full with the snapshot.
        manager.publish(SeqId(1), insert(1)).unwrap();
        let mut notifications = registration.notifications;
        let consumer = thread::spawn(move || {
            let mut seen_all = Vec::new();
            for _ in 0..2 {
                if let Ok(notification) = notifications.try_recv() {
                    seen_all.push(seen(notification));
                }
            }
            (seen_all, notifications)
        });
        manager.complete_initial_load(sub).unwrap();
        manager.publish(SeqId(2), insert(2)).unwrap();
        let (mut seen_all, mut notifications) = consumer.join().unwrap();
        seen_all.extend(drain(&mut notifications).0);
        assert_eq!(
            seen_all.first(),
            Some(&Seen::Snapshot {
                batch: 0,
                ids: vec![100]
            }),
            "{seen_all:?}"
        );
        assert_eq!(seen_all.get(1), Some(&Seen::LoadComplete), "{seen_all:?}");
        let mut accounted = change_ids(&seen_all).len() as u64;
        for item in &seen_all[2..] {
            match item {
                Seen::Changes { .. } => {}
                Seen::Gap { missed, .. } => accounted += missed,
                other => panic!("unexpected {other:?} in {seen_all:?}"),
            }
        }
        assert_eq!(
            accounted, 2,
            "both commits handed out or reported: {seen_all:?}"
        );
    });
}

/// Invariant: closing a gate races the completion of its load (a live gate closes with
/// one compare-and-swap, a gated one under the gate's lock): whichever comes first, the
/// gate ends closed, exactly one close reports closing it, and a later change is refused.
#[test]
fn close_racing_complete_on_the_gate() {
    loom::model(|| {
        let gate = std::sync::Arc::new(ModelGate::gated(4));
        assert_eq!(gate.admit(1), "buffered");
        let completer = {
            let gate = gate.clone();
            thread::spawn(move || gate.complete())
        };
        let closer = {
            let gate = gate.clone();
            thread::spawn(move || gate.close())
        };
        let closed_here = gate.close();
        let flushed = completer.join().unwrap();
        let closed_there = closer.join().unwrap();
        assert!(gate.is_closed(), "closed, whichever came first");
        assert!(
            closed_here ^ closed_there,
            "one close reports it: {closed_here} {closed_there}"
        );
        assert!(matches!(flushed, None | Some(1)), "{flushed:?}");
        assert_eq!(gate.admit(2), "closed");
    });
}

/// A gated subscription (`options`) whose one-change gate buffer holds commit 1, and a
/// thread publishing commit 2, which overflows the buffer unless the gate stopped
/// buffering first: the set-up of the models of an overflow racing a load-protocol call.
struct FullGate {
    manager: Arc<ConnectionsManager>,
    notifications: NotificationReceiver,
    sub: LiveQueryId,
    publisher: thread::JoinHandle<PublishSummary>,
}

fn full_gate_and_a_publish(options: SubscriptionOptions, boundary: Option<SeqId>) -> FullGate {
    let manager = manager(ManagerConfig {
        gate_buffer_capacity: 1,
        ..ManagerConfig::default()
    });
    let registration = connect(&manager);
    let sub = subscribe(&manager, registration.connection_id, options);
    if let Some(boundary) = boundary {
        manager.set_snapshot_boundary(sub, boundary).unwrap();
    }
    manager.publish(SeqId(1), insert(1)).unwrap();
    let publisher = {
        let manager = manager.clone();
        thread::spawn(move || manager.publish(SeqId(2), insert(2)).unwrap())
    };
    FullGate {
        manager,
        notifications: registration.notifications,
        sub,
        publisher,
    }
}

/// Invariant: a gate overflow racing the completion of the load ends the load one way
/// only. Either the completion wins (it returns `Ok`, and the subscriber gets the
/// load-complete marker and then every change) or the overflow does (the completion
/// returns `SubscriptionEnded { ResyncRequired }`, and the subscriber gets the resync
/// notice and no marker): never a marker followed by a resync.
#[test]
fn overflow_racing_complete_initial_load() {
    loom::model(|| {
        let FullGate {
            manager,
            mut notifications,
            sub,
            publisher,
        } = full_gate_and_a_publish(SubscriptionOptions::with_initial_load(), Some(SeqId(0)));
        // The subscriber takes what it can meanwhile: a marker queued too early would reach
        // it before the overflow ends the subscription (and then be followed by a resync).
        let receiver = thread::spawn(move || {
            let first = notifications.try_recv().ok().map(seen);
            (first, notifications)
        });
        let completed = manager.complete_initial_load(sub);
        publisher.join().unwrap();
        let (first, mut notifications) = receiver.join().unwrap();
        let (rest, _) = drain(&mut notifications);
        let seen: Vec<Seen> = first.into_iter().chain(rest).collect();
        match completed {
            Ok(report) => {
                assert_eq!(report.flushed, 1, "commit 1 was held");
                assert_eq!(seen.first(), Some(&Seen::LoadComplete), "{seen:?}");
                assert_eq!(change_ids(&seen), vec![1, 2], "{seen:?}");
                assert_eq!(seen.len(), 3, "nothing else: {seen:?}");
            }
            Err(LiveError::SubscriptionEnded { ending, .. }) => {
                assert_eq!(ending, SubscriptionEnding::ResyncRequired);
                assert_eq!(seen, vec![Seen::Other("resync_required")], "no marker");
            }
            Err(error) => panic!("unexpected error {error:?}"),
        }
    });
}

/// Invariant: `resume_unavailable` racing a gate overflow reports what the subscriber was
/// told: `Ok` with the resume-unavailable notice, or `SubscriptionEnded { ResyncRequired }`
/// with the resync notice; never `Ok` with a resync.
#[test]
fn overflow_racing_resume_unavailable() {
    loom::model(|| {
        let FullGate {
            manager,
            mut notifications,
            sub,
            publisher,
        } = full_gate_and_a_publish(SubscriptionOptions::resume_from(SeqId(0)), None);
        let result = manager.resume_unavailable(sub);
        publisher.join().unwrap();
        let (seen, _) = drain(&mut notifications);
        match result {
            Ok(()) => assert_eq!(seen, vec![Seen::Other("resume_unavailable")]),
            Err(LiveError::SubscriptionEnded { ending, .. }) => {
                assert_eq!(ending, SubscriptionEnding::ResyncRequired);
                assert_eq!(seen, vec![Seen::Other("resync_required")]);
            }
            Err(error) => panic!("unexpected error {error:?}"),
        }
    });
}
