//! How a queued delivery names its subscription without a reference count.
//!
//! A change delivery used to carry an `Arc` of its subscription's core: one locked
//! increment per delivery on the subscription's line, which the publisher then waits on
//! (a locked instruction drains the store buffer, full of the previous delivery's stores
//! to cold channel lines). A delivery now carries a bare pointer, a [`CoreRef`], and the
//! core is kept alive for the deliveries in the channel by this protocol instead:
//!
//! 1. **Only a [`SubscriptionHandle`](super::subscription::SubscriptionHandle) sends.**
//!    A core counts its live handles (`senders`). A handle is made from a bare core only
//!    while the count is above zero (or for a fresh core, once), so once the count drops
//!    to zero no delivery of that core is ever sent again.
//! 2. **The last handle releases the core to its connection**
//!    ([`ConnectionState::release_core`](super::state::ConnectionState::release_core)).
//!    Every send of the core happened before (the count's release/acquire), so every
//!    delivery naming it is already in the channel, or was dropped. A core that never
//!    sent anything (its attempt number is where it started: zero, or for a successor
//!    after a schema change its predecessor's) is let go at once; otherwise a release
//!    marker carrying the core's `Arc` goes into the channel behind its deliveries, and
//!    the receiver lets the core go when it reaches the marker (the channel is first in,
//!    first out).
//! 3. **When the channel is full**, the core waits in the connection's attention list
//!    (flagged, with a wake-up, as a gap is). The receiver takes such cores with a stamp:
//!    the number of items it has taken from the channel plus the items queued at that
//!    moment. Everything queued before the release is among those, so once the receiver
//!    has taken and processed that many items, none can name the core
//!    ([`ReleasedCores`]). Until the receiver takes them, these cores count against the
//!    connection's subscription limit, so a connection that is never read cannot pile
//!    them up; a receiver whose connection was disconnected drops what is queued unread
//!    and lets them go.
//! 4. **When the receiver is gone** (the channel is disconnected) nothing will ever read
//!    the queued deliveries, and dropping a delivery never reads its core: the core is
//!    let go at once.
//!
//! What the receiver hands the host takes no reference to the core: a
//! [`ChangeSet`](super::delivery::ChangeSet) copies the subscription's id and names its
//! projection, which the commit keeps alive. `loom-tests/tests/core_release.rs` models step 3, and the models of
//! `subscription_lifecycle.rs` step 2 (releases racing publishes, schema changes and
//! unregistering); in loom builds a released core is marked and parked instead of freed,
//! so reading one is an assertion rather than undefined behaviour.

use std::ptr::NonNull;

use crate::connection::subscription::SubscriptionCore;
use crate::sync::LeanArc;

/// A queued delivery's subscription: the core, uncounted (see the module header).
pub(crate) struct CoreRef(NonNull<SubscriptionCore>);

// SAFETY: a `CoreRef` is a pointer to a `SubscriptionCore`, which is `Sync` (atomics,
// mutexes and immutable data). It crosses to the receiver's thread inside a delivery and is
// read there only under the protocol above, which keeps the core alive for it.
unsafe impl Send for CoreRef {}

impl CoreRef {
    /// Names `core` in a delivery about to be sent through a handle of it.
    #[inline(always)]
    pub(crate) fn of(core: &LeanArc<SubscriptionCore>) -> Self {
        let core = LeanArc::as_ptr(core).cast_mut();
        // SAFETY: an `Arc`'s data pointer is never null.
        Self(unsafe { NonNull::new_unchecked(core) })
    }

    /// The core.
    ///
    /// # Safety
    ///
    /// The caller is the receiver of the channel this reference came through, and is still
    /// processing the delivery that holds it (held cores are let go only between
    /// deliveries, see [`ReleasedCores`]).
    #[inline(always)]
    pub(crate) unsafe fn core(&self) -> &SubscriptionCore {
        // SAFETY: by the protocol (module header) the core is let go only once the receiver
        // has processed every delivery queued before its release, which includes the one
        // holding this reference; the caller is still processing it.
        let core = unsafe { self.0.as_ref() };
        #[cfg(livecore_loom)]
        assert!(
            !core.model_released(),
            "a queued delivery names a core that was already released"
        );
        core
    }
}

