//! Resume after a reconnect: the client comes back with the last SeqId it saw; the host
//! replays the commits it missed from its log while live commits keep arriving, and the
//! client sees every commit once, in order, with no snapshot.
//!
//! When the log no longer reaches back that far, `resume_unavailable` tells the client to
//! resubscribe with a snapshot instead.
//!
//! `cargo run --example resume`

use livecore::*;

fn insert(table: &TableId, id: i64) -> ChangeNotification {
    ChangeNotification::insert(
        table.clone(),
        Row::new(vec![Value::Int(id), Value::text("x")]),
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manager = ConnectionsManager::new(ManagerConfig::default())?;
    let events = TableId::new("app", "events");
    manager.register_table(TableSchema::new(
        events.clone(),
        TableScope::Shared,
        ["id", "body"],
    ))?;
    // The host's commit log (a real host reads its WAL or change table), oldest retained: 3.
    let log: Vec<(SeqId, Vec<ChangeNotification>)> = (3..=10)
        .map(|seq| (SeqId(seq), vec![insert(&events, seq as i64)]))
        .collect();

    // The client last saw commit 6 before its connection dropped; it reconnects.
    let mut connection = manager.register_connection()?;
    manager.authenticate(connection.connection_id, UserId::from("alice"), None)?;
    let sub = manager.subscribe_sql(
        connection.connection_id,
        "SELECT * FROM app.events",
        SubscriptionOptions::resume_from(SeqId(6)),
    )?;
    // Commits 11 and 12 are published live while the host replays: livecore holds them
    // until the replay completes.
    manager.publish(SeqId(11), insert(&events, 11))?;
    manager.publish(SeqId(12), insert(&events, 12))?;
    for (seq, changes) in &log {
        // Commits at or below the resume point are ignored: replay the whole tail safely.
        manager.replay_commit(sub.live_query_id, *seq, changes.clone())?;
    }
    manager.complete_initial_load(sub.live_query_id)?;
    manager.publish(SeqId(13), insert(&events, 13))?;

    let mut seqs = Vec::new();
    while let Ok(notification) = connection.notifications.try_recv() {
        if let Notification::Changes(changes) = notification {
            seqs.push(changes.seq().0);
        }
    }
    assert_eq!(
        seqs,
        [7, 8, 9, 10, 11, 12, 13],
        "each missed commit once, then live, in order"
    );

    // Another client last saw commit 1: the log starts at 3, so it cannot resume.
    let mut late = manager.register_connection()?;
    manager.authenticate(late.connection_id, UserId::from("bob"), None)?;
    let sub = manager.subscribe_sql(
        late.connection_id,
        "SELECT * FROM app.events",
        SubscriptionOptions::resume_from(SeqId(1)),
    )?;
    assert!(log[0].0 .0 > 2, "the log lost commit 2");
    manager.resume_unavailable(sub.live_query_id)?;
    let notice = late.notifications.try_recv()?;
    assert!(
        matches!(notice, Notification::ResumeUnavailable { .. }),
        "{notice:?}"
    );
    // The subscription has ended; calls on it say how.
    assert!(matches!(
        manager.complete_initial_load(sub.live_query_id),
        Err(LiveError::SubscriptionEnded {
            ending: SubscriptionEnding::ResumeUnavailable,
            ..
        })
    ));
    println!(
        "resume: commits {seqs:?} delivered once each; a client behind the log told to resync"
    );
    Ok(())
}
