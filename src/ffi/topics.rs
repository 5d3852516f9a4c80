//! Topics: creating and deleting them, their info, direct publishes, routes from tables,
//! and consumer groups (consuming and committing are in `consume.rs`).

use std::ffi::c_char;
use std::time::Duration;

use crate::ffi::manager::manager_entry;
use crate::ffi::ptr::{
    borrow, c_str, check_count, check_name_len, optional_c_str, read_sized, slice, Out, OutSlice,
    SizedOut,
};
use crate::ffi::state::ManagerEntry;
use crate::ffi::status::{boundary, lc_status, FfiError};
use crate::ffi::types::*;
use crate::ffi::values::value_from_c;
use crate::{
    ChangeType, ChangeTypes, DirectMessage, GroupConfig, Retention, SeqId, TopicConfig,
    TopicRouteId, TopicRouteSpec,
};

pub(crate) fn default_topic_config() -> lc_topic_config {
    let defaults = TopicConfig::default();
    lc_topic_config {
        struct_size: std::mem::size_of::<lc_topic_config>() as u32,
        partitions: defaults.partitions,
        retention_max_messages: defaults.retention.max_messages,
        retention_max_bytes: defaults.retention.max_bytes,
    }
}

fn default_route_options() -> lc_topic_route_options {
    lc_topic_route_options {
        struct_size: std::mem::size_of::<lc_topic_route_options>() as u32,
        change_types: LC_TOPIC_CHANGE_ALL,
        key_column: std::ptr::null(),
    }
}

fn default_group_config() -> lc_topic_group_config {
    let defaults = GroupConfig::default();
    lc_topic_group_config {
        struct_size: std::mem::size_of::<lc_topic_group_config>() as u32,
        reset: lc_topic_reset_policy::LC_TOPIC_RESET_EARLIEST as u32,
        lease_ms: defaults.lease_duration.as_millis() as u64,
        dead_letter_topic: std::ptr::null(),
        max_deliver: 0,
        reserved: 0,
    }
}

/// The Rust group config a C one describes.
///
/// # Safety
/// `config.dead_letter_topic` is NULL or a NUL-terminated string.
unsafe fn group_config(config: &lc_topic_group_config) -> Result<GroupConfig, FfiError> {
    if config.reserved != 0 {
        return Err(FfiError::invalid(format!(
            "config->reserved must be 0, not {}",
            config.reserved
        )));
    }
    let reset = lc_topic_reset_policy::from_tag(config.reset)?;
    let mut rust = GroupConfig::with_reset(reset).lease(Duration::from_millis(config.lease_ms));
    // SAFETY: the caller promised `dead_letter_topic` is NULL or a NUL-terminated string.
    let topic = unsafe { optional_c_str(config.dead_letter_topic, "config->dead_letter_topic") }?;
    match (topic, config.max_deliver) {
        // max_deliver 0 is refused by the manager (LC_ERR_OUT_OF_BOUNDS).
        (Some(topic), max_deliver) => rust = rust.dead_letter(topic, max_deliver),
        (None, 0) => {}
        (None, max_deliver) => {
            return Err(FfiError::invalid(format!(
                "config->max_deliver is {max_deliver} without a dead_letter_topic: set both or neither"
            )));
        }
    }
    Ok(rust)
}

/// Applies C route options (change types, key column) to a route spec.
///
/// # Safety
/// `options.key_column` is NULL or a NUL-terminated string.
unsafe fn apply_route_options(
    mut spec: TopicRouteSpec,
    options: &lc_topic_route_options,
) -> Result<TopicRouteSpec, FfiError> {
    let mask = options.change_types;
    if mask & !LC_TOPIC_CHANGE_ALL != 0 {
        return Err(FfiError::invalid(format!(
            "options->change_types has unknown bits 0x{:x}",
            mask & !LC_TOPIC_CHANGE_ALL
        )));
    }
    if mask == 0 {
        return Err(FfiError::invalid(
            "options->change_types is 0: a route needs at least one LC_TOPIC_CHANGE_* bit",
        ));
    }
    let types: Vec<ChangeType> = [
        (LC_TOPIC_CHANGE_INSERT, ChangeType::Insert),
        (LC_TOPIC_CHANGE_UPDATE, ChangeType::Update),
        (LC_TOPIC_CHANGE_DELETE, ChangeType::Delete),
    ]
    .into_iter()
    .filter(|(bit, _)| mask & bit != 0)
    .map(|(_, change_type)| change_type)
    .collect();
    spec = spec.change_types(ChangeTypes::of(&types));
    // SAFETY: the caller promised `key_column` is NULL or a NUL-terminated string.
    if let Some(column) = unsafe { optional_c_str(options.key_column, "options->key_column") }? {
        spec = spec.key_column(column);
    }
    Ok(spec)
}

