//! What the C ABI keeps behind its handles.

use std::collections::HashMap;
use std::ffi::c_char;
use std::time::Duration;

use crate::ffi::fjall_store::{lc_fjall_store, FjallStoreEntry};
use crate::ffi::handles::{handle_kinds, Handle, HandleTable};
use crate::ffi::status::{lc_status, FfiError};
use crate::ffi::types::{
    lc_failover_report, lc_manager, lc_notification, lc_records, lc_subscription_result,
    lc_topic_batch, lc_topic_names, lc_topic_routes,
};
use crate::sync::{
    lock, read, write, Arc, ArcSwap, AtomicBool, AtomicU64, AtomicUsize, LazyLock, Mutex,
    MutexGuard, OnceLock, Ordering, RwLock, TryLockError,
};
use crate::{
    CheckerHandle, ConnectionId, ConnectionRegistration, ConnectionsManager, ConsumeBatch,
    EventReceiver, FailoverReport, LiveQueryId, LiveQueryRecord, ManualClock, Notification,
    NotificationReceiver, ReadyConnections, ReceiveError, SubscriptionResult, TableId,
    TopicRouteInfo,
};

handle_kinds! {
    Manager = 1: lc_manager => Arc<ManagerEntry>, MANAGERS;
    Notification = 2: lc_notification => NotificationEntry, NOTIFICATIONS;
    SubscriptionResult = 3: lc_subscription_result => Arc<SubscriptionResultEntry>, SUBSCRIPTION_RESULTS;
    Records = 4: lc_records => Arc<Box<[RecordEntry]>>, RECORDS;
    FailoverReport = 5: lc_failover_report => Arc<FailoverEntry>, FAILOVER_REPORTS;
    TopicBatch = 6: lc_topic_batch => Arc<TopicBatchEntry>, TOPIC_BATCHES;
    TopicNames = 7: lc_topic_names => Arc<Box<[CText]>>, TOPIC_NAME_LISTS;
    TopicRoutes = 8: lc_topic_routes => Arc<Box<[RouteEntry]>>, TOPIC_ROUTE_LISTS;
    FjallStore = 9: lc_fjall_store => Arc<FjallStoreEntry>, FJALL_STORES;
}

/// How long a "forever" wait on the ready queue sleeps between checks that its manager is
/// still there: a freed manager ends the wait within this. (Receives on a connection need
/// no such slices: closing a connection wakes both of its channels.)
pub(crate) const WAIT_SLICE: Duration = Duration::from_millis(100);

/// A manager and what the C ABI needs around it.
pub(crate) struct ManagerEntry {
    pub(crate) manager: Arc<ConnectionsManager>,
    /// Each registered connection's receivers, by id.
    pub(crate) connections: RwLock<HashMap<ConnectionId, Arc<ConnectionEntry>>>,
    /// The tables registered through this handle, by key and by id: read on every publish
    /// without a lock; written under `tables_writer`. (The core resolves keys itself, but
    /// only `pub(crate)`; until it offers a publish by key, the C side keeps this map.)
    tables: ArcSwap<TableKeys>,
    tables_writer: Mutex<()>,
    /// Held across a table's registration (or drop) in the core and the update of
    /// `tables`, so two registrations of one table cannot leave the core with one schema
    /// and `tables` with the other's column count.
    pub(crate) table_changes: Mutex<()>,
    pub(crate) ready: Option<ReadyConnections>,
    pub(crate) clock: Option<Arc<ManualClock>>,
    pub(crate) checker: Mutex<Option<CheckerHandle>>,
    /// Set by `lc_manager_free`: waits in other threads end with `LC_CLOSED`.
    pub(crate) freed: AtomicBool,
}

