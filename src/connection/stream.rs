//! Receivers as [`futures_core::Stream`]s (feature `stream`), for hosts that drive
//! connections with stream combinators (`select!`, `StreamExt::next`, forwarding into a
//! sink).
//!
//! A stream owns its receiver and yields what `recv_async` yields, ending (`None`) when the
//! connection is closed and everything queued has been handed out. It keeps the
//! receiver's rule of one consumer: the stream is the consumer, so it is not `Clone`.
//! Each pending item holds one boxed `recv_async` future, created when the stream is polled
//! with nothing in flight; dropping the stream drops the receiver with it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::connection::delivery::Notification;
use crate::connection::receiver::{EventReceiver, NotificationReceiver, ReceiveError};
use crate::connection::state::ConnectionEvent;

/// A future that owns its receiver and gives it back with the result.
type Pending<R, T> = Pin<Box<dyn Future<Output = (R, Result<T, ReceiveError>)> + Send>>;

/// The state shared by both streams: the receiver at rest, or lent to a pending receive.
enum Slot<R, T> {
    Idle(R),
    Receiving(Pending<R, T>),
    Done,
}

fn poll_slot<R, T>(
    slot: &mut Slot<R, T>,
    cx: &mut Context<'_>,
    start: fn(R) -> Pending<R, T>,
) -> Poll<Option<T>> {
    loop {
        match std::mem::replace(slot, Slot::Done) {
            Slot::Done => return Poll::Ready(None),
            Slot::Idle(receiver) => *slot = Slot::Receiving(start(receiver)),
            Slot::Receiving(mut pending) => match pending.as_mut().poll(cx) {
                Poll::Pending => {
                    *slot = Slot::Receiving(pending);
                    return Poll::Pending;
                }
                Poll::Ready((receiver, result)) => {
                    return match result {
                        Ok(item) => {
                            *slot = Slot::Idle(receiver);
                            Poll::Ready(Some(item))
                        }
                        // recv_async only ends with Closed: the stream ends with it.
                        Err(_) => Poll::Ready(None),
                    };
                }
            },
        }
    }
}

/// A connection's notifications as a [`Stream`]; see [`NotificationReceiver::into_stream`].
pub struct NotificationStream {
    slot: Slot<NotificationReceiver, Notification>,
}

/// A connection's events as a [`Stream`]; see [`EventReceiver::into_stream`].
pub struct EventStream {
    slot: Slot<EventReceiver, ConnectionEvent>,
}

impl NotificationReceiver {
    /// This receiver as a [`Stream`] of notifications (feature `stream`), ending when the
    /// connection is closed and everything queued has been handed out.
    pub fn into_stream(self) -> NotificationStream {
        NotificationStream {
            slot: Slot::Idle(self),
        }
    }
}

impl EventReceiver {
    /// This receiver as a [`Stream`] of connection events (feature `stream`), ending when
    /// the connection is closed.
    pub fn into_stream(self) -> EventStream {
        EventStream {
            slot: Slot::Idle(self),
        }
    }
}

fn next_notification(
    mut receiver: NotificationReceiver,
) -> Pending<NotificationReceiver, Notification> {
    Box::pin(async move {
        let result = receiver.recv_async().await;
        (receiver, result)
    })
}

fn next_event(mut receiver: EventReceiver) -> Pending<EventReceiver, ConnectionEvent> {
    Box::pin(async move {
        let result = receiver.recv_async().await;
        (receiver, result)
    })
}

impl Stream for NotificationStream {
    type Item = Notification;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Notification>> {
        poll_slot(&mut self.get_mut().slot, cx, next_notification)
    }
}

impl Stream for EventStream {
    type Item = ConnectionEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ConnectionEvent>> {
        poll_slot(&mut self.get_mut().slot, cx, next_event)
    }
}