/// Checks the length of a new topic or consumer group name against the manager's
/// `topic_max_name_len`: an empty or longer name is `LC_ERR_INVALID_NAME`, as every bad
/// name is (the core checks the characters).
pub(crate) fn check_topic_name(
    entry: &ManagerEntry,
    name: &str,
    argument: &str,
) -> Result<(), FfiError> {
    check_name_len(name, entry.manager.config().topics.max_name_len, argument)
}

fn write_route_id(out: Option<Out<u64>>, id: TopicRouteId) {
    if let Some(out) = out {
        out.write(id.0);
    }
}

/// Fills a topic config with the defaults (1 partition; each keeps 100,000 messages or 64
/// MiB). Set `config->struct_size = sizeof(lc_topic_config)` first; on return it holds the
/// bytes written.
///
/// Thread safety: any thread, any time.
///
/// # Safety
/// `config` is NULL or points at an `lc_topic_config` whose first `struct_size` bytes are
/// writable.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_config_init(config: *mut lc_topic_config) -> lc_status {
    boundary("lc_topic_config_init", || {
        // SAFETY: the caller promised `config` is NULL or writable for its struct_size.
        let out = unsafe { SizedOut::new_input(config, "config") }?;
        out.write(default_topic_config());
        Ok(lc_status::LC_OK)
    })
}

/// Creates a topic, kept in memory: `name` (NUL-terminated; 1 to the config's
/// `topic_max_name_len` bytes, 249 by default, of ASCII letters, digits, '.', '_' or '-')
/// with `config`'s partitions and retention, each within the manager config's `topic_`
/// limits (`LC_ERR_OUT_OF_BOUNDS` otherwise). A bad name (empty, too long, or with other
/// characters) is `LC_ERR_INVALID_NAME`; a taken one `LC_ERR_TOPIC_EXISTS`. Both arguments
/// are only read during the call. The functions that look a topic up by name report a
/// name no topic has (one no topic could have, empty, too long or with characters a name
/// may not hold, included) as `LC_ERR_UNKNOWN_TOPIC`; a name that is not UTF-8 is
/// `LC_ERR_INVALID_UTF8`, as everywhere.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `config` is NULL or readable for its
/// `struct_size`.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_create(
    manager: lc_manager,
    name: *const c_char,
    config: *const lc_topic_config,
) -> lc_status {
    boundary("lc_topic_create", || {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let name = unsafe { c_str(name, "name") }?;
        // SAFETY: the caller promised `config` is NULL or readable for its struct_size.
        let config = unsafe { read_sized(config, default_topic_config(), "config") }?;
        let entry = manager_entry(manager)?;
        check_topic_name(&entry, name, "name")?;
        entry.manager.create_topic(
            name,
            TopicConfig {
                partitions: config.partitions,
                retention: Retention {
                    max_messages: config.retention_max_messages,
                    max_bytes: config.retention_max_bytes,
                },
            },
        )?;
        Ok(lc_status::LC_OK)
    })
}

/// Deletes a topic with its routes, consumer groups and messages. Consumes waiting on it
/// return `LC_ERR_UNKNOWN_TOPIC`; batches already handed out stay readable until freed. A
/// topic some group sends its dead letters to is not deleted (`LC_ERR_INVALID_CONFIG`,
/// naming the group): clear or change that group's dead-letter topic first.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_delete(manager: lc_manager, name: *const c_char) -> lc_status {
    boundary("lc_topic_delete", || {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let name = unsafe { c_str(name, "name") }?;
        manager_entry(manager)?.manager.delete_topic(name)?;
        Ok(lc_status::LC_OK)
    })
}

