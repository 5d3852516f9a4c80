//! Consumer sessions: the topic-consumer side of a registered connection.
//!
//! A connection becomes a consumer session on its first `consume`. The session owns the
//! [`SessionWake`] that wakes its consume calls and remembers the groups it joined, so that when its
//! connection unregisters (by the host, after a heartbeat timeout, or at shutdown) its
//! leases end at once — whatever it had not committed is handed out again — and a consume
//! parked on it wakes up and returns [`LiveError::UnknownConnection`].

use crate::error::{LiveError, LiveResult};
use crate::sync::{lock, Arc, AtomicBool, AtomicUsize, Mutex, Ordering};
use crate::topics::group::Group;
use crate::topics::wait::{Parker, SessionWake};
use crate::topics::Topic;
use crate::types::ids::ConnectionId;

/// One connection's consumer state.
pub(crate) struct ConsumerSession {
    pub(crate) id: ConnectionId,
    /// Registered in wait lists and with group members: wakes every consume call active
    /// on the session.
    pub(crate) wake: Arc<SessionWake>,
    closed: AtomicBool,
    /// Where the next consume starts reading among the session's partitions.
    rotation: AtomicUsize,
    /// The groups the session joined, with their topics.
    memberships: Mutex<Vec<(Arc<Topic>, Arc<Group>)>>,
}

impl ConsumerSession {
    pub(crate) fn new(id: ConnectionId) -> Self {
        Self {
            id,
            wake: Arc::new(SessionWake::new()),
            closed: AtomicBool::new(false),
            rotation: AtomicUsize::new(0),
            memberships: Mutex::new(Vec::new()),
        }
    }

    /// A parker for a new consume call on this session, woken by the session's wake-ups
    /// until it is dropped.
    pub(crate) fn parker(&self) -> Parker {
        SessionWake::parker(&self.wake)
    }

    /// A number that grows with every pass, to rotate the partition read first.
    pub(crate) fn next_rotation(&self) -> usize {
        self.rotation.fetch_add(1, Ordering::Relaxed)
    }

    /// True once the session's connection unregistered.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Remembers that the session joined `group`; refused beyond `max` groups, and for a
    /// deleted topic ([`LiveError::UnknownTopic`]: checked under the membership lock, so a
    /// `delete_topic` pruning memberships either sees this one or is seen here).
    pub(crate) fn join(
        &self,
        topic: &Arc<Topic>,
        group: &Arc<Group>,
        max: usize,
    ) -> LiveResult<()> {
        let mut memberships = lock(&self.memberships);
        if topic.is_deleted() {
            return Err(LiveError::UnknownTopic(topic.name.to_string()));
        }
        if memberships
            .iter()
            .any(|(_, joined)| Arc::ptr_eq(joined, group))
        {
            return Ok(());
        }
        // Groups deleted meanwhile no longer count.
        memberships.retain(|(topic, group)| !topic.is_deleted() && !group.is_deleted());
        if memberships.len() >= max {
            return Err(LiveError::OutOfBounds {
                what: "consumer groups joined by one session",
                value: memberships.len() as u64 + 1,
                min: 0,
                max: max as u64,
            });
        }
        memberships.push((topic.clone(), group.clone()));
        Ok(())
    }

    /// Forgets a group the session left.
    pub(crate) fn forget_group(&self, group: &Arc<Group>) {
        lock(&self.memberships).retain(|(_, joined)| !Arc::ptr_eq(joined, group));
    }

    /// Forgets every group of a deleted topic, so the session no longer keeps it (and its
    /// store) alive.
    pub(crate) fn forget_topic(&self, topic: &Arc<Topic>) {
        lock(&self.memberships).retain(|(joined, _)| !Arc::ptr_eq(joined, topic));
    }

    /// Ends the session: every lease it holds ends (and waiting sessions are woken to take
    /// the partitions), and every consume parked on it wakes.
    pub(crate) fn end(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let memberships = std::mem::take(&mut *lock(&self.memberships));
        for (topic, group) in &memberships {
            topic.leave(group, self.id);
            topic.forget_waiting(self.id);
        }
        self.wake.wake();
    }
}
