//! Reading a topic outside consumer groups, and listing topics and their routes: the
//! parts of the Rust topics API (`read_topic`, `topic_names`, `topic_routes`) that are
//! not about consuming.

use std::ffi::c_char;

use crate::ffi::handles::Handle;
use crate::ffi::manager::manager_entry;
use crate::ffi::ptr::{c_str, Out, SizedOut};
use crate::ffi::state::{optional_text, CText, RouteEntry, TopicBatchEntry};
use crate::ffi::status::{boundary, lc_status, FfiError};
use crate::ffi::types::*;
use crate::{ChangeType, ConsumeBatch, Partitioning, Projection, RouteFilter, TopicRouteInfo};

/// Reads up to `max_messages` messages of partition `partition` of `topic` from `offset`
/// on, outside any consumer group: no lease, no commit, no waiting. An offset outside the
/// retained range (below the oldest retained message, or past the end) is
/// `LC_ERR_OFFSET_OUT_OF_RANGE`; reading at the end gives an empty batch. `max_messages`
/// is 1 to the config's `topic_max_consume_messages` (`LC_ERR_OUT_OF_BOUNDS`).
///
/// On `LC_OK`, `*out_batch` receives a batch, read with the `lc_topic_batch_*` functions
/// (messages in offset order; no positions, no retention skips) and freed with
/// `lc_topic_batch_free`. It cannot be committed (`lc_topic_batch_commit` refuses it).
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `topic` is NULL or a NUL-terminated string; `out_batch` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_read(
    manager: lc_manager,
    topic: *const c_char,
    partition: u32,
    offset: u64,
    max_messages: usize,
    out_batch: *mut lc_topic_batch,
) -> lc_status {
    boundary("lc_topic_read", || {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let topic = unsafe { c_str(topic, "topic") }?;
        // SAFETY: the caller promised `out_batch` is NULL or writable.
        let out = unsafe { Out::new(out_batch, "out_batch") }?;
        let messages =
            manager_entry(manager)?
                .manager
                .read_topic(topic, partition, offset, max_messages)?;
        let batch = ConsumeBatch {
            topic: topic.to_string(),
            group: String::new(),
            messages,
            positions: Vec::new(),
            retention_skips: Vec::new(),
            group_instance: 0,
        };
        out.write(lc_topic_batch::insert(TopicBatchEntry::read(batch)));
        Ok(lc_status::LC_OK)
    })
}

/// Lists the names of the manager's topics, sorted, as they are now: `*out_list` receives
/// a list, read with `lc_topic_names_count` and `lc_topic_names_get`, freed with
/// `lc_topic_names_free`. Topics created or deleted later do not change it.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `out_list` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_list(
    manager: lc_manager,
    out_list: *mut lc_topic_names,
) -> lc_status {
    boundary("lc_topic_list", || {
        // SAFETY: the caller promised `out_list` is NULL or writable.
        let out = unsafe { Out::new(out_list, "out_list") }?;
        let names: Box<[_]> = manager_entry(manager)?
            .manager
            .topic_names()
            .iter()
            .map(|name| CText::new(name))
            .collect();
        out.write(lc_topic_names::insert(names));
        Ok(lc_status::LC_OK)
    })
}

/// Gives the number of names in a topic name list.
///
/// Thread safety: any thread; a list may be read from several threads at once.
///
/// # Safety
/// `out_count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_names_count(
    list: lc_topic_names,
    out_count: *mut usize,
) -> lc_status {
    boundary("lc_topic_names_count", || {
        // SAFETY: the caller promised `out_count` is NULL or writable.
        let out = unsafe { Out::new(out_count, "out_count") }?;
        list.write_count(out)
    })
}