impl ManagerEntry {
    pub(crate) fn new(
        manager: ConnectionsManager,
        clock: Option<Arc<ManualClock>>,
        checker_interval: Option<Duration>,
    ) -> Self {
        let manager = Arc::new(manager);
        let checker = checker_interval.map(|interval| manager.spawn_checker(interval));
        Self {
            ready: manager.ready_connections(),
            manager,
            connections: RwLock::new(HashMap::new()),
            tables: ArcSwap::from_pointee(TableKeys::default()),
            tables_writer: Mutex::new(()),
            table_changes: Mutex::new(()),
            clock,
            checker: Mutex::new(checker),
            freed: AtomicBool::new(false),
        }
    }

    /// The receivers of a registered connection.
    pub(crate) fn connection(&self, id: u64) -> Result<Arc<ConnectionEntry>, FfiError> {
        read(&self.connections)
            .get(&ConnectionId(id))
            .cloned()
            .ok_or_else(|| {
                // A call that found the manager just before lc_manager_free emptied the
                // map: the connection was closed, not unknown (lc_manager_free's guarantee).
                if self.is_freed() {
                    return FfiError::new(lc_status::LC_CLOSED, "the manager was freed");
                }
                FfiError::new(
                    lc_status::LC_ERR_UNKNOWN_CONNECTION,
                    format!("unknown connection {id} (never registered, or unregistered)"),
                )
            })
    }

    pub(crate) fn add_connection(&self, registration: ConnectionRegistration) -> u64 {
        let id = registration.connection_id;
        let entry = Arc::new(ConnectionEntry {
            notifications: Mutex::new(registration.notifications),
            events: Mutex::new(registration.events),
            removed: AtomicBool::new(false),
            arming: AtomicUsize::new(0),
            arms_started: AtomicU64::new(0),
        });
        // Armed from the start, so the first delivery or event queues it.
        if let Ok(receiver) = entry.notifications.try_lock() {
            receiver.arm_ready();
        }
        write(&self.connections).insert(id, entry);
        id.0
    }

    pub(crate) fn remove_connection(&self, id: u64) -> Option<Arc<ConnectionEntry>> {
        let entry = write(&self.connections).remove(&ConnectionId(id))?;
        entry.removed.store(true, Ordering::Release);
        Some(entry)
    }

    /// The table id behind a key from `lc_table_register`.
    pub(crate) fn table_id(&self, key: u32) -> Result<TableId, FfiError> {
        self.table(key).map(|table| table.id)
    }

    /// The table behind a key from `lc_table_register`.
    pub(crate) fn table(&self, key: u32) -> Result<RegisteredTable, FfiError> {
        let tables = self.tables.load();
        tables
            .ids
            .get(key as usize)
            .cloned()
            .flatten()
            .ok_or_else(|| {
                FfiError::new(
                    lc_status::LC_ERR_UNKNOWN_TABLE,
                    format!("no table was registered under key {key}"),
                )
            })
    }

    /// The key `lc_table_register` gave a table, if it was registered through this handle.
    pub(crate) fn table_key(&self, table_id: &TableId) -> Option<u32> {
        self.tables.load().keys.get(table_id).copied()
    }

    /// Remembers the table a key was given to.
    pub(crate) fn remember_table(&self, key: u32, table: RegisteredTable) {
        self.update_tables(|tables| {
            let index = key as usize;
            if tables.ids.len() <= index {
                tables.ids.resize(index + 1, None);
            }
            let id = table.id.clone();
            if let Some(previous) = tables.ids[index].replace(table) {
                tables.keys.remove(&previous.id);
            }
            tables.keys.insert(id, key);
        });
    }

    /// Forgets a dropped table's key.
    pub(crate) fn forget_table(&self, key: u32) {
        self.update_tables(|tables| {
            if let Some(previous) = tables.ids.get_mut(key as usize).and_then(Option::take) {
                tables.keys.remove(&previous.id);
            }
        });
    }

    fn update_tables(&self, change: impl FnOnce(&mut TableKeys)) {
        let _writer = lock(&self.tables_writer);
        let mut tables = self.tables.load().as_ref().clone();
        change(&mut tables);
        self.tables.store(Arc::new(tables));
    }

