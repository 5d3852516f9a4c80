//! A slow consumer: a connection whose channel fills is never waited for. Deliveries it
//! cannot take are dropped and counted, and it gets a gap notice with the last SeqId it
//! received and how many it missed, so it can resume from there (see the `resume`
//! example). With `SlowConsumerPolicy::Disconnect`, the host is told to close it instead.
//!
//! `cargo run --example slow_consumer`

use livecore::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manager = ConnectionsManager::new(ManagerConfig {
        notification_channel_capacity: 4,
        ..ManagerConfig::default()
    })?;
    let ticks = TableId::new("app", "ticks");
    manager.register_table(TableSchema::new(ticks.clone(), TableScope::Shared, ["id"]))?;
    let mut fast = manager.register_connection()?;
    let mut slow = manager.register_connection()?;
    for (connection, user) in [(&fast, "fast"), (&slow, "slow")] {
        manager.authenticate(connection.connection_id, UserId::from(user), None)?;
        manager.subscribe_sql(
            connection.connection_id,
            "SELECT * FROM app.ticks",
            SubscriptionOptions::default(),
        )?;
    }

    // The fast reader drains after every commit; the slow one not at all.
    let mut fast_seen = 0;
    for seq in 1..=10 {
        let summary = manager.publish(
            SeqId(seq),
            ChangeNotification::insert(ticks.clone(), Row::new(vec![Value::Int(seq as i64)])),
        )?;
        // Publishing never blocks on a full channel: the slow reader's delivery is dropped.
        assert_eq!(summary.matched, 2);
        while fast.notifications.try_recv().is_ok() {
            fast_seen += 1;
        }
    }
    assert_eq!(fast_seen, 10);

    // The slow reader finally drains: the 4 that fit, then the gap notice.
    let mut got = Vec::new();
    let mut gap = None;
    while let Ok(notification) = slow.notifications.try_recv() {
        match notification {
            Notification::Changes(changes) => got.push(changes.seq().0),
            Notification::Gap {
                last_seq, missed, ..
            } => gap = Some((last_seq, missed)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, [1, 2, 3, 4]);
    assert_eq!(gap, Some((Some(SeqId(4)), 6)), "resume after 4; 6 missed");
    let stats = manager.stats();
    assert_eq!((stats.dropped, stats.gaps), (6, 1));
    println!("slow_consumer: fast got 10, slow got {got:?} then a gap (last 4, missed 6); stats dropped {}, gaps {}", stats.dropped, stats.gaps);
    Ok(())
}
