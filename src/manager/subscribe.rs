//! Subscribe, unsubscribe, and the initial-load protocol.
//!
//! The protocol for a subscription with initial data, in order:
//!
//! 1. `subscribe` with `initial_load`: the subscription is indexed (so every later commit
//!    reaches its gate) before the call returns, and starts gated.
//! 2. The engine reads its snapshot SeqId and calls `set_snapshot_boundary`. Commits
//!    published meanwhile were buffered; those at or below the boundary are dropped.
//! 3. The engine sends the snapshot: itself, or through `push_snapshot_rows`, which filters
//!    and projects the rows and delivers them as snapshot batches ahead of live changes.
//! 4. `complete_initial_load` flushes the buffered changes above the boundary, in order,
//!    and makes the subscription live. Every change reaches the subscriber exactly once
//!    across the boundary, also when publishing races the completion.
//!
//! Resuming from a client's last SeqId replaces steps 2-3 with `replay_commit` for each
//! missed commit (or `resume_unavailable` when the engine cannot).

use std::collections::VecDeque;

use crate::config::MAX_COMMIT_CHANGES;
use crate::connection::delivery::{
    encode_match, source_for, Delivery, MatchBuilder, OtherDelivery, NO_BOUNDARY,
};
use crate::connection::gate::{GateError, LoadSoFar, Replay, SubscriptionFlowControl};
use crate::connection::state::{ConnectionState, LateLoad, SharedConnectionState};
use crate::connection::subscription::{
    NewSubscription, RegisteredSubscription, SubscriptionCore, SubscriptionHandle,
    SubscriptionOptions, SubscriptionResult, SubscriptionState,
};
use crate::connection::subscription_map::{SubscriptionMap, ENDED_SUBSCRIPTIONS_REMEMBERED};
use crate::error::{LiveError, LiveResult};
use crate::manager::ConnectionsManager;
use crate::publish::{change_delivery, send_change, DeliveryPolicy, PublishSummary};
use crate::query::membership::match_change;
use crate::query::parser::{may_name_a_boolean, BooleanColumns};
use crate::query::query_text::WrittenSql;
use crate::query::{CompiledQuery, Params, QuerySpec};
use crate::route::index::{placement_of, TableRoute};
use crate::stats::StatsCounters;
use crate::sync::mutant;
use crate::sync::{channel::TrySendError, lock, read, DataArc, LeanArc, Ordering};
use crate::types::change::{ChangeNotification, Commit};
use crate::types::ending::SubscriptionEnding;
use crate::types::ids::{ConnectionId, LiveQueryId, SeqId, SubscriptionId};
use crate::types::schema::TableScope;
use crate::types::shared_commit::{MatchedSource, SharedCommit};
use crate::types::value::Row;
use crate::validate::validate_change;

/// What one `push_snapshot_rows` call delivered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnapshotProgress {
    /// Rows taken from the input (delivered or filtered out).
    pub consumed: usize,
    /// Batches sent.
    pub batches: u32,
    /// Rows delivered (those passing the filter).
    pub rows: u64,
}

/// What completing an initial load did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InitialLoadReport {
    /// The snapshot boundary, if one was set; for a subscription that resumed, the SeqId
    /// it resumed from (or a later boundary set since).
    pub boundary: Option<SeqId>,
    /// Buffered changes flushed to the subscriber.
    pub flushed: u64,
    /// Changes dropped because the snapshot held them.
    pub covered_by_snapshot: u64,
    /// Snapshot batches delivered through livecore.
    pub batches: u32,
    /// Snapshot rows delivered through livecore.
    pub rows: u64,
}

impl ConnectionsManager {
    /// Opens a subscription for an authenticated connection: compiles the filter and
    /// projection against the table's schema (an unknown column is an error now, not at
    /// publish time) and indexes it before returning.
    ///
    /// What a plain subscription (no initial load, no resume) receives: every matching
    /// change of every commit whose `publish`/`publish_commit` call starts after this call
    /// returned. A commit published concurrently with this call may or may not reach it;
    /// once one does, every later one of the table does (its commits published one after
    /// another, in SeqId order): a subscription entering the index under several keys (an
    /// IN list) passes nothing until the last key is in. A host that needs an exact
    /// starting point uses the initial-load protocol
    /// ([`SubscriptionOptions::with_initial_load`]) or resume
    /// ([`SubscriptionOptions::resume_from`]).
    pub fn subscribe(
        &self,
        connection_id: ConnectionId,
        spec: QuerySpec,
        options: SubscriptionOptions,
    ) -> LiveResult<SubscriptionResult> {
        self.subscribe_query(
            connection_id,
            spec,
            (None, BooleanColumns::default()),
            options,
        )
    }