    pub(crate) fn is_freed(&self) -> bool {
        self.freed.load(Ordering::Acquire)
    }

    /// Ends the manager for the C side: waits end, connections are unregistered (which
    /// wakes their receivers), the background checker stops.
    pub(crate) fn close(&self) {
        self.freed.store(true, Ordering::Release);
        let connections: Vec<_> = write(&self.connections).drain().collect();
        for (id, entry) in connections {
            entry.removed.store(true, Ordering::Release);
            let _ = self.manager.unregister_connection(id);
        }
        let checker = crate::sync::lock(&self.checker).take();
        drop(checker);
    }
}

/// The tables a manager handle registered: ids by key (a vector, as keys are small and
/// dense) and keys by id (for route lists, which name their table by id).
#[derive(Clone, Default)]
pub(crate) struct TableKeys {
    ids: Vec<Option<RegisteredTable>>,
    keys: HashMap<TableId, u32>,
}

/// What a C call needs of a table it names by key.
#[derive(Clone)]
pub(crate) struct RegisteredTable {
    pub(crate) id: TableId,
    /// The columns a row of it must hold (checked before a C row is read).
    pub(crate) columns: usize,
    /// Whether a change's owner is read.
    pub(crate) user_scoped: bool,
}

/// One connection's receivers. Each is used by one consumer at a time: a second thread
/// gets `LC_ERR_RECEIVER_BUSY` instead of waiting behind the first.
pub(crate) struct ConnectionEntry {
    pub(crate) notifications: Mutex<NotificationReceiver>,
    pub(crate) events: Mutex<EventReceiver>,
    /// Set when the host unregistered the connection (or freed the manager).
    pub(crate) removed: AtomicBool,
    /// `lc_connection_arm_ready` calls in progress, from before they take the
    /// notification receiver to after they let it go: once armed (or already armed), the
    /// connection's id can reach another waiter before the arming thread lets go.
    arming: AtomicUsize,
    /// `lc_connection_arm_ready` calls started, ever: a receive that found the receiver
    /// held tells by it whether an arming call may have held it meanwhile.
    arms_started: AtomicU64,
}

/// Counts an arming call in progress for as long as it lives (a panic included).
struct Arming<'a>(&'a ConnectionEntry);

impl<'a> Arming<'a> {
    fn begin(entry: &'a ConnectionEntry) -> Self {
        entry.arms_started.fetch_add(1, Ordering::SeqCst);
        entry.arming.fetch_add(1, Ordering::SeqCst);
        Self(entry)
    }
}

impl Drop for Arming<'_> {
    fn drop(&mut self) {
        self.0.arming.fetch_sub(1, Ordering::SeqCst);
    }
}

impl ConnectionEntry {
    pub(crate) fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    /// Takes the notification receiver for one consumer, or reports that another thread
    /// is receiving. A thread that is only arming the connection is waited for (it lets
    /// go at once): a waiter handed the id by the ready queue would otherwise get
    /// `LC_ERR_RECEIVER_BUSY` and, taking it for another consumer's, leave the
    /// connection's notifications unread, off the queue.
    pub(crate) fn take_notifications(
        &self,
        connection_id: u64,
    ) -> Result<MutexGuard<'_, NotificationReceiver>, FfiError> {
        loop {
            // An arming call counts itself (in both counters) before it takes the
            // receiver and stops counting after it lets go, so one that held the receiver
            // when the take failed was in progress at the first reading, or started
            // between the readings: busy means another consumer only if neither.
            let started = self.arms_started.load(Ordering::SeqCst);
            let arming_before = self.arming.load(Ordering::SeqCst);
            match take_receiver(&self.notifications, connection_id) {
                Err(error) if error.status == lc_status::LC_ERR_RECEIVER_BUSY => {
                    let arming_after = self.arming.load(Ordering::SeqCst);
                    let started_after = self.arms_started.load(Ordering::SeqCst);
                    if arming_before == 0 && arming_after == 0 && started == started_after {
                        return Err(error);
                    }
                    std::thread::yield_now()
                }
                taken => return taken,
            }
        }
    }

    /// Arms the connection on the ready queue (see `lc_connection_arm_ready`).
    pub(crate) fn arm_ready(&self, connection_id: u64) -> Result<(), FfiError> {
        // Counted before the receiver is taken (the connection may be armed already, so a
        // publish can queue its id at any moment) until after it is let go.
        let _arming = Arming::begin(self);
        let receiver = take_receiver(&self.notifications, connection_id)?;
        receiver.arm_ready();
        drop(receiver);
        Ok(())
    }
}

