//! What travels through a connection's channel (deliveries) and what its receiver hands the
//! host (notifications), with projected views of the rows and their JSON form.

use std::fmt;
use std::ptr::NonNull;

use smallvec::SmallVec;

use crate::connection::core_ref::CoreRef;
use crate::connection::subscription::SubscriptionCore;
use crate::query::CompiledProjection;
use crate::sync::{DataArc, LeanArc};
use crate::types::change::{ChangeType, JsonPieceKey};
use crate::types::ending::CloseReason;
use crate::types::ids::{ConnectionId, LiveQueryId, SeqId};
use crate::types::json;
use crate::types::shared_commit::{MatchedSource, SharedCommit};
use crate::types::value::{Row, Value};

/// The matches of one delivery, resolved against its source (see
/// [`DeliveryKind::Changes`]): the changes of one commit that matched one subscription, in
/// commit order, each its position in the commit and the change type delivered
/// (`position << 2 | type`).
#[inline]
pub(crate) fn resolve_matches<'a>(source: &'a SharedCommit, matched: &'a u32) -> &'a [u32] {
    match source.runs() {
        Some(runs) => {
            let start = *matched as usize;
            let len = runs[start] as usize;
            &runs[start + 1..start + 1 + len]
        }
        None => std::slice::from_ref(matched),
    }
}

/// Builds the runs several deliveries of one publish share: each run is its length, then
/// its matches.
#[derive(Default)]
pub(crate) struct RunsBuilder {
    packed: Vec<u32>,
    /// Where the last run kept starts: a run equal to it is not kept again, so deliveries
    /// with the same matches share one start (and a publish one view of it).
    last_run: Option<u32>,
}

impl RunsBuilder {
    /// Starts a run; returns where it starts.
    pub(crate) fn open(&mut self) -> u32 {
        let start = self.packed.len();
        self.packed.push(0);
        start as u32
    }

    pub(crate) fn push(&mut self, packed: u32) {
        self.packed.push(packed);
    }

    /// Closes the run opened at `start`: with no match it is removed (`Empty`), with one it
    /// is removed and its match returned (a delivery of its own, with no run), with several
    /// it stays (`Run`), unless it equals the last run kept, whose start it returns.
    pub(crate) fn close(&mut self, start: u32) -> RunEnd {
        let start = start as usize;
        match self.packed.len() - start - 1 {
            0 => {
                self.packed.truncate(start);
                RunEnd::Empty
            }
            1 => {
                let one = self.packed[start + 1];
                self.packed.truncate(start);
                RunEnd::One(one)
            }
            len => {
                if let Some(last) = self.last_run {
                    let last = last as usize;
                    if self.packed[last] as usize == len
                        && self.packed[last + 1..=last + len] == self.packed[start + 1..]
                    {
                        self.packed.truncate(start);
                        return RunEnd::Run(last as u32);
                    }
                }
                self.packed[start] = len as u32;
                self.last_run = Some(start as u32);
                RunEnd::Run(start as u32)
            }
        }
    }

    /// Entries held (runs and their lengths).
    pub(crate) fn len(&self) -> usize {
        self.packed.len()
    }

    /// The runs so far, for the deliveries that share them; the builder is left empty (its
    /// buffer keeps its capacity).
    pub(crate) fn take(&mut self) -> Box<[u32]> {
        let runs = self.packed.as_slice().into();
        self.packed.clear();
        self.last_run = None;
        runs
    }
}

/// How a run ended (see [`RunsBuilder::close`]).
pub(crate) enum RunEnd {
    Empty,
    One(u32),
    Run(u32),
}

/// The source and match of a delivery carrying `packed` (not empty): the commit and its one
/// match, or a run source of its own for several.
pub(crate) fn source_for(commit: SharedCommit, packed: &[u32]) -> (SharedCommit, u32) {
    match packed {
        [] => unreachable!("a delivery carries a match"),
        [one] => (commit, *one),
        _ => {
            let mut runs = RunsBuilder::default();
            let start = runs.open();
            packed.iter().for_each(|&one| runs.push(one));
            let _ = runs.close(start);
            (SharedCommit::with_runs(commit, runs.take()), start)
        }
    }
}

