//! Contract cases (publishing and notifications): each function called with NULL and invalid
//! arguments; see `contract.rs`, which lists every case and checks the list against the header.

use std::ffi::c_char;
use std::mem::zeroed;
use std::ptr::{null, null_mut};

use livecore::ffi::*;

use crate::assert_status;
use crate::contract::*;
use crate::support::*;

// SAFETY (for every case below): each unsafe call passes NULL where the case tests NULL,
// and otherwise pointers to live locals or strings of the right type and length; the
// library must refuse the invalid ones without touching memory it was not given.

pub(crate) fn case_lc_change_publish() {
    let f = Fixture::new();
    let body = b"ok";
    let row = [int(5), int(7), text(body)];
    let insert = change(f.messages, lc_change_type::LC_CHANGE_INSERT, &row, None);
    let with = |edit: &dyn Fn(&mut lc_change)| {
        let mut change = insert;
        edit(&mut change);
        change
    };
    let bad_utf8_text = [int(5), int(7), text(b"\xc3\x28")];
    let null_text = [
        int(5),
        int(7),
        lc_value {
            data: null(),
            len: 3,
            ..text(b"")
        },
    ];
    let huge_text = [
        int(5),
        int(7),
        lc_value {
            len: usize::MAX,
            ..text(body)
        },
    ];
    let just_too_long = [
        int(5),
        int(7),
        lc_value {
            len: LC_MAX_VALUE_BYTES + 1,
            ..text(body)
        },
    ];
    let bad_bool = [
        int(5),
        lc_value {
            int_value: 2,
            ..boolean(true)
        },
        nil(),
    ];
    let bad_tag = [int(5), lc_value { tag: 6, ..int(7) }, nil()];
    let bad_reserved = [
        int(5),
        lc_value {
            reserved: 1,
            ..int(7)
        },
        nil(),
    ];
    let short = [int(5), int(7)];
    let notes_row = [int(1), nil()];
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_change_publish(f.manager, 10, null(), null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_change_publish(f.stale_manager, 10, &insert, null_mut()),
            LC_ERR_INVALID_HANDLE
        );
        let mut bad: lc_publish_summary = sized(0);
        assert_status!(
            lc_change_publish(f.manager, 10, &insert, &mut bad),
            LC_ERR_STRUCT_SIZE
        );
    }
    assert_status!(
        publish_one(&f, &with(&|c| c.table = 999)),
        LC_ERR_UNKNOWN_TABLE
    );
    assert_status!(
        publish_one(&f, &with(&|c| c.change_type = 3)),
        LC_ERR_INVALID_TAG
    );
    assert_status!(
        publish_one(&f, &with(&|c| c.row = bad_tag.as_ptr())),
        LC_ERR_INVALID_TAG
    );
    assert_status!(
        publish_one(&f, &with(&|c| c.row = bad_bool.as_ptr())),
        LC_ERR_INVALID_ARGUMENT
    );
    assert_status!(
        publish_one(&f, &with(&|c| c.row = bad_reserved.as_ptr())),
        LC_ERR_INVALID_ARGUMENT
    );
    assert!(
        last_error().contains("changes[0].row[1]: `reserved` must be 0"),
        "{}",
        last_error()
    );
    assert_status!(
        publish_one(&f, &with(&|c| c.row = bad_utf8_text.as_ptr())),
        LC_ERR_INVALID_UTF8
    );
    assert_status!(
        publish_one(&f, &with(&|c| c.row = null_text.as_ptr())),
        LC_ERR_NULL_ARGUMENT
    );
    // A value length past LC_MAX_VALUE_BYTES is refused before a byte is read or copied.
    assert_status!(
        publish_one(&f, &with(&|c| c.row = huge_text.as_ptr())),
        LC_ERR_OUT_OF_BOUNDS
    );
    assert_status!(
        publish_one(&f, &with(&|c| c.row = just_too_long.as_ptr())),
        LC_ERR_OUT_OF_BOUNDS
    );
    // A length that disagrees with the table's columns is refused before a value is read:
    // one past the host's array reads nothing past it (valgrind runs this case).
    assert_status!(
        publish_one(&f, &with(&|c| c.row_len += 1)),
        LC_ERR_ROW_ARITY
    );
    assert!(last_error().contains("columns"), "{}", last_error());
    // Row lengths past any table's width are refused before a value is read.
    assert_status!(
        publish_one(&f, &with(&|c| c.row_len = usize::MAX)),
        LC_ERR_ROW_ARITY
    );
    assert_status!(
        publish_one(&f, &with(&|c| c.row_len = LC_MAX_COLUMNS + 1)),
        LC_ERR_ROW_ARITY
    );
    // An update's old row likewise: one past the columns, or past any width.
    for old_row_len in [row.len() + 1, usize::MAX / 2] {
        assert_status!(
            publish_one(
                &f,
                &with(&|c| {
                    c.change_type = lc_change_type::LC_CHANGE_UPDATE as u32;
                    c.old_row = row.as_ptr();
                    c.old_row_len = old_row_len
                })
            ),
            LC_ERR_ROW_ARITY
        );
    }
    assert_status!(
        publish_one(&f, &with(&|c| c.row = null())),
        LC_ERR_NULL_ARGUMENT
    );
    assert_status!(
        publish_one(
            &f,
            &with(&|c| {
                c.row = short.as_ptr();
                c.row_len = 2
            })
        ),
        LC_ERR_ROW_ARITY
    );
    assert_status!(
        publish_one(
            &f,
            &with(&|c| c.change_type = lc_change_type::LC_CHANGE_UPDATE as u32)
        ),
        LC_ERR_MISSING_OLD_ROW
    );
    assert_status!(
        publish_one(
            &f,
            &with(&|c| {
                c.change_type = lc_change_type::LC_CHANGE_DELETE as u32;
                c.old_row = row.as_ptr();
                c.old_row_len = 3
            })
        ),
        LC_ERR_INVALID_ARGUMENT
    );
    let notes = change(f.notes, lc_change_type::LC_CHANGE_INSERT, &notes_row, None);
    assert_status!(publish_one(&f, &notes), LC_ERR_MISSING_OWNER);
    assert_status!(
        publish_one(
            &f,
            &lc_change {
                owner: bad_utf8(),
                ..notes
            }
        ),
        LC_ERR_INVALID_UTF8
    );
    // An owner is a user name: 1 to LC_MAX_NAME_LEN bytes, as authenticating requires.
    let too_long = c(&"o".repeat(LC_MAX_NAME_LEN + 1));
    for owner in [c(""), too_long] {
        assert_status!(
            publish_one(
                &f,
                &lc_change {
                    owner: owner.as_ptr(),
                    ..notes
                }
            ),
            LC_ERR_INVALID_NAME
        );
    }
    // Nothing was published, nothing delivered.
    assert_eq!(stats(f.manager).published, 2);
    // A shared table's change does not read its owner.
    assert_status!(
        publish_one(
            &f,
            &lc_change {
                owner: bad_utf8(),
                ..insert
            }
        ),
        LC_OK
    );
    assert_eq!(try_recv_status(f.manager, f.connection), LC_OK);
    assert_eq!(try_recv_status(f.manager, f.connection), LC_EMPTY);
    assert_status!(publish_one(&f, &insert), LC_OK);
}