/// Takes a receiver for one consumer, or reports that another thread has it.
pub(crate) fn take_receiver<'a, T>(
    mutex: &'a Mutex<T>,
    connection_id: u64,
) -> Result<MutexGuard<'a, T>, FfiError> {
    match mutex.try_lock() {
        Ok(guard) => Ok(guard),
        // A panic while receiving left no broken state behind (receivers keep their
        // invariants between steps): go on with it, and clear the poison so the lock is
        // as it was.
        Err(TryLockError::Poisoned(poisoned)) => {
            mutex.clear_poison();
            Ok(poisoned.into_inner())
        }
        Err(TryLockError::WouldBlock) => Err(FfiError::new(
            lc_status::LC_ERR_RECEIVER_BUSY,
            format!(
                "another thread is receiving on connection {connection_id}: one consumer at a time"
            ),
        )),
    }
}

/// Maps a receive outcome to its status.
pub(crate) fn receive_status(error: ReceiveError) -> lc_status {
    match error {
        ReceiveError::Empty => lc_status::LC_EMPTY,
        ReceiveError::Timeout => lc_status::LC_TIMEOUT,
        ReceiveError::Closed => lc_status::LC_CLOSED,
    }
}

/// The bytes of a JSON text cached in `cell` (built by `build` on first use), with their
/// length without the trailing NUL.
pub(crate) fn cached_json(
    cell: &OnceLock<Box<[u8]>>,
    build: impl FnOnce(&mut Vec<u8>),
) -> (*const c_char, usize) {
    json_parts(cell.get_or_init(|| json_bytes(build)))
}

/// A JSON text written by `build`, followed by a NUL.
pub(crate) fn json_bytes(build: impl FnOnce(&mut Vec<u8>)) -> Box<[u8]> {
    let mut bytes = Vec::with_capacity(128);
    build(&mut bytes);
    bytes.push(0);
    bytes.into_boxed_slice()
}

/// Where NUL-terminated JSON bytes start, and their length without the NUL.
pub(crate) fn json_parts(bytes: &[u8]) -> (*const c_char, usize) {
    (bytes.as_ptr().cast::<c_char>(), bytes.len() - 1)
}

/// A received notification, and its JSON once asked for.
pub(crate) struct NotificationEntry {
    pub(crate) notification: Notification,
    /// The JSON form with a trailing NUL, built on first request.
    pub(crate) json: OnceLock<Box<[u8]>>,
    /// The projected column names as C text, built on first request.
    pub(crate) columns: OnceLock<Box<[CText]>>,
}

impl NotificationEntry {
    pub(crate) fn new(notification: Notification) -> Self {
        Self {
            notification,
            json: OnceLock::new(),
            columns: OnceLock::new(),
        }
    }
}

/// The outcome of a subscribe, as the C side reads it.
pub(crate) struct SubscriptionResultEntry {
    pub(crate) result: SubscriptionResult,
    /// The projected column names as C text.
    pub(crate) columns: Box<[CText]>,
}

impl SubscriptionResultEntry {
    pub(crate) fn new(result: SubscriptionResult) -> Self {
        let columns = result.columns.iter().map(|name| CText::new(name)).collect();
        Self { result, columns }
    }
}

