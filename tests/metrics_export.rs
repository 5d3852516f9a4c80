//! The `metrics` feature: `export_metrics` copying the stats and topic counters out.
#![cfg(feature = "metrics")]

mod common;

use std::sync::{Arc, Mutex};

use common::observability_scenario::run_scenario;
use common::*;
use livecore::*;

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
        assert_eq!(
            capture.get("livecore_discarded_total{}"),
            Some(stats.discarded)
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
