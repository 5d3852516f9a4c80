//! Status codes, the per-thread last error, and the panic boundary every extern function
//! runs its body inside.

use std::cell::Cell;
use std::ffi::CString;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::ffi::last_error;
use crate::sync::{AtomicBool, Ordering};
use crate::LiveError;

/// The outcome of every `lc_` function. Its numbers are part of the ABI and never change.
///
/// `LC_OK` (0) is success. Codes 1 to 99 are outcomes that are not failures (nothing to
/// receive, a timeout, a closed connection, a full channel); they leave the last error
/// alone. Codes from 100 up are failures: the calling thread's last error
/// (`lc_last_error`) then says what went wrong. Ranges: 100-199 bad arguments and handles,
/// 200-299 refusals of the live-query core, 300-399 topics and consumer groups, 900-999
/// internal.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum lc_status {
    /// Success.
    LC_OK = 0,
    /// Nothing is waiting (a receive with a timeout of 0).
    LC_EMPTY = 1,
    /// Nothing arrived before the timeout.
    LC_TIMEOUT = 2,
    /// The connection (or the manager) is closed. A notification receive hands out nothing
    /// more: notifications still queued when it closed are discarded (the client resumes
    /// from the last SeqId it got). An event receive hands out the pending events first.
    LC_CLOSED = 3,
    /// The connection's notification channel is full; the out-report says how much was
    /// taken. Retry the rest once the receiver has drained. (A connection cut off as a slow
    /// consumer, whose channel stays full, is `LC_ERR_INVALID_STATE` instead: unregister
    /// it.)
    LC_WOULD_BLOCK = 4,
    /// A required pointer argument is NULL.
    LC_ERR_NULL_ARGUMENT = 100,
    /// A string argument or a text value is not valid UTF-8.
    LC_ERR_INVALID_UTF8 = 101,
    /// An argument is out of range (a length, a flag, a boolean that is not 0 or 1).
    LC_ERR_INVALID_ARGUMENT = 102,
    /// A type tag (value type, change type, scope, policy) is not one this library knows.
    LC_ERR_INVALID_TAG = 103,
    /// A handle is zero, of the wrong kind, already freed, or was never issued.
    LC_ERR_INVALID_HANDLE = 104,
    /// A struct's `struct_size` is smaller than the first published version of the struct,
    /// or, for a struct livecore reads (and the `_init` function that fills one), not the
    /// size of one of its published versions (a newer header's larger input included). An
    /// output's larger `struct_size` is accepted (see the header's opening notes).
    LC_ERR_STRUCT_SIZE = 105,
    /// Another thread is using this connection's receiver: one consumer at a time.
    LC_ERR_RECEIVER_BUSY = 106,
    /// The operation needs a feature the manager was not configured with (the ready queue,
    /// the manual clock).
    LC_ERR_NOT_ENABLED = 107,
    /// An index is past the end (of columns, changes, rows).
    LC_ERR_INDEX_OUT_OF_RANGE = 108,
    /// The manager already holds its maximum of connections.
    LC_ERR_CONNECTION_LIMIT = 200,
    /// The connection already holds its maximum of subscriptions.
    LC_ERR_SUBSCRIPTION_LIMIT = 201,
    /// The manager is shutting down; also a call naming a connection the shutdown closed.
    LC_ERR_SHUTTING_DOWN = 202,
    /// No connection with this id is registered.
    LC_ERR_UNKNOWN_CONNECTION = 203,
    /// The connection must authenticate before subscribing or consuming.
    LC_ERR_NOT_AUTHENTICATED = 204,
    /// The connection is already authenticated as another user.
    LC_ERR_ALREADY_AUTHENTICATED = 205,
    /// No table with this id or key is registered.
    LC_ERR_UNKNOWN_TABLE = 206,
    /// A table schema was refused.
    LC_ERR_INVALID_SCHEMA = 207,
    /// A filter or projection names a column the table does not have.
    LC_ERR_UNKNOWN_COLUMN = 208,
    /// A filter nests deeper than the configured limit.
    LC_ERR_FILTER_TOO_DEEP = 209,
    /// A filter has more nodes than the configured limit.
    LC_ERR_FILTER_TOO_LARGE = 210,
    /// An IN list is longer than the configured limit.
    LC_ERR_IN_LIST_TOO_LONG = 211,
    /// A LIKE or GLOB pattern is longer than the configured limit.
    LC_ERR_LIKE_PATTERN_TOO_LONG = 212,
    /// A filter cannot be evaluated (or a commit is too large).
    LC_ERR_INVALID_FILTER = 213,
    /// The subscription SQL could not be parsed or uses an unsupported construct.
    LC_ERR_SQL = 214,
    /// No subscription with this id exists.
    LC_ERR_UNKNOWN_SUBSCRIPTION = 215,
    /// The operation does not fit the current state: of the subscription, of its
    /// connection (cut off as a slow consumer: `LC_CONNECTION_CUT_OFF`), or of the
    /// calling thread (an `lc_` call made from inside a topic store callback, which may only
    /// call `lc_topic_read_sink_push`, `lc_last_error`, `lc_status_name`, `lc_version` and
    /// `lc_abi_version`).
    LC_ERR_INVALID_STATE = 216,
    /// A change to a user-scoped table did not name its owner.
    LC_ERR_MISSING_OWNER = 217,
    /// A row's length does not match the table's column count.
    LC_ERR_ROW_ARITY = 218,
    /// An update came without its old row.
    LC_ERR_MISSING_OLD_ROW = 219,
    /// A configuration value is out of range.
    LC_ERR_INVALID_CONFIG = 220,
    /// A commit carries more changes than livecore can address.
    LC_ERR_COMMIT_TOO_LARGE = 221,
    /// A value a client or host controls is outside its allowed bounds (a limit).
    LC_ERR_OUT_OF_BOUNDS = 222,
    /// livecore ended the subscription (its subscriber got the matching terminal
    /// notification), so the operation no longer applies. `lc_last_error` says how it
    /// ended and what to do: "must resync" (its snapshot buffer overflowed or a schema
    /// change came during its initial load: subscribe again with a fresh initial load),
    /// "resume is unavailable" (subscribe again with a fresh initial load), or "was closed
    /// (reason)" with the close reason's code (`revoked`, `table_dropped`,
    /// `schema_changed`). A connection remembers the endings of its most recent ended
    /// subscriptions, at least as many as the config's `max_subscriptions_per_connection`
    /// (`lc_subscription_cancel` on one succeeds and forgets it); older ones are
    /// `LC_ERR_UNKNOWN_SUBSCRIPTION`.
    LC_ERR_SUBSCRIPTION_ENDED = 223,
    // 300-399: topics and consumer groups (the lc_topic_ functions).
    /// A name is not acceptable: a topic or consumer group name that is empty, longer than
    /// the config's `topic_max_name_len` or has characters other than ASCII letters,
    /// digits, '.', '_' and '-'; or a namespace, table, column, user or role name that is
    /// empty or longer than `LC_MAX_NAME_LEN` bytes.
    LC_ERR_INVALID_NAME = 300,
    /// No topic with this name exists.
    LC_ERR_UNKNOWN_TOPIC = 301,
    /// A topic with this name already exists.
    LC_ERR_TOPIC_EXISTS = 302,
    /// The topic has no partition with this number.
    LC_ERR_UNKNOWN_PARTITION = 303,
    /// No topic route with this id exists.
    LC_ERR_UNKNOWN_TOPIC_ROUTE = 304,
    /// The topic has no consumer group with this name.
    LC_ERR_UNKNOWN_GROUP = 305,
    /// The topic already has a consumer group with this name.
    LC_ERR_GROUP_EXISTS = 306,
    /// An offset is outside the partition's retained range.
    LC_ERR_OFFSET_OUT_OF_RANGE = 307,
    /// The group has no committed offset for the partition and no reset policy.
    LC_ERR_NO_COMMITTED_OFFSET = 308,
    /// The consumer does not hold the partition's lease in the group.
    LC_ERR_NOT_LEASE_HOLDER = 309,
    /// A commit would move the group's committed offset backwards.
    LC_ERR_COMMIT_BEHIND = 310,
    /// A commit names an offset beyond what the lease handed out.
    LC_ERR_COMMIT_AHEAD = 311,
    /// The topic's storage (a host-provided log) failed.
    LC_ERR_TOPIC_STORE = 312,
    /// A Rust panic was caught at the boundary; the message is in `lc_last_error`. The
    /// library stays usable, but the call may have been half done.
    LC_ERR_PANIC = 900,
}

