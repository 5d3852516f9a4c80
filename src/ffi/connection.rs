//! Connections: lifecycle and receiving.

use std::ffi::{c_char, CStr};
use std::time::Duration;

use smallvec::SmallVec;

use crate::ffi::handles::Handle;
use crate::ffi::manager::manager_entry;
use crate::ffi::ptr::{check_name_len, name_str, optional_c_str, Out, OutSlice, SizedOut};
use crate::ffi::state::{receive_status, take_receiver, NotificationEntry};
use crate::ffi::status::{boundary, lc_status, panic_point, FfiError, PanicPoint};
use crate::ffi::types::*;
use crate::{
    ConnectionEvent, ConnectionId, EventReceiver, LiveError, Notification, NotificationReceiver,
    ReceiveError, UserId,
};

/// Registers a connection. `*out_connection_id` receives its id (never reused by this
/// manager); release it with `lc_connection_unregister`. With the ready queue, the new
/// connection starts armed.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `out_connection_id` is NULL or valid for writing a `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn lc_connection_register(
    manager: lc_manager,
    out_connection_id: *mut u64,
) -> lc_status {
    boundary("lc_connection_register", || {
        // SAFETY: the caller promised `out_connection_id` is NULL or writable.
        let out = unsafe { Out::new(out_connection_id, "out_connection_id") }?;
        let entry = manager_entry(manager)?;
        let registration = entry.manager.register_connection()?;
        out.write(entry.add_connection(registration));
        Ok(lc_status::LC_OK)
    })
}

/// Records that the connection began authenticating (stops its auth timeout).
///
/// Thread safety: any thread, concurrently with any other call.
#[no_mangle]
pub extern "C" fn lc_connection_mark_auth_started(
    manager: lc_manager,
    connection_id: u64,
) -> lc_status {
    boundary("lc_connection_mark_auth_started", || {
        manager_entry(manager)?
            .manager
            .mark_auth_started(ConnectionId(connection_id))?;
        Ok(lc_status::LC_OK)
    })
}

/// Records the connection's user (NUL-terminated UTF-8) and optional role (NULL for none).
/// Authenticating again as the same user is allowed; as another user it is
/// `LC_ERR_ALREADY_AUTHENTICATED`. The strings are only read during the call. The user
/// and the role are names of 1 to `LC_MAX_NAME_LEN` bytes (`LC_ERR_INVALID_NAME`
/// otherwise).
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `user_id` is NULL or a NUL-terminated string; `role` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn lc_connection_authenticate(
    manager: lc_manager,
    connection_id: u64,
    user_id: *const c_char,
    role: *const c_char,
) -> lc_status {
    boundary("lc_connection_authenticate", || {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let user = unsafe { name_str(user_id, "user_id") }?;
        // SAFETY: as above.
        let role = unsafe { optional_c_str(role, "role") }?;
        if let Some(role) = role {
            check_name_len(role, LC_MAX_NAME_LEN, "role")?;
        }
        manager_entry(manager)?.manager.authenticate(
            ConnectionId(connection_id),
            UserId::from(user),
            role.map(str::to_string),
        )?;
        Ok(lc_status::LC_OK)
    })
}

/// Records a heartbeat (any sign of life from the client). It re-arms the heartbeat
/// timeout of a connection that has started authenticating; it is no authentication.
///
/// Thread safety: any thread, concurrently with any other call.
#[no_mangle]
pub extern "C" fn lc_connection_heartbeat(manager: lc_manager, connection_id: u64) -> lc_status {
    boundary("lc_connection_heartbeat", || {
        manager_entry(manager)?
            .manager
            .heartbeat(ConnectionId(connection_id))?;
        Ok(lc_status::LC_OK)
    })
}

/// Unregisters a connection and releases its receivers: its subscriptions have left the
/// routing index when this returns, and a receive still blocked on it in another thread
/// ends with `LC_CLOSED`. Also the way to release a connection livecore closed at
/// shutdown. A second unregister is `LC_ERR_UNKNOWN_CONNECTION` (`LC_ERR_SHUTTING_DOWN`
/// once a shutdown began).
///
/// Thread safety: any thread, concurrently with any other call.
#[no_mangle]
pub extern "C" fn lc_connection_unregister(manager: lc_manager, connection_id: u64) -> lc_status {
    boundary("lc_connection_unregister", || {
        let entry = manager_entry(manager)?;
        let removed = entry.remove_connection(connection_id);
        match entry
            .manager
            .unregister_connection(ConnectionId(connection_id))
        {
            Ok(()) => {}
            // Closed by livecore at shutdown: the receivers were all that was left.
            Err(LiveError::UnknownConnection(_) | LiveError::ShuttingDown) if removed.is_some() => {
            }
            Err(error) => return Err(error.into()),
        }
        Ok(lc_status::LC_OK)
    })
}