/// Gathers one delivery's matches.
pub(crate) type MatchBuilder = SmallVec<[u32; 4]>;

/// Packs a match.
#[inline]
pub(crate) fn encode_match(position: usize, change_type: ChangeType) -> u32 {
    ((position as u32) << 2) | change_type as u32
}

/// One item in a connection's notification channel. Opaque: the connection's
/// [`NotificationReceiver`](crate::NotificationReceiver) turns it into a [`Notification`].
/// Two words: a channel's queue holds many, and its cost grows with their size (three
/// words cost about twice as much to push and to drain as two).
///
/// Aligned to its size on 64-bit targets: the channel hands a received delivery back
/// inside a `Result`, which this alignment lays out so the receiver reads it as the
/// channel wrote it. Unaligned, the receiver's loads straddled the channel's stores (a
/// store-forwarding stall), and a drained change cost about a fifth more.
#[cfg_attr(target_pointer_width = "64", repr(align(16)))]
pub struct Delivery(pub(crate) DeliveryKind);

pub(crate) enum DeliveryKind {
    /// The changes of one commit that matched one subscription (see [`MatchedSource`] and
    /// [`resolve_matches`]). Numbered by its place: the receiver counts it as the one after
    /// the last it handed out. The first delivery after a dropped one goes out of line with
    /// its number ([`OtherDelivery::Resumed`]), so a gap is reported where it happened.
    Changes {
        /// Uncounted: the release protocol keeps the core alive (`connection::core_ref`).
        core: CoreRef,
        source: MatchedSource,
    },
    /// Anything else: rare, so kept out of line to keep the channel's items small.
    Other(DataArc<OtherDelivery>),
}

/// The rare items of a connection's channel.
pub(crate) enum OtherDelivery {
    /// A change delivery whose subscription's previous attempt was dropped, with its full
    /// number: the receiver reports the gap before it.
    Resumed {
        core: LeanArc<SubscriptionCore>,
        source: SharedCommit,
        matched: u32,
        number: u64,
    },
    Snapshot {
        core: LeanArc<SubscriptionCore>,
        batch: u32,
        rows: DataArc<[Row]>,
    },
    LoadComplete {
        core: LeanArc<SubscriptionCore>,
        /// The boundary's SeqId, or [`NO_BOUNDARY`].
        boundary: u64,
        batches: u32,
        rows: u64,
    },
    /// Wakes a blocked receiver so it looks at the connection's attention flags.
    Wake,
    /// A core whose last handle went, queued behind every delivery naming it: the receiver
    /// lets it go here (see `connection::core_ref`).
    Release(LeanArc<SubscriptionCore>),
}

/// "No boundary was set", in a load-complete delivery.
pub(crate) const NO_BOUNDARY: u64 = u64::MAX;

impl Delivery {
    /// True for a change delivery (counted in `RegistryStats::delivered`).
    pub(crate) fn is_change(&self) -> bool {
        match &self.0 {
            DeliveryKind::Changes { .. } => true,
            DeliveryKind::Other(other) => matches!(**other, OtherDelivery::Resumed { .. }),
        }
    }

    /// A wake-up. All share one allocation (made once per process), so flagging a gap on a
    /// full channel allocates nothing.
    pub(crate) fn wake() -> Self {
        // std's OnceLock in every build: the value holds no state a loom model explores.
        static WAKE: std::sync::OnceLock<DataArc<OtherDelivery>> = std::sync::OnceLock::new();
        Delivery(DeliveryKind::Other(
            WAKE.get_or_init(|| DataArc::new(OtherDelivery::Wake))
                .clone(),
        ))
    }

    pub(crate) fn other(other: OtherDelivery) -> Self {
        Delivery(DeliveryKind::Other(DataArc::new(other)))
    }

    /// The rare item inside, for a marker that was not sent (`None` for a change
    /// delivery).
    pub(crate) fn into_other(self) -> Option<DataArc<OtherDelivery>> {
        match self.0 {
            DeliveryKind::Other(other) => Some(other),
            DeliveryKind::Changes { .. } => None,
        }
    }

