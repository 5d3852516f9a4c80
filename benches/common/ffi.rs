//! The native API against the C ABI, for the `ffi_publish` bench and the `compare` runner.
//!
//! The C side is the built shared library (`liblivecore.so`, a crate-type of the library, so
//! building a bench or example builds it) loaded with `dlopen(RTLD_NOW | RTLD_LOCAL)` and
//! called through function pointers from `dlsym`: it is its own copy of livecore, with its
//! own handle tables and statics, and `RTLD_LOCAL` keeps its symbols from clashing with the
//! copy statically linked into this binary. It is never closed: it stays loaded until the
//! process exits.
//!
//! Both sides get identical managers (same configuration, same table, the same
//! subscriptions opened from the same SQL texts on connections authenticated as the same
//! user) and start every publish from the same C array of values ([`CRow`]): the native
//! side converts it into a [`Row`] as a Rust host holding C values would (text checked as
//! UTF-8 and copied, as the C ABI does) and calls [`ConnectionsManager::publish`] or
//! [`ConnectionsManager::publish_commit`]; the C side fills an `lc_change` pointing at the
//! array and calls `lc_change_publish` or `lc_commit_publish`.

use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr, CString};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use livecore::ffi::{
    lc_change, lc_change_type, lc_config, lc_manager, lc_notification, lc_publish_summary,
    lc_status, lc_subscription_options, lc_subscription_result, lc_table_scope, lc_value,
    lc_value_type, LIVECORE_ABI_VERSION,
};
use livecore::{
    ChangeNotification, ConnectionsManager, Row, SeqId, SubscriptionOptions, TableScope, Value,
};

use super::{
    bench_config, chunk_for, drain_live, drain_live_touched, row_values, spread, timed_in_chunks,
    LiveBench, COLUMNS, NAMESPACE, READER,
};

/// Values per row: the bench table's columns.
pub const ROW_LEN: usize = COLUMNS.len();

/// The bench table's name (in [`NAMESPACE`]).
const TABLE: &str = "items";

/// Distinct rows each side cycles through (a multiple of [`COMMIT_CHANGES`]).
const POOL: usize = 1024;

/// Changes per commit in the `publish_commit` cases.
pub const COMMIT_CHANGES: usize = 8;

/// The room every row of [`Filter::RoomEq`] is in, and the constant its filters compare.
const ROOM: i64 = 7;

const OK: u32 = lc_status::LC_OK as u32;
const EMPTY: u32 = lc_status::LC_EMPTY as u32;

/// One row in its C form: the array both sides start from. Text values point into the
/// row's own heap buffers (or static text), which stay put when the `CRow` moves.
pub struct CRow {
    values: [lc_value; ROW_LEN],
    /// Owns the bytes of the `name` value.
    _name: Box<str>,
}

impl CRow {
    /// Row `id` of the bench table (the values of `live_row(id)`).
    pub fn new(id: i64) -> Self {
        let (id, room, score, name, active, body) = row_values(id);
        let name = name.into_boxed_str();
        let scalar = |tag: lc_value_type, int_value: i64| lc_value {
            tag: tag as u32,
            reserved: 0,
            int_value,
            float_value: 0.0,
            data: std::ptr::null(),
            len: 0,
        };
        let text = |text: &str| lc_value {
            data: text.as_ptr(),
            len: text.len(),
            ..scalar(lc_value_type::LC_VALUE_TEXT, 0)
        };
        let values = [
            scalar(lc_value_type::LC_VALUE_INT, id),
            scalar(lc_value_type::LC_VALUE_INT, room),
            scalar(lc_value_type::LC_VALUE_INT, score),
            text(&name),
            scalar(lc_value_type::LC_VALUE_BOOL, i64::from(active)),
            text(body),
        ];
        Self {
            values,
            _name: name,
        }
    }

    /// The C array.
    pub fn values(&self) -> &[lc_value; ROW_LEN] {
        &self.values
    }

    /// The native side's conversion of the C array into a livecore row.
    #[inline]
    pub fn native_row(&self) -> Row {
        // SAFETY: every text value of a CRow points at `len` bytes of its own boxed name or
        // of static text, alive as long as `self`.
        unsafe { row_from_values(&self.values) }
    }
}

