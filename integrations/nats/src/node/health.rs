//! The stream's health as the node sees it: the stream's end (for the lag, and when it
//! goes stale), a stream not found or created again under the same name, and the forced
//! reconnect after requests left unanswered. The watch loop reads the stream's info on its
//! own; the apply loop reports through the same calls. Apart from the apply loop, because
//! whether the node can tell its lag is a question of its own.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::cluster::{info_failure, server_answers, Failure, PROBE_TIMEOUT};
use crate::config::NodeConfig;
use crate::error::BridgeError;

use super::shared::{bump, lock, Inner};

impl Inner {
    /// The stream's end as just seen (its info, or a delivery and its pending count).
    pub(super) fn saw_stream_end(&self, last: u64) {
        self.counters
            .stream_last_seq
            .fetch_max(last, Ordering::Relaxed);
        self.end_seen_ms
            .fetch_max(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Whether the lag can be told: the stream exists, is the one the node started on,
    /// and its end was seen lately.
    pub(super) fn lag_known(&self) -> bool {
        let since = (self.epoch.elapsed().as_millis() as u64)
            .saturating_sub(self.end_seen_ms.load(Ordering::Relaxed));
        !self.stream_missing.load(Ordering::Acquire)
            && !self.stream_reset.load(Ordering::Acquire)
            && since <= self.config.stream_end_stale_after.as_millis() as u64
    }

    /// The stream's info as the watch loop read it: a stream created at another time than
    /// the one the node reads (deleted and created again under the same name) is reported
    /// once per new stream ([`BridgeError::StreamReset`]), and the lag is unknown from then
    /// on. (The creation time is the stream's, the same whichever server leads it. A last
    /// sequence below what the node applied is no sign: an info read before the node
    /// applied more, or answered by a server that just lost the lead, shows that too.)
    fn check_stream_identity(&self, created: async_nats::datetime::DateTime, last_sequence: u64) {
        let recreated = {
            let mut known = lock(&self.stream_created);
            let changed = *known != created;
            *known = created;
            changed
        };
        if recreated {
            let applied = self.counters.applied_stream_seq.load(Ordering::Acquire);
            self.stream_reset.store(true, Ordering::Release);
            self.report(BridgeError::StreamReset {
                stream: self.config.stream.stream.clone(),
                last_stream_seq: last_sequence,
                applied_stream_seq: applied,
            });
        }
    }

    /// The stream's info was read (and its identity checked): the stream exists and the
    /// connection works.
    fn stream_answered(&self) {
        self.stream_missing.store(false, Ordering::Release);
        self.silent_failures.store(0, Ordering::Relaxed);
    }

    /// A request on the stream failed. A missing stream is reported once per episode; a
    /// request the server left unanswered counts towards a forced reconnect.
    pub(super) async fn stream_failed(&self, failure: Failure) {
        match failure {
            Failure::StreamNotFound => {
                self.silent_failures.store(0, Ordering::Relaxed);
                if !self.stream_missing.swap(true, Ordering::AcqRel) {
                    self.report(BridgeError::StreamNotFound {
                        stream: self.config.stream.stream.clone(),
                    });
                }
            }
            Failure::Answered => self.silent_failures.store(0, Ordering::Relaxed),
            Failure::Silent => {
                if count_silent(&self.silent_failures, self.config.reconnect_after_failures) {
                    self.force_reconnect().await;
                }
            }
        }
    }
}

impl Inner {
    /// The reconnect after [`NodeConfig::reconnect_after_failures`](crate::NodeConfig)
    /// requests left unanswered. Only from a connection the client still takes for working
    /// (a hung server's): one already reconnecting is left to it. And only when the server
    /// does not answer a round trip either (the probe, within a second): a server that
    /// answers is alive, and its requests are slow for another reason (a stream without a
    /// leader, a stalled disk) that another connection would not cure; that reconnect is
    /// counted as skipped.
    async fn force_reconnect(&self) {
        let connected =
            || self.client.connection_state() == async_nats::connection::State::Connected;
        if !connected() {
            return;
        }
        let probe = PROBE_TIMEOUT.min(self.config.connection.request_timeout);
        if server_answers(&self.client, probe).await {
            bump(&self.counters.forced_reconnects_skipped);
            return;
        }
        if connected() && self.client.force_reconnect().await.is_ok() {
            bump(&self.counters.forced_reconnects);
        }
    }
}

/// Counts one more request left unanswered; true for the caller whose failure reached
/// `limit`, and the count starts again. One atomic step, so of concurrent callers only that
/// one forces a reconnect (a check, then a reset, let two of them through).
fn count_silent(failures: &AtomicU32, limit: u32) -> bool {
    let before = failures
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |failures| {
            Some(if failures + 1 >= limit {
                0
            } else {
                failures + 1
            })
        })
        .unwrap_or_default();
    before + 1 >= limit
}

/// How often the watch loop reads the stream's info: every heartbeat interval, and at
/// least three times per [`NodeConfig::stream_end_stale_after`](crate::NodeConfig), so a
/// healthy node sees the stream's end well within it whatever the heartbeat interval.
fn watch_period(config: &NodeConfig) -> Duration {
    config
        .heartbeat_interval
        .min(config.stream_end_stale_after / 3)
        .max(Duration::from_millis(1))
}

/// On its own (record writes that wait on a hung server do not delay it), every
/// [`watch_period`]: the stream's info, for the lag and for the stream's health. A stream
/// not found is reported once per episode, a stream created again under the same name once
/// per new stream; requests left unanswered make the node reconnect after
/// [`NodeConfig::reconnect_after_failures`](crate::NodeConfig) of them in a row.
pub(super) async fn watch_loop(inner: Arc<Inner>) {
    let mut ticker = tokio::time::interval(watch_period(&inner.config));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let mut stream = inner.stream.clone();
        match stream.info().await {
            Ok(info) => {
                let last = info.state.last_sequence;
                // Another stream under the same name is found before the stream counts
                // as seen again: the lag never reads the old position against it.
                inner.check_stream_identity(info.created, last);
                inner.stream_answered();
                inner.saw_stream_end(last);
            }
            Err(error) => inner.stream_failed(info_failure(&error)).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    #[test]
    fn concurrent_failures_at_the_limit_force_one_reconnect_per_limit() {
        let failures = Arc::new(AtomicU32::new(0));
        let triggered = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (failures, triggered) = (failures.clone(), triggered.clone());
                std::thread::spawn(move || {
                    for _ in 0..3000 {
                        if count_silent(&failures, 3) {
                            triggered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        // 24 000 failures, 3 per reconnect: exactly 8 000, none twice.
        assert_eq!(triggered.load(Ordering::Relaxed), 8000);
        assert_eq!(failures.load(Ordering::Relaxed), 0);
    }
}
