//! `brakes.AdaptiveGauge`: the Python face of the adaptive gauge.

use std::cell::RefCell;
use std::sync::Arc;

use pyo3::exceptions::{PyException, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

use super::arguments::{arg, integer, nanoseconds, number, wait_repr, wait_seconds, weight};
use super::awaitable::{awaitable, enter, ready, Operation, Ready, Value};
use super::blocking::wait_here;
use super::clock::clock_argument;
use super::decorator::limit_calls;
use super::errors::value_error;
use super::gauge::refusal;
use super::stats::{Histogram, Shown};
use crate::core::adaptive::algorithms::{
    Aimd, Gradient2, Gradient2Options, LimitAlgorithm, Vegas, VegasOptions,
};
use crate::core::adaptive::controller::{
    AdaptiveGauge as CoreAdaptive, Bounds, Finished, Moved, ProbeSettings,
};
use crate::core::gauge::{Acquire, Admission, Gauge as CoreGauge, Patience};
use crate::core::wait::{Poll, Refusal, Wait, Waker};

const ALGORITHMS: &str = "\"aimd\", \"vegas\" or \"gradient2\"";

/// The options each algorithm takes, with Netflix's defaults.
struct Options<'a, 'py> {
    algorithm: &'a str,
    given: Vec<(String, Bound<'py, PyAny>)>,
}

impl<'py> Options<'_, 'py> {
    fn take(&mut self, name: &str) -> Option<Bound<'py, PyAny>> {
        let at = self.given.iter().position(|(given, _)| given == name)?;
        Some(self.given.swap_remove(at).1)
    }

    fn number(
        &mut self,
        name: &str,
        default: f64,
        ok: fn(f64) -> bool,
        what: &str,
    ) -> PyResult<f64> {
        let Some(value) = self.take(name) else {
            return Ok(default);
        };
        let value = number(name, &value)?;
        if !value.is_finite() || !ok(value) {
            return Err(value_error(format!("{name} must be {what}, got {value}")));
        }
        Ok(value)
    }

    fn optional(&mut self, name: &str) -> PyResult<Option<f64>> {
        match self.take(name) {
            None => Ok(None),
            Some(value) if value.is_none() => Ok(None),
            Some(value) => {
                let value = number(name, &value)?;
                if !value.is_finite() || value <= 0.0 {
                    return Err(value_error(format!(
                        "{name} must be None or a number > 0, got {value}"
                    )));
                }
                Ok(Some(value))
            }
        }
    }

    fn integer(&mut self, name: &str, default: i64, least: i64) -> PyResult<i64> {
        let Some(value) = self.take(name) else {
            return Ok(default);
        };
        let value = integer(name, &value)?;
        if !(least..=1_000_000_000).contains(&value) {
            return Err(value_error(format!(
                "{name} must be an integer from {least} to 1000000000, got {value}"
            )));
        }
        Ok(value)
    }

    fn probe(&mut self) -> PyResult<ProbeSettings> {
        Ok(ProbeSettings {
            limit: self.integer("probe_limit", 3, 1)? as u64,
            multiplier: self.number("probe_multiplier", 30.0, |v| v > 0.0, "a number > 0")?,
        })
    }

    /// Fails on what is left: options the algorithm does not take.
    fn done(self, known: &str) -> PyResult<()> {
        match self.given.first() {
            None => Ok(()),
            Some((name, _)) => Err(PyTypeError::new_err(format!(
                "AdaptiveGauge() got an unexpected keyword argument {name:?}: algorithm={:?} takes {known}",
                self.algorithm
            ))),
        }
    }
}

