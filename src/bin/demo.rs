//! livecore end to end: a small "engine" (an in-memory store that commits, then notifies)
//! publishes a stream of commits to thousands of connections with filtered subscriptions,
//! some of them loading an initial snapshot while the stream runs. Consumer threads drain
//! the connections' receivers. The demo computes what each subscription should receive
//! with its own evaluator, independent of livecore's, and exits non-zero on any difference.
//!
//! `cargo run --release --bin demo -- [--connections N] [--commits N] [--seed N]`

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use livecore::*;

const ROOMS: i64 = 50;
const USERS: usize = 200;

fn messages() -> TableId {
    TableId::new("chat", "messages")
}

fn notes() -> TableId {
    TableId::new("app", "notes")
}

/// The demo's own view of a row: (id, key, text) where key is `room` for messages and
/// `amount` for notes; notes also have an owner.
#[derive(Clone, Debug, PartialEq)]
struct DemoRow {
    id: i64,
    key: i64,
    text: String,
    owner: Option<usize>,
}

impl DemoRow {
    fn to_row(&self) -> Row {
        Row::new(vec![
            Value::Int(self.id),
            Value::Int(self.key),
            Value::text(&self.text),
        ])
    }
}

#[derive(Clone, Debug)]
enum DemoChange {
    Insert(DemoRow),
    Update(DemoRow, DemoRow),
    Delete(DemoRow),
}

#[derive(Clone, Copy, Debug)]
enum Table {
    Messages,
    Notes,
}

/// What a subscription asks for, in the demo's own terms.
#[derive(Clone, Debug)]
enum Want {
    /// Messages in one room.
    Room(i64),
    /// Messages in a set of rooms whose text does not start with "spam".
    RoomsNotSpam(Vec<i64>),
    /// Every message, only the id and body columns.
    AllMessagesProjected,
    /// The connection user's notes with amount above a threshold.
    MyNotesAbove(usize, i64),
}

impl Want {
    fn table(&self) -> Table {
        match self {
            Want::MyNotesAbove(..) => Table::Notes,
            _ => Table::Messages,
        }
    }

    fn matches(&self, row: &DemoRow) -> bool {
        match self {
            Want::Room(room) => row.key == *room,
            Want::RoomsNotSpam(rooms) => rooms.contains(&row.key) && !row.text.starts_with("spam"),
            Want::AllMessagesProjected => true,
            Want::MyNotesAbove(user, threshold) => row.owner == Some(*user) && row.key > *threshold,
        }
    }

    fn spec(&self) -> QuerySpec {
        match self {
            Want::Room(room) => {
                QuerySpec::table(messages()).filter(Expr::col("room").eq(Expr::lit(*room)))
            }
            Want::RoomsNotSpam(rooms) => QuerySpec::table(messages()).filter(
                Expr::col("room")
                    .in_list(rooms.iter().copied())
                    .and(Expr::col("body").like("spam%").not()),
            ),
            Want::AllMessagesProjected => {
                QuerySpec::table(messages()).project(Projection::columns(["id", "body"]))
            }
            Want::MyNotesAbove(_, threshold) => {
                QuerySpec::table(notes()).filter(Expr::col("amount").gt(Expr::lit(*threshold)))
            }
        }
    }

    /// The change type the subscriber should see for a change, if any.
    fn expect(&self, change: &DemoChange) -> Option<ChangeType> {
        match change {
            DemoChange::Insert(row) => self.matches(row).then_some(ChangeType::Insert),
            DemoChange::Delete(row) => self.matches(row).then_some(ChangeType::Delete),
            DemoChange::Update(old, new) => match (self.matches(old), self.matches(new)) {
                (true, true) => Some(ChangeType::Update),
                (false, true) => Some(ChangeType::Insert),
                (true, false) => Some(ChangeType::Delete),
                (false, false) => None,
            },
        }
    }
}

/// The demo engine: tables in memory, a commit counter, and a log of what it committed.
struct Engine {
    seq: u64,
    messages: BTreeMap<i64, DemoRow>,
    notes: BTreeMap<i64, DemoRow>,
    log: Vec<(u64, Vec<(Table, DemoChange)>)>,
}

/// A tiny deterministic generator (xorshift), so runs are reproducible from `--seed`.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