/// Released cores a receiver holds until the deliveries queued before their release are
/// processed (step 3 of the module header), and the count of items taken from the channel.
/// The count moves as each item is taken; held cores are let go only between items (when
/// every item taken has been processed), so counting an item before processing it is safe.
pub(crate) struct ReleasedCores {
    /// Channel items the receiver has taken so far.
    popped: u64,
    /// Each core with the `popped` count after which nothing queued can name it.
    held: Vec<(u64, LeanArc<SubscriptionCore>)>,
    /// The smallest stamp held (`u64::MAX` when none), so the check between items is one
    /// comparison.
    next_due: u64,
}

impl ReleasedCores {
    /// An empty set (nothing held, nothing taken).
    pub(crate) fn new() -> Self {
        Self {
            popped: 0,
            held: Vec::new(),
            next_due: u64::MAX,
        }
    }

    /// Takes `cores`, released while `queued` items were waiting in the channel (called
    /// between items). Returns those already free to go (nothing was queued).
    pub(crate) fn hold(
        &mut self,
        cores: Vec<LeanArc<SubscriptionCore>>,
        queued: usize,
    ) -> Vec<LeanArc<SubscriptionCore>> {
        // Mutant: the stamp forgets the queue; a core is let go while a delivery naming it
        // still waits in the channel.
        let queued = if crate::sync::mutant!("released_stamp_ignores_queue") {
            0
        } else {
            queued as u64
        };
        if queued == 0 || cores.is_empty() {
            return cores;
        }
        let due = self.popped + queued;
        self.next_due = self.next_due.min(due);
        self.held.extend(cores.into_iter().map(|core| (due, core)));
        Vec::new()
    }

    /// Counts one item taken from the channel.
    #[inline(always)]
    pub(crate) fn count_popped(&mut self) {
        self.popped += 1;
    }

    /// Items taken from the channel so far.
    #[inline(always)]
    pub(crate) fn popped(&self) -> u64 {
        self.popped
    }

    /// True when a held core is due to go (before the receiver takes another item).
    #[inline(always)]
    pub(crate) fn any_due(&self) -> bool {
        self.popped >= self.next_due
    }

    /// The held cores nothing queued can name any more (called between items).
    #[inline(always)]
    pub(crate) fn take_due(&mut self) -> Option<Vec<LeanArc<SubscriptionCore>>> {
        // `next_due` is u64::MAX while nothing is held.
        if !self.any_due() {
            return None;
        }
        self.split_due()
    }

    #[cold]
    fn split_due(&mut self) -> Option<Vec<LeanArc<SubscriptionCore>>> {
        let popped = self.popped;
        let (due, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(stamp, _)| *stamp <= popped);
        self.next_due = kept
            .iter()
            .map(|(stamp, _)| *stamp)
            .min()
            .unwrap_or(u64::MAX);
        self.held = kept;
        Some(due.into_iter().map(|(_, core)| core).collect())
    }

    /// Cores held, for tests.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.held.len()
    }
}
#[cfg(all(test, not(livecore_loom)))]
mod tests {
    use std::sync::Weak;

    use super::ReleasedCores;
    use crate::connection::subscription::SubscriptionCore;
    use crate::sync::{lock, LeanArc};
    use crate::*;

    fn manager(capacity: usize, max_subscriptions: usize) -> ConnectionsManager {
        manager_with(ManagerConfig {
            notification_channel_capacity: capacity,
            max_subscriptions_per_connection: max_subscriptions,
            ..ManagerConfig::default()
        })
    }