/// The one list of statuses the lookups are generated from: `ALL_STATUSES`,
/// [`lc_status::from_code`] and [`lc_status::name`] (the variant's name, NUL-terminated).
/// The enum above stays a plain declaration because cbindgen reads the source without
/// expanding macros; a compile-time check ties the two together: a variant missing from
/// this list makes the exhaustive match below fail to build, and a duplicate is an
/// unreachable pattern (denied by clippy). So `lc_status_name` can never refuse a status
/// this library returns.
macro_rules! status_lookups {
    ($($variant:ident),+ $(,)?) => {
        /// Every status, for lookups by number.
        const ALL_STATUSES: [lc_status; [$(lc_status::$variant),+].len()] =
            [$(lc_status::$variant),+];

        // Exhaustive on purpose, without a wildcard: see the macro's comment.
        const _: fn(lc_status) = |status| match status {
            $(lc_status::$variant)|+ => {}
        };

        impl lc_status {
            /// The status's name as the header spells it, NUL-terminated.
            pub fn name(self) -> &'static std::ffi::CStr {
                match self {
                    $(lc_status::$variant => {
                        // Built at compile time: a name that is not a C string fails the build.
                        const NAME: &std::ffi::CStr = match std::ffi::CStr::from_bytes_with_nul(
                            concat!(stringify!($variant), "\0").as_bytes(),
                        ) {
                            Ok(name) => name,
                            Err(_) => panic!("a status name is not a C string"),
                        };
                        NAME
                    })+
                }
            }
        }
    };
}