    /// The core of a release marker that was not sent (`None` for any other delivery).
    pub(crate) fn into_released(self) -> Option<LeanArc<SubscriptionCore>> {
        match self.0 {
            DeliveryKind::Other(other) => match DataArc::try_unwrap(other) {
                Ok(OtherDelivery::Release(core)) => Some(core),
                _ => None,
            },
            DeliveryKind::Changes { .. } => None,
        }
    }
}

/// What a connection's notification receiver hands the host.
///
/// Changes arrive as the subscriber sees them, not as the engine made them: an update whose
/// row entered the subscription's filter arrives as an insert, and one whose row left it as
/// a delete (see [`ChangeType`]). Delivered rows are projected views
/// ([`ProjectedRow`]) that compare equal to a [`Row`] holding the same values.
#[derive(Clone)]
pub enum Notification {
    /// The changes of one commit that matched one subscription, never split. An update can
    /// arrive as an insert (the row entered the filter) or a delete (it left the filter).
    Changes(ChangeSet),
    /// A batch of the subscription's initial snapshot, filtered and projected.
    Snapshot(SnapshotBatch),
    /// The initial load (or resume replay) completed; live changes follow.
    InitialLoadComplete {
        /// The subscription.
        live_query_id: LiveQueryId,
        /// The snapshot boundary, if one was set; for a subscription that resumed, the SeqId
        /// it resumed from (or a later boundary set since).
        boundary: Option<SeqId>,
        /// Snapshot batches delivered through livecore.
        batches: u32,
        /// Snapshot rows delivered through livecore.
        rows: u64,
    },
    /// Deliveries were lost to a full channel. Resume from `last_seq`.
    Gap {
        /// The subscription.
        live_query_id: LiveQueryId,
        /// The last SeqId the consumer holds: the last change it received, or before the
        /// first one the snapshot boundary (or highest replayed commit), else the SeqId it
        /// resumed after; `None` when none is known.
        last_seq: Option<SeqId>,
        /// How many deliveries were lost.
        missed: u64,
    },
    /// The gate buffer overflowed during the initial load, or the host lost commits of the
    /// subscription's table ([`resync_table`](crate::ConnectionsManager::resync_table)):
    /// resubscribe with a new snapshot. The subscription has ended.
    ResyncRequired {
        /// The subscription.
        live_query_id: LiveQueryId,
    },
    /// The engine cannot replay from the requested SeqId: resubscribe with a snapshot.
    /// The subscription has ended.
    ResumeUnavailable {
        /// The subscription.
        live_query_id: LiveQueryId,
    },
    /// livecore ended the subscription.
    Closed {
        /// The subscription.
        live_query_id: LiveQueryId,
        /// Why.
        reason: CloseReason,
    },
}

impl Notification {
    /// The subscription the notification belongs to.
    pub fn live_query_id(&self) -> LiveQueryId {
        match self {
            Notification::Changes(changes) => changes.live_query_id(),
            Notification::Snapshot(batch) => batch.live_query_id(),
            Notification::InitialLoadComplete { live_query_id, .. }
            | Notification::Gap { live_query_id, .. }
            | Notification::ResyncRequired { live_query_id }
            | Notification::ResumeUnavailable { live_query_id }
            | Notification::Closed { live_query_id, .. } => *live_query_id,
        }
    }

