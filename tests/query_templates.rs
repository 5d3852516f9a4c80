//! Query templates: subscriptions whose queries differ only in their compared-against
//! constants share one compiled query and keep their own constants.

mod common;

use common::*;
use livecore::*;

#[test]
fn queries_differing_in_constants_share_one_compiled_template() {
    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    let id = connection.connection_id;
    let seven = manager
        .subscribe(id, in_room(7), SubscriptionOptions::default())
        .unwrap();
    let eight = manager
        .subscribe(id, in_room(8), SubscriptionOptions::default())
        .unwrap();
    let between = |low: i64, high: i64| {
        QuerySpec::table(messages())
            .filter(Expr::col("id").between(Expr::lit(low), Expr::lit(high)))
    };
    let low = manager
        .subscribe(id, between(0, 10), SubscriptionOptions::default())
        .unwrap();
    let high = manager
        .subscribe(id, between(100, 200), SubscriptionOptions::default())
        .unwrap();
    let template = |sub: &SubscriptionResult| manager.compiled_query_id(sub.live_query_id).unwrap();
    assert_eq!(template(&seven), template(&eight));
    assert_eq!(template(&low), template(&high));
    assert_ne!(template(&seven), template(&low));
    let stats = manager.query_cache_stats();
    assert_eq!(stats.compile_misses, 2, "{stats:?}");

    manager
        .publish(
            SeqId(1),
            ChangeNotification::insert(messages(), message(5, 8, "")),
        )
        .unwrap();
    manager
        .publish(
            SeqId(2),
            ChangeNotification::insert(messages(), message(150, 7, "")),
        )
        .unwrap();
    let received: Vec<(LiveQueryId, u64)> = drain(&mut connection.notifications)
        .iter()
        .map(|notification| match notification {
            Notification::Changes(set) => (set.live_query_id(), set.seq().0),
            other => panic!("{other:?}"),
        })
        .collect();
    let mut expected = vec![
        (eight.live_query_id, 1),
        (low.live_query_id, 1),
        (seven.live_query_id, 2),
        (high.live_query_id, 2),
    ];
    expected.sort();
    let mut received = received;
    received.sort();
    assert_eq!(received, expected);

    // Each subscription reads as its own query.
    let query = |sub: &SubscriptionResult| manager.subscription(sub.live_query_id).unwrap().query;
    assert!(
        query(&seven).ends_with("WHERE (\"room\" = 7)"),
        "{}",
        query(&seven)
    );
    assert!(
        query(&eight).ends_with("WHERE (\"room\" = 8)"),
        "{}",
        query(&eight)
    );
    assert!(
        query(&high).ends_with("WHERE (\"id\" BETWEEN 100 AND 200)"),
        "{}",
        query(&high)
    );
}

#[test]
fn a_null_constant_in_a_pinned_template_never_matches_and_is_still_listed() {
    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    let id = connection.connection_id;
    manager
        .subscribe(id, in_room(1), SubscriptionOptions::default())
        .unwrap();
    let null = QuerySpec::table(messages()).filter(Expr::col("room").eq(Expr::lit(Value::Null)));
    let null_sub = manager
        .subscribe(id, null, SubscriptionOptions::default())
        .unwrap();
    manager
        .publish(
            SeqId(1),
            ChangeNotification::insert(messages(), message(1, 1, "")),
        )
        .unwrap();
    let received = drain(&mut connection.notifications);
    assert_eq!(received.len(), 1);
    assert_ne!(received[0].live_query_id(), null_sub.live_query_id);
    let records = manager.live_query_records();
    assert!(records
        .iter()
        .any(|record| record.live_query_id == null_sub.live_query_id));
    manager.unsubscribe(null_sub.live_query_id).unwrap();
    assert_eq!(manager.live_query_records().len(), 1);
}

#[test]
fn alter_table_recompiles_a_template_once_for_all_its_subscriptions() {
    let (manager, _) = manager();
    let mut connection = connect(&manager, "alice");
    let subs: Vec<_> = (0..50)
        .map(|room| subscribe(&manager, connection.connection_id, in_room(room)))
        .collect();
    let before = manager.query_cache_stats().compile_misses;
    manager
        .register_table(TableSchema::new(
            messages(),
            TableScope::Shared,
            ["room", "id", "body"],
        ))
        .unwrap();
    assert_eq!(manager.query_cache_stats().compile_misses, before + 1);
    let row = Row::new(vec![Value::Int(42), Value::Int(1), Value::text("")]);
    manager
        .publish(SeqId(1), ChangeNotification::insert(messages(), row))
        .unwrap();
    let received = drain(&mut connection.notifications);
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].live_query_id(), subs[42].live_query_id);
}