    /// Subscribes with `spec`, recording `sql` when the client wrote the query as SQL.
    /// `spec` as read from `sql` (when subscribed with SQL), its TRUE and FALSE read as
    /// `read_with` says.
    pub(crate) fn subscribe_query(
        &self,
        connection_id: ConnectionId,
        spec: QuerySpec,
        (sql, read_with): (Option<WrittenSql>, BooleanColumns),
        options: SubscriptionOptions,
    ) -> LiveResult<SubscriptionResult> {
        if self.is_shutting_down() {
            return Err(LiveError::ShuttingDown);
        }
        self.reap_closed_subscriptions();
        let connection = self.connection(connection_id)?;
        let user_key = connection
            .user_key()
            .ok_or(LiveError::NotAuthenticated(connection_id))?;
        if let Some(resume_from) = options.resume_from {
            check_boundary(resume_from, "resume position (SeqId)")?;
        }
        if options.batch_size == 0 || options.batch_size > self.config.max_snapshot_batch_size {
            return Err(LiveError::OutOfBounds {
                what: "snapshot batch size (rows)",
                value: options.batch_size as u64,
                min: 1,
                max: self.config.max_snapshot_batch_size as u64,
            });
        }
        let _lifecycle = read(&self.lifecycle);
        let directory = self.index.directory();
        let route = directory
            .route_named(&spec.table_id)
            .ok_or_else(|| LiveError::UnknownTable(spec.table_id.clone()))?;
        let mut spec = spec;
        // The words TRUE and FALSE were read for the schema before this lock: an ALTER
        // since then that changed which of them name columns found no subscription to
        // read again, so the text is read here for the schema it compiles against.
        if let Some(text) = sql
            .as_ref()
            .filter(|text| may_name_a_boolean(text.as_str()))
        {
            let words = BooleanColumns::of(&route.schema);
            if words != read_with {
                spec = self.read_sql_with(text.as_str(), words)?;
            }
        }
        // Named in another case: the subscription names the table as it was registered.
        spec.table_id.clone_from(&route.schema.table_id);
        let (query, params) = self.compile_query(spec, route)?;
        let owner = match route.schema.scope {
            TableScope::User => Some(user_key),
            TableScope::Shared => None,
        };
        // The slot the insert edits is asked for now, its bucket once the slot has had time
        // to arrive: both come in while the subscription is made (see `prefetch_slots`).
        let placement = placement_of(&query, &params, owner, &self.index.hasher);
        let slots_hint = route.prefetch_slots(&placement);
        let mut subscriptions = lock(&connection.subscriptions);
        // Checked under the subscription map's lock, which unregistering takes to set the
        // flag and empty the map: this subscription is either refused here or unrouted by it.
        if connection.is_closing() {
            return Err(self.not_registered_now(connection_id));
        }
        // Its receiver hands out nothing more: a subscription would never deliver.
        if connection.is_cut_off() {
            return Err(LiveError::ConnectionCutOff(connection_id));
        }
        // Released cores the receiver has not taken yet count too: they hold memory until
        // the connection's receiver reads past their deliveries (connection::core_ref).
        let held = subscriptions.len() + connection.release_backlog();
        if held >= self.config.max_subscriptions_per_connection {
            return Err(LiveError::SubscriptionLimitReached {
                connection_id,
                max: self.config.max_subscriptions_per_connection,
            });
        }
        let id = SubscriptionId(self.next_subscription.fetch_add(1, Ordering::Relaxed));
        // Under several keys, entered one by one: nothing passes until all are in.
        let several_keys = placement.key_count() > 1;
        let flow = if options.starts_gated() {
            SubscriptionFlowControl::gated(self.config.gate_buffer_capacity, options.resume_from)
        } else if several_keys {
            SubscriptionFlowControl::opening()
        } else {
            SubscriptionFlowControl::live()
        };
        route.prefetch_buckets(slots_hint, &placement);
        let now_ms = self.clock.now_ms();
        let core = LeanArc::new(SubscriptionCore::new(NewSubscription {
            id,
            query,
            params,
            sql,
            owner,
            flow,
            options: options.clone(),
            now_ms,
        }));
        let result = SubscriptionResult {
            live_query_id: core.live_query_id(connection_id),
            columns: core.query.projection.shared_column_names(),
            gated: options.starts_gated(),
            resume_from: options.resume_from,
        };
        {
            let _writer = (!mutant!("index_writer_unlocked")).then(|| lock(&route.writer));
            // Mutant: no writer lock. Two subscribes edit the table at once, and the
            // second one panics on the table's sole-writer check.
            route.insert_placed(
                SubscriptionHandle::first(core.clone(), connection.clone()),
                placement,
            );
        }
        if several_keys {
            core.flow.open();
        }
        subscriptions.insert(id, SubscriptionState { core });
        #[cfg(feature = "tracing")]
        tracing::debug!(live_query = %result.live_query_id, gated = result.gated, "livecore: subscribed");
        Ok(result)
    }

