//! Consuming topics: the long-poll consume, reading its batch, committing, nacking,
//! extending leases, seeking and leaving a group.

use std::ffi::c_char;
use std::time::Duration;

use crate::ffi::handles::Handle;
use crate::ffi::manager::manager_entry;
use crate::ffi::ptr::{c_str, Out, SizedOut};
use crate::ffi::state::{cached_json, TopicBatchEntry};
use crate::ffi::status::{boundary, lc_status, FfiError};
use crate::ffi::types::*;
use crate::ffi::values::value_to_c;
use crate::json;
use crate::sync::DataArc;
use crate::{ConnectionId, Row, TopicMessage, TopicPayload, Value};

fn message_at(entry: &TopicBatchEntry, index: usize) -> Result<&TopicMessage, FfiError> {
    let messages = &entry.batch.messages;
    messages
        .get(index)
        .map(|message| &**message)
        .ok_or_else(|| FfiError::index("message", index, messages.len()))
}

fn write_row(out: &mut Vec<u8>, columns: &[DataArc<str>], row: &Row) {
    json::write_object(
        out,
        columns
            .iter()
            .zip(row.values())
            .map(|(name, value)| (&**name, value)),
    );
}

/// Long-poll consume: up to `max_messages` messages of `topic` for consumer group `group`
/// (NUL-terminated names), from the partitions this consumer leases in the group. The
/// consumer is `connection_id`: a registered, authenticated connection (each consume
/// counts as its heartbeat). Returns at once when messages are waiting; otherwise waits
/// (without spinning) until one arrives or `timeout_ms` passes (0: do not wait). The
/// timeout may not exceed the config's `topic_max_poll_timeout_ms`, the group's lease, or
/// half of `heartbeat_timeout_ms` (`LC_ERR_OUT_OF_BOUNDS`; so `LC_WAIT_FOREVER` is refused).
///
/// On `LC_OK`, `*out_batch` receives a batch: read it with the `lc_topic_batch_*`
/// functions, commit it (`lc_topic_batch_commit`, or `lc_topic_commit` per partition) once
/// its messages are done, and free it with `lc_topic_batch_free`. A batch with no message
/// means the timeout passed (it still holds the consumer's positions) or the connection
/// left the group (below). Uncommitted messages are handed out again when the lease
/// expires (at-least-once). A consume waiting when
/// its connection leaves the group (`lc_topic_group_leave`) returns at once with `LC_OK`
/// and a batch with no message and no position (the consumer holds nothing in the group
/// any more); a later consume joins the group again.
///
/// Ends early with `LC_ERR_SHUTTING_DOWN` (shutdown), `LC_CLOSED` (the connection was
/// unregistered or the manager freed meanwhile), `LC_ERR_UNKNOWN_TOPIC` or
/// `LC_ERR_UNKNOWN_GROUP` (deleted meanwhile); nothing is handed out then.
///
/// Thread safety: any thread, concurrently with any other call; it blocks up to
/// `timeout_ms`. Several threads may consume for one connection at once (they share its
/// leases, and a publish wakes every one of them that is parked), though one consuming
/// thread per consumer connection is the usual shape.
///
/// # Safety
/// `topic` and `group` are NULL or NUL-terminated strings; `out_batch` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_consume(
    manager: lc_manager,
    connection_id: u64,
    topic: *const c_char,
    group: *const c_char,
    max_messages: usize,
    timeout_ms: u32,
    out_batch: *mut lc_topic_batch,
) -> lc_status {
    boundary("lc_topic_consume", || {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let topic = unsafe { c_str(topic, "topic") }?;
        // SAFETY: as above.
        let group = unsafe { c_str(group, "group") }?;
        // SAFETY: the caller promised `out_batch` is NULL or writable.
        let out = unsafe { Out::new(out_batch, "out_batch") }?;
        let entry = manager_entry(manager)?;
        let connection = entry.connection(connection_id)?;
        let consumed = entry.manager.consume(
            ConnectionId(connection_id),
            topic,
            group,
            max_messages,
            Duration::from_millis(u64::from(timeout_ms)),
        );
        let batch = match consumed {
            Ok(batch) => batch,
            // Unregistered (or the manager freed) while it waited.
            Err(_) if connection.is_removed() || entry.is_freed() => {
                return Ok(lc_status::LC_CLOSED)
            }
            Err(error) => return Err(error.into()),
        };
        out.write(lc_topic_batch::insert(TopicBatchEntry::new(batch)));
        Ok(lc_status::LC_OK)
    })
}