/// Reads a topic's shape and counters. `retained` adds up the partitions' bounds as the
/// store gives them (saturating at `UINT64_MAX`); a store whose `bounds` callback fails
/// fails this call with `LC_ERR_TOPIC_STORE` (`lc_topic_get_last_write_error` and
/// `lc_stats.topic_write_failures` stay readable).
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `out_info` is NULL or points at an
/// `lc_topic_info` whose first `struct_size` bytes are writable.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_get_info(
    manager: lc_manager,
    name: *const c_char,
    out_info: *mut lc_topic_info,
) -> lc_status {
    boundary("lc_topic_get_info", || {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let name = unsafe { c_str(name, "name") }?;
        // SAFETY: the caller promised `out_info` is NULL or writable for its struct_size.
        let out = unsafe { SizedOut::new(out_info, "out_info") }?;
        let info = manager_entry(manager)?.manager.topic_info(name)?;
        out.write(lc_topic_info {
            struct_size: 0,
            partitions: info.config.partitions,
            retention_max_messages: info.config.retention.max_messages,
            retention_max_bytes: info.config.retention.max_bytes,
            routes: info.routes as u64,
            groups: info.groups.len() as u64,
            appended: info.appended,
            write_failures: info.write_failures,
            // A host store's bounds are not trusted to fit a sum.
            retained: info.bounds.iter().fold(0u64, |sum, bounds| {
                sum.saturating_add(bounds.end.saturating_sub(bounds.start))
            }),
        });
        Ok(lc_status::LC_OK)
    })
}

/// Gives the offsets partition `partition` of a topic retains: `*out_start` (the oldest
/// retained message) up to, not including, `*out_end` (the offset its next message gets).
/// It is empty when they are equal. A partition the topic does not have is
/// `LC_ERR_UNKNOWN_PARTITION`.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `out_start` and `out_end` are NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_get_partition_bounds(
    manager: lc_manager,
    name: *const c_char,
    partition: u32,
    out_start: *mut u64,
    out_end: *mut u64,
) -> lc_status {
    boundary("lc_topic_get_partition_bounds", || {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let name = unsafe { c_str(name, "name") }?;
        // SAFETY: the caller promised `out_start` is NULL or writable.
        let start_out = unsafe { Out::new(out_start, "out_start") }?;
        // SAFETY: the caller promised `out_end` is NULL or writable.
        let end_out = unsafe { Out::new(out_end, "out_end") }?;
        let info = manager_entry(manager)?.manager.topic_info(name)?;
        let bounds = info.bounds.get(partition as usize).ok_or_else(|| {
            FfiError::new(
                lc_status::LC_ERR_UNKNOWN_PARTITION,
                format!(
                    "topic {name} has {} partitions; there is no partition {partition}",
                    info.bounds.len()
                ),
            )
        })?;
        start_out.write(bounds.start);
        end_out.write(bounds.end);
        Ok(lc_status::LC_OK)
    })
}

/// Copies the message of the topic's latest failed write (a route that no longer compiles
/// against its table, say) into `buffer`, NUL-terminated and cut to `capacity - 1` bytes
/// at a UTF-8 character boundary; `*out_len` receives its whole length in bytes (without
/// the NUL), so a caller can retry with a larger buffer. With no failed write `*out_len`
/// is 0 (and `buffer` holds an empty string when `capacity` is not 0). `buffer` may be
/// NULL when `capacity` is 0, to ask for the length only. It asks the topic's store
/// nothing, so it stays readable while a host store fails.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `buffer` is NULL or writable for `capacity`
/// bytes; `out_len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_get_last_write_error(
    manager: lc_manager,
    name: *const c_char,
    buffer: *mut c_char,
    capacity: usize,
    out_len: *mut usize,
) -> lc_status {
    boundary("lc_topic_get_last_write_error", || {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let name = unsafe { c_str(name, "name") }?;
        // SAFETY: the caller promised `out_len` is NULL or writable.
        let len_out = unsafe { Out::new(out_len, "out_len") }?;
        let mut text = if capacity == 0 {
            None
        } else {
            // SAFETY: the caller promised `capacity` writable bytes at `buffer`.
            Some(unsafe { OutSlice::new(buffer, capacity, "buffer") }?)
        };
        let message = manager_entry(manager)?
            .manager
            .topic_last_write_error(name)?
            .unwrap_or_default();
        if let Some(text) = text.as_mut() {
            let mut cut = message.len().min(capacity - 1);
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            for (index, byte) in message.as_bytes()[..cut].iter().enumerate() {
                text.write(index, *byte as c_char);
            }
            text.write(cut, 0);
        }
        len_out.write(message.len());
        Ok(lc_status::LC_OK)
    })
}

