//! Every function in include/livecore.h, called with NULL and invalid arguments: each
//! refusal has its status, and a refused call has no effect. The list of cases is checked
//! against the header's functions, so a new function without a case fails this test.

use std::collections::BTreeSet;
use std::ffi::{c_char, CStr};
use std::mem::{size_of, zeroed};
use std::ptr::{null, null_mut};

use livecore::ffi::*;

use crate::assert_status;
use crate::support::*;
use crate::topic_contract::TOPIC_CASES;
use crate::topic_store_contract::STORE_CASES;

/// Invalid UTF-8, NUL-terminated.
pub(crate) const BAD_UTF8: &[u8] = b"\xff\xfeab\0";

pub(crate) fn bad_utf8() -> *const c_char {
    BAD_UTF8.as_ptr().cast()
}

/// A manager with a table, an authenticated connection, a live subscription on
/// `chat.messages WHERE room = 7`, a received changes notification, a live subscription
/// result, and stale handles of each kind.
pub(crate) struct Fixture {
    pub(crate) manager: lc_manager,
    pub(crate) messages: u32,
    pub(crate) notes: u32,
    pub(crate) connection: u64,
    pub(crate) live: lc_live_query_id,
    pub(crate) notification: lc_notification,
    pub(crate) result: lc_subscription_result,
    pub(crate) stale_manager: lc_manager,
    pub(crate) stale_notification: lc_notification,
    pub(crate) stale_result: lc_subscription_result,
}

impl Fixture {
    pub(crate) fn new() -> Self {
        let (manager, messages, notes) = manager();
        let connection = connect(manager, "alice");
        let result = subscribe_result(
            manager,
            connection,
            "SELECT * FROM chat.messages WHERE room = 7",
            &options(0),
        );
        let live = result_info(result).live_query;
        let body = b"hi";
        let row = [int(1), int(7), text(body)];
        publish(
            manager,
            1,
            &[change(
                messages,
                lc_change_type::LC_CHANGE_INSERT,
                &row,
                None,
            )],
        );
        publish(
            manager,
            2,
            &[change(
                messages,
                lc_change_type::LC_CHANGE_INSERT,
                &row,
                None,
            )],
        );
        let notification = recv(manager, connection);
        let stale_notification = recv(manager, connection);
        assert_eq!(lc_notification_free(stale_notification), LC_OK);
        let stale_result = subscribe_result(
            manager,
            connection,
            "SELECT id FROM chat.messages",
            &options(0),
        );
        assert_eq!(
            lc_subscription_cancel(manager, result_info(stale_result).live_query),
            LC_OK
        );
        assert_eq!(lc_subscription_result_free(stale_result), LC_OK);
        let stale_manager = manager_with(&config());
        assert_eq!(lc_manager_free(stale_manager), LC_OK);
        Self {
            manager,
            messages,
            notes,
            connection,
            live,
            notification,
            result,
            stale_manager,
            stale_notification,
            stale_result,
        }
    }

    /// A second, not yet authenticated connection.
    pub(crate) fn anonymous(&self) -> u64 {
        let mut id = 0;
        assert_status!(
            // SAFETY: `id` is a live local.
            unsafe { lc_connection_register(self.manager, &mut id) },
            LC_OK
        );
        id
    }

    /// A subscription still in its initial load.
    pub(crate) fn gated(&self) -> lc_live_query_id {
        subscribe(
            self.manager,
            self.connection,
            "SELECT * FROM chat.messages",
            &options(LC_SUBSCRIBE_INITIAL_LOAD),
        )
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        assert_eq!(lc_notification_free(self.notification), LC_OK);
        assert_eq!(lc_subscription_result_free(self.result), LC_OK);
        assert_eq!(lc_manager_free(self.manager), LC_OK);
    }
}

/// A sized struct, zeroed, with `struct_size` set to `size`.
pub(crate) fn sized<T>(size: usize) -> T {
    // SAFETY: every sized struct of the ABI is integers only, so all-zero is valid; its
    // first field is the u32 struct_size.
    unsafe {
        let mut value: T = zeroed();
        (&mut value as *mut T).cast::<u32>().write(size as u32);
        value
    }
}