fn algorithm_from(
    algorithm: &str,
    options: Option<&Bound<'_, PyDict>>,
) -> PyResult<(Box<dyn LimitAlgorithm>, ProbeSettings)> {
    let mut given = Vec::new();
    if let Some(options) = options {
        for (name, value) in options.iter() {
            given.push((name.extract::<String>()?, value));
        }
    }
    given.sort_by(|a, b| a.0.cmp(&b.0));
    let mut o = Options { algorithm, given };
    let unit = |v: f64| v > 0.0 && v <= 1.0;
    let probe_default = ProbeSettings {
        limit: 3,
        multiplier: 30.0,
    };
    match algorithm {
        "aimd" => {
            let backoff = o.number(
                "backoff",
                0.9,
                |v| v > 0.0 && v < 1.0,
                "a number between 0 and 1",
            )?;
            let timeout = o.number(
                "timeout",
                5.0,
                |v| v > 0.0 && v <= 86_400.0,
                "a number of seconds from 0 to 86400",
            )?;
            o.done("backoff and timeout")?;
            let timeout_ns = (timeout * 1e9).round() as u64;
            Ok((Box::new(Aimd::new(backoff, timeout_ns)), probe_default))
        }
        "vegas" => {
            let options = VegasOptions {
                alpha: o.optional("alpha")?,
                beta: o.optional("beta")?,
                threshold: o.optional("threshold")?,
                smoothing: o.number("smoothing", 1.0, unit, "a number in (0, 1]")?,
            };
            let probe = o.probe()?;
            o.done("alpha, beta, threshold, smoothing, probe_limit and probe_multiplier")?;
            Ok((Box::new(Vegas::new(&options)), probe))
        }
        "gradient2" => {
            let options = Gradient2Options {
                smoothing: o.number("smoothing", 0.2, unit, "a number in (0, 1]")?,
                rtt_tolerance: o.number(
                    "rtt_tolerance",
                    1.5,
                    |v| (1.0..=100.0).contains(&v),
                    "a number from 1 to 100",
                )?,
                long_window: o.integer("long_window", 600, 1)? as u32,
                queue_size: o.integer("queue_size", 4, 0)? as u32,
            };
            let probe = o.probe()?;
            o.done("smoothing, rtt_tolerance, long_window, queue_size, probe_limit and probe_multiplier")?;
            Ok((Box::new(Gradient2::new(&options)), probe))
        }
        other => Err(value_error(format!(
            "algorithm must be {ALGORITHMS}, got {other:?}"
        ))),
    }
}

/// When each `async with` block's call was let in: one context variable for
/// every adaptive gauge, each task seeing its own, holding a linked stack of
/// `StartNode`s (immutable, so that a task's copy of the context never sees
/// another task's pushes).
struct Starts {
    get: Py<PyAny>,
    set: Py<PyAny>,
}

fn starts(py: Python<'_>) -> PyResult<&Starts> {
    static STARTS: PyOnceLock<Starts> = PyOnceLock::new();
    STARTS.get_or_try_init(py, || -> PyResult<Starts> {
        let var = py.import("contextvars")?.getattr("ContextVar")?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("default", py.None())?;
        let var = var.call(("brakes.AdaptiveGauge.starts",), Some(&kwargs))?;
        // Bound once: a call on the hot path then looks nothing up.
        Ok(Starts {
            get: var.getattr("get")?.unbind(),
            set: var.getattr("set")?.unbind(),
        })
    })
}

/// One entry of a task's stack of `async with` starts.
#[pyclass(frozen, module = "brakes._brakes")]
pub struct StartNode {
    gauge: usize,
    start_ns: u64,
    rest: Option<Py<StartNode>>,
}

fn push_start(py: Python<'_>, gauge: usize, start_ns: u64) -> PyResult<()> {
    let starts = starts(py)?;
    let top = starts.get.bind(py).call0()?;
    let rest = top.cast_into::<StartNode>().ok().map(Bound::unbind);
    let node = Py::new(
        py,
        StartNode {
            gauge,
            start_ns,
            rest,
        },
    )?;
    starts.set.bind(py).call1((node,))?;
    Ok(())
}

/// Takes the newest start of `gauge` off this context's stack.
fn pop_start(py: Python<'_>, gauge: usize) -> PyResult<Option<u64>> {
    let starts = starts(py)?;
    let top = starts.get.bind(py).call0()?;
    let mut skipped: Vec<(usize, u64)> = Vec::new();
    let mut node = top.cast_into::<StartNode>().ok();
    while let Some(here) = node {
        let entry = here.get();
        if entry.gauge == gauge {
            // Rebuild what lay above it (other gauges', rarely any).
            let mut rebuilt = entry.rest.as_ref().map(|rest| rest.clone_ref(py));
            for (gauge, start_ns) in skipped.into_iter().rev() {
                rebuilt = Some(Py::new(
                    py,
                    StartNode {
                        gauge,
                        start_ns,
                        rest: rebuilt,
                    },
                )?);
            }
            let value = rebuilt.map_or_else(|| py.None(), Py::into_any);
            starts.set.bind(py).call1((value,))?;
            return Ok(Some(entry.start_ns));
        }
        skipped.push((entry.gauge, entry.start_ns));
        node = entry.rest.as_ref().map(|rest| rest.bind(py).clone());
    }
    Ok(None)
}