/// Reads how many messages, positions and retention skips a batch holds.
///
/// Thread safety: any thread; a batch may be read from several threads at once.
///
/// # Safety
/// `out_info` is NULL or points at an `lc_topic_batch_info` whose first `struct_size`
/// bytes are writable.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_batch_get_info(
    batch: lc_topic_batch,
    out_info: *mut lc_topic_batch_info,
) -> lc_status {
    boundary("lc_topic_batch_get_info", || {
        // SAFETY: the caller promised `out_info` is NULL or writable for its struct_size.
        let out = unsafe { SizedOut::new(out_info, "out_info") }?;
        let entry = batch.get()?;
        out.write(lc_topic_batch_info {
            struct_size: 0,
            reserved: 0,
            message_count: entry.batch.messages.len() as u64,
            position_count: entry.batch.positions.len() as u64,
            retention_skip_count: entry.batch.retention_skips.len() as u64,
        });
        Ok(lc_status::LC_OK)
    })
}

/// Reads message `index` of a batch (messages are grouped by partition, each partition's
/// in offset order): partition, offset, SeqId, timestamp, key, and the change types of a
/// row change or the payload of a published message. Key text and bytes and the payload
/// point into the batch and stay valid until `lc_topic_batch_free`.
///
/// Thread safety: any thread; a batch may be read from several threads at once.
///
/// # Safety
/// `out_message` is NULL or points at an `lc_topic_message` whose first `struct_size`
/// bytes are writable.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_batch_message(
    batch: lc_topic_batch,
    index: usize,
    out_message: *mut lc_topic_message,
) -> lc_status {
    boundary("lc_topic_batch_message", || {
        // SAFETY: the caller promised `out_message` is NULL or writable for its
        // struct_size.
        let out = unsafe { SizedOut::new(out_message, "out_message") }?;
        let entry = batch.get()?;
        let message = message_at(&entry, index)?;
        let null = Value::Null;
        let mut c_message = lc_topic_message {
            struct_size: 0,
            kind: lc_topic_message_kind::LC_TOPIC_MESSAGE_CHANGE as u32,
            partition: message.partition,
            has_key: u32::from(message.key.is_some()),
            change_type: 0,
            source_change_type: 0,
            offset: message.offset,
            seq: message.seq.0,
            timestamp_ms: message.timestamp_ms,
            // The key's bytes are shared with the batch, which the table keeps until it is
            // freed.
            key: value_to_c(message.key.as_ref().unwrap_or(&null)),
            payload: std::ptr::null(),
            payload_len: 0,
        };
        match &message.payload {
            TopicPayload::Change(change) => {
                c_message.change_type = lc_change_type::tag(change.change_type);
                c_message.source_change_type = lc_change_type::tag(change.source_type);
            }
            TopicPayload::Bytes(bytes) => {
                c_message.kind = lc_topic_message_kind::LC_TOPIC_MESSAGE_BYTES as u32;
                c_message.payload = bytes.as_ptr();
                c_message.payload_len = bytes.len();
            }
        }
        out.write(c_message);
        Ok(lc_status::LC_OK)
    })
}

/// Gives message `index` of a batch as one JSON object:
/// `{"partition":0,"offset":5,"seq":12,"timestamp_ms":..,"key":..,"change":{"op":"insert","source_op":"update","table":"chat.messages","row":{..},"old":{..}}}`
/// for a row change (`owner` on user-scoped tables, `old` when the engine published an
/// update), `"payload":"<base64>"` instead of `change` for a published message; values
/// as in notifications. `*out_json` points at `*out_len` bytes of UTF-8 followed by a NUL
/// (not counted), owned by the batch until `lc_topic_batch_free`. Built once, on the first
/// call.
///
/// Thread safety: any thread; a batch may be read from several threads at once.
///
/// # Safety
/// `out_json` and `out_len` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_batch_message_json(
    batch: lc_topic_batch,
    index: usize,
    out_json: *mut *const c_char,
    out_len: *mut usize,
) -> lc_status {
    boundary("lc_topic_batch_message_json", || {
        // SAFETY: the caller promised `out_json` is NULL or writable.
        let json_out = unsafe { Out::new(out_json, "out_json") }?;
        // SAFETY: the caller promised `out_len` is NULL or writable.
        let len_out = unsafe { Out::new(out_len, "out_len") }?;
        let entry = batch.get()?;
        let message = message_at(&entry, index)?;
        // The bytes live in the entry, which the table keeps until the batch is freed.
        let (json, len) = cached_json(&entry.json[index].message, |out| {
            out.extend_from_slice(message.to_json().as_bytes())
        });
        json_out.write(json);
        len_out.write(len);
        Ok(lc_status::LC_OK)
    })
}

