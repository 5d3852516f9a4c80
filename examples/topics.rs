//! Topics: committed changes routed into a partitioned log that a consumer group reads with
//! long polls. A parked consume wakes when the engine publishes; a batch that is not
//! committed before the consumer's lease expires goes to another member (at-least-once).
//!
//! `cargo run --example topics`

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use livecore::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A manual clock lets the example expire a lease without sleeping.
    let clock = Arc::new(ManualClock::new(1_000_000));
    let manager = Arc::new(ConnectionsManager::with_clock(
        ManagerConfig::default(),
        clock.clone(),
    )?);
    let orders = TableId::new("shop", "orders");
    manager.register_table(TableSchema::new(
        orders.clone(),
        TableScope::Shared,
        ["id", "customer", "total"],
    ))?;

    // New orders over 100, keyed by customer (one customer's orders stay in order in one
    // partition), projected to what billing needs.
    manager.create_topic("big_orders", TopicConfig::partitions(2))?;
    manager.add_topic_route(
        TopicRouteSpec::new("big_orders", orders.clone())
            .filter_sql("total > 100")
            .project(Projection::columns(["id", "total"]))
            .change_types(ChangeTypes::of(&[ChangeType::Insert]))
            .key_column("customer"),
    )?;
    let lease = Duration::from_secs(30);
    manager.create_consumer_group("big_orders", "billing", GroupConfig::default().lease(lease))?;
    let consumer = |user: &str| -> Result<ConnectionId, LiveError> {
        let registration = manager.register_connection()?;
        manager.authenticate(registration.connection_id, UserId::from(user), None)?;
        Ok(registration.connection_id)
    };
    let (a, b) = (consumer("billing-a")?, consumer("billing-b")?);

    // A long-polls before anything is there: it parks until the engine publishes.
    let parked = {
        let manager = manager.clone();
        thread::spawn(move || {
            manager.consume(a, "big_orders", "billing", 10, Duration::from_secs(20))
        })
    };
    let order = |id: i64, customer: &str, total: i64| {
        ChangeNotification::insert(
            orders.clone(),
            Row::new(vec![
                Value::Int(id),
                Value::text(customer),
                Value::Int(total),
            ]),
        )
    };
    let summary = manager.publish_commit(
        SeqId(1),
        vec![
            order(1, "ann", 250),
            order(2, "bob", 40),
            order(3, "ann", 120),
        ],
    )?;
    assert_eq!(summary.topic_messages, 2, "the 40 is filtered out");
    let batch = parked.join().unwrap()?;
    let ids: Vec<String> = batch
        .messages
        .iter()
        .map(|message| message.to_json())
        .collect();
    assert_eq!(batch.messages.len(), 2, "{ids:?}");
    assert!(batch.messages.iter().all(|message| message.seq == SeqId(1)));
    assert!(
        ids[0].contains(r#""row":{"id":1,"total":250}"#),
        "{}",
        ids[0]
    );
    manager.commit_batch(a, &batch)?;

    // A takes the next order and dies before committing it.
    manager.publish(SeqId(2), order(4, "ann", 500))?;
    let unfinished = manager.consume(a, "big_orders", "billing", 10, Duration::ZERO)?;
    assert_eq!(unfinished.messages.len(), 1);
    // While A's lease lives, B gets nothing; once it expires, B gets the order again.
    assert!(manager
        .consume(b, "big_orders", "billing", 10, Duration::ZERO)?
        .is_empty());
    clock.advance(lease.as_millis() as u64 + 1);
    let redelivered = manager.consume(b, "big_orders", "billing", 10, Duration::ZERO)?;
    assert_eq!(redelivered.messages.len(), 1);
    assert_eq!(
        redelivered.messages[0].offset,
        unfinished.messages[0].offset
    );
    manager.commit_batch(b, &redelivered)?;
    let stats = manager.group_stats("big_orders", "billing")?;
    // A leased both partitions; both leases expired, one message was handed out again.
    assert_eq!((stats.redelivered, stats.leases_expired), (1, 2));
    println!(
        "topics: a parked consume woke with 2 messages; an uncommitted one went to another member \
         after the lease (redelivered {}, leases expired {})",
        stats.redelivered, stats.leases_expired
    );
    Ok(())
}