    /// A manager with table `app.t` (one column, `id`).
    fn manager_with(config: ManagerConfig) -> ConnectionsManager {
        let manager = ConnectionsManager::new(config).unwrap();
        manager
            .register_table(TableSchema::new(
                TableId::new("app", "t"),
                TableScope::Shared,
                ["id"],
            ))
            .unwrap();
        manager
    }

    fn connect(manager: &ConnectionsManager) -> ConnectionRegistration {
        let registration = manager.register_connection().unwrap();
        manager
            .authenticate(registration.connection_id, UserId::from("u"), None)
            .unwrap();
        registration
    }

    fn subscribe(manager: &ConnectionsManager, connection: ConnectionId) -> LiveQueryId {
        manager
            .subscribe(
                connection,
                QuerySpec::table(TableId::new("app", "t")),
                SubscriptionOptions::default(),
            )
            .unwrap()
            .live_query_id
    }

    fn publish(manager: &ConnectionsManager, seq: u64) {
        let row = Row::new(vec![Value::Int(seq as i64)]);
        manager
            .publish(
                SeqId(seq),
                ChangeNotification::insert(TableId::new("app", "t"), row),
            )
            .unwrap();
    }

    /// A subscription's core, watched without keeping it alive.
    struct Watched {
        alive: Weak<()>,
        core: *const SubscriptionCore,
    }

    impl Watched {
        fn is_alive(&self) -> bool {
            self.alive.strong_count() > 0
        }
    }

    /// The subscription's current core.
    fn core_of(manager: &ConnectionsManager, id: LiveQueryId) -> LeanArc<SubscriptionCore> {
        let connection = manager.connection(id.connection_id).unwrap();
        let subscriptions = lock(&connection.subscriptions);
        subscriptions.get(&id.subscription_id).unwrap().core.clone()
    }

    /// Watches the subscription's current core.
    fn watch(manager: &ConnectionsManager, id: LiveQueryId) -> Watched {
        let core = core_of(manager, id);
        Watched {
            alive: core.drop_witness(),
            core: LeanArc::as_ptr(&core),
        }
    }

    #[test]
    fn a_held_core_goes_once_what_was_queued_is_processed() {
        let manager = manager(4, 10);
        let registration = connect(&manager);
        let ids = [0, 1].map(|_| subscribe(&manager, registration.connection_id));
        let [first, second] = ids.map(|id| core_of(&manager, id));
        let watched = LeanArc::as_ptr(&first);
        let mut released = ReleasedCores::new();
        assert!(released.hold(vec![first], 2).is_empty());
        assert_eq!(released.held(), 1);
        released.count_popped();
        assert!(released.take_due().is_none(), "one queued item left");
        released.count_popped();
        let due = released.take_due().expect("due after two");
        assert_eq!(due.len(), 1);
        assert_eq!(LeanArc::as_ptr(&due[0]), watched);
        assert_eq!(released.held(), 0);
        // Nothing queued: free at once.
        assert_eq!(released.hold(vec![second], 0).len(), 1);
        released.count_popped();
        assert!(released.take_due().is_none());
    }

    #[test]
    fn a_core_that_never_sent_is_freed_on_unsubscribe() {
        let manager = manager(4, 10);
        let registration = connect(&manager);
        let id = subscribe(&manager, registration.connection_id);
        let core = watch(&manager, id);
        manager.unsubscribe(id).unwrap();
        assert!(!core.is_alive(), "nothing queued named it");
    }

    #[test]
    fn a_core_with_queued_deliveries_lives_until_the_receiver_passes_them() {
        let manager = manager(4, 10);
        let mut registration = connect(&manager);
        let id = subscribe(&manager, registration.connection_id);
        publish(&manager, 1);
        publish(&manager, 2);
        let core = watch(&manager, id);
        manager.unsubscribe(id).unwrap();
        assert!(core.is_alive(), "two deliveries still name it");
        // Both deliveries are skipped (it was removed), then its release marker.
        assert_eq!(
            registration.notifications.try_recv().unwrap_err(),
            ReceiveError::Empty
        );
        assert!(!core.is_alive(), "released behind its deliveries");
    }