/// Gives the row of row-change message `index` as one JSON object of its projected
/// columns (`{"id":1,"body":"hi"}`): with `version` `LC_ROW_CURRENT` the row after the
/// change (the deleted row for a delete), with `LC_ROW_OLD` the row before an update the
/// engine published (`LC_ERR_INVALID_ARGUMENT` for other changes, and for published
/// messages, which have no row). `*out_json` points at `*out_len` bytes of UTF-8 followed
/// by a NUL (not counted), owned by the batch until `lc_topic_batch_free`.
///
/// Thread safety: any thread; a batch may be read from several threads at once.
///
/// # Safety
/// `out_json` and `out_len` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_batch_row_json(
    batch: lc_topic_batch,
    index: usize,
    version: u32,
    out_json: *mut *const c_char,
    out_len: *mut usize,
) -> lc_status {
    boundary("lc_topic_batch_row_json", || {
        // SAFETY: the caller promised `out_json` is NULL or writable.
        let json_out = unsafe { Out::new(out_json, "out_json") }?;
        // SAFETY: the caller promised `out_len` is NULL or writable.
        let len_out = unsafe { Out::new(out_len, "out_len") }?;
        let old = match version {
            0 => false,
            1 => true,
            other => return Err(FfiError::tag("lc_row_version", other)),
        };
        let entry = batch.get()?;
        let message = message_at(&entry, index)?;
        let TopicPayload::Change(change) = &message.payload else {
            return Err(FfiError::invalid(format!(
                "message {index} was published directly and has no row: read its payload"
            )));
        };
        let cache = &entry.json[index];
        let (json, len) = if old {
            let old_row = change.old_row.as_ref().ok_or_else(|| {
                FfiError::invalid(format!(
                    "message {index} has no old row: its change (of type {}) was not published as an update",
                    change.change_type
                ))
            })?;
            cached_json(&cache.old_row, |out| {
                write_row(out, &change.columns, old_row)
            })
        } else {
            cached_json(&cache.row, |out| {
                write_row(out, &change.columns, &change.row)
            })
        };
        json_out.write(json);
        len_out.write(len);
        Ok(lc_status::LC_OK)
    })
}

/// Reads the consumer's position `index` after the batch: one per partition it leases in
/// the group, with the group's committed offset, the next offset the lease hands out, the
/// partition's end and when the lease expires.
///
/// Thread safety: any thread; a batch may be read from several threads at once.
///
/// # Safety
/// `out_position` is NULL or points at an `lc_topic_position` whose first `struct_size`
/// bytes are writable.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_batch_position(
    batch: lc_topic_batch,
    index: usize,
    out_position: *mut lc_topic_position,
) -> lc_status {
    boundary("lc_topic_batch_position", || {
        // SAFETY: the caller promised `out_position` is NULL or writable for its
        // struct_size.
        let out = unsafe { SizedOut::new(out_position, "out_position") }?;
        let entry = batch.get()?;
        let positions = &entry.batch.positions;
        let position = positions
            .get(index)
            .ok_or_else(|| FfiError::index("position", index, positions.len()))?;
        let mut flags = 0;
        if position.committed.is_some() {
            flags |= LC_TOPIC_HAS_COMMITTED;
        }
        if position.next.is_some() {
            flags |= LC_TOPIC_HAS_NEXT;
        }
        out.write(lc_topic_position {
            struct_size: 0,
            partition: position.partition,
            flags,
            reserved: 0,
            committed: position.committed.unwrap_or(0),
            next: position.next.unwrap_or(0),
            end: position.end,
            lease_expires_at_ms: position.lease_expires_at_ms,
        });
        Ok(lc_status::LC_OK)
    })
}

/// Reads retention skip `index` of a batch: a range of offsets retention removed before
/// the group committed them, skipped (reset policy earliest or latest) while producing it.
///
/// Thread safety: any thread; a batch may be read from several threads at once.
///
/// # Safety
/// `out_skip` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_batch_retention_skip(
    batch: lc_topic_batch,
    index: usize,
    out_skip: *mut lc_topic_retention_skip,
) -> lc_status {
    boundary("lc_topic_batch_retention_skip", || {
        // SAFETY: the caller promised `out_skip` is NULL or writable.
        let out = unsafe { Out::new(out_skip, "out_skip") }?;
        let entry = batch.get()?;
        let skips = &entry.batch.retention_skips;
        let skip = skips
            .get(index)
            .ok_or_else(|| FfiError::index("retention skip", index, skips.len()))?;
        out.write(lc_topic_retention_skip {
            partition: skip.partition,
            reserved: 0,
            from: skip.from,
            to: skip.to,
        });
        Ok(lc_status::LC_OK)
    })
}