/// Publishes a message directly to a topic (not from a table): `payload_len` bytes at
/// `payload` (NULL when 0; with the key, at most the config's `topic_max_message_bytes`,
/// `LC_ERR_OUT_OF_BOUNDS` otherwise, the payload's and the key's lengths checked before
/// either is read; a key that is not text or bytes counts 8),
/// carrying `seq`, and an optional `key` (NULL for none): messages with SQL-equal keys land in one
/// partition, in publish order. `partition` names the partition, or is
/// `LC_TOPIC_ANY_PARTITION` to choose it by the key's hash (round-robin without a key).
/// Everything is copied; the inputs are only read during the call. `*out_partition` and
/// `*out_offset` (each may be NULL) receive where the message went.
///
/// Thread safety: any thread, concurrently with any other call; publishes to one
/// partition keep the order in which they returned.
///
/// # Safety
/// `topic` is NULL or a NUL-terminated string; `key` is NULL or points at a value obeying
/// `lc_value`'s contract; `payload` is NULL or points at `payload_len` readable bytes;
/// `out_partition` and `out_offset` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_publish(
    manager: lc_manager,
    topic: *const c_char,
    seq: u64,
    key: *const lc_value,
    partition: u32,
    payload: *const u8,
    payload_len: usize,
    out_partition: *mut u32,
    out_offset: *mut u64,
) -> lc_status {
    boundary("lc_topic_publish", || {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let topic = unsafe { c_str(topic, "topic") }?;
        // The handle, then the message's limit before the payload or the key's bytes are
        // read (both are copied): a length past it is refused unread, as the core counts it
        // (`Value::size_bytes`: text and bytes their length, any other value 8).
        let entry = manager_entry(manager)?;
        let key = if key.is_null() {
            None
        } else {
            // SAFETY: non-NULL; the caller promised a live value obeying lc_value's
            // contract.
            Some(unsafe { borrow(key, "key") }?)
        };
        let key_bytes = key.map_or(0, |key| {
            let has_bytes = key.tag == lc_value_type::LC_VALUE_TEXT as u32
                || key.tag == lc_value_type::LC_VALUE_BYTES as u32;
            if has_bytes {
                key.len
            } else {
                8
            }
        });
        check_count(
            payload_len.saturating_add(key_bytes),
            entry.manager.config().topics.max_message_bytes,
            "payload_len plus the key's bytes",
            lc_status::LC_ERR_OUT_OF_BOUNDS,
        )?;
        // SAFETY: the caller promised `payload_len` readable bytes at `payload`.
        let payload = unsafe { slice(payload, payload_len, "payload") }?;
        let key = match key {
            // SAFETY: as above (text and bytes point at `len` readable bytes).
            Some(key) => Some(unsafe { value_from_c(key, &"key") }?),
            None => None,
        };
        // SAFETY: the caller promised `out_partition` is NULL or writable.
        let partition_out = unsafe { Out::optional(out_partition, "out_partition") }?;
        // SAFETY: the caller promised `out_offset` is NULL or writable.
        let offset_out = unsafe { Out::optional(out_offset, "out_offset") }?;
        let mut message = DirectMessage::new(SeqId(seq), payload);
        message.key = key;
        if partition != LC_TOPIC_ANY_PARTITION {
            message = message.partition(partition);
        }
        let position = entry.manager.publish_to_topic(topic, message)?;
        if let Some(out) = partition_out {
            out.write(position.partition);
        }
        if let Some(out) = offset_out {
            out.write(position.offset);
        }
        Ok(lc_status::LC_OK)
    })
}

