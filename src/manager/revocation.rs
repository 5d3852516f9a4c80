//! Revocation: ending every subscription of a user or of a table in one call. The affected
//! subscribers get a typed ending (`Closed` with the reason, or `ResyncRequired` when the
//! host lost commits), and nothing of theirs is delivered after the call returns (their
//! gates are closed before it does).

use crate::connection::state::SharedConnectionState;
use crate::connection::subscription::{SubscriptionCore, SubscriptionHandle};
use crate::error::{LiveError, LiveResult};
use crate::manager::ConnectionsManager;
use crate::sync::mutant;
use crate::sync::{lock, read, write, LeanArc};
use crate::types::ending::CloseReason;
use crate::types::ending::SubscriptionEnding;
use crate::types::ids::{LiveQueryId, SubscriptionId, TableId, UserId};

impl ConnectionsManager {
    /// Ends every subscription of every connection authenticated as `user` (token expired,
    /// permission revoked). Each subscriber gets `Closed { reason: Revoked }`. Returns how
    /// many subscriptions ended.
    ///
    /// Revocation ends what exists; it bars nothing new. The connections stay registered
    /// and authenticated, their topic consumer sessions untouched, and a subscribe that
    /// races this call may land on either side of it (one returning after this call
    /// returns stays). A host keeping the user out stops accepting its subscribes first,
    /// or unregisters its connections (which ends their consumer sessions too).
    pub fn revoke_user(&self, user: &UserId, reason: &str) -> usize {
        let _lifecycle = read(&self.lifecycle);
        let revoked = CloseReason::Revoked {
            reason: reason.to_string(),
        };
        let mut ended = 0;
        for connection in self.all_connections() {
            if connection.user_id().as_ref() != Some(user) {
                continue;
            }
            // Taken out of the map and ended under one lock: a call on one of them
            // meanwhile finds it ended, not unknown.
            let states = {
                let mut subscriptions = lock(&connection.subscriptions);
                let states = subscriptions.take_all();
                // Mutant: the map let go between taking and ending them (the bug this
                // fixed); a lookup in between finds the subscriptions unknown.
                if mutant!("revoke_ends_outside_map") {
                    drop(subscriptions);
                    subscriptions = lock(&connection.subscriptions);
                }
                for state in &states {
                    let notice = SubscriptionEnding::Closed(revoked.clone());
                    if self.end_in_map(&mut subscriptions, &state.core, &connection, notice) {
                        ended += 1;
                    }
                }
                states
            };
            for state in states {
                self.remove_from_index(&state.core);
            }
        }
        #[cfg(feature = "tracing")]
        tracing::info!(user = %user, reason, ended, "livecore: user revoked");
        ended
    }

    /// Ends every subscription on `table` (permission on the table withdrawn); the table
    /// stays registered. Each subscriber gets `Closed { reason: Revoked }`. Returns how
    /// many subscriptions ended. As with [`revoke_user`](Self::revoke_user), later
    /// subscribes to the table are the host's to refuse; [`drop_table`](Self::drop_table)
    /// refuses them itself.
    pub fn revoke_table(&self, table_id: &TableId, reason: &str) -> LiveResult<usize> {
        let _lifecycle = read(&self.lifecycle);
        let reason = CloseReason::Revoked {
            reason: reason.to_string(),
        };
        let ended = self.end_table_subscriptions(table_id, |_| {
            Some(SubscriptionEnding::Closed(reason.clone()))
        });
        #[cfg(feature = "tracing")]
        tracing::info!(table = %table_id, ?reason, ended = ?ended, "livecore: table revoked");
        ended
    }

    /// Drops a table: every subscription on it ends with `Closed { reason: TableDropped }`,
    /// its topic routes are removed, and the table is unregistered (publishing to it, or
    /// subscribing, is then `UnknownTable`; registering it again starts afresh). Returns
    /// how many subscriptions ended.
    pub fn drop_table(&self, table_id: &TableId) -> LiveResult<usize> {
        // Exclusive, so no subscription to the table can slip in while it is dropped.
        let _lifecycle = write(&self.lifecycle);
        let ended = self.end_table_subscriptions(table_id, |_| {
            Some(SubscriptionEnding::Closed(CloseReason::TableDropped))
        })?;
        self.drop_topic_routes_of(table_id);
        self.index.remove_table(table_id);
        #[cfg(feature = "tracing")]
        tracing::info!(table = %table_id, ended, "livecore: table dropped");
        Ok(ended)
    }

    /// Ends every subscription on `table_id` with `ResyncRequired`, for a host that lost
    /// commits of the table before publishing them: a replicated log that no longer holds
    /// commits a node had not applied yet, a commit that could not be decoded or applied.
    /// What those subscribers hold may then be stale with nothing to tell them, and a gap
    /// notice would not do: resuming needs the lost commits. A fresh initial load makes
    /// them whole again. Returns how many subscriptions ended; nothing of theirs is
    /// delivered after the call returns. The table stays registered, and later
    /// subscriptions that load afresh are untouched; a later *resume* from a SeqId before
    /// the loss cannot be made whole either, and the host answers it `ResumeUnavailable`
    /// (its replay source lacks the lost commits). `UnknownTable` for a table not
    /// registered.
    pub fn resync_table(&self, table_id: &TableId) -> LiveResult<usize> {
        let _lifecycle = read(&self.lifecycle);
        let ended =
            self.end_table_subscriptions(table_id, |_| Some(SubscriptionEnding::ResyncRequired));
        #[cfg(feature = "tracing")]
        tracing::warn!(table = %table_id, ended = ?ended, "livecore: table's subscriptions must resync");
        ended
    }