    /// The short type name used in JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Notification::Changes(_) => "changes",
            Notification::Snapshot(_) => "snapshot",
            Notification::InitialLoadComplete { .. } => "load_complete",
            Notification::Gap { .. } => "gap",
            Notification::ResyncRequired { .. } => "resync_required",
            Notification::ResumeUnavailable { .. } => "resume_unavailable",
            Notification::Closed { .. } => "closed",
        }
    }

    /// The notification as one JSON object (see the crate documentation for the format).
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(128);
        self.write_json(&mut out);
        String::from_utf8(out).expect("the JSON writer emits UTF-8")
    }

    /// Appends the notification's JSON to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"type\":");
        json::write_string(out, self.kind());
        out.extend_from_slice(b",\"live_query_id\":");
        json::write_string(out, &self.live_query_id().to_string());
        match self {
            Notification::Changes(changes) => changes.write_json_fields(out),
            Notification::Snapshot(batch) => batch.write_json_fields(out),
            Notification::InitialLoadComplete {
                boundary,
                batches,
                rows,
                ..
            } => {
                out.extend_from_slice(b",\"boundary\":");
                write_seq(out, *boundary);
                out.extend_from_slice(format!(",\"batches\":{batches},\"rows\":{rows}").as_bytes());
            }
            Notification::Gap {
                last_seq, missed, ..
            } => {
                out.extend_from_slice(b",\"last_seq\":");
                write_seq(out, *last_seq);
                out.extend_from_slice(format!(",\"missed\":{missed}").as_bytes());
            }
            Notification::ResyncRequired { .. } | Notification::ResumeUnavailable { .. } => {}
            Notification::Closed { reason, .. } => {
                out.extend_from_slice(b",\"reason\":");
                json::write_string(out, reason.code());
                out.extend_from_slice(b",\"detail\":");
                json::write_string(out, &reason.to_string());
            }
        }
        out.push(b'}');
    }
}

impl fmt::Debug for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

fn write_seq(out: &mut Vec<u8>, seq: Option<SeqId>) {
    match seq {
        Some(seq) => write_u64(out, seq.0),
        None => out.extend_from_slice(b"null"),
    }
}

/// A u64 by the JSON integer rule: a number up to 2^53, a string beyond.
fn write_u64(out: &mut Vec<u8>, value: u64) {
    if value <= 1 << 53 {
        out.extend_from_slice(value.to_string().as_bytes());
    } else {
        out.extend_from_slice(format!("\"{value}\"").as_bytes());
    }
}

/// The changes of one commit that matched one subscription.
#[derive(Clone)]
pub struct ChangeSet {
    /// The commit, or runs of matches over it, or a view of one match (see
    /// [`MatchedSource`]).
    pub(crate) commit: SharedCommit,
    /// The subscription's projection, uncounted: the commit keeps it alive (the publish
    /// keeps each projection it delivers to on the commit before the delivery is sent, see
    /// `SharedCommit::keep_alive`), so handing out a change set takes no reference
    /// count.
    pub(crate) projection: NonNull<CompiledProjection>,
    pub(crate) live_query_id: LiveQueryId,
    pub(crate) matched: u32,
}

// SAFETY: the projection is immutable shared data (`CompiledProjection` is `Send + Sync`,
// held through `Arc`), kept alive by the commit reference the change set holds; the rest
// of the change set is `Send + Sync` on its own.
unsafe impl Send for ChangeSet {}
// SAFETY: as above; nothing is reachable mutably through a shared change set.
unsafe impl Sync for ChangeSet {}

impl ChangeSet {
    /// The change set of one delivery of `core`, whose projection its commit keeps.
    pub(crate) fn new(
        commit: SharedCommit,
        core: &SubscriptionCore,
        connection_id: ConnectionId,
        matched: u32,
    ) -> Self {
        Self {
            commit,
            projection: NonNull::from(&*core.query.projection),
            live_query_id: LiveQueryId::new(connection_id, core.id),
            matched,
        }
    }

    fn projection(&self) -> &CompiledProjection {
        // SAFETY: the commit this change set holds keeps the projection alive (see the
        // field), and the projection is never mutated.
        unsafe { self.projection.as_ref() }
    }

    fn matches(&self) -> &[u32] {
        resolve_matches(&self.commit, &self.matched)
    }

    /// The subscription.
    pub fn live_query_id(&self) -> LiveQueryId {
        self.live_query_id
    }

    /// The commit's SeqId.
    pub fn seq(&self) -> SeqId {
        self.commit.seq
    }

    /// Number of changes.
    pub fn len(&self) -> usize {
        self.matches().len()
    }

    /// True when there are no changes (never: a delivered set holds at least one).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The projected column names.
    pub fn column_names(&self) -> &[DataArc<str>] {
        self.projection().column_names()
    }

    /// The changes, in commit order, as the subscriber sees them.
    pub fn changes(&self) -> impl Iterator<Item = DeliveredChange<'_>> + '_ {
        self.matches()
            .iter()
            .map(move |&packed| self.delivered(packed))
    }

