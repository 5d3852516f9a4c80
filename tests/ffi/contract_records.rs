//! Contract cases (live-query records and failover): each function called with NULL and invalid
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

/// A record list of the fixture's manager (one live query).
pub(crate) fn records_of(f: &Fixture) -> lc_records {
    let mut records = lc_records::default();
    assert_status!(
        // SAFETY: `records` is a live local.
        unsafe { lc_record_list(f.manager, &mut records) },
        LC_OK
    );
    records
}

pub(crate) fn stale_records(f: &Fixture) -> lc_records {
    let records = records_of(f);
    assert_eq!(lc_records_free(records), LC_OK);
    records
}

pub(crate) fn case_lc_record_list() {
    let f = Fixture::new();
    let mut records = lc_records::default();
    // SAFETY: see above.
    unsafe {
        assert_status!(lc_record_list(f.manager, null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(
            lc_record_list(f.stale_manager, &mut records),
            LC_ERR_INVALID_HANDLE
        );
    }
    assert_eq!(
        records,
        lc_records::default(),
        "a refused call writes nothing"
    );
}

pub(crate) fn case_lc_records_count() {
    let f = Fixture::new();
    let records = records_of(&f);
    let mut count = 0;
    // SAFETY: see above.
    unsafe {
        assert_status!(lc_records_count(records, null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(
            lc_records_count(stale_records(&f), &mut count),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_records_count(
                lc_records {
                    id: f.notification.id
                },
                &mut count
            ),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(lc_records_count(records, &mut count), LC_OK);
    }
    assert_eq!(count, 1);
    assert_eq!(lc_records_free(records), LC_OK);
}

pub(crate) fn case_lc_records_get() {
    let f = Fixture::new();
    let records = records_of(&f);
    let mut record: lc_live_query_record = full();
    let mut bad: lc_live_query_record = sized(4);
    // SAFETY: see above.
    unsafe {
        assert_status!(lc_records_get(records, 0, null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(lc_records_get(records, 0, &mut bad), LC_ERR_STRUCT_SIZE);
        assert_status!(
            lc_records_get(records, 1, &mut record),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_records_get(stale_records(&f), 0, &mut record),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(lc_records_get(records, 0, &mut record), LC_OK);
        let query = std::slice::from_raw_parts(record.query.cast::<u8>(), record.query_len);
        assert_eq!(query, b"SELECT * FROM chat.messages WHERE room = 7");
    }
    assert_eq!(record.live_query, f.live);
    assert_eq!(lc_records_free(records), LC_OK);
}

pub(crate) fn case_lc_records_free() {
    let f = Fixture::new();
    assert_status!(
        lc_records_free(lc_records::default()),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(lc_records_free(stale_records(&f)), LC_ERR_INVALID_HANDLE);
    assert_status!(
        lc_records_free(lc_records { id: f.manager.id }),
        LC_ERR_INVALID_HANDLE
    );
}

/// A failover report over the fixture's own records, with node 9 gone.
pub(crate) fn report_of(f: &Fixture) -> lc_failover_report {
    let records = records_of(f);
    let mut record: lc_live_query_record = full();
    // SAFETY: `record` is a live local; it borrows strings from `records`, freed after use.
    let report = unsafe {
        assert_status!(lc_records_get(records, 0, &mut record), LC_OK);
        let mut orphan = record;
        orphan.node_id = 9;
        let given = [record, orphan];
        let mut report = lc_failover_report::default();
        assert_status!(
            lc_failover_run(f.manager, given.as_ptr(), 2, null(), 0, 60_000, &mut report),
            LC_OK
        );
        report
    };
    assert_eq!(lc_records_free(records), LC_OK);
    report
}

pub(crate) fn case_lc_failover_run() {
    let f = Fixture::new();
    let records = records_of(&f);
    let mut record: lc_live_query_record = full();
    let mut report = lc_failover_report::default();
    let nodes = [1u64];
    // SAFETY: see above.
    unsafe {
        assert_status!(lc_records_get(records, 0, &mut record), LC_OK);
        let run = |given: &[lc_live_query_record], report: *mut lc_failover_report| {
            lc_failover_run(
                f.manager,
                given.as_ptr(),
                given.len(),
                nodes.as_ptr(),
                1,
                1000,
                report,
            )
        };
        assert_status!(run(&[record], null_mut()), LC_ERR_NULL_ARGUMENT);
        assert_status!(
            lc_failover_run(f.manager, null(), 1, null(), 0, 1000, &mut report),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_failover_run(f.manager, &record, 1, null(), 1, 1000, &mut report),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            run(
                &[lc_live_query_record {
                    struct_size: 8,
                    ..record
                }],
                &mut report
            ),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            run(
                &[
                    record,
                    lc_live_query_record {
                        struct_size: 200,
                        ..record
                    }
                ],
                &mut report
            ),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            run(
                &[lc_live_query_record {
                    status: 3,
                    ..record
                }],
                &mut report
            ),
            LC_ERR_INVALID_TAG
        );
        assert_status!(
            run(
                &[lc_live_query_record {
                    options_flags: 8,
                    ..record
                }],
                &mut report
            ),
            LC_ERR_INVALID_ARGUMENT
        );
        assert_status!(
            run(
                &[lc_live_query_record {
                    reserved: 1,
                    ..record
                }],
                &mut report
            ),
            LC_ERR_INVALID_ARGUMENT
        );
        assert!(
            last_error().contains("records[0].reserved must be 0"),
            "{}",
            last_error()
        );
        assert_status!(
            run(
                &[lc_live_query_record {
                    query: null(),
                    ..record
                }],
                &mut report
            ),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            run(
                &[lc_live_query_record {
                    query: bad_utf8(),
                    query_len: 2,
                    ..record
                }],
                &mut report
            ),
            LC_ERR_INVALID_UTF8
        );
        // A query length past what any subscribe takes is refused before a byte is read
        // (the query here is a few bytes: reading 2^62 of them would run off the heap).
        assert_status!(
            run(
                &[lc_live_query_record {
                    query_len: 1 << 62,
                    ..record
                }],
                &mut report
            ),
            LC_ERR_OUT_OF_BOUNDS
        );
        assert!(
            last_error().contains("records[0].query_len"),
            "{}",
            last_error()
        );
        assert_status!(
            lc_failover_run(f.stale_manager, &record, 1, null(), 0, 1000, &mut report),
            LC_ERR_INVALID_HANDLE
        );
        // Lying counts: the handle first, then the limits, before anything is read.
        assert_status!(
            lc_failover_run(
                f.stale_manager,
                null(),
                usize::MAX,
                null(),
                usize::MAX,
                1000,
                &mut report
            ),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(
            lc_failover_run(
                f.manager,
                &record,
                LC_MAX_FAILOVER_RECORDS + 1,
                nodes.as_ptr(),
                1,
                1000,
                &mut report
            ),
            LC_ERR_OUT_OF_BOUNDS
        );
        assert_status!(
            lc_failover_run(
                f.manager,
                &record,
                1,
                nodes.as_ptr(),
                LC_MAX_ACTIVE_NODES + 1,
                1000,
                &mut report
            ),
            LC_ERR_OUT_OF_BOUNDS
        );
        // Names in records: 1 to LC_MAX_NAME_LEN bytes, bounded before they are read.
        assert_status!(
            run(
                &[lc_live_query_record {
                    table_name_len: usize::MAX / 2,
                    ..record
                }],
                &mut report
            ),
            LC_ERR_INVALID_NAME
        );
        assert_status!(
            run(
                &[lc_live_query_record {
                    table_namespace_len: 0,
                    ..record
                }],
                &mut report
            ),
            LC_ERR_INVALID_NAME
        );
        assert_status!(
            run(
                &[lc_live_query_record {
                    user_id: record.table_name,
                    user_id_len: LC_MAX_NAME_LEN + 1,
                    ..record
                }],
                &mut report
            ),
            LC_ERR_INVALID_NAME
        );
    }
    assert_eq!(
        report,
        lc_failover_report::default(),
        "a refused call writes nothing"
    );
    assert_eq!(
        stats(f.manager).subscriptions,
        1,
        "refused runs removed nothing"
    );
    assert_eq!(lc_records_free(records), LC_OK);
}

pub(crate) fn case_lc_failover_report_get_info() {
    let f = Fixture::new();
    let report = report_of(&f);
    let mut info: lc_failover_info = full();
    let mut bad: lc_failover_info = sized(0);
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_failover_report_get_info(report, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_failover_report_get_info(report, &mut bad),
            LC_ERR_STRUCT_SIZE
        );
        assert_status!(
            lc_failover_report_get_info(lc_failover_report { id: f.result.id }, &mut info),
            LC_ERR_INVALID_HANDLE
        );
        assert_status!(lc_failover_report_get_info(report, &mut info), LC_OK);
    }
    assert_eq!(
        (info.orphaned, info.stale, info.removed, info.failed),
        (1, 0, 0, 0)
    );
    assert_eq!(lc_failover_report_free(report), LC_OK);
}

pub(crate) fn case_lc_failover_report_record() {
    let f = Fixture::new();
    let report = report_of(&f);
    let mut record: lc_live_query_record = full();
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_failover_report_record(report, 0, 0, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_failover_report_record(report, 2, 0, &mut record),
            LC_ERR_INVALID_TAG
        );
        assert_status!(
            lc_failover_report_record(report, 1, 0, &mut record),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(lc_failover_report_record(report, 0, 0, &mut record), LC_OK);
    }
    assert_eq!((record.node_id, record.live_query), (9, f.live));
    assert_eq!(lc_failover_report_free(report), LC_OK);
    assert_status!(
        // SAFETY: see above.
        unsafe { lc_failover_report_record(report, 0, 0, &mut record) },
        LC_ERR_INVALID_HANDLE
    );
}

pub(crate) fn case_lc_failover_report_removed() {
    let f = Fixture::new();
    let report = report_of(&f);
    let mut id = lc_live_query_id::default();
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_failover_report_removed(report, 0, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_failover_report_removed(report, 0, &mut id),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_failover_report_removed(lc_failover_report::default(), 0, &mut id),
            LC_ERR_INVALID_HANDLE
        );
    }
    assert_eq!(lc_failover_report_free(report), LC_OK);
}

pub(crate) fn case_lc_failover_report_failed() {
    let f = Fixture::new();
    let report = report_of(&f);
    let mut id = lc_live_query_id::default();
    let mut reason: *const c_char = null();
    let mut len = 0;
    // SAFETY: see above.
    unsafe {
        assert_status!(
            lc_failover_report_failed(report, 0, null_mut(), &mut reason, &mut len),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_failover_report_failed(report, 0, &mut id, null_mut(), &mut len),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_failover_report_failed(report, 0, &mut id, &mut reason, null_mut()),
            LC_ERR_NULL_ARGUMENT
        );
        assert_status!(
            lc_failover_report_failed(report, 0, &mut id, &mut reason, &mut len),
            LC_ERR_INDEX_OUT_OF_RANGE
        );
        assert_status!(
            lc_failover_report_failed(
                lc_failover_report { id: f.manager.id },
                0,
                &mut id,
                &mut reason,
                &mut len
            ),
            LC_ERR_INVALID_HANDLE
        );
    }
    assert_eq!(lc_failover_report_free(report), LC_OK);
}

pub(crate) fn case_lc_failover_report_free() {
    let f = Fixture::new();
    let report = report_of(&f);
    assert_status!(
        lc_failover_report_free(lc_failover_report::default()),
        LC_ERR_INVALID_HANDLE
    );
    assert_status!(lc_failover_report_free(report), LC_OK);
    assert_status!(lc_failover_report_free(report), LC_ERR_INVALID_HANDLE);
}
