//! Long-poll consume.
//!
//! `consume(connection, topic, group, max_messages, timeout)`, one pass after another:
//!
//! 1. the session's leases in the group are renewed, expired ones end, and it takes free
//!    partitions up to its share (see [`group`](super::group));
//! 2. it reads, from each leased partition (starting at a rotating one, so a busy partition
//!    cannot starve the others), up to `max_messages` in all, from where its lease stands;
//!    the lease then stands after what was read. Messages that are waiting are returned at
//!    once;
//! 3. with nothing to return, it registers to be woken by an append to its partitions or a
//!    partition becoming free, checks once more, and parks on its own wake-up channel (a
//!    wake of its session reaches every call parked on it)
//!    until woken, until a lease another member holds expires (it may be this session's
//!    partition then), or until `timeout` passes. A timeout returns an empty batch with the
//!    session's current positions.
//!
//! # One clock for parks and leases
//!
//! Leases, the heartbeat timeout and a consume's deadline all run on the manager clock's
//! monotonic reading ([`Clock::monotonic_ms`](crate::Clock::monotonic_ms)), never on its
//! wall reading, so the rules that tie them hold whatever the wall clock does: a consume's
//! timeout is at most the lease duration and half the heartbeat timeout, so a parked
//! consumer neither loses its leases nor is taken for dead while it waits; and a consume
//! waiting for a partition another member leases parks no longer than until that lease
//! expires on the same reading. The park itself waits on the session's channel for the
//! distance left on that reading. With [`SystemClock`](crate::SystemClock) the monotonic
//! reading is [`Instant`] time, so that distance is exact. With a clock that moves in steps
//! ([`ManualClock`](crate::ManualClock)) every step wakes the parked consumes to read the
//! clock again: advancing it past a lease's expiry hands the partition to a consume parked
//! for it, and advancing it past a consume's deadline ends that consume. The `timeout` is
//! also kept in real time, so a consume on a clock that never moves still returns.
//!
//! Shutdown wakes every parked consume, which returns [`LiveError::ShuttingDown`]; so does
//! a consume called during shutdown. A consume parked (or about to park) when its session
//! leaves the group (`leave_group`) returns at once with an empty batch and no positions:
//! the group and the session are still there, the session just holds nothing in it any
//! more; a later consume joins the group again. A consume parked when its connection unregisters
//! returns [`LiveError::UnknownConnection`]; when its topic or group is deleted,
//! [`LiveError::UnknownTopic`] or [`LiveError::UnknownGroup`]. Nothing is lost by these:
//! a consume that returns an error hands nothing out.

use crate::connection::state::SharedConnectionState;
use crate::sync::{Arc, DataArc};
use crate::topics::group::{Group, Lease, RetentionSkip};
use crate::topics::log::TopicMessage;
use crate::topics::session::{ConsumerSession, Membership};
use crate::topics::wait::Parker;
use crate::topics::Topic;
use crate::types::ids::ConnectionId;

/// What one consume returned.
#[derive(Clone, Debug, PartialEq)]
pub struct ConsumeBatch {
    /// The topic.
    pub topic: String,
    /// The group.
    pub group: String,
    /// The messages handed out, grouped by partition, each partition's in offset order.
    /// Empty when the consume timed out.
    pub messages: Vec<DataArc<TopicMessage>>,
    /// The session's position on each partition it leases, after this batch.
    pub positions: Vec<PartitionPosition>,
    /// Ranges retention removed before the group committed them, skipped under the
    /// `Earliest` or `Latest` reset policy while producing this batch, and any skipped by
    /// an earlier consume of the group that failed (or whose future was dropped) after
    /// skipping them: each skip is reported once.
    pub retention_skips: Vec<RetentionSkip>,
    /// The group instance that handed it out (0 outside any group): `commit_batch`
    /// refuses a batch of a group since deleted (even if created again under its name)
    /// or of another manager.
    pub(crate) group_instance: u64,
}

/// A session's position on one leased partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PartitionPosition {
    /// The partition.
    pub partition: u32,
    /// The group's committed offset (`None`: no position yet, reset policy `None`).
    pub committed: Option<u64>,
    /// The next offset the lease hands out.
    pub next: Option<u64>,
    /// The offset the next appended message will get.
    pub end: u64,
    /// When the lease expires unless renewed (ms): the manager clock's wall reading it
    /// expires at, if the wall clock keeps step with the monotonic one the lease runs on.
    pub lease_expires_at_ms: u64,
}

impl ConsumeBatch {
    /// True when no message was handed out.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Number of messages handed out.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    /// For each partition in the batch, the offset to commit once all its messages are
    /// done (one past its last message), in partition order.
    pub fn next_offsets(&self) -> Vec<(u32, u64)> {
        let mut offsets: Vec<(u32, u64)> = Vec::new();
        for message in &self.messages {
            match offsets
                .iter_mut()
                .find(|(partition, _)| *partition == message.partition)
            {
                Some(entry) => entry.1 = entry.1.max(message.offset + 1),
                None => offsets.push((message.partition, message.offset + 1)),
            }
        }
        offsets.sort_unstable();
        offsets
    }
}

/// One consume in progress.
pub(crate) struct Call {
    pub(crate) me: ConnectionId,
    pub(crate) connection: SharedConnectionState,
    pub(crate) session: Arc<ConsumerSession>,
    /// This call's wake-up, registered with the session until the call ends.
    pub(crate) parker: Parker,
    pub(crate) topic: Arc<Topic>,
    pub(crate) group: Arc<Group>,
    /// The session's membership of `group` this call joined under: left means stop.
    pub(crate) membership: Membership,
    pub(crate) max_messages: usize,
    /// The session's leases after the last pass.
    pub(crate) leases: Vec<(u32, Lease)>,
    /// Retention skips to report in this call's batch: the group's unreported ones (see
    /// `Drop`), then those this call meets.
    pub(crate) skips: Vec<RetentionSkip>,
}

impl Drop for Call {
    /// Skips this call met but did not hand out in a batch (it failed after them, or its
    /// future was dropped) go to the group's next batch: they are already counted and
    /// committed past, so they are reported once, later, rather than never.
    fn drop(&mut self) {
        if !self.skips.is_empty() {
            self.group.keep_unreported(std::mem::take(&mut self.skips));
        }
    }
}

pub(crate) enum Pass {
    Messages(ConsumeBatch),
    Nothing,
    Retry,
    /// The session left the group: the call returns an empty batch.
    Left,
}