thread_local! {
    /// When each `with` block's call was let in, in this thread.
    static THREAD_STARTS: RefCell<Vec<(usize, u64)>> = const { RefCell::new(Vec::new()) };
}

fn push_thread_start(gauge: usize, start_ns: u64) {
    THREAD_STARTS.with(|s| s.borrow_mut().push((gauge, start_ns)));
}

fn pop_thread_start(gauge: usize) -> Option<u64> {
    THREAD_STARTS.with(|s| {
        let mut s = s.borrow_mut();
        let at = s.iter().rposition(|(key, _)| *key == gauge)?;
        Some(s.remove(at).1)
    })
}

/// `await gauge.acquire()` (True) and `async with gauge` (None, and the
/// call's start noted for its `__aexit__`).
pub struct AdaptiveAcquireCall {
    wait: Acquire<Arc<CoreGauge>>,
    core: Arc<CoreAdaptive>,
    n: u64,
    timeout: Option<f64>,
    entering: bool,
}

impl Operation for AdaptiveAcquireCall {
    fn name(&self) -> &'static str {
        "AdaptiveGauge.acquire()"
    }
    fn poll(&mut self, py: Python<'_>, waker: Option<&Waker>) -> Poll<PyResult<Value>> {
        match self.wait.poll(waker) {
            Poll::Pending(sleep) => Poll::Pending(sleep),
            Poll::Ready(Ok(())) if self.entering => {
                let key = Arc::as_ptr(&self.core) as usize;
                if let Err(err) = push_start(py, key, self.core.now_ns()) {
                    let _ = self.core.release(self.n, Finished::Unmeasured);
                    return Poll::Ready(Err(err));
                }
                Poll::Ready(Ok(Value::None))
            }
            Poll::Ready(Ok(())) => Poll::Ready(Ok(Value::True)),
            Poll::Ready(Err(r)) => {
                Poll::Ready(Err(refusal(self.wait.gauge(), self.n, self.timeout, r)))
            }
        }
    }
    fn abandon(&mut self) {
        self.wait.abandon();
    }
}

awaitable!(
    /// The awaitable of `AdaptiveGauge.acquire()`.
    AdaptiveGaugeAcquire,
    AdaptiveAcquireCall
);

/// A concurrency limiter that finds its own limit: the callers over the limit
/// wait in FIFO order, as with `Gauge`, and each finished call moves the
/// limit by a limit algorithm from Netflix's concurrency-limits.
///
/// `release(rtt=...)` is a sample: the call's round trip in seconds;
/// `release(dropped=True)` says the call was dropped (a timeout, a refusal:
/// the service is overloaded). `with`, `async with` and `@gauge` measure
/// the call on the gauge's clock themselves; an exception listed in
/// `drop_on` counts as a drop, another `Exception` as a measured call, and a
/// cancellation as nothing. `algorithm` is "aimd", "vegas" or "gradient2",
/// with their published options (listed on the AdaptiveGauge page of the
/// documentation); the limit stays within
/// [`min_limit`, `max_limit`].
///
/// >>> from brakes import AdaptiveGauge
/// >>> from brakes.testing import ManualClock
/// >>> clock = ManualClock()
/// >>> gauge = AdaptiveGauge(algorithm="aimd", initial=4, timeout=1.0, clock=clock)
/// >>> for _ in range(4):
/// ...     gauge.acquire_blocking()
/// True
/// True
/// True
/// True
/// >>> clock.advance(0.1)
/// >>> gauge.release(rtt=0.1)  # fast, with the gauge full: one more
/// >>> gauge.limit
/// 5
/// >>> clock.advance(0.1)
/// >>> gauge.release(dropped=True, rtt=0.1)  # a drop: backs off
/// >>> gauge.limit
/// 4
#[pyclass(frozen, module = "brakes")]
pub struct AdaptiveGauge {
    core: Arc<CoreAdaptive>,
    algorithm: &'static str,
    bounds: Bounds,
    max_wait: Option<f64>,
    drop_on: Py<PyTuple>,
    name: Option<String>,
}

