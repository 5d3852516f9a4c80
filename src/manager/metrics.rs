//! Metrics export (feature `metrics`): what [`RegistryStats`](crate::RegistryStats) and the
//! topic counters hold, handed to the `metrics` facade so any recorder (a Prometheus
//! exporter, statsd) can scrape them. Nothing is recorded on the publish path: the host
//! calls [`ConnectionsManager::export_metrics`] when it wants fresh figures (on each scrape,
//! or from a timer), and the counters livecore keeps anyway are copied out.

use ::metrics::{counter, gauge};

use crate::manager::ConnectionsManager;

impl ConnectionsManager {
    /// Copies livecore's counters into the `metrics` recorder installed by the host
    /// (feature `metrics`): gauges for what can go down (`livecore_connections`,
    /// `livecore_subscriptions`, per topic group `livecore_topic_group_lag` and
    /// `livecore_topic_group_members`), absolute counters for the running totals
    /// (`livecore_published_commits_total`, `livecore_delivered_total`,
    /// `livecore_dropped_total`, `livecore_gaps_total`, `livecore_resyncs_total`, ..., and
    /// per topic `livecore_topic_appended_total`, `livecore_topic_write_failures_total`,
    /// per group `livecore_topic_redelivered_total`, `livecore_topic_leases_expired_total`,
    /// `livecore_topic_nacks_total`, `livecore_topic_nack_redelivered_total`,
    /// `livecore_topic_dead_lettered_total`, `livecore_topic_lease_extensions_total`).
    /// Topic series carry `topic` (and `group`) labels. Cost: one `stats()` and one walk
    /// of the topics per call, none on publish.
    pub fn export_metrics(&self) {
        let stats = self.stats();
        gauge!("livecore_connections").set(stats.connections as f64);
        gauge!("livecore_subscriptions").set(stats.subscriptions as f64);
        let totals = [
            ("livecore_published_commits_total", stats.published),
            ("livecore_published_changes_total", stats.published_changes),
            ("livecore_delivered_total", stats.delivered),
            ("livecore_discarded_total", stats.discarded),
            ("livecore_dropped_total", stats.dropped),
            ("livecore_dropped_closed_total", stats.dropped_closed),
            ("livecore_buffered_total", stats.buffered),
            (
                "livecore_covered_by_snapshot_total",
                stats.covered_by_snapshot,
            ),
            ("livecore_gaps_total", stats.gaps),
            ("livecore_resyncs_total", stats.resyncs),
            ("livecore_snapshot_batches_total", stats.snapshot_batches),
            (
                "livecore_filter_evaluations_total",
                stats.filter_evaluations,
            ),
            ("livecore_topic_messages_total", stats.topic_messages),
            (
                "livecore_topic_write_failures_all_total",
                stats.topic_write_failures,
            ),
            ("livecore_consume_parks_total", stats.consume_parks),
        ];
        for (name, value) in totals {
            counter!(name).absolute(value);
        }
        for topic in self.topic_names() {
            // A topic deleted meanwhile is skipped.
            let Ok(info) = self.topic_info(&topic) else {
                continue;
            };
            counter!("livecore_topic_appended_total", "topic" => topic.clone())
                .absolute(info.appended);
            counter!("livecore_topic_write_failures_total", "topic" => topic.clone())
                .absolute(info.write_failures);
            for group in &info.groups {
                let labels = [("topic", topic.clone()), ("group", group.clone())];
                if let Ok(stats) = self.group_stats(&topic, group) {
                    counter!("livecore_topic_redelivered_total", &labels)
                        .absolute(stats.redelivered);
                    counter!("livecore_topic_leases_expired_total", &labels)
                        .absolute(stats.leases_expired);
                    counter!("livecore_topic_skipped_by_retention_total", &labels)
                        .absolute(stats.skipped_by_retention);
                    counter!("livecore_topic_nacks_total", &labels).absolute(stats.nacks);
                    counter!("livecore_topic_nack_redelivered_total", &labels)
                        .absolute(stats.nack_redelivered);
                    counter!("livecore_topic_dead_lettered_total", &labels)
                        .absolute(stats.dead_lettered);
                    counter!("livecore_topic_lease_extensions_total", &labels)
                        .absolute(stats.lease_extensions);
                    gauge!("livecore_topic_group_members", &labels).set(stats.members as f64);
                }
                if let Ok(partitions) = self.group_offsets(&topic, group) {
                    let lag = partitions
                        .iter()
                        .fold(0u64, |sum, partition| sum.saturating_add(partition.lag));
                    gauge!("livecore_topic_group_lag", &labels).set(lag as f64);
                }
            }
        }
    }
}
