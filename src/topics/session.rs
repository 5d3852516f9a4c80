//! Consumer sessions: the topic-consumer side of a registered connection.
//!
//! A connection becomes a consumer session on its first `consume`. The session owns the
//! [`SessionWake`] that wakes its consume calls and remembers the groups it joined, so that when its
//! connection unregisters (by the host, after a heartbeat timeout, or at shutdown) its
//! leases end at once — whatever it had not committed is handed out again — and a consume
//! parked on it wakes up and returns [`LiveError::UnknownConnection`]. When the session
//! leaves one group, a consume of that group parked on it wakes up and returns an empty
//! batch at once (see [`ConsumerSession::forget_group`]).

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
    /// The groups the session joined, with their topics and their [`Membership`] marks.
    memberships: Mutex<Vec<Joined>>,
}

/// A group the session joined: its topic, the group, and the membership's mark.
type Joined = (Arc<Topic>, Arc<Group>, Membership);

/// One joining of a group by a session, shared by the consume calls made under it: set once
/// the session leaves the group, so those calls stop (and take no lease again) rather than
/// wait out their timeout.
#[derive(Clone)]
pub(crate) struct Membership {
    left: Arc<AtomicBool>,
}

impl Membership {
    fn new() -> Self {
        Self {
            left: Arc::new(AtomicBool::new(false)),
        }
    }

    /// True once the session left the group (this membership ended).
    pub(crate) fn has_left(&self) -> bool {
        self.left.load(Ordering::SeqCst)
    }
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
    /// `delete_topic` pruning memberships either sees this one or is seen here). Returns
    /// the membership, which a consume call keeps to notice the session leaving the group.
    pub(crate) fn join(
        &self,
        topic: &Arc<Topic>,
        group: &Arc<Group>,
        max: usize,
    ) -> LiveResult<Membership> {
        let mut memberships = lock(&self.memberships);
        if topic.is_deleted() {
            return Err(LiveError::UnknownTopic(topic.name.to_string()));
        }
        if let Some((_, _, membership)) = memberships
            .iter()
            .find(|(_, joined, _)| Arc::ptr_eq(joined, group))
        {
            return Ok(membership.clone());
        }
        // Groups deleted meanwhile no longer count.
        memberships.retain(|(topic, group, _)| !topic.is_deleted() && !group.is_deleted());
        if memberships.len() >= max {
            return Err(LiveError::OutOfBounds {
                what: "consumer groups joined by one session",
                value: memberships.len() as u64 + 1,
                min: 0,
                max: max as u64,
            });
        }
        let membership = Membership::new();
        memberships.push((topic.clone(), group.clone(), membership.clone()));
        Ok(membership)
    }

    /// Forgets a group the session is leaving, and marks the membership left: the consume
    /// calls made under it take no lease in the group any more
    /// ([`Group::assign`] checks the mark under the group's lock) and return an empty batch
    /// once woken. Called before the group releases the session's leases, so a pass that
    /// takes the group's lock after the release sees the mark; the caller then wakes the
    /// session.
    pub(crate) fn forget_group(&self, group: &Arc<Group>) {
        lock(&self.memberships).retain(|(_, joined, membership)| {
            let leaving = Arc::ptr_eq(joined, group);
            if leaving {
                membership.left.store(true, Ordering::SeqCst);
            }
            !leaving
        });
    }

    /// Forgets every group of a deleted topic, so the session no longer keeps it (and its
    /// store) alive.
    pub(crate) fn forget_topic(&self, topic: &Arc<Topic>) {
        lock(&self.memberships).retain(|(joined, _, _)| !Arc::ptr_eq(joined, topic));
    }

    /// Ends the session: every lease it holds ends (and waiting sessions are woken to take
    /// the partitions), and every consume parked on it wakes.
    pub(crate) fn end(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let memberships = std::mem::take(&mut *lock(&self.memberships));
        for (topic, group, _) in &memberships {
            topic.leave(group, self.id);
            topic.forget_waiting(self.id);
        }
        self.wake.wake();
    }
}
