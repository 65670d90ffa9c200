//! A retry budget, as Finagle's `RetryBudget` and gRPC's retry throttling
//! keep one: a retry is allowed while the retries of the last `window` stay
//! within `ratio` of its successes plus a floor of `min_per_second` retries
//! a second, so a failing back end sees a trickle of retries, not a storm.
//!
//! The window is kept in ten slices, as Finagle's `WindowedAdder` keeps it:
//! a success or retry counts while its slice is one of the latest ten, that
//! is for between nine tenths of `window` and `window`.

use std::sync::Arc;

use parking_lot::Mutex;

use super::clock::Clock;

const SLICES: usize = 10;

#[derive(Clone, Copy, Default)]
struct Slice {
    /// The slice's number (time / slice length); counts of an older slice
    /// that shares this place are stale.
    number: u64,
    successes: u64,
    retries: u64,
}

#[derive(Default)]
struct State {
    slices: [Slice; SLICES],
    retried: u64,
    refused: u64,
    successes_ever: u64,
}

impl State {
    fn slice(&mut self, number: u64) -> &mut Slice {
        let slice = &mut self.slices[(number % SLICES as u64) as usize];
        if slice.number != number {
            *slice = Slice {
                number,
                ..Slice::default()
            };
        }
        slice
    }

    /// Successes and retries of the slices still in the window at `number`.
    fn in_window(&self, number: u64) -> (u64, u64) {
        self.slices
            .iter()
            .filter(|s| s.number + SLICES as u64 > number && s.number <= number)
            .fold((0, 0), |(ok, retries), s| {
                (ok + s.successes, retries + s.retries)
            })
    }
}

/// A snapshot of a budget's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSnapshot {
    pub successes: u64,
    pub retries: u64,
    pub available: u64,
    pub retried: u64,
    pub refused: u64,
}

pub struct RetryBudget {
    clock: Arc<dyn Clock>,
    ratio: f64,
    /// Retries the floor allows per window: min_per_second × window.
    floor: f64,
    slice_ns: u64,
    state: Mutex<State>,
}

impl RetryBudget {
    /// `window_ns` must be at least `SLICES` nanoseconds.
    pub fn new(clock: Arc<dyn Clock>, ratio: f64, min_per_second: f64, window_ns: u64) -> Self {
        Self {
            clock,
            ratio,
            floor: min_per_second * window_ns as f64 / 1e9,
            slice_ns: (window_ns / SLICES as u64).max(1),
            state: Mutex::new(State::default()),
        }
    }

    fn now(&self) -> u64 {
        self.clock.now_ns() / self.slice_ns
    }

    /// Retries the window allows beyond those made. Products of decimal
    /// fractions may land a hair below a whole number (0.7 × 10); the margin
    /// counts them as the whole number they stand for.
    fn room(&self, successes: u64, retries: u64) -> f64 {
        self.ratio * successes as f64 + self.floor - retries as f64 + 1e-9
    }

    pub fn record_success(&self) {
        let number = self.now();
        let mut state = self.state.lock();
        state.slice(number).successes += 1;
        state.successes_ever += 1;
    }

    /// Takes one retry from the budget if there is room for it.
    pub fn try_retry(&self) -> bool {
        let number = self.now();
        let mut state = self.state.lock();
        let (successes, retries) = state.in_window(number);
        if self.room(successes, retries) >= 1.0 {
            state.slice(number).retries += 1;
            state.retried += 1;
            true
        } else {
            state.refused += 1;
            false
        }
    }

    pub fn snapshot(&self) -> BudgetSnapshot {
        let number = self.now();
        let state = self.state.lock();
        let (successes, retries) = state.in_window(number);
        BudgetSnapshot {
            successes,
            retries,
            available: self.room(successes, retries).max(0.0).floor() as u64,
            retried: state.retried,
            refused: state.refused,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::clock::ManualClock;

    const SECOND: u64 = 1_000_000_000;

    fn budget(ratio: f64, min_per_second: f64) -> (Arc<ManualClock>, RetryBudget) {
        let clock = Arc::new(ManualClock::new(0));
        let budget = RetryBudget::new(clock.clone(), ratio, min_per_second, 10 * SECOND);
        (clock, budget)
    }

    #[test]
    fn the_floor_allows_min_per_second_times_the_window() {
        let (_, budget) = budget(0.0, 2.0);
        assert_eq!((0..25).filter(|_| budget.try_retry()).count(), 20);
        let s = budget.snapshot();
        assert_eq!(
            (s.retries, s.available, s.retried, s.refused),
            (20, 0, 20, 5)
        );
    }

    #[test]
    fn successes_buy_a_ratio_of_retries() {
        let (_, budget) = budget(0.7, 0.0);
        assert!(!budget.try_retry());
        for _ in 0..10 {
            budget.record_success();
        }
        // 0.7 × 10 is 7.000000000000001 in floats, and 7 retries it is.
        assert_eq!((0..9).filter(|_| budget.try_retry()).count(), 7);
    }

    #[test]
    fn counts_leave_the_window_slice_by_slice() {
        let (clock, budget) = budget(1.0, 0.0);
        for _ in 0..4 {
            budget.record_success();
        }
        assert!(budget.try_retry() && budget.try_retry());
        clock.advance(5 * SECOND);
        budget.record_success();
        assert_eq!(budget.snapshot().available, 3);
        // The first slice leaves the window: its successes and retries go.
        clock.advance(5 * SECOND);
        let s = budget.snapshot();
        assert_eq!((s.successes, s.retries, s.available), (1, 0, 1));
        clock.advance(5 * SECOND);
        assert_eq!(budget.snapshot().successes, 0);
        assert!(!budget.try_retry());
    }
}