/// What a Rust host holding C values does to publish them natively: one livecore value per
/// C value, booleans checked, text checked as UTF-8 and copied, as `lc_change_publish` does.
///
/// # Safety
/// Each text or bytes value with a non-zero `len` has `data` pointing at `len` readable
/// bytes.
#[inline]
pub unsafe fn row_from_values(values: &[lc_value]) -> Row {
    values
        .iter()
        .map(|value| {
            let bytes = || -> &[u8] {
                if value.len == 0 {
                    return &[];
                }
                // SAFETY: `len` readable bytes at `data` (this function's caller's promise).
                unsafe { std::slice::from_raw_parts(value.data, value.len) }
            };
            match value.tag {
                tag if tag == lc_value_type::LC_VALUE_NULL as u32 => Value::Null,
                tag if tag == lc_value_type::LC_VALUE_BOOL as u32 => match value.int_value {
                    0 => Value::Bool(false),
                    1 => Value::Bool(true),
                    other => panic!("a boolean's int_value is 0 or 1, not {other}"),
                },
                tag if tag == lc_value_type::LC_VALUE_INT as u32 => Value::Int(value.int_value),
                tag if tag == lc_value_type::LC_VALUE_FLOAT as u32 => {
                    Value::Float(value.float_value)
                }
                tag if tag == lc_value_type::LC_VALUE_TEXT as u32 => {
                    Value::text(std::str::from_utf8(bytes()).expect("text is UTF-8"))
                }
                tag if tag == lc_value_type::LC_VALUE_BYTES as u32 => Value::bytes(bytes()),
                other => panic!("unknown lc_value_type {other}"),
            }
        })
        .collect()
}

type ConfigInit = unsafe extern "C" fn(*mut lc_config) -> u32;
type ManagerNew = unsafe extern "C" fn(*const lc_config, *mut lc_manager) -> u32;
type ManagerFree = unsafe extern "C" fn(lc_manager) -> u32;
type AbiVersion = unsafe extern "C" fn(*mut u32) -> u32;
type LastError = unsafe extern "C" fn(*mut *const c_char) -> u32;
type RegisterTable = unsafe extern "C" fn(
    lc_manager,
    *const c_char,
    *const c_char,
    u32,
    *const *const c_char,
    usize,
    *mut u32,
) -> u32;
type ConnectionRegister = unsafe extern "C" fn(lc_manager, *mut u64) -> u32;
type ConnectionAuthenticate =
    unsafe extern "C" fn(lc_manager, u64, *const c_char, *const c_char) -> u32;
type SubscribeOptionsInit = unsafe extern "C" fn(*mut lc_subscription_options) -> u32;
type SubscribeSql = unsafe extern "C" fn(
    lc_manager,
    u64,
    *const c_char,
    *const lc_subscription_options,
    *mut lc_subscription_result,
) -> u32;
type SubscriptionResultFree = unsafe extern "C" fn(lc_subscription_result) -> u32;
type Publish =
    unsafe extern "C" fn(lc_manager, u64, *const lc_change, *mut lc_publish_summary) -> u32;
type PublishCommit =
    unsafe extern "C" fn(lc_manager, u64, *const lc_change, usize, *mut lc_publish_summary) -> u32;
type ConnectionRecv = unsafe extern "C" fn(lc_manager, u64, u32, *mut lc_notification) -> u32;
type ConnectionRecvBatch =
    unsafe extern "C" fn(lc_manager, u64, u32, *mut lc_notification, usize, *mut usize) -> u32;
type NotificationFree = unsafe extern "C" fn(lc_notification) -> u32;

/// The C functions the benches call, from the loaded shared library. Statuses are read as
/// plain numbers, so nothing the library returns can be an invalid Rust enum.
pub struct CApi {
    /// Where the library was loaded from.
    pub path: PathBuf,
    config_init: ConfigInit,
    manager_new: ManagerNew,
    manager_free: ManagerFree,
    last_error: LastError,
    register_table: RegisterTable,
    connection_register: ConnectionRegister,
    connection_authenticate: ConnectionAuthenticate,
    subscribe_options_init: SubscribeOptionsInit,
    subscribe_sql: SubscribeSql,
    subscription_result_free: SubscriptionResultFree,
    publish: Publish,
    publish_commit: PublishCommit,
    connection_recv: ConnectionRecv,
    connection_recv_batch: ConnectionRecvBatch,
    notification_free: NotificationFree,
}