    /// The compiled template of `spec` on `route`'s schema (shared by every subscription
    /// whose query differs at most in its compared-against constants) and this
    /// subscription's own constants.
    fn compile_query(
        &self,
        spec: QuerySpec,
        route: &TableRoute,
    ) -> LiveResult<(DataArc<CompiledQuery>, Params)> {
        let params = spec.params();
        let query = self.shared_compiled_query(spec, route)?;
        Ok((query, params))
    }

    /// Ends a subscription. When this returns it has left the routing index, and the
    /// connection's receiver hands out nothing more of it, even what was already queued.
    /// On a subscription livecore already ended it succeeds too, and the connection forgets
    /// how that one ended; its terminal notice, if not handed out yet, is then not handed
    /// out.
    pub fn unsubscribe(&self, live_query_id: LiveQueryId) -> LiveResult<()> {
        let connection = self.connection(live_query_id.connection_id)?;
        let _lifecycle = read(&self.lifecycle);
        let id = live_query_id.subscription_id;
        let state = {
            let mut subscriptions = lock(&connection.subscriptions);
            match subscriptions.remove(&id) {
                // Ended for the receiver before the map is let go: a revocation that finds
                // it gone from the map and returns must not see a later commit of it handed
                // out while it waits to be unrouted.
                Some(state) => {
                    // Mutant: marked removed only when unrouted, after the map is let go.
                    if !mutant!("unsubscribe_removes_after_map") {
                        state.core.remove();
                    }
                    state
                }
                None => match subscriptions.forget_ending(&id) {
                    // Livecore ended it: the host's unsubscribe still ends it for the
                    // receiver, which then drops its terminal notice if not yet handed out.
                    Some(core) => {
                        core.remove();
                        return Ok(());
                    }
                    None => return Err(LiveError::UnknownSubscription(id)),
                },
            }
        };
        self.unroute(&state.core);
        #[cfg(feature = "tracing")]
        tracing::debug!(live_query = %live_query_id, "livecore: unsubscribed");
        Ok(())
    }

    /// Removes a subscription from the index and closes it so receivers skip what is left.
    /// The caller holds `lifecycle` shared.
    pub(crate) fn unroute(&self, core: &LeanArc<SubscriptionCore>) {
        core.remove();
        self.remove_from_index(core);
    }

    /// Ends a subscription on livecore's initiative: its gate closes (receivers skip what
    /// is queued), the subscriber gets `ending` as its one terminal notice, and the
    /// connection remembers how it ended. False (and no notice) when it had already ended.
    ///
    /// The caller holds `lifecycle` and the connection's map (`subscriptions`), out of
    /// which it has just taken the subscription: the ending is remembered under that same
    /// lock, so a call on the subscription meanwhile finds it ended, never unknown. The
    /// caller then takes it out of the index ([`remove_from_index`](Self::remove_from_index)),
    /// after letting the map go.
    pub(crate) fn end_in_map(
        &self,
        subscriptions: &mut SubscriptionMap,
        core: &LeanArc<SubscriptionCore>,
        connection: &SharedConnectionState,
        ending: SubscriptionEnding,
    ) -> bool {
        let ended = self.end_once(core, connection, ending.clone());
        let remembered = self.endings_remembered();
        if ended {
            subscriptions.remember_ending(core, ending, remembered);
        } else if !core.is_removed() {
            // Ended earlier by a gate overflow and not yet reaped: it must resync.
            subscriptions.remember_ending(core, SubscriptionEnding::ResyncRequired, remembered);
        }
        ended
    }

    /// How many endings each connection remembers (see [`ENDED_SUBSCRIPTIONS_REMEMBERED`]).
    pub(crate) fn endings_remembered(&self) -> usize {
        ENDED_SUBSCRIPTIONS_REMEMBERED.max(self.config.max_subscriptions_per_connection)
    }

    /// Ends `core` and posts its terminal notice, only if this call is the one that ended
    /// it (a resync is then counted in the stats). The caller remembers the ending on the
    /// connection when it takes the subscription out of the map.
    pub(crate) fn end_once(
        &self,
        core: &LeanArc<SubscriptionCore>,
        connection: &crate::connection::state::ConnectionState,
        ending: SubscriptionEnding,
    ) -> bool {
        connection.end_subscription(core, ending, &self.stats)
    }