    #[test]
    fn a_release_behind_a_full_channel_counts_against_the_limit_until_read() {
        let manager = manager(1, 1);
        let mut registration = connect(&manager);
        let connection = registration.connection_id;
        let id = subscribe(&manager, connection);
        publish(&manager, 1);
        let core = watch(&manager, id);
        manager.unsubscribe(id).unwrap();
        assert!(core.is_alive(), "the full channel still names it");
        // The connection holds the released core for its receiver: the one place is taken.
        let refused = manager.subscribe(
            connection,
            QuerySpec::table(TableId::new("app", "t")),
            SubscriptionOptions::default(),
        );
        assert!(
            matches!(
                refused,
                Err(LiveError::SubscriptionLimitReached { max: 1, .. })
            ),
            "{refused:?}"
        );
        assert_eq!(
            registration.notifications.try_recv().unwrap_err(),
            ReceiveError::Empty
        );
        assert!(!core.is_alive(), "let go once its delivery was processed");
        subscribe(&manager, connection);
    }

    #[test]
    fn dropping_the_receiver_lets_released_cores_go() {
        let manager = manager(1, 10);
        let registration = connect(&manager);
        let id = subscribe(&manager, registration.connection_id);
        publish(&manager, 1);
        let core = watch(&manager, id);
        drop(registration.notifications);
        manager.unsubscribe(id).unwrap();
        assert!(!core.is_alive(), "nobody will read the channel again");
    }

    /// A disconnected connection hands nothing out again, so the released cores its
    /// receiver held back go on the next receive (not only when the receiver is dropped).
    #[test]
    fn a_disconnected_receiver_lets_held_cores_go() {
        let manager = manager_with(ManagerConfig {
            notification_channel_capacity: 1,
            slow_consumer_policy: SlowConsumerPolicy::Disconnect,
            ..ManagerConfig::default()
        });
        let mut registration = connect(&manager);
        let id = subscribe(&manager, registration.connection_id);
        publish(&manager, 1);
        publish(&manager, 2); // the channel is full: disconnect
        let core = watch(&manager, id);
        manager.unsubscribe(id).unwrap();
        assert!(core.is_alive(), "the full channel still names it");
        assert_eq!(
            registration.notifications.try_recv().unwrap_err(),
            ReceiveError::Closed
        );
        // A cut-off connection's channel is left full (so what is published to it until
        // the host unregisters it is dropped and counted): the queued delivery still
        // names the core, which goes when the host unregisters the connection.
        assert!(core.is_alive(), "the channel is left as it was");
        assert_eq!(registration.notifications.queued(), 1);
        manager
            .unregister_connection(registration.connection_id)
            .unwrap();
        assert_eq!(
            registration.notifications.try_recv().unwrap_err(),
            ReceiveError::Closed
        );
        assert!(!core.is_alive(), "nothing will be read again");
        assert_eq!(registration.notifications.queued(), 0);
    }

    /// A core that took over after a schema change and never sent anything is freed at
    /// once on release, even behind a full channel: numbering continues from its
    /// predecessor, but only its own sends keep it.
    #[test]
    fn a_successor_that_never_sent_is_freed_at_once() {
        let manager = manager(1, 10);
        let registration = connect(&manager);
        let id = subscribe(&manager, registration.connection_id);
        publish(&manager, 1); // fills the channel
        let first = watch(&manager, id);
        manager
            .register_table(TableSchema::new(
                TableId::new("app", "t"),
                TableScope::Shared,
                ["id", "extra"],
            ))
            .unwrap();
        let successor = watch(&manager, id);
        assert_ne!(first.core, successor.core, "a new core took over");
        manager.unsubscribe(id).unwrap();
        assert!(!successor.is_alive(), "it never sent anything");
        assert!(first.is_alive(), "its delivery is still queued");
        drop(registration);
    }
}