pub(crate) fn full<T>() -> T {
    sized(size_of::<T>())
}

/// The status of `lc_change_publish` with one change.
pub(crate) fn publish_one(f: &Fixture, change: &lc_change) -> lc_status {
    // SAFETY: `change` borrows rows the caller keeps alive; the summary may be NULL.
    unsafe { lc_change_publish(f.manager, 10, change, null_mut()) }
}

// SAFETY (for every case below): each unsafe call passes NULL where the case tests NULL,
// and otherwise pointers to live locals or strings of the right type and length; the
// library must refuse the invalid ones without touching memory it was not given.

/// Every function of the header, with its case.
const CASES: &[(&str, fn())] = &[
    ("lc_version", crate::contract_manager::case_lc_version),
    (
        "lc_abi_version",
        crate::contract_manager::case_lc_abi_version,
    ),
    ("lc_last_error", crate::contract_manager::case_lc_last_error),
    (
        "lc_status_name",
        crate::contract_manager::case_lc_status_name,
    ),
    (
        "lc_config_init",
        crate::contract_manager::case_lc_config_init,
    ),
    (
        "lc_manager_new",
        crate::contract_manager::case_lc_manager_new,
    ),
    (
        "lc_manager_free",
        crate::contract_manager::case_lc_manager_free,
    ),
    (
        "lc_manager_get_clock",
        crate::contract_manager::case_lc_manager_get_clock,
    ),
    (
        "lc_manager_set_clock",
        crate::contract_manager::case_lc_manager_set_clock,
    ),
    (
        "lc_manager_wait_ready",
        crate::contract_manager::case_lc_manager_wait_ready,
    ),
    (
        "lc_manager_check_connections",
        crate::contract_manager::case_lc_manager_check_connections,
    ),
    (
        "lc_manager_shutdown",
        crate::contract_manager::case_lc_manager_shutdown,
    ),
    (
        "lc_manager_get_stats",
        crate::contract_manager::case_lc_manager_get_stats,
    ),
    (
        "lc_table_register",
        crate::contract_manager::case_lc_table_register,
    ),
    (
        "lc_connection_register",
        crate::contract_connection::case_lc_connection_register,
    ),
    (
        "lc_connection_mark_auth_started",
        crate::contract_connection::case_lc_connection_mark_auth_started,
    ),
    (
        "lc_connection_authenticate",
        crate::contract_connection::case_lc_connection_authenticate,
    ),
    (
        "lc_connection_heartbeat",
        crate::contract_connection::case_lc_connection_heartbeat,
    ),
    (
        "lc_connection_unregister",
        crate::contract_connection::case_lc_connection_unregister,
    ),
    (
        "lc_connection_get_info",
        crate::contract_connection::case_lc_connection_get_info,
    ),
    (
        "lc_connection_recv",
        crate::contract_connection::case_lc_connection_recv,
    ),
    (
        "lc_connection_recv_batch",
        crate::contract_connection::case_lc_connection_recv_batch,
    ),
    (
        "lc_connection_recv_event",
        crate::contract_connection::case_lc_connection_recv_event,
    ),
    (
        "lc_event_name",
        crate::contract_connection::case_lc_event_name,
    ),
    (
        "lc_event_json",
        crate::contract_connection::case_lc_event_json,
    ),
    (
        "lc_connection_arm_ready",
        crate::contract_connection::case_lc_connection_arm_ready,
    ),
    (
        "lc_subscription_options_init",
        crate::contract_subscription::case_lc_subscription_options_init,
    ),
    (
        "lc_subscription_create_sql",
        crate::contract_subscription::case_lc_subscription_create_sql,
    ),
    (
        "lc_subscription_result_get_info",
        crate::contract_subscription::case_lc_subscription_result_get_info,
    ),
    (
        "lc_subscription_result_column",
        crate::contract_subscription::case_lc_subscription_result_column,
    ),
    (
        "lc_subscription_result_free",
        crate::contract_subscription::case_lc_subscription_result_free,
    ),
    (
        "lc_subscription_cancel",
        crate::contract_subscription::case_lc_subscription_cancel,
    ),
    (
        "lc_subscription_set_snapshot_boundary",
        crate::contract_subscription::case_lc_subscription_set_snapshot_boundary,
    ),
    (
        "lc_subscription_push_snapshot_rows",
        crate::contract_subscription::case_lc_subscription_push_snapshot_rows,
    ),
    (
        "lc_subscription_complete_initial_load",
        crate::contract_subscription::case_lc_subscription_complete_initial_load,
    ),
    (
        "lc_subscription_replay_commit",
        crate::contract_subscription::case_lc_subscription_replay_commit,
    ),
    (
        "lc_subscription_resume_unavailable",
        crate::contract_subscription::case_lc_subscription_resume_unavailable,
    ),
    (
        "lc_subscription_get_status",
        crate::contract_subscription::case_lc_subscription_get_status,
    ),
    (
        "lc_change_publish",
        crate::contract_publish::case_lc_change_publish,
    ),
    (
        "lc_commit_publish",
        crate::contract_publish::case_lc_commit_publish,
    ),
    (
        "lc_notification_get_info",
        crate::contract_publish::case_lc_notification_get_info,
    ),
    (
        "lc_notification_json",
        crate::contract_publish::case_lc_notification_json,
    ),
    (
        "lc_notification_column",
        crate::contract_publish::case_lc_notification_column,
    ),
    (
        "lc_notification_change",
        crate::contract_publish::case_lc_notification_change,
    ),
    (
        "lc_notification_value",
        crate::contract_publish::case_lc_notification_value,
    ),
    (
        "lc_notification_free",
        crate::contract_publish::case_lc_notification_free,
    ),
    ("lc_table_drop", crate::contract_manager::case_lc_table_drop),
    (
        "lc_user_revoke",
        crate::contract_manager::case_lc_user_revoke,
    ),
    (
        "lc_table_revoke",
        crate::contract_manager::case_lc_table_revoke,
    ),
    (
        "lc_table_resync",
        crate::contract_manager::case_lc_table_resync,
    ),
    (
        "lc_table_columns_rewritten",
        crate::contract_manager::case_lc_table_columns_rewritten,
    ),
    (
        "lc_record_list",
        crate::contract_records::case_lc_record_list,
    ),
    (
        "lc_records_count",
        crate::contract_records::case_lc_records_count,
    ),
    (
        "lc_records_get",
        crate::contract_records::case_lc_records_get,
    ),
    (
        "lc_records_free",
        crate::contract_records::case_lc_records_free,
    ),
    (
        "lc_failover_run",
        crate::contract_records::case_lc_failover_run,
    ),
    (
        "lc_failover_report_get_info",
        crate::contract_records::case_lc_failover_report_get_info,
    ),
    (
        "lc_failover_report_record",
        crate::contract_records::case_lc_failover_report_record,
    ),
    (
        "lc_failover_report_removed",
        crate::contract_records::case_lc_failover_report_removed,
    ),
    (
        "lc_failover_report_failed",
        crate::contract_records::case_lc_failover_report_failed,
    ),
    (
        "lc_failover_report_free",
        crate::contract_records::case_lc_failover_report_free,
    ),
];