    /// Takes a subscription out of its table's routes. The caller holds `lifecycle`.
    pub(crate) fn remove_from_index(&self, core: &LeanArc<SubscriptionCore>) {
        self.index.with_directory(|directory| {
            if let Some(route) = directory.route(core.query.table_key) {
                let _writer = lock(&route.writer);
                route.remove(core, &self.index.hasher);
            }
        });
    }

    /// The live subscriptions of one connection: one a gate overflow ended is not listed
    /// (as `stats()` and the live-query records do not count it).
    pub fn subscriptions_of(
        &self,
        connection_id: ConnectionId,
    ) -> LiveResult<Vec<RegisteredSubscription>> {
        let connection = self.connection(connection_id)?;
        let subscriptions = lock(&connection.subscriptions);
        let mut listed: Vec<_> = subscriptions
            .values()
            .filter(|state| !state.core.is_ended())
            .map(|state| state.registered(&connection))
            .collect();
        listed.sort_by_key(|registered| registered.live_query_id);
        Ok(listed)
    }

    /// One subscription, by its id.
    pub fn subscription(&self, live_query_id: LiveQueryId) -> LiveResult<RegisteredSubscription> {
        self.with_state(live_query_id, |connection, state| {
            Ok(state.registered(connection))
        })
    }

    /// Step 2 of the load protocol: the SeqId of the engine's snapshot. Buffered changes
    /// at or below it are dropped (the snapshot holds them), and so are later arrivals.
    /// It may be set again, at the same SeqId or a later one (a snapshot taken again);
    /// a lower one is [`LiveError::InvalidState`], since what the first boundary dropped
    /// would then be in neither the snapshot nor the stream. Completing the load without
    /// a boundary is allowed: every buffered change is then delivered. A boundary above
    /// [`MAX_SNAPSHOT_BOUNDARY`](crate::MAX_SNAPSHOT_BOUNDARY) is
    /// [`LiveError::OutOfBounds`].
    pub fn set_snapshot_boundary(
        &self,
        live_query_id: LiveQueryId,
        boundary: SeqId,
    ) -> LiveResult<()> {
        check_boundary(boundary, "snapshot boundary (SeqId)")?;
        self.with_state(live_query_id, |_, state| {
            let covered = state
                .core
                .flow
                .set_boundary(boundary)
                .map_err(|error| gate_error(live_query_id, error))?;
            StatsCounters::add(&self.stats.covered_by_snapshot, covered);
            Ok(())
        })
    }

    /// Step 3, when livecore delivers the snapshot: filters and projects `rows` and sends
    /// them in batches of the subscription's batch size, ahead of any live change. When the
    /// channel fills, returns [`LiveError::WouldBlock`] with how many rows were taken;
    /// call again with the rest once the receiver has drained.
    ///
    /// Tenancy: rows carry no owner, so on a user-scoped table livecore cannot check whose
    /// they are. The engine must pass only rows owned by the subscribing connection's user
    /// (the snapshot query it runs is scoped to that user); livecore filters and projects
    /// what it is given and delivers it as is.
    pub fn push_snapshot_rows(
        &self,
        live_query_id: LiveQueryId,
        rows: &[Row],
    ) -> LiveResult<SnapshotProgress> {
        self.with_state_mut(live_query_id, |connection, state| {
            let core = state.core.clone();
            if !core.flow.is_gated() {
                return Err(match why_not_gated(&core.flow) {
                    GateError::AlreadyLive => LiveError::InvalidState {
                        subscription_id: live_query_id.subscription_id,
                        reason: "snapshot rows are only accepted during the initial load",
                    },
                    closed => gate_error(live_query_id, closed),
                });
            }
            let expected = core.query.schema.columns.len();
            if let Some(row) = rows.iter().find(|row| row.len() != expected) {
                return Err(LiveError::RowArity {
                    table: core.query.schema.table_id.clone(),
                    expected,
                    got: row.len(),
                });
            }
            let mut progress = SnapshotProgress::default();
            for chunk in rows.chunks(core.options.batch_size()) {
                let batch: Vec<Row> = chunk
                    .iter()
                    .filter(|row| {
                        core.query
                            .filter
                            .as_ref()
                            .is_none_or(|filter| filter.matches(row, &core.params))
                    })
                    .map(|row| core.query.projection.apply(row))
                    .collect();
                if !batch.is_empty() {
                    let delivered = batch.len() as u64;
                    let rows = DataArc::from(batch);
                    let sent = core.flow.send_snapshot_batch(delivered, |number| {
                        let delivery = Delivery::other(OtherDelivery::Snapshot {
                            core: core.clone(),
                            batch: number,
                            rows,
                        });
                        connection.notification_tx.try_send(delivery)
                    });
                    match sent {
                        Some(Ok(())) => connection.notify_ready(),
                        Some(Err(TrySendError::Full(_))) => {
                            return Err(channel_full(connection, core.id, progress.consumed))
                        }
                        Some(Err(TrySendError::Disconnected(_))) => {
                            return Err(receiver_dropped(core.id))
                        }
                        // A publish overflowed the gate since the check above: the load
                        // failed, and the subscriber is told to resync.
                        None => return Err(gate_error(live_query_id, GateError::Closed)),
                    }
                    progress.batches += 1;
                    progress.rows += delivered;
                    StatsCounters::add(&self.stats.snapshot_batches, 1);
                }
                progress.consumed += chunk.len();
            }
            Ok(progress)
        })
    }

