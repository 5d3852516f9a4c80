//! One connection and its subscriptions: the connection's state and channels, each
//! subscription's state with its snapshot gate, the deliveries that travel through the
//! channel, and the receivers that turn them into notifications for the host.

pub(crate) mod core_ref;
pub(crate) mod delivery;
pub(crate) mod gate;
pub(crate) mod prefetch;
pub(crate) mod receiver;
pub(crate) mod state;
#[cfg(all(feature = "stream", not(livecore_loom)))]
pub(crate) mod stream;
pub(crate) mod subscription;
pub(crate) mod subscription_map;