fn header() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/livecore.h")).unwrap()
}

/// The functions the header declares: every `lc_status lc_name(` line.
fn header_functions() -> BTreeSet<String> {
    header()
        .lines()
        .filter_map(|line| line.strip_prefix("lc_status "))
        .filter_map(|rest| rest.split_once('('))
        .map(|(name, _)| name.trim().to_string())
        .collect()
}

/// The functions the header declares inside `#if defined(LC_HAS_FJALL)`: in the library
/// only when it is built with the `fjall` feature.
fn fjall_functions() -> BTreeSet<String> {
    let mut inside = false;
    let mut names = BTreeSet::new();
    for line in header().lines() {
        if line.starts_with("#if defined(LC_HAS_FJALL)") {
            inside = true;
        } else if line.starts_with("#endif") {
            inside = false;
        } else if let Some(rest) = line.strip_prefix("lc_status ").filter(|_| inside) {
            names.insert(rest.split('(').next().unwrap().trim().to_string());
        }
    }
    names
}

/// The header's functions this build of the library has.
fn built_functions() -> BTreeSet<String> {
    let mut names = header_functions();
    if !cfg!(feature = "fjall") {
        for name in fjall_functions() {
            names.remove(&name);
        }
    }
    names
}

#[cfg(feature = "fjall")]
const FJALL_CASES: &[(&str, fn())] = crate::topic_fjall::FJALL_CASES;
#[cfg(not(feature = "fjall"))]
const FJALL_CASES: &[(&str, fn())] = &[];