impl AdaptiveGauge {
    fn key(&self) -> usize {
        Arc::as_ptr(&self.core) as usize
    }

    fn call(&self, n: u64, timeout: Option<f64>, entering: bool) -> AdaptiveAcquireCall {
        AdaptiveAcquireCall {
            wait: Acquire::new(Arc::clone(self.core.gauge()), n, nanoseconds(timeout)),
            core: Arc::clone(&self.core),
            n,
            timeout,
            entering,
        }
    }

    fn block(&self, py: Python<'_>, n: u64, timeout: Option<f64>) -> PyResult<()> {
        let mut wait = Acquire::new(Arc::clone(self.core.gauge()), n, nanoseconds(timeout));
        let outcome = wait_here(py, &mut wait)?;
        outcome.map_err(|r| refusal(self.core.gauge(), n, timeout, r))
    }

    fn release_checked(&self, n: u64, how: Finished) -> PyResult<()> {
        self.release_checked_at(n, how, None)
    }

    fn release_checked_at(&self, n: u64, how: Finished, now: Option<u64>) -> PyResult<()> {
        let moved = self.core.release_at(n, how, now).map_err(|over| {
            value_error(format!(
                "release(n={n}) is more than the {} permits held",
                over.held
            ))
        })?;
        if let Some(moved) = moved {
            // No lock of ours is held any more: the logger may run anything.
            Python::attach(|py| self.log_moved(py, moved));
        }
        Ok(())
    }

    /// One line on `brakes.adaptive` (throttled there) for a limit that moved far.
    fn log_moved(&self, py: Python<'_>, moved: Moved) {
        let label = self.name.as_deref().unwrap_or("(unnamed)");
        let logged = py.import("brakes._log").and_then(|log| {
            log.call_method1("limit_moved", (label, self.algorithm, moved.from, moved.to))
        });
        if let Err(err) = logged {
            err.write_unraisable(py, None);
        }
    }

    /// Ends a `with` block that began at `start`: its outcome is the sample.
    fn finish(
        &self,
        py: Python<'_>,
        start: Option<u64>,
        exc_type: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        // One clock reading for the round trip and for the controller.
        let now = start.map(|_| self.core.now_ns());
        let how = self.finished(py, start.zip(now), exc_type);
        self.release_checked_at(1, how, now)
    }

    /// How a `with` block that began at `start` ended (`now` read at its end).
    fn finished(
        &self,
        py: Python<'_>,
        start_now: Option<(u64, u64)>,
        exc_type: &Bound<'_, PyAny>,
    ) -> Finished {
        let rtt_ns = start_now.map(|(start, now)| now.saturating_sub(start));
        let measured = rtt_ns.map_or(Finished::Unmeasured, |rtt_ns| Finished::Measured { rtt_ns });
        let Ok(exc_type) = exc_type.cast::<PyType>() else {
            return measured;
        };
        if exc_type.is_subclass(self.drop_on.bind(py)).unwrap_or(false) {
            Finished::Dropped { rtt_ns }
        } else if exc_type.is_subclass_of::<PyException>().unwrap_or(false) {
            measured
        } else {
            Finished::Unmeasured
        }
    }
}

fn exception_types<'py>(value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyTuple>> {
    let py = value.py();
    let tuple = if value.is_instance_of::<PyType>() {
        PyTuple::new(py, [value])?
    } else {
        value
            .cast::<PyTuple>()
            .map_err(|_| bad_drop_on(value))?
            .clone()
    };
    for item in tuple.iter() {
        let ok = item.cast::<PyType>().is_ok_and(|t| {
            t.is_subclass_of::<pyo3::exceptions::PyBaseException>()
                .unwrap_or(false)
        });
        if !ok {
            return Err(bad_drop_on(value));
        }
    }
    Ok(tuple)
}

