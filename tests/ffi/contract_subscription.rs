//! Contract cases (subscriptions and the initial-load and resume protocol): each function called with NULL and invalid
//! arguments; see `contract.rs`, which lists every case and checks the list against the header.

use std::ffi::c_char;
use std::ptr::{null, null_mut};

use livecore::ffi::*;

use crate::assert_status;
use crate::contract::*;
use crate::support::*;

// SAFETY (for every case below): each unsafe call passes NULL where the case tests NULL,
// and otherwise pointers to live locals or strings of the right type and length; the
// library must refuse the invalid ones without touching memory it was not given.

pub(crate) fn case_lc_subscription_options_init() {
    let mut bad: lc_subscription_options = sized(4);
    let mut good: lc_subscription_options = full();
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_subscription_options_init(null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(lc_subscription_options_init(&mut bad), LC_ERR_STRUCT_SIZE);
        assert_status!(lc_subscription_options_init(&mut good), LC_OK);
    }
    assert_eq!((good.flags, good.batch_size), (0, 1000));
}

pub(crate) fn case_lc_subscription_create_sql() {
    let f = Fixture::new();
    let anonymous = f.anonymous();
    let good = options(0);
    let mut result = lc_subscription_result::default();
    let sql = |text: &str| c(text);
    let all = sql("SELECT * FROM chat.messages");
    let with = |change: &dyn Fn(&mut lc_subscription_options)| {
        let mut options = options(0);
        change(&mut options);
        options
    };
    // SAFETY: see above.
    unsafe {
        let subscribe = |connection: u64,
                         sql: *const c_char,
                         options: *const lc_subscription_options,
                         out: *mut lc_subscription_result| {
            lc_subscription_create_sql(f.manager, connection, sql, options, out)
        };
        assert_status!(
            subscribe(f.connection, null(), &good, &mut result),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            subscribe(f.connection, all.as_ptr(), null(), &mut result),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            subscribe(f.connection, all.as_ptr(), &good, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            subscribe(f.connection, bad_utf8(), &good, &mut result),
            LC_ERR_INVALID_UTF8
        );
        assert_status!(
            subscribe(
                f.connection,
                all.as_ptr(),
                &with(&|o| o.struct_size = 1),
                &mut result
            ),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            subscribe(
                f.connection,
                all.as_ptr(),
                &with(&|o| o.flags = 64),
                &mut result
            ),
            LC_ERR_INVALID_ARGUMENT
        );
        assert_status!(
            subscribe(
                f.connection,
                all.as_ptr(),
                &with(&|o| o.batch_size = 0),
                &mut result
            ),
            LC_ERR_OUT_OF_BOUNDS
        );
        assert_status!(
            subscribe(
                f.connection,
                sql("SELEC * FROM chat.messages").as_ptr(),
                &good,
                &mut result
            ),
            LC_ERR_SQL
        );
        assert_status!(
            subscribe(
                f.connection,
                sql("SELECT nope FROM chat.messages").as_ptr(),
                &good,
                &mut result
            ),
            LC_ERR_UNKNOWN_COLUMN
        );
        assert_status!(
            subscribe(
                f.connection,
                sql("SELECT * FROM chat.nope").as_ptr(),
                &good,
                &mut result
            ),
            LC_ERR_UNKNOWN_TABLE
        );
        assert_status!(
            subscribe(anonymous, all.as_ptr(), &good, &mut result),
            LC_ERR_NOT_AUTHENTICATED
        );
        assert_status!(
            subscribe(999, all.as_ptr(), &good, &mut result),
            LC_ERR_UNKNOWN_CONNECTION
        );
        assert_status!(
            lc_subscription_create_sql(
                f.stale_manager,
                f.connection,
                all.as_ptr(),
                &good,
                &mut result
            ),
            LC_ERR_INVALID_HANDLE
        );
    }
    assert_eq!(
        result,
        lc_subscription_result::default(),
        "a refused call writes nothing"
    );
    assert_eq!(
        stats(f.manager).subscriptions,
        1,
        "refused subscribes subscribed nothing"
    );
}

pub(crate) fn case_lc_subscription_result_get_info() {
    let f = Fixture::new();
    let mut info: lc_subscription_info = full();
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_subscription_result_get_info(f.result, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_subscription_result_get_info(f.stale_result, &mut info),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_subscription_result_get_info(lc_subscription_result { id: f.manager.id }, &mut info),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(lc_subscription_result_get_info(f.result, &mut info), LC_OK);
    }
    assert_eq!(
        (info.live_query, info.column_count, info.flags),
        (f.live, 3, 0)
    );
}

pub(crate) fn case_lc_subscription_result_column() {
    let f = Fixture::new();
    let mut name: *const c_char = null();
    let mut len = 0;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_subscription_result_column(f.result, 0, null_mut(), &mut len),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_subscription_result_column(f.result, 0, &mut name, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_subscription_result_column(f.result, 3, &mut name, &mut len),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_subscription_result_column(f.stale_result, 0, &mut name, &mut len),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_subscription_result_column(f.result, 2, &mut name, &mut len),
            LC_OK
        );
        assert_eq!(std::slice::from_raw_parts(name.cast::<u8>(), len), b"body");
    }
}