impl CApi {
    /// The library, loaded on first use (and never unloaded). Panics, naming what it tried,
    /// when it cannot be found or loaded.
    pub fn get() -> &'static CApi {
        static API: OnceLock<Result<CApi, String>> = OnceLock::new();
        match API.get_or_init(CApi::load) {
            Ok(api) => api,
            Err(error) => panic!("cannot load the livecore shared library: {error}"),
        }
    }

    fn load() -> Result<CApi, String> {
        let path = library_path()?;
        let handle = dl::open(&path)?;
        // SAFETY: for every `dl::symbol` call in this block, the function pointer type is the
        // signature include/livecore.h declares for that symbol, with `lc_status` read as its
        // underlying `uint32_t` and every struct one of livecore's own `#[repr(C)]` types.
        let api = unsafe {
            CApi {
                path,
                config_init: dl::symbol(handle, c"lc_config_init")?,
                manager_new: dl::symbol(handle, c"lc_manager_new")?,
                manager_free: dl::symbol(handle, c"lc_manager_free")?,
                last_error: dl::symbol(handle, c"lc_last_error")?,
                register_table: dl::symbol(handle, c"lc_table_register")?,
                connection_register: dl::symbol(handle, c"lc_connection_register")?,
                connection_authenticate: dl::symbol(handle, c"lc_connection_authenticate")?,
                subscribe_options_init: dl::symbol(handle, c"lc_subscription_options_init")?,
                subscribe_sql: dl::symbol(handle, c"lc_subscription_create_sql")?,
                subscription_result_free: dl::symbol(handle, c"lc_subscription_result_free")?,
                publish: dl::symbol(handle, c"lc_change_publish")?,
                publish_commit: dl::symbol(handle, c"lc_commit_publish")?,
                connection_recv: dl::symbol(handle, c"lc_connection_recv")?,
                connection_recv_batch: dl::symbol(handle, c"lc_connection_recv_batch")?,
                notification_free: dl::symbol(handle, c"lc_notification_free")?,
            }
        };
        // SAFETY: as above, for lc_abi_version.
        let abi_version: AbiVersion = unsafe { dl::symbol(handle, c"lc_abi_version")? };
        let mut version = 0;
        // SAFETY: `version` is a writable u32.
        let status = unsafe { abi_version(&mut version) };
        if status != OK || version != LIVECORE_ABI_VERSION {
            return Err(format!(
                "{} has ABI version {version} (status {status}); this build expects {}",
                api.path.display(),
                LIVECORE_ABI_VERSION
            ));
        }
        Ok(api)
    }

    /// Panics with the library's last error unless `status` is `LC_OK`.
    fn check(&self, status: u32, what: &str) {
        if status == OK {
            return;
        }
        let mut message: *const c_char = std::ptr::null();
        // SAFETY: `message` is a writable pointer.
        unsafe { (self.last_error)(&mut message) };
        let text = if message.is_null() {
            String::new()
        } else {
            // SAFETY: lc_last_error hands out a NUL-terminated string that stays valid until
            // the next failing call on this thread; it is copied right away.
            unsafe { CStr::from_ptr(message) }
                .to_string_lossy()
                .into_owned()
        };
        panic!("{what}: status {status}: {text}");
    }
}

/// Where the shared library is: `LIVECORE_CDYLIB` when set, else next to this executable.
/// A bench runs from `target/<profile>/deps/`, where cargo leaves the library it builds for
/// it; an example runs from `target/<profile>/examples/`, next to `deps/`; a `cargo build` of
/// the library also copies it to `target/<profile>/`. The versioned soname
/// (`liblivecore.so.<LIVECORE_ABI_VERSION>`, as installed by cargo-c) is accepted too.
fn library_path() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("LIVECORE_CDYLIB") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().map_err(|error| format!("current_exe: {error}"))?;
    let dir = exe
        .parent()
        .ok_or_else(|| format!("{} has no parent directory", exe.display()))?;
    let file = format!(
        "{}livecore{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let versioned = format!("{file}.{LIVECORE_ABI_VERSION}");
    let dirs = [dir.to_path_buf(), dir.join("../deps"), dir.join("..")];
    let candidates: Vec<PathBuf> = [&file, &versioned]
        .iter()
        .flat_map(|name| dirs.iter().map(move |dir| dir.join(name)))
        .collect();
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .ok_or_else(|| {
            format!(
                "not found at any of {candidates:?}; build it (`cargo build --release`) or \
                 set LIVECORE_CDYLIB to its path"
            )
        })
}

/// `dlopen` and `dlsym`.
#[cfg(unix)]
mod dl {
    use super::*;

    /// A loaded library, never closed.
    #[derive(Clone, Copy)]
    pub struct Handle(*mut c_void);

    /// Loads the library at `path` with its symbols resolved now and kept local.
    pub fn open(path: &std::path::Path) -> Result<Handle, String> {
        use std::os::unix::ffi::OsStrExt;
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| format!("{} contains a NUL byte", path.display()))?;
        // SAFETY: `c_path` is NUL-terminated. Loading runs only the library's initialisers
        // (Rust's std has none that touch this process's state), and RTLD_LOCAL keeps its
        // symbols out of the global namespace, away from this binary's own copy.
        let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if handle.is_null() {
            return Err(format!("dlopen {}: {}", path.display(), last_error()));
        }
        Ok(Handle(handle))
    }

    /// The function `name` of the library, as a function pointer of type `F`.
    ///
    /// # Safety
    /// `F` is an `unsafe extern "C" fn` type whose signature is the symbol's.
    pub unsafe fn symbol<F: Copy>(handle: Handle, name: &CStr) -> Result<F, String> {
        assert_eq!(std::mem::size_of::<F>(), std::mem::size_of::<*mut c_void>());
        // SAFETY: `handle` came from a successful dlopen and is never closed; `name` is
        // NUL-terminated.
        let address = unsafe { libc::dlsym(handle.0, name.as_ptr()) };
        if address.is_null() {
            return Err(format!("dlsym {name:?}: {}", last_error()));
        }
        // SAFETY: a non-NULL address of a function whose signature is `F` (the caller's
        // promise), and `F` is pointer-sized (asserted above).
        Ok(unsafe { std::mem::transmute_copy::<*mut c_void, F>(&address) })
    }

    fn last_error() -> String {
        // SAFETY: dlerror returns NULL or a NUL-terminated message valid until the next dl*
        // call on this thread; it is copied right away.
        let message = unsafe { libc::dlerror() };
        if message.is_null() {
            return "unknown error".to_string();
        }
        // SAFETY: non-NULL and NUL-terminated (see above).
        unsafe { CStr::from_ptr(message) }
            .to_string_lossy()
            .into_owned()
    }
}

