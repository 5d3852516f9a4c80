//! Prefetch hints for the cache lines a delivery is about to touch: a publish walking many
//! candidates asks for the next ones' subscription and channel lines before it sends to the
//! current one, so their misses overlap instead of queueing one behind another. A hint
//! reads nothing the program can observe and never faults, whatever the address; where the
//! target has no prefetch instruction, it compiles to nothing.

use crate::connection::state::NotificationSender;

/// Hints that the line holding `address` will be read soon.
#[inline(always)]
pub(crate) fn prefetch(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` is a hint to the cache: it has no architectural effect and
    // does not fault on any address, so any pointer value is sound here.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(address.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// Lines of a channel's shared state a send touches (its lock, queue and counters).
#[cfg(not(livecore_loom))]
const CHANNEL_LINES: usize = 3;

/// Hints the lines of the channel behind `tx`.
///
/// flume does not expose its channel's address; its sender is one pointer to the channel's
/// shared state, which is what is read here. Should a flume release change that layout, the
/// hint goes to a wrong address: a wasted prefetch, never a wrong read.
#[inline(always)]
pub(crate) fn prefetch_channel(tx: &NotificationSender) {
    #[cfg(not(livecore_loom))]
    {
        const _: () = assert!(std::mem::size_of::<NotificationSender>() == 8);
        // SAFETY: `tx` is a valid, initialized sender of pointer size (checked above), so
        // reading its bytes as a raw pointer reads initialized memory; the pointer is only
        // ever handed to `prefetch`, never dereferenced.
        let shared: *const u8 = unsafe { std::mem::transmute_copy(tx) };
        for line in 0..CHANNEL_LINES {
            prefetch(shared.wrapping_add(line * 64));
        }
    }
    #[cfg(livecore_loom)]
    let _ = tx;
}
