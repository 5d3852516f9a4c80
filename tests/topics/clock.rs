//! The manager clock: timers (leases, heartbeats, a parked consume's deadline) run on its
//! monotonic reading, records and reported times on its wall reading.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use livecore::*;

use crate::common::*;
use crate::support::*;

/// Bound for waiting on a parked consume to finish: far below its real-time timeout, so it
/// is met only if the clock step woke it.
const WOKEN_WITHIN: Duration = Duration::from_secs(10);

#[test]
fn a_wall_clock_step_expires_no_lease_and_times_out_no_connection() {
    let (manager, clock) = with_topic();
    publish_bytes(&manager, "events", 1, "m");
    let a = consumer(&manager, "a");
    let b = consumer(&manager, "b");
    let quiet = manager.register_connection().unwrap().connection_id;
    assert_eq!(
        offsets(
            &manager
                .consume(a, "events", "g", 10, Duration::ZERO)
                .unwrap()
        ),
        [(0, 0)]
    );
    let start = clock.now_ms();
    let expires = manager.group_offsets("events", "g").unwrap()[0].lease_expires_at_ms;
    assert_eq!(expires, Some(start + 1_000));
    // A day ahead, then 500 s behind where it started.
    for wall in [start + 86_400_000, start - 500_000] {
        clock.set_wall(wall);
        assert_eq!(manager.now_ms(), wall);
        let report = manager.check_connections_now();
        assert_eq!(
            (
                report.leases_expired,
                report.heartbeat_timeouts,
                report.auth_timeouts
            ),
            (0, 0, 0),
            "wall clock at {wall}"
        );
        // The same with the wall reading handed in, as a host's timer would.
        let report = manager.check_connections(manager.now_ms());
        assert_eq!((report.leases_expired, report.auth_timeouts), (0, 0));
        // The lease still holds: B gets nothing, A's commit is accepted.
        assert!(manager
            .consume(b, "events", "g", 10, Duration::ZERO)
            .unwrap()
            .is_empty());
        manager.commit_offset(a, "events", "g", 0, 0).unwrap();
        // Reported times follow the wall clock.
        let partition = manager.group_offsets("events", "g").unwrap()[0];
        assert_eq!(partition.holder, Some(a));
        assert_eq!(partition.lease_expires_at_ms, Some(wall + 1_000));
        manager.heartbeat(b).unwrap();
        assert_eq!(manager.connection(b).unwrap().last_heartbeat_ms(), wall);
    }
    assert_eq!(
        manager.group_stats("events", "g").unwrap().leases_expired,
        0
    );
    // Monotonic time, not the wall clock, expires the lease and the auth timeout.
    clock.advance(1_000);
    let report = manager.check_connections_now();
    assert_eq!((report.leases_expired, report.auth_timeouts), (1, 0));
    clock.advance(manager.config().auth_timeout.as_millis() as u64 - 1_000);
    assert_eq!(manager.check_connections_now().auth_timeouts, 1);
    assert!(manager.connection(quiet).is_ok());
}

/// A host's clock whose wall reading is set apart from its monotonic one (no step wake-ups:
/// the default [`Clock::on_step`]).
#[derive(Default)]
struct HostClock {
    wall_ms: AtomicU64,
    monotonic_ms: AtomicU64,
}

impl Clock for HostClock {
    fn now_ms(&self) -> u64 {
        self.wall_ms.load(Ordering::SeqCst)
    }

    fn monotonic_ms(&self) -> u64 {
        self.monotonic_ms.load(Ordering::SeqCst)
    }
}