status_lookups!(
    LC_OK,
    LC_EMPTY,
    LC_TIMEOUT,
    LC_CLOSED,
    LC_WOULD_BLOCK,
    LC_ERR_NULL_ARGUMENT,
    LC_ERR_INVALID_UTF8,
    LC_ERR_INVALID_ARGUMENT,
    LC_ERR_INVALID_TAG,
    LC_ERR_INVALID_HANDLE,
    LC_ERR_STRUCT_SIZE,
    LC_ERR_RECEIVER_BUSY,
    LC_ERR_NOT_ENABLED,
    LC_ERR_INDEX_OUT_OF_RANGE,
    LC_ERR_CONNECTION_LIMIT,
    LC_ERR_SUBSCRIPTION_LIMIT,
    LC_ERR_SHUTTING_DOWN,
    LC_ERR_UNKNOWN_CONNECTION,
    LC_ERR_NOT_AUTHENTICATED,
    LC_ERR_ALREADY_AUTHENTICATED,
    LC_ERR_UNKNOWN_TABLE,
    LC_ERR_INVALID_SCHEMA,
    LC_ERR_UNKNOWN_COLUMN,
    LC_ERR_FILTER_TOO_DEEP,
    LC_ERR_FILTER_TOO_LARGE,
    LC_ERR_IN_LIST_TOO_LONG,
    LC_ERR_LIKE_PATTERN_TOO_LONG,
    LC_ERR_INVALID_FILTER,
    LC_ERR_SQL,
    LC_ERR_UNKNOWN_SUBSCRIPTION,
    LC_ERR_INVALID_STATE,
    LC_ERR_MISSING_OWNER,
    LC_ERR_ROW_ARITY,
    LC_ERR_MISSING_OLD_ROW,
    LC_ERR_INVALID_CONFIG,
    LC_ERR_COMMIT_TOO_LARGE,
    LC_ERR_OUT_OF_BOUNDS,
    LC_ERR_SUBSCRIPTION_ENDED,
    LC_ERR_INVALID_NAME,
    LC_ERR_UNKNOWN_TOPIC,
    LC_ERR_TOPIC_EXISTS,
    LC_ERR_UNKNOWN_PARTITION,
    LC_ERR_UNKNOWN_TOPIC_ROUTE,
    LC_ERR_UNKNOWN_GROUP,
    LC_ERR_GROUP_EXISTS,
    LC_ERR_OFFSET_OUT_OF_RANGE,
    LC_ERR_NO_COMMITTED_OFFSET,
    LC_ERR_NOT_LEASE_HOLDER,
    LC_ERR_COMMIT_BEHIND,
    LC_ERR_COMMIT_AHEAD,
    LC_ERR_TOPIC_STORE,
    LC_ERR_PANIC,
);

