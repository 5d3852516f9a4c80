//! The JSON of every value kind and every notification kind, through the C ABI, checked
//! against golden files in tests/golden/ (rewrite them with `LIVECORE_BLESS=1`).

use std::ptr::null_mut;

use livecore::ffi::*;

use crate::assert_status;
use crate::support::*;

use lc_change_type::*;

fn check_golden(name: &str, lines: &[String]) {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    let actual = lines.join("\n") + "\n";
    if std::env::var_os("LIVECORE_BLESS").is_some() {
        std::fs::write(&path, &actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    for (number, (got, want)) in actual.lines().zip(expected.lines()).enumerate() {
        assert_eq!(got, want, "{name} line {} differs", number + 1);
    }
    assert_eq!(
        actual.lines().count(),
        expected.lines().count(),
        "{name} has a different number of lines"
    );
}

/// Every kind of value, with the edge cases of its JSON form.
fn values() -> Vec<lc_value> {
    const TEXTS: [&[u8]; 4] = [
        b"",
        b"plain",
        "quote \" backslash \\ newline \n tab \t control \u{1} nul \0 e-acute \u{e9} line-sep \u{2028} emoji \u{1F600}".as_bytes(),
        b"</script>",
    ];
    const BYTES: [&[u8]; 5] = [b"", b"f", b"fo", b"foo", b"\x00\xff\xfe binary"];
    let mut values = vec![nil(), boolean(false), boolean(true)];
    for int_value in [
        0,
        -1,
        42,
        1 << 53,
        (1 << 53) + 1,
        -(1 << 53),
        -(1 << 53) - 1,
        i64::MAX,
        i64::MIN,
    ] {
        values.push(int(int_value));
    }
    for float_value in [
        0.0,
        -0.0,
        7.0,
        0.1,
        -2.5,
        1e300,
        5e-324,
        f64::MAX,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ] {
        values.push(float(float_value));
    }
    values.extend(TEXTS.iter().map(|t| text(t)));
    values.extend(BYTES.iter().map(|b| bytes(b)));
    values
}

fn same_value(got: &lc_value, want: &lc_value) -> bool {
    if got.tag != want.tag {
        return false;
    }
    match got.tag {
        0 => true,
        1 | 2 => got.int_value == want.int_value,
        3 => got.float_value.to_bits() == want.float_value.to_bits(),
        // SAFETY: both point at `len` readable bytes: the input's static data and the
        // notification's copy.
        _ => unsafe {
            std::slice::from_raw_parts(got.data, got.len)
                == std::slice::from_raw_parts(want.data, want.len)
        },
    }
}

#[test]
fn every_value_kind_has_its_golden_json_and_round_trips() {
    let _serial = serial();
    let manager = manager_with(&config());
    let table = register_table(
        manager,
        "golden",
        "values",
        LC_SCOPE_SHARED_TAG,
        &["id", "v"],
    );
    let connection = connect(manager, "alice");
    subscribe(
        manager,
        connection,
        "SELECT * FROM golden.values",
        &options(0),
    );
    let mut lines = Vec::new();
    for (index, value) in values().iter().enumerate() {
        let seq = index as u64 + 1;
        let row = [int(seq as i64), *value];
        publish(manager, seq, &[change(table, LC_CHANGE_INSERT, &row, None)]);
        let notification = recv(manager, connection);
        let back = crate::support::value(notification, 0, lc_row_version::LC_ROW_CURRENT, 1);
        assert!(
            same_value(&back, value),
            "value {index} did not round-trip: {back:?} vs {value:?}"
        );
        lines.push(json(notification));
        assert_eq!(lc_notification_free(notification), LC_OK);
    }
    // Every line is valid JSON.
    for line in &lines {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|error| panic!("{line}: {error}"));
    }
    check_golden("ffi_values.jsonl", &lines);
    assert_eq!(lc_manager_free(manager), LC_OK);
}

#[test]
fn every_notification_kind_has_its_golden_json() {
    let _serial = serial();
    let mut config = config();
    config.notification_channel_capacity = 3;
    config.gate_buffer_capacity = 1;
    let manager = manager_with(&config);
    let table = register_table(
        manager,
        "golden",
        "rows",
        LC_SCOPE_SHARED_TAG,
        &["id", "name", "score"],
    );
    let connection = connect(manager, "alice");
    let mut lines = Vec::new();
    let drain = |lines: &mut Vec<String>| {
        while let LC_OK = {
            let mut notification = lc_notification::default();
            // SAFETY: `notification` is a live local.
            let status = unsafe { lc_connection_recv(manager, connection, 0, &mut notification) };
            if status == LC_OK {
                lines.push(json(notification));
                assert_eq!(lc_notification_free(notification), LC_OK);
            }
            status
        } {}
    };
    let (ann, bob) = (b"ann".as_slice(), b"bob".as_slice());
    // A snapshot with a filter and a projection, then the load completes.
    let loading = subscribe(
        manager,
        connection,
        "SELECT name, score FROM golden.rows WHERE score > 1",
        &options(LC_SUBSCRIBE_INITIAL_LOAD),
    );
    let snapshot = [int(1), text(ann), float(1.5), int(2), text(bob), int(1)];
    assert_status!(
        lc_subscription_set_snapshot_boundary(manager, loading, 9),
        LC_OK
    );
    assert_status!(
        // SAFETY: two rows of three values; the progress report may be NULL.
        unsafe {
            lc_subscription_push_snapshot_rows(
                manager,
                loading,
                snapshot.as_ptr(),
                2,
                3,
                null_mut(),
            )
        },
        LC_OK
    );
    assert_status!(
        // SAFETY: the report may be NULL.
        unsafe { lc_subscription_complete_initial_load(manager, loading, null_mut()) },
        LC_OK
    );
    drain(&mut lines);
    // Updates entering, staying in and leaving the filter, and a delete, in one commit.
    let (r1, r1b, r2, r2b) = (
        [int(1), text(ann), float(1.5)],
        [int(1), text(ann), float(0.5)],
        [int(2), text(bob), int(1)],
        [int(2), text(bob), int(3)],
    );
    let (r3, r3b) = ([int(3), nil(), int(4)], [int(3), nil(), int(5)]);
    publish(
        manager,
        10,
        &[
            change(table, LC_CHANGE_UPDATE, &r3b, Some(&r3)),
            change(table, LC_CHANGE_UPDATE, &r2b, Some(&r2)),
            change(table, LC_CHANGE_UPDATE, &r1b, Some(&r1)),
            change(table, LC_CHANGE_INSERT, &r1, None),
            change(table, LC_CHANGE_DELETE, &r2b, None),
        ],
    );
    drain(&mut lines);
    // A gap: five commits into a channel of three.
    for seq in 11..=15 {
        let row = [int(seq), text(ann), int(seq)];
        publish(
            manager,
            seq as u64,
            &[change(table, LC_CHANGE_INSERT, &row, None)],
        );
    }
    drain(&mut lines);
    // Resync: a gate buffer of one overflows. Resume unavailable. Closed by a schema change.
    let overflowing = subscribe(
        manager,
        connection,
        "SELECT id FROM golden.rows",
        &options(LC_SUBSCRIBE_INITIAL_LOAD),
    );
    for seq in 16..=17 {
        let row = [int(seq), nil(), nil()];
        publish(
            manager,
            seq as u64,
            &[change(table, LC_CHANGE_INSERT, &row, None)],
        );
    }
    let mut resume = options(LC_SUBSCRIBE_RESUME);
    resume.resume_from = 3;
    let unavailable = subscribe(manager, connection, "SELECT id FROM golden.rows", &resume);
    assert_status!(
        lc_subscription_resume_unavailable(manager, unavailable),
        LC_OK
    );
    drain(&mut lines);
    register_table(
        manager,
        "golden",
        "rows",
        LC_SCOPE_SHARED_TAG,
        &["id", "name"],
    );
    drain(&mut lines);
    let _ = overflowing;
    for line in &lines {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|error| panic!("{line}: {error}"));
    }
    let kinds: Vec<&str> = [
        "snapshot",
        "load_complete",
        "changes",
        "gap",
        "resync_required",
        "resume_unavailable",
        "closed",
    ]
    .to_vec();
    for kind in kinds {
        assert!(
            lines
                .iter()
                .any(|line| line.contains(&format!(r#""type":"{kind}""#))),
            "no {kind} notification"
        );
    }
    check_golden("ffi_notifications.jsonl", &lines);
    assert_eq!(lc_manager_free(manager), LC_OK);
}

/// An event's JSON through `lc_event_json`, checked against its name from `lc_event_name`.
fn event_json(code: u32) -> String {
    let (mut name, mut json, mut len): (*const std::ffi::c_char, *const std::ffi::c_char, usize) =
        (std::ptr::null(), std::ptr::null(), 0);
    // SAFETY: the outs are live locals; the results are static strings of the library.
    unsafe {
        assert_status!(lc_event_name(code, &mut name), LC_OK);
        assert_status!(lc_event_json(code, &mut json, &mut len), LC_OK);
        assert_eq!(*json.add(len), 0, "the JSON is NUL-terminated");
        let name = std::ffi::CStr::from_ptr(name).to_str().unwrap();
        let json = std::str::from_utf8(std::slice::from_raw_parts(json.cast::<u8>(), len))
            .unwrap()
            .to_string();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["type"], "event");
        assert_eq!(
            value["event"],
            name.strip_prefix("LC_EVENT_").unwrap().to_lowercase()
        );
        json
    }
}

#[test]
fn every_event_has_its_golden_json() {
    let _serial = serial();
    let mut config = config();
    config.flags = LC_CONFIG_MANUAL_CLOCK;
    config.manual_clock_start_ms = 1_000_000;
    config.slow_consumer_policy = lc_slow_consumer_policy::LC_SLOW_CONSUMER_DISCONNECT as u32;
    config.notification_channel_capacity = 1;
    let manager = manager_with(&config);
    let table = register_table(manager, "golden", "events", LC_SCOPE_SHARED_TAG, &["id"]);
    let mut anonymous = 0;
    assert_status!(
        // SAFETY: `anonymous` is a live local.
        unsafe { lc_connection_register(manager, &mut anonymous) },
        LC_OK
    );
    let alice = connect(manager, "alice");
    subscribe(manager, alice, "SELECT id FROM golden.events", &options(0));
    let mut lines = Vec::new();
    let drain = |lines: &mut Vec<String>, connection: u64| {
        while let Ok(code) = recv_event(manager, connection, 0) {
            lines.push(event_json(code));
        }
    };
    // Two commits into a channel of one, with the disconnect policy: a slow consumer.
    for seq in 1..=2 {
        let row = [int(seq)];
        publish(
            manager,
            seq as u64,
            &[change(table, LC_CHANGE_INSERT, &row, None)],
        );
    }
    drain(&mut lines, alice);
    // 31 s later: the anonymous connection timed out authenticating, alice is due a ping.
    assert_status!(
        // SAFETY: the report may be NULL.
        unsafe { lc_manager_check_connections(manager, 1_031_000, null_mut()) },
        LC_OK
    );
    drain(&mut lines, anonymous);
    drain(&mut lines, alice);
    // 91 s without a heartbeat.
    assert_status!(
        // SAFETY: as above.
        unsafe { lc_manager_check_connections(manager, 1_091_000, null_mut()) },
        LC_OK
    );
    drain(&mut lines, alice);
    assert_status!(
        // SAFETY: the report may be NULL.
        unsafe { lc_manager_shutdown(manager, 0, null_mut()) },
        LC_OK
    );
    drain(&mut lines, anonymous);
    drain(&mut lines, alice);
    for event in [
        lc_event::LC_EVENT_SEND_PING,
        lc_event::LC_EVENT_AUTH_TIMEOUT,
        lc_event::LC_EVENT_HEARTBEAT_TIMEOUT,
        lc_event::LC_EVENT_SHUTDOWN,
        lc_event::LC_EVENT_SLOW_CONSUMER,
    ] {
        let json = event_json(event as u32);
        assert!(lines.contains(&json), "no {event:?} event: {lines:?}");
    }
    check_golden("ffi_events.jsonl", &lines);
    assert_eq!(lc_manager_free(manager), LC_OK);
}

#[test]
fn every_topic_message_kind_has_its_golden_json() {
    let _serial = serial();
    let (manager, messages, notes) = manager();
    create_topic(manager, "feed", &topic_config(1));
    route_sql(
        manager,
        "feed",
        "SELECT id, body FROM chat.messages WHERE room = 7",
        &route_options(LC_TOPIC_CHANGE_ALL, Some(c"id")),
    );
    route_sql(
        manager,
        "feed",
        "SELECT * FROM app.notes",
        &route_options(LC_TOPIC_CHANGE_ALL, None),
    );
    create_group(
        manager,
        "feed",
        "golden",
        &group_config(lc_topic_reset_policy::LC_TOPIC_RESET_EARLIEST, 30_000),
    );
    let hi = b"hi".as_slice();
    let quoted = "quote \" backslash \\ newline \n e-acute \u{e9} line-sep \u{2028}".as_bytes();
    let inserted = [int(1), int(7), text(hi)];
    let edited = [int(1), int(7), text(quoted)];
    let moved = [int(1), int(8), text(quoted)];
    let back = [int(1), int(7), nil()];
    let big = [int((1 << 53) + 1), int(7), bytes(b"\x00\xff")];
    let note = [int(1), text(b"note")];
    let commits: [&[lc_change]; 7] = [
        // Insert; update staying in the filter; update leaving it (a delete); update
        // entering it (an insert); delete.
        &[change(messages, LC_CHANGE_INSERT, &inserted, None)],
        &[change(messages, LC_CHANGE_UPDATE, &edited, Some(&inserted))],
        &[change(messages, LC_CHANGE_UPDATE, &moved, Some(&edited))],
        &[change(messages, LC_CHANGE_UPDATE, &back, Some(&moved))],
        &[change(messages, LC_CHANGE_DELETE, &back, None)],
        // A key beyond 2^53 and a bytes value; a user-scoped row with its owner.
        &[change(messages, LC_CHANGE_INSERT, &big, None)],
        &[lc_change {
            owner: c"alice".as_ptr(),
            ..change(notes, LC_CHANGE_INSERT, &note, None)
        }],
    ];
    for (index, commit) in commits.iter().enumerate() {
        publish(manager, index as u64 + 1, commit);
    }
    // Direct publishes: keys of every kind (and none), payloads empty, binary and text.
    let keys = [
        Some(text(b"user-7")),
        Some(int(-3)),
        Some(float(f64::NAN)),
        Some(bytes(b"\x01\x02")),
        None,
    ];
    let payloads: [&[u8]; 5] = [b"", b"\x00\xff\xfe binary", b"plain", b"f", b"fo"];
    for (index, (key, payload)) in keys.iter().zip(payloads).enumerate() {
        publish_direct(manager, "feed", 100 + index as u64, key.as_ref(), payload);
    }
    let consumer = connect(manager, "reader");
    let batch = consume(manager, consumer, "feed", "golden", 100, 0);
    let lines = batch_json(batch);
    assert_eq!(lines.len(), 6 + 1 + 5, "{lines:#?}");
    for line in &lines {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|error| panic!("{line}: {error}"));
    }
    check_golden("ffi_topic_messages.jsonl", &lines);
    assert_eq!(lc_topic_batch_free(batch), LC_OK);
    assert_eq!(lc_manager_free(manager), LC_OK);
}