/// Without `dlopen` the C side cannot be loaded: the benches say so.
#[cfg(not(unix))]
mod dl {
    use super::*;

    #[derive(Clone, Copy)]
    pub struct Handle;

    pub fn open(path: &std::path::Path) -> Result<Handle, String> {
        Err(format!(
            "{}: loading with dlopen needs a Unix system",
            path.display()
        ))
    }

    /// Never called: `open` fails first.
    ///
    /// # Safety
    /// None needed.
    pub unsafe fn symbol<F: Copy>(_: Handle, name: &CStr) -> Result<F, String> {
        Err(format!("{name:?}: no dlsym on this system"))
    }
}

/// A manager of the loaded C library with the bench table and its connections.
pub struct CSide {
    api: &'static CApi,
    /// The manager handle.
    pub manager: lc_manager,
    /// The bench table's key.
    pub table: u32,
    /// Registered connections, in order.
    pub connections: Vec<u64>,
}

impl CSide {
    /// A manager configured as [`bench_config`] with table `bench.items` (shared).
    pub fn new(api: &'static CApi) -> Self {
        let defaults = bench_config();
        // SAFETY: an all-zero lc_config is a valid value of it (integers and a NULL pointer).
        let mut config: lc_config = unsafe { std::mem::zeroed() };
        config.struct_size = std::mem::size_of::<lc_config>() as u32;
        // SAFETY: `config` is writable for its struct_size.
        api.check(unsafe { (api.config_init)(&mut config) }, "lc_config_init");
        config.max_connections = defaults.max_connections as u64;
        config.max_subscriptions_per_connection = defaults.max_subscriptions_per_connection as u64;
        let mut manager = lc_manager::default();
        // SAFETY: `config` was filled by lc_config_init (default_namespace NULL); `manager`
        // is writable.
        api.check(
            unsafe { (api.manager_new)(&config, &mut manager) },
            "lc_manager_new",
        );
        let namespace = CString::new(NAMESPACE).expect("no NUL");
        let name = CString::new(TABLE).expect("no NUL");
        let columns: Vec<CString> = COLUMNS
            .iter()
            .map(|column| CString::new(*column).expect("no NUL"))
            .collect();
        let column_ptrs: Vec<*const c_char> = columns.iter().map(|c| c.as_ptr()).collect();
        let mut table = 0;
        // SAFETY: the strings are NUL-terminated and alive during the call; `column_ptrs`
        // holds `len` of them; `table` is writable.
        api.check(
            unsafe {
                (api.register_table)(
                    manager,
                    namespace.as_ptr(),
                    name.as_ptr(),
                    lc_table_scope::LC_SCOPE_SHARED as u32,
                    column_ptrs.as_ptr(),
                    column_ptrs.len(),
                    &mut table,
                )
            },
            "lc_table_register",
        );
        Self {
            api,
            manager,
            table,
            connections: Vec::new(),
        }
    }

    /// Registers and authenticates a connection as [`READER`]; returns its index.
    pub fn connect(&mut self) -> usize {
        let api = self.api;
        let mut id = 0;
        // SAFETY: `id` is writable.
        api.check(
            unsafe { (api.connection_register)(self.manager, &mut id) },
            "lc_connection_register",
        );
        let user = CString::new(READER).expect("no NUL");
        // SAFETY: `user` is NUL-terminated; the role may be NULL.
        api.check(
            unsafe {
                (api.connection_authenticate)(self.manager, id, user.as_ptr(), std::ptr::null())
            },
            "lc_connection_authenticate",
        );
        self.connections.push(id);
        self.connections.len() - 1
    }

