//! Loom model of how a queued delivery's subscription core is kept alive without a
//! reference count per delivery (`src/connection/core_ref.rs`, module header) when the
//! core's release marker finds the channel full: the receiver holds the core until it has
//! read past what was queued. (The marker path, a release racing publishes, schema changes
//! and unregistering, is exercised by the models of `subscription_lifecycle.rs`.) In loom
//! builds a released core is marked instead of freed, and the receiver asserts on reading a
//! marked one, so a model sees any delivery that would read freed memory.
//! Without `--cfg livecore_loom` this file compiles to nothing.
#![cfg(livecore_loom)]

mod common;

use common::*;
use livecore::*;
use loom::thread;

/// Invariant: when the release marker finds the channel full, the receiver lets the core
/// go only once it has processed what was queued when it took the core, so the queued
/// delivery still reads a live core; and the released core counts against the
/// connection's subscription limit until the receiver takes it.
#[test]
fn release_behind_a_full_channel_waits_for_the_receiver() {
    loom::model(|| {
        let manager = manager(ManagerConfig {
            notification_channel_capacity: 1,
            max_subscriptions_per_connection: 1,
            ..ManagerConfig::default()
        });
        let mut registration = connect(&manager);
        let connection = registration.connection_id;
        let id = subscribe(&manager, connection, SubscriptionOptions::default());
        // The channel's one slot holds this delivery.
        manager.publish(SeqId(1), insert(1)).unwrap();
        let remover = {
            let manager = manager.clone();
            thread::spawn(move || manager.unsubscribe(id).unwrap())
        };
        let (early, _) = drain(&mut registration.notifications);
        remover.join().unwrap();
        // The delivery came out before the unsubscribe returned, or was skipped after it.
        assert!(
            early.is_empty()
                || early
                    == [Seen::Changes {
                        seq: 1,
                        ids: vec![1]
                    }],
            "{early:?}"
        );
        let (late, end) = drain(&mut registration.notifications);
        assert!(late.is_empty(), "{late:?}");
        assert_eq!(end, ReceiveError::Empty);
        // Whatever the receiver held is let go by now: the limit's one place is free.
        manager
            .subscribe(
                connection,
                QuerySpec::table(table()),
                SubscriptionOptions::default(),
            )
            .unwrap();
    });
}