pub(crate) fn case_lc_commit_publish() {
    let f = Fixture::new();
    let row = [int(5), int(7), nil()];
    let good = change(f.messages, lc_change_type::LC_CHANGE_INSERT, &row, None);
    let commit = [good, lc_change { table: 999, ..good }];
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_commit_publish(f.manager, 10, null(), 2, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        // Counts past LC_MAX_COMMIT_CHANGES are refused before a change is read, and a
        // freed manager is reported whatever the count.
        assert_status!(
            lc_commit_publish(f.manager, 10, commit.as_ptr(), usize::MAX, null_mut()),
            LC_ERR_COMMIT_TOO_LARGE
        );
        assert_status!(
            lc_commit_publish(
                f.manager,
                10,
                commit.as_ptr(),
                LC_MAX_COMMIT_CHANGES + 1,
                null_mut()
            ),
            LC_ERR_COMMIT_TOO_LARGE
        );
        assert_status!(
            lc_commit_publish(f.stale_manager, 10, null(), usize::MAX, null_mut()),
            LC_ERR_INVALID_HANDLE
        );
        // A count within the limit but larger than memory can hold is still refused.
        assert_status!(
            lc_commit_publish(f.manager, 10, null(), LC_MAX_COMMIT_CHANGES, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_commit_publish(f.stale_manager, 10, commit.as_ptr(), 2, null_mut()),
            LC_ERR_INVALID_HANDLE
        );
        // One bad change refuses the whole commit.
        assert_status!(
            lc_commit_publish(f.manager, 10, commit.as_ptr(), 2, null_mut()),
            LC_ERR_UNKNOWN_TABLE
        );
        assert!(
            last_error().contains("changes[1]") || last_error().contains("999"),
            "{}",
            last_error()
        );
    }
    assert_eq!(try_recv_status(f.manager, f.connection), LC_EMPTY);
    // An empty commit is no error.
    assert_status!(
        // SAFETY: see above.
        unsafe { lc_commit_publish(f.manager, 11, null(), 0, null_mut()) },
        LC_OK
    );
}

pub(crate) fn case_lc_notification_get_info() {
    let f = Fixture::new();
    let mut info: lc_notification_info = full();
    let mut bad: lc_notification_info = sized(4);
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_notification_get_info(f.notification, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_notification_get_info(f.notification, &mut bad),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            lc_notification_get_info(f.stale_notification, &mut info),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_notification_get_info(lc_notification { id: f.result.id }, &mut info),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_notification_get_info(lc_notification::default(), &mut info),
            LC_ERR_INVALID_HANDLE
        );
    }
}