/// Frees a batch and everything borrowed from it. It does not commit: commit first (or
/// its messages are handed out again when the lease expires). A second free (or any use
/// after it) is `LC_ERR_INVALID_HANDLE`.
///
/// Thread safety: any thread, once no other thread uses the batch or a pointer borrowed
/// from it.
#[no_mangle]
pub extern "C" fn lc_topic_batch_free(batch: lc_topic_batch) -> lc_status {
    boundary("lc_topic_batch_free", || {
        batch.remove()?;
        Ok(lc_status::LC_OK)
    })
}

/// Commits `offset` on `partition` for `group`: the group has finished every message
/// below it. Only the consumer holding the partition's lease may commit
/// (`LC_ERR_NOT_LEASE_HOLDER`, also once its lease expired); commits only move forward
/// (`LC_ERR_COMMIT_BEHIND`; the same offset again is accepted) and not beyond what the
/// lease handed out (`LC_ERR_COMMIT_AHEAD`); a lease without a position (reset policy
/// none, before a seek) commits nothing (`LC_ERR_NO_COMMITTED_OFFSET`). Committing renews
/// the consumer's leases in the group. A topic that does not exist (a deleted one
/// included) is `LC_ERR_UNKNOWN_TOPIC`; a group the topic does not have,
/// `LC_ERR_UNKNOWN_GROUP`.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `topic` and `group` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_commit(
    manager: lc_manager,
    connection_id: u64,
    topic: *const c_char,
    group: *const c_char,
    partition: u32,
    offset: u64,
) -> lc_status {
    boundary("lc_topic_commit", || {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let topic = unsafe { c_str(topic, "topic") }?;
        // SAFETY: as above.
        let group = unsafe { c_str(group, "group") }?;
        manager_entry(manager)?.manager.commit_offset(
            ConnectionId(connection_id),
            topic,
            group,
            partition,
            offset,
        )?;
        Ok(lc_status::LC_OK)
    })
}

/// Negative acknowledgement: the consumer `connection_id`, holding the lease of
/// `partition` in `group`, gives up on the message at `offset` for now. The lease hands out
/// again from `offset` (that message and every later one it had handed out), at once when
/// `delay_ms` is 0, else once `delay_ms` has passed; until then the partition hands nothing
/// out to anyone in the group (head of line), so order per key within a partition is kept.
/// The committed offset does not move. `offset` must have been handed out by this lease and
/// not committed (`LC_ERR_COMMIT_BEHIND` below the committed offset, `LC_ERR_COMMIT_AHEAD`
/// at or past what the lease handed out, `LC_ERR_NO_COMMITTED_OFFSET` for a lease without
/// a position, under reset policy none before a seek); only the live lease holder may nack
/// (`LC_ERR_NOT_LEASE_HOLDER`); `delay_ms` is at most the group's lease
/// (`LC_ERR_OUT_OF_BOUNDS`). If the lease ends before the delay does, the next lease starts
/// from the committed offset without the delay. Renews the consumer's leases in the group.
///
/// With a dead-letter topic (`lc_topic_group_config.dead_letter_topic`), a message already
/// handed out `max_deliver` times goes there instead: no delay, and the partition moves on
/// past it, committing past it only at the committed offset (behind uncommitted messages it
/// is marked and skipped, and nothing is committed for them); the lease hands out again
/// from the message after it, so a consumer treats either outcome alike (it drops the rest
/// of its batch and consumes again). The messages handed out again after a nacked one do
/// not count that hand-out against `max_deliver` (a consumer that drops its batch did not
/// try them), so a message failing behind another failing one may be tried more often. A
/// message retention removed since it was handed out is not sent: its nack rewinds as
/// without a dead-letter topic, and the next batch reports the retention skip.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `topic` and `group` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_nack(
    manager: lc_manager,
    connection_id: u64,
    topic: *const c_char,
    group: *const c_char,
    partition: u32,
    offset: u64,
    delay_ms: u32,
) -> lc_status {
    boundary("lc_topic_nack", || {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let topic = unsafe { c_str(topic, "topic") }?;
        // SAFETY: as above.
        let group = unsafe { c_str(group, "group") }?;
        manager_entry(manager)?.manager.nack(
            ConnectionId(connection_id),
            topic,
            group,
            partition,
            offset,
            Duration::from_millis(u64::from(delay_ms)),
        )?;
        Ok(lc_status::LC_OK)
    })
}