/// Gives name `index` of a topic name list: `*out_name` points at `*out_len` bytes of
/// UTF-8 followed by a NUL (not counted), owned by the list until
/// `lc_topic_names_free`.
///
/// Thread safety: any thread; a list may be read from several threads at once.
///
/// # Safety
/// `out_name` and `out_len` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_names_get(
    list: lc_topic_names,
    index: usize,
    out_name: *mut *const c_char,
    out_len: *mut usize,
) -> lc_status {
    boundary("lc_topic_names_get", || {
        // SAFETY: the caller promised `out_name` is NULL or writable.
        let name_out = unsafe { Out::new(out_name, "out_name") }?;
        // SAFETY: the caller promised `out_len` is NULL or writable.
        let len_out = unsafe { Out::new(out_len, "out_len") }?;
        let names = list.get()?;
        let name = names
            .get(index)
            .ok_or_else(|| FfiError::index("name", index, names.len()))?;
        // The string lives in the list, which the table keeps until it is freed.
        name_out.write(name.as_ptr());
        len_out.write(name.len());
        Ok(lc_status::LC_OK)
    })
}

/// Frees a topic name list and the names borrowed from it. A second free (or any use after
/// it) is `LC_ERR_INVALID_HANDLE`.
///
/// Thread safety: any thread, once no other thread uses the list or a name borrowed from
/// it.
#[no_mangle]
pub extern "C" fn lc_topic_names_free(list: lc_topic_names) -> lc_status {
    boundary("lc_topic_names_free", || list.free())
}

fn route_entry(entry: &crate::ffi::state::ManagerEntry, info: TopicRouteInfo) -> RouteEntry {
    let spec = &info.spec;
    let filter = match &spec.filter {
        RouteFilter::All => None,
        RouteFilter::Expr(expr) => Some(CText::new(&expr.to_string())),
        RouteFilter::Sql(sql) => Some(CText::new(sql)),
    };
    let key_column = match &spec.partitioning {
        Partitioning::RoundRobin => None,
        Partitioning::KeyColumn(column) => Some(CText::new(column)),
    };
    let columns = match &spec.projection {
        Projection::All => None,
        Projection::Columns(names) => Some(names.iter().map(|name| CText::new(name)).collect()),
    };
    RouteEntry {
        table_key: entry.table_key(&spec.table_id),
        namespace: CText::new(spec.table_id.namespace()),
        name: CText::new(spec.table_id.name()),
        filter,
        key_column,
        broken: info
            .broken
            .as_ref()
            .map(|error| CText::new(&error.to_string())),
        columns,
        info,
    }
}

/// Lists the routes feeding `topic`, as they are now: `*out_list` receives a list, read
/// with `lc_topic_routes_count`, `lc_topic_routes_get` and
/// `lc_topic_routes_column`, freed with `lc_topic_routes_free`.
///
/// Thread safety: any thread, concurrently with any other call.
///
/// # Safety
/// `topic` is NULL or a NUL-terminated string; `out_list` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_route_list(
    manager: lc_manager,
    topic: *const c_char,
    out_list: *mut lc_topic_routes,
) -> lc_status {
    boundary("lc_topic_route_list", || {
        // SAFETY: the caller promised NULL or a NUL-terminated string.
        let topic = unsafe { c_str(topic, "topic") }?;
        // SAFETY: the caller promised `out_list` is NULL or writable.
        let out = unsafe { Out::new(out_list, "out_list") }?;
        let entry = manager_entry(manager)?;
        let mut routes = entry.manager.topic_routes(topic)?;
        routes.sort_by_key(|route| route.id);
        let routes: Box<[RouteEntry]> = routes
            .into_iter()
            .map(|info| route_entry(&entry, info))
            .collect();
        out.write(lc_topic_routes::insert(routes));
        Ok(lc_status::LC_OK)
    })
}

/// Gives the number of routes in a route list.
///
/// Thread safety: any thread; a list may be read from several threads at once.
///
/// # Safety
/// `out_count` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_routes_count(
    list: lc_topic_routes,
    out_count: *mut usize,
) -> lc_status {
    boundary("lc_topic_routes_count", || {
        // SAFETY: the caller promised `out_count` is NULL or writable.
        let out = unsafe { Out::new(out_count, "out_count") }?;
        list.write_count(out)
    })
}

