//! The host's calls (`sync`, `slot_lag_bytes`) share one connection, made again once the
//! server ended it, rather than starting a server process per call. Its own test binary:
//! it finds and ends server processes by their application name, which every source's
//! connections share.

mod common;

use std::time::Duration;

use common::*;
use livecore_postgres::PgError;

const SYNC: Duration = Duration::from_secs(60);

/// Server process `pid` stopped (SIGSTOP: its socket open, nothing answered) until this is
/// dropped (also when the test panics: a stopped process would hold the cluster's stop).
struct Stopped(i32);

impl Stopped {
    fn new(pid: i32) -> Stopped {
        // Only a PostgreSQL process of this machine's cluster (ci.sh's, on loopback).
        let name = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
        assert_eq!(
            name.trim(),
            "postgres",
            "process {pid} is not a server process"
        );
        signal(pid, "STOP");
        Stopped(pid)
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        signal(self.0, "CONT");
    }
}

/// Sends `signal` (STOP, CONT) to server process `pid`: directly as root, else through
/// `sudo -n`, as ci.sh runs the cluster's privileged steps.
fn signal(pid: i32, signal: &str) {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0");
    let mut command = if root {
        std::process::Command::new("kill")
    } else {
        let mut sudo = std::process::Command::new("sudo");
        sudo.args(["-n", "kill"]);
        sudo
    };
    let status = command
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosts_calls_share_one_connection_made_again_once_ended() {
    let client = fresh("hostc").await;
    client
        .batch_execute(
            "CREATE TABLE hostc.items (id int PRIMARY KEY, v text);
             ALTER TABLE hostc.items REPLICA IDENTITY FULL;",
        )
        .await
        .unwrap();
    let manager = manager();
    let source = start(&manager, config("hostc", &["items"])).await;
    // The server processes whose last query was the lag's: the host's connection, idle
    // after a call. (Ended ones may linger a moment.)
    let lag_backends = || async {
        client
            .query(
                "SELECT pid FROM pg_stat_activity \
                 WHERE application_name = 'livecore-postgres' \
                   AND backend_type = 'client backend' AND pid <> pg_backend_pid() \
                   AND query LIKE '%- confirmed_flush_lsn%'",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<_, i32>(0))
            .collect::<Vec<i32>>()
    };
    source.slot_lag_bytes().await.unwrap();
    let first = lag_backends().await;
    assert_eq!(first.len(), 1, "the connection stays open after the call");
    for _ in 0..10 {
        source.slot_lag_bytes().await.unwrap();
    }
    source.sync(SYNC).await.unwrap();
    source.slot_lag_bytes().await.unwrap();
    assert_eq!(
        lag_backends().await,
        first,
        "every call on the one connection"
    );

    // An administrator ends the session: the next calls work on a new connection.
    client
        .execute("SELECT pg_terminate_backend($1)", &[&first[0]])
        .await
        .unwrap();
    source.slot_lag_bytes().await.unwrap();
    source.sync(SYNC).await.unwrap();
    source.slot_lag_bytes().await.unwrap();
    let again: Vec<i32> = lag_backends()
        .await
        .into_iter()
        .filter(|pid| !first.contains(pid))
        .collect();
    assert_eq!(again.len(), 1, "{again:?}");

    // A server process that stops answering without closing its socket (as a server gone
    // behind a failed-over address looks): the call fails within its time instead of
    // waiting for the kernel, and the next one works on a new connection.
    // (A bound of 5 s or more: a shorter one is the caller's deadline, which keeps the
    // connection.)
    let stopped = Stopped::new(again[0]);
    let started = std::time::Instant::now();
    let stuck = source.sync(Duration::from_secs(6)).await;
    drop(stopped);
    assert!(matches!(stuck, Err(PgError::Replication(_))), "{stuck:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "bounded by the call's time"
    );
    source.sync(SYNC).await.unwrap();
    source.slot_lag_bytes().await.unwrap();
    let third: Vec<i32> = lag_backends()
        .await
        .into_iter()
        .filter(|pid| !first.contains(pid) && !again.contains(pid))
        .collect();
    assert_eq!(
        third.len(),
        1,
        "a new connection after the stalled one: {third:?}"
    );

    // The session ended by an administrator while a call waits on it (its server process
    // stopped, then terminated and continued: it ends the session in answer to the
    // query): the call is tried again on a new connection and succeeds.
    let held = third[0];
    let stopped = Stopped::new(held);
    let call = source.slot_lag_bytes();
    let administrator = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        client
            .execute("SELECT pg_terminate_backend($1)", &[&held])
            .await
            .unwrap();
        drop(stopped);
    };
    let (answered, ()) = tokio::join!(call, administrator);
    answered.unwrap();
    let fourth: Vec<i32> = lag_backends()
        .await
        .into_iter()
        .filter(|pid| ![first[0], again[0], held].contains(pid))
        .collect();
    assert_eq!(fourth.len(), 1, "the call's second try: {fourth:?}");
    assert!(source.failure().is_none(), "{:?}", source.failure());
    source.stop_and_drop().await.unwrap();
}