fn bad_drop_on(value: &Bound<'_, PyAny>) -> PyErr {
    let repr = value.repr().map(|r| r.to_string()).unwrap_or_default();
    PyTypeError::new_err(format!(
        "drop_on must be an exception class or a tuple of them, got {repr}"
    ))
}

#[pymethods]
impl AdaptiveGauge {
    #[new]
    #[pyo3(signature = (*, algorithm = None, initial = 20, min_limit = 1, max_limit = 1000, max_wait = None, clock = None, drop_on = None, name = None, **algorithm_options))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        algorithm: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = arg::initial)] initial: i64,
        #[pyo3(from_py_with = arg::min_limit)] min_limit: i64,
        #[pyo3(from_py_with = arg::max_limit)] max_limit: i64,
        #[pyo3(from_py_with = arg::max_wait)] max_wait: Option<f64>,
        clock: Option<&Bound<'_, PyAny>>,
        drop_on: Option<&Bound<'_, PyAny>>,
        name: Option<&Bound<'_, PyAny>>,
        algorithm_options: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let gauge_name = super::arguments::name(name)?;
        let name = match algorithm {
            None => "gradient2".to_owned(),
            Some(given) => given.extract::<String>().map_err(|_| {
                let repr = given.repr().map(|r| r.to_string()).unwrap_or_default();
                PyTypeError::new_err(format!("algorithm must be {ALGORITHMS}, got {repr}"))
            })?,
        };
        let (core_algorithm, probe) = algorithm_from(&name, algorithm_options)?;
        let algorithm = match name.as_str() {
            "aimd" => "aimd",
            "vegas" => "vegas",
            _ => "gradient2",
        };
        if !(1..=1_000_000_000).contains(&min_limit) {
            return Err(value_error(format!(
                "min_limit must be an integer from 1 to 1000000000, got {min_limit}"
            )));
        }
        if !(min_limit..=1_000_000_000).contains(&max_limit) {
            return Err(value_error(format!(
                "max_limit must be an integer from min_limit ({min_limit}) to 1000000000, got {max_limit}"
            )));
        }
        if !(min_limit..=max_limit).contains(&initial) {
            return Err(value_error(format!(
                "initial must be an integer from min_limit ({min_limit}) to max_limit ({max_limit}), got {initial}"
            )));
        }
        let max_wait = wait_seconds("max_wait", max_wait)?;
        let drop_on = match drop_on {
            None => PyTuple::empty(py),
            Some(value) => exception_types(value)?,
        };
        let bounds = Bounds {
            min: min_limit as u64,
            max: max_limit as u64,
        };
        let core = CoreAdaptive::new(
            core_algorithm,
            initial as u64,
            bounds,
            probe,
            clock_argument(clock)?,
        );
        Ok(Self {
            core: Arc::new(core),
            algorithm,
            bounds,
            max_wait,
            drop_on: drop_on.unbind(),
            name: gauge_name,
        })
    }

    /// The gauge's name (in reprs, logs and metrics), or None.
    #[getter]
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// "aimd", "vegas" or "gradient2".
    #[getter]
    fn algorithm(&self) -> &'static str {
        self.algorithm
    }

    /// The number of permits now. It moves by itself: the algorithm's limit,
    /// or `probe_limit` while the gauge measures its no-load round trip.
    #[getter]
    fn limit(&self) -> u64 {
        self.core.gauge().limit()
    }

    #[getter]
    fn min_limit(&self) -> u64 {
        self.bounds.min
    }

    #[getter]
    fn max_limit(&self) -> u64 {
        self.bounds.max
    }

    /// The exception classes that count as drops in `with`, `async with`
    /// and `@gauge`.
    #[getter]
    fn drop_on(&self, py: Python<'_>) -> Py<PyTuple> {
        self.drop_on.clone_ref(py)
    }

    /// How long `with`, `async with` and `@gauge` wait; None is without bound.
    #[getter]
    fn max_wait(&self) -> Option<f64> {
        self.max_wait
    }

    /// Permits held now.
    #[getter]
    fn in_flight(&self) -> u64 {
        self.core.gauge().snapshot().in_flight
    }

    /// Permits free now.
    #[getter]
    fn available(&self) -> u64 {
        self.core.gauge().snapshot().available
    }

    /// Threads and tasks queued for a permit.
    #[getter]
    fn waiting(&self) -> u64 {
        self.core.gauge().snapshot().waiting
    }

    /// Takes `n` permits if they are free now and nobody is queued for them;
    /// never waits.
    #[pyo3(signature = (n = 1))]
    fn try_acquire(&self, #[pyo3(from_py_with = arg::n)] n: i64) -> PyResult<bool> {
        let n = weight(n)?;
        let gauge = self.core.gauge();
        match gauge.try_acquire(n, Patience::FailFast) {
            Admission::Acquired => Ok(true),
            Admission::Busy => {
                gauge.count_rejected();
                Ok(false)
            }
            Admission::TooLarge { limit } => {
                Err(refusal(gauge, n, None, Refusal::TooLarge { most: limit }))
            }
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
    ) -> PyResult<Py<AdaptiveGaugeAcquire>> {
        let n = weight(n)?;
        let timeout = wait_seconds("timeout", timeout)?;
        AdaptiveGaugeAcquire::new(py, self.call(n, timeout, false))
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
        self.block(py, n, timeout).map(|()| true)
    }

    /// Gives back `n` permits. `rtt` (seconds) is the call's round trip, a
    /// sample for the algorithm; `dropped=True` says the call was dropped
    /// (then `rtt`, if given, only dates its start). A release with neither
    /// is no sample.
    #[pyo3(signature = (n = 1, *, rtt = None, dropped = None))]
    fn release(
        &self,
        #[pyo3(from_py_with = arg::n)] n: i64,
        #[pyo3(from_py_with = arg::rtt)] rtt: Option<f64>,
        dropped: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let n = weight(n)?;
        let dropped = match dropped {
            None => false,
            Some(given) => given.extract::<bool>().map_err(|_| {
                let repr = given.repr().map(|r| r.to_string()).unwrap_or_default();
                PyTypeError::new_err(format!("dropped must be True or False, got {repr}"))
            })?,
        };
        let rtt_ns = match rtt {
            None => None,
            Some(s) if (0.0..1e9).contains(&s) => Some((s * 1e9).round() as u64),
            Some(s) => {
                return Err(value_error(format!(
                    "rtt must be None or a finite number of seconds >= 0, got {s}"
                )))
            }
        };
        let how = match (rtt_ns, dropped) {
            (_, true) => Finished::Dropped { rtt_ns },
            (Some(rtt_ns), false) => Finished::Measured { rtt_ns },
            (None, false) => Finished::Unmeasured,
        };
        self.release_checked(n, how)
    }

    /// True when an `acquire()` of one permit would have to wait.
    fn locked(&self) -> bool {
        self.core.gauge().would_wait(1)
    }

    /// A frozen snapshot of the gauge, its limit and its samples.
    fn stats(&self) -> AdaptiveGaugeStats {
        let s = self.core.snapshot();
        let seconds = |ns: Option<f64>| ns.map(|ns| ns / 1e9);
        AdaptiveGaugeStats {
            limit: s.gauge.limit,
            in_flight: s.gauge.in_flight,
            available: s.gauge.available,
            waiting: s.gauge.waiting,
            acquired: s.gauge.acquired,
            waited: s.gauge.waited,
            rejected: s.gauge.rejected,
            timed_out: s.gauge.timed_out,
            cancelled: s.gauge.cancelled,
            algorithm_limit: s.algorithm_limit,
            samples: s.samples,
            drops: s.drops,
            probes: s.probes,
            probing: s.probing,
            rtt: seconds(s.last_rtt_ns.map(|ns| ns as f64)),
            rtt_noload: seconds(s.estimates.no_load),
            rtt_long: seconds(s.estimates.long),
            wait: s.gauge.wait.into(),
        }
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.block(py, 1, self.max_wait)?;
        push_thread_start(self.key(), self.core.now_ns());
        Ok(true)
    }

    #[pyo3(signature = (exc_type, _exc = None, _tb = None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: &Bound<'_, PyAny>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let start = pop_thread_start(self.key());
        self.finish(py, start, exc_type)
    }

    fn __aenter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        enter::<AdaptiveGaugeAcquire>(py, self.call(1, self.max_wait, true))
    }

    #[pyo3(signature = (exc_type, _exc = None, _tb = None))]
    fn __aexit__(
        &self,
        py: Python<'_>,
        exc_type: &Bound<'_, PyAny>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<Ready>> {
        // The permit goes back even if its start cannot be read.
        let start = pop_start(py, self.key());
        self.finish(py, start.as_ref().ok().copied().flatten(), exc_type)?;
        start?;
        ready(py)
    }

    /// `@gauge` on a def or async def: each call holds a permit, waiting as
    /// `max_wait` allows, and is measured.
    fn __call__(slf: &Bound<'_, Self>, func: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        limit_calls(slf.as_any(), Some(func), None)
    }

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        visit.call(&self.drop_on)
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let this = slf.get();
        let s = this.core.gauge().snapshot();
        let name = this
            .name
            .as_ref()
            .map_or_else(String::new, |n| format!(" name={n:?}"));
        Ok(format!(
            "<{}.{}{name} algorithm={:?} limit={} in_flight={} waiting={} max_wait={}>",
            slf.get_type().module()?,
            slf.get_type().qualname()?,
            this.algorithm,
            s.limit,
            s.in_flight,
            s.waiting,
            wait_repr(this.max_wait)
        ))
    }
}

