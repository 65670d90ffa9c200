//! A circuit breaker with resilience4j's semantics: failure and slow-call
//! rates over a count- or time-based sliding window open it; open, it
//! refuses at once until `open_for` has passed; then the next call moves it
//! to half-open, which admits exactly `half_open_calls` trial calls and
//! closes or opens again on their outcome.

use std::sync::Arc;

use parking_lot::Mutex;

use super::clock::Clock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
    Disabled,
    ForcedOpen,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
            Self::Disabled => "disabled",
            Self::ForcedOpen => "forced_open",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// The last `n` calls.
    Count(usize),
    /// The calls of the last `n` seconds, in one-second buckets.
    Time(usize),
}

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub failure_rate: f64,
    pub slow_call_rate: f64,
    pub slow_call_ns: u64,
    pub window: Window,
    pub minimum_calls: usize,
    pub open_for_ns: u64,
    pub half_open_calls: usize,
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// Counts as neither (an exception listed in `ignore`).
    Ignored,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Tally {
    calls: u64,
    failures: u64,
    slow: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.calls += other.calls;
        self.failures += other.failures;
        self.slow += other.slow;
    }

    fn sub(&mut self, other: Tally) {
        self.calls -= other.calls;
        self.failures -= other.failures;
        self.slow -= other.slow;
    }
}

/// The closed state's sliding window.
struct Sliding {
    kind: Window,
    /// Count window: one call each, oldest overwritten; time window: one
    /// bucket per second, tagged with its second.
    slots: Vec<(u64, Tally)>,
    next: usize,
    total: Tally,
}

impl Sliding {
    fn new(kind: Window) -> Self {
        let size = match kind {
            Window::Count(n) | Window::Time(n) => n,
        };
        Self {
            kind,
            slots: vec![(u64::MAX, Tally::default()); size],
            next: 0,
            total: Tally::default(),
        }
    }

    fn record(&mut self, call: Tally, now_ns: u64) {
        match self.kind {
            Window::Count(_) => {
                let (_, old) = std::mem::replace(&mut self.slots[self.next], (0, call));
                self.total.sub(old);
                self.next = (self.next + 1) % self.slots.len();
            }
            Window::Time(_) => {
                self.expire(now_ns);
                let second = now_ns / 1_000_000_000;
                let at = (second % self.slots.len() as u64) as usize;
                self.slots[at].0 = second;
                self.slots[at].1.add(call);
            }
        }
        self.total.add(call);
    }

    /// Drops the buckets of a time window that have left it.
    fn expire(&mut self, now_ns: u64) {
        if let Window::Time(n) = self.kind {
            let second = now_ns / 1_000_000_000;
            for slot in &mut self.slots {
                if slot.0 != u64::MAX && slot.0 + n as u64 <= second {
                    self.total.sub(slot.1);
                    *slot = (u64::MAX, Tally::default());
                }
            }
        }
    }
}

/// What a call that was let in must report when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permit {
    /// The closed period or half-open round it belongs to.
    generation: u64,
    trial: bool,
    pub started_ns: u64,
}

/// A state change, for the binding to report once the lock is released.
pub type Change = Option<(State, State)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Admitted(Permit),
    /// Refused; `retry_after_ns` is the time left open, when known.
    Refused {
        retry_after_ns: Option<u64>,
    },
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BreakerSnapshot {
    pub calls: u64,
    pub failures: u64,
    pub slow_calls: u64,
    pub successful: u64,
    pub failed: u64,
    pub ignored: u64,
    pub rejected: u64,
    pub half_open_admitted: u64,
}

struct Inner {
    state: State,
    generation: u64,
    window: Sliding,
    open_until_ns: u64,
    /// Half-open: trials let in, and the outcomes of those that ended.
    trials_admitted: usize,
    trials: Tally,
    counts: BreakerSnapshot,
}

pub struct Breaker {
    clock: Arc<dyn Clock>,
    settings: Settings,
    inner: Mutex<Inner>,
}

