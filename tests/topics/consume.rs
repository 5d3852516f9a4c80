//! Long-poll consume: parking, waking, async consume, shutdown.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use livecore::*;

use crate::common::*;
use crate::support::*;

#[test]
fn long_poll_returns_waiting_messages_at_once_and_parks_otherwise() {
    let (manager, _) = with_topic();
    // A long lease allows long polls, so "at once" is far from "after the timeout" even on
    // a busy machine.
    manager
        .create_consumer_group(
            "events",
            "long",
            GroupConfig::default().lease(Duration::from_secs(60)),
        )
        .unwrap();
    let me = consumer(&manager, "worker");
    // Nothing waiting: an empty batch after the timeout, with the position.
    let started = Instant::now();
    let batch = manager
        .consume(me, "events", "long", 10, Duration::from_millis(60))
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(60));
    assert!(batch.is_empty());
    assert_eq!(batch.positions.len(), 1);
    assert_eq!(batch.positions[0].committed, Some(0));
    assert_eq!(batch.positions[0].next, Some(0));
    assert_eq!(batch.positions[0].end, 0);
    // Waiting messages: at once, whatever the timeout.
    publish_bytes(&manager, "events", 1, "one");
    let started = Instant::now();
    let batch = manager
        .consume(me, "events", "long", 10, Duration::from_secs(30))
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(offsets(&batch), [(0, 0)]);
    assert_eq!(batch.positions[0].next, Some(1));
    // Parked: woken by the publish, well before the timeout.
    let parked = {
        let manager = manager.clone();
        std::thread::spawn(move || {
            let started = Instant::now();
            let batch = manager
                .consume(me, "events", "long", 10, Duration::from_secs(30))
                .unwrap();
            (batch, started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    publish_bytes(&manager, "events", 2, "two");
    let (batch, waited) = parked.join().unwrap();
    assert_eq!(
        batch
            .messages
            .iter()
            .map(|m| bytes_of(m))
            .collect::<Vec<_>>(),
        ["two"]
    );
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");
}

#[test]
fn consume_async_completes_when_a_message_arrives() {
    let (manager, _) = with_topic();
    let me = consumer(&manager, "worker");
    // Usable on multi-threaded runtimes.
    fn assert_send<T: Send>(_: &T) {}
    assert_send(&manager.consume_async(me, "events", "g", 5));
    let publisher = {
        let manager = manager.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            publish_bytes(&manager, "events", 1, "async");
        })
    };
    let batch = block_on(manager.consume_async(me, "events", "g", 5)).unwrap();
    assert_eq!(bytes_of(&batch.messages[0]), "async");
    publisher.join().unwrap();
}

#[test]
fn unregistering_wakes_a_parked_consume() {
    let (manager, _) = with_topic();
    manager
        .create_consumer_group(
            "events",
            "long",
            GroupConfig::default().lease(Duration::from_secs(60)),
        )
        .unwrap();
    let me = consumer(&manager, "a");
    let parked = {
        let manager = manager.clone();
        std::thread::spawn(move || {
            manager.consume(me, "events", "long", 10, Duration::from_secs(30))
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    manager.unregister_connection(me).unwrap();
    assert_eq!(
        parked.join().unwrap(),
        Err(LiveError::UnknownConnection(me))
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn deleting_the_topic_or_group_wakes_parked_consumes() {
    let (manager, _) = with_topic();
    let me = consumer(&manager, "a");
    let parked = {
        let manager = manager.clone();
        std::thread::spawn(move || manager.consume(me, "events", "g", 10, Duration::from_secs(1)))
    };
    std::thread::sleep(Duration::from_millis(50));
    manager.delete_consumer_group("events", "g").unwrap();
    assert!(matches!(
        parked.join().unwrap(),
        Err(LiveError::UnknownGroup { .. })
    ));
    manager
        .create_consumer_group(
            "events",
            "g2",
            GroupConfig::default().lease(Duration::from_secs(1)),
        )
        .unwrap();
    let parked = {
        let manager = manager.clone();
        std::thread::spawn(move || manager.consume(me, "events", "g2", 10, Duration::from_secs(1)))
    };
    std::thread::sleep(Duration::from_millis(50));
    manager.delete_topic("events").unwrap();
    assert_eq!(
        parked.join().unwrap(),
        Err(LiveError::UnknownTopic("events".into()))
    );
}

#[test]
fn shutdown_wakes_10k_parked_consumers() {
    // Futures polled by a tiny executor: 10k consumes parked at once without 10k threads.
    let (manager, _) = manager();
    manager
        .create_topic("s", TopicConfig::partitions(4))
        .unwrap();
    manager
        .create_consumer_group("s", "g", GroupConfig::default())
        .unwrap();
    const CONSUMERS: usize = 10_000;
    let ids: Vec<ConnectionId> = (0..CONSUMERS)
        .map(|index| consumer(&manager, &format!("c{index}")))
        .collect();
    let woken = Arc::new(Mutex::new(Vec::new()));
    let mut futures: Vec<_> = ids
        .iter()
        .map(|id| Box::pin(manager.consume_async(*id, "s", "g", 10)))
        .collect();
    let wakers: Vec<std::task::Waker> = (0..CONSUMERS)
        .map(|index| std::task::Waker::from(Arc::new(Flag(index, woken.clone()))))
        .collect();
    for (index, future) in futures.iter_mut().enumerate() {
        let mut context = std::task::Context::from_waker(&wakers[index]);
        assert!(
            future.as_mut().poll(&mut context).is_pending(),
            "consumer {index} did not park"
        );
    }
    let started = Instant::now();
    let report = manager.shutdown(Duration::ZERO);
    assert_eq!(report.notified, CONSUMERS);
    let mut done = vec![false; CONSUMERS];
    let mut finished = 0;
    while finished < CONSUMERS {
        // Not a timing claim: a consume never woken would hang the test instead.
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {finished} woke"
        );
        let ready: Vec<usize> = std::mem::take(&mut *woken.lock().unwrap());
        if ready.is_empty() {
            std::thread::yield_now();
        }
        for index in ready {
            if done[index] {
                continue;
            }
            let mut context = std::task::Context::from_waker(&wakers[index]);
            if let std::task::Poll::Ready(result) = futures[index].as_mut().poll(&mut context) {
                assert!(
                    matches!(result, Err(LiveError::ShuttingDown)),
                    "consumer {index}: {result:?}"
                );
                done[index] = true;
                finished += 1;
            }
        }
    }
    let elapsed = started.elapsed();
    eprintln!("shutdown woke {CONSUMERS} parked async consumers in {elapsed:?}");
    assert!(matches!(
        manager.consume(ids[0], "s", "g", 1, Duration::ZERO),
        Err(LiveError::ShuttingDown)
    ));
}

#[test]
fn shutdown_wakes_10k_parked_consumer_threads() {
    let (manager, _) = manager();
    manager
        .create_topic("s", TopicConfig::partitions(4))
        .unwrap();
    manager
        .create_consumer_group(
            "s",
            "g",
            GroupConfig::default().lease(Duration::from_secs(60)),
        )
        .unwrap();
    const CONSUMERS: usize = 10_000;
    // Registered first: authenticating writes through arc-swap, whose writers visit every
    // thread that has read through it (O(threads) per write with 10k threads alive).
    let ids: Vec<ConnectionId> = (0..CONSUMERS)
        .map(|index| consumer(&manager, &format!("c{index}")))
        .collect();
    // Each joins the group once from here, so the threads start as known sessions.
    for id in &ids {
        manager.consume(*id, "s", "g", 10, Duration::ZERO).unwrap();
    }
    let started = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = ids
        .iter()
        .map(|id| {
            let (manager, started, id) = (manager.clone(), started.clone(), *id);
            std::thread::Builder::new()
                .stack_size(64 << 10)
                .spawn(move || {
                    started.fetch_add(1, Ordering::SeqCst);
                    let result = manager.consume(id, "s", "g", 10, Duration::from_secs(30));
                    (result, Instant::now())
                })
                .expect("spawn a consumer thread")
        })
        .collect();
    while started.load(Ordering::SeqCst) < CONSUMERS as u64 {
        std::thread::sleep(Duration::from_millis(10));
    }
    // Every consumer has joined the group once all are parked.
    let deadline = Instant::now() + Duration::from_secs(20);
    while manager.group_stats("s", "g").unwrap().members < CONSUMERS {
        assert!(Instant::now() < deadline, "consumers did not all join");
        std::thread::sleep(Duration::from_millis(10));
    }
    // And every one has parked (the count is raised just before a consume parks; one
    // woken between the count and its park finds the token and returns at once).
    while manager.stats().consume_parks < CONSUMERS as u64 {
        assert!(Instant::now() < deadline, "consumers did not all park");
        std::thread::sleep(Duration::from_millis(10));
    }
    let shutdown_at = Instant::now();
    manager.shutdown(Duration::ZERO);
    let mut latest = shutdown_at;
    for thread in threads {
        let (result, returned_at) = thread.join().unwrap();
        assert!(
            matches!(
                result,
                Err(LiveError::ShuttingDown) | Err(LiveError::UnknownConnection(_))
            ),
            "{result:?}"
        );
        latest = latest.max(returned_at);
    }
    // A consume left parked would have returned an empty batch after its 30 s timeout,
    // which the match above refuses; the time is reported, not asserted.
    let elapsed = latest - shutdown_at;
    eprintln!("shutdown woke {CONSUMERS} parked consumer threads in {elapsed:?}");
}

struct Flag(usize, Arc<Mutex<Vec<usize>>>);

impl std::task::Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.1.lock().unwrap().push(self.0);
    }
}

#[test]
fn an_unbounded_consume_timeout_is_typed_not_a_panic() {
    let (manager, _) = with_topic();
    let me = consumer(&manager, "worker");
    assert!(matches!(
        manager.consume(me, "events", "g", 10, Duration::MAX),
        Err(LiveError::OutOfBounds {
            what: "poll timeout (ms)",
            ..
        })
    ));
}

/// Two groups of one topic, each with a one-minute lease (so the long polls below are
/// allowed), and one session.
fn two_groups() -> (Arc<ConnectionsManager>, ConnectionId) {
    let (manager, _) = with_topic();
    for group in ["first", "second"] {
        manager
            .create_consumer_group(
                "events",
                group,
                GroupConfig::default().lease(Duration::from_secs(60)),
            )
            .unwrap();
    }
    let me = consumer(&manager, "worker");
    (manager, me)
}

#[test]
fn a_publish_wakes_every_consume_parked_on_one_session() {
    // One session consuming two groups from two threads: the message is for both groups,
    // and each consume returns it when it is published. A wake-up shared by the session
    // reached one of them, and the other returned it only at its timeout.
    let (manager, me) = two_groups();
    let parked: Vec<_> = ["first", "second"]
        .into_iter()
        .map(|group| {
            let manager = manager.clone();
            std::thread::spawn(move || {
                manager
                    .consume(me, "events", group, 10, Duration::from_secs(29))
                    .unwrap()
            })
        })
        .collect();
    wait_for_parks(&manager, 2);
    publish_bytes(&manager, "events", 1, "both");
    assert!(
        wait_until(Duration::from_secs(15), || parked
            .iter()
            .all(|thread| thread.is_finished())),
        "a consume parked on the session was not woken"
    );
    for thread in parked {
        let batch = thread.join().unwrap();
        let group = batch.group.clone();
        assert_eq!(
            batch
                .messages
                .iter()
                .map(|m| bytes_of(m))
                .collect::<Vec<_>>(),
            ["both"],
            "group {group}"
        );
    }
}

#[test]
fn a_publish_wakes_both_async_consumes_of_one_session() {
    // A `select!` over two groups of one session: both futures are woken, and each
    // completes with the message.
    let (manager, me) = two_groups();
    let mut futures = [
        Box::pin(manager.consume_async(me, "events", "first", 10)),
        Box::pin(manager.consume_async(me, "events", "second", 10)),
    ];
    let woken = Arc::new(Mutex::new(Vec::new()));
    let wakers: Vec<std::task::Waker> = (0..2)
        .map(|index| std::task::Waker::from(Arc::new(Flag(index, woken.clone()))))
        .collect();
    for (index, future) in futures.iter_mut().enumerate() {
        let mut context = std::task::Context::from_waker(&wakers[index]);
        assert!(future.as_mut().poll(&mut context).is_pending());
    }
    publish_bytes(&manager, "events", 1, "both");
    assert!(
        wait_until(Duration::from_secs(20), || {
            let mut woken = woken.lock().unwrap().clone();
            woken.sort_unstable();
            woken.dedup();
            woken.len() == 2
        }),
        "woken: {:?}",
        woken.lock().unwrap()
    );
    for (index, future) in futures.iter_mut().enumerate() {
        let mut context = std::task::Context::from_waker(&wakers[index]);
        let std::task::Poll::Ready(batch) = future.as_mut().poll(&mut context) else {
            panic!("consume {index} woken but not done");
        };
        assert_eq!(bytes_of(&batch.unwrap().messages[0]), "both");
    }
}

#[test]
fn a_lease_ending_in_one_group_keeps_the_session_waiting_in_another() {
    // The partitions' wait lists are the topic's: the session's lease in "first" ending
    // (here by leaving the group) must not take off the registration its consume parked in
    // "second" relies on.
    let (manager, me) = two_groups();
    let empty = manager
        .consume(me, "events", "first", 10, Duration::ZERO)
        .unwrap();
    assert!(empty.is_empty());
    let mut future = Box::pin(manager.consume_async(me, "events", "second", 10));
    let woken = Arc::new(Mutex::new(Vec::new()));
    let waker = std::task::Waker::from(Arc::new(Flag(0, woken.clone())));
    let mut context = std::task::Context::from_waker(&waker);
    assert!(future.as_mut().poll(&mut context).is_pending());
    manager.leave_group(me, "events", "first").unwrap();
    publish_bytes(&manager, "events", 1, "m");
    assert!(
        wait_until(Duration::from_secs(20), || !woken
            .lock()
            .unwrap()
            .is_empty()),
        "the publish did not wake the consume of the other group"
    );
    let std::task::Poll::Ready(batch) = future.as_mut().poll(&mut context) else {
        panic!("woken but not done");
    };
    assert_eq!(bytes_of(&batch.unwrap().messages[0]), "m");
}