    /// Opens a subscription from SQL text on connection `connection`, default options.
    pub fn subscribe_sql(&mut self, connection: usize, sql: &str) {
        let api = self.api;
        let sql = CString::new(sql).expect("no NUL");
        let mut options = lc_subscription_options {
            struct_size: std::mem::size_of::<lc_subscription_options>() as u32,
            flags: 0,
            batch_size: 0,
            resume_from: 0,
        };
        // SAFETY: `options` is writable for its struct_size.
        api.check(
            unsafe { (api.subscribe_options_init)(&mut options) },
            "lc_subscription_options_init",
        );
        let mut result = lc_subscription_result::default();
        // SAFETY: `sql` is NUL-terminated; `options` was filled by lc_subscription_options_init;
        // `result` is writable.
        api.check(
            unsafe {
                (api.subscribe_sql)(
                    self.manager,
                    self.connections[connection],
                    sql.as_ptr(),
                    &options,
                    &mut result,
                )
            },
            "lc_subscription_create_sql",
        );
        // SAFETY: a live result handle, freed once.
        api.check(
            unsafe { (api.subscription_result_free)(result) },
            "lc_subscription_result_free",
        );
    }

    /// An insert of `row` into the bench table, pointing at the row's C array.
    #[inline]
    pub fn insert(&self, row: &CRow) -> lc_change {
        lc_change {
            table: self.table,
            change_type: lc_change_type::LC_CHANGE_INSERT as u32,
            row: row.values.as_ptr(),
            row_len: ROW_LEN,
            old_row: std::ptr::null(),
            old_row_len: 0,
            owner: std::ptr::null(),
        }
    }

    /// `lc_change_publish` of an insert of `row` as commit `seq`; returns the deliveries enqueued.
    #[inline]
    pub fn publish(&self, seq: u64, row: &CRow) -> u64 {
        let change = self.insert(row);
        let mut summary = empty_summary();
        // SAFETY: `change` points at the row's live C array (ROW_LEN values, text alive as
        // long as `row`); `summary` is writable for its struct_size.
        let status = unsafe { (self.api.publish)(self.manager, seq, &change, &mut summary) };
        self.api.check(status, "lc_change_publish");
        summary.enqueued
    }

    /// `lc_commit_publish` of inserts of `rows` as commit `seq`; returns the deliveries
    /// enqueued.
    #[inline]
    pub fn publish_commit(&self, seq: u64, rows: &[CRow; COMMIT_CHANGES]) -> u64 {
        let changes: [lc_change; COMMIT_CHANGES] = std::array::from_fn(|c| self.insert(&rows[c]));
        let mut summary = empty_summary();
        // SAFETY: `changes` holds COMMIT_CHANGES changes pointing at live C arrays;
        // `summary` is writable for its struct_size.
        let status = unsafe {
            (self.api.publish_commit)(
                self.manager,
                seq,
                changes.as_ptr(),
                changes.len(),
                &mut summary,
            )
        };
        self.api.check(status, "lc_commit_publish");
        summary.enqueued
    }

    /// Receives and frees everything waiting on connection `connection`; returns how many.
    pub fn drain(&self, connection: usize) -> u64 {
        let api = self.api;
        let mut taken = 0;
        loop {
            let mut notification = lc_notification::default();
            // SAFETY: `notification` is writable; timeout 0 never blocks.
            let status = unsafe {
                (api.connection_recv)(
                    self.manager,
                    self.connections[connection],
                    0,
                    &mut notification,
                )
            };
            if status == EMPTY {
                return taken;
            }
            api.check(status, "lc_connection_recv");
            // SAFETY: a live notification handle, freed once.
            api.check(
                unsafe { (api.notification_free)(notification) },
                "lc_notification_free",
            );
            taken += 1;
        }
    }

    /// [`CSide::drain`] through `lc_connection_recv_batch`, up to `batch` notifications a
    /// call.
    pub fn drain_batched(&self, connection: usize, batch: usize) -> u64 {
        let api = self.api;
        let mut handles = vec![lc_notification::default(); batch];
        let mut taken = 0;
        loop {
            let mut count = 0;
            // SAFETY: `handles` holds `batch` writable handles and `count` is writable;
            // timeout 0 never blocks.
            let status = unsafe {
                (api.connection_recv_batch)(
                    self.manager,
                    self.connections[connection],
                    0,
                    handles.as_mut_ptr(),
                    handles.len(),
                    &mut count,
                )
            };
            if status == EMPTY {
                return taken;
            }
            api.check(status, "lc_connection_recv_batch");
            for &notification in &handles[..count] {
                // SAFETY: a live notification handle, freed once.
                api.check(
                    unsafe { (api.notification_free)(notification) },
                    "lc_notification_free",
                );
            }
            taken += count as u64;
        }
    }

    /// [`CSide::drain`] on every connection.
    pub fn drain_all(&self) -> u64 {
        (0..self.connections.len()).map(|c| self.drain(c)).sum()
    }

    /// [`CSide::drain`] on the connections in `touched` (then cleared).
    pub fn drain_touched(&self, touched: &mut Vec<usize>) {
        touched.sort_unstable();
        touched.dedup();
        for &connection in touched.iter() {
            self.drain(connection);
        }
        touched.clear();
    }
}

