//! The manager's clock, injectable so timeouts are testable without sleeping.
//!
//! A clock gives two readings:
//!
//! - **wall** ([`Clock::now_ms`]): milliseconds since the Unix epoch. It stamps what is
//!   compared across nodes or shown to people: live-query records (`created_at_ms`,
//!   `last_update_ms`, `last_heartbeat_ms`, which failover compares between nodes), topic
//!   message timestamps, and every `*_ms` time livecore reports.
//! - **monotonic** ([`Clock::monotonic_ms`]): milliseconds from an arbitrary origin that
//!   never jumps. Every timer livecore keeps runs on it: the auth timeout, pings and the
//!   heartbeat timeout, topic partition leases, the forgetting of quiet group members, and
//!   a parked consume's deadline. So a wall-clock step (NTP, an operator changing the date)
//!   neither expires every lease at once nor times every connection out.
//!
//! A time livecore reports for a timer (a lease's expiry, a heartbeat) is its monotonic
//! reading moved onto the wall clock by the current distance between the two readings.
//!
//! # Keeping a manual clock
//!
//! [`ConnectionsManager::with_clock`](crate::ConnectionsManager::with_clock) takes the clock
//! by value, and `Arc<C>` is a clock whenever `C` is: hand it an `Arc<ManualClock>` and keep
//! a clone to move time.
//!
//! ```
//! use std::sync::Arc;
//! use livecore::{ConnectionsManager, ManagerConfig, ManualClock, UserId};
//!
//! let clock = Arc::new(ManualClock::new(1_000_000));
//! let manager = ConnectionsManager::with_clock(ManagerConfig::default(), clock.clone())?;
//! let quiet = manager.register_connection()?.connection_id;
//! let live = manager.register_connection()?.connection_id;
//! manager.authenticate(live, UserId::from("ada"), None)?;
//!
//! // Nobody authenticates `quiet`: its auth timeout passes on the manager's clock.
//! clock.advance(ManagerConfig::default().auth_timeout.as_millis() as u64);
//! assert_eq!(manager.check_connections_now().auth_timeouts, 1);
//!
//! // A wall-clock step of a day moves no timer: `live` is not timed out.
//! clock.set_wall(manager.now_ms() + 86_400_000);
//! assert_eq!(manager.check_connections_now().heartbeat_timeouts, 0);
//! # let _ = quiet;
//! # Ok::<(), livecore::LiveError>(())
//! ```

use std::fmt;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::sync::{AtomicU64, DataArc, Ordering};

/// A source of time: a wall reading and a monotonic one (see the
/// module documentation).
pub trait Clock: Send + Sync + 'static {
    /// Wall time: milliseconds since the Unix epoch (or any fixed origin, used
    /// consistently). For what is compared across nodes or shown.
    fn now_ms(&self) -> u64;

    /// Monotonic time: milliseconds from an arbitrary origin; never goes back, never jumps
    /// with the wall clock. Timeouts, heartbeats and leases run on it. The default is the
    /// wall reading, for clocks written before this reading existed.
    fn monotonic_ms(&self) -> u64 {
        self.now_ms()
    }

    /// Called once by each manager built on this clock. A clock whose readings move in
    /// steps (like [`ManualClock`]) calls `wake.wake()` after each step of its monotonic
    /// reading, so parked consumes re-read it (a lease they wait for may have expired, or
    /// their own deadline passed), and returns true. A clock that moves by itself (like
    /// [`SystemClock`]) returns false, the default: parks end by the distance measured on
    /// the monotonic reading.
    fn on_step(&self, wake: ClockWake) -> bool {
        let _ = wake;
        false
    }
}

/// Wakes what one manager has parked on its clock's reading; see [`Clock::on_step`].
#[derive(Clone)]
pub struct ClockWake(DataArc<dyn Fn() -> bool + Send + Sync>);

impl ClockWake {
    pub(crate) fn new(wake: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        Self(DataArc::new(wake))
    }

    /// Wakes the manager's parked consumes. False once the manager is gone (the clock may
    /// forget this waker then).
    pub fn wake(&self) -> bool {
        (self.0)()
    }
}

impl fmt::Debug for ClockWake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClockWake")
    }
}

