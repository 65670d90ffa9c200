//! The one waiting machinery: every operation that can make a caller wait
//! (a gauge's or bucket's acquire, a queue's put, get, join and batch) is a
//! `Wait`, polled by a driver until it is `Ready`, the way tokio's
//! `Semaphore::acquire` future is. The thread driver is `block_on` below; the
//! asyncio driver lives in the binding. Neither knows what it waits for.

use std::convert::Infallible;
use std::sync::Arc;
use std::thread::Thread;
use std::time::Duration;

use super::clock::Clock;

/// Where a wait stands after a poll.
#[derive(Debug, PartialEq, Eq)]
pub enum Poll<T> {
    Ready(T),
    /// Not yet: poll again once woken, and at the latest after this long
    /// (None: only once woken).
    Pending(Option<Duration>),
}

impl<T> Poll<T> {
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Poll<U> {
        match self {
            Self::Ready(value) => Poll::Ready(f(value)),
            Self::Pending(sleep) => Poll::Pending(sleep),
        }
    }
}

/// How a waiting caller is woken: a parked thread, an asyncio task, a Rust
/// future. Called with no core lock held.
pub trait Notify: Send + Sync {
    /// Returns false when the caller can no longer be reached (its event
    /// loop has closed): a grant made to it then goes back.
    fn notify(&self) -> bool;
}

pub type Waker = Arc<dyn Notify>;

impl Notify for Thread {
    fn notify(&self) -> bool {
        self.unpark();
        true
    }
}

/// A waiting operation.
///
/// Polled without a waker, it answers at once if it can (the fast path: no
/// waker is made, nothing is queued) and is otherwise `Pending` having
/// registered nothing; the driver then polls it with a waker, and from then
/// on every time that waker is called or the time it asked for has passed.
/// `abandon` ends it unfinished (cancelled, interrupted, dropped): it leaves
/// any line it stands in and gives back a grant that raced in. Dropping a
/// wait abandons it.
pub trait Wait {
    type Output;
    fn poll(&mut self, waker: Option<&Waker>) -> Poll<Self::Output>;
    fn abandon(&mut self);
}

/// Why a wait ended without what it asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal<E = Infallible> {
    /// Refused without waiting: no wait was allowed, or the wait needed is
    /// longer than allowed (`retry_after_ns` from now it could succeed, when
    /// that is known).
    Busy {
        retry_after_ns: Option<u64>,
    },
    /// The allowed wait ran out.
    TimedOut,
    ShutDown,
    /// More than the primitive can ever grant at once.
    TooLarge {
        most: u64,
    },
    /// The caller's own code failed (a priority comparison).
    Failed(E),
}

impl Refusal {
    /// The same refusal, as one of a wait whose own code can fail.
    pub fn widen<E>(self) -> Refusal<E> {
        match self {
            Self::Busy { retry_after_ns } => Refusal::Busy { retry_after_ns },
            Self::TimedOut => Refusal::TimedOut,
            Self::ShutDown => Refusal::ShutDown,
            Self::TooLarge { most } => Refusal::TooLarge { most },
            Self::Failed(never) => match never {},
        }
    }
}

/// The one outcome type of every wait.
pub type Outcome<T, E = Infallible> = Result<T, Refusal<E>>;

/// When a wait must end, on the primitive's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deadline {
    /// No wait allowed: answer at once.
    Now,
    /// At this time, in clock nanoseconds.
    At(u64),
    Never,
}

impl Deadline {
    /// The deadline of a wait of `timeout_ns` (None: no bound) from now.
    pub fn after(clock: &dyn Clock, timeout_ns: Option<u64>) -> Self {
        match timeout_ns {
            None => Self::Never,
            Some(0) => Self::Now,
            Some(ns) => clock.now_ns().checked_add(ns).map_or(Self::Never, Self::At),
        }
    }

    pub fn passed(&self, clock: &dyn Clock) -> bool {
        match *self {
            Self::Now => true,
            Self::At(at) => clock.now_ns() >= at,
            Self::Never => false,
        }
    }