/// Reads a connection's state. A connection livecore closed at shutdown reports
/// `LC_CONNECTION_CLOSED` until it is unregistered.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `out_info` is NULL or points at an `lc_connection_info` whose first `struct_size`
/// bytes are writable.
#[no_mangle]
pub unsafe extern "C" fn lc_connection_get_info(
    manager: lc_manager,
    connection_id: u64,
    out_info: *mut lc_connection_info,
) -> lc_status {
    boundary("lc_connection_get_info", || {
        // SAFETY: the caller promised `out_info` is NULL or writable for its struct_size.
        let out = unsafe { SizedOut::new(out_info, "out_info") }?;
        let entry = manager_entry(manager)?;
        let mut info = lc_connection_info {
            struct_size: 0,
            flags: 0,
            registered_at_ms: 0,
            last_heartbeat_ms: 0,
            subscription_count: 0,
        };
        match entry.manager.connection(ConnectionId(connection_id)) {
            Ok(state) => {
                if state.auth_started() {
                    info.flags |= LC_CONNECTION_AUTH_STARTED;
                }
                if state.user().is_some() {
                    info.flags |= LC_CONNECTION_AUTHENTICATED;
                }
                if state.is_closed() {
                    info.flags |= LC_CONNECTION_CLOSED;
                }
                if state.is_cut_off() {
                    info.flags |= LC_CONNECTION_CUT_OFF;
                }
                info.registered_at_ms = state.registered_at_ms();
                info.last_heartbeat_ms = state.last_heartbeat_ms();
                info.subscription_count = state.subscription_count() as u64;
            }
            Err(error) => {
                // Still known to the C side: livecore closed it at shutdown.
                entry
                    .connection(connection_id)
                    .map_err(|_| FfiError::from(error))?;
                info.flags = LC_CONNECTION_CLOSED;
            }
        }
        out.write(info);
        Ok(lc_status::LC_OK)
    })
}

/// A connection's receiver (of notifications or of events), for [`receive`].
trait Receive {
    type Item;
    fn try_recv(&mut self) -> Result<Self::Item, ReceiveError>;
    fn recv(&mut self) -> Result<Self::Item, ReceiveError>;
    fn recv_timeout(&mut self, timeout: Duration) -> Result<Self::Item, ReceiveError>;
}

impl Receive for NotificationReceiver {
    type Item = Notification;
    fn try_recv(&mut self) -> Result<Notification, ReceiveError> {
        NotificationReceiver::try_recv(self)
    }
    fn recv(&mut self) -> Result<Notification, ReceiveError> {
        NotificationReceiver::recv(self)
    }
    fn recv_timeout(&mut self, timeout: Duration) -> Result<Notification, ReceiveError> {
        NotificationReceiver::recv_timeout(self, timeout)
    }
}

impl Receive for EventReceiver {
    type Item = ConnectionEvent;
    fn try_recv(&mut self) -> Result<ConnectionEvent, ReceiveError> {
        EventReceiver::try_recv(self)
    }
    fn recv(&mut self) -> Result<ConnectionEvent, ReceiveError> {
        EventReceiver::recv(self)
    }
    fn recv_timeout(&mut self, timeout: Duration) -> Result<ConnectionEvent, ReceiveError> {
        EventReceiver::recv_timeout(self, timeout)
    }
}

/// Receives with a C timeout: 0 does not wait, `LC_WAIT_FOREVER` has no limit, anything
/// else is milliseconds.
fn receive<R: Receive>(receiver: &mut R, timeout_ms: u32) -> Result<R::Item, ReceiveError> {
    match timeout_ms {
        0 => receiver.try_recv(),
        LC_WAIT_FOREVER => receiver.recv(),
        ms => receiver.recv_timeout(Duration::from_millis(u64::from(ms))),
    }
}

