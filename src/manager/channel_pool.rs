//! Connections' notification channels, made in batches so they sit side by side in memory.
//!
//! A fan-out touches one channel per delivery. Made one at a time, at registration, each
//! channel's shared state lands between its connection's other allocations (the
//! connection's state, its event channel), a few hundred bytes from the next connection's:
//! every delivery then touches lines and pages no other delivery shares. Made in a batch,
//! consecutive channels are neighbours, so a walk over many connections reads fewer
//! distinct lines and pages and the hardware prefetchers can follow it. A bare-channel
//! harness (10k bounded flume channels, one `try_send` each) put the spread-out layout at
//! about a quarter slower than the packed one.
//!
//! The allocator decides where memory goes; a batch only makes neighbours likely (a fresh
//! run of same-sized blocks usually comes from one contiguous region). Nothing depends on
//! it. The pool holds at most one batch less one channel; a channel waiting here has no
//! connection and is dropped with the manager.

use crate::connection::delivery::Delivery;
use crate::connection::state::NotificationSender;
use crate::sync::{channel, lock, Mutex};

/// The receiving end of a notification channel.
type NotificationRx = channel::Receiver<Delivery>;

/// Channels made at a time. Loom models make one: each channel is a modelled object.
#[cfg(not(livecore_loom))]
const BATCH: usize = 32;
#[cfg(livecore_loom)]
const BATCH: usize = 1;

/// Spare notification channels of one capacity.
pub(crate) struct ChannelPool {
    capacity: usize,
    spare: Mutex<Vec<(NotificationSender, NotificationRx)>>,
}

impl ChannelPool {
    /// An empty pool of channels holding `capacity` items each.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            spare: Mutex::new(Vec::new()),
        }
    }

    /// A fresh channel: a spare one, or the first of a new batch.
    pub(crate) fn take(&self) -> (NotificationSender, NotificationRx) {
        let mut spare = lock(&self.spare);
        if let Some(channel) = spare.pop() {
            return channel;
        }
        // A new batch: the first channel for this call, the rest kept in reverse, so that
        // popping hands them out in the order they were made (the order of their addresses,
        // when the allocator runs them together).
        let first = channel::bounded(self.capacity);
        let rest: Vec<_> = (1..BATCH)
            .map(|_| channel::bounded(self.capacity))
            .collect();
        spare.extend(rest.into_iter().rev());
        first
    }
}

#[cfg(all(test, not(livecore_loom)))]
mod tests {
    use super::*;

    #[test]
    fn channels_are_fresh_and_of_the_pool_capacity() {
        let pool = ChannelPool::new(2);
        let channels: Vec<_> = (0..BATCH + 3).map(|_| pool.take()).collect();
        for (tx, rx) in &channels {
            // Each channel is its own: empty, and full after two sends.
            assert!(rx.is_empty());
            assert!(tx.try_send(Delivery::wake()).is_ok());
            assert!(tx.try_send(Delivery::wake()).is_ok());
            assert!(tx.try_send(Delivery::wake()).is_err());
            assert_eq!(rx.len(), 2);
        }
        // A second batch was made once the first ran out, and it keeps the rest.
        assert_eq!(lock(&pool.spare).len(), BATCH - 3);
    }
}
