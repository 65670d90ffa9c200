//! The native half of `brakes.CircuitBreaker`: the state machine, its
//! window and its counts. The Python class (brakes/_breaker.py) classifies
//! exceptions, runs the calls and calls the state-change callbacks, after
//! this has let go of its lock.

use std::sync::Arc;

use parking_lot::Mutex;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::arguments::arg;
use super::clock::clock_argument;
use super::errors::{value_error, CircuitOpen};
use crate::core::breaker::{
    Breaker as CoreBreaker, Change, Entry, Outcome, Permit as CorePermit, Settings, Window,
};

/// A call let in, to be recorded when it ends.
#[pyclass(frozen, module = "brakes._brakes", name = "_Permit")]
pub struct Permit(CorePermit);

fn seconds(name: &str, value: f64, most: f64) -> PyResult<u64> {
    if !value.is_finite() || value < 0.0 || value > most {
        return Err(value_error(format!(
            "{name} must be a number of seconds from 0 to {most}, got {value}"
        )));
    }
    Ok((value * 1e9).round() as u64)
}

fn rate(name: &str, value: f64) -> PyResult<f64> {
    if !(value > 0.0 && value <= 1.0) {
        return Err(value_error(format!(
            "{name} must be a fraction of calls above 0 and at most 1, got {value}"
        )));
    }
    Ok(value)
}

fn count(name: &str, value: i64, most: i64) -> PyResult<usize> {
    if !(1..=most).contains(&value) {
        return Err(value_error(format!(
            "{name} must be an integer from 1 to {most}, got {value}"
        )));
    }
    Ok(value as usize)
}

#[pyclass(frozen, module = "brakes._brakes", name = "_Breaker")]
pub struct Breaker {
    core: Arc<CoreBreaker>,
    /// Exception classes that count as failures, and as neither.
    record: Py<PyTuple>,
    ignore: Py<PyTuple>,
    listeners: Mutex<Vec<Py<PyAny>>>,
}

impl Breaker {
    /// How a call that raised `error` counts.
    fn outcome_of(&self, error: &Bound<'_, PyAny>) -> Outcome {
        let py = error.py();
        let is = |classes: &Py<PyTuple>| error.is_instance(classes.bind(py)).unwrap_or(false);
        if is(&self.ignore) || !error.is_instance_of::<PyException>() {
            Outcome::Ignored
        } else if is(&self.record) {
            Outcome::Failure
        } else {
            Outcome::Success
        }
    }

    /// Calls the state-change callbacks, with no lock held. A callback
    /// that raises is reported as unraisable: it does not fail the call.
    fn changed(&self, py: Python<'_>, change: Change) {
        let Some((old, new)) = change else { return };
        let listeners: Vec<Py<PyAny>> = self
            .listeners
            .lock()
            .iter()
            .map(|l| l.clone_ref(py))
            .collect();
        for listener in listeners {
            let listener = listener.bind(py);
            if let Err(err) = listener.call1((old.name(), new.name())) {
                err.write_unraisable(py, Some(listener));
            }
        }
    }

    fn admit(&self, py: Python<'_>) -> PyResult<CorePermit> {
        let (entry, change) = self.core.enter();
        self.changed(py, change);
        match entry {
            Entry::Admitted(permit) => Ok(permit),
            Entry::Refused { retry_after_ns } => Err(self.refusal(py, retry_after_ns)),
        }
    }

    fn refusal(&self, py: Python<'_>, retry_after_ns: Option<u64>) -> PyErr {
        let state = self.core.state().name();
        let err = CircuitOpen::new_err(format!("the circuit breaker is {state}"));
        let retry_after = retry_after_ns.map(|ns| ns as f64 / 1e9);
        let _ = err.value(py).setattr("retry_after", retry_after);
        err
    }
}

