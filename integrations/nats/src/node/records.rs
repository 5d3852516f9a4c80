//! The node's part of the cluster view in key-value: its heartbeat and live-query records
//! (written by the sync loop), the other nodes' as read, and the failover pass that
//! deletes offline nodes' records, each at the revision read. Apart from the stream's
//! apply and health: it talks to the records bucket only.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_nats::jetstream::{kv, stream};
use bytes::Bytes;
use livecore::{FailoverHandler, LiveQueryId, LiveQueryRecord, NodeId};

use crate::cluster::{read_prefix, read_prefix_entries};
use crate::codec::{self, Heartbeat};
use crate::error::{BridgeError, NatsResult};

use super::shared::{lock, wall_ms, Inner};
use super::FailoverOutcome;

fn record_key(record: &LiveQueryRecord) -> String {
    live_query_key(record.node_id, record.live_query_id)
}

fn live_query_key(node: NodeId, id: LiveQueryId) -> String {
    format!(
        "lq.{}.{}.{}",
        node.0, id.connection_id.0, id.subscription_id.0
    )
}

fn heartbeat_key(node: NodeId) -> String {
    format!("node.{}", node.0)
}

impl Inner {
    pub(super) async fn heartbeats(&self) -> Result<Vec<Heartbeat>, BridgeError> {
        let mut out = Vec::new();
        for (key, value) in read_prefix(
            &self.js,
            &self.records,
            "node.",
            self.config.connection.request_timeout,
        )
        .await?
        {
            match codec::decode_heartbeat(&value) {
                Ok(heartbeat) => out.push(heartbeat),
                Err(error) => {
                    self.report(BridgeError::Nats {
                        what: "decoding a heartbeat",
                        detail: format!("{key}: {error}"),
                    });
                }
            }
        }
        out.sort_by_key(|heartbeat| heartbeat.node_id);
        Ok(out)
    }

    pub(super) async fn remote_records(&self) -> Result<Vec<LiveQueryRecord>, BridgeError> {
        Ok(self
            .remote_record_revisions()
            .await?
            .into_iter()
            .map(|(_, record, _)| record)
            .collect())
    }

    /// The records in key-value, each with its key and the revision read.
    async fn remote_record_revisions(
        &self,
    ) -> Result<Vec<(String, LiveQueryRecord, u64)>, BridgeError> {
        let mut out = Vec::new();
        for entry in read_prefix_entries(
            &self.js,
            &self.records,
            "lq.",
            self.config.connection.request_timeout,
        )
        .await?
        {
            match codec::decode_record(&entry.value) {
                Ok(record) => out.push((entry.key, record, entry.revision)),
                Err(error) => self.report(BridgeError::Nats {
                    what: "decoding a live-query record",
                    detail: format!("{}: {error}", entry.key),
                }),
            }
        }
        Ok(out)
    }

    /// This node's record keys in key-value, read now.
    pub(super) async fn own_keys(&self) -> Result<HashSet<String>, BridgeError> {
        Ok(read_prefix(
            &self.js,
            &self.records,
            &format!("lq.{}.", self.config.node_id.0),
            self.config.connection.request_timeout,
        )
        .await?
        .into_iter()
        .map(|(key, _)| key)
        .collect())
    }

    /// Writes the heartbeat (if `heartbeat`); writes records that are new, changed status,
    /// or whose written heartbeat is older than half the staleness bound, or (given
    /// `present`, the keys of this node's records in key-value) that are missing from
    /// key-value; deletes ended ones.
    pub(super) async fn sync_records(
        &self,
        present: Option<HashSet<String>>,
        heartbeat: bool,
    ) -> Result<(), BridgeError> {
        let node = self.config.node_id;
        if heartbeat {
            let heartbeat = Heartbeat {
                node_id: node,
                wall_ms: wall_ms(),
                applied_stream_seq: self.counters.applied_stream_seq.load(Ordering::Acquire),
                applied_seq: self.applied_seq(),
                started_ms: self.started_ms,
            };
            self.records
                .put(
                    heartbeat_key(node),
                    Bytes::from(codec::encode_heartbeat(&heartbeat)),
                )
                .await
                .nats("writing the heartbeat")?;
        }
        // This node's records as key-value holds them: one marked written but missing (a
        // survivor deleted it while this node was taken for offline, or it was lost) is
        // written again now rather than at its refresh.
        if let Some(present) = present {
            lock(&self.written).retain(|id, _| present.contains(&live_query_key(node, *id)));
        }
        let refresh_ms = (self.config.live_query_stale_after.as_millis() as u64 / 2).max(1);
        let records = self.manager.live_query_records();
        let mut to_put = Vec::new();
        let mut to_delete = Vec::new();
        {
            let mut written = lock(&self.written);
            let mut seen = HashMap::with_capacity(records.len());
            for record in &records {
                let entry = written.get(&record.live_query_id).copied();
                let due = match entry {
                    None => true,
                    Some((status, heartbeat_ms)) => {
                        status != record.status
                            || record.last_heartbeat_ms.saturating_sub(heartbeat_ms) >= refresh_ms
                    }
                };
                if due {
                    to_put.push(record.clone());
                    seen.insert(
                        record.live_query_id,
                        (record.status, record.last_heartbeat_ms),
                    );
                } else if let Some(entry) = entry {
                    seen.insert(record.live_query_id, entry);
                }
            }
            for (id, entry) in written.iter() {
                if !seen.contains_key(id) {
                    to_delete.push((*id, *entry));
                }
            }
            *written = seen;
        }
        // Each record is marked written before its write is sent (a concurrent sync then
        // skips it); a write that fails is unmarked, with those after it, so the next sync
        // sends them again rather than leaving the record missing until its refresh.
        for (at, record) in to_put.iter().enumerate() {
            let put = self
                .records
                .put(
                    record_key(record),
                    Bytes::from(codec::encode_record(record)),
                )
                .await
                .nats("writing a live-query record");
            if let Err(error) = put {
                let mut written = lock(&self.written);
                for unsent in &to_put[at..] {
                    written.remove(&unsent.live_query_id);
                }
                return Err(error);
            }
        }
        for (at, (id, _)) in to_delete.iter().enumerate() {
            let deleted = self
                .records
                .delete(live_query_key(node, *id))
                .await
                .nats("deleting a live-query record");
            if let Err(error) = deleted {
                // Remembered again, so the next sync deletes them.
                lock(&self.written).extend(to_delete[at..].iter().copied());
                return Err(error);
            }
        }
        Ok(())
    }