    /// The `index`-th change (in commit order), without walking the ones before it.
    pub fn change(&self, index: usize) -> Option<DeliveredChange<'_>> {
        self.matches()
            .get(index)
            .map(|&packed| self.delivered(packed))
    }

    fn delivered(&self, packed: u32) -> DeliveredChange<'_> {
        let position = (packed >> 2) as usize;
        let change_type = ChangeType::from_bits(packed);
        let change = &self.commit.changes[position];
        let projection = self.projection();
        let (row, old_row) = match change_type {
            ChangeType::Insert => (change.new_row().unwrap_or(&change.row), None),
            ChangeType::Update => (&change.row, change.old_row.as_ref()),
            ChangeType::Delete => (change.previous_row().unwrap_or(&change.row), None),
        };
        DeliveredChange {
            position,
            change_type,
            row: ProjectedRow { row, projection },
            old_row: old_row.map(|row| ProjectedRow { row, projection }),
        }
    }

    fn write_json_fields(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b",\"seq\":");
        write_u64(out, self.commit.seq.0);
        out.extend_from_slice(b",\"changes\":[");
        let projection_key = self.projection.as_ptr() as usize;
        for (index, change) in self.changes().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            let key = JsonPieceKey {
                position: change.position as u32,
                projection: projection_key,
                change_type: change.change_type,
            };
            let piece = self.commit.json_piece(key, || change.to_json());
            out.extend_from_slice(piece.as_bytes());
        }
        out.push(b']');
    }
}

/// One change as a subscriber receives it.
pub struct DeliveredChange<'a> {
    position: usize,
    /// The type delivered: an update whose row entered the filter arrives as an insert, one
    /// whose row left it as a delete.
    pub change_type: ChangeType,
    /// The row after the change (insert, update) or as it was (delete), projected.
    pub row: ProjectedRow<'a>,
    /// The row before an update, projected.
    pub old_row: Option<ProjectedRow<'a>>,
}

impl DeliveredChange<'_> {
    /// The change's position in its commit.
    pub fn position(&self) -> usize {
        self.position
    }

    /// The type delivered (the same as the `change_type` field): an update whose row entered
    /// the subscription's filter arrives as [`ChangeType::Insert`], one whose row left it as
    /// [`ChangeType::Delete`].
    pub fn change_type(&self) -> ChangeType {
        self.change_type
    }

    /// The row after the change (insert, update) or as it was (delete), projected (the same
    /// as the `row` field).
    pub fn row(&self) -> ProjectedRow<'_> {
        self.row
    }

    /// The row before an update, projected (the same as the `old_row` field).
    pub fn old_row(&self) -> Option<ProjectedRow<'_>> {
        self.old_row
    }

    /// `{"op":..,"row":{..}[,"old":{..}]}`
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(b"{\"op\":");
        json::write_string(&mut out, self.change_type.as_str());
        out.extend_from_slice(b",\"row\":");
        self.row.write_json(&mut out);
        if let Some(old_row) = &self.old_row {
            out.extend_from_slice(b",\"old\":");
            old_row.write_json(&mut out);
        }
        out.push(b'}');
        String::from_utf8(out).expect("the JSON writer emits UTF-8")
    }
}

/// A row seen through a projection, without copying it.
#[derive(Clone, Copy)]
pub struct ProjectedRow<'a> {
    row: &'a Row,
    projection: &'a CompiledProjection,
}

impl<'a> ProjectedRow<'a> {
    /// Number of projected columns.
    pub fn len(&self) -> usize {
        self.projection.len()
    }

    /// True when no column is projected (never).
    pub fn is_empty(&self) -> bool {
        self.projection.is_empty()
    }

