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
//!    partition becoming free, checks once more, and parks on its session's wake-up channel
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
//! a consume called during shutdown. A consume parked when its connection unregisters
//! returns [`LiveError::UnknownConnection`]; when its topic or group is deleted,
//! [`LiveError::UnknownTopic`] or [`LiveError::UnknownGroup`]. Nothing is lost by these:
//! a consume that returns an error hands nothing out.

use std::time::{Duration, Instant};

use crate::connection::state::SharedConnectionState;
use crate::error::{LiveError, LiveResult};
use crate::manager::ConnectionsManager;
use crate::sync::{Arc, DataArc, Ordering};
use crate::topics::group::{Group, Lease, OutOfRangeOutcome, ParkDecision};
use crate::topics::log::{TopicLogError, TopicMessage};
use crate::topics::session::ConsumerSession;
use crate::topics::{check_max_messages, Topic};
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
    /// `Earliest` or `Latest` reset policy while producing this batch.
    pub retention_skips: Vec<RetentionSkip>,
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

/// Messages retention removed before the group committed them: offsets `from..to` of
/// `partition` were skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetentionSkip {
    /// The partition.
    pub partition: u32,
    /// The first skipped offset.
    pub from: u64,
    /// One past the last skipped offset.
    pub to: u64,
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
struct Call {
    me: ConnectionId,
    connection: SharedConnectionState,
    session: Arc<ConsumerSession>,
    topic: Arc<Topic>,
    group: Arc<Group>,
    max_messages: usize,
    /// The session's leases after the last pass.
    leases: Vec<(u32, Lease)>,
    skips: Vec<RetentionSkip>,
}

enum Pass {
    Messages(ConsumeBatch),
    Nothing,
    Retry,
}

impl ConnectionsManager {
    /// Long-poll consume: up to `max_messages` messages of `topic` for consumer group
    /// `group`, from the partitions this consumer session leases. Returns at once when
    /// messages are waiting; otherwise parks (without spinning) until one arrives, a
    /// partition becomes free for it, or `timeout` passes (on the manager clock's
    /// monotonic reading, and at most as long in real time: see the
    /// [module documentation](self)), and then returns an empty batch with the session's
    /// positions. `timeout` zero never parks.
    ///
    /// `connection_id` is the consumer session: a registered, authenticated connection.
    /// Each consume counts as a heartbeat of it. Limits: `max_messages` between 1 and
    /// [`TopicLimits::max_consume_messages`](crate::TopicLimits::max_consume_messages);
    /// `timeout` at most [`TopicLimits::max_poll_timeout`](crate::TopicLimits::max_poll_timeout),
    /// at most the group's lease duration (so a parked consumer's leases cannot expire
    /// while it waits) and at most half the heartbeat timeout (so a parked consumer is not
    /// taken for a dead one). Errors: see the [module documentation](self).
    pub fn consume(
        &self,
        connection_id: ConnectionId,
        topic: &str,
        group: &str,
        max_messages: usize,
        timeout: Duration,
    ) -> LiveResult<ConsumeBatch> {
        let mut call = self.begin_consume(connection_id, topic, group, max_messages, timeout)?;
        // `begin_consume` bounded the timeout by the limits, but limits configured near
        // `Duration::MAX` must not make the deadline overflow (a panic): checked.
        let deadline =
            Instant::now()
                .checked_add(timeout)
                .ok_or_else(|| LiveError::OutOfBounds {
                    what: "poll timeout (ms)",
                    value: timeout.as_millis().min(u128::from(u64::MAX)) as u64,
                    min: 0,
                    max: self
                        .config
                        .topics
                        .max_poll_timeout
                        .as_millis()
                        .min(u128::from(u64::MAX)) as u64,
                })?;
        let clock_deadline = self
            .clock
            .monotonic_ms()
            .saturating_add(timeout.as_millis().min(u128::from(u64::MAX)) as u64);
        loop {
            match self.consume_pass(&mut call)? {
                Pass::Messages(batch) => return Ok(batch),
                Pass::Retry => continue,
                Pass::Nothing => {}
            }
            let real_left = deadline.saturating_duration_since(Instant::now());
            if real_left.is_zero() || self.clock.monotonic_ms() >= clock_deadline {
                return Ok(self.batch(&call, Vec::new()));
            }
            if let Some(lease_expiry) = self.ready_to_park(&mut call) {
                let wake_at = lease_expiry.map_or(clock_deadline, |at| at.min(clock_deadline));
                // Read after registering for clock steps: a step before this read is seen
                // here, one after it wakes the park.
                let now_ms = self.clock.monotonic_ms();
                if now_ms < wake_at {
                    self.topics.totals.parks.fetch_add(1, Ordering::Relaxed);
                    // A clock that steps wakes the park itself; for one that moves by
                    // itself, the distance on its monotonic reading is waited out as real
                    // time.
                    let park_for = if self.topics.clock_waiters.is_some() {
                        real_left
                    } else {
                        real_left.min(Duration::from_millis(wake_at - now_ms))
                    };
                    call.session.parker.park(park_for);
                }
            }
            self.stop_waiting_on_clock(&call);
        }
    }

