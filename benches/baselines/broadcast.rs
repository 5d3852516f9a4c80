//! `tokio::sync::broadcast` as the baseline for unfiltered fan-out: what a user who needs no
//! filtering, no per-user scoping and no per-subscriber channel would reach for.
//!
//! One `send` publishes a change to every receiver (an `Arc` of the change, cloned as each
//! receiver takes it); the fan-out cost moves to the receiving side.

use std::sync::Arc;

use tokio::sync::broadcast;

/// A broadcast channel with `subscribers` receivers.
pub struct BroadcastFanout<T> {
    /// The sending side.
    pub tx: broadcast::Sender<Arc<T>>,
    /// One receiver per subscriber.
    pub receivers: Vec<broadcast::Receiver<Arc<T>>>,
}

impl<T> BroadcastFanout<T> {
    /// A channel holding up to `capacity` changes, with `subscribers` receivers.
    pub fn new(subscribers: usize, capacity: usize) -> Self {
        let (tx, first) = broadcast::channel(capacity);
        let mut receivers = Vec::with_capacity(subscribers);
        if subscribers > 0 {
            receivers.push(first);
        }
        while receivers.len() < subscribers {
            receivers.push(tx.subscribe());
        }
        Self { tx, receivers }
    }

    /// Publishes one change; returns how many receivers will see it.
    pub fn publish(&self, change: &Arc<T>) -> usize {
        self.tx.send(Arc::clone(change)).unwrap_or(0)
    }

    /// Takes everything waiting on every receiver; returns how many changes were taken.
    pub fn drain(&mut self) -> u64 {
        drain_broadcast(&mut self.receivers)
    }
}

/// Takes everything waiting on `receivers`; returns how many changes were taken.
pub fn drain_broadcast<T: Clone>(receivers: &mut [broadcast::Receiver<T>]) -> u64 {
    let mut taken = 0;
    for rx in receivers.iter_mut() {
        loop {
            match rx.try_recv() {
                Ok(item) => {
                    std::hint::black_box(item);
                    taken += 1;
                }
                // A lagged receiver lost changes: the bench sizes the channel so it never
                // happens, and a lost change shows up as a count that never completes.
                Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                Err(_) => break,
            }
        }
    }
    taken
}