    /// Step 4: flushes the changes buffered above the boundary, in order, and makes the
    /// subscription live. The subscriber first gets `InitialLoadComplete`, after the
    /// snapshot batches and before any change of the subscription. It never waits for room
    /// in the channel: a marker that finds it full goes to the receiver out of band, with
    /// the buffered changes behind it (nothing is dropped, and no connection is cut off),
    /// and the receiver hands them out once what was queued before them is processed, or
    /// before the subscription's next change (such a marker counts against the
    /// connection's subscription limit until the receiver takes it). If the gate's buffer
    /// overflowed meanwhile, returns [`LiveError::SubscriptionEnded`] with `ResyncRequired`
    /// and no marker is sent (the subscriber gets `ResyncRequired`). A connection cut off
    /// as a slow consumer is [`LiveError::InvalidState`].
    pub fn complete_initial_load(
        &self,
        live_query_id: LiveQueryId,
    ) -> LiveResult<InitialLoadReport> {
        self.with_state(live_query_id, |connection, state| {
            let core = &state.core;
            if !core.flow.is_gated() {
                return Err(gate_error(live_query_id, why_not_gated(&core.flow)));
            }
            // None when the subscription's handles are all gone: it was unrouted, so its gate
            // is closed and the flush below sends nothing.
            let handle = SubscriptionHandle::new(core.clone(), connection.clone());
            let now_ms = self.clock.now_ms();
            let mut summary = PublishSummary::default();
            // The marker is queued under the gate's lock once the load is known to be still
            // running: a gate that overflowed meanwhile sends no marker ahead of its
            // ResyncRequired, and the marker goes ahead of the flushed changes.
            let mut progress = (0, 0);
            // Held changes sent under the gate's lock, through the channel or out of band.
            let mut held_out_of_band = 0u64;
            let send_marker = |so_far: &mut LoadSoFar, held_sent: &mut u64| {
                let marker = Delivery::other(OtherDelivery::LoadComplete {
                    core: core.clone(),
                    boundary: so_far.boundary.map_or(NO_BOUNDARY, |boundary| boundary.0),
                    batches: so_far.snapshot_batches,
                    rows: so_far.snapshot_rows,
                });
                // No room: the marker goes to the receiver out of band, rather than the host
                // retrying against live traffic that may take every freed slot.
                let late_marker = match connection.notification_tx.try_send(marker) {
                    Ok(()) => {
                        connection.notify_ready();
                        None
                    }
                    // A cut-off connection's channel stays full: nothing more is handed out.
                    Err(TrySendError::Full(_)) if connection.is_cut_off() => {
                        return Err(channel_full(connection, core.id, 0))
                    }
                    Err(TrySendError::Full(marker)) => marker.into_other(),
                    Err(TrySendError::Disconnected(_)) => return Err(receiver_dropped(core.id)),
                };
                // The held changes follow the marker: through the channel while it has room
                // (and the marker went that way), the rest out of band behind it, numbered
                // as if sent. Into a full channel they would be dropped, or cut the
                // connection off. (No handle: the subscription was unrouted, and nothing of
                // it is sent.)
                let mut held = match &handle {
                    Some(_) => std::mem::take(&mut so_far.buffered),
                    None => VecDeque::new(),
                };
                if let (None, Some(handle)) = (&late_marker, &handle) {
                    while let Some(first) = held.front() {
                        if send_replayed(handle, first.commit.clone(), first.matched, now_ms)
                            .is_err()
                        {
                            break;
                        }
                        held.pop_front();
                        *held_sent += 1;
                    }
                }
                if late_marker.is_none() && held.is_empty() {
                    return Ok(());
                }
                let after_attempt = core.attempts_made();
                let held: Vec<_> = held
                    .into_iter()
                    .map(|held| {
                        // The change set names the projection uncounted.
                        held.commit.keep_alive(&core.query.projection);
                        core.next_attempt();
                        (held.commit, held.matched)
                    })
                    .collect();
                if !held.is_empty() {
                    core.record_delivered(now_ms);
                }
                *held_sent += held.len() as u64;
                connection.post_load_marker(LateLoad {
                    core: core.clone(),
                    marker: late_marker,
                    after_attempt,
                    held,
                });
                Ok(())
            };
            // Mutant: the marker queued before the gate's lock is taken (as before the
            // fix); a gate overflow in between sends ResyncRequired after it.
            let early_marker = mutant!("load_marker_before_gate_lock");
            if early_marker {
                send_marker(&mut LoadSoFar::default(), &mut held_out_of_band)?;
            }
            let announce = |so_far: &mut LoadSoFar| {
                progress = (so_far.snapshot_batches, so_far.snapshot_rows);
                if early_marker {
                    return Ok(());
                }
                send_marker(so_far, &mut held_out_of_band)
            };
            let completed = core
                .flow
                .complete_announced(announce, |held| {
                    let Some(handle) = &handle else {
                        return;
                    };
                    // The change set names the projection uncounted: the commit keeps it.
                    held.commit.keep_alive(&handle.core.query.projection);
                    send_change(
                        handle,
                        MatchedSource::new(held.commit, held.matched),
                        now_ms,
                        DeliveryPolicy {
                            slow_consumer: self.config.slow_consumer_policy,
                            ready_queue: self.config.ready_queue,
                        },
                        &mut summary,
                    )
                })
                // Closed: the gate overflowed since the check above, and the subscriber was
                // told to resync.
                .map_err(|error| gate_error(live_query_id, error))??;
            StatsCounters::add(
                &self.stats.delivered,
                summary.enqueued as u64 + held_out_of_band,
            );
            self.stats
                .add_drops(summary.dropped, summary.dropped_closed);
            Ok(InitialLoadReport {
                boundary: completed.boundary,
                flushed: completed.flushed,
                covered_by_snapshot: completed.covered_by_snapshot,
                batches: progress.0,
                rows: progress.1,
            })
        })
    }