/// Fills route options with the defaults (every change type, round-robin). Set
/// `options->struct_size = sizeof(lc_topic_route_options)` first; on return it holds the
/// bytes written.
///
/// Thread safety: any thread, any time.
///
/// # Safety
/// `options` is NULL or points at an `lc_topic_route_options` whose first `struct_size`
/// bytes are writable.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_route_options_init(
    options: *mut lc_topic_route_options,
) -> lc_status {
    boundary("lc_topic_route_options_init", || {
        // SAFETY: the caller promised `options` is NULL or writable for its struct_size.
        let out = unsafe { SizedOut::new_input(options, "options") }?;
        out.write(default_route_options());
        Ok(lc_status::LC_OK)
    })
}

/// Feeds `topic` with the committed changes of a table (its key from
/// `lc_table_register`), every column, filtered by `filter`: SQL WHERE text without the
/// `WHERE` (`"room = 7 AND body LIKE 'a%'"`, NUL-terminated UTF-8), or NULL for every
/// row. The filter works as a live query's: an update whose row enters it is routed as an
/// insert, one whose row leaves it as a delete. `options` chooses the change types and the
/// key column. The filter and key column are checked against the table now, with the
/// same typed errors as a subscription (`LC_ERR_SQL`, `LC_ERR_UNKNOWN_COLUMN`, ...); a
/// filter longer than `LC_MAX_SUBSCRIPTION_SQL_LEN` less the statement it is wrapped in
/// (`SELECT * FROM "<namespace>"."<name>" WHERE `, quotes doubled in the names) is
/// `LC_ERR_OUT_OF_BOUNDS`. Changes published after this returns are
/// routed. `*out_route_id` (may be NULL)
/// receives the route's id, for `lc_topic_route_remove`. Inputs are only read during the
/// call.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `topic` is NULL or a NUL-terminated string; `filter` is NULL or a NUL-terminated
/// string; `options` is NULL or readable for its `struct_size`, its `key_column` NULL or
/// a NUL-terminated string; `out_route_id` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_route_add(
    manager: lc_manager,
    topic: *const c_char,
    table: u32,
    filter: *const c_char,
    options: *const lc_topic_route_options,
    out_route_id: *mut u64,
) -> lc_status {
    boundary("lc_topic_route_add", || {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let topic = unsafe { c_str(topic, "topic") }?;
        // SAFETY: as above.
        let filter = unsafe { optional_c_str(filter, "filter") }?;
        // SAFETY: the caller promised `options` is NULL or readable for its struct_size.
        let options = unsafe { read_sized(options, default_route_options(), "options") }?;
        // SAFETY: the caller promised `out_route_id` is NULL or writable.
        let out = unsafe { Out::optional(out_route_id, "out_route_id") }?;
        let entry = manager_entry(manager)?;
        let mut spec = TopicRouteSpec::new(topic, entry.table_id(table)?);
        if let Some(filter) = filter {
            spec = spec.filter_sql(filter);
        }
        // SAFETY: the caller promised `options.key_column` is NULL or a NUL-terminated
        // string.
        let spec = unsafe { apply_route_options(spec, &options) }?;
        write_route_id(out, entry.manager.add_topic_route(spec)?);
        Ok(lc_status::LC_OK)
    })
}