#[test]
fn the_fjall_functions_are_declared_only_under_lc_has_fjall() {
    let expected: BTreeSet<String> = [
        "lc_fjall_store_open",
        "lc_fjall_store_free",
        "lc_topic_create_with_fjall",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(fjall_functions(), expected);
}

#[test]
fn every_header_function_has_a_case_and_every_case_passes() {
    let _serial = serial();
    let declared = built_functions();
    assert!(
        declared.len() >= 40,
        "parsed only {} functions from the header",
        declared.len()
    );
    let all_cases = || {
        CASES
            .iter()
            .chain(TOPIC_CASES)
            .chain(STORE_CASES)
            .chain(FJALL_CASES)
    };
    let covered: BTreeSet<String> = all_cases().map(|(name, _)| name.to_string()).collect();
    let missing: Vec<_> = declared.difference(&covered).collect();
    let extra: Vec<_> = covered.difference(&declared).collect();
    assert!(
        missing.is_empty(),
        "header functions without a NULL/invalid-argument case: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "cases for functions the header does not declare: {extra:?}"
    );
    let before = live_handle_counts();
    for (name, case) in all_cases() {
        let outcome = std::panic::catch_unwind(case);
        assert!(outcome.is_ok(), "the case for {name} failed");
    }
    assert_eq!(live_handle_counts(), before, "the cases leaked handles");
}

#[test]
fn header_status_numbers_are_the_ones_the_library_returns() {
    let _serial = serial();
    // Each `LC_...= n,` entry of the lc_status enum resolves to a name through the library.
    let header = header();
    let body = header.split("enum lc_status").nth(1).unwrap();
    let body = &body[..body.find("};").unwrap()];
    let mut count = 0;
    for line in body
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("LC_"))
    {
        let (name, number) = line.trim_end_matches(',').split_once(" = ").unwrap();
        let mut resolved: *const c_char = null();
        // SAFETY: `resolved` is a live local; the name is a static string.
        unsafe {
            assert_eq!(
                lc_status_name(number.parse().unwrap(), &mut resolved),
                LC_OK,
                "{name}"
            );
            assert_eq!(CStr::from_ptr(resolved).to_str().unwrap(), name);
        }
        count += 1;
    }
    assert_eq!(count, 52);
}

/// Asserts that the listed fields fill the whole struct: no implicit padding, whose bytes a
/// caller could not be asked to zero.
macro_rules! assert_unpadded {
    ($ty:ident { $($field:ident),* $(,)? }) => {{
        // SAFETY: the input structs of the ABI hold integers, floats and raw pointers only,
        // so all-zero is a valid value.
        let value: $ty = unsafe { zeroed() };
        let fields = 0 $(+ std::mem::size_of_val(&value.$field))*;
        assert_eq!(fields, size_of::<$ty>(), "{} has implicit padding", stringify!($ty));
    }};
}