    /// Resume: hands one commit the client missed to a gated subscription. Its changes are
    /// filtered for this subscription alone and sent straight into the connection's
    /// channel, ahead of the live changes buffered meanwhile, so a client any distance
    /// behind can resume: replayed commits never take room in the gate's buffer. Replay in
    /// log order (SeqId ascending): a commit at or below the resume point or the highest
    /// commit already replayed is ignored, and a live publish at or below the highest
    /// replayed SeqId is taken for a commit the replay already delivered and dropped,
    /// before and after the load completes. Returns whether any change matched and was
    /// sent. When the channel is full, returns [`LiveError::WouldBlock`] and nothing is
    /// recorded: call again with the same commit once the receiver has drained. On
    /// user-scoped tables, other users' rows are ignored.
    ///
    /// The gate's buffer ([`ManagerConfig::gate_buffer_capacity`](crate::ManagerConfig))
    /// still bounds the live commits published while the replay runs; past it the
    /// subscriber gets `ResyncRequired` and later calls return
    /// [`LiveError::SubscriptionEnded`].
    pub fn replay_commit(
        &self,
        live_query_id: LiveQueryId,
        seq: SeqId,
        changes: Vec<ChangeNotification>,
    ) -> LiveResult<bool> {
        if changes.len() > MAX_COMMIT_CHANGES {
            return Err(LiveError::CommitTooLarge {
                changes: changes.len(),
                max: MAX_COMMIT_CHANGES,
            });
        }
        self.with_state(live_query_id, |connection, state| {
            let core = &state.core;
            let schema = &core.query.schema;
            let owner_id = connection.user().map(|user| user.user_id);
            let filter = core.query.filter.as_ref();
            let mut matches = MatchBuilder::new();
            for (position, change) in changes.iter().enumerate() {
                if change.table_id != schema.table_id {
                    continue;
                }
                validate_change(schema, change)?;
                if schema.scope == TableScope::User && change.owner != owner_id {
                    continue;
                }
                let mut evaluated = 0;
                let delivered = match_change(filter, &core.params, change, &mut evaluated);
                if let Some(change_type) = delivered {
                    matches.push(encode_match(position, change_type));
                }
            }
            let commit = SharedCommit::new(Commit::new(seq, changes));
            let send = || {
                if matches.is_empty() {
                    return Ok(false);
                }
                // Sent through a handle, so the core's release waits for it; none when the
                // subscription's handles are all gone (it was unrouted: it has ended).
                let Some(handle) = SubscriptionHandle::new(core.clone(), connection.clone()) else {
                    return Err(LiveError::SubscriptionEnded {
                        subscription_id: live_query_id.subscription_id,
                        ending: SubscriptionEnding::ResyncRequired,
                    });
                };
                let (source, matched) = source_for(commit, &matches);
                send_replayed(&handle, source, matched, self.clock.now_ms())?;
                StatsCounters::add(&self.stats.delivered, 1);
                Ok(true)
            };
            match core.flow.replay(seq, send) {
                Ok(Ok((replayed, covered))) => {
                    StatsCounters::add(&self.stats.covered_by_snapshot, covered);
                    Ok(replayed == Replay::Sent)
                }
                Ok(Err(error)) => Err(error),
                Err(error) => Err(gate_error(live_query_id, error)),
            }
        })
    }