/// A frozen snapshot of an adaptive gauge: its state, its limit and what it
/// has measured.
#[pyclass(frozen, get_all, module = "brakes")]
pub struct AdaptiveGaugeStats {
    /// The limit at the time of the snapshot (pinned low while probing).
    limit: u64,
    /// Permits held.
    in_flight: u64,
    /// Permits free.
    available: u64,
    /// Threads and tasks queued.
    waiting: u64,
    /// Acquisitions that succeeded, at once or after waiting.
    acquired: u64,
    /// Of those, the ones that had to wait.
    waited: u64,
    /// Refusals without waiting.
    rejected: u64,
    /// Waits that ran out of time.
    timed_out: u64,
    /// Waits that were cancelled or interrupted.
    cancelled: u64,
    /// The algorithm's limit, which `limit` returns to after a probe.
    algorithm_limit: u64,
    /// Releases that carried a round trip.
    samples: u64,
    /// Releases that reported a drop.
    drops: u64,
    /// No-load round trips measured at the pinned limit so far.
    probes: u64,
    /// Whether the limit is pinned to measure the no-load round trip now.
    probing: bool,
    /// The latest round trip, in seconds.
    rtt: Option<f64>,
    /// The no-load round trip the algorithm compares against, in seconds
    /// (Vegas and Gradient2).
    rtt_noload: Option<f64>,
    /// Gradient2's long-window average round trip, in seconds.
    rtt_long: Option<f64>,
    /// How long acquisitions waited, each one counted (0 for those that
    /// did not wait).
    wait: Histogram,
}

#[pymethods]
impl AdaptiveGaugeStats {
    fn __repr__(&self) -> String {
        let opt = |v: Option<f64>| v.map_or_else(|| "None".to_owned(), |v| format!("{v:?}"));
        format!(
            "AdaptiveGaugeStats(limit={}, in_flight={}, available={}, waiting={}, acquired={}, \
             waited={}, rejected={}, timed_out={}, cancelled={}, algorithm_limit={}, samples={}, \
             drops={}, probes={}, probing={}, rtt={}, rtt_noload={}, rtt_long={}, wait={})",
            self.limit,
            self.in_flight,
            self.available,
            self.waiting,
            self.acquired,
            self.waited,
            self.rejected,
            self.timed_out,
            self.cancelled,
            self.algorithm_limit,
            self.samples,
            self.drops,
            self.probes,
            if self.probing { "True" } else { "False" },
            opt(self.rtt),
            opt(self.rtt_noload),
            opt(self.rtt_long),
            self.wait.shown()
        )
    }
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<AdaptiveGauge>()?;
    module.add_class::<AdaptiveGaugeStats>()?;
    super::awaitable::register::<AdaptiveGaugeAcquire>(module)
}
