//! The C ABI: thin, panic-safe wrappers over the Rust API, declared in
//! `include/livecore.h` (generated from this module by cbindgen; `cbindgen.toml` at the
//! root).
//!
//! Conventions, for every `lc_` function:
//!
//! - It returns an [`lc_status`]. Failures (100 and up) record a message for the calling
//!   thread, read with `lc_last_error`.
//! - Its body runs inside a panic boundary: a Rust panic comes back as `LC_ERR_PANIC`,
//!   never as an unwind into C (the library is never built with `panic = "abort"`).
//! - Arguments are checked before anything happens: NULL, misaligned pointers, invalid
//!   UTF-8, impossible lengths, unknown tags and stale handles are errors, and a failed call
//!   has no effect (receives do not consume, subscribes do not subscribe).
//! - Objects C owns are generation-checked handles (`handles`), so use after free and
//!   double free are reported, not undefined.
//! - Inputs are only read during the call; outputs that point into livecore's memory say
//!   which handle owns them and which call frees it.
//! - Names are `lc_<object>_<verb>` (`lc_table_register`, `lc_subscription_cancel`);
//!   accessors of a handle's contents are nouns (`lc_notification_column`); a list handle
//!   is named by the plural of what it holds (`lc_records`, `lc_topic_routes`) and made by
//!   `lc_<item>_list`. Only the library-wide `lc_version`, `lc_abi_version`,
//!   `lc_last_error` and `lc_status_name` have no object.
//! - Every string handed out of a handle is UTF-8 followed by a NUL, with its length in
//!   bytes (without the NUL) beside it (`state::CText`); text values (`lc_value`) are
//!   data, `len` bytes that may hold NUL.
//! - Structs that may grow begin with `struct_size`, inputs and outputs alike: the caller
//!   sets it to the size it was built with, and livecore reads or writes no more than that
//!   (and sets it, on output, to the bytes written). A size smaller than the struct's
//!   first version is refused; an output larger than this library's (a newer header) gets
//!   this library's fields and nothing past them; an input, and the `_init` function that
//!   fills one, takes a published size only (`ptr::read_sized`, `ptr::SizedOut`). Structs
//!   without it (`lc_value`, `lc_change`, `lc_live_query_id`, `lc_change_info`,
//!   `lc_topic_retention_skip`) are frozen: their layout never changes within an ABI version; more information would come
//!   as a new struct and function.
//! - `reserved` fields of input structs must be zero (`LC_ERR_INVALID_ARGUMENT`
//!   otherwise), so later versions can give them a meaning.
//!
//! Each connection's receivers have one consumer at a time; everything else may be called
//! from any thread.

#![allow(non_camel_case_types)]

// The panic boundary of every extern function relies on catching unwinds: with
// `panic = "abort"` a panic would abort the host process instead of becoming LC_ERR_PANIC.
#[cfg(panic = "abort")]
compile_error!(
    "livecore's C ABI needs panic = \"unwind\": every extern \"C\" function catches panics \
     and returns LC_ERR_PANIC, which a panic = \"abort\" build cannot do"
);

// The order of these groups is the order of the header (cbindgen follows it).
pub mod status;

pub mod types;

// Library and manager, then connections, subscriptions, publishing, notifications.
pub mod manager;

pub mod connection;

pub mod subscription;

pub mod publish;

pub mod notification;

// Live-query records and failover.
pub mod records;

// Topics: topics, direct publishes, routes and consumer groups; then consuming.
pub mod topics;

pub mod consume;

// Reading topics outside groups, listing topics and routes; host-supplied stores.
pub mod topic_read;

pub mod store;

// The durable fjall store opened by path (its functions only with the `fjall` feature).
pub mod fjall_store;

pub(crate) mod handles;
pub(crate) mod last_error;
pub(crate) mod manager_lookup;
pub(crate) mod ptr;
pub(crate) mod state;
pub(crate) mod values;

pub use connection::*;
pub use consume::*;
pub use fjall_store::*;
pub use manager::*;
pub use notification::*;
pub use publish::*;
pub use records::*;
pub use status::{inject_panic_at, inject_panic_on_next_call, lc_status, PanicPoint};
pub use store::*;
pub use subscription::*;
pub use topic_read::*;
pub use topics::*;
pub use types::*;

/// Live handles of each kind (managers, notifications, subscription results, records,
/// failover reports, topic batches, topic name lists, topic route lists, fjall stores),
/// for tests that check nothing leaks. Not part of the C ABI.
#[doc(hidden)]
pub fn live_handle_counts() -> [usize; 9] {
    state::live_counts()
}