    /// [`consume`](Self::consume) without blocking a thread and without a timeout of its
    /// own (livecore has no timer): it completes when messages are handed out, or with the
    /// same errors. Wrap it in the host runtime's timeout; dropping the future before it
    /// completes hands nothing out and loses nothing.
    #[cfg(not(livecore_loom))]
    pub async fn consume_async(
        &self,
        connection_id: ConnectionId,
        topic: &str,
        group: &str,
        max_messages: usize,
    ) -> LiveResult<ConsumeBatch> {
        let mut call =
            self.begin_consume(connection_id, topic, group, max_messages, Duration::ZERO)?;
        loop {
            match self.consume_pass(&mut call)? {
                Pass::Messages(batch) => return Ok(batch),
                Pass::Retry => continue,
                Pass::Nothing => {}
            }
            if let Some(lease_expiry) = self.ready_to_park(&mut call) {
                // As in `consume`: a lease that expired before the registration for clock
                // steps is seen here.
                if lease_expiry.is_none_or(|at| self.clock.monotonic_ms() < at) {
                    self.topics.totals.parks.fetch_add(1, Ordering::Relaxed);
                    call.session.parker.park_async().await;
                }
            }
            self.stop_waiting_on_clock(&call);
        }
    }

    /// Commits, for each partition in `batch`, the offset after its last message: the
    /// whole batch is done. See [`commit_offset`](Self::commit_offset).
    pub fn commit_batch(
        &self,
        connection_id: ConnectionId,
        batch: &ConsumeBatch,
    ) -> LiveResult<()> {
        for (partition, offset) in batch.next_offsets() {
            self.commit_offset(connection_id, &batch.topic, &batch.group, partition, offset)?;
        }
        Ok(())
    }

    fn begin_consume(
        &self,
        connection_id: ConnectionId,
        topic: &str,
        group: &str,
        max_messages: usize,
        timeout: Duration,
    ) -> LiveResult<Call> {
        let limits = &self.config.topics;
        check_max_messages(max_messages, limits.max_consume_messages)?;
        if self.is_shutting_down() {
            return Err(LiveError::ShuttingDown);
        }
        let connection = self.connection(connection_id)?;
        let topic = self.topic(topic)?;
        let group = topic.group(group)?;
        let max_timeout = limits
            .max_poll_timeout
            .min(group.config.lease_duration)
            .min(self.config.heartbeat_timeout / 2);
        if timeout > max_timeout {
            return Err(LiveError::OutOfBounds {
                what: "poll timeout (ms)",
                value: timeout.as_millis() as u64,
                min: 0,
                max: max_timeout.as_millis() as u64,
            });
        }
        // Authentication is checked when the session is created: a connection's user never
        // changes once set, and the check reads through arc-swap, which costs a new thread
        // a walk over every thread that used it.
        let session = match self.topics.session(connection_id) {
            Some(session) => session,
            None => {
                if connection.user_key().is_none() {
                    return Err(LiveError::NotAuthenticated(connection_id));
                }
                self.consumer_session(&connection)?
            }
        };
        session.join(&topic, &group, limits.max_groups_per_session)?;
        Ok(Call {
            me: connection_id,
            connection,
            session,
            topic,
            group,
            max_messages,
            leases: Vec::new(),
            skips: Vec::new(),
        })
    }