/// Feeds `topic` from subscription SQL: `SELECT cols|* FROM [namespace.]table [WHERE
/// ...]` (NUL-terminated UTF-8) gives the table, the filter and the projection (the
/// columns each message's row carries). Otherwise as `lc_topic_route_add`: `options`
/// chooses the change types and the key column (which must be a column of the table),
/// `*out_route_id` (may be NULL) receives the route's id. The filter is kept parsed: a
/// bare TRUE or FALSE keeps its reading when the table later gains or loses a column of
/// that name (`lc_topic_route_add`'s WHERE text is read again).
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `topic` and `sql` are NULL or NUL-terminated strings; `options` is NULL or readable
/// for its `struct_size`, its `key_column` NULL or a NUL-terminated string;
/// `out_route_id` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_route_add_sql(
    manager: lc_manager,
    topic: *const c_char,
    sql: *const c_char,
    options: *const lc_topic_route_options,
    out_route_id: *mut u64,
) -> lc_status {
    boundary("lc_topic_route_add_sql", || {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let topic = unsafe { c_str(topic, "topic") }?;
        // SAFETY: as above.
        let sql = unsafe { c_str(sql, "sql") }?;
        // SAFETY: the caller promised `options` is NULL or readable for its struct_size.
        let options = unsafe { read_sized(options, default_route_options(), "options") }?;
        // SAFETY: the caller promised `out_route_id` is NULL or writable.
        let out = unsafe { Out::optional(out_route_id, "out_route_id") }?;
        let entry = manager_entry(manager)?;
        let spec = entry.manager.topic_route_from_sql(topic, sql)?;
        // SAFETY: the caller promised `options.key_column` is NULL or a NUL-terminated
        // string.
        let spec = unsafe { apply_route_options(spec, &options) }?;
        write_route_id(out, entry.manager.add_topic_route(spec)?);
        Ok(lc_status::LC_OK)
    })
}

/// Removes a route; changes published after this returns no longer reach its topic. An
/// unknown id (or one removed already) is `LC_ERR_UNKNOWN_TOPIC_ROUTE`.
///
/// Thread safety: any thread, concurrently with any other call.
#[no_mangle]
pub extern "C" fn lc_topic_route_remove(manager: lc_manager, route_id: u64) -> lc_status {
    boundary("lc_topic_route_remove", || {
        manager_entry(manager)?
            .manager
            .remove_topic_route(TopicRouteId(route_id))?;
        Ok(lc_status::LC_OK)
    })
}

/// Fills a consumer group config with the defaults (earliest, 30-second lease, no
/// dead-letter topic). Set
/// `config->struct_size = sizeof(lc_topic_group_config)` first; on return it holds the
/// bytes written.
///
/// Thread safety: any thread, any time.
///
/// # Safety
/// `config` is NULL or points at an `lc_topic_group_config` whose first `struct_size`
/// bytes are writable.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_group_config_init(
    config: *mut lc_topic_group_config,
) -> lc_status {
    boundary("lc_topic_group_config_init", || {
        // SAFETY: the caller promised `config` is NULL or writable for its struct_size.
        let out = unsafe { SizedOut::new_input(config, "config") }?;
        out.write(default_group_config());
        Ok(lc_status::LC_OK)
    })
}

/// Creates consumer group `group` (NUL-terminated; named like a topic: a bad name is
/// `LC_ERR_INVALID_NAME`) on `topic`. Each
/// partition starts where `config->reset` says, resolved now: earliest at the oldest
/// retained message, latest at the end (everything published after this returns is
/// seen), none nowhere. `config->lease_ms` must be within the manager config's
/// `topic_min_lease_ms` and `topic_max_lease_ms` (`LC_ERR_OUT_OF_BOUNDS`). With
/// `config->dead_letter_topic`, a message handed out `config->max_deliver` times goes to
/// that topic (as `lc_topic_group_set_dead_letter` describes): an unknown topic is
/// `LC_ERR_UNKNOWN_TOPIC`, the group's own topic `LC_ERR_INVALID_CONFIG`, `max_deliver` 0
/// `LC_ERR_OUT_OF_BOUNDS`; without one, `max_deliver` must be 0 and `reserved` always
/// (`LC_ERR_INVALID_ARGUMENT`). A taken name is `LC_ERR_GROUP_EXISTS`.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `topic` and `group` are NULL or NUL-terminated strings; `config` is NULL or readable for
/// its `struct_size`, and its `dead_letter_topic` (when within it) NULL or a
/// NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_group_create(
    manager: lc_manager,
    topic: *const c_char,
    group: *const c_char,
    config: *const lc_topic_group_config,
) -> lc_status {
    boundary("lc_topic_group_create", || {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let topic = unsafe { c_str(topic, "topic") }?;
        // SAFETY: as above.
        let group = unsafe { c_str(group, "group") }?;
        // SAFETY: the caller promised `config` is NULL or readable for its struct_size.
        let config = unsafe { read_sized(config, default_group_config(), "config") }?;
        // SAFETY: the caller promised `config->dead_letter_topic` (when within its
        // struct_size) is NULL or a NUL-terminated string; the default is NULL.
        let config = unsafe { group_config(&config) }?;
        let entry = manager_entry(manager)?;
        check_topic_name(&entry, group, "group")?;
        entry.manager.create_consumer_group(topic, group, config)?;
        Ok(lc_status::LC_OK)
    })
}