/// A consumed batch of topic messages, and the JSON of its messages once asked for.
pub(crate) struct TopicBatchEntry {
    pub(crate) batch: ConsumeBatch,
    /// Per message, built on first request.
    pub(crate) json: Box<[MessageJson]>,
    /// True for a batch of `lc_topic_read`: read outside any group, nothing to commit.
    pub(crate) from_read: bool,
}

/// The JSON forms of one topic message, each with a trailing NUL.
#[derive(Default)]
pub(crate) struct MessageJson {
    /// The whole message.
    pub(crate) message: OnceLock<Box<[u8]>>,
    /// Its row (row changes).
    pub(crate) row: OnceLock<Box<[u8]>>,
    /// Its old row (row changes the engine published as updates).
    pub(crate) old_row: OnceLock<Box<[u8]>>,
}

impl TopicBatchEntry {
    pub(crate) fn new(batch: ConsumeBatch) -> Self {
        let json = (0..batch.messages.len())
            .map(|_| MessageJson::default())
            .collect();
        Self {
            batch,
            json,
            from_read: false,
        }
    }

    /// A batch of messages read outside any group.
    pub(crate) fn read(batch: ConsumeBatch) -> Self {
        Self {
            from_read: true,
            ..Self::new(batch)
        }
    }
}

/// One route of a route list, with the C text its `lc_topic_route_info` points at.
pub(crate) struct RouteEntry {
    pub(crate) info: TopicRouteInfo,
    pub(crate) table_key: Option<u32>,
    pub(crate) namespace: CText,
    pub(crate) name: CText,
    pub(crate) filter: Option<CText>,
    pub(crate) key_column: Option<CText>,
    pub(crate) broken: Option<CText>,
    /// The projected columns; `None` for every column.
    pub(crate) columns: Option<Box<[CText]>>,
}

/// A live-query record, with the C text its `lc_live_query_record` points at.
pub(crate) struct RecordEntry {
    pub(crate) record: LiveQueryRecord,
    pub(crate) table_namespace: CText,
    pub(crate) table_name: CText,
    pub(crate) user_id: Option<CText>,
    /// The query as SQL text (rendered once, when the record is taken).
    pub(crate) query: CText,
}

impl RecordEntry {
    pub(crate) fn new(record: LiveQueryRecord) -> Self {
        Self {
            table_namespace: CText::new(record.table_id.namespace()),
            table_name: CText::new(record.table_id.name()),
            user_id: record
                .user_id
                .as_ref()
                .map(|user| CText::new(user.as_str())),
            query: CText::new(&record.query.to_sql()),
            record,
        }
    }
}

/// A failover report, with its records and reasons as C text.
pub(crate) struct FailoverEntry {
    pub(crate) orphaned: Box<[RecordEntry]>,
    pub(crate) stale: Box<[RecordEntry]>,
    pub(crate) removed: Box<[LiveQueryId]>,
    pub(crate) failed: Box<[(LiveQueryId, CText)]>,
}

impl FailoverEntry {
    pub(crate) fn new(report: FailoverReport) -> Self {
        let records = |list: Vec<LiveQueryRecord>| list.into_iter().map(RecordEntry::new).collect();
        Self {
            orphaned: records(report.orphaned),
            stale: records(report.stale),
            removed: report.removed.into(),
            failed: report
                .failed
                .into_iter()
                .map(|(id, reason)| (id, CText::new(&reason.to_string())))
                .collect(),
        }
    }
}

/// A string handed to C, following the one rule for every string livecore returns: C gets
/// a pointer to UTF-8 followed by a NUL, and its length in bytes (without the NUL). A NUL
/// inside (possible only in names given to the Rust API) stays; the length tells the truth.
pub(crate) struct CText(Box<[u8]>);