    /// Resume: the engine cannot replay from the subscription's SeqId. The subscriber gets
    /// `ResumeUnavailable` and the subscription ends. Only while the subscription is gated
    /// (its resume or initial load has not completed): afterwards it is
    /// [`LiveError::InvalidState`], on a subscription livecore ended
    /// [`LiveError::SubscriptionEnded`].
    pub fn resume_unavailable(&self, live_query_id: LiveQueryId) -> LiveResult<()> {
        let connection = self.connection(live_query_id.connection_id)?;
        let _lifecycle = read(&self.lifecycle);
        let id = live_query_id.subscription_id;
        let (state, ended) = {
            let mut subscriptions = lock(&connection.subscriptions);
            let flow = &active_state(&mut subscriptions, id)?.core.flow;
            if !flow.is_gated() {
                return Err(gate_error(live_query_id, why_not_gated(flow)));
            }
            let state = subscriptions
                .remove(&id)
                .expect("found above, under the same lock");
            let ended = self.end_in_map(
                &mut subscriptions,
                &state.core,
                &connection,
                SubscriptionEnding::ResumeUnavailable,
            );
            (state, ended)
        };
        self.remove_from_index(&state.core);
        if !ended {
            // A gate overflow ended it since the check above: the subscriber was told to
            // resync, not that resume is unavailable.
            return Err(gate_error(live_query_id, GateError::Closed));
        }
        Ok(())
    }

    /// Unroutes subscriptions that livecore ended on the publish path (gate overflow).
    pub(crate) fn reap_closed_subscriptions(&self) {
        let ended = self.reap.take();
        if ended.is_empty() {
            return;
        }
        let _lifecycle = read(&self.lifecycle);
        for live_query_id in ended {
            // Not `connection`, which may wait for a shutdown's close: that close takes the
            // lifecycle lock held here.
            let Some(connection) = self.registered(live_query_id.connection_id) else {
                continue;
            };
            let state = {
                let mut subscriptions = lock(&connection.subscriptions);
                match subscriptions.get(&live_query_id.subscription_id) {
                    Some(state) if state.core.flow.is_closed() => subscriptions.remove_ended(
                        &live_query_id.subscription_id,
                        SubscriptionEnding::ResyncRequired,
                        self.endings_remembered(),
                    ),
                    _ => None,
                }
            };
            if let Some(state) = state {
                self.remove_from_index(&state.core);
            }
        }
    }

    fn with_state<T>(
        &self,
        live_query_id: LiveQueryId,
        visit: impl FnOnce(&SharedConnectionState, &SubscriptionState) -> LiveResult<T>,
    ) -> LiveResult<T> {
        self.with_state_mut(live_query_id, |connection, state| visit(connection, state))
    }

    fn with_state_mut<T>(
        &self,
        live_query_id: LiveQueryId,
        visit: impl FnOnce(&SharedConnectionState, &mut SubscriptionState) -> LiveResult<T>,
    ) -> LiveResult<T> {
        let connection = self.connection(live_query_id.connection_id)?;
        let _lifecycle = read(&self.lifecycle);
        let mut subscriptions = lock(&connection.subscriptions);
        let state = active_state(&mut subscriptions, live_query_id.subscription_id)?;
        visit(&connection, state)
    }
}