pub(crate) fn case_lc_subscription_result_free() {
    let f = Fixture::new();
    assert_status!(
        lc_subscription_result_free(lc_subscription_result::default()),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(
        lc_subscription_result_free(f.stale_result),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(
        lc_subscription_result_free(lc_subscription_result {
            id: f.notification.id
        }),
        LC_ERR_INVALID_HANDLE
    );
}

pub(crate) fn case_lc_subscription_cancel() {
    let f = Fixture::new();
    let unknown = lc_live_query_id {
        connection_id: f.connection,
        subscription_id: 999,
    };
    assert_status!(
        lc_subscription_cancel(f.manager, unknown),
        LC_ERR_UNKNOWN_SUBSCRIPTION
    );
    assert_status!(
        lc_subscription_cancel(
            f.manager,
            lc_live_query_id {
                connection_id: 999,
                subscription_id: 1
            }
        ),
        LC_ERR_UNKNOWN_CONNECTION
    );
    assert_status!(
        lc_subscription_cancel(f.stale_manager, f.live),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(lc_subscription_cancel(f.manager, f.live), LC_OK);
    assert_status!(
        lc_subscription_cancel(f.manager, f.live),
        LC_ERR_UNKNOWN_SUBSCRIPTION
    );
}

pub(crate) fn case_lc_subscription_set_snapshot_boundary() {
    let f = Fixture::new();
    let unknown = lc_live_query_id {
        connection_id: f.connection,
        subscription_id: 999,
    };
    assert_status!(
        lc_subscription_set_snapshot_boundary(f.manager, unknown, 1),
        LC_ERR_UNKNOWN_SUBSCRIPTION
    );
    assert_status!(
        lc_subscription_set_snapshot_boundary(f.manager, f.live, 1),
        LC_ERR_INVALID_STATE
    );
    assert_status!(
        lc_subscription_set_snapshot_boundary(f.stale_manager, f.live, 1),
        LC_ERR_INVALID_HANDLE
    );
    let gated = f.gated();
    // Set, then the same boundary again, a lower one (refused), a later one.
    for (boundary, status) in [
        (5, LC_OK),
        (5, LC_OK),
        (4, LC_ERR_INVALID_STATE),
        (6, LC_OK),
    ] {
        assert_status!(
            lc_subscription_set_snapshot_boundary(f.manager, gated, boundary),
            status
        );
    }
}

pub(crate) fn case_lc_subscription_push_snapshot_rows() {
    let f = Fixture::new();
    let gated = f.gated();
    let body = b"x";
    let good = [int(1), int(7), text(body)];
    let mut bad_tag = good;
    bad_tag[0].tag = 42;
    let mut bad_reserved = good;
    bad_reserved[2].reserved = 7;
    let mut progress: lc_snapshot_progress = full();
    // SAFETY: see above.
    unsafe {
        let push = |live: lc_live_query_id,
                    values: *const lc_value,
                    rows: usize,
                    columns: usize| {
            lc_subscription_push_snapshot_rows(f.manager, live, values, rows, columns, null_mut())
        };
        assert_status!(push(gated, null(), 1, 3), LC_ERR_NULL_ARGUMENT);
        // Counts past the documented limit are refused before anything is read.
        assert_status!(
            push(gated, good.as_ptr(), usize::MAX, 2),
            LC_ERR_OUT_OF_BOUNDS
        );
        assert_status!(
            push(gated, good.as_ptr(), usize::MAX / 64, 1),
            LC_ERR_OUT_OF_BOUNDS
        );
        assert_status!(
            push(gated, good.as_ptr(), LC_MAX_SNAPSHOT_PUSH_ROWS + 1, 3),
            LC_ERR_OUT_OF_BOUNDS
        );
        // Issue 12: rows of no columns, and a row width past any table's, never loop.
        assert_status!(push(gated, null(), usize::MAX, 0), LC_ERR_OUT_OF_BOUNDS);
        assert_status!(push(gated, null(), 3, 0), LC_ERR_INVALID_ARGUMENT);
        assert_status!(push(gated, good.as_ptr(), 3, 0), LC_ERR_INVALID_ARGUMENT);
        assert_status!(push(gated, null(), 1, usize::MAX), LC_ERR_NULL_ARGUMENT);
        assert_status!(push(gated, good.as_ptr(), 1, usize::MAX), LC_ERR_ROW_ARITY);
        assert_status!(
            push(gated, good.as_ptr(), 2, LC_MAX_COLUMNS + 1),
            LC_ERR_ROW_ARITY
        );
        let unknown = lc_live_query_id {
            connection_id: f.connection,
            subscription_id: 999,
        };
        assert_status!(
            push(unknown, good.as_ptr(), 1, 3),
            LC_ERR_UNKNOWN_SUBSCRIPTION
        );
        assert_status!(
            lc_subscription_push_snapshot_rows(
                f.stale_manager,
                gated,
                null(),
                usize::MAX,
                0,
                null_mut()
            ),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(push(gated, bad_tag.as_ptr(), 1, 3), LC_ERR_INVALID_TAG);
        assert_status!(
            push(gated, bad_reserved.as_ptr(), 1, 3),
            LC_ERR_INVALID_ARGUMENT
        );
        assert_status!(push(gated, good.as_ptr(), 1, 2), LC_ERR_ROW_ARITY);
        assert_status!(push(f.live, good.as_ptr(), 1, 3), LC_ERR_INVALID_STATE);
        assert_status!(
            lc_subscription_push_snapshot_rows(
                f.stale_manager,
                gated,
                good.as_ptr(),
                1,
                3,
                null_mut()
            ),
            LC_ERR_INVALID_HANDLE
        );
        let mut bad: lc_snapshot_progress = sized(2);
        assert_status!(
            lc_subscription_push_snapshot_rows(f.manager, gated, good.as_ptr(), 1, 3, &mut bad),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            lc_subscription_push_snapshot_rows(
                f.manager,
                gated,
                good.as_ptr(),
                1,
                3,
                &mut progress
            ),
            LC_OK
        );
    }
    assert_eq!(
        (progress.consumed, progress.batches, progress.rows),
        (1, 1, 1)
    );
}

pub(crate) fn case_lc_subscription_complete_initial_load() {
    let f = Fixture::new();
    let mut bad: lc_initial_load_report = sized(1);
    let mut report: lc_initial_load_report = full();
    let gated = f.gated();
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_subscription_complete_initial_load(f.manager, f.live, null_mut()),
            LC_ERR_INVALID_STATE
        );
        assert_status!(
            lc_subscription_complete_initial_load(f.manager, gated, &mut bad),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            lc_subscription_complete_initial_load(f.stale_manager, gated, null_mut()),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_subscription_complete_initial_load(f.manager, gated, &mut report),
            LC_OK
        );
        assert_status!(
            lc_subscription_complete_initial_load(f.manager, gated, &mut report),
            LC_ERR_INVALID_STATE
        );
    }
    assert_eq!(report.has_boundary, 0);
}

pub(crate) fn case_lc_subscription_replay_commit() {
    let f = Fixture::new();
    let resuming = subscribe(f.manager, f.connection, "SELECT * FROM chat.messages", &{
        let mut o = options(LC_SUBSCRIBE_RESUME);
        o.resume_from = 1;
        o
    });
    let row = [int(1), int(7), nil()];
    let good = [change(
        f.messages,
        lc_change_type::LC_CHANGE_INSERT,
        &row,
        None,
    )];
    let mut bad_type = good;
    bad_type[0].change_type = 3;
    let mut held = 7;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_subscription_replay_commit(f.manager, resuming, 2, null(), 1, &mut held),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_subscription_replay_commit(f.manager, resuming, 2, bad_type.as_ptr(), 1, &mut held),
            LC_ERR_INVALID_TAG
        );
        assert_status!(
            lc_subscription_replay_commit(f.manager, f.live, 2, good.as_ptr(), 1, &mut held),
            LC_ERR_INVALID_STATE
        );
        let unknown = lc_live_query_id {
            connection_id: f.connection,
            subscription_id: 999,
        };
        assert_status!(
            lc_subscription_replay_commit(f.manager, unknown, 2, good.as_ptr(), 1, &mut held),
            LC_ERR_UNKNOWN_SUBSCRIPTION
        );
        assert_status!(
            lc_subscription_replay_commit(
                f.stale_manager,
                resuming,
                2,
                good.as_ptr(),
                1,
                &mut held
            ),
            LC_ERR_INVALID_HANDLE
        );
        // Lying counts: the handle first, then the commit limit, before a change is read.
        assert_status!(
            lc_subscription_replay_commit(
                f.stale_manager,
                resuming,
                2,
                null(),
                usize::MAX,
                &mut held
            ),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_subscription_replay_commit(
                f.manager,
                resuming,
                2,
                good.as_ptr(),
                usize::MAX,
                &mut held
            ),
            LC_ERR_COMMIT_TOO_LARGE
        );
        assert_status!(
            lc_subscription_replay_commit(
                f.manager,
                resuming,
                2,
                good.as_ptr(),
                LC_MAX_COMMIT_CHANGES + 1,
                &mut held
            ),
            LC_ERR_COMMIT_TOO_LARGE
        );
        let wide = [lc_change {
            row_len: usize::MAX,
            ..good[0]
        }];
        assert_status!(
            lc_subscription_replay_commit(f.manager, resuming, 2, wide.as_ptr(), 1, &mut held),
            LC_ERR_ROW_ARITY
        );
        assert_eq!(held, 7, "a refused call writes nothing");
        assert_status!(
            lc_subscription_replay_commit(f.manager, resuming, 2, good.as_ptr(), 1, &mut held),
            LC_OK
        );
    }
    assert_eq!(held, 1);
}