impl Breaker {
    pub fn new(clock: Arc<dyn Clock>, settings: Settings) -> Self {
        Self {
            clock,
            inner: Mutex::new(Inner {
                state: State::Closed,
                generation: 0,
                window: Sliding::new(settings.window),
                open_until_ns: 0,
                trials_admitted: 0,
                trials: Tally::default(),
                counts: BreakerSnapshot::default(),
            }),
            settings,
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.clock.now_ns()
    }

    pub fn state(&self) -> State {
        self.inner.lock().state
    }

    fn minimum(&self) -> u64 {
        match self.settings.window {
            Window::Count(n) => self.settings.minimum_calls.min(n) as u64,
            Window::Time(_) => self.settings.minimum_calls as u64,
        }
    }

    /// Whether `tally` calls for opening (or staying open).
    fn over(&self, tally: Tally) -> bool {
        let calls = tally.calls as f64;
        tally.failures as f64 >= self.settings.failure_rate * calls
            || tally.slow as f64 >= self.settings.slow_call_rate * calls
    }

    // A change, as the other transitions return one.
    #[allow(clippy::unnecessary_wraps)]
    fn open(&self, inner: &mut Inner, now_ns: u64) -> Change {
        let old = inner.state;
        inner.state = State::Open;
        inner.open_until_ns = now_ns.saturating_add(self.settings.open_for_ns);
        inner.generation += 1;
        Some((old, State::Open))
    }

    fn close(inner: &mut Inner, settings: &Settings) -> Change {
        let old = inner.state;
        inner.state = State::Closed;
        inner.generation += 1;
        inner.window = Sliding::new(settings.window);
        Some((old, State::Closed)).filter(|(old, _)| *old != State::Closed)
    }

    #[allow(clippy::unnecessary_wraps)]
    fn half_open(inner: &mut Inner) -> Change {
        let old = inner.state;
        inner.state = State::HalfOpen;
        inner.generation += 1;
        inner.trials_admitted = 0;
        inner.trials = Tally::default();
        Some((old, State::HalfOpen))
    }

    /// Lets a call in, or refuses it.
    pub fn enter(&self) -> (Entry, Change) {
        let now_ns = self.now_ns();
        let mut inner = self.inner.lock();
        let mut change = None;
        if inner.state == State::Open && now_ns >= inner.open_until_ns {
            change = Self::half_open(&mut inner);
        }
        let permit = |inner: &Inner, trial| Permit {
            generation: inner.generation,
            trial,
            started_ns: now_ns,
        };
        let entry = match inner.state {
            State::Closed | State::Disabled => Entry::Admitted(permit(&inner, false)),
            State::HalfOpen if inner.trials_admitted < self.settings.half_open_calls => {
                inner.trials_admitted += 1;
                inner.counts.half_open_admitted += 1;
                Entry::Admitted(permit(&inner, true))
            }
            State::Open => Entry::Refused {
                retry_after_ns: Some(inner.open_until_ns - now_ns),
            },
            State::HalfOpen | State::ForcedOpen => Entry::Refused {
                retry_after_ns: None,
            },
        };
        if matches!(entry, Entry::Refused { .. }) {
            inner.counts.rejected += 1;
        }
        (entry, change)
    }

    /// Records how a call that was let in ended.
    pub fn record(&self, permit: Permit, outcome: Outcome) -> Change {
        let now_ns = self.now_ns();
        let mut inner = self.inner.lock();
        let slow = now_ns.saturating_sub(permit.started_ns) > self.settings.slow_call_ns;
        let call = match outcome {
            Outcome::Ignored => {
                inner.counts.ignored += 1;
                return None;
            }
            Outcome::Success => {
                inner.counts.successful += 1;
                Tally {
                    calls: 1,
                    failures: 0,
                    slow: u64::from(slow),
                }
            }
            Outcome::Failure => {
                inner.counts.failed += 1;
                Tally {
                    calls: 1,
                    failures: 1,
                    slow: u64::from(slow),
                }
            }
        };
        if inner.state == State::Disabled {
            return None;
        }
        if permit.trial {
            if inner.state != State::HalfOpen || permit.generation != inner.generation {
                return None;
            }
            inner.trials.add(call);
            if inner.trials.calls < self.settings.half_open_calls as u64 {
                return None;
            }
            let trials = inner.trials;
            return if self.over(trials) {
                self.open(&mut inner, now_ns)
            } else {
                Self::close(&mut inner, &self.settings)
            };
        }
        // A call let in while closed counts in that closed period's window,
        // even if it ends while open.
        if !Self::window_of(&inner, permit.generation) {
            return None;
        }
        inner.window.record(call, now_ns);
        if inner.state != State::Closed {
            return None;
        }
        let tally = inner.window.total;
        if tally.calls >= self.minimum().max(1) && self.over(tally) {
            return self.open(&mut inner, now_ns);
        }
        None
    }

    /// Whether a call of `generation` belongs to the current closed window:
    /// let in during this closed period (the window lives on while open).
    fn window_of(inner: &Inner, generation: u64) -> bool {
        match inner.state {
            State::Closed => generation == inner.generation,
            State::Open => generation + 1 == inner.generation,
            _ => false,
        }
    }

    pub fn force_open(&self) -> Change {
        let mut inner = self.inner.lock();
        let old = inner.state;
        inner.state = State::ForcedOpen;
        inner.generation += 1;
        Some((old, State::ForcedOpen)).filter(|(old, _)| *old != State::ForcedOpen)
    }

    pub fn disable(&self) -> Change {
        let mut inner = self.inner.lock();
        let old = inner.state;
        inner.state = State::Disabled;
        inner.generation += 1;
        Some((old, State::Disabled)).filter(|(old, _)| *old != State::Disabled)
    }

    /// Back to closed, with an empty window.
    pub fn reset(&self) -> Change {
        let mut inner = self.inner.lock();
        Self::close(&mut inner, &self.settings)
    }

    pub fn snapshot(&self) -> (State, BreakerSnapshot, Option<u64>) {
        let now_ns = self.now_ns();
        let mut inner = self.inner.lock();
        inner.window.expire(now_ns);
        let mut counts = inner.counts;
        let tally = inner.window.total;
        counts.calls = tally.calls;
        counts.failures = tally.failures;
        counts.slow_calls = tally.slow;
        let open_left =
            (inner.state == State::Open).then(|| inner.open_until_ns.saturating_sub(now_ns));
        (inner.state, counts, open_left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::clock::ManualClock;

    const SECOND: u64 = 1_000_000_000;

    fn breaker(window: Window, minimum_calls: usize) -> (Arc<ManualClock>, Breaker) {
        let clock = Arc::new(ManualClock::new(0));
        let settings = Settings {
            failure_rate: 0.5,
            slow_call_rate: 1.0,
            slow_call_ns: 2 * SECOND,
            window,
            minimum_calls,
            open_for_ns: 10 * SECOND,
            half_open_calls: 2,
        };
        (clock.clone(), Breaker::new(clock, settings))
    }

    fn call(b: &Breaker, outcome: Outcome) -> Change {
        match b.enter().0 {
            Entry::Admitted(permit) => b.record(permit, outcome),
            Entry::Refused { .. } => panic!("refused"),
        }
    }

    #[test]
    fn failures_open_it_and_trials_close_it() {
        let (clock, b) = breaker(Window::Count(4), 4);
        assert_eq!(call(&b, Outcome::Failure), None);
        assert_eq!(call(&b, Outcome::Success), None);
        assert_eq!(call(&b, Outcome::Success), None);
        // 2 failures of 4: at the threshold, it opens.
        assert_eq!(
            call(&b, Outcome::Failure),
            Some((State::Closed, State::Open))
        );
        assert_eq!(
            b.enter().0,
            Entry::Refused {
                retry_after_ns: Some(10 * SECOND)
            }
        );
        clock.advance(10 * SECOND);
        let (first, change) = b.enter();
        assert_eq!(change, Some((State::Open, State::HalfOpen)));
        let (second, _) = b.enter();
        assert_eq!(
            b.enter().0,
            Entry::Refused {
                retry_after_ns: None
            }
        );
        let (Entry::Admitted(first), Entry::Admitted(second)) = (first, second) else {
            panic!("trials refused");
        };
        assert_eq!(b.record(first, Outcome::Success), None);
        assert_eq!(
            b.record(second, Outcome::Success),
            Some((State::HalfOpen, State::Closed))
        );
        assert_eq!(b.snapshot().1.calls, 0); // a fresh window
    }

    #[test]
    fn a_failed_trial_round_opens_it_again() {
        let (clock, b) = breaker(Window::Count(2), 100);
        call(&b, Outcome::Failure);
        assert_eq!(
            call(&b, Outcome::Failure),
            Some((State::Closed, State::Open))
        );
        clock.advance(10 * SECOND);
        call(&b, Outcome::Success);
        assert_eq!(
            call(&b, Outcome::Failure),
            Some((State::HalfOpen, State::Open))
        );
    }

    fn timed(clock: &ManualClock, b: &Breaker, seconds: u64, outcome: Outcome) -> Change {
        let Entry::Admitted(permit) = b.enter().0 else {
            panic!("refused")
        };
        clock.advance(seconds * SECOND);
        b.record(permit, outcome)
    }

    #[test]
    fn slow_calls_open_it_and_ignored_ones_do_not_count() {
        let (clock, b) = breaker(Window::Count(3), 3);
        assert_eq!(timed(&clock, &b, 3, Outcome::Success), None);
        assert_eq!(timed(&clock, &b, 3, Outcome::Success), None);
        assert_eq!(timed(&clock, &b, 3, Outcome::Ignored), None);
        // The third counted call: 3 of 3 slow, a rate of 1.0.
        assert_eq!(
            timed(&clock, &b, 3, Outcome::Success),
            Some((State::Closed, State::Open))
        );
        // Exactly `slow_call_duration` is not slow.
        let (clock, b) = breaker(Window::Count(1), 1);
        assert_eq!(timed(&clock, &b, 2, Outcome::Success), None);
        assert_eq!(
            timed(&clock, &b, 3, Outcome::Success),
            Some((State::Closed, State::Open))
        );
    }

    #[test]
    fn a_time_window_forgets_old_seconds() {
        let (clock, b) = breaker(Window::Time(5), 2);
        call(&b, Outcome::Failure);
        clock.advance(5 * SECOND);
        // The first failure has left the window: 1 call, below the minimum.
        assert_eq!(call(&b, Outcome::Success), None);
        assert_eq!(b.snapshot().1.calls, 1);
        assert_eq!(
            call(&b, Outcome::Failure),
            Some((State::Closed, State::Open))
        );
    }

    #[test]
    fn a_call_from_before_the_opening_still_counts_but_changes_nothing() {
        let (clock, b) = breaker(Window::Count(10), 2);
        let Entry::Admitted(late) = b.enter().0 else {
            panic!()
        };
        call(&b, Outcome::Failure);
        assert_eq!(
            call(&b, Outcome::Failure),
            Some((State::Closed, State::Open))
        );
        assert_eq!(b.record(late, Outcome::Success), None);
        assert_eq!(b.snapshot().1.calls, 3);
        clock.advance(10 * SECOND);
        assert_eq!(b.enter().1, Some((State::Open, State::HalfOpen)));
    }

    #[test]
    fn forced_and_disabled_states_hold_until_reset() {
        let (_, b) = breaker(Window::Count(2), 2);
        assert_eq!(b.force_open(), Some((State::Closed, State::ForcedOpen)));
        assert!(matches!(
            b.enter().0,
            Entry::Refused {
                retry_after_ns: None
            }
        ));
        assert_eq!(b.disable(), Some((State::ForcedOpen, State::Disabled)));
        for _ in 0..5 {
            assert_eq!(call(&b, Outcome::Failure), None);
        }
        assert_eq!(b.state(), State::Disabled);
        assert_eq!(b.reset(), Some((State::Disabled, State::Closed)));
        assert_eq!(b.reset(), None);
    }
}
