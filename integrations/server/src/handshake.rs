//! Connections before their WebSocket upgrade: a TCP socket that has not become a
//! WebSocket is only a cost (a file descriptor, a hyper task), so it is bounded in time and
//! in number.
//!
//! [`GuardedListener`] accepts for axum and wraps every socket in a [`Guarded`] stream
//! that is *pending* until the `/ws` handler promotes it. A pending socket is closed (its
//! reads and writes fail, so hyper drops it) when:
//!
//! - it is still pending `handshake_timeout` after it was accepted (an idle socket, a
//!   request sent byte by byte, a keep-alive connection that never upgrades);
//! - its address (an IPv6 client's /64 network: see `address`) holds
//!   `max_pending_handshakes_per_address` pending sockets, or the server
//!   `max_pending_handshakes`, and a newer one arrives: the *oldest* pending socket (of that
//!   address, or of all) is closed to make room, so a flood of idle sockets cannot keep a
//!   fresh handshake out;
//! - the server shuts down (axum's graceful shutdown would otherwise wait for a request
//!   that never completes).
//!
//! Once promoted, the stream is a plain pass-through: the WebSocket's own limits apply.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::address::ClientAddress;

const PENDING: u8 = 0;
const UPGRADED: u8 = 1;
const CLOSED: u8 = 2;

/// One accepted socket's state, shared by its stream, its connect info and the registry.
#[derive(Debug)]
pub(crate) struct Handshake {
    id: u64,
    address: ClientAddress,
    state: AtomicU8,
    /// The task polling the stream, woken when the socket is closed from outside.
    waker: Mutex<Option<Waker>>,
}

impl Handshake {
    fn close(&self) {
        self.state.store(CLOSED, Ordering::Release);
        if let Some(waker) = self.waker.lock().unwrap_or_else(|e| e.into_inner()).take() {
            waker.wake();
        }
    }
}

#[derive(Default)]
struct Pending {
    /// Pending sockets by accept order (ids increase), oldest first.
    by_age: BTreeMap<u64, Arc<Handshake>>,
    per_address: HashMap<ClientAddress, usize>,
    next_id: u64,
    shut: bool,
}

impl Pending {
    fn remove(&mut self, id: u64) -> Option<Arc<Handshake>> {
        let handshake = self.by_age.remove(&id)?;
        if let Some(count) = self.per_address.get_mut(&handshake.address) {
            *count -= 1;
            if *count == 0 {
                self.per_address.remove(&handshake.address);
            }
        }
        Some(handshake)
    }
}

/// The pending sockets and their limits.
pub(crate) struct Handshakes {
    pending: Mutex<Pending>,
    timeout: Duration,
    per_address: usize,
    total: usize,
    /// Bytes per second each socket is read at most (0: no limit).
    read_rate: usize,
}

impl Handshakes {
    pub(crate) fn new(
        timeout: Duration,
        per_address: usize,
        total: usize,
        read_rate: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            pending: Mutex::new(Pending::default()),
            timeout,
            per_address: per_address.max(1),
            total: total.max(1),
            read_rate,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new pending socket, closing the oldest pending one of its address (or of
    /// all) when a limit is reached. After shutdown every new socket is closed at once.
    fn admit(&self, ip: IpAddr) -> Arc<Handshake> {
        let address = ClientAddress::of(ip);
        let mut pending = self.lock();
        let id = pending.next_id;
        pending.next_id += 1;
        let handshake = Arc::new(Handshake {
            id,
            address,
            state: AtomicU8::new(PENDING),
            waker: Mutex::new(None),
        });
        if pending.shut {
            handshake.close();
            return handshake;
        }
        if pending.per_address.get(&address).copied().unwrap_or(0) >= self.per_address {
            let oldest = pending
                .by_age
                .iter()
                .find(|(_, other)| other.address == address)
                .map(|(id, _)| *id);
            if let Some(evicted) = oldest.and_then(|id| pending.remove(id)) {
                evicted.close();
            }
        }
        if pending.by_age.len() >= self.total {
            let oldest = pending.by_age.keys().next().copied();
            if let Some(evicted) = oldest.and_then(|id| pending.remove(id)) {
                evicted.close();
            }
        }
        pending.by_age.insert(id, handshake.clone());
        *pending.per_address.entry(address).or_insert(0) += 1;
        handshake
    }

    /// The `/ws` handler takes the socket: no longer pending, no longer timed. False when it
    /// was closed meanwhile.
    pub(crate) fn promote(&self, handshake: &Handshake) -> bool {
        let mut pending = self.lock();
        if handshake.state.load(Ordering::Acquire) != PENDING {
            return false;
        }
        pending.remove(handshake.id);
        handshake.state.store(UPGRADED, Ordering::Release);
        true
    }

    fn forget(&self, handshake: &Handshake) {
        if handshake.state.load(Ordering::Acquire) != UPGRADED {
            self.lock().remove(handshake.id);
        }
    }

    /// Shutdown: closes every pending socket and every one accepted from now on.
    pub(crate) fn shut(&self) {
        let mut pending = self.lock();
        pending.shut = true;
        let ids: Vec<u64> = pending.by_age.keys().copied().collect();
        for id in ids {
            if let Some(handshake) = pending.remove(id) {
                handshake.close();
            }
        }
    }

    /// How many sockets are waiting for their upgrade.
    pub(crate) fn pending(&self) -> usize {
        self.lock().by_age.len()
    }
}

/// A TCP listener whose sockets are [`Guarded`] until their upgrade.
pub(crate) struct GuardedListener {
    listener: TcpListener,
    handshakes: Arc<Handshakes>,
}

impl GuardedListener {
    pub(crate) fn new(listener: TcpListener, handshakes: Arc<Handshakes>) -> Self {
        Self {
            listener,
            handshakes,
        }
    }
}

/// The connect info the handlers get: the client's address and its socket's handshake.
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    pub(crate) addr: SocketAddr,
    pub(crate) handshake: Arc<Handshake>,
}

impl Connected<IncomingStream<'_, GuardedListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, GuardedListener>) -> Self {
        stream.remote_addr().clone()
    }
}