/// Deletes a consumer group and its offsets. Consumes of its members waiting on it return
/// `LC_ERR_UNKNOWN_GROUP`, as does deleting a group the topic does not have. When the
/// store fails to forget the offsets (`LC_ERR_TOPIC_STORE`), the group is gone all the
/// same; calling this again retries the store's deletion, and creating a group of that
/// name first finishes it (`LC_ERR_TOPIC_STORE` while the store still fails), so no new
/// group resumes from the deleted one's offsets.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `topic` and `group` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_group_delete(
    manager: lc_manager,
    topic: *const c_char,
    group: *const c_char,
) -> lc_status {
    boundary("lc_topic_group_delete", || {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let topic = unsafe { c_str(topic, "topic") }?;
        // SAFETY: as above.
        let group = unsafe { c_str(group, "group") }?;
        manager_entry(manager)?
            .manager
            .delete_consumer_group(topic, group)?;
        Ok(lc_status::LC_OK)
    })
}

/// Changes the dead-letter setting of the live consumer group `group` of `topic` (which
/// `lc_topic_group_config.dead_letter_topic` sets when the group is created, the usual
/// place; this call replaces it, in memory: a group created again after a restart has its
/// config's setting). A message the group has handed out `max_deliver` times (every
/// hand-out counts: after a nack, and after a lease expired) is appended to
/// `dead_letter_topic` instead of being handed out again, by the `lc_topic_nack` that finds
/// it there or the `lc_topic_consume` that would hand it out once more, and the partition
/// moves on past it: committed past at the committed offset; behind messages handed out
/// and not committed, marked and skipped until they are committed (never committed for
/// them). The dead letter is keyed and sequenced as the original, and its payload is the
/// JSON object `{"topic":…,"partition":…,"offset":…,"deliveries":…,"message":{…}}`. It is
/// only as durable as the dead-letter topic's store (see
/// `lc_topic_group_config.dead_letter_topic`). `max_deliver` 0 is `LC_ERR_OUT_OF_BOUNDS`;
/// an unknown dead-letter topic `LC_ERR_UNKNOWN_TOPIC`; the group's own topic
/// `LC_ERR_INVALID_CONFIG`.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `topic`, `group` and `dead_letter_topic` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_group_set_dead_letter(
    manager: lc_manager,
    topic: *const c_char,
    group: *const c_char,
    dead_letter_topic: *const c_char,
    max_deliver: u32,
) -> lc_status {
    boundary("lc_topic_group_set_dead_letter", || {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let topic = unsafe { c_str(topic, "topic") }?;
        // SAFETY: as above.
        let group = unsafe { c_str(group, "group") }?;
        // SAFETY: as above.
        let dead_letter_topic = unsafe { c_str(dead_letter_topic, "dead_letter_topic") }?;
        manager_entry(manager)?.manager.set_dead_letter(
            topic,
            group,
            dead_letter_topic,
            max_deliver,
        )?;
        Ok(lc_status::LC_OK)
    })
}