    pub(super) async fn failover_pass(&self) -> Result<FailoverOutcome, BridgeError> {
        let local = self.config.node_id;
        let bound = (self.config.node_stale_after + self.config.max_clock_skew).as_millis() as u64;
        let now = wall_ms();
        let active_nodes: Vec<NodeId> = self
            .heartbeats()
            .await?
            .into_iter()
            .filter(|heartbeat| {
                heartbeat.node_id == local || now.saturating_sub(heartbeat.wall_ms) <= bound
            })
            .map(|heartbeat| heartbeat.node_id)
            .collect();
        let mut revisions = HashMap::new();
        let mut records: Vec<LiveQueryRecord> = Vec::new();
        // This node's own keys, as read: the next sync writes again those missing.
        let own_prefix = format!("lq.{}.", local.0);
        let mut own_keys = HashSet::new();
        for (key, record, revision) in self.remote_record_revisions().await? {
            if key.starts_with(&own_prefix) {
                own_keys.insert(key);
            } else if record.node_id != local {
                revisions.insert(record_key(&record), revision);
                records.push(record);
            }
        }
        *lock(&self.present_keys) = Some(own_keys);
        records.extend(self.manager.live_query_records());
        // Connection heartbeats of other nodes are their wall clocks: allow for skew.
        let handler = FailoverHandler::new(
            local,
            self.config.live_query_stale_after + self.config.max_clock_skew,
        );
        let report = handler.run_on(&self.manager, &records, &active_nodes);
        let orphaned: Vec<(String, Option<u64>)> = report
            .orphaned
            .iter()
            .map(|record| {
                let key = record_key(record);
                let revision = revisions.get(&key).copied();
                (key, revision)
            })
            .collect();
        let deleted = self.delete_records_at(&orphaned).await?;
        let mut active_nodes = active_nodes;
        if !active_nodes.contains(&local) {
            active_nodes.push(local);
            active_nodes.sort();
        }
        Ok(FailoverOutcome {
            active_nodes,
            report,
            ..deleted
        })
    }

    /// Whether `key` holds a value now, as the bucket's stream leader tells (a replica
    /// could still show a value another survivor just deleted).
    async fn record_present(&self, key: &str) -> Result<bool, BridgeError> {
        let subject = format!("{}{key}", self.records.prefix);
        match self
            .records
            .stream
            .get_last_raw_message_by_subject(&subject)
            .await
        {
            Ok(message) => Ok(message
                .headers
                .get("KV-Operation")
                .is_none_or(|operation| operation.as_str() == "PUT")),
            Err(error)
                if matches!(
                    error.kind(),
                    stream::LastRawMessageErrorKind::NoMessageFound
                ) =>
            {
                Ok(false)
            }
            Err(error) => Err(error).nats("reading an orphaned record again"),
        }
    }

    /// Deletes records, each at the revision read: one its node wrote again since (it came
    /// back, and may have reused the key) stays. A delete refused for the revision reads
    /// the key again: a value there is kept, none means another survivor deleted it first.
    /// A record without a revision read is left alone (never deleted unconditionally).
    /// Fills the outcome's record counts only.
    pub(super) async fn delete_records_at(
        &self,
        records: &[(String, Option<u64>)],
    ) -> Result<FailoverOutcome, BridgeError> {
        let mut outcome = FailoverOutcome::default();
        for (key, revision) in records {
            let Some(revision) = *revision else {
                continue;
            };
            match self
                .records
                .delete_expect_revision(key, Some(revision))
                .await
            {
                Ok(()) => outcome.deleted_records += 1,
                Err(error) if error.kind() == kv::DeleteErrorKind::WrongLastRevision => {
                    if self.record_present(key).await? {
                        outcome.kept_records += 1;
                    } else {
                        outcome.already_deleted_records += 1;
                    }
                }
                Err(error) => return Err(error).nats("deleting an orphaned record"),
            }
        }
        Ok(outcome)
    }
}

/// Every heartbeat interval: the heartbeat and records, a failover pass, then the node's
/// records the pass found missing from key-value written again. Errors are counted and the
/// loop goes on.
pub(super) async fn sync_loop(inner: Arc<Inner>) {
    let mut ticker = tokio::time::interval(inner.config.heartbeat_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        // The heartbeat first, on time whatever the pass's reads wait on.
        if let Err(error) = inner.sync_records(None, true).await {
            inner.report(error);
        }
        match inner.failover_pass().await {
            Ok(_) => {
                // The node's keys as the pass read them (after the writes above): no read
                // of its own, and a failed read never kept the records above from being
                // written. Those missing are written again now, not a tick later.
                let present = lock(&inner.present_keys).take();
                if let Some(present) = present {
                    if let Err(error) = inner.sync_records(Some(present), false).await {
                        inner.report(error);
                    }
                }
            }
            Err(error) => inner.report(error),
        }
    }
}
