//! `brakes.RetryBudget`: how many retries a failing call may make.

use pyo3::prelude::*;

use super::arguments::arg;
use super::clock::clock_argument;
use super::errors::value_error;
use super::stats::stats_class;
use crate::core::budget::{BudgetSnapshot, RetryBudget as CoreBudget};

/// Caps retries at `ratio` of the successes of the last `window` seconds,
/// plus a floor of `min_per_second` retries a second (Finagle's
/// `RetryBudget`, gRPC's retry throttling): when a back end fails, its
/// callers retry a trickle instead of multiplying its load.
///
/// Call `record_success()` for every call that succeeded, and
/// `try_retry()` before each retry: it takes a retry from the budget, or
/// says False, and then the caller should give up (or wait). Successes and
/// retries count in ten slices of `window / 10`, so one counts for between
/// nine tenths of `window` and `window`. Safe to share between threads and
/// event loops.
///
/// >>> from brakes import RetryBudget
/// >>> from brakes.testing import ManualClock
/// >>> clock = ManualClock()
/// >>> budget = RetryBudget(0.2, min_per_second=0, window=10, clock=clock)
/// >>> for _ in range(10):
/// ...     budget.record_success()
/// >>> [budget.try_retry() for _ in range(3)]
/// [True, True, False]
/// >>> clock.advance(10)  # the successes have left the window
/// >>> budget.try_retry()
/// False
#[pyclass(frozen, module = "brakes")]
pub struct RetryBudget {
    core: CoreBudget,
    ratio: f64,
    min_per_second: f64,
    window: f64,
    name: Option<String>,
}

fn at_least_zero(name: &str, value: f64) -> PyResult<f64> {
    if !value.is_finite() || value < 0.0 {
        return Err(value_error(format!(
            "{name} must be a finite number >= 0, got {value}"
        )));
    }
    Ok(value)
}

#[pymethods]
impl RetryBudget {
    #[new]
    #[pyo3(signature = (ratio = 0.1, *, min_per_second = 10.0, window = 10.0, clock = None, name = None))]
    fn new(
        #[pyo3(from_py_with = arg::ratio)] ratio: f64,
        #[pyo3(from_py_with = arg::min_per_second)] min_per_second: f64,
        #[pyo3(from_py_with = arg::window)] window: f64,
        clock: Option<&Bound<'_, PyAny>>,
        name: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let name = super::arguments::name(name)?;
        let ratio = at_least_zero("ratio", ratio)?;
        let min_per_second = at_least_zero("min_per_second", min_per_second)?;
        let window_ns = (window * 1e9).round();
        if !window.is_finite() || !(1e3..1e20).contains(&window_ns) {
            return Err(value_error(format!(
                "window must be a number of seconds from 0.000001 on, got {window}"
            )));
        }
        let core = CoreBudget::new(
            clock_argument(clock)?,
            ratio,
            min_per_second,
            window_ns as u64,
        );
        Ok(Self {
            core,
            ratio,
            min_per_second,
            window,
            name,
        })
    }

    /// The budget's name (in reprs, logs and metrics), or None.
    #[getter]
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Counts a call that succeeded: it adds `ratio` of a retry to the budget.
    fn record_success(&self) {
        self.core.record_success();
    }

    /// Takes one retry from the budget: True if it may be made, False if the
    /// budget is spent (give up, or wait).
    fn try_retry(&self) -> bool {
        self.core.try_retry()
    }

    /// Retries allowed per success.
    #[getter]
    fn ratio(&self) -> f64 {
        self.ratio
    }

    /// Retries a second allowed whatever the successes.
    #[getter]
    fn min_per_second(&self) -> f64 {
        self.min_per_second
    }

    /// Seconds over which successes and retries count.
    #[getter]
    fn window(&self) -> f64 {
        self.window
    }

    /// Counts of the window and since the start.
    fn stats(&self) -> RetryBudgetStats {
        self.core.snapshot().into()
    }

    fn __repr__(&self) -> String {
        let s = self.core.snapshot();
        let name = self
            .name
            .as_ref()
            .map_or_else(String::new, |n| format!(" name={n:?}"));
        format!(
            "<brakes.RetryBudget{name} ratio={:?} min_per_second={:?} window={:?} available={}>",
            self.ratio, self.min_per_second, self.window, s.available
        )
    }
}

stats_class!(
    /// A frozen snapshot of a retry budget's counts.
    RetryBudgetStats from BudgetSnapshot {
        /// Successes recorded in the window.
        successes: u64,
        /// Retries taken in the window.
        retries: u64,
        /// Retries the budget allows now.
        available: u64,
        /// Retries taken since the budget was made.
        retried: u64,
        /// Retries refused since the budget was made.
        refused: u64,
    }
);

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<RetryBudget>()?;
    module.add_class::<RetryBudgetStats>()
}