#[test]
fn input_structs_have_no_padding_besides_their_checked_reserved_fields() {
    // Explicit `reserved` fields (lc_value, lc_config, lc_live_query_record,
    // lc_topic_group_config) are refused when not zero (the lc_change_publish,
    // lc_subscription_push_snapshot_rows, lc_manager_new, lc_failover_run, lc_topic_publish
    // and lc_topic_group_create cases); the other inputs have no gap to check.
    assert_unpadded!(lc_value {
        tag,
        reserved,
        int_value,
        float_value,
        data,
        len
    });
    assert_unpadded!(lc_change {
        table,
        change_type,
        row,
        row_len,
        old_row,
        old_row_len,
        owner
    });
    assert_unpadded!(lc_subscription_options {
        struct_size,
        flags,
        batch_size,
        resume_from
    });
    assert_unpadded!(lc_topic_config {
        struct_size,
        partitions,
        retention_max_messages,
        retention_max_bytes
    });
    assert_unpadded!(lc_topic_route_options {
        struct_size,
        change_types,
        key_column
    });
    assert_unpadded!(lc_topic_group_config {
        struct_size,
        reset,
        lease_ms,
        dead_letter_topic,
        max_deliver,
        reserved
    });
    assert_unpadded!(lc_live_query_record {
        struct_size,
        status,
        live_query,
        node_id,
        table_namespace,
        table_namespace_len,
        table_name,
        table_name_len,
        user_id,
        user_id_len,
        query,
        query_len,
        options_flags,
        reserved,
        batch_size,
        resume_from,
        created_at_ms,
        last_update_ms,
        last_heartbeat_ms,
        changes_delivered
    });
}

#[test]
fn header_event_numbers_are_the_ones_the_library_names() {
    // Each `LC_EVENT_...= n,` entry of the lc_event enum names itself through
    // lc_event_name, and has JSON naming it in lower case.
    let header = header();
    let body = header.split("enum lc_event").nth(1).unwrap();
    let body = &body[..body.find("};").unwrap()];
    let mut count = 0;
    for line in body
        .lines()
        .map(str::trim)
        .filter(|line| line.starts_with("LC_"))
    {
        let (name, number) = line.trim_end_matches(',').split_once(" = ").unwrap();
        let code: u32 = number.parse().unwrap();
        let (mut resolved, mut json, mut len): (*const c_char, *const c_char, usize) =
            (null(), null(), 0);
        // SAFETY: the outs are live locals; the results are static strings.
        unsafe {
            assert_eq!(lc_event_name(code, &mut resolved), LC_OK, "{name}");
            assert_eq!(CStr::from_ptr(resolved).to_str().unwrap(), name);
            assert_eq!(lc_event_json(code, &mut json, &mut len), LC_OK, "{name}");
            let json =
                std::str::from_utf8(std::slice::from_raw_parts(json.cast::<u8>(), len)).unwrap();
            let snake = name.strip_prefix("LC_EVENT_").unwrap().to_lowercase();
            assert_eq!(json, format!(r#"{{"type":"event","event":"{snake}"}}"#));
        }
        count += 1;
    }
    assert_eq!(count, 5);
}

#[test]
fn every_header_function_states_its_thread_safety() {
    let header = header();
    let mut checked = 0;
    let mut comment = String::new();
    for line in header.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("/**") {
            comment.clear();
        }
        if trimmed.starts_with('*') || trimmed.starts_with("/**") {
            comment.push_str(trimmed);
            comment.push('\n');
        }
        if let Some(rest) = line.strip_prefix("lc_status ") {
            let name = rest.split('(').next().unwrap();
            assert!(
                comment.contains("Thread safety:"),
                "the header comment of {name} does not state its thread safety"
            );
            checked += 1;
            comment.clear();
        }
    }
    assert_eq!(checked, header_functions().len());
}

#[test]
fn every_extern_function_runs_inside_the_panic_boundary() {
    // Each `extern "C" fn NAME` in src/ffi/ passes its body to `boundary("NAME", ..)`. Those
    // named `lc_` are the header's functions; the rest are callbacks livecore hands the C
    // library (a thread-specific key's destructor), which no host calls.
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/ffi");
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let source = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let mut rest = source.as_str();
        while let Some(at) = rest.find("extern \"C\" fn ") {
            rest = &rest[at + "extern \"C\" fn ".len()..];
            let name = &rest[..rest.find('(').unwrap()];
            let body_end = rest.find("\n}\n").unwrap();
            let body = &rest[..body_end];
            assert!(
                body.contains(&format!("boundary(\"{name}\"")),
                "{name} does not run its body inside boundary(\"{name}\", ..)"
            );
            names.insert(name.to_string());
        }
    }
    names.retain(|name| name.starts_with("lc_"));
    assert_eq!(
        names,
        header_functions(),
        "the extern functions are the header's functions"
    );
}