impl Listener for GuardedListener {
    type Io = Guarded;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let handshake = self.handshakes.admit(addr.ip());
                    let deadline = Box::pin(tokio::time::sleep(self.handshakes.timeout));
                    let guarded = Guarded {
                        stream,
                        handshake: handshake.clone(),
                        handshakes: self.handshakes.clone(),
                        deadline: Some(deadline),
                        budget: ReadBudget::new(self.handshakes.read_rate),
                    };
                    return (guarded, Peer { addr, handshake });
                }
                // Out of file descriptors (or a socket reset before it was accepted): wait
                // a little, as axum's own listener does, instead of spinning.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Err(io::Error::other("the guarded listener has no peer address"))
    }
}

/// A socket that fails once it was closed as a pending handshake; a pass-through once
/// upgraded.
pub(crate) struct Guarded {
    stream: TcpStream,
    handshake: Arc<Handshake>,
    handshakes: Arc<Handshakes>,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    budget: ReadBudget,
}

/// A token bucket on the bytes read from one socket: past it the socket is read later
/// (backpressure), never closed.
struct ReadBudget {
    /// Bytes per second; 0: unlimited.
    rate: f64,
    tokens: f64,
    /// tokio's clock, which its sleeps follow (and a test can pause).
    at: tokio::time::Instant,
    wait: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl ReadBudget {
    fn new(rate: usize) -> Self {
        Self {
            rate: rate as f64,
            tokens: rate as f64,
            at: tokio::time::Instant::now(),
            wait: None,
        }
    }

    /// How many bytes may be read now; pending (woken when there is budget) when none.
    fn poll_allowance(&mut self, cx: &mut Context<'_>) -> Poll<usize> {
        if self.rate <= 0.0 {
            return Poll::Ready(usize::MAX);
        }
        loop {
            let now = tokio::time::Instant::now();
            self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate)
                .min(self.rate);
            self.at = now;
            // Reads are granted in chunks (a 64th of a second's worth, at most 16 KiB), not
            // as each byte of budget accrues: a read of a few bytes per wake-up would cost
            // more than the bytes it holds back.
            let chunk = (self.rate / 64.0).clamp(1.0, 16384.0);
            if self.tokens >= chunk {
                self.wait = None;
                return Poll::Ready(self.tokens as usize);
            }
            let needed = Duration::from_secs_f64((chunk - self.tokens) / self.rate)
                .max(Duration::from_millis(1));
            let wait = self
                .wait
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(needed)));
            if wait.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.wait = None;
        }
    }

    fn spend(&mut self, bytes: usize) {
        if self.rate > 0.0 {
            self.tokens -= bytes as f64;
        }
    }
}

