//! Receivers as `futures_core::Stream`s (feature `stream`), driven by a tokio runtime.
#![cfg(feature = "stream")]

mod common;

use std::future::poll_fn;
use std::pin::Pin;

use common::*;
use futures_core::Stream;
use livecore::*;

async fn next<S: Stream + Unpin>(stream: &mut S) -> Option<S::Item> {
    poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

#[test]
fn notifications_stream_in_order_on_tokio_and_end_when_the_connection_closes() {
    let (manager, _) = manager();
    let connection = connect(&manager, "alice");
    let id = connection.connection_id;
    subscribe(&manager, connection.connection_id, in_room(1));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut notifications = connection.notifications.into_stream();
    let mut events = connection.events.into_stream();
    // A publisher thread: the stream's task is woken by each send, never polled in a loop.
    let publisher = {
        let manager = manager.clone();
        std::thread::spawn(move || {
            for seq in 1..=200u64 {
                let change = ChangeNotification::insert(messages(), message(seq as i64, 1, ""));
                manager.publish(SeqId(seq), change).unwrap();
            }
        })
    };
    let seqs = runtime.block_on(async {
        let mut seqs = Vec::new();
        while seqs.len() < 200 {
            match next(&mut notifications).await {
                Some(Notification::Changes(changes)) => seqs.push(changes.seq().0),
                other => panic!("expected changes, got {other:?}"),
            }
        }
        seqs
    });
    publisher.join().unwrap();
    assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
    // Closing the connection ends both streams (after an event saying why, if any).
    manager.unregister_connection(id).unwrap();
    runtime.block_on(async {
        assert!(next(&mut notifications).await.is_none());
        assert!(
            next(&mut notifications).await.is_none(),
            "ended stays ended"
        );
        while let Some(event) = next(&mut events).await {
            assert_ne!(event, ConnectionEvent::SlowConsumer, "{event:?}");
        }
    });
}

#[test]
fn a_stream_waiting_on_a_spawned_task_wakes_on_publish() {
    let (manager, _) = manager();
    let connection = connect(&manager, "alice");
    subscribe(&manager, connection.connection_id, in_room(1));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut notifications = connection.notifications.into_stream();
    let publishing = manager.clone();
    let got = runtime.block_on(async move {
        // The stream is Send: it moves into a spawned task, which parks on it first.
        let task = tokio::spawn(async move { next(&mut notifications).await });
        tokio::task::yield_now().await;
        let publisher = std::thread::spawn(move || {
            publishing
                .publish(
                    SeqId(1),
                    ChangeNotification::insert(messages(), message(1, 1, "")),
                )
                .unwrap();
        });
        let got = task.await.unwrap();
        publisher.join().unwrap();
        got
    });
    match got {
        Some(Notification::Changes(changes)) => assert_eq!(changes.seq(), SeqId(1)),
        other => panic!("expected the change, got {other:?}"),
    }
}