/// Extends every lease the consumer `connection_id` holds in `group` by the group's lease
/// duration from now, without handing anything out or committing (a consumer still working
/// on a long batch keeps it). `*out_extended` receives how many leases were extended; a
/// lease that already expired is not revived (0 then, and what it handed out is handed out
/// again). Counts as a heartbeat.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `topic` and `group` are NULL or NUL-terminated strings; `out_extended` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_extend_leases(
    manager: lc_manager,
    connection_id: u64,
    topic: *const c_char,
    group: *const c_char,
    out_extended: *mut u32,
) -> lc_status {
    boundary("lc_topic_extend_leases", || {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let topic = unsafe { c_str(topic, "topic") }?;
        // SAFETY: as above.
        let group = unsafe { c_str(group, "group") }?;
        // SAFETY: the caller promised `out_extended` is NULL or writable.
        let out = unsafe { Out::new(out_extended, "out_extended") }?;
        let extended = manager_entry(manager)?.manager.extend_leases(
            ConnectionId(connection_id),
            topic,
            group,
        )?;
        // At most one lease per partition, and partitions are counted in u32.
        out.write(u32::try_from(extended).unwrap_or(u32::MAX));
        Ok(lc_status::LC_OK)
    })
}

/// Commits a whole batch: for each partition in it, the offset after its last message
/// (as `lc_topic_commit`, partition by partition; an empty batch commits nothing). The
/// batch stays valid; free it with `lc_topic_batch_free`. A batch of `lc_topic_read`
/// (outside any group) is `LC_ERR_INVALID_ARGUMENT`; one handed out by a group since
/// deleted (even one created again under its name) or by another manager is
/// `LC_ERR_UNKNOWN_GROUP`, and commits nothing. One whose topic was deleted (which deletes
/// its groups) is `LC_ERR_UNKNOWN_TOPIC` while no topic has that name, and
/// `LC_ERR_UNKNOWN_GROUP` once a topic of that name exists again (with or without a group
/// of the batch's group name); it commits nothing either. Every partition is checked before any is
/// committed: a batch one of whose leases was lost (`LC_ERR_NOT_LEASE_HOLDER`), or that is
/// behind or ahead anywhere, commits nothing; a store failure part-way leaves the
/// partitions before it committed.
///
/// Thread safety: any thread, concurrently with any other call.
#[no_mangle]
pub extern "C" fn lc_topic_batch_commit(
    manager: lc_manager,
    connection_id: u64,
    batch: lc_topic_batch,
) -> lc_status {
    boundary("lc_topic_batch_commit", || {
        let entry = manager_entry(manager)?;
        let batch = batch.get()?;
        if batch.from_read {
            return Err(FfiError::invalid(
                "the batch came from lc_topic_read, outside any consumer group: there is nothing to commit",
            ));
        }
        entry
            .manager
            .commit_batch(ConnectionId(connection_id), &batch.batch)?;
        Ok(lc_status::LC_OK)
    })
}

/// Positions `group` on `partition` at `offset` (an administrative reset, backwards or
/// forwards): the offset must be within the retained range, from the oldest retained
/// message up to the partition's end (`LC_ERR_OFFSET_OUT_OF_RANGE` otherwise). The
/// partition's current lease ends, so its holder continues from the new position.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `topic` and `group` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_seek(
    manager: lc_manager,
    topic: *const c_char,
    group: *const c_char,
    partition: u32,
    offset: u64,
) -> lc_status {
    boundary("lc_topic_seek", || {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let topic = unsafe { c_str(topic, "topic") }?;
        // SAFETY: as above.
        let group = unsafe { c_str(group, "group") }?;
        manager_entry(manager)?
            .manager
            .seek_group(topic, group, partition, offset)?;
        Ok(lc_status::LC_OK)
    })
}

/// The consumer `connection_id` leaves `group`: its leases end now (whatever it did not
/// commit is handed out again, to the other members) and it stops counting as a member.
/// Its consumes waiting in this group return at once with `LC_OK` and an empty batch (no
/// message, no position) instead of waiting out their timeout. Unregistering the
/// connection does the same for every group it consumed from (its waiting consumes return
/// `LC_CLOSED` then).
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `topic` and `group` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_group_leave(
    manager: lc_manager,
    connection_id: u64,
    topic: *const c_char,
    group: *const c_char,
) -> lc_status {
    boundary("lc_topic_group_leave", || {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let topic = unsafe { c_str(topic, "topic") }?;
        // SAFETY: as above.
        let group = unsafe { c_str(group, "group") }?;
        manager_entry(manager)?
            .manager
            .leave_group(ConnectionId(connection_id), topic, group)?;
        Ok(lc_status::LC_OK)
    })
}
