//! A panic inside an extern function comes back as LC_ERR_PANIC with a message, and the
//! library stays usable.

use std::ptr::null_mut;

use livecore::ffi::*;

use crate::assert_status;
use crate::support::*;

#[test]
fn a_panic_inside_a_call_comes_back_as_a_status() {
    let _serial = serial();
    let (manager, messages, _) = manager();
    let connection = connect(manager, "alice");
    subscribe(
        manager,
        connection,
        "SELECT id FROM chat.messages",
        &options(0),
    );
    let row = [int(1), int(1), nil()];
    let insert = change(messages, lc_change_type::LC_CHANGE_INSERT, &row, None);

    inject_panic_on_next_call();
    // SAFETY: `insert` borrows `row`; the summary may be NULL.
    assert_status!(
        unsafe { lc_publish(manager, 1, &insert, null_mut()) },
        LC_ERR_PANIC
    );
    let message = last_error();
    assert!(
        message.starts_with("lc_publish: panic caught at the C boundary"),
        "{message}"
    );
    assert!(message.contains("panic injected by a test"), "{message}");
    // The call had no effect, and the library goes on working.
    assert_eq!(stats(manager).published, 0);
    // SAFETY: as above.
    assert_status!(
        unsafe { lc_publish(manager, 1, &insert, null_mut()) },
        LC_OK
    );

    // A panic while a receiver is taken leaves it usable.
    inject_panic_on_next_call();
    let mut notification = lc_notification::default();
    // SAFETY: `notification` is a live local.
    assert_status!(
        unsafe { lc_connection_recv(manager, connection, 0, &mut notification) },
        LC_ERR_PANIC
    );
    assert!(recv_json(manager, connection).contains(r#""seq":1"#));

    inject_panic_on_next_call();
    assert_status!(lc_manager_free(manager), LC_ERR_PANIC);
    assert_status!(lc_manager_free(manager), LC_OK);
}
