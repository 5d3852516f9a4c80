//! The quick start: one table, one client subscribed to a filtered query, one commit.
//!
//! `cargo run --example quick_start`

use livecore::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SQL naming a table without its namespace reads it in `default_namespace` ("default"
    // unless set), so this manager reads `FROM messages` as `chat.messages`.
    let config = ManagerConfig {
        default_namespace: "chat".into(),
        ..ManagerConfig::default()
    };
    let manager = ConnectionsManager::new(config)?;
    let messages = TableId::new("chat", "messages");
    manager.register_table(TableSchema::new(
        messages.clone(),
        TableScope::Shared,
        ["id", "room", "body"],
    ))?;

    // A client connects, authenticates and subscribes to room 7.
    let mut connection = manager.register_connection()?;
    let user: String = "alice".to_string();
    manager.authenticate(connection.connection_id, UserId::from(user), None)?;
    let sub = manager.subscribe_sql(
        connection.connection_id,
        "SELECT id, body FROM messages WHERE room = 7",
        SubscriptionOptions::default(),
    )?;

    // The engine publishes each commit after it commits: a row enters room 7, is edited,
    // then moves to room 8 (it leaves the filter). Updates take the old row, then the new.
    let row =
        |room: i64, body: &str| Row::new(vec![Value::Int(1), Value::Int(room), Value::text(body)]);
    manager.publish(
        SeqId(1),
        ChangeNotification::insert(messages.clone(), row(7, "hi")),
    )?;
    manager.publish(
        SeqId(2),
        ChangeNotification::update(messages.clone(), row(7, "hi"), row(7, "hello")),
    )?;
    manager.publish(
        SeqId(3),
        ChangeNotification::update(messages.clone(), row(7, "hello"), row(8, "hello")),
    )?;

    // The server drains the connection. The update that left the filter arrives as a
    // delete: the subscriber sees its result set change, not the engine's operation.
    let hello = Row::new(vec![Value::Int(1), Value::text("hello")]);
    let mut seen = Vec::new();
    while let Ok(notification) = connection.notifications.try_recv() {
        assert_eq!(notification.live_query_id(), sub.live_query_id);
        let Notification::Changes(changes) = &notification else {
            panic!("expected changes, got {notification:?}");
        };
        for change in changes.changes() {
            seen.push((changes.seq().0, change.change_type()));
            if change.change_type() != ChangeType::Insert {
                // Delivered rows are projected views that compare with `==` to a Row.
                assert_eq!(change.row(), hello);
            }
        }
        println!("{}", notification.to_json());
    }
    assert_eq!(
        seen,
        [
            (1, ChangeType::Insert),
            (2, ChangeType::Update),
            (3, ChangeType::Delete), // left the filter: a delete
        ]
    );
    println!("quick_start: 3 commits, 3 changes as the subscriber sees them");
    Ok(())
}
