//! The initial load: a client subscribes while commits keep arriving, and must see the
//! snapshot plus every later change exactly once.
//!
//! The host's protocol: subscribe gated (`with_initial_load`), read the snapshot from the
//! engine and tell livecore the SeqId it reflects (`set_snapshot_boundary`), push the
//! snapshot's rows through livecore (filtered, projected, batched), then
//! `complete_initial_load`. Commits published meanwhile are buffered in the gate; those at
//! or below the boundary are dropped (the snapshot has them), the rest follow the load.
//!
//! `cargo run --example initial_load`

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use livecore::*;

/// The writer's cap (it stops earlier, soon after the load completes).
const MAX_COMMITS: u64 = 50_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manager = Arc::new(ConnectionsManager::new(ManagerConfig {
        gate_buffer_capacity: MAX_COMMITS as usize,
        notification_channel_capacity: MAX_COMMITS as usize + 16,
        ..ManagerConfig::default()
    })?);
    let counters = TableId::new("app", "counters");
    manager.register_table(TableSchema::new(
        counters.clone(),
        TableScope::Shared,
        ["id", "value"],
    ))?;

    // The "engine": a table of 10 counters, each commit bumps one, under one lock so a
    // snapshot and its SeqId agree.
    let engine: Arc<Mutex<(u64, BTreeMap<i64, i64>)>> =
        Arc::new(Mutex::new((0, (0..10).map(|id| (id, 0)).collect())));
    let published = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (manager, engine, counters, published, stop) = (
            manager.clone(),
            engine.clone(),
            counters.clone(),
            published.clone(),
            stop.clone(),
        );
        thread::spawn(move || -> Result<(), LiveError> {
            // Keeps committing until told to stop: before, during and after the client's load.
            for seq in 1..=MAX_COMMITS {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                let mut state = engine.lock().unwrap();
                let id = (seq % 10) as i64;
                let old = state.1[&id];
                state.1.insert(id, old + 1);
                state.0 = seq;
                let row = |value| Row::new(vec![Value::Int(id), Value::Int(value)]);
                // Published under the engine's lock: commits reach livecore in SeqId order.
                manager.publish(
                    SeqId(seq),
                    ChangeNotification::update(counters.clone(), row(old), row(old + 1)),
                )?;
                drop(state);
                published.store(seq, Ordering::Release);
            }
            Ok(())
        })
    };

    // A client subscribes mid-stream.
    while published.load(Ordering::Acquire) < 500 {
        thread::yield_now();
    }
    let mut connection = manager.register_connection()?;
    manager.authenticate(connection.connection_id, UserId::from("reader"), None)?;
    let sub = manager.subscribe_sql(
        connection.connection_id,
        "SELECT id, value FROM app.counters WHERE id < 5",
        SubscriptionOptions::with_initial_load(),
    )?;
    assert!(sub.gated);
    // The snapshot, read after subscribing: whatever commits it reflects are covered.
    let (boundary, snapshot) = {
        let state = engine.lock().unwrap();
        (state.0, state.1.clone())
    };
    manager.set_snapshot_boundary(sub.live_query_id, SeqId(boundary))?;
    let rows: Vec<Row> = snapshot
        .iter()
        .map(|(id, value)| Row::new(vec![Value::Int(*id), Value::Int(*value)]))
        .collect();
    manager.push_snapshot_rows(sub.live_query_id, &rows)?;
    let report = manager.complete_initial_load(sub.live_query_id)?;
    // A few more commits after the load, then stop the engine.
    let loaded_at = published.load(Ordering::Acquire);
    while published.load(Ordering::Acquire) < loaded_at + 100 && !writer.is_finished() {
        thread::yield_now();
    }
    stop.store(true, Ordering::Release);
    let last = {
        writer.join().unwrap()?;
        published.load(Ordering::Acquire)
    };

    // The client's view: the snapshot, then each later change applied once.
    let mut view: BTreeMap<i64, i64> = BTreeMap::new();
    let mut last_seq = boundary;
    let mut loaded = false;
    while let Ok(notification) = connection.notifications.try_recv() {
        match notification {
            Notification::Snapshot(batch) => {
                for row in batch.rows() {
                    let (Value::Int(id), Value::Int(value)) = (row.value(0), row.value(1)) else {
                        unreachable!()
                    };
                    view.insert(*id, *value);
                }
            }
            Notification::InitialLoadComplete { boundary: b, .. } => {
                assert_eq!(b, Some(SeqId(boundary)));
                loaded = true;
            }
            Notification::Changes(changes) => {
                assert!(loaded, "live changes come after the load completes");
                assert!(changes.seq().0 > last_seq, "each commit once, in order");
                last_seq = changes.seq().0;
                for change in changes.changes() {
                    let (Value::Int(id), Value::Int(value)) =
                        (change.row().value(0), change.row().value(1))
                    else {
                        unreachable!()
                    };
                    // The update applies to exactly the value the client holds.
                    let old = change.old_row().expect("an update");
                    assert_eq!(
                        view.get(id),
                        Some(match old.value(1) {
                            Value::Int(v) => v,
                            _ => unreachable!(),
                        })
                    );
                    view.insert(*id, *value);
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let engine_view: BTreeMap<i64, i64> = engine
        .lock()
        .unwrap()
        .1
        .clone()
        .into_iter()
        .filter(|(id, _)| *id < 5)
        .collect();
    assert_eq!(
        view, engine_view,
        "snapshot + changes = the engine's final state"
    );
    assert!(last > boundary, "commits also came after the snapshot");
    println!(
        "initial_load: snapshot at SeqId {boundary} of {last}; {} deliveries buffered during the load \
         ({} covered by the snapshot, dropped); the client's view matches the engine",
        report.flushed + report.covered_by_snapshot,
        report.covered_by_snapshot
    );
    Ok(())
}