impl Engine {
    /// Makes one commit of 1-4 changes, applies it, and returns livecore's form of it.
    fn commit(&mut self, random: &mut Random) -> (u64, Vec<ChangeNotification>) {
        self.seq += 1;
        let mut demo_changes = Vec::new();
        let mut notifications = Vec::new();
        for _ in 0..=random.below(4) {
            let table = if random.below(4) == 0 {
                Table::Notes
            } else {
                Table::Messages
            };
            let store = match table {
                Table::Messages => &mut self.messages,
                Table::Notes => &mut self.notes,
            };
            let id = random.below(2_000) as i64;
            let fresh = |random: &mut Random| DemoRow {
                id,
                key: match table {
                    Table::Messages => random.below(ROOMS as u64) as i64,
                    Table::Notes => random.below(100) as i64,
                },
                text: if random.below(5) == 0 {
                    format!("spam {id}")
                } else {
                    format!("text {id}")
                },
                owner: matches!(table, Table::Notes).then(|| random.below(USERS as u64) as usize),
            };
            let change = match store.get(&id).cloned() {
                None => {
                    let row = fresh(random);
                    store.insert(id, row.clone());
                    DemoChange::Insert(row)
                }
                Some(old) if random.below(3) == 0 => {
                    store.remove(&id);
                    DemoChange::Delete(old)
                }
                Some(old) => {
                    let mut new = fresh(random);
                    new.owner = old.owner;
                    store.insert(id, new.clone());
                    DemoChange::Update(old, new)
                }
            };
            let table_id = match table {
                Table::Messages => messages(),
                Table::Notes => notes(),
            };
            let mut notification = match &change {
                DemoChange::Insert(row) => ChangeNotification::insert(table_id, row.to_row()),
                DemoChange::Update(old, new) => {
                    ChangeNotification::update(table_id, old.to_row(), new.to_row())
                }
                DemoChange::Delete(row) => ChangeNotification::delete(table_id, row.to_row()),
            };
            let (DemoChange::Insert(row) | DemoChange::Update(_, row) | DemoChange::Delete(row)) =
                &change;
            if let Some(owner) = row.owner {
                notification = notification.owned_by(user_name(owner).as_str());
            }
            demo_changes.push((table, change));
            notifications.push(notification);
        }
        self.log.push((self.seq, demo_changes));
        (self.seq, notifications)
    }
}

fn user_name(user: usize) -> String {
    format!("user{user}")
}

/// One subscription of the demo, and what it received.
struct Watch {
    want: Want,
    live_query_id: LiveQueryId,
    /// Commits at or below this SeqId are covered by the snapshot (0 when none).
    boundary: u64,
    snapshot_rows_expected: u64,
    received: Mutex<Received>,
}

#[derive(Default, Debug, PartialEq)]
struct Received {
    changes: BTreeMap<(u64, usize), ChangeType>,
    snapshot_rows: u64,
    gaps: u64,
    out_of_order: u64,
    last_seq: u64,
}

