//! The `tracing` feature: events at the points an operator watches, and none per delivery.
//! (`metrics` is tested in tests/metrics_export.rs, a process of its own.)
#![cfg(feature = "tracing")]

mod common;

use std::sync::{Arc, Mutex};

use common::observability_scenario::run_scenario;

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