impl Drop for CSide {
    fn drop(&mut self) {
        // SAFETY: the manager handle is live and freed once, here.
        let status = unsafe { (self.api.manager_free)(self.manager) };
        if status != OK && !std::thread::panicking() {
            self.api.check(status, "lc_manager_free");
        }
    }
}

fn empty_summary() -> lc_publish_summary {
    lc_publish_summary {
        struct_size: std::mem::size_of::<lc_publish_summary>() as u32,
        reserved: 0,
        matched: 0,
        enqueued: 0,
        dropped: 0,
        buffered: 0,
        covered_by_snapshot: 0,
        evaluated: 0,
        topic_messages: 0,
        topic_write_failures: 0,
    }
}

/// What the subscriptions of a case filter on.
#[derive(Clone, Copy, Debug)]
pub enum Filter {
    /// `SELECT * FROM bench.items`: every subscription matches every row.
    None,
    /// `... WHERE id = k` for subscription k: each row matches exactly one.
    IdEq,
    /// `... WHERE room = 7` for every subscription, and every row in room 7: each row
    /// matches all of them, found through one equality bucket.
    RoomEq,
}

/// One setup measured on both sides: `subscribers` connections with one subscription each.
#[derive(Clone, Copy, Debug)]
pub struct FfiCase {
    /// The name in bench ids.
    pub name: &'static str,
    /// Connections, one subscription each.
    pub subscribers: usize,
    /// What the subscriptions filter on.
    pub filter: Filter,
}

/// One unfiltered subscriber.
pub const UNFILTERED_1: FfiCase = FfiCase {
    name: "unfiltered_1",
    subscribers: 1,
    filter: Filter::None,
};

/// 1000 unfiltered subscribers, each on its own connection.
pub const UNFILTERED_1000: FfiCase = FfiCase {
    name: "unfiltered_1000",
    subscribers: 1000,
    filter: Filter::None,
};

/// 1000 subscriptions `id = k`, each change matching one.
pub const ID_EQ_1_OF_1000: FfiCase = FfiCase {
    name: "id_eq_1_of_1000",
    subscribers: 1000,
    filter: Filter::IdEq,
};

/// 1000 subscriptions `room = 7`, each change matching all.
pub const ROOM_EQ_1000: FfiCase = FfiCase {
    name: "room_eq_1000",
    subscribers: 1000,
    filter: Filter::RoomEq,
};

/// The cases of the bench: 1 and 1000 matching subscribers, unfiltered and
/// equality-filtered (for 1 match, among 1000 equality subscriptions).
pub const FFI_CASES: [FfiCase; 4] = [UNFILTERED_1, UNFILTERED_1000, ID_EQ_1_OF_1000, ROOM_EQ_1000];

impl FfiCase {
    /// The SQL of subscription `k`.
    fn sql(&self, k: usize) -> String {
        let from = format!("SELECT * FROM {NAMESPACE}.{TABLE}");
        match self.filter {
            Filter::None => from,
            Filter::IdEq => format!("{from} WHERE id = {k}"),
            Filter::RoomEq => format!("{from} WHERE room = {ROOM}"),
        }
    }

    /// The id of pool row `j`.
    fn row_id(&self, j: usize) -> i64 {
        match self.filter {
            Filter::None => j as i64,
            // Spread over the subscriptions, so each publish reaches another one.
            Filter::IdEq => spread(j as u64, self.subscribers as u64) as i64,
            // room = id % 100.
            Filter::RoomEq => ROOM + 100 * j as i64,
        }
    }

    /// Deliveries one change makes.
    pub fn matches(&self) -> usize {
        match self.filter {
            Filter::None | Filter::RoomEq => self.subscribers,
            Filter::IdEq => 1,
        }
    }

    /// The one connection a row reaches, when a row reaches one.
    fn target(&self, row_id: i64) -> Option<usize> {
        match self.filter {
            Filter::IdEq => Some(row_id as usize),
            Filter::None | Filter::RoomEq => None,
        }
    }
}

/// Both sides of one case, set up alike, and the rows both publish.
pub struct FfiPair {
    /// The case.
    pub case: FfiCase,
    /// The native side.
    pub native: LiveBench,
    /// The C side.
    pub c: CSide,
    rows: Vec<CRow>,
    native_seq: u64,
    c_seq: u64,
}