    /// The `index`-th projected value.
    pub fn value(&self, index: usize) -> &'a Value {
        self.projection.value(self.row, index)
    }

    /// The value of a projected column by name (ASCII case-insensitive).
    pub fn get(&self, column: &str) -> Option<&'a Value> {
        self.projection
            .column_names()
            .iter()
            .position(|name| name.eq_ignore_ascii_case(column))
            .map(|index| self.value(index))
    }

    /// `(column name, value)` pairs in projection order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        let (row, projection) = (self.row, self.projection);
        projection
            .column_names()
            .iter()
            .enumerate()
            .map(move |(index, name)| (&**name, projection.value(row, index)))
    }

    /// The projected values as an owned row.
    pub fn to_row(&self) -> Row {
        self.projection.apply(self.row)
    }

    fn write_json(&self, out: &mut Vec<u8>) {
        json::write_object(out, self.iter());
    }
}

// A delivered row compares equal to the owned row holding the same projected values, so a
// test or a host compares with `==` without `to_row()`.
impl PartialEq<Row> for ProjectedRow<'_> {
    fn eq(&self, other: &Row) -> bool {
        self.len() == other.values().len()
            && (0..self.len()).all(|index| self.value(index) == other.value(index))
    }
}

impl PartialEq<ProjectedRow<'_>> for Row {
    fn eq(&self, other: &ProjectedRow<'_>) -> bool {
        other == self
    }
}

impl PartialEq for ProjectedRow<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && (0..self.len()).all(|index| self.value(index) == other.value(index))
    }
}

impl fmt::Debug for ProjectedRow<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// One batch of a subscription's initial snapshot.
#[derive(Clone)]
pub struct SnapshotBatch {
    pub(crate) connection_id: ConnectionId,
    pub(crate) core: LeanArc<SubscriptionCore>,
    pub(crate) batch: u32,
    pub(crate) rows: DataArc<[Row]>,
}

impl SnapshotBatch {
    /// The subscription.
    pub fn live_query_id(&self) -> LiveQueryId {
        self.core.live_query_id(self.connection_id)
    }

    /// The batch's number, from 0.
    pub fn batch_number(&self) -> u32 {
        self.batch
    }

    /// The projected rows.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// The projected column names.
    pub fn column_names(&self) -> &[DataArc<str>] {
        self.core.query.projection.column_names()
    }

    fn write_json_fields(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!(",\"batch\":{},\"rows\":[", self.batch).as_bytes());
        let names = self.column_names();
        for (index, row) in self.rows.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            json::write_object(
                out,
                names
                    .iter()
                    .zip(row.values())
                    .map(|(name, value)| (&**name, value)),
            );
        }
        out.push(b']');
    }
}

#[cfg(all(test, not(livecore_loom)))]
mod tests {
    use crate::*;

    /// A channel's queue holds deliveries by value: two words each.
    #[test]
    fn a_delivery_is_two_words() {
        assert_eq!(
            std::mem::size_of::<super::Delivery>(),
            2 * std::mem::size_of::<usize>()
        );
    }

    /// A manager with one shared table, chat.messages (id, room, body).
    fn chat_manager() -> (ConnectionsManager, TableId) {
        let manager = ConnectionsManager::new(ManagerConfig::default()).unwrap();
        let table = TableId::new("chat", "messages");
        manager
            .register_table(TableSchema::new(
                table.clone(),
                TableScope::Shared,
                ["id", "room", "body"],
            ))
            .unwrap();
        (manager, table)
    }

    /// What a host holds is thread-safe and unwind-safe.
    #[test]
    fn notifications_are_send_sync_and_unwind_safe() {
        fn holdable<T: Send + Sync + std::panic::UnwindSafe + std::panic::RefUnwindSafe>() {}
        holdable::<Notification>();
        holdable::<ChangeSet>();
    }

    /// A change set names its projection uncounted: its commit keeps it, after the
    /// subscription, its connection and the manager are gone.
    #[test]
    fn a_change_sets_commit_keeps_its_projection() {
        let (manager, table) = chat_manager();
        let mut sets = Vec::new();
        for (index, sql) in [
            "SELECT body FROM chat.messages",
            "SELECT id FROM chat.messages",
        ]
        .iter()
        .enumerate()
        {
            let mut registration = manager.register_connection().unwrap();
            let connection = registration.connection_id;
            manager
                .authenticate(connection, UserId::from(format!("u{index}").as_str()), None)
                .unwrap();
            let subscribed = manager
                .subscribe_sql(connection, sql, SubscriptionOptions::default())
                .unwrap();
            let row = Row::new(vec![Value::Int(5), Value::Int(1), Value::text("hi")]);
            manager
                .publish(
                    SeqId(index as u64 + 1),
                    ChangeNotification::insert(table.clone(), row),
                )
                .unwrap();
            let Notification::Changes(set) = registration.notifications.try_recv().unwrap() else {
                panic!("expected changes");
            };
            manager.unsubscribe(subscribed.live_query_id).unwrap();
            manager.unregister_connection(connection).unwrap();
            sets.push(set);
        }
        drop(manager);
        for set in &sets {
            assert!(set
                .commit
                .keeps(set.projection.as_ptr().cast_const().cast()));
            assert_eq!(set.column_names().len(), 1);
        }
    }

