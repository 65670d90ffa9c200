//! `brakes.Gauge`: the Python face of the core gauge.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::arguments::{arg, limit as check_limit, nanoseconds, wait_repr, wait_seconds, weight};
use super::awaitable::{awaitable, enter, ready, Operation, Ready, Value};
use super::blocking::wait_here;
use super::decorator::limit_calls;
use super::errors::{overloaded, value_error};
use super::stats::stats_class;
use crate::core::gauge::{Acquire, Admission, Gauge as CoreGauge, Patience, Snapshot};
use crate::core::wait::{Outcome, Poll, Refusal, Wait, Waker};

/// The error for a caller that gave up after waiting `timeout` seconds.
fn refusal(core: &CoreGauge, n: u64, timeout: Option<f64>, refusal: Refusal) -> PyErr {
    if let Refusal::TooLarge { most } = refusal {
        return value_error(format!(
            "n={n} is more than the gauge's limit of {most}: it could never be granted"
        ));
    }
    let s = core.snapshot();
    let within = match timeout {
        Some(waited) if waited > 0.0 => format!("within {waited} s"),
        _ => "without waiting".to_owned(),
    };
    overloaded(format!(
        "gauge is full: no permit {within} ({} of {} in flight, {} waiting)",
        s.in_flight, s.limit, s.waiting
    ))
}

fn result(core: &CoreGauge, n: u64, timeout: Option<f64>, outcome: Outcome<()>) -> PyResult<()> {
    outcome.map_err(|r| refusal(core, n, timeout, r))
}

/// `await gauge.acquire()` (True) and `async with gauge` (None).
pub struct AcquireCall {
    wait: Acquire<Arc<CoreGauge>>,
    n: u64,
    timeout: Option<f64>,
    value: fn() -> Value,
}

impl Operation for AcquireCall {
    fn name(&self) -> &'static str {
        "Gauge.acquire()"
    }
    fn poll(&mut self, _py: Python<'_>, waker: Option<&Waker>) -> Poll<PyResult<Value>> {
        let (n, timeout, value) = (self.n, self.timeout, self.value);
        self.wait
            .poll(waker)
            .map(|outcome| result(self.wait.gauge(), n, timeout, outcome).map(|()| value()))
    }
    fn abandon(&mut self) {
        self.wait.abandon();
    }
}

awaitable!(
    /// The awaitable of `Gauge.acquire()`.
    GaugeAcquire,
    AcquireCall
);

/// A concurrency limiter: at most `limit` permits are held at once, and the
/// callers over the limit wait their turn in FIFO order, from threads and
/// asyncio tasks alike.
///
/// `max_wait` sets how long `with`, `async with` and `@gauge` wait for a
/// permit: None waits as long as it takes, 0 fails at once, 0.2 waits up to
/// 200 ms. Giving up raises `brakes.Overloaded`.
///
/// >>> gauge = Gauge(10, max_wait=0)
/// >>> with gauge:
/// ...     gauge.in_flight
/// 1
#[pyclass(frozen, subclass, module = "brakes")]
pub struct Gauge {
    core: Arc<CoreGauge>,
    max_wait: Option<f64>,
}

impl Gauge {
    fn call(&self, n: u64, timeout: Option<f64>, value: fn() -> Value) -> AcquireCall {
        AcquireCall {
            wait: Acquire::new(self.core.clone(), n, nanoseconds(timeout)),
            n,
            timeout,
            value,
        }
    }

    /// Waits in this thread, with the GIL released while parked.
    fn block(&self, py: Python<'_>, n: u64, timeout: Option<f64>) -> PyResult<bool> {
        let mut wait = Acquire::new(&*self.core, n, nanoseconds(timeout));
        let outcome = wait_here(py, &mut wait)?;
        result(&self.core, n, timeout, outcome).map(|()| true)
    }

    fn release_checked(&self, n: u64) -> PyResult<()> {
        self.core.release(n).map_err(|over| {
            value_error(format!(
                "release(n={n}) is more than the {} permits held",
                over.held
            ))
        })
    }
}

#[pymethods]
impl Gauge {
    #[new]
    #[pyo3(signature = (limit = 1, *, max_wait = None))]
    fn new(
        #[pyo3(from_py_with = arg::limit)] limit: i64,
        #[pyo3(from_py_with = arg::max_wait)] max_wait: Option<f64>,
    ) -> PyResult<Self> {
        Ok(Self {
            core: Arc::new(CoreGauge::new(check_limit(limit)?)),
            max_wait: wait_seconds("max_wait", max_wait)?,
        })
    }

    /// The number of permits; raising it admits waiters at once, lowering it
    /// takes effect as permits come back. A limit of 0 closes the gauge.
    #[getter]
    fn get_limit(&self) -> u64 {
        self.core.limit()
    }

    #[setter]
    fn set_limit(&self, #[pyo3(from_py_with = arg::limit)] limit: i64) -> PyResult<()> {
        self.core.set_limit(check_limit(limit)?);
        Ok(())
    }