/// Removes consumer group `group`'s dead-letter topic: nacked messages are handed out
/// again however often they were.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `topic` and `group` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_group_clear_dead_letter(
    manager: lc_manager,
    topic: *const c_char,
    group: *const c_char,
) -> lc_status {
    boundary("lc_topic_group_clear_dead_letter", || {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let topic = unsafe { c_str(topic, "topic") }?;
        // SAFETY: as above.
        let group = unsafe { c_str(group, "group") }?;
        manager_entry(manager)?
            .manager
            .clear_dead_letter(topic, group)?;
        Ok(lc_status::LC_OK)
    })
}

/// Reads one partition of a consumer group: its committed offset, the partition's
/// retained range, the lag, and the lease (holder, what it handed out, when it expires).
/// A partition the topic does not have is `LC_ERR_UNKNOWN_PARTITION`.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `topic` and `group` are NULL or NUL-terminated strings; `out_partition` is NULL or
/// points at an `lc_topic_group_partition` whose first `struct_size` bytes are writable.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_group_get_partition(
    manager: lc_manager,
    topic: *const c_char,
    group: *const c_char,
    partition: u32,
    out_partition: *mut lc_topic_group_partition,
) -> lc_status {
    boundary("lc_topic_group_get_partition", || {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let topic = unsafe { c_str(topic, "topic") }?;
        // SAFETY: as above.
        let group = unsafe { c_str(group, "group") }?;
        // SAFETY: the caller promised `out_partition` is NULL or writable for its
        // struct_size.
        let out = unsafe { SizedOut::new(out_partition, "out_partition") }?;
        let partitions = manager_entry(manager)?
            .manager
            .group_offsets(topic, group)?;
        let found = partitions.get(partition as usize).ok_or_else(|| {
            FfiError::new(
                lc_status::LC_ERR_UNKNOWN_PARTITION,
                format!(
                    "topic {topic} has {} partitions; there is no partition {partition}",
                    partitions.len()
                ),
            )
        })?;
        let mut flags = 0;
        if found.committed.is_some() {
            flags |= LC_TOPIC_HAS_COMMITTED;
        }
        if found.holder.is_some() {
            flags |= LC_TOPIC_LEASED;
        }
        if found.delivered.is_some() {
            flags |= LC_TOPIC_HAS_NEXT;
        }
        out.write(lc_topic_group_partition {
            struct_size: 0,
            flags,
            committed: found.committed.unwrap_or(0),
            start: found.bounds.start,
            end: found.bounds.end,
            lag: found.lag,
            holder: found.holder.map_or(0, |holder| holder.0),
            delivered: found.delivered.unwrap_or(0),
            lease_expires_at_ms: found.lease_expires_at_ms.unwrap_or(0),
        });
        Ok(lc_status::LC_OK)
    })
}

/// Reads a consumer group's counters: redeliveries, messages skipped by retention,
/// expired leases, live members, nacks and the messages they handed out again, lease
/// extensions, dead letters. A caller built against a header whose `lc_topic_group_stats`
/// ends at `members` (its `struct_size`) gets those fields only.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `topic` and `group` are NULL or NUL-terminated strings; `out_stats` is NULL or points
/// at an `lc_topic_group_stats` whose first `struct_size` bytes are writable.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_group_get_stats(
    manager: lc_manager,
    topic: *const c_char,
    group: *const c_char,
    out_stats: *mut lc_topic_group_stats,
) -> lc_status {
    boundary("lc_topic_group_get_stats", || {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let topic = unsafe { c_str(topic, "topic") }?;
        // SAFETY: as above.
        let group = unsafe { c_str(group, "group") }?;
        // SAFETY: the caller promised `out_stats` is NULL or writable for its struct_size.
        let out = unsafe { SizedOut::new(out_stats, "out_stats") }?;
        let stats = manager_entry(manager)?.manager.group_stats(topic, group)?;
        out.write(lc_topic_group_stats {
            struct_size: 0,
            reserved: 0,
            redelivered: stats.redelivered,
            skipped_by_retention: stats.skipped_by_retention,
            leases_expired: stats.leases_expired,
            members: stats.members as u64,
            nacks: stats.nacks,
            nack_redelivered: stats.nack_redelivered,
            lease_extensions: stats.lease_extensions,
            dead_lettered: stats.dead_lettered,
        });
        Ok(lc_status::LC_OK)
    })
}