#[test]
fn a_host_clock_times_connections_out_on_its_monotonic_reading_only() {
    let clock = Arc::new(HostClock::default());
    clock.wall_ms.store(1_700_000_000_000, Ordering::SeqCst);
    let manager = ConnectionsManager::with_clock(ManagerConfig::default(), clock.clone()).unwrap();
    let heartbeat_ms = manager.config().heartbeat_timeout.as_millis() as u64;
    let registration = connect(&manager, "ada");
    let id = registration.connection_id;
    // The wall clock jumps back an hour, then forward two: no timer moves.
    for wall in [1_700_000_000_000 - 3_600_000, 1_700_000_000_000 + 7_200_000] {
        clock.wall_ms.store(wall, Ordering::SeqCst);
        let report = manager.check_connections_now();
        assert_eq!((report.heartbeat_timeouts, report.pings), (0, 0));
        let report = manager.check_connections(wall);
        assert_eq!((report.heartbeat_timeouts, report.pings), (0, 0));
    }
    // The record's time is the wall reading of the last sign of life.
    manager.heartbeat(id).unwrap();
    assert_eq!(
        manager.connection(id).unwrap().last_heartbeat_ms(),
        1_700_000_000_000 + 7_200_000
    );
    // Monotonic time passing the heartbeat timeout does time it out.
    clock.monotonic_ms.store(heartbeat_ms, Ordering::SeqCst);
    assert_eq!(manager.check_connections_now().heartbeat_timeouts, 1);
}

#[test]
fn a_consume_parked_for_a_partition_wakes_when_the_clock_passes_the_lease_expiry() {
    let (manager, clock) = manager();
    manager
        .create_topic("events", TopicConfig::partitions(1))
        .unwrap();
    manager
        .create_consumer_group(
            "events",
            "g",
            GroupConfig::default().lease(Duration::from_secs(60)),
        )
        .unwrap();
    publish_bytes(&manager, "events", 1, "m");
    let a = consumer(&manager, "a");
    let b = consumer(&manager, "b");
    assert_eq!(
        manager
            .consume(a, "events", "g", 10, Duration::ZERO)
            .unwrap()
            .len(),
        1
    );
    let (done_tx, done_rx) = mpsc::channel();
    {
        let manager = manager.clone();
        std::thread::spawn(move || {
            let _ = done_tx.send(manager.consume(b, "events", "g", 10, Duration::from_secs(30)));
        });
    }
    wait_for_parks(&manager, 1);
    // A went quiet: its lease expires on the manager clock, and nothing else happens (no
    // check_connections, no publish). The parked consume takes the partition over.
    clock.advance(60_000);
    let batch = done_rx
        .recv_timeout(WOKEN_WITHIN)
        .expect("the clock step woke the parked consume")
        .unwrap();
    assert_eq!(offsets(&batch), [(0, 0)]);
    assert_eq!(
        batch.positions[0].lease_expires_at_ms,
        clock.now_ms() + 60_000
    );
    let stats = manager.group_stats("events", "g").unwrap();
    assert_eq!((stats.leases_expired, stats.redelivered), (1, 1));
}

#[test]
fn a_parked_consume_times_out_on_the_manager_clock() {
    let (manager, clock) = with_topic();
    manager
        .create_consumer_group(
            "events",
            "long",
            GroupConfig::default().lease(Duration::from_secs(60)),
        )
        .unwrap();
    let b = consumer(&manager, "b");
    let (done_tx, done_rx) = mpsc::channel();
    {
        let manager = manager.clone();
        std::thread::spawn(move || {
            let _ = done_tx.send(manager.consume(b, "events", "long", 10, Duration::from_secs(30)));
        });
    }
    wait_for_parks(&manager, 1);
    // Its lease (60 s) and its timeout (30 s) run on the same clock: a step of the timeout
    // ends the consume, with its lease renewed from when it last passed, not expired.
    clock.advance(29_999);
    assert_eq!(manager.check_connections_now().leases_expired, 0);
    clock.advance(1);
    let batch = done_rx
        .recv_timeout(WOKEN_WITHIN)
        .expect("the clock step ended the parked consume")
        .unwrap();
    assert!(batch.is_empty());
    let partition = manager.group_offsets("events", "long").unwrap()[0];
    assert_eq!(partition.holder, Some(b));
    // Renewed when the consume last passed: at the final step, or at the one before it
    // when the wake-up of the first step raced the second.
    let expires = partition.lease_expires_at_ms.expect("still held");
    let now = clock.now_ms();
    assert!(
        (now + 59_999..=now + 60_000).contains(&expires),
        "lease renewed at the last pass, not expired: {expires} against {now}"
    );
}