impl CText {
    pub(crate) fn new(text: &str) -> Self {
        let mut bytes = Vec::with_capacity(text.len() + 1);
        bytes.extend_from_slice(text.as_bytes());
        bytes.push(0);
        Self(bytes.into_boxed_slice())
    }

    /// The NUL-terminated text; valid as long as `self`.
    pub(crate) fn as_ptr(&self) -> *const c_char {
        self.0.as_ptr().cast::<c_char>()
    }

    /// Its length in bytes, without the NUL.
    pub(crate) fn len(&self) -> usize {
        self.0.len() - 1
    }
}

/// The pointer and length of optional text: NULL and 0 without it.
pub(crate) fn optional_text(text: Option<&CText>) -> (*const c_char, usize) {
    text.map_or((std::ptr::null(), 0), |text| (text.as_ptr(), text.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receiver_poisoned_by_a_panic_is_taken_and_its_poison_cleared() {
        let mutex = Mutex::new(7);
        let poisoner = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = take_receiver(&mutex, 1).unwrap();
            panic!("unwinding with the receiver taken");
        }));
        assert!(poisoner.is_err());
        assert!(mutex.is_poisoned());
        assert_eq!(*take_receiver(&mutex, 1).unwrap(), 7);
        assert!(!mutex.is_poisoned());
        let _held = take_receiver(&mutex, 1).unwrap();
        let busy = std::thread::scope(|scope| {
            scope
                .spawn(|| take_receiver(&mutex, 1).err().map(|error| error.status))
                .join()
                .unwrap()
        });
        assert_eq!(busy, Some(lc_status::LC_ERR_RECEIVER_BUSY));
    }

    #[test]
    fn a_receiver_held_to_arm_the_connection_is_waited_for_not_busy() {
        let manager = crate::ConnectionsManager::new(crate::ManagerConfig::default()).unwrap();
        let registration = manager.register_connection().unwrap();
        let entry = ConnectionEntry {
            notifications: Mutex::new(registration.notifications),
            events: Mutex::new(registration.events),
            removed: AtomicBool::new(false),
            arming: AtomicUsize::new(0),
            arms_started: AtomicU64::new(0),
        };
        let taken_meanwhile = |entry: &ConnectionEntry| {
            std::thread::scope(|scope| {
                scope
                    .spawn(|| entry.take_notifications(1).map(drop).map_err(|e| e.status))
                    .join()
                    .unwrap()
            })
        };
        // Held by another consumer: busy at once.
        let receiving = take_receiver(&entry.notifications, 1).unwrap();
        assert_eq!(
            taken_meanwhile(&entry),
            Err(lc_status::LC_ERR_RECEIVER_BUSY)
        );
        drop(receiving);
        // Held to arm (as `arm_ready` holds it): the taker waits until it is let go.
        let arming = Arming::begin(&entry);
        let held = take_receiver(&entry.notifications, 1).unwrap();
        std::thread::scope(|scope| {
            let taker = scope.spawn(|| entry.take_notifications(1).map(drop).map_err(|e| e.status));
            std::thread::sleep(Duration::from_millis(20));
            drop(held);
            drop(arming);
            assert_eq!(taker.join().unwrap(), Ok(()));
        });
        // An arming call that ended before the take: held by another consumer, busy.
        let receiving = take_receiver(&entry.notifications, 1).unwrap();
        drop(Arming::begin(&entry));
        assert_eq!(
            taken_meanwhile(&entry),
            Err(lc_status::LC_ERR_RECEIVER_BUSY)
        );
        drop(receiving);
        assert!(entry.arm_ready(1).is_ok());
        assert_eq!(entry.arming.load(Ordering::SeqCst), 0);
        // A refused arming call (the receiver held) stops counting too.
        let receiving = take_receiver(&entry.notifications, 1).unwrap();
        assert!(entry.arm_ready(1).is_err());
        assert_eq!(entry.arming.load(Ordering::SeqCst), 0);
        drop(receiving);
    }
}