impl FfiPair {
    /// Loads the library (once per process) and sets up both sides; checks that one publish
    /// makes the same deliveries on each and that the C side runs in the loaded library,
    /// not in this binary's copy.
    pub fn new(case: FfiCase) -> Self {
        let api = CApi::get();
        let mut native = LiveBench::new(TABLE, TableScope::Shared);
        let mut c = CSide::new(api);
        for k in 0..case.subscribers {
            let sql = case.sql(k);
            let connection = native.connect(READER);
            native
                .manager
                .subscribe_sql(
                    native.connections[connection],
                    &sql,
                    SubscriptionOptions::default(),
                )
                .expect("native subscription opens");
            let connection = c.connect();
            c.subscribe_sql(connection, &sql);
        }
        assert_eq!(
            livecore::ffi::live_handle_counts()[0],
            0,
            "the C side must run in the loaded library, whose managers are its own"
        );
        let rows: Vec<CRow> = (0..POOL).map(|j| CRow::new(case.row_id(j))).collect();
        let mut pair = Self {
            case,
            native,
            c,
            rows,
            native_seq: 0,
            c_seq: 0,
        };
        let expected = case.matches() as u64;
        let native_enqueued = pair.native_publish_one(0);
        let c_enqueued = pair.c_publish_one(0);
        assert_eq!(
            (native_enqueued, c_enqueued),
            (expected, expected),
            "{}: one publish reaches {expected} subscribers on both sides",
            case.name
        );
        assert_eq!(pair.native.drain(), expected);
        assert_eq!(pair.c.drain_all(), expected);
        pair
    }

    #[inline]
    fn native_publish_one(&mut self, index: usize) -> u64 {
        self.native_seq += 1;
        publish_native(
            &self.native.manager,
            &self.native.table,
            self.native_seq,
            &self.rows[index],
        )
    }

    #[inline]
    fn c_publish_one(&mut self, index: usize) -> u64 {
        self.c_seq += 1;
        self.c.publish(self.c_seq, &self.rows[index])
    }

    /// Commits reaching `fanout` channels each that may be published between drains.
    fn chunk(&self, changes_per_commit: usize) -> u64 {
        let fanout = match self.case.filter {
            Filter::IdEq => changes_per_commit,
            Filter::None | Filter::RoomEq => self.case.subscribers,
        };
        chunk_for(fanout as u64)
    }

    /// Publisher-side time of `iters` single-change commits through the native API
    /// (`ConnectionsManager::publish`), channels drained untimed between chunks.
    pub fn native_publish(&mut self, iters: u64) -> Duration {
        let case = self.case;
        let chunk = self.chunk(1);
        let (manager, table) = (Arc::clone(&self.native.manager), self.native.table.clone());
        let rows = &self.rows;
        let receivers = &mut self.native.receivers;
        let seq = &mut self.native_seq;
        let targets = RefCell::new(Vec::new());
        let mut touched = Vec::new();
        timed_in_chunks(
            iters,
            chunk,
            |i| {
                let row = &rows[i as usize % POOL];
                targets.borrow_mut().extend(case.target(row_id(row)));
                row
            },
            |row| {
                *seq += 1;
                std::hint::black_box(publish_native(&manager, &table, *seq, row));
            },
            || drain_native(receivers, &targets, &mut touched),
        )
    }

    /// The same commits through `lc_change_publish`.
    pub fn c_publish(&mut self, iters: u64) -> Duration {
        let case = self.case;
        let chunk = self.chunk(1);
        let rows = &self.rows;
        let c = &self.c;
        let seq = &mut self.c_seq;
        let targets = RefCell::new(Vec::new());
        let mut touched = Vec::new();
        timed_in_chunks(
            iters,
            chunk,
            |i| {
                let row = &rows[i as usize % POOL];
                targets.borrow_mut().extend(case.target(row_id(row)));
                row
            },
            |row| {
                *seq += 1;
                std::hint::black_box(c.publish(*seq, row));
            },
            || drain_c(c, &targets, &mut touched),
        )
    }

    /// Publisher-side time of `iters` commits of [`COMMIT_CHANGES`] inserts each through
    /// the native API (`ConnectionsManager::publish_commit`).
    pub fn native_publish_commit(&mut self, iters: u64) -> Duration {
        let case = self.case;
        let chunk = self.chunk(COMMIT_CHANGES);
        let (manager, table) = (Arc::clone(&self.native.manager), self.native.table.clone());
        let rows = &self.rows;
        let receivers = &mut self.native.receivers;
        let seq = &mut self.native_seq;
        let targets = RefCell::new(Vec::new());
        let mut touched = Vec::new();
        timed_in_chunks(
            iters,
            chunk,
            |i| commit_rows(rows, i, case, &targets),
            |commit| {
                *seq += 1;
                let changes = commit
                    .iter()
                    .map(|row| ChangeNotification::insert(table.clone(), row.native_row()))
                    .collect();
                let summary = manager
                    .publish_commit(SeqId(*seq), changes)
                    .expect("native publish_commit");
                std::hint::black_box(summary.enqueued);
            },
            || drain_native(receivers, &targets, &mut touched),
        )
    }

