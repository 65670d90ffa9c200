//! Where time comes from: the monotonic clock, or a manual clock that tests
//! move by hand. Time is integer nanoseconds.

use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use parking_lot::Mutex;

/// Something that must look again when a manual clock moves (a bucket with
/// waiters whose time may have come). Called with no clock lock held.
pub trait OnAdvance: Send + Sync {
    fn clock_advanced(&self);
}

pub trait Clock: Send + Sync {
    fn now_ns(&self) -> u64;
    /// A manual clock wakes its subscribers itself as it moves; waiters on
    /// the monotonic clock arm real timers instead.
    fn as_manual(&self) -> Option<&ManualClock> {
        None
    }
    fn is_manual(&self) -> bool {
        self.as_manual().is_some()
    }
    /// Has `subscriber` told each time a manual clock moves (waiters whose
    /// deadline may have passed); real clocks need no such help.
    fn wake_on_advance(&self, subscriber: Weak<dyn OnAdvance>) {
        if let Some(manual) = self.as_manual() {
            manual.subscribe(subscriber);
        }
    }
}

/// Nanoseconds since the first time anyone asked, from `Instant`.
pub struct MonotonicClock;

impl Clock for MonotonicClock {
    fn now_ns(&self) -> u64 {
        static EPOCH: OnceLock<Instant> = OnceLock::new();
        let elapsed = EPOCH.get_or_init(Instant::now).elapsed();
        u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
    }
}

pub fn monotonic() -> Arc<dyn Clock> {
    static CLOCK: OnceLock<Arc<MonotonicClock>> = OnceLock::new();
    CLOCK.get_or_init(|| Arc::new(MonotonicClock)).clone()
}

/// A clock that only moves when told to.
pub struct ManualClock {
    now: Mutex<u64>,
    subscribers: Mutex<Vec<Weak<dyn OnAdvance>>>,
}

impl ManualClock {
    pub fn new(start_ns: u64) -> Self {
        Self {
            now: Mutex::new(start_ns),
            subscribers: Mutex::new(Vec::new()),
        }
    }

    pub fn subscribe(&self, subscriber: Weak<dyn OnAdvance>) {
        let mut subscribers = self.subscribers.lock();
        subscribers.retain(|s| s.strong_count() > 0);
        subscribers.push(subscriber);
    }

    /// Moves the clock forward and lets every subscriber look again.
    pub fn advance(&self, ns: u64) {
        {
            let mut now = self.now.lock();
            *now = now.saturating_add(ns);
        }
        let alive: Vec<Arc<dyn OnAdvance>> = {
            let mut subscribers = self.subscribers.lock();
            subscribers.retain(|s| s.strong_count() > 0);
            subscribers.iter().filter_map(Weak::upgrade).collect()
        };
        for subscriber in alive {
            subscriber.clock_advanced();
        }
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        *self.now.lock()
    }

    fn as_manual(&self) -> Option<&ManualClock> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Counter(AtomicU64);
    impl OnAdvance for Counter {
        fn clock_advanced(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_tells_live_subscribers() {
        let clock = ManualClock::new(5);
        let counter = Arc::new(Counter(AtomicU64::new(0)));
        let weak: Weak<dyn OnAdvance> = Arc::downgrade(&counter) as Weak<dyn OnAdvance>;
        clock.subscribe(weak);
        assert_eq!(clock.now_ns(), 5);
        clock.advance(10);
        assert_eq!(clock.now_ns(), 15);
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        drop(counter);
        clock.advance(1);
        assert!(clock.subscribers.lock().is_empty());
    }

    #[test]
    fn the_monotonic_clock_never_goes_back() {
        let clock = MonotonicClock;
        let a = clock.now_ns();
        let b = clock.now_ns();
        assert!(b >= a);
    }
}
