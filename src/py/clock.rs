//! `brakes.testing.ManualClock` and the `clock=` argument.

use std::sync::Arc;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use super::arguments::arg;
use super::errors::value_error;
use crate::core::clock::{monotonic, Clock, ManualClock as CoreManualClock};

/// Seconds as whole nanoseconds, rounded to the nearest.
fn nanoseconds(name: &str, seconds: f64) -> PyResult<u64> {
    let ns = (seconds * 1e9).round();
    if !seconds.is_finite() || seconds < 0.0 || ns >= u64::MAX as f64 {
        return Err(value_error(format!(
            "{name} must be a finite number of seconds >= 0, got {seconds}"
        )));
    }
    Ok(ns as u64)
}

/// A clock that moves only when told to, for tests of code that uses
/// brakes' rate limiters. Time is kept in whole nanoseconds; advancing it
/// wakes every waiter, thread or task, whose time has come.
///
/// >>> from brakes import TokenBucket
/// >>> from brakes.testing import ManualClock
/// >>> clock = ManualClock()
/// >>> bucket = TokenBucket(2, burst=1, clock=clock)
/// >>> bucket.try_acquire(), bucket.try_acquire()
/// (True, False)
/// >>> clock.advance(bucket.retry_after())
/// >>> bucket.try_acquire()
/// True
#[pyclass(frozen, module = "brakes.testing")]
pub struct ManualClock {
    core: Arc<CoreManualClock>,
}

#[pymethods]
impl ManualClock {
    #[new]
    #[pyo3(signature = (start = 0.0))]
    fn new(#[pyo3(from_py_with = arg::start)] start: f64) -> PyResult<Self> {
        Ok(Self {
            core: Arc::new(CoreManualClock::new(nanoseconds("start", start)?)),
        })
    }

    /// The time now, in seconds.
    fn now(&self) -> f64 {
        self.core.now_ns() as f64 / 1e9
    }

    /// Moves the clock forward by `seconds` (rounded to the nearest
    /// nanosecond) and wakes the waiters whose time has come.
    fn advance(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::seconds)] seconds: f64,
    ) -> PyResult<()> {
        let ns = nanoseconds("seconds", seconds)?;
        py.detach(|| self.core.advance(ns));
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!("ManualClock(now={:?})", self.now())
    }
}

/// The clock a limiter reads: monotonic for None, or a `ManualClock`.
pub fn clock_argument(clock: Option<&Bound<'_, PyAny>>) -> PyResult<Arc<dyn Clock>> {
    match clock {
        None => Ok(monotonic()),
        Some(obj) if obj.is_none() => Ok(monotonic()),
        Some(obj) => match obj.cast::<ManualClock>() {
            Ok(manual) => Ok(manual.get().core.clone()),
            Err(_) => Err(PyTypeError::new_err(format!(
                "clock must be None or a brakes.testing.ManualClock, got {}",
                obj.get_type().name()?
            ))),
        },
    }
}