/// Reads route `index` of a route list (routes in id order): its id, table, filter, key
/// column, change types, counters and whether it is broken. Its strings are owned by the
/// list until `lc_topic_routes_free`.
///
/// Thread safety: any thread; a list may be read from several threads at once.
///
/// # Safety
/// `out_info` is NULL or points at an `lc_topic_route_info` whose first `struct_size`
/// bytes are writable.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_routes_get(
    list: lc_topic_routes,
    index: usize,
    out_info: *mut lc_topic_route_info,
) -> lc_status {
    boundary("lc_topic_routes_get", || {
        // SAFETY: the caller promised `out_info` is NULL or writable for its struct_size.
        let out = unsafe { SizedOut::new(out_info, "out_info") }?;
        let routes = list.get()?;
        let route = routes
            .get(index)
            .ok_or_else(|| FfiError::index("route", index, routes.len()))?;
        let spec = &route.info.spec;
        let change_types = [
            (ChangeType::Insert, LC_TOPIC_CHANGE_INSERT),
            (ChangeType::Update, LC_TOPIC_CHANGE_UPDATE),
            (ChangeType::Delete, LC_TOPIC_CHANGE_DELETE),
        ]
        .into_iter()
        .filter(|(change_type, _)| spec.change_types.contains(*change_type))
        .fold(0, |bits, (_, bit)| bits | bit);
        let mut flags = 0;
        if route.broken.is_some() {
            flags |= LC_TOPIC_ROUTE_BROKEN;
        }
        if route.columns.is_none() {
            flags |= LC_TOPIC_ROUTE_ALL_COLUMNS;
        }
        let (filter, filter_len) = optional_text(route.filter.as_ref());
        let (key_column, key_column_len) = optional_text(route.key_column.as_ref());
        let (broken, broken_len) = optional_text(route.broken.as_ref());
        // The strings live in the list, which the table keeps until it is freed.
        out.write(lc_topic_route_info {
            struct_size: 0,
            change_types,
            id: route.info.id.0,
            table: route.table_key.unwrap_or(LC_TOPIC_NO_TABLE_KEY),
            flags,
            routed: route.info.routed,
            broken_changes: route.info.broken_changes,
            table_namespace: route.namespace.as_ptr(),
            table_namespace_len: route.namespace.len(),
            table_name: route.name.as_ptr(),
            table_name_len: route.name.len(),
            filter,
            filter_len,
            key_column,
            key_column_len,
            broken,
            broken_len,
            column_count: route
                .columns
                .as_ref()
                .map_or(0, |columns| columns.len() as u64),
        });
        Ok(lc_status::LC_OK)
    })
}

/// Gives projected column `column` of route `index` of a route list (the columns its
/// messages carry, in order): `*out_name` points at `*out_len` bytes of UTF-8 followed by a
/// NUL, owned by the list until `lc_topic_routes_free`. A route with `LC_TOPIC_ROUTE_ALL_COLUMNS`
/// has none (`LC_ERR_INDEX_OUT_OF_RANGE`).
///
/// Thread safety: any thread; a list may be read from several threads at once.
///
/// # Safety
/// `out_name` and `out_len` are NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn lc_topic_routes_column(
    list: lc_topic_routes,
    index: usize,
    column: usize,
    out_name: *mut *const c_char,
    out_len: *mut usize,
) -> lc_status {
    boundary("lc_topic_routes_column", || {
        // SAFETY: the caller promised `out_name` is NULL or writable.
        let out = unsafe { Out::new(out_name, "out_name") }?;
        // SAFETY: the caller promised `out_len` is NULL or writable.
        let len_out = unsafe { Out::new(out_len, "out_len") }?;
        let routes = list.get()?;
        let route = routes
            .get(index)
            .ok_or_else(|| FfiError::index("route", index, routes.len()))?;
        let columns = route.columns.as_deref().unwrap_or(&[]);
        let name = columns
            .get(column)
            .ok_or_else(|| FfiError::index("column", column, columns.len()))?;
        // The string lives in the list, which the table keeps until it is freed.
        out.write(name.as_ptr());
        len_out.write(name.len());
        Ok(lc_status::LC_OK)
    })
}

/// Frees a route list and the strings borrowed from it. A second free (or any use after
/// it) is `LC_ERR_INVALID_HANDLE`.
///
/// Thread safety: any thread, once no other thread uses the list or a string borrowed
/// from it.
#[no_mangle]
pub extern "C" fn lc_topic_routes_free(list: lc_topic_routes) -> lc_status {
    boundary("lc_topic_routes_free", || list.free())
}