/// Receives the connection's next notification, waiting up to `timeout_ms` (0: do not
/// wait; `LC_WAIT_FOREVER`: no limit).
///
/// Returns `LC_OK` with `*out_notification` set (read it with the `lc_notification_*`
/// functions, then free it with `lc_notification_free`), `LC_EMPTY` (timeout 0) or
/// `LC_TIMEOUT` when nothing came, `LC_CLOSED` once the connection is closed (unregistered,
/// cut off as a slow consumer, or ended by a shutdown): nothing more is handed out, and
/// notifications still queued then are discarded unread.
///
/// Thread safety: one consumer at a time per connection: a call while another thread is
/// receiving notifications on the same connection returns `LC_ERR_RECEIVER_BUSY`.
/// Different connections may be received on from different threads at once.
///
/// # Safety
/// `out_notification` is NULL or valid for writing an `lc_notification`.
#[no_mangle]
pub unsafe extern "C" fn lc_connection_recv(
    manager: lc_manager,
    connection_id: u64,
    timeout_ms: u32,
    out_notification: *mut lc_notification,
) -> lc_status {
    boundary("lc_connection_recv", || {
        // SAFETY: the caller promised `out_notification` is NULL or writable.
        let out = unsafe { Out::new(out_notification, "out_notification") }?;
        let entry = manager_entry(manager)?;
        let connection = entry.connection(connection_id)?;
        let mut receiver = connection.take_notifications(connection_id)?;
        panic_point(PanicPoint::ReceiverTaken);
        // Unregistering the connection (also by freeing the manager) closes it, which wakes
        // a blocked receive: a plain blocking wait ends with LC_CLOSED then.
        let received = receive(&mut *receiver, timeout_ms);
        drop(receiver);
        match received {
            Ok(notification) => {
                out.write(lc_notification::insert(NotificationEntry::new(
                    notification,
                )));
                Ok(lc_status::LC_OK)
            }
            Err(error) => Ok(receive_status(error)),
        }
    })
}

/// Handles a batch receive keeps without an allocation until it hands them over.
const BATCH_INLINE: usize = 32;

/// The handles a batch receive has issued, kept here until the call succeeds: freed again
/// if it unwinds, so the host is never left holding a handle it was not told of, and its
/// array is written only once the batch is complete.
struct IssuedNotifications {
    /// In the order their notifications were queued.
    handles: SmallVec<[lc_notification; BATCH_INLINE]>,
}

impl IssuedNotifications {
    /// Issues a handle for `notification`.
    fn push(&mut self, notification: Notification) {
        let handle = lc_notification::insert(NotificationEntry::new(notification));
        self.handles.push(handle);
    }

    /// Writes the handles to `out`, which is then the host's to free; returns how many.
    fn hand_over(mut self, out: &mut OutSlice<lc_notification>) -> usize {
        for (index, &handle) in self.handles.iter().enumerate() {
            out.write(index, handle);
        }
        let count = self.handles.len();
        // Written: no longer the guard's to free.
        self.handles.clear();
        count
    }
}

impl Drop for IssuedNotifications {
    fn drop(&mut self) {
        for handle in self.handles.drain(..) {
            // Issued by this call and never handed over, so still live.
            let _ = handle.remove();
        }
    }
}

