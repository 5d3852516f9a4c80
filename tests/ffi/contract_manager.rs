//! Contract cases (the library-wide functions, the manager, tables and revocation): each function called with NULL and invalid
//! arguments; see `contract.rs`, which lists every case and checks the list against the header.

use std::ffi::{c_char, CStr};
use std::mem::size_of;
use std::ptr::{null, null_mut};

use livecore::ffi::*;

use crate::assert_status;
use crate::contract::*;
use crate::support::*;

// SAFETY (for every case below): each unsafe call passes NULL where the case tests NULL,
// and otherwise pointers to live locals or strings of the right type and length; the
// library must refuse the invalid ones without touching memory it was not given.

pub(crate) fn case_lc_version() {
    let mut out: *const c_char = null();
    // SAFETY: see above.
    unsafe {
        assert_status!(lc_version(null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(lc_version(&mut out), LC_OK);
        assert_eq!(
            CStr::from_ptr(out).to_str().unwrap(),
            env!("CARGO_PKG_VERSION")
        );
    }
}

pub(crate) fn case_lc_abi_version() {
    let mut abi = 0;
    // SAFETY: see above.
    unsafe {
        assert_status!(lc_abi_version(null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(lc_abi_version(&mut abi), LC_OK);
    }
    assert_eq!(abi, LIVECORE_ABI_VERSION);
}

pub(crate) fn case_lc_last_error() {
    // SAFETY: see above.
    unsafe {
        assert_status!(lc_version(null_mut()), LC_ERR_NULL_ARGUMENT);
        let before = last_error();
        assert!(
            before.contains("lc_version") && before.contains("out_version"),
            "{before}"
        );
        assert_status!(lc_last_error(null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_eq!(
            last_error(),
            before,
            "lc_last_error never changes the last error"
        );
    }
}

/// A failing call made while a thread exits, from a host's thread-specific data
/// destructor on a thread that never called livecore before, still leaves its message for
/// `lc_last_error`, and the message is freed with the thread: this binary runs under
/// valgrind with leak checking in the test command, where a message kept in a Rust
/// thread-local was lost (found by an outside hostile C host).
#[cfg(unix)]
#[test]
fn a_last_error_set_while_the_thread_exits_is_kept_and_freed() {
    use std::ffi::c_void;
    use std::sync::atomic::{AtomicBool, Ordering};

    static SEEN: AtomicBool = AtomicBool::new(false);
    unsafe extern "C" fn exit_call(_: *mut c_void) {
        // SAFETY: NULL is what the call refuses; the message is read before any other call.
        unsafe {
            assert_status!(lc_version(null_mut()), LC_ERR_NULL_ARGUMENT);
        }
        SEEN.store(last_error().contains("lc_version"), Ordering::SeqCst);
    }
    let mut key: libc::pthread_key_t = 0;
    // SAFETY: `key` is a live local; `exit_call` has the destructor's signature. The key is
    // deleted once the thread that set it is joined.
    unsafe {
        assert_eq!(libc::pthread_key_create(&mut key, Some(exit_call)), 0);
    }
    std::thread::spawn(move || {
        // SAFETY: `key` is a key made above; a non-null value makes its destructor run as
        // this thread exits.
        unsafe { libc::pthread_setspecific(key, std::ptr::dangling_mut::<c_void>()) };
    })
    .join()
    .unwrap();
    // SAFETY: the thread that used the key has exited.
    unsafe { libc::pthread_key_delete(key) };
    assert!(
        SEEN.load(Ordering::SeqCst),
        "the message was readable at exit"
    );
}

pub(crate) fn case_lc_status_name() {
    let mut name: *const c_char = null();
    // SAFETY: see above.
    unsafe {
        assert_status!(lc_status_name(0, null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(lc_status_name(5, &mut name), LC_ERR_INVALID_ARGUMENT);
        assert_status!(lc_status_name(104, &mut name), LC_OK);
        assert_eq!(
            CStr::from_ptr(name).to_str().unwrap(),
            "LC_ERR_INVALID_HANDLE"
        );
    }
}

pub(crate) fn case_lc_config_init() {
    let mut small: lc_config = sized(8);
    let mut good: lc_config = full();
    // A newer header's larger struct is refused: see
    // `a_newer_headers_larger_inputs_and_their_inits_are_refused`.
    // SAFETY: see above.
    unsafe {
        assert_status!(lc_config_init(null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(lc_config_init(&mut small), LC_ERR_STRUCT_SIZE);
        assert_eq!(small.max_connections, 0, "a refused call writes nothing");
        // Only the sizes lc_manager_new reads: an older header's (ending before the topic
        // fields) or this one's, not one in between, which the manager would refuse.
        let older = std::mem::offset_of!(lc_config, topic_max_topics);
        let mut between: lc_config = sized(older + 8);
        assert_status!(lc_config_init(&mut between), LC_ERR_STRUCT_SIZE);
        let mut old_header: lc_config = sized(older);
        assert_status!(lc_config_init(&mut old_header), LC_OK);
        assert_eq!(old_header.struct_size as usize, older);
        let mut manager = lc_manager::default();
        assert_status!(lc_manager_new(&old_header, &mut manager), LC_OK);
        assert_status!(lc_manager_free(manager), LC_OK);
        assert_status!(lc_config_init(&mut good), LC_OK);
    }
    assert_eq!(good.struct_size as usize, size_of::<lc_config>());
    assert_eq!(good.notification_channel_capacity, 1024);
}

pub(crate) fn case_lc_manager_new() {
    let mut out = lc_manager::default();
    let with = |change: &dyn Fn(&mut lc_config)| {
        let mut config = config();
        change(&mut config);
        config
    };
    // SAFETY: see above.
    unsafe {
        assert_status!(lc_manager_new(null(), &mut out), LC_ERR_NULL_ARGUMENT);
        assert_status!(lc_manager_new(&config(), null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(
            lc_manager_new(&with(&|c| c.struct_size = 0), &mut out),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            lc_manager_new(&with(&|c| c.flags = 0x80), &mut out),
            LC_ERR_INVALID_ARGUMENT
        );
        assert_status!(
            lc_manager_new(&with(&|c| c.reserved = 1), &mut out),
            LC_ERR_INVALID_ARGUMENT
        );
        assert_status!(
            lc_manager_new(&with(&|c| c.slow_consumer_policy = 2), &mut out),
            LC_ERR_INVALID_TAG
        );
        assert_status!(
            lc_manager_new(&with(&|c| c.notification_channel_capacity = 0), &mut out),
            LC_ERR_INVALID_CONFIG
        );
        // A hostile capacity is refused up front, not left to overflow in the channel.
        for huge in [LC_MAX_CHANNEL_CAPACITY as u64 + 1, u64::MAX] {
            assert_status!(
                lc_manager_new(&with(&|c| c.notification_channel_capacity = huge), &mut out),
                LC_ERR_INVALID_CONFIG
            );
            assert_status!(
                lc_manager_new(&with(&|c| c.event_channel_capacity = huge), &mut out),
                LC_ERR_INVALID_CONFIG
            );
        }
        // Filter limits past what a host thread's stack holds.
        for (depth, nodes) in [
            (LC_MAX_FILTER_DEPTH as u64 + 1, 1024),
            (32, LC_MAX_FILTER_NODES as u64 + 1),
        ] {
            assert_status!(
                lc_manager_new(
                    &with(&|c| {
                        c.filter_max_depth = depth;
                        c.filter_max_nodes = nodes
                    }),
                    &mut out
                ),
                LC_ERR_INVALID_CONFIG
            );
        }
        // Topic limits past what a create could allocate, or a store could key.
        for partitions in [u64::from(LC_MAX_TOPIC_PARTITIONS) + 1, u64::from(u32::MAX)] {
            assert_status!(
                lc_manager_new(&with(&|c| c.topic_max_partitions = partitions), &mut out),
                LC_ERR_INVALID_CONFIG
            );
        }
        assert_status!(
            lc_manager_new(
                &with(&|c| c.topic_max_name_len = LC_MAX_TOPIC_NAME_LEN as u64 + 1),
                &mut out
            ),
            LC_ERR_INVALID_CONFIG
        );
        assert_status!(
            lc_manager_new(
                &with(&|c| c.heartbeat_timeout_ms = c.ping_interval_ms),
                &mut out
            ),
            LC_ERR_INVALID_CONFIG
        );
        let (empty, long) = (c(""), c(&"d".repeat(LC_MAX_NAME_LEN + 1)));
        for bad in [&empty, &long] {
            assert_status!(
                lc_manager_new(&with(&|c| c.default_namespace = bad.as_ptr()), &mut out),
                LC_ERR_INVALID_NAME
            );
        }
    }
    assert_eq!(out, lc_manager::default(), "a refused call writes nothing");
}

pub(crate) fn case_lc_manager_free() {
    let f = Fixture::new();
    assert_status!(
        lc_manager_free(lc_manager::default()),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(lc_manager_free(f.stale_manager), LC_ERR_INVALID_HANDLE);
    // A handle of another kind is not a manager.
    assert_status!(
        lc_manager_free(lc_manager {
            id: f.notification.id
        }),
        LC_ERR_INVALID_HANDLE
    );
    assert!(
        last_error().contains("lc_notification handle was passed"),
        "{}",
        last_error()
    );
    assert_status!(
        lc_manager_free(lc_manager { id: u64::MAX }),
        LC_ERR_INVALID_HANDLE
    );
}

pub(crate) fn case_lc_manager_get_clock() {
    let f = Fixture::new();
    let mut now = 0;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_manager_get_clock(f.manager, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_manager_get_clock(f.stale_manager, &mut now),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(lc_manager_get_clock(f.manager, &mut now), LC_OK);
    }
    assert_eq!(now, 1_000_000);
}

pub(crate) fn case_lc_manager_set_clock() {
    let f = Fixture::new();
    assert_status!(
        lc_manager_set_clock(f.stale_manager, 5),
        LC_ERR_INVALID_HANDLE
    );
    let system = manager_with(&config());
    assert_status!(lc_manager_set_clock(system, 5), LC_ERR_NOT_ENABLED);
    assert_eq!(lc_manager_free(system), LC_OK);
    assert_status!(lc_manager_set_clock(f.manager, 5), LC_OK);
}

pub(crate) fn case_lc_manager_wait_ready() {
    let f = Fixture::new();
    let mut ids = [0u64; 4];
    let mut count = 99;
    let plain = manager_with(&config());
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_manager_wait_ready(f.manager, 0, null_mut(), 4, &mut count),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_manager_wait_ready(f.manager, 0, ids.as_mut_ptr(), 4, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_manager_wait_ready(f.manager, 0, ids.as_mut_ptr(), 0, &mut count),
            LC_ERR_INVALID_ARGUMENT
        );
        assert_status!(
            lc_manager_wait_ready(f.manager, 0, ids.as_mut_ptr(), usize::MAX, &mut count),
            LC_ERR_INVALID_ARGUMENT
        );
        assert_status!(
            lc_manager_wait_ready(f.stale_manager, 0, ids.as_mut_ptr(), 4, &mut count),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(count, 0, "a refused call leaves the count 0");
        count = 99;
        assert_status!(
            lc_manager_wait_ready(plain, 0, ids.as_mut_ptr(), 4, &mut count),
            LC_ERR_NOT_ENABLED
        );
        assert_eq!(count, 0, "a refused call leaves the count 0");
        assert_eq!(ids, [0; 4], "and writes no id");
    }
    assert_eq!(lc_manager_free(plain), LC_OK);
}

pub(crate) fn case_lc_manager_check_connections() {
    let f = Fixture::new();
    let mut bad: lc_check_report = sized(4);
    let mut report: lc_check_report = full();
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_manager_check_connections(f.stale_manager, LC_NOW, null_mut()),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_manager_check_connections(f.manager, LC_NOW, &mut bad),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            lc_manager_check_connections(f.manager, LC_NOW, null_mut()),
            LC_OK
        );
        assert_status!(
            lc_manager_check_connections(f.manager, LC_NOW, &mut report),
            LC_OK
        );
    }
    assert_eq!(report.checked, 1);
}

pub(crate) fn case_lc_manager_shutdown() {
    let f = Fixture::new();
    let mut bad: lc_shutdown_report = sized(0);
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_manager_shutdown(f.stale_manager, 0, null_mut()),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_manager_shutdown(f.manager, 0, &mut bad),
            LC_ERR_STRUCT_SIZE
        );
    }
    // Nothing was shut down by the refused calls.
    assert!(f.anonymous() > f.connection);
}

pub(crate) fn case_lc_manager_get_stats() {
    let f = Fixture::new();
    let mut out: lc_stats = full();
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_manager_get_stats(f.manager, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_manager_get_stats(f.stale_manager, &mut out),
            LC_ERR_INVALID_HANDLE
        );
    }
    assert_eq!(stats(f.manager).published, 2);
}

/// A struct as a program built against a newer header passes it: this library's struct
/// followed by fields this library does not know.
#[repr(C)]
struct Grown<T> {
    known: T,
    newer: [u64; 4],
}

impl<T> Grown<T> {
    /// `known` zeroed, `newer` filled with `fill`, and `struct_size` set to the whole size.
    fn new(fill: u64) -> Self {
        Grown {
            known: sized::<T>(size_of::<Grown<T>>()),
            newer: [fill; 4],
        }
    }

    /// The whole struct as the library sees it: a pointer whose provenance covers `newer`.
    fn as_mut_ptr(&mut self) -> *mut T {
        (self as *mut Self).cast::<T>()
    }
}

/// The size of `lc_stats`'s first published version: it ends before `topic_messages`, as
/// `sized_structs!` in src/ffi/ptr.rs records it.
fn older_stats_size() -> usize {
    std::mem::offset_of!(lc_stats, topic_messages)
}

/// A host built against a newer header, whose `lc_stats` grew, on this library: the call
/// succeeds, fills every field this library knows, touches no byte beyond them, and says
/// through `struct_size` how many bytes it wrote.
#[test]
fn a_newer_headers_larger_stats_struct_is_filled_and_its_extra_bytes_left_alone() {
    let _serial = serial();
    let f = Fixture::new();
    let mut grown = Grown::<lc_stats>::new(u64::MAX);
    assert!(grown.known.struct_size as usize > size_of::<lc_stats>());
    // SAFETY: `grown` is a live local whose `struct_size` bytes are all writable.
    unsafe {
        assert_status!(lc_manager_get_stats(f.manager, grown.as_mut_ptr()), LC_OK);
    }
    assert_eq!(grown.known.struct_size as usize, size_of::<lc_stats>());
    assert_eq!(grown.known.published, 2);
    assert_eq!(grown.known.connections, stats(f.manager).connections);
    assert_eq!(grown.known.subscriptions, 1);
    assert_eq!(
        grown.newer,
        [u64::MAX; 4],
        "the unknown fields are not written"
    );
}

/// A `struct_size` that claims far more than the caller's struct holds (a count that lies)
/// costs nothing: only this library's fields are written, not a byte past them.
#[test]
fn an_output_struct_size_claiming_more_than_its_buffer_writes_only_known_fields() {
    let _serial = serial();
    let f = Fixture::new();
    // This library's struct, then sentinel bytes a write past it would change (valgrind
    // and the sanitizers would also see a write past the allocation), claiming 4 GiB.
    let mut grown = Box::new(Grown::<lc_stats>::new(u64::MAX));
    grown.known.struct_size = u32::MAX;
    // SAFETY: `grown` is a live allocation; the library writes no more than one lc_stats.
    unsafe {
        assert_status!(lc_manager_get_stats(f.manager, grown.as_mut_ptr()), LC_OK);
    }
    assert_eq!(grown.known.struct_size as usize, size_of::<lc_stats>());
    assert_eq!(grown.known.published, 2);
    assert_eq!(grown.newer, [u64::MAX; 4], "nothing past the known fields");
}

/// A `struct_size` below the struct's first published version is refused and nothing is
/// written; the first published size itself (an older header) is filled up to there and
/// no further.
#[test]
fn a_too_small_stats_struct_is_refused_and_an_older_one_filled_to_its_size() {
    let _serial = serial();
    let f = Fixture::new();
    let older = older_stats_size();
    let mut small: lc_stats = sized(older - 8);
    small.published = 77;
    let mut old_header: lc_stats = sized(older);
    old_header.topic_messages = 99;
    // SAFETY: both are live locals, writable for their whole size.
    unsafe {
        assert_status!(
            lc_manager_get_stats(f.manager, &mut small),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(lc_manager_get_stats(f.manager, &mut old_header), LC_OK);
    }
    assert!(last_error().contains("out_stats"), "{}", last_error());
    assert_eq!(small.published, 77, "a refused call writes nothing");
    assert_eq!(small.struct_size as usize, older - 8);
    assert_eq!(old_header.published, 2);
    assert_eq!(old_header.struct_size as usize, older);
    assert_eq!(
        old_header.topic_messages, 99,
        "a field past the caller's struct_size is not written"
    );
}

/// A newer header's larger input structs are refused, and so are the `_init` functions
/// that fill them, with nothing written: a setting of the newer header is never ignored
/// without a word (brought down to this library's size by its `_init`, a field the host
/// then set would be), and no byte past this library's struct is read.
#[test]
fn a_newer_headers_larger_inputs_and_their_inits_are_refused() {
    let _serial = serial();
    let mut zero_tail = Grown::<lc_config>::new(0);
    zero_tail.known = lc_config {
        struct_size: size_of::<Grown<lc_config>>() as u32,
        ..config()
    };
    let mut set_tail = Grown::<lc_config>::new(0);
    set_tail.known = zero_tail.known;
    set_tail.newer[3] = 1;
    let mut manager = lc_manager::default();
    // SAFETY: each `Grown` is a live local whose `struct_size` bytes are all readable and
    // writable; `manager` is a live local.
    unsafe {
        for larger in [&mut set_tail, &mut zero_tail] {
            assert_status!(
                lc_manager_new(larger.as_mut_ptr(), &mut manager),
                LC_ERR_STRUCT_SIZE
            );
            assert!(last_error().contains("config"), "{}", last_error());
            assert_eq!(manager, lc_manager::default(), "nothing was created");
        }
        let mut filled = Grown::<lc_config>::new(u64::MAX);
        assert_status!(lc_config_init(filled.as_mut_ptr()), LC_ERR_STRUCT_SIZE);
        assert_eq!(
            filled.known.struct_size as usize,
            size_of::<Grown<lc_config>>()
        );
        assert_eq!(
            filled.known.notification_channel_capacity, 0,
            "nothing written"
        );
        assert_eq!(filled.newer, [u64::MAX; 4]);

        let mut options = Grown::<lc_subscription_options>::new(u64::MAX);
        assert_status!(
            lc_subscription_options_init(options.as_mut_ptr()),
            LC_ERR_STRUCT_SIZE
        );
        let mut topic = Grown::<lc_topic_config>::new(u64::MAX);
        assert_status!(lc_topic_config_init(topic.as_mut_ptr()), LC_ERR_STRUCT_SIZE);
        let mut route = Grown::<lc_topic_route_options>::new(u64::MAX);
        assert_status!(
            lc_topic_route_options_init(route.as_mut_ptr()),
            LC_ERR_STRUCT_SIZE
        );
        let mut group = Grown::<lc_topic_group_config>::new(u64::MAX);
        assert_status!(
            lc_topic_group_config_init(group.as_mut_ptr()),
            LC_ERR_STRUCT_SIZE
        );
        // A size between two published ones (the older ends before `dead_letter_topic`)
        // is refused by the _init as by the create.
        let older = std::mem::offset_of!(lc_topic_group_config, dead_letter_topic);
        let between = older + 8;
        assert!(between < size_of::<lc_topic_group_config>());
        let mut partial: lc_topic_group_config = sized(between);
        assert_status!(lc_topic_group_config_init(&mut partial), LC_ERR_STRUCT_SIZE);
        let mut old_header: lc_topic_group_config = sized(older);
        assert_status!(lc_topic_group_config_init(&mut old_header), LC_OK);
        assert_eq!(old_header.struct_size as usize, older);
    }
}

pub(crate) fn case_lc_table_register() {
    let f = Fixture::new();
    let (ns, name, col) = (c("ns"), c("t"), c("a"));
    let columns = [col.as_ptr()];
    let with_null = [col.as_ptr(), null()];
    let with_bad = [bad_utf8()];
    let mut key = 77;
    // SAFETY: see above.
    unsafe {
        let register = |ns: *const c_char,
                        name: *const c_char,
                        scope: u32,
                        columns: *const *const c_char,
                        count: usize,
                        key: *mut u32| {
            lc_table_register(f.manager, ns, name, scope, columns, count, key)
        };
        assert_status!(
            register(null(), name.as_ptr(), 0, columns.as_ptr(), 1, &mut key),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            register(ns.as_ptr(), null(), 0, columns.as_ptr(), 1, &mut key),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            register(ns.as_ptr(), name.as_ptr(), 0, null(), 1, &mut key),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            register(
                ns.as_ptr(),
                name.as_ptr(),
                0,
                with_null.as_ptr(),
                2,
                &mut key
            ),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            register(bad_utf8(), name.as_ptr(), 0, columns.as_ptr(), 1, &mut key),
            LC_ERR_INVALID_UTF8
        );
        assert_status!(
            register(
                ns.as_ptr(),
                name.as_ptr(),
                0,
                with_bad.as_ptr(),
                1,
                &mut key
            ),
            LC_ERR_INVALID_UTF8
        );
        assert_status!(
            register(ns.as_ptr(), name.as_ptr(), 9, columns.as_ptr(), 1, &mut key),
            LC_ERR_INVALID_TAG
        );
        assert_status!(
            register(ns.as_ptr(), name.as_ptr(), 0, columns.as_ptr(), 0, &mut key),
            LC_ERR_INVALID_SCHEMA
        );
        // Lying column counts: refused before a column pointer is read.
        assert_status!(
            register(
                ns.as_ptr(),
                name.as_ptr(),
                0,
                columns.as_ptr(),
                usize::MAX,
                &mut key
            ),
            LC_ERR_INVALID_SCHEMA
        );
        assert_status!(
            register(
                ns.as_ptr(),
                name.as_ptr(),
                0,
                columns.as_ptr(),
                LC_MAX_COLUMNS + 1,
                &mut key
            ),
            LC_ERR_INVALID_SCHEMA
        );
        assert_status!(
            lc_table_register(
                f.stale_manager,
                ns.as_ptr(),
                name.as_ptr(),
                0,
                null(),
                usize::MAX,
                &mut key
            ),
            LC_ERR_INVALID_HANDLE
        );
        // Names: 1 to LC_MAX_NAME_LEN bytes.
        let empty = c("");
        let long = c(&"n".repeat(LC_MAX_NAME_LEN + 1));
        let longest = c(&"n".repeat(LC_MAX_NAME_LEN));
        for bad in [&empty, &long] {
            assert_status!(
                register(
                    bad.as_ptr(),
                    name.as_ptr(),
                    0,
                    columns.as_ptr(),
                    1,
                    &mut key
                ),
                LC_ERR_INVALID_NAME
            );
            assert_status!(
                register(ns.as_ptr(), bad.as_ptr(), 0, columns.as_ptr(), 1, &mut key),
                LC_ERR_INVALID_NAME
            );
            let bad_column = [col.as_ptr(), bad.as_ptr()];
            assert_status!(
                register(
                    ns.as_ptr(),
                    name.as_ptr(),
                    0,
                    bad_column.as_ptr(),
                    2,
                    &mut key
                ),
                LC_ERR_INVALID_NAME
            );
        }
        assert_status!(
            lc_table_register(
                f.stale_manager,
                ns.as_ptr(),
                name.as_ptr(),
                0,
                columns.as_ptr(),
                1,
                &mut key
            ),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(key, 77, "a refused call writes nothing");
        assert_status!(
            register(
                ns.as_ptr(),
                name.as_ptr(),
                0,
                columns.as_ptr(),
                1,
                null_mut()
            ),
            LC_OK
        );
        let longest_column = [longest.as_ptr()];
        assert_status!(
            register(
                longest.as_ptr(),
                longest.as_ptr(),
                0,
                longest_column.as_ptr(),
                1,
                null_mut()
            ),
            LC_OK
        );
    }
}

pub(crate) fn case_lc_table_drop() {
    let f = Fixture::new();
    let mut ended = 77;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_table_drop(f.manager, 999, &mut ended),
            LC_ERR_UNKNOWN_TABLE
        );
        assert_status!(
            lc_table_drop(f.stale_manager, f.messages, &mut ended),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(ended, 77, "a refused call writes nothing");
        assert_status!(lc_table_drop(f.manager, f.notes, null_mut()), LC_OK);
        assert_status!(
            lc_table_drop(f.manager, f.notes, &mut ended),
            LC_ERR_UNKNOWN_TABLE
        );
    }
}

pub(crate) fn case_lc_user_revoke() {
    let f = Fixture::new();
    let (alice, why) = (c("alice"), c("token expired"));
    let mut ended = 77;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_user_revoke(f.manager, null(), why.as_ptr(), &mut ended),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_user_revoke(f.manager, alice.as_ptr(), null(), &mut ended),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_user_revoke(f.manager, bad_utf8(), why.as_ptr(), &mut ended),
            LC_ERR_INVALID_UTF8
        );
        let (empty, long) = (c(""), c(&"u".repeat(LC_MAX_NAME_LEN + 1)));
        for bad in [&empty, &long] {
            assert_status!(
                lc_user_revoke(f.manager, bad.as_ptr(), why.as_ptr(), &mut ended),
                LC_ERR_INVALID_NAME
            );
        }
        assert_status!(
            lc_user_revoke(f.stale_manager, alice.as_ptr(), why.as_ptr(), &mut ended),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(ended, 77, "a refused call writes nothing");
        assert_eq!(
            stats(f.manager).subscriptions,
            1,
            "refused revocations ended nothing"
        );
    }
}

pub(crate) fn case_lc_table_resync() {
    let f = Fixture::new();
    let mut ended = 77;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_table_resync(f.manager, 999, &mut ended),
            LC_ERR_UNKNOWN_TABLE
        );
        assert_status!(
            lc_table_resync(f.stale_manager, f.messages, &mut ended),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(ended, 77, "a refused call writes nothing");
        assert_status!(lc_table_resync(f.manager, f.notes, &mut ended), LC_OK);
        assert_eq!(ended, 0);
        assert_status!(lc_table_resync(f.manager, f.messages, &mut ended), LC_OK);
        assert_eq!(ended, 1, "the fixture's subscription on messages");
        assert_status!(
            lc_table_resync(f.manager, f.messages, std::ptr::null_mut()),
            LC_OK
        );
    }
    assert_eq!(stats(f.manager).subscriptions, 0);
}

pub(crate) fn case_lc_table_columns_rewritten() {
    let f = Fixture::new();
    // Reads only `id`: a rewritten `body` leaves it alone (the fixture's `SELECT *` reads
    // every column).
    let ids = subscribe_result(
        f.manager,
        f.connection,
        "SELECT id FROM chat.messages",
        &options(0),
    );
    let body = c("BODY");
    let nope = c("nope");
    let long = c(&"x".repeat(LC_MAX_NAME_LEN + 1));
    let bad_utf8 = [0xff_u8, 0];
    let mut ended = 77;
    // SAFETY: see above.
    unsafe {
        let one = [body.as_ptr()];
        assert_status!(
            lc_table_columns_rewritten(f.stale_manager, f.messages, one.as_ptr(), 1, &mut ended),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_table_columns_rewritten(f.manager, 999, one.as_ptr(), 1, &mut ended),
            LC_ERR_UNKNOWN_TABLE
        );
        assert_status!(
            lc_table_columns_rewritten(f.manager, f.messages, null(), 1, &mut ended),
            LC_ERR_NULL_ARGUMENT
        );
        // A count that lies, beyond any table's width: refused before a name is read.
        assert_status!(
            lc_table_columns_rewritten(
                f.manager,
                f.messages,
                one.as_ptr(),
                LC_MAX_COLUMNS + 1,
                &mut ended
            ),
            LC_ERR_INVALID_SCHEMA
        );
        for (names, status) in [
            ([body.as_ptr(), null()], LC_ERR_NULL_ARGUMENT),
            ([body.as_ptr(), long.as_ptr()], LC_ERR_INVALID_NAME),
            (
                [body.as_ptr(), bad_utf8.as_ptr().cast()],
                LC_ERR_INVALID_UTF8,
            ),
            ([body.as_ptr(), nope.as_ptr()], LC_ERR_UNKNOWN_COLUMN),
        ] {
            assert_status!(
                lc_table_columns_rewritten(f.manager, f.messages, names.as_ptr(), 2, &mut ended),
                status
            );
        }
        assert_eq!(ended, 77, "a refused call writes nothing");
        assert_eq!(
            stats(f.manager).subscriptions,
            2,
            "a refused call ends nothing"
        );
        assert_status!(
            lc_table_columns_rewritten(f.manager, f.messages, null(), 0, &mut ended),
            LC_OK
        );
        assert_eq!(ended, 0);
        assert_status!(
            lc_table_columns_rewritten(f.manager, f.messages, one.as_ptr(), 1, &mut ended),
            LC_OK
        );
        assert_eq!(ended, 1, "the fixture's SELECT *");
        assert_status!(
            lc_table_columns_rewritten(f.manager, f.messages, one.as_ptr(), 1, null_mut()),
            LC_OK
        );
        assert_eq!(lc_subscription_result_free(ids), LC_OK);
    }
    assert_eq!(stats(f.manager).subscriptions, 1, "the one reading id");
}

pub(crate) fn case_lc_table_revoke() {
    let f = Fixture::new();
    let why = c("withdrawn");
    let mut ended = 77;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_table_revoke(f.manager, f.messages, null(), &mut ended),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_table_revoke(f.manager, f.messages, bad_utf8(), &mut ended),
            LC_ERR_INVALID_UTF8
        );
        assert_status!(
            lc_table_revoke(f.manager, 999, why.as_ptr(), &mut ended),
            LC_ERR_UNKNOWN_TABLE
        );
        assert_status!(
            lc_table_revoke(f.stale_manager, f.messages, why.as_ptr(), &mut ended),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(ended, 77, "a refused call writes nothing");
        assert_status!(
            lc_table_revoke(f.manager, f.notes, why.as_ptr(), &mut ended),
            LC_OK
        );
    }
    assert_eq!(ended, 0);
}
