//! The `tracing` and `metrics` features: events at the points an operator watches (and
//! none per delivery), and `export_metrics` copying the stats and topic counters out.
#![cfg(any(feature = "tracing", feature = "metrics"))]

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use livecore::*;

/// Subscribes to connection 1's room-1 messages on a two-slot channel, then publishes 10
/// commits without draining: 8 deliveries are dropped, and draining yields one gap.
fn run_scenario() -> Arc<ConnectionsManager> {
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

#[cfg(feature = "tracing")]
mod tracing_events {
    use super::*;
    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Metadata, Subscriber};

    #[derive(Clone, Default)]
    struct Collect(Arc<Mutex<Vec<String>>>);

    struct Message<'a>(&'a mut String);

    impl Visit for Message<'_> {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                *self.0 = format!("{value:?}");
            }
        }
    }

    impl Subscriber for Collect {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut message = String::new();
            event.record(&mut Message(&mut message));
            self.0.lock().unwrap().push(message);
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    #[test]
    fn operator_events_are_emitted_once_each_and_never_per_delivery() {
        let collect = Collect::default();
        tracing::subscriber::with_default(collect.clone(), || {
            run_scenario();
        });
        let events = collect.0.lock().unwrap().clone();
        let count = |text: &str| events.iter().filter(|event| event.contains(text)).count();
        assert_eq!(count("connection registered"), 1, "{events:?}");
        assert_eq!(count("connection authenticated"), 1, "{events:?}");
        assert_eq!(count("livecore: subscribed"), 2, "{events:?}");
        assert_eq!(count("unsubscribed"), 1, "{events:?}");
        // 8 drops over 8 commits: one event per commit that dropped, one gap notice.
        assert_eq!(count("deliveries dropped"), 8, "{events:?}");
        assert_eq!(count("gap notice"), 1, "{events:?}");
        assert_eq!(count("user revoked"), 1, "{events:?}");
        assert_eq!(count("subscription ended"), 1, "{events:?}");
        assert_eq!(count("connection unregistered"), 1, "{events:?}");
        // Nothing per delivery: the two delivered commits added no event of their own.
        assert_eq!(events.len(), 17, "{events:?}");
    }
}

#[cfg(feature = "metrics")]
mod metrics_export {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use metrics::{
        Counter, CounterFn, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder,
        SharedString, Unit,
    };

    /// Each series by name and labels, as the last value set.
    #[derive(Default)]
    struct Capture(Mutex<BTreeMap<String, Arc<Value>>>);

    #[derive(Default)]
    struct Value(AtomicU64);

    impl CounterFn for Value {
        fn increment(&self, value: u64) {
            self.0.fetch_add(value, Ordering::SeqCst);
        }
        fn absolute(&self, value: u64) {
            self.0.store(value, Ordering::SeqCst);
        }
    }

    impl GaugeFn for Value {
        fn increment(&self, _: f64) {}
        fn decrement(&self, _: f64) {}
        fn set(&self, value: f64) {
            self.0.store(value as u64, Ordering::SeqCst);
        }
    }

    impl Capture {
        fn series(&self, key: &Key) -> Arc<Value> {
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}={}", l.key(), l.value()))
                .collect();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            self.0.lock().unwrap().entry(name).or_default().clone()
        }
        fn get(&self, name: &str) -> Option<u64> {
            self.0
                .lock()
                .unwrap()
                .get(name)
                .map(|value| value.0.load(Ordering::SeqCst))
        }
    }

    impl Recorder for Capture {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            Counter::from_arc(self.series(key))
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::from_arc(self.series(key))
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    #[test]
    fn export_metrics_copies_the_stats_and_topic_counters() {
        let manager = run_scenario();
        manager
            .create_topic("t", TopicConfig::partitions(1))
            .unwrap();
        manager
            .create_consumer_group("t", "g", GroupConfig::default())
            .unwrap();
        manager
            .publish_to_topic("t", DirectMessage::new(SeqId(11), "m"))
            .unwrap();
        // One nack, so a nonzero nack counter must reach the recorder.
        let consumer = connect(&manager, "bob");
        let batch = manager
            .consume(consumer.connection_id, "t", "g", 10, Duration::ZERO)
            .unwrap();
        assert_eq!(batch.len(), 1);
        manager
            .nack(consumer.connection_id, "t", "g", 0, 0, Duration::ZERO)
            .unwrap();
        manager
            .unregister_connection(consumer.connection_id)
            .unwrap();
        let capture = Capture::default();
        metrics::with_local_recorder(&capture, || manager.export_metrics());
        let stats = manager.stats();
        assert_eq!(
            capture.get("livecore_published_commits_total{}"),
            Some(stats.published)
        );
        assert_eq!(capture.get("livecore_dropped_total{}"), Some(8));
        assert_eq!(capture.get("livecore_gaps_total{}"), Some(1));
        assert_eq!(
            capture.get("livecore_delivered_total{}"),
            Some(stats.delivered)
        );
        assert_eq!(capture.get("livecore_connections{}"), Some(0));
        assert_eq!(
            capture.get("livecore_topic_appended_total{topic=t}"),
            Some(1)
        );
        assert_eq!(
            capture.get("livecore_topic_group_lag{topic=t,group=g}"),
            Some(1)
        );
        assert_eq!(
            capture.get("livecore_topic_redelivered_total{topic=t,group=g}"),
            Some(0)
        );
        assert_eq!(
            capture.get("livecore_topic_nacks_total{topic=t,group=g}"),
            Some(1)
        );
        assert_eq!(
            capture.get("livecore_topic_dead_lettered_total{topic=t,group=g}"),
            Some(0)
        );
    }
}