/// Receives up to `capacity` notifications at once: waits up to `timeout_ms` for the first,
/// as `lc_connection_recv` does, then takes those already queued behind it without waiting.
/// Cheaper per notification than `lc_connection_recv` when several are queued: the manager,
/// the connection and its receiver are looked up once for all of them.
///
/// Returns `LC_OK` with `*out_count` (at least 1) notification handles written to
/// `out_notifications`, in the order they were queued; free each with
/// `lc_notification_free`. Returns `LC_EMPTY`, `LC_TIMEOUT` or `LC_CLOSED` as
/// `lc_connection_recv` does. On any status but `LC_OK`, `*out_count` is 0 (when
/// `out_count` is not NULL); on any other status than these three no handle was issued
/// and the array was not written (after `LC_ERR_PANIC`, notifications the call had
/// already taken from the channel are lost, as with `lc_connection_recv`). `capacity` 0 is
/// `LC_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: one consumer at a time per connection, shared with
/// `lc_connection_recv` (`LC_ERR_RECEIVER_BUSY` otherwise).
///
/// # Safety
/// `out_notifications` is NULL or writable for `capacity` handles; `out_count` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn lc_connection_recv_batch(
    manager: lc_manager,
    connection_id: u64,
    timeout_ms: u32,
    out_notifications: *mut lc_notification,
    capacity: usize,
    out_count: *mut usize,
) -> lc_status {
    boundary("lc_connection_recv_batch", || {
        // SAFETY: the caller promised `out_count` is NULL or writable.
        let count_out = unsafe { Out::new(out_count, "out_count") }?;
        // First, so no early return (a manager freed during the call is LC_CLOSED from the
        // lookups below) leaves the count unwritten.
        count_out.preset(0);
        // SAFETY: the caller promised `capacity` writable handles at `out_notifications`.
        let mut out =
            unsafe { OutSlice::for_batch(out_notifications, capacity, "out_notifications") }?;
        let entry = manager_entry(manager)?;
        let connection = entry.connection(connection_id)?;
        let mut receiver = connection.take_notifications(connection_id)?;
        panic_point(PanicPoint::ReceiverTaken);
        let first = match receive(&mut *receiver, timeout_ms) {
            Ok(notification) => notification,
            Err(error) => {
                return Ok(receive_status(error));
            }
        };
        let mut issued = IssuedNotifications {
            handles: SmallVec::new(),
        };
        let mut next = Some(first);
        while let Some(notification) = next {
            issued.push(notification);
            if issued.handles.len() == 2 {
                panic_point(PanicPoint::BatchHandlesIssued);
            }
            next = if issued.handles.len() < out.len() {
                receiver.try_recv().ok()
            } else {
                None
            };
        }
        drop(receiver);
        let count = issued.hand_over(&mut out);
        count_out.write(count);
        Ok(lc_status::LC_OK)
    })
}

/// Receives the connection's next event (an `lc_event` number in `*out_event`: name it with
/// `lc_event_name`, render it with `lc_event_json`), waiting up to `timeout_ms` (0: do not
/// wait; `LC_WAIT_FOREVER`: no limit). Returns `LC_OK`, `LC_EMPTY`, `LC_TIMEOUT` or
/// `LC_CLOSED` as `lc_connection_recv` does. Events are never lost to a full channel.
///
/// Thread safety: one consumer at a time per connection (`LC_ERR_RECEIVER_BUSY`
/// otherwise); independent of the notification receiver, which another thread may use at
/// the same time.
///
/// # Safety
/// `out_event` is NULL or valid for writing a `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn lc_connection_recv_event(
    manager: lc_manager,
    connection_id: u64,
    timeout_ms: u32,
    out_event: *mut u32,
) -> lc_status {
    boundary("lc_connection_recv_event", || {
        // SAFETY: the caller promised `out_event` is NULL or writable.
        let out = unsafe { Out::new(out_event, "out_event") }?;
        let entry = manager_entry(manager)?;
        let connection = entry.connection(connection_id)?;
        let mut receiver = take_receiver(&connection.events, connection_id)?;
        panic_point(PanicPoint::ReceiverTaken);
        // Closing the connection also wakes its event channel (see lc_connection_recv).
        match receive(&mut *receiver, timeout_ms) {
            Ok(event) => {
                out.write(u32::from(event as u8));
                Ok(lc_status::LC_OK)
            }
            Err(error) => Ok(receive_status(error)),
        }
    })
}

/// The event with this code, or `LC_ERR_INVALID_ARGUMENT`.
fn event_from_code(code: u32) -> Result<ConnectionEvent, FfiError> {
    ConnectionEvent::from_code(code)
        .ok_or_else(|| FfiError::invalid(format!("{code} is not an lc_event code")))
}

/// An event's name as the header spells it.
fn event_name(event: ConnectionEvent) -> &'static CStr {
    match event {
        ConnectionEvent::SendPing => c"LC_EVENT_SEND_PING",
        ConnectionEvent::AuthTimeout => c"LC_EVENT_AUTH_TIMEOUT",
        ConnectionEvent::HeartbeatTimeout => c"LC_EVENT_HEARTBEAT_TIMEOUT",
        ConnectionEvent::Shutdown => c"LC_EVENT_SHUTDOWN",
        ConnectionEvent::SlowConsumer => c"LC_EVENT_SLOW_CONSUMER",
    }
}

