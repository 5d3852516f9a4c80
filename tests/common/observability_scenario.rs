//! The scenario the observability tests watch (tests/observability.rs for `tracing`,
//! tests/metrics_export.rs for `metrics`: separate binaries, since `tracing` caches which
//! call sites are enabled process-wide and a scenario run on another test thread without a
//! subscriber makes the tracing test miss events).

use std::sync::Arc;

use super::*;

/// Subscribes to connection 1's room-1 messages on a two-slot channel, then publishes 10
/// commits without draining: 8 deliveries are dropped, and draining yields one gap.
pub fn run_scenario() -> Arc<ConnectionsManager> {
    let (manager, _) = manager_with(ManagerConfig {
        notification_channel_capacity: 2,
        ..ManagerConfig::default()
    });
    let mut connection = connect(&manager, "alice");
    let sub = subscribe(&manager, connection.connection_id, in_room(1));
    for seq in 1..=10u64 {
        manager
            .publish(
                SeqId(seq),
                ChangeNotification::insert(messages(), message(seq as i64, 1, "")),
            )
            .unwrap();
    }
    drain(&mut connection.notifications);
    manager.unsubscribe(sub.live_query_id).unwrap();
    manager
        .subscribe(
            connection.connection_id,
            in_room(2),
            SubscriptionOptions::default(),
        )
        .unwrap();
    manager.revoke_user(&UserId::from("alice"), "token expired");
    manager
        .unregister_connection(connection.connection_id)
        .unwrap();
    manager
}