    /// How long `with`, `async with` and `@gauge` wait; None is without bound.
    #[getter]
    fn max_wait(&self) -> Option<f64> {
        self.max_wait
    }

    /// Permits held now.
    #[getter]
    fn in_flight(&self) -> u64 {
        self.core.snapshot().in_flight
    }

    /// Permits free now (0 while more are held than a lowered limit allows).
    #[getter]
    fn available(&self) -> u64 {
        self.core.snapshot().available
    }

    /// Threads and tasks queued for a permit.
    #[getter]
    fn waiting(&self) -> u64 {
        self.core.snapshot().waiting
    }

    /// Takes `n` permits if they are free now and nobody is queued for them;
    /// never waits.
    #[pyo3(signature = (n = 1))]
    fn try_acquire(&self, #[pyo3(from_py_with = arg::n)] n: i64) -> PyResult<bool> {
        let n = weight(n)?;
        match self.core.try_acquire(n, Patience::FailFast) {
            Admission::Acquired => Ok(true),
            Admission::Busy => {
                self.core.count_rejected();
                Ok(false)
            }
            Admission::TooLarge { limit } => Err(refusal(
                &self.core,
                n,
                None,
                Refusal::TooLarge { most: limit },
            )),
        }
    }

    /// Waits on the running event loop for `n` permits and returns True.
    /// Raises `Overloaded` if `timeout` seconds pass first.
    #[pyo3(signature = (n = 1, *, timeout = None))]
    fn acquire(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::n)] n: i64,
        #[pyo3(from_py_with = arg::timeout)] timeout: Option<f64>,
    ) -> PyResult<Py<GaugeAcquire>> {
        let n = weight(n)?;
        let timeout = wait_seconds("timeout", timeout)?;
        GaugeAcquire::new(py, self.call(n, timeout, || Value::True))
    }

    /// Waits in this thread, with the GIL released, for `n` permits and
    /// returns True. Raises `Overloaded` if `timeout` seconds pass first.
    #[pyo3(signature = (n = 1, *, timeout = None))]
    fn acquire_blocking(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::n)] n: i64,
        #[pyo3(from_py_with = arg::timeout)] timeout: Option<f64>,
    ) -> PyResult<bool> {
        let n = weight(n)?;
        let timeout = wait_seconds("timeout", timeout)?;
        self.block(py, n, timeout)
    }

    /// Gives back `n` permits; more than are held is a `ValueError`.
    #[pyo3(signature = (n = 1))]
    fn release(&self, #[pyo3(from_py_with = arg::n)] n: i64) -> PyResult<()> {
        self.release_checked(weight(n)?)
    }

    /// True when an `acquire()` of one permit would have to wait.
    fn locked(&self) -> bool {
        self.core.would_wait(1)
    }

    /// A frozen snapshot of the gauge's state and counters.
    fn stats(&self) -> GaugeStats {
        GaugeStats::from(self.core.snapshot())
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.block(py, 1, self.max_wait)
    }

    #[pyo3(signature = (*_exc_info))]
    fn __exit__(&self, _exc_info: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.release_checked(1)
    }

    fn __aenter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        enter::<GaugeAcquire>(py, self.call(1, self.max_wait, || Value::None))
    }

    #[pyo3(signature = (*_exc_info))]
    fn __aexit__(&self, py: Python<'_>, _exc_info: &Bound<'_, PyTuple>) -> PyResult<Py<Ready>> {
        self.release_checked(1)?;
        ready(py)
    }

    /// `@gauge` on a def or async def: each call holds a permit, waiting as
    /// `max_wait` allows.
    fn __call__(slf: &Bound<'_, Self>, func: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        limit_calls(slf.as_any(), func)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let this = slf.get();
        let s = this.core.snapshot();
        let max_wait = wait_repr(this.max_wait);
        Ok(format!(
            "<{}.{} limit={} in_flight={} waiting={} max_wait={max_wait}>",
            slf.get_type().module()?,
            slf.get_type().qualname()?,
            s.limit,
            s.in_flight,
            s.waiting
        ))
    }
}

stats_class!(
    /// A frozen snapshot of a gauge: its state and what it has done so far.
    GaugeStats from Snapshot {
        /// The limit at the time of the snapshot.
        limit: u64,
        /// Permits held.
        in_flight: u64,
        /// Permits free (0 while more are held than a lowered limit allows).
        available: u64,
        /// Threads and tasks queued.
        waiting: u64,
        /// Acquisitions that succeeded, at once or after waiting.
        acquired: u64,
        /// Of those, the ones that had to wait.
        waited: u64,
        /// Refusals without waiting: `try_acquire` said no, or no wait was allowed.
        rejected: u64,
        /// Waits that ran out of time.
        timed_out: u64,
        /// Waits that were cancelled or interrupted.
        cancelled: u64,
    }
);

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Gauge>()?;
    module.add_class::<GaugeStats>()?;
    super::awaitable::register::<GaugeAcquire>(module)
}