/// An event's JSON (see `ConnectionEvent::to_json`), NUL-terminated and static.
fn event_json(event: ConnectionEvent) -> &'static CStr {
    match event {
        ConnectionEvent::SendPing => c"{\"type\":\"event\",\"event\":\"send_ping\"}",
        ConnectionEvent::AuthTimeout => c"{\"type\":\"event\",\"event\":\"auth_timeout\"}",
        ConnectionEvent::HeartbeatTimeout => {
            c"{\"type\":\"event\",\"event\":\"heartbeat_timeout\"}"
        }
        ConnectionEvent::Shutdown => c"{\"type\":\"event\",\"event\":\"shutdown\"}",
        ConnectionEvent::SlowConsumer => c"{\"type\":\"event\",\"event\":\"slow_consumer\"}",
    }
}

/// Gives the name of an event code (an `lc_event`, as `lc_connection_recv_event` hands it
/// out) as the header spells it ("LC_EVENT_SEND_PING").
///
/// `*out_name` receives a static NUL-terminated string, valid for the life of the program:
/// never free it. An unknown code is `LC_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: any thread, any time.
///
/// # Safety
/// `out_name` is NULL or valid for writing a pointer.
#[no_mangle]
pub unsafe extern "C" fn lc_event_name(event: u32, out_name: *mut *const c_char) -> lc_status {
    boundary("lc_event_name", || {
        // SAFETY: the caller promised `out_name` is NULL or writable.
        let out = unsafe { Out::new(out_name, "out_name") }?;
        out.write(event_name(event_from_code(event)?).as_ptr());
        Ok(lc_status::LC_OK)
    })
}

/// Gives an event code (an `lc_event`) as one JSON object,
/// `{"type":"event","event":"send_ping"}`: `event` is the name in lower case without its
/// `LC_EVENT_` prefix, and `type` tells an event apart from a notification (whose JSON
/// `type` is its kind). An event carries nothing but its code.
///
/// As with `lc_notification_json`, `*out_json` points at `*out_len` bytes of UTF-8
/// followed by a NUL (not counted in the length), owned by livecore. Here the bytes are
/// static: valid for the life of the program, never freed, the same pointer for every
/// call with the same code. An unknown code is `LC_ERR_INVALID_ARGUMENT`.
///
/// Thread safety: any thread, any time.
///
/// # Safety
/// `out_json` and `out_len` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lc_event_json(
    event: u32,
    out_json: *mut *const c_char,
    out_len: *mut usize,
) -> lc_status {
    boundary("lc_event_json", || {
        // SAFETY: the caller promised `out_json` is NULL or writable.
        let json_out = unsafe { Out::new(out_json, "out_json") }?;
        // SAFETY: the caller promised `out_len` is NULL or writable.
        let len_out = unsafe { Out::new(out_len, "out_len") }?;
        let json = event_json(event_from_code(event)?);
        // The bytes are a static literal.
        json_out.write(json.as_ptr());
        len_out.write(json.to_bytes().len());
        Ok(lc_status::LC_OK)
    })
}

/// Arms the connection on the manager's ready queue: its next delivery or event puts its
/// id on the queue (`lc_manager_wait_ready`); if something is already waiting, it is
/// queued at once. Call it after draining the connection. Needs `LC_CONFIG_READY_QUEUE`
/// (otherwise `LC_ERR_NOT_ENABLED`).
///
/// Thread safety: by the connection's consumer: it returns `LC_ERR_RECEIVER_BUSY` while
/// another thread receives notifications on the connection. Once armed, the id may reach
/// another thread's `lc_manager_wait_ready` before this call returns: that thread's
/// receive waits for this call to let the receiver go, rather than being refused as busy.
#[no_mangle]
pub extern "C" fn lc_connection_arm_ready(manager: lc_manager, connection_id: u64) -> lc_status {
    boundary("lc_connection_arm_ready", || {
        let entry = manager_entry(manager)?;
        if entry.ready.is_none() {
            return Err(FfiError::new(
                lc_status::LC_ERR_NOT_ENABLED,
                "the manager was not created with LC_CONFIG_READY_QUEUE",
            ));
        }
        let connection = entry.connection(connection_id)?;
        connection.arm_ready(connection_id)?;
        Ok(lc_status::LC_OK)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_event_json_literal_matches_the_json_writer() {
        for event in ConnectionEvent::ALL {
            assert_eq!(event_json(event).to_str().unwrap(), event.to_json());
        }
    }
}