pub(crate) fn case_lc_subscription_resume_unavailable() {
    let f = Fixture::new();
    let unknown = lc_live_query_id {
        connection_id: f.connection,
        subscription_id: 999,
    };
    assert_status!(
        lc_subscription_resume_unavailable(f.manager, unknown),
        LC_ERR_UNKNOWN_SUBSCRIPTION
    );
    assert_status!(
        lc_subscription_resume_unavailable(f.stale_manager, f.live),
        LC_ERR_INVALID_HANDLE
    );
    // A live subscription is past any resume: refused, and it stays live.
    assert_status!(
        lc_subscription_resume_unavailable(f.manager, f.live),
        LC_ERR_INVALID_STATE
    );
    assert_status!(
        lc_subscription_resume_unavailable(f.manager, f.live),
        LC_ERR_INVALID_STATE
    );
}

pub(crate) fn case_lc_subscription_get_status() {
    let f = Fixture::new();
    let mut status: lc_subscription_status = full();
    let unknown = lc_live_query_id {
        connection_id: f.connection,
        subscription_id: 999,
    };
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_subscription_get_status(f.manager, f.live, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_subscription_get_status(f.manager, unknown, &mut status),
            LC_ERR_UNKNOWN_SUBSCRIPTION
        );
        assert_status!(
            lc_subscription_get_status(f.stale_manager, f.live, &mut status),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_subscription_get_status(f.manager, f.live, &mut status),
            LC_OK
        );
    }
    assert_eq!(status.phase, lc_subscription_phase::LC_PHASE_LIVE as u32);
    assert_eq!(
        (
            status.delivered,
            status.has_last_received_seq,
            status.last_received_seq
        ),
        (2, 1, 2)
    );
}