impl Guarded {
    fn check(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        match self.handshake.state.load(Ordering::Acquire) {
            UPGRADED => {
                self.deadline = None;
                Ok(())
            }
            PENDING => {
                *self
                    .handshake
                    .waker
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = Some(cx.waker().clone());
                let expired = self
                    .deadline
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if expired {
                    self.handshakes.forget(&self.handshake);
                    self.handshake.state.store(CLOSED, Ordering::Release);
                    return Err(closed());
                }
                // Closed from outside after the first load and before the waker was stored:
                // that close woke nobody, so fail now.
                match self.handshake.state.load(Ordering::Acquire) {
                    CLOSED => Err(closed()),
                    _ => Ok(()),
                }
            }
            _ => Err(closed()),
        }
    }
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "closed before the WebSocket upgrade (timeout, limit or shutdown)",
    )
}

impl Drop for Guarded {
    fn drop(&mut self) {
        self.handshakes.forget(&self.handshake);
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Err(error) = self.check(cx) {
            return Poll::Ready(Err(error));
        }
        let this = &mut *self;
        let allowed = match this.budget.poll_allowance(cx) {
            Poll::Ready(allowed) => allowed,
            Poll::Pending => return Poll::Pending,
        };
        if allowed >= buf.remaining() {
            let before = buf.filled().len();
            let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
            this.budget.spend(buf.filled().len() - before);
            return polled;
        }
        let mut limited = buf.take(allowed);
        let start = limited.filled().as_ptr();
        let polled = Pin::new(&mut this.stream).poll_read(cx, &mut limited);
        // The inner read could replace `limited` with a `ReadBuf` over other memory (safe
        // code may assign one); the unsafe block below relies on it not having done so, as
        // tokio's own `io::Take` checks.
        assert_eq!(limited.filled().as_ptr(), start, "the read kept its buffer");
        let read = limited.filled().len();
        // SAFETY: `limited` is a view of `buf`'s unfilled part (checked above to be the same
        // memory); its first `read` bytes were filled, hence initialized, by the read.
        unsafe { buf.assume_init(read) };
        buf.advance(read);
        this.budget.spend(read);
        polled
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Err(error) = self.check(cx) {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Err(error) = self.check(cx) {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Err(error) = self.check(cx) {
            return Poll::Ready(Err(error));
        }
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::ReadBudget;
    use std::time::Duration;

    /// Reads as fast as the budget allows for `span` of tokio's (paused) clock, at most
    /// `read` bytes at a time; returns the bytes granted.
    async fn read_for(budget: &mut ReadBudget, span: Duration, read: usize) -> usize {
        let start = tokio::time::Instant::now();
        let mut granted = 0;
        // Bounded in reads too: a budget that never waits would never move the clock.
        for _ in 0..100_000 {
            if start.elapsed() >= span {
                break;
            }
            let allowance = std::future::poll_fn(|cx| budget.poll_allowance(cx)).await;
            let taken = allowance.min(read);
            budget.spend(taken);
            granted += taken;
        }
        granted
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_budget_grants_its_rate_after_one_second_of_burst() {
        let rate = 64_000;
        let mut budget = ReadBudget::new(rate);
        let granted = read_for(&mut budget, Duration::from_secs(3), 4096).await;
        // A full bucket (one second's worth) at the start, then the rate: three seconds
        // give four seconds' worth, give or take the last wait for a chunk (a 64th of
        // the rate), which may end past the three seconds, and the reads' rounding.
        let chunk = rate / 64;
        assert!(granted <= 4 * rate + chunk, "{granted}");
        assert!(granted >= 4 * rate - 2 * 4096, "{granted}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_budget_holds_the_next_read_back() {
        let mut budget = ReadBudget::new(6400);
        let first = std::future::poll_fn(|cx| budget.poll_allowance(cx)).await;
        assert_eq!(first, 6400);
        budget.spend(first);
        // Nothing left: the next read waits for a chunk (a 64th of the rate) to accrue.
        let before = tokio::time::Instant::now();
        let next = std::future::poll_fn(|cx| budget.poll_allowance(cx)).await;
        assert!(next >= 100, "{next}");
        assert!(
            before.elapsed() >= Duration::from_millis(15),
            "{:?}",
            before.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_rate_is_unlimited() {
        let mut budget = ReadBudget::new(0);
        let granted = std::future::poll_fn(|cx| budget.poll_allowance(cx)).await;
        assert_eq!(granted, usize::MAX);
        budget.spend(1 << 30);
        assert_eq!(
            std::future::poll_fn(|cx| budget.poll_allowance(cx)).await,
            usize::MAX
        );
    }
}