    /// How long a driver may sleep before this deadline needs a look. None
    /// when there is no deadline, and on a manual clock, whose waiters are
    /// woken as it moves (see `Clock::wake_on_advance`).
    pub fn sleep(&self, clock: &dyn Clock) -> Option<Duration> {
        match *self {
            Self::At(at) if !clock.is_manual() => {
                Some(Duration::from_nanos(at.saturating_sub(clock.now_ns())))
            }
            _ => None,
        }
    }
}

/// The earlier of two sleeps (None: no limit).
pub fn earliest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Drives a wait in this thread until it is ready: parks while it is
/// pending, until woken or its time has come. `interrupted`, when given, is
/// asked every so often while the wait goes on; when it says stop the wait
/// is abandoned and the answer is None.
pub fn block_on<W: Wait>(
    wait: &mut W,
    mut interrupted: Option<(&mut dyn FnMut() -> bool, Duration)>,
) -> Option<W::Output> {
    if let Poll::Ready(output) = wait.poll(None) {
        return Some(output);
    }
    let waker: Waker = Arc::new(std::thread::current());
    let mut parked = false;
    loop {
        // Every wake looks for an interruption before the wait looks for its
        // grant: an interruption that came while parked wins over a grant
        // that came after it, which goes back (as Ctrl-C in `queue.Queue.get`
        // leaves the item in the queue). A grant must not be taken and then
        // lost to the exception raised as the call returns.
        if parked {
            if let Some((check, _)) = interrupted.as_mut() {
                if check() {
                    wait.abandon();
                    return None;
                }
            }
        }
        let sleep = match wait.poll(Some(&waker)) {
            Poll::Ready(output) => return Some(output),
            Poll::Pending(sleep) => sleep,
        };
        if let Some((_, every)) = interrupted.as_ref() {
            park(earliest(sleep, Some(*every)));
        } else {
            park(sleep);
        }
        parked = true;
    }
}

/// Parks this thread, at most `sleep` (None: until unparked). A wake that
/// came before the park makes it return at once.
fn park(sleep: Option<Duration>) {
    match sleep {
        Some(duration) => std::thread::park_timeout(duration),
        None => std::thread::park(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::clock::{monotonic, ManualClock};

    #[test]
    fn deadlines_follow_their_clock() {
        let clock = ManualClock::new(10);
        assert_eq!(Deadline::after(&clock, None), Deadline::Never);
        assert_eq!(Deadline::after(&clock, Some(0)), Deadline::Now);
        let deadline = Deadline::after(&clock, Some(5));
        assert_eq!(deadline, Deadline::At(15));
        assert!(!deadline.passed(&clock));
        // A manual clock wakes its waiters itself: no timer.
        assert_eq!(deadline.sleep(&clock), None);
        clock.advance(5);
        assert!(deadline.passed(&clock));
        let real = monotonic();
        let soon = Deadline::after(&*real, Some(1_000_000_000));
        assert!(soon
            .sleep(&*real)
            .is_some_and(|d| d <= Duration::from_secs(1)));
    }

    /// Ready after `polls` polls with a waker; counts abandons.
    struct Countdown {
        polls: u32,
        abandoned: u32,
    }

    impl Wait for Countdown {
        type Output = u32;
        fn poll(&mut self, waker: Option<&Waker>) -> Poll<u32> {
            if waker.is_none() {
                return Poll::Pending(None);
            }
            if self.polls == 0 {
                return Poll::Ready(7);
            }
            self.polls -= 1;
            Poll::Pending(Some(Duration::from_micros(10)))
        }
        fn abandon(&mut self) {
            self.abandoned += 1;
        }
    }

    #[test]
    fn block_on_polls_until_ready_and_abandons_when_interrupted() {
        let mut wait = Countdown {
            polls: 3,
            abandoned: 0,
        };
        assert_eq!(block_on(&mut wait, None), Some(7));
        let mut wait = Countdown {
            polls: 1000,
            abandoned: 0,
        };
        let mut stop = || true;
        let check: &mut dyn FnMut() -> bool = &mut stop;
        assert_eq!(
            block_on(&mut wait, Some((check, Duration::from_millis(1)))),
            None
        );
        assert_eq!(wait.abandoned, 1);
    }
}