/// The state of subscription `id` in its connection's map, unless livecore ended it (then
/// how it ended) or the connection does not know it.
fn active_state(
    subscriptions: &mut SubscriptionMap,
    id: SubscriptionId,
) -> LiveResult<&mut SubscriptionState> {
    let ended = |ending| LiveError::SubscriptionEnded {
        subscription_id: id,
        ending,
    };
    if let Some(ending) = subscriptions.ending_of(&id) {
        return Err(ended(ending));
    }
    let state = subscriptions
        .get_mut(&id)
        .ok_or(LiveError::UnknownSubscription(id))?;
    // Only a gate overflow leaves an ended subscription in the map (until the next writer
    // call reaps it): the subscriber was told to resync, or is about to be (the gate closes
    // before the publisher ends the subscription).
    if state.core.is_ended() || state.core.flow.is_closed() {
        return Err(ended(SubscriptionEnding::ResyncRequired));
    }
    Ok(state)
}

/// The error of a load-protocol call its gate refused. A closed gate is a subscription
/// that ended after the call found it active: as in [`active_state`], only a gate
/// overflow does that while the subscription is still in its connection's map.
fn gate_error(live_query_id: LiveQueryId, error: GateError) -> LiveError {
    match error {
        GateError::AlreadyLive => LiveError::InvalidState {
            subscription_id: live_query_id.subscription_id,
            reason: "the initial load has already completed",
        },
        GateError::Closed => LiveError::SubscriptionEnded {
            subscription_id: live_query_id.subscription_id,
            ending: SubscriptionEnding::ResyncRequired,
        },
        GateError::BoundaryMovedBack => LiveError::InvalidState {
            subscription_id: live_query_id.subscription_id,
            reason: "the snapshot boundary may stay or move forward, not back: changes \
                     above the new one may already have been dropped as covered",
        },
    }
}

/// Why a gate that is not gated refuses a load-protocol step.
/// A load's send found the connection's channel full: [`LiveError::WouldBlock`], for the
/// host to retry once the receiver drained, unless the connection was cut off as a slow
/// consumer, whose channel stays full until the host unregisters it (retrying would spin).
fn channel_full(
    connection: &ConnectionState,
    subscription_id: SubscriptionId,
    consumed: usize,
) -> LiveError {
    if connection.is_cut_off() {
        LiveError::InvalidState {
            subscription_id,
            reason: "its connection was cut off as a slow consumer: unregister the connection",
        }
    } else {
        LiveError::WouldBlock { consumed }
    }
}

/// A load's send found the connection's receiver dropped: nothing sent to the connection can
/// be read again, so retrying is pointless. The connection itself is still registered (the
/// host unregisters it), so this is not [`LiveError::UnknownConnection`].
fn receiver_dropped(subscription_id: SubscriptionId) -> LiveError {
    LiveError::InvalidState {
        subscription_id,
        reason: "its connection's notification receiver was dropped: unregister the connection",
    }
}

fn why_not_gated(flow: &SubscriptionFlowControl) -> GateError {
    if flow.is_live() {
        GateError::AlreadyLive
    } else {
        GateError::Closed
    }
}

/// Sends a replayed commit into the subscription's channel, numbered like any change
/// delivery. A full channel takes nothing (the number is given back) and is
/// [`LiveError::WouldBlock`], for the host to retry. The caller holds the gate's lock,
/// which serializes this with the flush; no live send runs while the gate is closed.
fn send_replayed(
    handle: &SubscriptionHandle,
    source: SharedCommit,
    matched: u32,
    now_ms: u64,
) -> LiveResult<()> {
    let (core, connection) = (&handle.core, &handle.connection);
    // The change set names the projection uncounted: the commit keeps it.
    source.keep_alive(&core.query.projection);
    let attempt = core.next_attempt();
    let delivery = change_delivery(core, MatchedSource::new(source, matched), attempt);
    match connection.notification_tx.try_send(delivery) {
        Ok(()) => {
            core.record_delivered(now_ms);
            connection.notify_ready();
            Ok(())
        }
        Err(TrySendError::Full(_)) => {
            core.retract_attempt(attempt);
            Err(channel_full(connection, core.id, 0))
        }
        Err(TrySendError::Disconnected(_)) => {
            core.retract_attempt(attempt);
            Err(receiver_dropped(core.id))
        }
    }
}

/// Refuses a SeqId the gate cannot hold as a boundary: the gate word keeps the boundary
/// plus one below its two state values, so a larger one would be cut to the largest it
/// holds, and changes the snapshot covers would be delivered again.
fn check_boundary(seq: SeqId, what: &'static str) -> LiveResult<()> {
    if seq.0 > crate::MAX_SNAPSHOT_BOUNDARY {
        return Err(LiveError::OutOfBounds {
            what,
            value: seq.0,
            min: 0,
            max: crate::MAX_SNAPSHOT_BOUNDARY,
        });
    }
    Ok(())
}
