//! Subscriptions a publish ended, queued for the next subscribe to take out of the
//! routing index (a publish never takes the index's writer lock).

use crate::sync::{lock, AtomicBool, Mutex, Ordering};
use crate::types::ids::LiveQueryId;

/// The subscriptions ended on the publish path (their gate buffer overflowed), for the
/// next subscribe to unroute. A flag in front of the list lets that subscribe see "none"
/// without the list's lock, which is every subscribe but the rare one after an overflow.
pub(crate) struct ReapQueue {
    pending: AtomicBool,
    ended: Mutex<Vec<LiveQueryId>>,
}

impl ReapQueue {
    /// An empty queue.
    pub(crate) fn new() -> Self {
        Self {
            pending: AtomicBool::new(false),
            ended: Mutex::new(Vec::new()),
        }
    }

    /// Queues `live_query_id`; the flag is raised after it is in the list.
    pub(crate) fn push(&self, live_query_id: LiveQueryId) {
        lock(&self.ended).push(live_query_id);
        self.pending.store(true, Ordering::Release);
    }

    /// Takes what is queued. A push whose flag is not raised yet may be left for the next
    /// call (or taken now without its flag): either way it is taken once.
    pub(crate) fn take(&self) -> Vec<LiveQueryId> {
        if !self.pending.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        std::mem::take(&mut *lock(&self.ended))
    }
}

#[cfg(all(test, not(livecore_loom)))]
mod tests {
    use super::ReapQueue;
    use crate::types::ids::{ConnectionId, LiveQueryId, SubscriptionId};

    #[test]
    fn the_reap_queue_hands_out_each_ended_subscription_once() {
        let queue = ReapQueue::new();
        assert!(queue.take().is_empty(), "nothing queued");
        let ended = |n| LiveQueryId::new(ConnectionId(1), SubscriptionId(n));
        queue.push(ended(1));
        queue.push(ended(2));
        assert_eq!(queue.take(), vec![ended(1), ended(2)]);
        assert!(queue.take().is_empty(), "taken already");
        queue.push(ended(3));
        assert_eq!(queue.take(), vec![ended(3)], "queued after a take");
    }
}
