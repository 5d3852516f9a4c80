//! Contract cases moved out of `topic_contract.rs` (which lists them all and holds the fixture):
//! each function called with NULL and invalid arguments.

use crate::assert_status;
use crate::support::*;
use crate::topic_contract::*;
use livecore::ffi::*;
use std::ffi::c_char;
use std::mem::size_of;
use std::ptr::{null, null_mut};

pub(crate) fn case_lc_topic_group_config_init() {
    let mut small: lc_topic_group_config = sized(4);
    let mut good: lc_topic_group_config = sized(size_of::<lc_topic_group_config>());
    // SAFETY: see above.
    unsafe {
        assert_status!(lc_topic_group_config_init(null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(lc_topic_group_config_init(&mut small), LC_ERR_STRUCT_SIZE);
        assert_status!(lc_topic_group_config_init(&mut good), LC_OK);
    }
    assert_eq!(
        (good.reset, good.lease_ms),
        (
            lc_topic_reset_policy::LC_TOPIC_RESET_EARLIEST as u32,
            30_000
        )
    );
    // No dead-letter topic by default.
    assert!(good.dead_letter_topic.is_null());
    assert_eq!((good.max_deliver, good.reserved), (0, 0));
}

pub(crate) fn case_lc_topic_group_create() {
    let f = Topics::new();
    let good = group_config(lc_topic_reset_policy::LC_TOPIC_RESET_LATEST, 5_000);
    let with = |edit: &dyn Fn(&mut lc_topic_group_config)| {
        let mut config = good;
        edit(&mut config);
        config
    };
    let (h, spaced, nope, dlq) = (c("h"), c("a/b"), c("nope"), c("dlq"));
    create_topic(f.manager, "dlq", &topic_config(1));
    // SAFETY: see above.
    unsafe {
        let create =
            |topic: *const c_char, group: *const c_char, config: *const lc_topic_group_config| {
                lc_topic_group_create(f.manager, topic, group, config)
            };
        let t = f.t.as_ptr();
        // The dead-letter fields: both or neither, a known topic other than the group's,
        // at least one delivery, `reserved` zero.
        let dead_letter = |topic: *const c_char, max_deliver: u32| {
            with(&move |c| {
                c.dead_letter_topic = topic;
                c.max_deliver = max_deliver;
            })
        };
        assert_status!(
            create(t, h.as_ptr(), &dead_letter(null(), 2)),
            LC_ERR_INVALID_ARGUMENT
        );
        assert_status!(
            create(t, h.as_ptr(), &with(&|c| c.reserved = 1)),
            LC_ERR_INVALID_ARGUMENT
        );
        assert_status!(
            create(t, h.as_ptr(), &dead_letter(bad_utf8(), 2)),
            LC_ERR_INVALID_UTF8
        );
        assert_status!(
            create(t, h.as_ptr(), &dead_letter(nope.as_ptr(), 2)),
            LC_ERR_UNKNOWN_TOPIC
        );
        assert_status!(
            create(t, h.as_ptr(), &dead_letter(t, 2)),
            LC_ERR_INVALID_CONFIG
        );
        assert_status!(
            create(t, h.as_ptr(), &dead_letter(dlq.as_ptr(), 0)),
            LC_ERR_OUT_OF_BOUNDS
        );
        assert_status!(create(null(), h.as_ptr(), &good), LC_ERR_NULL_ARGUMENT);
        assert_status!(create(t, null(), &good), LC_ERR_NULL_ARGUMENT);
        assert_status!(create(bad_utf8(), h.as_ptr(), &good), LC_ERR_INVALID_UTF8);
        assert_status!(create(t, bad_utf8(), &good), LC_ERR_INVALID_UTF8);
        assert_status!(create(t, h.as_ptr(), null()), LC_ERR_NULL_ARGUMENT);
        assert_status!(
            create(t, h.as_ptr(), &with(&|c| c.struct_size = 1)),
            LC_ERR_STRUCT_SIZE
        );
        // Sizes between the published versions (16 and the full struct) would read part
        // of the dead-letter pointer (a crash when it was dereferenced) or of max_deliver.
        let first_version = std::mem::offset_of!(lc_topic_group_config, dead_letter_topic);
        let full = std::mem::size_of::<lc_topic_group_config>();
        for size in first_version + 1..full {
            let cut = with(&|c| {
                c.struct_size = size as u32;
                c.dead_letter_topic = dlq.as_ptr();
                c.max_deliver = 2;
            });
            assert_status!(create(t, h.as_ptr(), &cut), LC_ERR_STRUCT_SIZE);
        }
        assert_status!(
            create(t, h.as_ptr(), &with(&|c| c.reset = 3)),
            LC_ERR_INVALID_TAG
        );
        assert_status!(
            create(t, h.as_ptr(), &with(&|c| c.lease_ms = 0)),
            LC_ERR_OUT_OF_BOUNDS
        );
        assert_status!(
            create(t, h.as_ptr(), &with(&|c| c.lease_ms = u64::MAX)),
            LC_ERR_OUT_OF_BOUNDS
        );
        assert_status!(create(t, spaced.as_ptr(), &good), LC_ERR_INVALID_NAME);
        assert_status!(create(t, c("").as_ptr(), &good), LC_ERR_INVALID_NAME);
        assert_status!(
            create(t, c(&"g".repeat(599)).as_ptr(), &good),
            LC_ERR_INVALID_NAME
        );
        assert_status!(create(t, f.g.as_ptr(), &good), LC_ERR_GROUP_EXISTS);
        assert_status!(
            create(nope.as_ptr(), h.as_ptr(), &good),
            LC_ERR_UNKNOWN_TOPIC
        );
        assert_status!(
            lc_topic_group_create(f.stale_manager, t, h.as_ptr(), &good),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(
            topic_info(f.manager, "t").groups,
            1,
            "a refused call adds no group"
        );
        assert_status!(create(t, h.as_ptr(), &good), LC_OK);
    }
    assert_eq!(topic_info(f.manager, "t").groups, 2);
}

pub(crate) fn case_lc_topic_group_delete() {
    let f = Topics::new();
    let nope = c("nope");
    // SAFETY: see above.
    unsafe {
        let delete = |topic: *const c_char, group: *const c_char| {
            lc_topic_group_delete(f.manager, topic, group)
        };
        let (t, g) = (f.t.as_ptr(), f.g.as_ptr());
        assert_status!(delete(null(), g), LC_ERR_NULL_ARGUMENT);
        assert_status!(delete(t, null()), LC_ERR_NULL_ARGUMENT);
        assert_status!(delete(bad_utf8(), g), LC_ERR_INVALID_UTF8);
        assert_status!(delete(t, bad_utf8()), LC_ERR_INVALID_UTF8);
        assert_status!(delete(t, nope.as_ptr()), LC_ERR_UNKNOWN_GROUP);
        assert_status!(delete(nope.as_ptr(), g), LC_ERR_UNKNOWN_TOPIC);
        assert_status!(
            lc_topic_group_delete(f.stale_manager, t, g),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(topic_info(f.manager, "t").groups, 1);
        assert_status!(delete(t, g), LC_OK);
        assert_status!(delete(t, g), LC_ERR_UNKNOWN_GROUP);
    }
}

pub(crate) fn case_lc_topic_group_get_partition() {
    let f = Topics::new();
    let mut out: lc_topic_group_partition = sized_struct();
    let mut bad: lc_topic_group_partition = sized(8);
    let nope = c("nope");
    // SAFETY: see above.
    unsafe {
        let get = |topic: *const c_char,
                   group: *const c_char,
                   partition: u32,
                   out: *mut lc_topic_group_partition| {
            lc_topic_group_get_partition(f.manager, topic, group, partition, out)
        };
        let (t, g) = (f.t.as_ptr(), f.g.as_ptr());
        assert_status!(get(t, g, 0, null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(get(t, g, 0, &mut bad), LC_ERR_STRUCT_SIZE);
        assert_status!(get(null(), g, 0, &mut out), LC_ERR_NULL_ARGUMENT);
        assert_status!(get(t, null(), 0, &mut out), LC_ERR_NULL_ARGUMENT);
        assert_status!(get(t, bad_utf8(), 0, &mut out), LC_ERR_INVALID_UTF8);
        assert_status!(get(t, g, 2, &mut out), LC_ERR_UNKNOWN_PARTITION);
        assert_status!(get(t, nope.as_ptr(), 0, &mut out), LC_ERR_UNKNOWN_GROUP);
        assert_status!(get(nope.as_ptr(), g, 0, &mut out), LC_ERR_UNKNOWN_TOPIC);
        assert_status!(
            lc_topic_group_get_partition(f.stale_manager, t, g, 0, &mut out),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(out.flags, 0, "a refused call writes nothing");
    }
    let partition = group_partition(f.manager, "t", "g", f.partition);
    assert_eq!(
        partition.flags,
        LC_TOPIC_HAS_COMMITTED | LC_TOPIC_LEASED | LC_TOPIC_HAS_NEXT
    );
    assert_eq!(
        (
            partition.committed,
            partition.end,
            partition.lag,
            partition.holder,
            partition.delivered
        ),
        (0, 1, 1, f.worker, 1)
    );
}

pub(crate) fn case_lc_topic_group_get_stats() {
    let f = Topics::new();
    let mut out: lc_topic_group_stats = sized_struct();
    let mut bad: lc_topic_group_stats = sized(4);
    let nope = c("nope");
    // SAFETY: see above.
    unsafe {
        let get = |topic: *const c_char, group: *const c_char, out: *mut lc_topic_group_stats| {
            lc_topic_group_get_stats(f.manager, topic, group, out)
        };
        let (t, g) = (f.t.as_ptr(), f.g.as_ptr());
        assert_status!(get(t, g, null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(get(t, g, &mut bad), LC_ERR_STRUCT_SIZE);
        assert_status!(get(null(), g, &mut out), LC_ERR_NULL_ARGUMENT);
        assert_status!(get(bad_utf8(), g, &mut out), LC_ERR_INVALID_UTF8);
        assert_status!(get(t, nope.as_ptr(), &mut out), LC_ERR_UNKNOWN_GROUP);
        assert_status!(
            lc_topic_group_get_stats(f.stale_manager, t, g, &mut out),
            LC_ERR_INVALID_HANDLE
        );
    }
    assert_eq!(group_stats(f.manager, "t", "g").members, 1);
    // The counters added later: an extension, a nack (one message handed out again), and
    // a second nack past max-deliver 2 that dead-letters the message (a nack too).
    create_topic(f.manager, "dlq", &topic_config(1));
    let (dlq, p) = (c("dlq"), f.partition);
    // SAFETY: see above.
    unsafe {
        let (t, g, w) = (f.t.as_ptr(), f.g.as_ptr(), f.worker);
        let mut extended = 0u32;
        assert_status!(
            lc_topic_extend_leases(f.manager, w, t, g, &mut extended),
            LC_OK
        );
        assert_status!(lc_topic_nack(f.manager, w, t, g, p, 0, 0), LC_OK);
        let again = consume(f.manager, w, "t", "g", 10, 0);
        assert_eq!(batch_info(again).message_count, 1);
        assert_eq!(lc_topic_batch_free(again), LC_OK);
        assert_status!(
            lc_topic_group_set_dead_letter(f.manager, t, g, dlq.as_ptr(), 2),
            LC_OK
        );
        assert_status!(lc_topic_nack(f.manager, w, t, g, p, 0, 0), LC_OK);
    }
    let stats = group_stats(f.manager, "t", "g");
    assert_eq!(
        (
            stats.nacks,
            stats.nack_redelivered,
            stats.lease_extensions,
            stats.dead_lettered
        ),
        (2, 1, 1, 1)
    );
    assert_eq!(
        stats.struct_size as usize,
        size_of::<lc_topic_group_stats>()
    );
    // A caller built against the first header (the struct ending at `members`) gets those
    // fields only: nothing is written past its struct_size.
    let first_version = std::mem::offset_of!(lc_topic_group_stats, nacks);
    let mut old: lc_topic_group_stats = sized(first_version);
    old.nacks = u64::MAX;
    old.dead_lettered = u64::MAX;
    // SAFETY: `old` is a live local, larger than the struct_size it declares.
    unsafe {
        assert_status!(
            lc_topic_group_get_stats(f.manager, f.t.as_ptr(), f.g.as_ptr(), &mut old),
            LC_OK
        );
    }
    assert_eq!(old.struct_size as usize, first_version);
    assert_eq!(old.members, 1);
    assert_eq!((old.nacks, old.dead_lettered), (u64::MAX, u64::MAX));
    // One byte short of the first version is refused.
    let mut short: lc_topic_group_stats = sized(first_version - 1);
    // SAFETY: as above.
    unsafe {
        assert_status!(
            lc_topic_group_get_stats(f.manager, f.t.as_ptr(), f.g.as_ptr(), &mut short),
            LC_ERR_STRUCT_SIZE
        );
    }
}

pub(crate) fn case_lc_topic_consume() {
    let f = Topics::new();
    let mut batch = lc_topic_batch::default();
    let nope = c("nope");
    // SAFETY: see above.
    unsafe {
        let consume = |connection: u64,
                       topic: *const c_char,
                       group: *const c_char,
                       max: usize,
                       timeout: u32,
                       out: *mut lc_topic_batch| {
            lc_topic_consume(f.manager, connection, topic, group, max, timeout, out)
        };
        let (t, g, w) = (f.t.as_ptr(), f.g.as_ptr(), f.worker);
        assert_status!(consume(w, t, g, 10, 0, null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(
            consume(w, null(), g, 10, 0, &mut batch),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            consume(w, t, null(), 10, 0, &mut batch),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            consume(w, bad_utf8(), g, 10, 0, &mut batch),
            LC_ERR_INVALID_UTF8
        );
        assert_status!(
            consume(w, t, bad_utf8(), 10, 0, &mut batch),
            LC_ERR_INVALID_UTF8
        );
        assert_status!(consume(w, t, g, 0, 0, &mut batch), LC_ERR_OUT_OF_BOUNDS);
        assert_status!(
            consume(w, t, g, usize::MAX, 0, &mut batch),
            LC_ERR_OUT_OF_BOUNDS
        );
        // Longer than the group's 30 s lease, or forever.
        assert_status!(
            consume(w, t, g, 10, 30_001, &mut batch),
            LC_ERR_OUT_OF_BOUNDS
        );
        assert_status!(
            consume(w, t, g, 10, LC_WAIT_FOREVER, &mut batch),
            LC_ERR_OUT_OF_BOUNDS
        );
        assert_status!(
            consume(u64::MAX, t, g, 10, 0, &mut batch),
            LC_ERR_UNKNOWN_CONNECTION
        );
        assert_status!(
            consume(f.anonymous, t, g, 10, 0, &mut batch),
            LC_ERR_NOT_AUTHENTICATED
        );
        assert_status!(
            consume(w, nope.as_ptr(), g, 10, 0, &mut batch),
            LC_ERR_UNKNOWN_TOPIC
        );
        assert_status!(
            consume(w, t, nope.as_ptr(), 10, 0, &mut batch),
            LC_ERR_UNKNOWN_GROUP
        );
        assert_status!(
            lc_topic_consume(f.stale_manager, w, t, g, 10, 0, &mut batch),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(
            batch,
            lc_topic_batch::default(),
            "a refused call writes nothing"
        );
    }
    // Nothing was handed out by the refused calls: the message is still the worker's,
    // delivered once.
    assert_eq!(
        group_partition(f.manager, "t", "g", f.partition).delivered,
        1
    );
}

pub(crate) fn case_lc_topic_batch_get_info() {
    let f = Topics::new();
    let mut info: lc_topic_batch_info = sized_struct();
    let mut bad: lc_topic_batch_info = sized(4);
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_topic_batch_get_info(f.batch, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_batch_get_info(f.batch, &mut bad),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            lc_topic_batch_get_info(f.stale_batch, &mut info),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_topic_batch_get_info(lc_topic_batch::default(), &mut info),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_topic_batch_get_info(lc_topic_batch { id: f.manager.id }, &mut info),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(info.message_count, 0, "a refused call writes nothing");
    }
    let info = batch_info(f.batch);
    assert_eq!(
        (
            info.message_count,
            info.position_count,
            info.retention_skip_count
        ),
        (1, 2, 0)
    );
}

pub(crate) fn case_lc_topic_batch_message() {
    let f = Topics::new();
    let mut message: lc_topic_message = sized_struct();
    let mut bad: lc_topic_message = sized(4);
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_topic_batch_message(f.batch, 0, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_batch_message(f.batch, 0, &mut bad),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            lc_topic_batch_message(f.batch, 1, &mut message),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_topic_batch_message(f.stale_batch, 0, &mut message),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(message.seq, 0, "a refused call writes nothing");
    }
    let message = batch_message(f.batch, 0);
    assert_eq!(
        (
            message.kind,
            message.offset,
            message.seq,
            message.timestamp_ms,
            message.has_key
        ),
        (
            lc_topic_message_kind::LC_TOPIC_MESSAGE_CHANGE as u32,
            0,
            1,
            1_000_000,
            1
        )
    );
    assert_eq!(
        (message.key.tag, message.key.int_value),
        (lc_value_type::LC_VALUE_INT as u32, 1)
    );
    assert!(message.payload.is_null());
}

pub(crate) fn case_lc_topic_batch_message_json() {
    let f = Topics::new();
    let mut json: *const c_char = null();
    let mut len = 0;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_topic_batch_message_json(f.batch, 0, null_mut(), &mut len),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_batch_message_json(f.batch, 0, &mut json, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_batch_message_json(f.batch, 1, &mut json, &mut len),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_topic_batch_message_json(f.stale_batch, 0, &mut json, &mut len),
            LC_ERR_INVALID_HANDLE
        );
    }
    assert!(json.is_null() && len == 0, "a refused call writes nothing");
    assert!(message_json(f.batch, 0).ends_with(
        r#""key":1,"change":{"op":"insert","source_op":"insert","table":"chat.messages","row":{"id":1,"body":"hi"}}}"#
    ));
}

pub(crate) fn case_lc_topic_batch_row_json() {
    let f = Topics::new();
    let mut json: *const c_char = null();
    let mut len = 0;
    let current = lc_row_version::LC_ROW_CURRENT as u32;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_topic_batch_row_json(f.batch, 0, current, null_mut(), &mut len),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_batch_row_json(f.batch, 0, current, &mut json, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_batch_row_json(f.batch, 0, 2, &mut json, &mut len),
            LC_ERR_INVALID_TAG
        );
        // An insert has no old row.
        assert_status!(
            lc_topic_batch_row_json(
                f.batch,
                0,
                lc_row_version::LC_ROW_OLD as u32,
                &mut json,
                &mut len
            ),
            LC_ERR_INVALID_ARGUMENT
        );
        assert_status!(
            lc_topic_batch_row_json(f.batch, 1, current, &mut json, &mut len),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_topic_batch_row_json(f.stale_batch, 0, current, &mut json, &mut len),
            LC_ERR_INVALID_HANDLE
        );
    }
    assert!(json.is_null() && len == 0, "a refused call writes nothing");
    assert_eq!(
        row_json(f.batch, 0, lc_row_version::LC_ROW_CURRENT),
        r#"{"id":1,"body":"hi"}"#
    );
}

pub(crate) fn case_lc_topic_batch_position() {
    let f = Topics::new();
    let mut position: lc_topic_position = sized_struct();
    let mut bad: lc_topic_position = sized(0);
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_topic_batch_position(f.batch, 0, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_batch_position(f.batch, 0, &mut bad),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            lc_topic_batch_position(f.batch, 2, &mut position),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_topic_batch_position(f.stale_batch, 0, &mut position),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(position.flags, 0, "a refused call writes nothing");
    }
    let position = batch_position(f.batch, f.partition as usize);
    assert_eq!(position.partition, f.partition);
    assert_eq!(position.flags, LC_TOPIC_HAS_COMMITTED | LC_TOPIC_HAS_NEXT);
    assert_eq!(
        (
            position.committed,
            position.next,
            position.end,
            position.lease_expires_at_ms
        ),
        (0, 1, 1, 1_030_000)
    );
}

pub(crate) fn case_lc_topic_batch_retention_skip() {
    let f = Topics::new();
    let mut skip = lc_topic_retention_skip {
        partition: 77,
        reserved: 0,
        from: 0,
        to: 0,
    };
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_topic_batch_retention_skip(f.batch, 0, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_topic_batch_retention_skip(f.batch, 0, &mut skip),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_topic_batch_retention_skip(f.stale_batch, 0, &mut skip),
            LC_ERR_INVALID_HANDLE
        );
    }
    assert_eq!(skip.partition, 77, "a refused call writes nothing");
}

pub(crate) fn case_lc_topic_batch_free() {
    let f = Topics::new();
    assert_status!(
        lc_topic_batch_free(lc_topic_batch::default()),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(lc_topic_batch_free(f.stale_batch), LC_ERR_INVALID_HANDLE);
    assert_status!(
        lc_topic_batch_free(lc_topic_batch { id: f.manager.id }),
        LC_ERR_INVALID_HANDLE
    );
    assert!(
        last_error().contains("lc_manager handle was passed"),
        "{}",
        last_error()
    );
    // The batch survived the refused frees.
    assert_eq!(batch_info(f.batch).message_count, 1);
}

pub(crate) fn case_lc_topic_commit() {
    let f = Topics::new();
    let nope = c("nope");
    let p = f.partition;
    // SAFETY: see above.
    unsafe {
        let commit = |connection: u64,
                      topic: *const c_char,
                      group: *const c_char,
                      partition: u32,
                      offset: u64| {
            lc_topic_commit(f.manager, connection, topic, group, partition, offset)
        };
        let (t, g, w) = (f.t.as_ptr(), f.g.as_ptr(), f.worker);
        assert_status!(commit(w, null(), g, p, 1), LC_ERR_NULL_ARGUMENT);
        assert_status!(commit(w, t, null(), p, 1), LC_ERR_NULL_ARGUMENT);
        assert_status!(commit(w, bad_utf8(), g, p, 1), LC_ERR_INVALID_UTF8);
        assert_status!(commit(w, t, bad_utf8(), p, 1), LC_ERR_INVALID_UTF8);
        assert_status!(commit(w, t, g, 2, 1), LC_ERR_UNKNOWN_PARTITION);
        assert_status!(commit(f.other, t, g, p, 1), LC_ERR_NOT_LEASE_HOLDER);
        assert_status!(commit(w, t, g, p, 2), LC_ERR_COMMIT_AHEAD);
        assert_status!(commit(u64::MAX, t, g, p, 1), LC_ERR_UNKNOWN_CONNECTION);
        assert_status!(commit(w, nope.as_ptr(), g, p, 1), LC_ERR_UNKNOWN_TOPIC);
        assert_status!(commit(w, t, nope.as_ptr(), p, 1), LC_ERR_UNKNOWN_GROUP);
        assert_status!(
            lc_topic_commit(f.stale_manager, w, t, g, p, 1),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(group_partition(f.manager, "t", "g", p).committed, 0);
        assert_status!(commit(w, t, g, p, 1), LC_OK);
        assert_status!(commit(w, t, g, p, 1), LC_OK);
        assert_status!(commit(w, t, g, p, 0), LC_ERR_COMMIT_BEHIND);
    }
    assert_eq!(group_partition(f.manager, "t", "g", p).committed, 1);
}

pub(crate) fn case_lc_topic_batch_commit() {
    let f = Topics::new();
    assert_status!(
        lc_topic_batch_commit(f.manager, f.worker, f.stale_batch),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(
        lc_topic_batch_commit(f.manager, f.worker, lc_topic_batch::default()),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(
        lc_topic_batch_commit(f.stale_manager, f.worker, f.batch),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(
        lc_topic_batch_commit(f.manager, u64::MAX, f.batch),
        LC_ERR_UNKNOWN_CONNECTION
    );
    assert_status!(
        lc_topic_batch_commit(f.manager, f.other, f.batch),
        LC_ERR_NOT_LEASE_HOLDER
    );
    assert_eq!(
        group_partition(f.manager, "t", "g", f.partition).committed,
        0
    );
    assert_status!(lc_topic_batch_commit(f.manager, f.worker, f.batch), LC_OK);
    assert_eq!(
        group_partition(f.manager, "t", "g", f.partition).committed,
        1
    );
}

/// `lc_topic_batch_commit` of a batch whose topic was deleted is `LC_ERR_UNKNOWN_TOPIC`
/// while no topic has its name, and `LC_ERR_UNKNOWN_GROUP` once the topic and a group of the
/// same names are created again (another group: the batch's offsets say nothing about
/// it), as the function documents; neither commits anything.
#[test]
fn a_batch_of_a_deleted_topic_commits_nothing_with_unknown_topic_then_unknown_group() {
    let _serial = serial();
    let f = Topics::new();
    // SAFETY: the fixture's name string is live.
    assert_status!(unsafe { lc_topic_delete(f.manager, f.t.as_ptr()) }, LC_OK);
    assert_status!(
        lc_topic_batch_commit(f.manager, f.worker, f.batch),
        LC_ERR_UNKNOWN_TOPIC
    );
    assert!(last_error().contains("unknown topic t"), "{}", last_error());
    create_topic(f.manager, "t", &topic_config(2));
    create_group(
        f.manager,
        "t",
        "g",
        &group_config(lc_topic_reset_policy::LC_TOPIC_RESET_EARLIEST, 30_000),
    );
    assert_status!(
        lc_topic_batch_commit(f.manager, f.worker, f.batch),
        LC_ERR_UNKNOWN_GROUP
    );
    assert_eq!(
        group_partition(f.manager, "t", "g", f.partition).committed,
        0,
        "the new group's offsets did not move"
    );
}

pub(crate) fn case_lc_topic_seek() {
    let f = Topics::new();
    let nope = c("nope");
    let p = f.partition;
    // SAFETY: see above.
    unsafe {
        let seek = |topic: *const c_char, group: *const c_char, partition: u32, offset: u64| {
            lc_topic_seek(f.manager, topic, group, partition, offset)
        };
        let (t, g) = (f.t.as_ptr(), f.g.as_ptr());
        assert_status!(seek(null(), g, p, 1), LC_ERR_NULL_ARGUMENT);
        assert_status!(seek(t, null(), p, 1), LC_ERR_NULL_ARGUMENT);
        assert_status!(seek(bad_utf8(), g, p, 1), LC_ERR_INVALID_UTF8);
        assert_status!(seek(t, bad_utf8(), p, 1), LC_ERR_INVALID_UTF8);
        assert_status!(seek(t, g, p, 2), LC_ERR_OFFSET_OUT_OF_RANGE);
        assert_status!(seek(t, g, 2, 0), LC_ERR_UNKNOWN_PARTITION);
        assert_status!(seek(t, nope.as_ptr(), p, 0), LC_ERR_UNKNOWN_GROUP);
        assert_status!(seek(nope.as_ptr(), g, p, 0), LC_ERR_UNKNOWN_TOPIC);
        assert_status!(
            lc_topic_seek(f.stale_manager, t, g, p, 0),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(group_partition(f.manager, "t", "g", p).committed, 0);
        // Seeking to the end skips the message; the lease ends.
        assert_status!(seek(t, g, p, 1), LC_OK);
    }
    let partition = group_partition(f.manager, "t", "g", p);
    assert_eq!(
        (partition.committed, partition.flags & LC_TOPIC_LEASED),
        (1, 0)
    );
}

pub(crate) fn case_lc_topic_group_leave() {
    let f = Topics::new();
    let nope = c("nope");
    // SAFETY: see above.
    unsafe {
        let leave = |connection: u64, topic: *const c_char, group: *const c_char| {
            lc_topic_group_leave(f.manager, connection, topic, group)
        };
        let (t, g, w) = (f.t.as_ptr(), f.g.as_ptr(), f.worker);
        assert_status!(leave(w, null(), g), LC_ERR_NULL_ARGUMENT);
        assert_status!(leave(w, t, null()), LC_ERR_NULL_ARGUMENT);
        assert_status!(leave(w, bad_utf8(), g), LC_ERR_INVALID_UTF8);
        assert_status!(leave(w, t, bad_utf8()), LC_ERR_INVALID_UTF8);
        assert_status!(leave(u64::MAX, t, g), LC_ERR_UNKNOWN_CONNECTION);
        assert_status!(leave(w, t, nope.as_ptr()), LC_ERR_UNKNOWN_GROUP);
        assert_status!(leave(w, nope.as_ptr(), g), LC_ERR_UNKNOWN_TOPIC);
        assert_status!(
            lc_topic_group_leave(f.stale_manager, w, t, g),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(group_stats(f.manager, "t", "g").members, 1);
        assert_status!(leave(w, t, g), LC_OK);
    }
    assert_eq!(group_stats(f.manager, "t", "g").members, 0);
    // The lease ended with the membership.
    let partition = group_partition(f.manager, "t", "g", f.partition);
    assert_eq!(partition.flags & LC_TOPIC_LEASED, 0);
}

pub(crate) fn case_lc_topic_nack() {
    let f = Topics::new();
    let nope = c("nope");
    let p = f.partition;
    // SAFETY: see above.
    unsafe {
        let nack = |connection: u64,
                    topic: *const c_char,
                    group: *const c_char,
                    partition: u32,
                    offset: u64,
                    delay_ms: u32| {
            lc_topic_nack(
                f.manager, connection, topic, group, partition, offset, delay_ms,
            )
        };
        let (t, g, w) = (f.t.as_ptr(), f.g.as_ptr(), f.worker);
        assert_status!(nack(w, null(), g, p, 0, 0), LC_ERR_NULL_ARGUMENT);
        assert_status!(nack(w, t, null(), p, 0, 0), LC_ERR_NULL_ARGUMENT);
        assert_status!(nack(w, bad_utf8(), g, p, 0, 0), LC_ERR_INVALID_UTF8);
        assert_status!(nack(w, t, bad_utf8(), p, 0, 0), LC_ERR_INVALID_UTF8);
        assert_status!(nack(w, t, g, 2, 0, 0), LC_ERR_UNKNOWN_PARTITION);
        assert_status!(nack(f.other, t, g, p, 0, 0), LC_ERR_NOT_LEASE_HOLDER);
        assert_status!(nack(w, t, g, p, 1, 0), LC_ERR_COMMIT_AHEAD);
        assert_status!(nack(w, t, g, p, 0, 30_001), LC_ERR_OUT_OF_BOUNDS);
        assert_status!(nack(u64::MAX, t, g, p, 0, 0), LC_ERR_UNKNOWN_CONNECTION);
        assert_status!(nack(w, nope.as_ptr(), g, p, 0, 0), LC_ERR_UNKNOWN_TOPIC);
        assert_status!(nack(w, t, nope.as_ptr(), p, 0, 0), LC_ERR_UNKNOWN_GROUP);
        assert_status!(
            lc_topic_nack(f.stale_manager, w, t, g, p, 0, 0),
            LC_ERR_INVALID_HANDLE
        );
    }
    // None of the refusals rewound the lease: the message is not handed out again.
    let nothing = consume(f.manager, f.worker, "t", "g", 10, 0);
    assert_eq!(batch_info(nothing).message_count, 0);
    assert_eq!(lc_topic_batch_free(nothing), LC_OK);
    // SAFETY: see above.
    unsafe {
        let (t, g) = (f.t.as_ptr(), f.g.as_ptr());
        assert_status!(lc_topic_nack(f.manager, f.worker, t, g, p, 0, 0), LC_OK);
    }
    // The nacked message is handed out again.
    let again = consume(f.manager, f.worker, "t", "g", 10, 0);
    assert_eq!(batch_info(again).message_count, 1);
    assert_eq!(batch_message(again, 0).offset, 0);
    assert_eq!(lc_topic_batch_free(again), LC_OK);
}

pub(crate) fn case_lc_topic_extend_leases() {
    let f = Topics::new();
    let nope = c("nope");
    // SAFETY: see above.
    unsafe {
        let mut extended = u32::MAX;
        let out: *mut u32 = &mut extended;
        let extend = |connection: u64, topic: *const c_char, group: *const c_char, out| {
            lc_topic_extend_leases(f.manager, connection, topic, group, out)
        };
        let (t, g, w) = (f.t.as_ptr(), f.g.as_ptr(), f.worker);
        assert_status!(extend(w, null(), g, out), LC_ERR_NULL_ARGUMENT);
        assert_status!(extend(w, t, null(), out), LC_ERR_NULL_ARGUMENT);
        assert_status!(extend(w, t, g, null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(extend(w, bad_utf8(), g, out), LC_ERR_INVALID_UTF8);
        assert_status!(extend(w, t, bad_utf8(), out), LC_ERR_INVALID_UTF8);
        assert_status!(extend(u64::MAX, t, g, out), LC_ERR_UNKNOWN_CONNECTION);
        assert_status!(extend(w, nope.as_ptr(), g, out), LC_ERR_UNKNOWN_TOPIC);
        assert_status!(extend(w, t, nope.as_ptr(), out), LC_ERR_UNKNOWN_GROUP);
        assert_status!(
            lc_topic_extend_leases(f.stale_manager, w, t, g, out),
            LC_ERR_INVALID_HANDLE
        );
        assert_eq!(extended, u32::MAX, "a refused call writes nothing");
        // The worker leases both partitions of "t" (it is the only member).
        assert_status!(extend(w, t, g, out), LC_OK);
        assert_eq!(extended, 2);
        assert_status!(extend(f.other, t, g, out), LC_OK);
        assert_eq!(extended, 0);
    }
}

pub(crate) fn case_lc_topic_group_set_dead_letter() {
    let f = Topics::new();
    create_topic(f.manager, "dlq", &topic_config(1));
    let (nope, dlq) = (c("nope"), c("dlq"));
    // SAFETY: see above.
    unsafe {
        let set = |topic: *const c_char, group: *const c_char, dead: *const c_char, max: u32| {
            lc_topic_group_set_dead_letter(f.manager, topic, group, dead, max)
        };
        let (t, g, d) = (f.t.as_ptr(), f.g.as_ptr(), dlq.as_ptr());
        assert_status!(set(null(), g, d, 1), LC_ERR_NULL_ARGUMENT);
        assert_status!(set(t, null(), d, 1), LC_ERR_NULL_ARGUMENT);
        assert_status!(set(t, g, null(), 1), LC_ERR_NULL_ARGUMENT);
        assert_status!(set(bad_utf8(), g, d, 1), LC_ERR_INVALID_UTF8);
        assert_status!(set(t, bad_utf8(), d, 1), LC_ERR_INVALID_UTF8);
        assert_status!(set(t, g, bad_utf8(), 1), LC_ERR_INVALID_UTF8);
        assert_status!(set(t, g, d, 0), LC_ERR_OUT_OF_BOUNDS);
        assert_status!(set(t, g, nope.as_ptr(), 1), LC_ERR_UNKNOWN_TOPIC);
        assert_status!(set(t, g, t, 1), LC_ERR_INVALID_CONFIG);
        assert_status!(set(nope.as_ptr(), g, d, 1), LC_ERR_UNKNOWN_TOPIC);
        assert_status!(set(t, nope.as_ptr(), d, 1), LC_ERR_UNKNOWN_GROUP);
        assert_status!(
            lc_topic_group_set_dead_letter(f.stale_manager, t, g, d, 1),
            LC_ERR_INVALID_HANDLE
        );
        // None of the refusals set a dead-letter topic: a nack hands the message out again.
        let p = f.partition;
        assert_status!(lc_topic_nack(f.manager, f.worker, t, g, p, 0, 0), LC_OK);
        assert_eq!(topic_info(f.manager, "dlq").appended, 0);
        let again = consume(f.manager, f.worker, "t", "g", 10, 0);
        assert_eq!(batch_info(again).message_count, 1);
        assert_eq!(lc_topic_batch_free(again), LC_OK);
        // Set: the next nack (its second delivery) dead-letters it.
        assert_status!(set(t, g, d, 2), LC_OK);
        assert_status!(lc_topic_nack(f.manager, f.worker, t, g, p, 0, 0), LC_OK);
    }
    assert_eq!(topic_info(f.manager, "dlq").appended, 1);
    assert_eq!(
        group_partition(f.manager, "t", "g", f.partition).committed,
        1
    );
}

pub(crate) fn case_lc_topic_group_clear_dead_letter() {
    let f = Topics::new();
    create_topic(f.manager, "dlq", &topic_config(1));
    let (nope, dlq) = (c("nope"), c("dlq"));
    // SAFETY: see above.
    unsafe {
        let clear = |topic: *const c_char, group: *const c_char| {
            lc_topic_group_clear_dead_letter(f.manager, topic, group)
        };
        let (t, g, p) = (f.t.as_ptr(), f.g.as_ptr(), f.partition);
        assert_status!(
            lc_topic_group_set_dead_letter(f.manager, t, g, dlq.as_ptr(), 1),
            LC_OK
        );
        assert_status!(clear(null(), g), LC_ERR_NULL_ARGUMENT);
        assert_status!(clear(t, null()), LC_ERR_NULL_ARGUMENT);
        assert_status!(clear(bad_utf8(), g), LC_ERR_INVALID_UTF8);
        assert_status!(clear(t, bad_utf8()), LC_ERR_INVALID_UTF8);
        assert_status!(clear(nope.as_ptr(), g), LC_ERR_UNKNOWN_TOPIC);
        assert_status!(clear(t, nope.as_ptr()), LC_ERR_UNKNOWN_GROUP);
        assert_status!(
            lc_topic_group_clear_dead_letter(f.stale_manager, t, g),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(clear(t, g), LC_OK);
        // Cleared: with max-deliver 1 this nack would have dead-lettered the message.
        assert_status!(lc_topic_nack(f.manager, f.worker, t, g, p, 0, 0), LC_OK);
    }
    assert_eq!(topic_info(f.manager, "dlq").appended, 0);
}