/// The system clock: [`SystemTime`] for the wall reading, [`Instant`] (from a
/// process-wide origin) for the monotonic one.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as u64)
    }

    fn monotonic_ms(&self) -> u64 {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        ORIGIN.get_or_init(Instant::now).elapsed().as_millis() as u64
    }
}

/// A clock that moves only when told to: for tests and simulations. Both readings start
/// equal and [`set`](Self::set) and [`advance`](Self::advance) move them together;
/// [`set_wall`](Self::set_wall) moves the wall reading alone, as a wall-clock step does.
#[derive(Debug, Default)]
pub struct ManualClock {
    monotonic_ms: AtomicU64,
    /// The wall reading minus the monotonic one (an `i64`, stored as its bits).
    skew_ms: AtomicU64,
    /// Managers to wake when the monotonic reading steps.
    wakes: std::sync::Mutex<Vec<ClockWake>>,
}

fn clamp_u64(value: i128) -> u64 {
    value.clamp(0, i128::from(u64::MAX)) as u64
}

impl ManualClock {
    /// A clock whose two readings are `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        Self {
            monotonic_ms: AtomicU64::new(now_ms),
            skew_ms: AtomicU64::new(0),
            wakes: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn skew(&self) -> i128 {
        i128::from(self.skew_ms.load(Ordering::SeqCst) as i64)
    }

    /// Sets the wall reading to `now_ms`, moving the monotonic reading by the same step (so
    /// until [`set_wall`](Self::set_wall) is used, both read `now_ms`). A step back moves
    /// the monotonic reading back too: a test clock may do what a real one never does.
    pub fn set(&self, now_ms: u64) {
        let monotonic = clamp_u64(i128::from(now_ms) - self.skew());
        self.monotonic_ms.store(monotonic, Ordering::SeqCst);
        self.stepped();
    }

    /// Moves both readings forward.
    pub fn advance(&self, by_ms: u64) {
        self.monotonic_ms.fetch_add(by_ms, Ordering::SeqCst);
        self.stepped();
    }

    /// Sets the wall reading alone, as when the system clock is stepped: timers, which run
    /// on the monotonic reading, do not move.
    pub fn set_wall(&self, now_ms: u64) {
        let skew = i128::from(now_ms) - i128::from(self.monotonic_ms.load(Ordering::SeqCst));
        let skew = skew.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
        self.skew_ms.store(skew as u64, Ordering::SeqCst);
    }

    fn stepped(&self) {
        // A waker of a manager that is gone is forgotten.
        self.wakes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .retain(ClockWake::wake);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        clamp_u64(i128::from(self.monotonic_ms.load(Ordering::SeqCst)) + self.skew())
    }

    fn monotonic_ms(&self) -> u64 {
        self.monotonic_ms.load(Ordering::SeqCst)
    }

    fn on_step(&self, wake: ClockWake) -> bool {
        self.wakes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(wake);
        true
    }
}

/// A shared clock: what lets a host keep a handle on the clock it gave a manager (see the
/// [module documentation](self)).
impl<C: Clock> Clock for DataArc<C> {
    fn now_ms(&self) -> u64 {
        (**self).now_ms()
    }

    fn monotonic_ms(&self) -> u64 {
        (**self).monotonic_ms()
    }

    fn on_step(&self, wake: ClockWake) -> bool {
        (**self).on_step(wake)
    }
}

/// Both readings, taken together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Reading {
    pub(crate) wall_ms: u64,
    pub(crate) monotonic_ms: u64,
}

impl Reading {
    pub(crate) fn of(clock: &dyn Clock) -> Self {
        Self {
            wall_ms: clock.now_ms(),
            monotonic_ms: clock.monotonic_ms(),
        }
    }

    /// The monotonic reading matching wall reading `wall_ms` (moved by the same distance).
    pub(crate) fn monotonic_at(self, wall_ms: u64) -> u64 {
        clamp_u64(i128::from(self.monotonic_ms) + i128::from(wall_ms) - i128::from(self.wall_ms))
    }

    /// The wall reading matching monotonic reading `monotonic_ms`.
    pub(crate) fn wall_at(self, monotonic_ms: u64) -> u64 {
        clamp_u64(
            i128::from(self.wall_ms) + i128::from(monotonic_ms) - i128::from(self.monotonic_ms),
        )
    }
}