#[pymethods]
impl Breaker {
    #[new]
    #[pyo3(signature = (
        failure_rate, slow_call_rate, slow_call_duration, window, window_size,
        minimum_calls, open_for, half_open_calls, record, ignore, clock
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        #[pyo3(from_py_with = arg::failure_rate)] failure_rate: f64,
        #[pyo3(from_py_with = arg::slow_call_rate)] slow_call_rate: f64,
        #[pyo3(from_py_with = arg::slow_call_duration)] slow_call_duration: f64,
        window: &str,
        #[pyo3(from_py_with = arg::window_size)] window_size: i64,
        #[pyo3(from_py_with = arg::minimum_calls)] minimum_calls: i64,
        #[pyo3(from_py_with = arg::open_for)] open_for: f64,
        #[pyo3(from_py_with = arg::half_open_calls)] half_open_calls: i64,
        record: Bound<'_, PyTuple>,
        ignore: Bound<'_, PyTuple>,
        clock: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let window_size = count("window_size", window_size, 1_000_000)?;
        let window = match window {
            "count" => Window::Count(window_size),
            "time" => Window::Time(window_size),
            other => {
                return Err(value_error(format!(
                    "window must be \"count\" or \"time\", got {other:?}"
                )))
            }
        };
        let settings = Settings {
            failure_rate: rate("failure_rate", failure_rate)?,
            slow_call_rate: rate("slow_call_rate", slow_call_rate)?,
            slow_call_ns: seconds("slow_call_duration", slow_call_duration, 1e9)?,
            window,
            minimum_calls: count("minimum_calls", minimum_calls, i64::MAX)?,
            open_for_ns: seconds("open_for", open_for, 1e9)?,
            half_open_calls: count("half_open_calls", half_open_calls, 1_000_000)?,
        };
        Ok(Self {
            core: Arc::new(CoreBreaker::new(clock_argument(clock)?, settings)),
            record: record.unbind(),
            ignore: ignore.unbind(),
            listeners: Mutex::new(Vec::new()),
        })
    }

    fn on_state_change(&self, callback: Py<PyAny>) {
        self.listeners.lock().push(callback);
    }

    /// Lets a call in (its permit), or raises CircuitOpen.
    fn enter(&self, py: Python<'_>) -> PyResult<Permit> {
        self.admit(py).map(Permit)
    }

    /// Records the end of a call let in by `enter`; `error` is what it
    /// raised, if anything.
    fn exit(&self, py: Python<'_>, permit: &Permit, error: Option<&Bound<'_, PyAny>>) {
        let outcome = error
            .filter(|e| !e.is_none())
            .map_or(Outcome::Success, |e| self.outcome_of(e));
        let change = self.core.record(permit.0, outcome);
        self.changed(py, change);
    }

    /// Calls `fn(*args, **kwargs)` through the breaker.
    #[pyo3(signature = (r#fn, /, *args, **kwargs))]
    fn call(
        &self,
        py: Python<'_>,
        r#fn: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let permit = self.admit(py)?;
        let result = r#fn.call(args, kwargs);
        let outcome = match &result {
            Ok(_) => Outcome::Success,
            Err(err) => self.outcome_of(err.value(py).as_any()),
        };
        let change = self.core.record(permit, outcome);
        self.changed(py, change);
        result.map(Bound::unbind)
    }

    #[getter]
    fn state(&self) -> &'static str {
        self.core.state().name()
    }

    fn force_open(&self, py: Python<'_>) {
        self.changed(py, self.core.force_open());
    }

    fn disable(&self, py: Python<'_>) {
        self.changed(py, self.core.disable());
    }

    fn reset(&self, py: Python<'_>) {
        self.changed(py, self.core.reset());
    }

    fn stats(&self) -> CircuitBreakerStats {
        let (state, s, open_left) = self.core.snapshot();
        let rate = |part: u64| {
            if s.calls == 0 {
                None
            } else {
                Some(part as f64 / s.calls as f64)
            }
        };
        CircuitBreakerStats {
            state: state.name().to_owned(),
            calls: s.calls,
            failure_rate: rate(s.failures),
            slow_call_rate: rate(s.slow_calls),
            successful: s.successful,
            failed: s.failed,
            ignored: s.ignored,
            rejected: s.rejected,
            half_open_admitted: s.half_open_admitted,
            open_for: open_left.map(|ns| ns as f64 / 1e9),
        }
    }
}

/// A frozen snapshot of a circuit breaker.
#[pyclass(frozen, get_all, module = "brakes")]
pub struct CircuitBreakerStats {
    /// "closed", "open", "half_open", "disabled" or "forced_open".
    state: String,
    /// Calls in the window (ignored ones are not).
    calls: u64,
    /// Failures over calls in the window; None with no calls.
    failure_rate: Option<f64>,
    /// Slow calls over calls in the window; None with no calls.
    slow_call_rate: Option<f64>,
    /// Calls that succeeded (or raised what is not recorded), since the start.
    successful: u64,
    /// Calls that raised a recorded exception, since the start.
    failed: u64,
    /// Calls that raised an ignored exception, since the start.
    ignored: u64,
    /// Calls refused, since the start.
    rejected: u64,
    /// Trial calls let in while half-open, since the start.
    half_open_admitted: u64,
    /// Seconds left open, while open.
    open_for: Option<f64>,
}

#[pymethods]
impl CircuitBreakerStats {
    fn __repr__(&self) -> String {
        let opt = |v: Option<f64>| v.map_or_else(|| "None".to_owned(), |v| format!("{v:?}"));
        format!(
            "CircuitBreakerStats(state='{}', calls={}, failure_rate={}, slow_call_rate={}, \
             successful={}, failed={}, ignored={}, rejected={}, half_open_admitted={}, open_for={})",
            self.state,
            self.calls,
            opt(self.failure_rate),
            opt(self.slow_call_rate),
            self.successful,
            self.failed,
            self.ignored,
            self.rejected,
            self.half_open_admitted,
            opt(self.open_for)
        )
    }
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Breaker>()?;
    module.add_class::<Permit>()?;
    module.add_class::<CircuitBreakerStats>()
}