struct Args {
    connections: usize,
    commits: u64,
    seed: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        connections: 5_000,
        commits: 10_000,
        seed: 0x9E37_79B9_7F4A_7C15,
    };
    let mut words = std::env::args().skip(1);
    while let Some(word) = words.next() {
        let mut value = || {
            words
                .next()
                .and_then(|value| value.parse::<u64>().ok())
                .ok_or_else(|| format!("{word} needs a number"))
        };
        match word.as_str() {
            "--connections" => args.connections = value()? as usize,
            "--commits" => args.commits = value()?,
            "--seed" => args.seed = value()?.max(1),
            other => {
                return Err(format!(
                    "unknown argument {other}; use --connections, --commits, --seed"
                ))
            }
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("demo: {message}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("demo: FAILED: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let manager = Arc::new(
        ConnectionsManager::new(ManagerConfig {
            max_connections: args.connections + 10,
            max_subscriptions_per_connection: 4,
            // Large enough that any gap is a failure of the demo.
            notification_channel_capacity: 1 << 16,
            gate_buffer_capacity: 1 << 20,
            ..ManagerConfig::default()
        })
        .map_err(|error| error.to_string())?,
    );
    manager
        .register_table(TableSchema::new(
            messages(),
            TableScope::Shared,
            ["id", "room", "body"],
        ))
        .map_err(|error| error.to_string())?;
    manager
        .register_table(TableSchema::new(
            notes(),
            TableScope::User,
            ["id", "amount", "title"],
        ))
        .map_err(|error| error.to_string())?;
    let engine = Arc::new(Mutex::new(Engine {
        seq: 0,
        messages: BTreeMap::new(),
        notes: BTreeMap::new(),
        log: Vec::new(),
    }));
    let mut random = Random(args.seed);

    // Connections and live subscriptions, before the stream starts.
    let mut receivers = Vec::new();
    let mut watches: Vec<Arc<Watch>> = Vec::new();
    let mut owners = Vec::new();
    for index in 0..args.connections {
        let registration = manager
            .register_connection()
            .map_err(|error| error.to_string())?;
        let user = index % USERS;
        manager
            .authenticate(
                registration.connection_id,
                UserId::new(user_name(user)),
                None,
            )
            .map_err(|error| error.to_string())?;
        owners.push((registration.connection_id, user));
        receivers.push(registration);
    }
    let pick_want = |random: &mut Random, user: usize| match random.below(4) {
        0 => Want::Room(random.below(ROOMS as u64) as i64),
        1 => Want::RoomsNotSpam((0..3).map(|_| random.below(ROOMS as u64) as i64).collect()),
        2 => Want::AllMessagesProjected,
        _ => Want::MyNotesAbove(user, random.below(100) as i64),
    };
    for &(connection_id, user) in &owners {
        if random.below(10) == 0 {
            continue; // this one subscribes with an initial load, later
        }
        let want = pick_want(&mut random, user);
        let result = manager
            .subscribe(connection_id, want.spec(), SubscriptionOptions::default())
            .map_err(|error| error.to_string())?;
        watches.push(Arc::new(Watch {
            want,
            live_query_id: result.live_query_id,
            boundary: 0,
            snapshot_rows_expected: 0,
            received: Mutex::new(Received::default()),
        }));
    }
    let loaders: Vec<(ConnectionId, usize, Want)> = owners
        .iter()
        .filter(|(connection_id, _)| {
            manager
                .subscriptions_of(*connection_id)
                .map(|s| s.is_empty())
                .unwrap_or(false)
        })
        .map(|&(connection_id, user)| (connection_id, user, pick_want(&mut random, user)))
        .collect();

    let watches = Arc::new(Mutex::new(watches));
    let done = Arc::new(AtomicBool::new(false));
    let consumers = spawn_consumers(receivers, watches.clone(), done.clone());

    // The stream of commits: commit in the engine, then notify livecore.
    let publisher = {
        let (manager, engine, commits) = (manager.clone(), engine.clone(), args.commits);
        std::thread::spawn(move || -> Result<Duration, String> {
            let mut random = Random(args_seed_for_publisher(commits));
            let mut busy = Duration::ZERO;
            for _ in 0..commits {
                let (seq, changes) = engine.lock().unwrap().commit(&mut random);
                let started = Instant::now();
                manager
                    .publish_commit(SeqId(seq), changes)
                    .map_err(|error| error.to_string())?;
                busy += started.elapsed();
            }
            Ok(busy)
        })
    };

    // Initial loads while the stream runs: indexed first, then the snapshot is read.
    for (connection_id, user, want) in loaders {
        std::thread::sleep(Duration::from_micros(200));
        let result = manager
            .subscribe(
                connection_id,
                want.spec(),
                SubscriptionOptions::with_initial_load(),
            )
            .map_err(|error| error.to_string())?;
        let (boundary, snapshot): (u64, Vec<DemoRow>) = {
            let engine = engine.lock().unwrap();
            let store = match want.table() {
                Table::Messages => &engine.messages,
                Table::Notes => &engine.notes,
            };
            (
                engine.seq,
                store
                    .values()
                    .filter(|row| row.owner.is_none() || row.owner == Some(user))
                    .cloned()
                    .collect(),
            )
        };
        let expected_rows = snapshot.iter().filter(|row| want.matches(row)).count() as u64;
        watches.lock().unwrap().push(Arc::new(Watch {
            want,
            live_query_id: result.live_query_id,
            boundary,
            snapshot_rows_expected: expected_rows,
            received: Mutex::new(Received::default()),
        }));
        let id = result.live_query_id;
        manager
            .set_snapshot_boundary(id, SeqId(boundary))
            .map_err(|error| error.to_string())?;
        let rows: Vec<Row> = snapshot.iter().map(DemoRow::to_row).collect();
        let mut offset = 0;
        while offset < rows.len() {
            match manager.push_snapshot_rows(id, &rows[offset..]) {
                Ok(_) => break,
                Err(LiveError::WouldBlock { consumed }) => {
                    offset += consumed;
                    std::thread::yield_now();
                }
                Err(error) => return Err(error.to_string()),
            }
        }
        loop {
            match manager.complete_initial_load(id) {
                Ok(_) => break,
                Err(LiveError::WouldBlock { .. }) => std::thread::yield_now(),
                Err(error) => return Err(error.to_string()),
            }
        }
    }

    let busy = publisher
        .join()
        .map_err(|_| "the publisher panicked".to_string())??;
    done.store(true, Ordering::SeqCst);
    let mut printed = Vec::new();
    for consumer in consumers {
        printed.extend(
            consumer
                .join()
                .map_err(|_| "a consumer panicked".to_string())?,
        );
    }
    for json in printed.iter().take(3) {
        println!("delivery: {json}");
    }

    let engine = engine.lock().unwrap();
    let watches = watches.lock().unwrap();
    let mut mismatches = Vec::new();
    let mut expected_total = 0u64;
    for watch in watches.iter() {
        let mut expected = BTreeMap::new();
        for (seq, changes) in &engine.log {
            if *seq <= watch.boundary {
                continue;
            }
            for (position, (table, change)) in changes.iter().enumerate() {
                if std::mem::discriminant(table) != std::mem::discriminant(&watch.want.table()) {
                    continue;
                }
                if let Some(change_type) = watch.want.expect(change) {
                    expected.insert((*seq, position), change_type);
                }
            }
        }
        expected_total += expected.len() as u64;
        let received = watch.received.lock().unwrap();
        if received.changes != expected
            || received.snapshot_rows != watch.snapshot_rows_expected
            || received.gaps > 0
            || received.out_of_order > 0
        {
            mismatches.push(format!(
                "{} ({:?}, boundary {}): expected {} changes and {} snapshot rows, got {} and {} ({} gaps, {} out of order)",
                watch.live_query_id,
                watch.want,
                watch.boundary,
                expected.len(),
                watch.snapshot_rows_expected,
                received.changes.len(),
                received.snapshot_rows,
                received.gaps,
                received.out_of_order,
            ));
        }
    }
    let stats = manager.stats();
    let changes: usize = engine.log.iter().map(|(_, changes)| changes.len()).sum();
    let loads = watches.iter().filter(|watch| watch.boundary > 0).count();
    println!(
        "{} connections, {} subscriptions ({} with initial loads), {} commits ({} changes) -> {} deliveries, {} changes checked against the demo's own evaluator",
        args.connections,
        watches.len(),
        loads,
        engine.log.len(),
        changes,
        stats.delivered,
        expected_total
    );
    println!(
        "throughput: {:.0} deliveries/s, {:.0} commits/s on the publishing thread ({:.3} s publishing)",
        stats.delivered as f64 / busy.as_secs_f64(),
        engine.log.len() as f64 / busy.as_secs_f64(),
        busy.as_secs_f64()
    );
    if stats.dropped > 0 {
        mismatches.push(format!("{} deliveries dropped", stats.dropped));
    }
    if mismatches.is_empty() {
        println!("OK: every subscription received exactly what it should");
        Ok(())
    } else {
        for mismatch in mismatches.iter().take(10) {
            eprintln!("mismatch: {mismatch}");
        }
        Err(format!("{} subscriptions differ", mismatches.len()))
    }
}

fn args_seed_for_publisher(commits: u64) -> u64 {
    0x2545_F491_4F6C_DD1D ^ commits
}

/// Two consumer threads drain the receivers round-robin, recording per subscription what
/// arrives. Each returns a few deliveries as JSON, for printing.
fn spawn_consumers(
    receivers: Vec<ConnectionRegistration>,
    watches: Arc<Mutex<Vec<Arc<Watch>>>>,
    done: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Vec<String>>> {
    let mut halves: Vec<Vec<ConnectionRegistration>> = vec![Vec::new(), Vec::new()];
    for (index, registration) in receivers.into_iter().enumerate() {
        halves[index % 2].push(registration);
    }
    halves
        .into_iter()
        .map(|mut registrations| {
            let (watches, done) = (watches.clone(), done.clone());
            std::thread::spawn(move || {
                let mut printed = Vec::new();
                let mut index_of: BTreeMap<LiveQueryId, Arc<Watch>> = BTreeMap::new();
                loop {
                    let finishing = done.load(Ordering::SeqCst);
                    let mut idle = true;
                    for registration in registrations.iter_mut() {
                        while let Ok(notification) = registration.notifications.try_recv() {
                            idle = false;
                            let id = notification.live_query_id();
                            if !index_of.contains_key(&id) {
                                for watch in watches.lock().unwrap().iter() {
                                    index_of.insert(watch.live_query_id, watch.clone());
                                }
                            }
                            let Some(watch) = index_of.get(&id) else {
                                panic!("a notification for unknown subscription {id}");
                            };
                            if printed.len() < 2 && matches!(notification, Notification::Changes(_))
                            {
                                printed.push(notification.to_json());
                            }
                            record(watch, &notification);
                        }
                    }
                    if finishing && idle {
                        return printed;
                    }
                    if idle {
                        std::thread::sleep(Duration::from_micros(100));
                    }
                }
            })
        })
        .collect()
}

fn record(watch: &Watch, notification: &Notification) {
    let mut received = watch.received.lock().unwrap();
    match notification {
        Notification::Changes(set) => {
            let seq = set.seq().0;
            if seq <= received.last_seq {
                received.out_of_order += 1;
            }
            received.last_seq = seq;
            for change in set.changes() {
                if received
                    .changes
                    .insert((seq, change.position()), change.change_type)
                    .is_some()
                {
                    received.out_of_order += 1;
                }
            }
        }
        Notification::Snapshot(batch) => received.snapshot_rows += batch.rows().len() as u64,
        Notification::Gap { .. } => received.gaps += 1,
        _ => {}
    }
}