    /// Consecutive deliveries with the same matches share one run.
    #[test]
    fn equal_runs_in_a_row_are_kept_once() {
        let mut runs = super::RunsBuilder::default();
        let mut run = |matches: &[u32]| {
            let start = runs.open();
            matches.iter().for_each(|&one| runs.push(one));
            match runs.close(start) {
                super::RunEnd::Run(start) => Some(start),
                _ => None,
            }
        };
        let first = run(&[1, 5]);
        assert_eq!(run(&[1, 5]), first, "the same matches: the same run");
        assert_eq!(run(&[9]), None, "one match has no run");
        assert_eq!(
            run(&[1, 5]),
            first,
            "a one-match delivery in between keeps it"
        );
        let other = run(&[1, 6]);
        assert_ne!(other, first);
        assert_eq!(
            run(&[1, 5, 9]).map(|start| start > other.unwrap()),
            Some(true)
        );
        let packed = runs.take();
        assert_eq!(&*packed, &[2, 1, 5, 2, 1, 6, 3, 1, 5, 9]);
    }

    /// Receivers render a commit's JSON once per (change, projection, change type), and
    /// every subscriber with that projection shares the rendering.
    #[test]
    fn json_is_rendered_once_per_projection_and_shared() {
        let (manager, table) = chat_manager();
        let texts = [
            "SELECT id, body FROM chat.messages WHERE room = 1",
            "SELECT id, body FROM chat.messages WHERE room = 1",
            "SELECT id, body FROM chat.messages WHERE room = 1",
            "SELECT body FROM chat.messages WHERE room = 1",
        ];
        let mut receivers = Vec::new();
        for (index, sql) in texts.iter().enumerate() {
            let registration = manager.register_connection().unwrap();
            manager
                .authenticate(
                    registration.connection_id,
                    UserId::from(format!("u{index}").as_str()),
                    None,
                )
                .unwrap();
            manager
                .subscribe_sql(
                    registration.connection_id,
                    sql,
                    SubscriptionOptions::default(),
                )
                .unwrap();
            receivers.push(registration.notifications);
        }
        let row = Row::new(vec![Value::Int(5), Value::Int(1), Value::text("hi")]);
        manager
            .publish(SeqId(1), ChangeNotification::insert(table, row))
            .unwrap();
        let notifications: Vec<Notification> = receivers
            .iter_mut()
            .map(|receiver| receiver.try_recv().unwrap())
            .collect();
        let sets: Vec<&ChangeSet> = notifications
            .iter()
            .map(|notification| match notification {
                Notification::Changes(set) => set,
                other => panic!("expected changes, got {other:?}"),
            })
            .collect();
        for set in &sets {
            assert!(std::ptr::eq(&*set.commit, &*sets[0].commit), "one commit");
        }
        let json: Vec<String> = notifications.iter().map(Notification::to_json).collect();
        // The same rendering but for the live query id.
        let changes = |json: &str| json[json.find("\"seq\"").unwrap()..].to_string();
        assert_eq!(changes(&json[0]), changes(&json[1]));
        assert!(
            json[0].contains(r#""row":{"id":5,"body":"hi"}"#),
            "{}",
            json[0]
        );
        assert!(json[3].contains(r#""row":{"body":"hi"}"#), "{}", json[3]);
        // Two projections, two renderings, for four subscribers.
        assert_eq!(sets[0].commit.json_piece_count(), 2);
    }
}