pub(crate) fn case_lc_notification_json() {
    let f = Fixture::new();
    let mut json: *const c_char = null();
    let mut len = 0;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_notification_json(f.notification, null_mut(), &mut len),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_notification_json(f.notification, &mut json, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_notification_json(f.stale_notification, &mut json, &mut len),
            LC_ERR_INVALID_HANDLE
        );
    }
    assert!(json.is_null() && len == 0, "a refused call writes nothing");
}

pub(crate) fn case_lc_notification_column() {
    let f = Fixture::new();
    let mut name: *const c_char = null();
    let mut len = 0;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_notification_column(f.notification, 0, null_mut(), &mut len),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_notification_column(f.notification, 0, &mut name, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_notification_column(f.notification, 3, &mut name, &mut len),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_notification_column(f.stale_notification, 0, &mut name, &mut len),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_notification_column(f.notification, 1, &mut name, &mut len),
            LC_OK
        );
        assert_eq!(std::slice::from_raw_parts(name.cast::<u8>(), len), b"room");
    }
}

pub(crate) fn case_lc_notification_change() {
    let f = Fixture::new();
    // SAFETY: all-zero is a valid lc_change_info.
    let mut out: lc_change_info = unsafe { zeroed() };
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_notification_change(f.notification, 0, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_notification_change(f.notification, 1, &mut out),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_notification_change(f.stale_notification, 0, &mut out),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(lc_notification_change(f.notification, 0, &mut out), LC_OK);
    }
    assert_eq!((out.change_type, out.has_old_row, out.position), (0, 0, 0));
}

pub(crate) fn case_lc_notification_value() {
    let f = Fixture::new();
    let mut value = nil();
    // SAFETY: see above.
    unsafe {
        let current = lc_row_version::LC_ROW_CURRENT as u32;
        assert_status!(
            lc_notification_value(f.notification, 0, current, 0, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_notification_value(f.notification, 0, 2, 0, &mut value),
            LC_ERR_INVALID_TAG
        );
        assert_status!(
            lc_notification_value(f.notification, 0, 1, 0, &mut value),
            LC_ERR_INVALID_ARGUMENT
        );
        assert_status!(
            lc_notification_value(f.notification, 1, current, 0, &mut value),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_notification_value(f.notification, 0, current, 3, &mut value),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_notification_value(f.stale_notification, 0, current, 0, &mut value),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_notification_value(f.notification, 0, current, 2, &mut value),
            LC_OK
        );
        assert_eq!(value.tag, lc_value_type::LC_VALUE_TEXT as u32);
        assert_eq!(std::slice::from_raw_parts(value.data, value.len), b"hi");
    }
}

pub(crate) fn case_lc_notification_free() {
    let f = Fixture::new();
    assert_status!(
        lc_notification_free(lc_notification::default()),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(
        lc_notification_free(f.stale_notification),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(
        lc_notification_free(lc_notification { id: f.manager.id }),
        LC_ERR_INVALID_HANDLE
    );
}
