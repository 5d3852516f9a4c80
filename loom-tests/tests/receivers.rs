//! Loom models of the receiving side: gap notices when a connection's channel fills and
//! drains, a receiver dropped while a publish sends to it, and the manager-wide ready
//! queue. Without `--cfg livecore_loom` this file compiles to nothing.
#![cfg(livecore_loom)]

mod common;

use common::*;
use livecore::*;
use loom::thread;

/// Invariant: nothing is lost silently. With a one-slot channel, three commits race a
/// blocking consumer: each is either received, in order, or counted by a gap notice that
/// names the last SeqId received before it, and the consumer never blocks forever waiting
/// for a gap notice that was flagged (a lost wake-up would be reported by loom as a
/// deadlock).
#[test]
fn gap_notice_when_channel_fills_and_drains() {
    const COMMITS: u64 = 3;
    loom::model(|| {
        let (manager, mut registration) = one_subscriber(ManagerConfig {
            notification_channel_capacity: 1,
            ..ManagerConfig::default()
        });
        let publisher = {
            let manager = manager.clone();
            thread::spawn(move || {
                for seq in 1..=COMMITS {
                    manager.publish(SeqId(seq), insert(seq as i64)).unwrap();
                }
            })
        };
        let mut accounted = 0;
        let mut last_seq = None;
        while accounted < COMMITS {
            match seen(registration.notifications.recv().unwrap()) {
                Seen::Changes { seq, ids } => {
                    assert!(last_seq.is_none_or(|last| seq > last), "out of order");
                    assert_eq!(ids, vec![seq as i64]);
                    accounted += 1;
                    last_seq = Some(seq);
                }
                Seen::Gap {
                    missed,
                    last_seq: gap_last,
                } => {
                    assert!(missed > 0);
                    assert_eq!(gap_last, last_seq, "the gap names the last SeqId received");
                    accounted += missed;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(accounted, COMMITS, "counted more than was published");
        publisher.join().unwrap();
        let (rest, end) = drain(&mut registration.notifications);
        assert!(
            rest.is_empty(),
            "more after everything was accounted: {rest:?}"
        );
        assert_eq!(end, ReceiveError::Empty);
    });
}

/// Invariant: dropping a connection's notification receiver while publishes send to it
/// neither fails nor panics a publish; every delivery is counted as enqueued or as
/// dropped to a closed receiver; and nothing queued for it is leaked (loom checks that
/// every Arc it tracks is freed when the model ends).
#[test]
fn receiver_dropped_mid_publish() {
    loom::model(|| {
        let manager = manager(ManagerConfig::default());
        let registration = connect(&manager);
        subscribe(
            &manager,
            registration.connection_id,
            SubscriptionOptions::default(),
        );
        let publisher = {
            let manager = manager.clone();
            thread::spawn(move || {
                (1..=2)
                    .map(|seq| manager.publish(SeqId(seq), insert(seq as i64)).unwrap())
                    .map(|summary| (summary.enqueued, summary.dropped))
                    .fold((0, 0), |total, one| (total.0 + one.0, total.1 + one.1))
            })
        };
        drop(registration.notifications);
        let (enqueued, dropped) = publisher.join().unwrap();
        assert_eq!(enqueued + dropped, 2, "every delivery accounted");
        let stats = manager.stats();
        assert_eq!(stats.delivered as usize, enqueued);
        assert_eq!(stats.dropped_closed as usize, dropped);
        let after = manager.publish(SeqId(3), insert(3)).unwrap();
        assert_eq!(
            (after.enqueued, after.dropped),
            (0, 1),
            "the receiver is gone"
        );
    });
}

/// Invariant: the ready queue never misses a wake-up. A connection starts armed, so its
/// first delivery queues it; after draining, the consumer re-arms it while a publish
/// delivers to it; whichever comes first, the connection ends up on the manager-wide ready
/// queue, once.
#[test]
fn ready_queue_no_lost_wakeup() {
    loom::model(|| {
        let manager = manager(ManagerConfig {
            ready_queue: true,
            ..ManagerConfig::default()
        });
        let ready = manager.ready_connections().unwrap();
        let mut registration = connect(&manager);
        subscribe(
            &manager,
            registration.connection_id,
            SubscriptionOptions::default(),
        );
        manager.publish(SeqId(1), insert(1)).unwrap();
        assert_eq!(
            ready.try_recv(),
            Ok(registration.connection_id),
            "armed from the start"
        );
        let (seen, _) = drain(&mut registration.notifications);
        assert_eq!(change_ids(&seen), vec![1]);
        let publisher = {
            let manager = manager.clone();
            thread::spawn(move || {
                manager.publish(SeqId(2), insert(2)).unwrap();
            })
        };
        registration.notifications.arm_ready();
        publisher.join().unwrap();
        assert_eq!(
            ready.try_recv(),
            Ok(registration.connection_id),
            "a delivery arrived for an armed connection that is not on the ready queue"
        );
        assert_eq!(ready.try_recv(), Err(ReceiveError::Empty), "queued once");
        let (seen, _) = drain(&mut registration.notifications);
        assert_eq!(change_ids(&seen), vec![2]);
    });
}

/// Invariant: a commit shared by many deliveries is released exactly once, after the last of
/// them. The publisher reserves the deliveries' references in blocks and gives back the
/// unused part when its publish ends, while receivers on other threads release theirs (and
/// those of the run buffer a multi-change commit's deliveries share) as they go. Loom builds
/// mark a commit released instead of freeing it, and a use or release after that panics.
#[test]
fn commit_references_taken_in_blocks_race_receivers() {
    loom::model(|| {
        let manager = manager(ManagerConfig::default());
        let mut first = connect(&manager);
        let mut second = connect(&manager);
        for connection in [first.connection_id, second.connection_id] {
            subscribe(&manager, connection, SubscriptionOptions::default());
        }
        let publisher = {
            let manager = manager.clone();
            thread::spawn(move || {
                manager.publish(SeqId(1), insert(1)).unwrap();
                manager
                    .publish_commit(SeqId(2), vec![insert(2), insert(3)])
                    .unwrap();
            })
        };
        let receive_two = |receiver: &mut NotificationReceiver| {
            let single = seen(receiver.recv().unwrap());
            let several = seen(receiver.recv().unwrap());
            (single, several)
        };
        let other = thread::spawn(move || receive_two(&mut second.notifications));
        let mine = receive_two(&mut first.notifications);
        publisher.join().unwrap();
        let theirs = other.join().unwrap();
        for (single, several) in [mine, theirs] {
            assert_eq!(
                single,
                Seen::Changes {
                    seq: 1,
                    ids: vec![1]
                }
            );
            assert_eq!(
                several,
                Seen::Changes {
                    seq: 2,
                    ids: vec![2, 3]
                }
            );
        }
    });
}

/// Invariant: nothing of a subscription is handed out once `unsubscribe` has returned,
/// not even what the receiver built ahead of its turn. Commit 2 is dropped by a full
/// channel, so commit 3 comes after a gap notice: the receiver hands out the notice and
/// holds commit 3's changes for its next call, while the host unsubscribes.
#[test]
fn unsubscribe_racing_changes_held_behind_a_gap() {
    loom::model(|| {
        let manager = manager(ManagerConfig {
            notification_channel_capacity: 1,
            ..ManagerConfig::default()
        });
        let registration = connect(&manager);
        let sub = subscribe(
            &manager,
            registration.connection_id,
            SubscriptionOptions::default(),
        );
        let mut notifications = registration.notifications;
        manager.publish(SeqId(1), insert(1)).unwrap();
        let dropped = manager.publish(SeqId(2), insert(2)).unwrap();
        assert_eq!(dropped.dropped, 1, "the channel holds commit 1");
        assert_eq!(
            seen(notifications.try_recv().unwrap()),
            Seen::Changes {
                seq: 1,
                ids: vec![1]
            }
        );
        manager.publish(SeqId(3), insert(3)).unwrap();
        let unsubscribed = Arc::new(loom::sync::atomic::AtomicBool::new(false));
        let receiver = {
            let unsubscribed = unsubscribed.clone();
            thread::spawn(move || {
                let mut handed_out = Vec::new();
                for _ in 0..2 {
                    let after_unsubscribe = unsubscribed.load(loom::sync::atomic::Ordering::SeqCst);
                    match notifications.try_recv() {
                        Ok(notification) => {
                            let notification = seen(notification);
                            assert!(
                                !after_unsubscribe,
                                "handed out after unsubscribe returned: {notification:?}"
                            );
                            handed_out.push(notification);
                        }
                        Err(end) => assert_eq!(end, ReceiveError::Empty),
                    }
                }
                handed_out
            })
        };
        manager.unsubscribe(sub).unwrap();
        unsubscribed.store(true, loom::sync::atomic::Ordering::SeqCst);
        let handed_out = receiver.join().unwrap();
        // Whatever came out came in order: the gap (naming commit 1), then commit 3.
        let expected = [
            Seen::Gap {
                missed: 1,
                last_seq: Some(1),
            },
            Seen::Changes {
                seq: 3,
                ids: vec![3],
            },
        ];
        assert_eq!(handed_out, expected[..handed_out.len()], "{handed_out:?}");
    });
}

/// Invariant: under the Disconnect slow-consumer policy a drop cuts the connection off and
/// its receiver never hands out a gap notice, whatever it was doing when the drop came:
/// only changes, then the end of the stream, by which time the SlowConsumer event is
/// pending. A one-slot channel, three commits, and a
/// consumer polling meanwhile. The failing schedule takes three preemptions (commit 2
/// finds the channel full; the consumer takes commit 1 and checks the cut-off flag before
/// the publisher sets it; commit 3 goes out with its number and the consumer takes it), so
/// this model explores three whatever `LOOM_MAX_PREEMPTIONS` says (it is small: a full
/// exploration takes well under a second).
#[test]
fn disconnect_policy_never_hands_out_a_gap() {
    const COMMITS: u64 = 3;
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(|| {
        let (manager, mut registration) = one_subscriber(ManagerConfig {
            notification_channel_capacity: 1,
            slow_consumer_policy: SlowConsumerPolicy::Disconnect,
            ..ManagerConfig::default()
        });
        let publisher = {
            let manager = manager.clone();
            thread::spawn(move || {
                (1..=COMMITS)
                    .map(|seq| manager.publish(SeqId(seq), insert(seq as i64)).unwrap())
                    .map(|summary| summary.dropped)
                    .sum::<usize>()
            })
        };
        let mut seen_meanwhile = Vec::new();
        for _ in 0..2 {
            match registration.notifications.try_recv() {
                Ok(notification) => seen_meanwhile.push(seen(notification)),
                // The end of the stream says why: the event is pending by then.
                Err(ReceiveError::Closed) => {
                    assert_eq!(
                        registration.events.try_recv(),
                        Ok(ConnectionEvent::SlowConsumer),
                        "cut off before the event was raised"
                    );
                    break;
                }
                Err(_) => {}
            }
        }
        let dropped = publisher.join().unwrap();
        let (rest, end) = drain(&mut registration.notifications);
        let all: Vec<Seen> = seen_meanwhile.into_iter().chain(rest).collect();
        // Only changes, and none after one that was not: the commits handed out are
        // 1..=k for some k.
        let seqs: Vec<u64> = all
            .iter()
            .map(|seen| match seen {
                Seen::Changes { seq, .. } => *seq,
                other => panic!("only changes under Disconnect: {other:?} in {all:?}"),
            })
            .collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "{all:?}");
        let expected_end = if dropped > 0 {
            ReceiveError::Closed
        } else {
            ReceiveError::Empty
        };
        assert_eq!(end, expected_end, "dropped {dropped}: {all:?}");
    });
}