    /// Ends the subscriptions on `table_id` that read one of `columns` (in their filter or
    /// their projection, `SELECT *` included) with `Closed { SchemaChanged { column } }`,
    /// for a host whose database changed the columns' values without a row change it
    /// would publish: a column's type changed (`ALTER COLUMN ... TYPE` converts every
    /// value: `12.50` becomes `12.500`), or a name now belongs to another column. What
    /// those subscribers hold may be stale, their filters' verdicts on it wrong, with no
    /// change to tell them; subscriptions that read none of the columns are untouched.
    /// Call it after registering the schema the table now has (a schema lists names
    /// only, so [`register_table`](Self::register_table) cannot see a change of type).
    /// Returns how many subscriptions ended; nothing of theirs is delivered after the call
    /// returns. Names match ignoring ASCII case, as in queries; `UnknownTable` for a table
    /// not registered, `UnknownColumn` for a name its schema does not have (nothing ends
    /// then).
    pub fn columns_rewritten<S: AsRef<str>>(
        &self,
        table_id: &TableId,
        columns: &[S],
    ) -> LiveResult<usize> {
        let _lifecycle = read(&self.lifecycle);
        let schema = self.table_schema(table_id)?;
        // The schema's spelling of each, for the closing notice.
        let rewritten = columns
            .iter()
            .map(|column| {
                let column = column.as_ref();
                schema
                    .column_position(column)
                    .map(|position| &*schema.columns[position].name)
                    .ok_or_else(|| LiveError::UnknownColumn {
                        table: table_id.clone(),
                        column: column.to_string(),
                    })
            })
            .collect::<LiveResult<Vec<&str>>>()?;
        if rewritten.is_empty() {
            return Ok(0);
        }
        let ended = self.end_table_subscriptions(table_id, |core| {
            let column = core.query.spec.first_read_of(&rewritten)?;
            Some(SubscriptionEnding::Closed(CloseReason::SchemaChanged {
                column: column.to_string(),
            }))
        });
        #[cfg(feature = "tracing")]
        tracing::info!(table = %table_id, columns = ?rewritten, ended = ?ended, "livecore: columns rewritten");
        ended
    }

    /// Ends one live query with `ending`, told to its subscriber as revocations are (a
    /// failover pass ending a subscription whose connection fell silent). `Ok(false)` when
    /// it had already ended or gone.
    pub(crate) fn end_live_query(
        &self,
        live_query_id: LiveQueryId,
        ending: SubscriptionEnding,
    ) -> LiveResult<bool> {
        let connection = self.connection(live_query_id.connection_id)?;
        let _lifecycle = read(&self.lifecycle);
        Ok(self.take_and_end(&connection, live_query_id.subscription_id, |_| true, ending))
    }

    /// Takes subscription `id` out of `connection`'s map when `is_it` accepts the one found
    /// there, ends it with `ending` under the map's lock (a call on it meanwhile finds it
    /// ended, never unknown), then takes it out of the index. True when it ended now; false
    /// when it was not there, not the one, or had already ended. The caller holds
    /// `lifecycle`.
    fn take_and_end(
        &self,
        connection: &SharedConnectionState,
        id: SubscriptionId,
        is_it: impl FnOnce(&LeanArc<SubscriptionCore>) -> bool,
        ending: SubscriptionEnding,
    ) -> bool {
        let (state, ended) = {
            let mut subscriptions = lock(&connection.subscriptions);
            if !subscriptions
                .get(&id)
                .is_some_and(|state| is_it(&state.core))
            {
                return false;
            }
            let Some(state) = subscriptions.remove(&id) else {
                return false;
            };
            let ended = self.end_in_map(&mut subscriptions, &state.core, connection, ending);
            (state, ended)
        };
        self.remove_from_index(&state.core);
        ended
    }

    /// Ends the subscriptions on a table; the caller holds `lifecycle`.
    fn end_table_subscriptions(
        &self,
        table_id: &TableId,
        ending_of: impl Fn(&SubscriptionCore) -> Option<SubscriptionEnding>,
    ) -> LiveResult<usize> {
        let route = self
            .index
            .with_directory(|directory| directory.route_by_id(table_id).cloned())
            .ok_or_else(|| LiveError::UnknownTable(table_id.clone()))?;
        let mut handles: Vec<SubscriptionHandle> = Vec::with_capacity(route.subscription_count());
        route.for_each_subscription(&self.index.hasher, |handle| handles.push(handle.clone()));
        let mut ended = 0;
        for handle in handles {
            let Some(ending) = ending_of(&handle.core) else {
                continue;
            };
            // The one the index holds, not a later subscription under the same id.
            let is_it = |core: &LeanArc<SubscriptionCore>| LeanArc::ptr_eq(core, &handle.core);
            if self.take_and_end(&handle.connection, handle.core.id, is_it, ending) {
                ended += 1;
            }
        }
        Ok(ended)
    }
}