    /// The end of every wait: shutdown, the connection unregistering, the topic or group
    /// being deleted.
    fn check_consumable(&self, call: &Call) -> LiveResult<()> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(LiveError::ShuttingDown);
        }
        if call.session.is_closed() {
            return Err(LiveError::UnknownConnection(call.me));
        }
        if call.topic.is_deleted() {
            return Err(LiveError::UnknownTopic(call.topic.name.to_string()));
        }
        if call.group.is_deleted() {
            return Err(LiveError::UnknownGroup {
                topic: call.topic.name.to_string(),
                group: call.group.name.to_string(),
            });
        }
        Ok(())
    }

    /// One pass: renew and take leases, read what is waiting, hand it out.
    fn consume_pass(&self, call: &mut Call) -> LiveResult<Pass> {
        self.check_consumable(call)?;
        let now = self.reading();
        call.connection.record_heartbeat(now);
        let assignment = call
            .group
            .assign(call.me, call.session.parker.sender(), now.monotonic_ms);
        call.topic.partitions_freed(&call.group, &assignment.freed);
        call.leases = assignment.leases;
        let count = call.leases.len();
        let first = if count == 0 {
            0
        } else {
            call.session.next_rotation() % count
        };
        let mut messages: Vec<DataArc<TopicMessage>> = Vec::new();
        // (partition, epoch, from, to, range in `messages`)
        let mut reads: Vec<(u32, u64, u64, u64, std::ops::Range<usize>)> = Vec::new();
        for step in 0..count {
            let (partition, lease) = call.leases[(first + step) % count];
            let Some(next) = lease.next else {
                return Err(LiveError::NoCommittedOffset {
                    topic: call.topic.name.to_string(),
                    group: call.group.name.to_string(),
                    partition,
                });
            };
            if messages.len() >= call.max_messages {
                break;
            }
            let end = call.topic.signals[partition as usize].end();
            if end <= next {
                continue;
            }
            let before = messages.len();
            // `read_log` never returns nothing below the end, so a pass with `end > next`
            // reads something or fails (it never spins without parking).
            match call.topic.read_log(
                partition,
                next,
                end,
                call.max_messages - before,
                &mut messages,
            ) {
                Ok(()) => {
                    if let Some(last) = messages.get(before..).and_then(|read| read.last()) {
                        reads.push((
                            partition,
                            lease.epoch,
                            next,
                            last.offset + 1,
                            before..messages.len(),
                        ));
                    }
                }
                Err(TopicLogError::OutOfRange(bounds)) => {
                    let outcome = call.group.out_of_range(
                        &call.topic.name,
                        call.me,
                        partition,
                        lease.epoch,
                        next,
                        bounds,
                    )?;
                    if let OutOfRangeOutcome::Moved(Some((from, to))) = outcome {
                        call.skips.push(RetentionSkip {
                            partition,
                            from,
                            to,
                        });
                    }
                    // Read again from the new position (messages read so far were not
                    // handed out and are read again).
                    return Ok(Pass::Retry);
                }
                Err(error) => return Err(call.topic.store_error(error)),
            }
        }
        if messages.is_empty() {
            return Ok(Pass::Nothing);
        }
        let mut kept: Vec<DataArc<TopicMessage>> = Vec::with_capacity(messages.len());
        for (partition, epoch, from, to, range) in reads {
            if call.group.advance(call.me, partition, epoch, from, to) {
                kept.extend(messages[range].iter().cloned());
            }
        }
        if kept.is_empty() {
            // Every lease changed under the read (a seek, or this session consuming
            // concurrently): nothing was handed out.
            return Ok(Pass::Retry);
        }
        Ok(Pass::Messages(self.batch(call, kept)))
    }

    /// Registers the session to be woken and checks once more. `Some` when it should
    /// park, with the monotonic reading to wake at for another member's lease expiry (if
    /// one is held); `None` when something arrived meanwhile (run another pass).
    fn ready_to_park(&self, call: &mut Call) -> Option<Option<u64>> {
        let wake = call.session.parker.sender();
        for (partition, _) in &call.leases {
            call.topic.signals[*partition as usize]
                .waiters
                .register(call.me, wake);
        }
        if let Some(waiters) = &self.topics.clock_waiters {
            // Before the clock is read: a step after this read wakes the park.
            waiters.register(call.me, wake);
        }
        let now_ms = self.clock.monotonic_ms();
        let lease_expiry = match call.group.prepare_park(call.me, wake, now_ms) {
            ParkDecision::Retry => return None,
            ParkDecision::Park {
                nudge,
                lease_expiry,
            } => {
                for member in nudge {
                    let _ = member.try_send(());
                }
                lease_expiry
            }
        };
        // The re-check: an append that raced the registration is seen here.
        let arrived = call.leases.iter().any(|(partition, lease)| {
            lease.next.is_some_and(|next| {
                call.topic.signals[*partition as usize].end_after_registering() > next
            })
        });
        (!arrived).then_some(lease_expiry)
    }

    /// After a park: the session no longer waits for the clock to step.
    fn stop_waiting_on_clock(&self, call: &Call) {
        if let Some(waiters) = &self.topics.clock_waiters {
            waiters.remove(call.me);
        }
    }

    fn batch(&self, call: &Call, messages: Vec<DataArc<TopicMessage>>) -> ConsumeBatch {
        let now = self.reading();
        let positions = call
            .group
            .positions_of(call.me)
            .into_iter()
            .map(
                |(partition, committed, next, lease_expires_at)| PartitionPosition {
                    partition,
                    committed,
                    next,
                    end: call.topic.signals[partition as usize].end(),
                    lease_expires_at_ms: now.wall_at(lease_expires_at),
                },
            )
            .collect();
        ConsumeBatch {
            topic: call.topic.name.to_string(),
            group: call.group.name.to_string(),
            messages,
            positions,
            retention_skips: call.skips.clone(),
        }
    }
}