    /// The same commits through `lc_commit_publish`.
    pub fn c_publish_commit(&mut self, iters: u64) -> Duration {
        let case = self.case;
        let chunk = self.chunk(COMMIT_CHANGES);
        let rows = &self.rows;
        let c = &self.c;
        let seq = &mut self.c_seq;
        let targets = RefCell::new(Vec::new());
        let mut touched = Vec::new();
        timed_in_chunks(
            iters,
            chunk,
            |i| commit_rows(rows, i, case, &targets),
            |commit| {
                *seq += 1;
                std::hint::black_box(c.publish_commit(*seq, commit));
            },
            || drain_c(c, &targets, &mut touched),
        )
    }
}

/// Single-change commits published (untimed) between timed receptions: below every
/// channel's capacity, so nothing is dropped.
const RECEIVE_BATCH: u64 = 256;

impl FfiPair {
    /// Receiving-side time of `iters` notifications through the native API: commits
    /// published untimed, [`RECEIVE_BATCH`] at a time, then every receiver drained with
    /// `try_recv`, timed.
    pub fn native_receive(&mut self, iters: u64) -> Duration {
        self.timed_receptions(
            iters,
            |pair, index| {
                pair.native_publish_one(index);
            },
            |pair| pair.native.drain(),
        )
    }

    /// The same receptions through `lc_connection_recv` and `lc_notification_free`.
    pub fn c_receive(&mut self, iters: u64) -> Duration {
        self.timed_receptions(
            iters,
            |pair, index| {
                pair.c_publish_one(index);
            },
            |pair| pair.c.drain_all(),
        )
    }

    /// The same receptions through `lc_connection_recv_batch`, up to `batch` a call.
    pub fn c_receive_batched(&mut self, iters: u64, batch: usize) -> Duration {
        self.timed_receptions(
            iters,
            |pair, index| {
                pair.c_publish_one(index);
            },
            |pair| {
                (0..pair.c.connections.len())
                    .map(|connection| pair.c.drain_batched(connection, batch))
                    .sum()
            },
        )
    }

    /// Publishes with `publish` (untimed) and receives with `receive` (timed),
    /// [`RECEIVE_BATCH`] commits at a time, checking every delivery was received.
    fn timed_receptions(
        &mut self,
        iters: u64,
        mut publish: impl FnMut(&mut Self, usize),
        mut receive: impl FnMut(&mut Self) -> u64,
    ) -> Duration {
        let per_commit = self.case.matches() as u64;
        let mut total = Duration::ZERO;
        let mut done = 0;
        while done < iters {
            let batch = RECEIVE_BATCH.min(iters - done);
            for i in done..done + batch {
                publish(self, i as usize % POOL);
            }
            let start = Instant::now();
            let received = receive(self);
            total += start.elapsed();
            assert_eq!(received, batch * per_commit, "every notification received");
            done += batch;
        }
        total
    }
}

/// The native publish of one insert: the C array converted to a row, then `publish`.
#[inline]
fn publish_native(
    manager: &ConnectionsManager,
    table: &livecore::TableId,
    seq: u64,
    row: &CRow,
) -> u64 {
    let change = ChangeNotification::insert(table.clone(), row.native_row());
    manager
        .publish(SeqId(seq), change)
        .expect("native publish")
        .enqueued as u64
}

/// The id a C row carries.
fn row_id(row: &CRow) -> i64 {
    row.values[0].int_value
}

/// The rows of commit `i` (consecutive in the pool), noting the connections they reach.
fn commit_rows<'a>(
    rows: &'a [CRow],
    i: u64,
    case: FfiCase,
    targets: &RefCell<Vec<usize>>,
) -> &'a [CRow; COMMIT_CHANGES] {
    let start = (i as usize * COMMIT_CHANGES) % POOL;
    let commit: &[CRow; COMMIT_CHANGES] = rows[start..start + COMMIT_CHANGES]
        .try_into()
        .expect("POOL is a multiple of COMMIT_CHANGES");
    targets
        .borrow_mut()
        .extend(commit.iter().filter_map(|row| case.target(row_id(row))));
    commit
}

/// Drains the native receivers: those the chunk's rows reached when each reaches one,
/// every receiver otherwise.
fn drain_native(
    receivers: &mut [livecore::NotificationReceiver],
    targets: &RefCell<Vec<usize>>,
    touched: &mut Vec<usize>,
) {
    let mut targets = targets.borrow_mut();
    if targets.is_empty() {
        drain_live(receivers);
    } else {
        touched.append(&mut targets);
        drain_live_touched(receivers, touched);
    }
}

/// The C side's [`drain_native`].
fn drain_c(c: &CSide, targets: &RefCell<Vec<usize>>, touched: &mut Vec<usize>) {
    let mut targets = targets.borrow_mut();
    if targets.is_empty() {
        c.drain_all();
    } else {
        touched.append(&mut targets);
        c.drain_touched(touched);
    }
}