impl lc_status {
    /// The status with this number, if any.
    pub fn from_code(code: u32) -> Option<lc_status> {
        ALL_STATUSES
            .iter()
            .copied()
            .find(|status| *status as u32 == code)
    }

    /// True for the failure codes (100 and up), which set the last error.
    pub fn is_error(self) -> bool {
        self as u32 >= 100
    }
}

/// A failure on its way to the caller: its status and the message `lc_last_error` gives.
#[derive(Debug)]
pub(crate) struct FfiError {
    pub(crate) status: lc_status,
    pub(crate) message: String,
}

/// What an extern function's body returns: a success or non-failure outcome, or a failure.
pub(crate) type FfiResult = Result<lc_status, FfiError>;

impl FfiError {
    pub(crate) fn new(status: lc_status, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn null(argument: &(impl std::fmt::Display + ?Sized)) -> Self {
        Self::new(
            lc_status::LC_ERR_NULL_ARGUMENT,
            format!("argument `{argument}` is NULL"),
        )
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(lc_status::LC_ERR_INVALID_ARGUMENT, message)
    }

    /// `LC_ERR_INDEX_OUT_OF_RANGE`: "`what` `index` of `len`" (`len` is formatted only
    /// here, on failure).
    pub(crate) fn index(what: &str, index: usize, len: impl std::fmt::Display) -> Self {
        Self::new(
            lc_status::LC_ERR_INDEX_OUT_OF_RANGE,
            format!("{what} {index} of {len}"),
        )
    }

    pub(crate) fn tag(what: &str, tag: u32) -> Self {
        Self::new(
            lc_status::LC_ERR_INVALID_TAG,
            format!("{tag} is not a valid {what} tag"),
        )
    }
}

impl From<LiveError> for FfiError {
    fn from(error: LiveError) -> Self {
        use lc_status::*;
        // Exhaustive on purpose: a new LiveError variant must be given a status here.
        let status = match &error {
            LiveError::ConnectionLimitReached { .. } => LC_ERR_CONNECTION_LIMIT,
            LiveError::SubscriptionLimitReached { .. } => LC_ERR_SUBSCRIPTION_LIMIT,
            LiveError::ShuttingDown => LC_ERR_SHUTTING_DOWN,
            LiveError::UnknownConnection(_) => LC_ERR_UNKNOWN_CONNECTION,
            LiveError::NotAuthenticated(_) => LC_ERR_NOT_AUTHENTICATED,
            LiveError::AlreadyAuthenticated(_) => LC_ERR_ALREADY_AUTHENTICATED,
            LiveError::ConnectionCutOff(_) => LC_ERR_INVALID_STATE,
            LiveError::UnknownTable(_) => LC_ERR_UNKNOWN_TABLE,
            LiveError::InvalidSchema { .. } => LC_ERR_INVALID_SCHEMA,
            LiveError::UnknownColumn { .. } => LC_ERR_UNKNOWN_COLUMN,
            LiveError::FilterTooDeep { .. } => LC_ERR_FILTER_TOO_DEEP,
            LiveError::FilterTooLarge { .. } => LC_ERR_FILTER_TOO_LARGE,
            LiveError::InListTooLong { .. } => LC_ERR_IN_LIST_TOO_LONG,
            LiveError::LikePatternTooLong { .. } => LC_ERR_LIKE_PATTERN_TOO_LONG,
            LiveError::InvalidFilter(_) => LC_ERR_INVALID_FILTER,
            LiveError::Sql { .. } => LC_ERR_SQL,
            LiveError::UnknownSubscription(_) => LC_ERR_UNKNOWN_SUBSCRIPTION,
            LiveError::InvalidState { .. } => LC_ERR_INVALID_STATE,
            LiveError::SubscriptionEnded { .. } => LC_ERR_SUBSCRIPTION_ENDED,
            LiveError::WouldBlock { .. } => LC_WOULD_BLOCK,
            LiveError::MissingOwner(_) => LC_ERR_MISSING_OWNER,
            LiveError::RowArity { .. } => LC_ERR_ROW_ARITY,
            LiveError::MissingOldRow(_) => LC_ERR_MISSING_OLD_ROW,
            LiveError::CommitTooLarge { .. } => LC_ERR_COMMIT_TOO_LARGE,
            LiveError::OutOfBounds { .. } => LC_ERR_OUT_OF_BOUNDS,
            LiveError::InvalidName { .. } => LC_ERR_INVALID_NAME,
            LiveError::UnknownTopic(_) => LC_ERR_UNKNOWN_TOPIC,
            LiveError::TopicExists(_) => LC_ERR_TOPIC_EXISTS,
            LiveError::UnknownPartition { .. } => LC_ERR_UNKNOWN_PARTITION,
            LiveError::UnknownTopicRoute(_) => LC_ERR_UNKNOWN_TOPIC_ROUTE,
            LiveError::UnknownGroup { .. } => LC_ERR_UNKNOWN_GROUP,
            LiveError::GroupExists { .. } => LC_ERR_GROUP_EXISTS,
            LiveError::OffsetOutOfRange { .. } => LC_ERR_OFFSET_OUT_OF_RANGE,
            LiveError::NoCommittedOffset { .. } => LC_ERR_NO_COMMITTED_OFFSET,
            LiveError::NotLeaseHolder { .. } => LC_ERR_NOT_LEASE_HOLDER,
            LiveError::CommitBehind { .. } => LC_ERR_COMMIT_BEHIND,
            LiveError::CommitAhead { .. } => LC_ERR_COMMIT_AHEAD,
            LiveError::TopicStore { .. } => LC_ERR_TOPIC_STORE,
            LiveError::InvalidConfig(_) => LC_ERR_INVALID_CONFIG,
        };
        Self::new(status, error.to_string())
    }
}

thread_local! {
    /// Set by tests: the [`PanicPoint`] (as its number; 0 for none) at which the next extern
    /// call on this thread that reaches it panics.
    static INJECT_PANIC: Cell<u8> = const { Cell::new(0) };
    /// How many topic store callbacks are running on this thread (nested: a `read` callback
    /// whose push ends up in another store is impossible, but a count costs nothing).
    static IN_STORE_CALLBACK: Cell<u32> = const { Cell::new(0) };
}

/// Set once any thread has run a topic store callback, so that programs without a host
/// store skip the thread-local lookup in [`boundary`] (one relaxed load instead).
static STORE_CALLBACKS_RAN: AtomicBool = AtomicBool::new(false);

/// The `lc_` functions a topic store callback may call: the sink push its `read` callback
/// needs, and pure functions that touch no manager.
const ALLOWED_IN_STORE_CALLBACK: [&str; 5] = [
    "lc_topic_read_sink_push",
    "lc_last_error",
    "lc_status_name",
    "lc_version",
    "lc_abi_version",
];

/// Marks the calling thread as running a topic store callback while it lives: every `lc_`
/// call on this thread but those of [`ALLOWED_IN_STORE_CALLBACK`] is refused with
/// `LC_ERR_INVALID_STATE` meanwhile, since livecore may hold locks around the callback
/// (a group's state around `commit_offset`) that a re-entrant call would wait for forever.
pub(crate) struct StoreCallbackGuard(());

impl StoreCallbackGuard {
    /// Enters a store callback. During thread-local teardown the mark cannot be kept; the
    /// callback still runs (unguarded), as refusing it would fail the store for nothing.
    pub(crate) fn enter() -> Self {
        if !STORE_CALLBACKS_RAN.load(Ordering::Relaxed) {
            STORE_CALLBACKS_RAN.store(true, Ordering::Relaxed);
        }
        let _ = IN_STORE_CALLBACK.try_with(|depth| depth.set(depth.get().saturating_add(1)));
        Self(())
    }
}

impl Drop for StoreCallbackGuard {
    fn drop(&mut self) {
        let _ = IN_STORE_CALLBACK.try_with(|depth| depth.set(depth.get().saturating_sub(1)));
    }
}

/// True while a topic store callback runs on the calling thread.
fn in_store_callback() -> bool {
    STORE_CALLBACKS_RAN.load(Ordering::Relaxed)
        && IN_STORE_CALLBACK
            .try_with(|depth| depth.get() > 0)
            .unwrap_or(false)
}

/// The longest last-error message kept, in bytes: messages quote caller strings (a name
/// that was refused, an unknown topic), which may be megabytes long.
pub(crate) const MAX_LAST_ERROR_LEN: usize = 4096;

/// Records `message` as this thread's last error. NUL bytes (from caller strings quoted in
/// a message) are shown as `\0` so the message stays one C string; a message longer than
/// [`MAX_LAST_ERROR_LEN`] bytes is cut at a character boundary and ends with `...`.
/// Kept in `last_error`, which also serves a call made while the thread exits (from a
/// host's thread-specific data destructor).
pub(crate) fn set_last_error(function: &str, message: &str) {
    let mut text = format!("{function}: {message}").replace('\0', "\\0");
    if text.len() > MAX_LAST_ERROR_LEN {
        let mut cut = MAX_LAST_ERROR_LEN - 3;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    last_error::set(CString::new(text).unwrap_or_default());
}

/// A pointer to this thread's last error message; valid until the next failing call on
/// this thread replaces it. An empty string before the first.
pub(crate) fn last_error_ptr() -> *const std::ffi::c_char {
    last_error::get()
}

/// Places where a test can make an extern call panic (see [`inject_panic_at`]). Not part
/// of the C ABI.
#[doc(hidden)]
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PanicPoint {
    /// On entry to the panic boundary, before the body runs (any function).
    Entry = 1,
    /// `lc_connection_recv`, `lc_connection_recv_batch` and `lc_connection_recv_event`:
    /// after the connection's receiver was taken (its guard is held), before receiving.
    ReceiverTaken = 2,
    /// `lc_change_publish` and `lc_commit_publish`: after the C changes were converted, before
    /// publishing them.
    ChangesConverted = 3,
    /// `lc_connection_recv_batch`: after its second handle was issued, before it takes the
    /// next notification.
    BatchHandlesIssued = 4,
}

/// Makes the next `lc_` call on the calling thread panic inside its boundary, so tests can
/// check that the panic comes back as `LC_ERR_PANIC`. Not part of the C ABI.
#[doc(hidden)]
pub fn inject_panic_on_next_call() {
    inject_panic_at(PanicPoint::Entry);
}

/// Makes the next `lc_` call on the calling thread that reaches `point` panic there (once).
/// Not part of the C ABI.
#[doc(hidden)]
pub fn inject_panic_at(point: PanicPoint) {
    INJECTION_ARMED.store(true, Ordering::Relaxed);
    let _ = INJECT_PANIC.try_with(|armed| armed.set(point as u8));
}

/// Set once any test has asked for an injected panic, so ordinary calls skip the
/// thread-local lookup (which costs a `__tls_get_addr` call in a dlopen'ed library). In a
/// program that never injects one, a panic point is one relaxed load of this flag.
static INJECTION_ARMED: AtomicBool = AtomicBool::new(false);

/// A test-only panic point inside an extern function's body: panics when a test armed
/// `point` on this thread (see [`inject_panic_at`]), otherwise does nothing.
#[inline(always)]
pub(crate) fn panic_point(point: PanicPoint) {
    if INJECTION_ARMED.load(Ordering::Relaxed) {
        injected_panic(point);
    }
}

#[cold]
#[inline(never)]
fn injected_panic(point: PanicPoint) {
    let hit = INJECT_PANIC
        .try_with(|armed| armed.get() == point as u8 && armed.replace(0) != 0)
        .unwrap_or(false);
    if hit {
        match point {
            PanicPoint::Entry => panic!("panic injected by a test"),
            other => panic!("panic injected by a test at {other:?}"),
        }
    }
}

/// The panic boundary. Runs `body`, catching any panic, and turns the result into the
/// status the extern function returns, recording the message of a failure as the thread's
/// last error (prefixed with `function`).
///
/// Called from inside a topic store callback (see [`StoreCallbackGuard`]), every function
/// but those of [`ALLOWED_IN_STORE_CALLBACK`] is refused with `LC_ERR_INVALID_STATE`
/// before its body runs.
pub(crate) fn boundary(function: &str, body: impl FnOnce() -> FfiResult) -> lc_status {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        panic_point(PanicPoint::Entry);
        if in_store_callback() && !ALLOWED_IN_STORE_CALLBACK.contains(&function) {
            return Err(FfiError::new(
                lc_status::LC_ERR_INVALID_STATE,
                "called from inside a topic store callback, which may only call \
                 lc_topic_read_sink_push, lc_last_error, lc_status_name, lc_version and \
                 lc_abi_version (livecore may hold locks around the callback)",
            ));
        }
        body()
    }));
    match outcome {
        Ok(Ok(status)) => status,
        Ok(Err(error)) => {
            if error.status.is_error() {
                set_last_error(function, &error.message);
            }
            error.status
        }
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|text| text.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic with a non-text payload".to_string());
            // Dropping a payload can itself panic; never let that unwind into C.
            if let Err(second) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
                std::mem::forget(second);
            }
            set_last_error(
                function,
                &format!("panic caught at the C boundary: {message}"),
            );
            lc_status::LC_ERR_PANIC
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_a_unique_number_and_its_header_name() {
        let all = ALL_STATUSES;
        let mut numbers: Vec<u32> = all.iter().map(|status| *status as u32).collect();
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), all.len());
        for status in all {
            assert_eq!(lc_status::from_code(status as u32), Some(status));
            assert_eq!(format!("{status:?}"), status.name().to_str().unwrap());
        }
        assert_eq!(lc_status::from_code(5), None);
    }

    #[test]
    fn boundary_turns_panics_into_a_status_and_a_message() {
        let status = boundary("lc_test", || panic!("boom {}", 7));
        assert_eq!(status, lc_status::LC_ERR_PANIC);
        // SAFETY: the pointer is this thread's last error, NUL-terminated, and no other
        // call on this thread runs while it is read.
        let message = unsafe { std::ffi::CStr::from_ptr(last_error_ptr()) };
        assert_eq!(
            message.to_str().unwrap(),
            "lc_test: panic caught at the C boundary: boom 7"
        );
    }

    #[test]
    fn a_long_message_is_cut_at_a_character_boundary() {
        // Two-byte characters, so the cut falls inside one unless it steps back.
        set_last_error("lc_test", &"é".repeat(MAX_LAST_ERROR_LEN));
        // SAFETY: as above.
        let message = unsafe { std::ffi::CStr::from_ptr(last_error_ptr()) };
        let message = message.to_str().expect("cut at a character boundary");
        assert!(message.len() <= MAX_LAST_ERROR_LEN, "{}", message.len());
        assert!(message.starts_with("lc_test: éé") && message.ends_with("é..."));
        set_last_error("lc_test", "short");
        // SAFETY: as above.
        let message = unsafe { std::ffi::CStr::from_ptr(last_error_ptr()) };
        assert_eq!(message.to_str().unwrap(), "lc_test: short");
    }
}
