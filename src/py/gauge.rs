//! `brakes.Gauge`: the Python face of the core gauge.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::arguments::{
    arg, limit as check_limit, name as check_name, nanoseconds, wait_repr, wait_seconds, weight,
};
use super::awaitable::{awaitable, enter, enter_with, ready, Operation, Ready, Value};
use super::blocking::wait_here;
use super::clock::clock_argument;
use super::decorator::limit_calls;
use super::errors::{overloaded, value_error};
use super::hold_sample;
use super::keys::key_argument;
use super::redis::{backend_argument, log_failure, log_reached_again, remote_error, warn};
use super::stats::{stats_class, Histogram};
use crate::core::gauge::{Acquire, Admission, Gauge as CoreGauge, Patience, Snapshot};
use crate::core::histogram::HistogramSnapshot;
use crate::core::keyed_gauge::{KeyedAcquire, KeyedAdmission, KeyedGauges};
use crate::core::keys::Key;
use crate::core::redis::bucket::RemoteError;
use crate::core::redis::gauge::{RemoteGauge, RemoteGaugeAcquire, RemoteGaugeSnapshot};
use crate::core::wait::{Outcome, Poll, Refusal, Wait, Waker};

/// The error for a caller that gave up after waiting `timeout` seconds.
pub(crate) fn refusal(core: &CoreGauge, n: u64, timeout: Option<f64>, refusal: Refusal) -> PyErr {
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

/// The error for a shared gauge's caller that got no permit.
fn shared_refusal(
    gauge: &RemoteGauge,
    n: u64,
    timeout: Option<f64>,
    refusal: Refusal<RemoteError>,
) -> PyErr {
    match refusal {
        Refusal::Failed(err) => remote_error(err, &gauge.name),
        Refusal::TooLarge { most } => value_error(format!(
            "n={n} is more than the gauge's limit of {most}: it could never be granted"
        )),
        _ => {
            let within = match timeout {
                Some(waited) if waited > 0.0 => format!("within {waited} s"),
                _ => "without waiting".to_owned(),
            };
            overloaded(format!(
                "shared gauge {:?} is full: no permit {within} (limit {}, {} held here)",
                gauge.name,
                gauge.limit,
                gauge.held()
            ))
        }
    }
}

/// The error for a caller that got none of a key's permits.
fn keyed_refusal(wait: &KeyedAcquire, n: u64, timeout: Option<f64>, refusal: Refusal) -> PyErr {
    let key = wait.key().describe();
    if let Refusal::TooLarge { most } = refusal {
        return value_error(format!(
            "n={n} is more than the gauge's limit of {most}: it could never be granted"
        ));
    }
    if wait.keys_full() {
        let most = wait.gauges().max_keys().unwrap_or_default();
        return overloaded(format!(
            "gauge has max_keys={most} keys in use: no permit for key {key}"
        ));
    }
    let s = wait.gauges().snapshot_of(wait.key());
    let within = match timeout {
        Some(waited) if waited > 0.0 => format!("within {waited} s"),
        _ => "without waiting".to_owned(),
    };
    overloaded(format!(
        "gauge is full for key {key}: no permit {within} ({} of {} in flight, {} waiting)",
        s.in_flight, s.limit, s.waiting
    ))
}

/// A gauge's wait: on this process's gauge, on one key's, or on a shared one.
pub enum GaugeWait {
    Local(Acquire<Arc<CoreGauge>>),
    Keyed(KeyedAcquire),
    Remote(RemoteGaugeAcquire),
}

impl GaugeWait {
    fn result(
        &mut self,
        py: Python<'_>,
        n: u64,
        timeout: Option<f64>,
        outcome: Outcome<(), RemoteError>,
    ) -> PyResult<()> {
        match self {
            Self::Local(wait) => outcome.map_err(|r| match r {
                Refusal::Failed(err) => remote_error(err, ""),
                Refusal::Busy { retry_after_ns } => {
                    refusal(wait.gauge(), n, timeout, Refusal::Busy { retry_after_ns })
                }
                Refusal::TimedOut => refusal(wait.gauge(), n, timeout, Refusal::TimedOut),
                Refusal::ShutDown => refusal(wait.gauge(), n, timeout, Refusal::ShutDown),
                Refusal::TooLarge { most } => {
                    refusal(wait.gauge(), n, timeout, Refusal::TooLarge { most })
                }
            }),
            Self::Keyed(wait) => outcome.map_err(|r| match r {
                Refusal::Failed(err) => remote_error(err, ""),
                Refusal::Busy { retry_after_ns } => {
                    keyed_refusal(wait, n, timeout, Refusal::Busy { retry_after_ns })
                }
                Refusal::TimedOut => keyed_refusal(wait, n, timeout, Refusal::TimedOut),
                Refusal::ShutDown => keyed_refusal(wait, n, timeout, Refusal::ShutDown),
                Refusal::TooLarge { most } => {
                    keyed_refusal(wait, n, timeout, Refusal::TooLarge { most })
                }
            }),
            Self::Remote(wait) => {
                let failure = wait.failure.take();
                let gauge = wait.gauge();
                if let Some(failure) = failure {
                    log_failure(py, &gauge.backend, &gauge.name, &failure);
                } else {
                    log_reached_again(py, &gauge.backend, &gauge.name);
                }
                outcome.map_err(|r| shared_refusal(wait.gauge(), n, timeout, r))
            }
        }
    }
}

impl Wait for GaugeWait {
    type Output = Outcome<(), RemoteError>;
    fn poll(&mut self, waker: Option<&Waker>) -> Poll<Self::Output> {
        match self {
            Self::Local(wait) => wait.poll(waker).map(|o| o.map_err(Refusal::widen)),
            Self::Keyed(wait) => wait.poll(waker).map(|o| o.map_err(Refusal::widen)),
            Self::Remote(wait) => wait.poll(waker),
        }
    }
    fn abandon(&mut self) {
        match self {
            Self::Local(wait) => wait.abandon(),
            Self::Keyed(wait) => wait.abandon(),
            Self::Remote(wait) => wait.abandon(),
        }
    }
}

/// `await gauge.acquire()` (True) and `async with gauge` (None).
pub struct AcquireCall {
    wait: GaugeWait,
    n: u64,
    timeout: Option<f64>,
    value: fn() -> Value,
    /// For `async with`: the block may be timed once it holds its permit.
    times_hold: bool,
}

impl Operation for AcquireCall {
    fn name(&self) -> &'static str {
        "Gauge.acquire()"
    }
    fn poll(&mut self, py: Python<'_>, waker: Option<&Waker>) -> Poll<PyResult<Value>> {
        let (n, timeout, value) = (self.n, self.timeout, self.value);
        match self.wait.poll(waker) {
            Poll::Pending(sleep) => Poll::Pending(sleep),
            Poll::Ready(outcome) => {
                let result = self.wait.result(py, n, timeout, outcome);
                if self.times_hold && result.is_ok() {
                    if let GaugeWait::Local(wait) = &self.wait {
                        hold_sample::task_entered(py, wait.gauge());
                    }
                }
                Poll::Ready(result.map(|()| value()))
            }
        }
    }
    fn abandon(&mut self) {
        self.wait.abandon();
    }
    fn woken_by_the_client(&self) -> bool {
        matches!(self.wait, GaugeWait::Remote(_))
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
/// `key=` on every form gives each key `limit` permits of its own (at most 4
/// requests per host, 2 exports per user), FIFO per key; a key costs memory
/// only while it holds permits or is waited for. `max_keys` bounds the keys
/// in use at once: a new key beyond it is refused as the gauge being full.
///
/// >>> gauge = Gauge(10, max_wait=0)
/// >>> with gauge:
/// ...     gauge.in_flight
/// 1
#[pyclass(frozen, subclass, module = "brakes")]
pub struct Gauge {
    core: Arc<CoreGauge>,
    /// The permits of each key (`key=`), for the keys in use.
    keys: Arc<KeyedGauges>,
    remote: Option<Arc<RemoteGauge>>,
    backend_object: Option<Py<PyAny>>,
    name: Option<String>,
    max_wait: Option<f64>,
}

impl Gauge {
    fn wait(&self, n: u64, timeout: Option<f64>) -> GaugeWait {
        let timeout = nanoseconds(timeout);
        match &self.remote {
            None => GaugeWait::Local(Acquire::new(self.core.clone(), n, timeout)),
            Some(remote) => {
                GaugeWait::Remote(RemoteGaugeAcquire::new(Arc::clone(remote), n, timeout))
            }
        }
    }

    /// The wait for `key` (None: the gauge's own permits).
    fn wait_for(&self, key: Key, n: u64, timeout: Option<f64>) -> GaugeWait {
        match key {
            Key::Shared => self.wait(n, timeout),
            key => GaugeWait::Keyed(KeyedAcquire::new(
                Arc::clone(&self.keys),
                key,
                n,
                nanoseconds(timeout),
            )),
        }
    }

    /// The `key=` argument; a shared gauge has no keys (yet).
    fn key_of(&self, key: Option<&Bound<'_, PyAny>>) -> PyResult<Key> {
        let key = key_argument(key)?;
        if key != Key::Shared && self.remote.is_some() {
            return Err(value_error(
                "key= is for a gauge of this process: a gauge shared through a backend has no per-key permits".to_owned(),
            ));
        }
        Ok(key)
    }

    fn call(&self, n: u64, timeout: Option<f64>, value: fn() -> Value) -> AcquireCall {
        self.call_for(Key::Shared, n, timeout, value)
    }

    fn call_for(
        &self,
        key: Key,
        n: u64,
        timeout: Option<f64>,
        value: fn() -> Value,
    ) -> AcquireCall {
        AcquireCall {
            wait: self.wait_for(key, n, timeout),
            n,
            timeout,
            value,
            times_hold: false,
        }
    }

    /// Waits in this thread, with the GIL released while parked.
    fn block(&self, py: Python<'_>, n: u64, timeout: Option<f64>) -> PyResult<bool> {
        self.block_for(py, Key::Shared, n, timeout)
    }

    fn block_for(&self, py: Python<'_>, key: Key, n: u64, timeout: Option<f64>) -> PyResult<bool> {
        let mut wait = self.wait_for(key, n, timeout);
        let outcome = wait_here(py, &mut wait)?;
        wait.result(py, n, timeout, outcome).map(|()| true)
    }

    fn stats_of_all(&self) -> GaugeStats {
        match &self.remote {
            None => self.totals(),
            Some(remote) => GaugeStats::shared(&remote.snapshot()),
        }
    }

    fn release_key(&self, key: &Key, n: u64) -> PyResult<()> {
        if *key == Key::Shared {
            return self.release_checked(n);
        }
        self.keys.release(key, n).map_err(|over| {
            value_error(format!(
                "release(n={n}, key={}) is more than the {} permits held for that key",
                key.describe(),
                over.held
            ))
        })
    }

    /// The totals over the gauge's own permits and every key's.
    fn totals(&self) -> GaugeStats {
        let keyed = self.keys.snapshot();
        let mut stats = GaugeStats::local(&self.core.snapshot());
        let k = &keyed.totals;
        stats.in_flight += k.in_flight;
        stats.available += k.available;
        stats.waiting += k.waiting;
        stats.acquired += k.acquired;
        stats.waited += k.waited;
        stats.rejected += k.rejected + keyed.refused_keys;
        stats.timed_out += k.timed_out;
        stats.cancelled += k.cancelled;
        stats.keys = keyed.keys;
        stats.wait = Histogram(stats.wait.0.merged(&k.wait));
        stats
    }

    fn release_checked(&self, n: u64) -> PyResult<()> {
        if let Some(remote) = &self.remote {
            return remote.release(n).map_err(|held| {
                value_error(format!(
                    "release(n={n}) is more than the {held} permits held"
                ))
            });
        }
        self.core.release(n).map(|_| ()).map_err(|over| {
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
    #[pyo3(signature = (limit = 1, *, max_wait = None, backend = None, name = None, lease = 30.0, clock = None, max_keys = None))]
    fn new(
        #[pyo3(from_py_with = arg::limit)] limit: i64,
        #[pyo3(from_py_with = arg::max_wait)] max_wait: Option<f64>,
        backend: Option<&Bound<'_, PyAny>>,
        name: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = arg::lease)] lease: f64,
        clock: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = arg::max_keys)] max_keys: Option<i64>,
    ) -> PyResult<Self> {
        let name = check_name(name)?;
        let max_keys = match max_keys {
            None => None,
            Some(m) if m >= 1 => Some(m as usize),
            Some(m) => {
                return Err(value_error(format!(
                    "max_keys must be None or 1 or more, got {m}"
                )))
            }
        };
        let limit = check_limit(limit)?;
        let max_wait = wait_seconds("max_wait", max_wait)?;
        if !lease.is_finite() || !(0.1..=86_400.0).contains(&lease) {
            return Err(value_error(format!(
                "lease must be a number of seconds from 0.1 to 86400, got {lease}"
            )));
        }
        let remote = backend_argument(backend, name.as_deref(), clock)?.map(|(core, name)| {
            let gauge = RemoteGauge::new(core, name, limit, std::time::Duration::from_secs_f64(lease));
            let gauge_name = gauge.name.clone();
            gauge.set_on_lost(Box::new(move |count| {
                // From the renewal task, with no lock held.
                let _ = Python::try_attach(|py| {
                    warn(py, &format!(
                        "brakes gauge {gauge_name:?}: {count} lease(s) lapsed before they could be renewed (a long pause?); their permits were given to others, and releasing them frees nothing"
                    ));
                });
            }));
            gauge
        });
        let clock = clock_argument(clock)?;
        Ok(Self {
            core: Arc::new(CoreGauge::with_clock(limit, Arc::clone(&clock))),
            keys: Arc::new(KeyedGauges::new(limit, max_keys, clock)),
            remote,
            backend_object: backend.filter(|b| !b.is_none()).map(|b| b.clone().unbind()),
            name,
            max_wait,
        })
    }

    /// The gauge's name (in reprs, logs, metrics, and Redis with a
    /// backend), or None.
    #[getter]
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The Redis backend the gauge is shared through, or None.
    #[getter]
    fn backend(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.backend_object.as_ref().map(|b| b.clone_ref(py))
    }

    /// With a backend: how long a permit's lease lasts unless renewed.
    #[getter]
    fn lease(&self) -> Option<f64> {
        self.remote.as_ref().map(|r| r.lease.as_secs_f64())
    }

    /// The number of permits; raising it admits waiters at once, lowering it
    /// takes effect as permits come back. A caller queued for more than a
    /// lowered limit keeps its place for when it rises, passed over until
    /// then. A limit of 0 closes the gauge.
    #[getter]
    fn get_limit(&self) -> u64 {
        self.core.limit()
    }

    #[setter]
    fn set_limit(&self, #[pyo3(from_py_with = arg::limit)] limit: i64) -> PyResult<()> {
        if self.remote.is_some() {
            return Err(value_error(
                "a shared gauge's limit is part of its settings in Redis: build a gauge with another name to change it".to_owned(),
            ));
        }
        let limit = check_limit(limit)?;
        // Waking waiters runs Python, so another thread may set the limit
        // meanwhile: each part reads the last value stored under its own
        // lock, and the last one stored holds everywhere.
        self.keys.store_limit(limit);
        self.core.set_limit_to(|| self.keys.stored_limit());
        self.keys.apply_limit();
        Ok(())
    }

    /// How long `with`, `async with` and `@gauge` wait; None is without bound.
    #[getter]
    fn max_wait(&self) -> Option<f64> {
        self.max_wait
    }

    /// With `key=`: how many keys may be in use at once (None: no bound).
    #[getter]
    fn max_keys(&self) -> Option<usize> {
        self.keys.max_keys()
    }

    /// Permits held now (over every key).
    #[getter]
    fn in_flight(&self) -> u64 {
        self.stats_of_all().in_flight
    }

    /// Permits free now (0 while more are held than a lowered limit allows).
    #[getter]
    fn available(&self) -> u64 {
        self.stats_of_all().available
    }

    /// Threads and tasks queued for a permit.
    #[getter]
    fn waiting(&self) -> u64 {
        self.stats_of_all().waiting
    }

    /// Takes `n` permits if they are free now and nobody is queued for them;
    /// never waits.
    #[pyo3(signature = (n = 1, *, key = None))]
    fn try_acquire(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::n)] n: i64,
        key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let n = weight(n)?;
        if key.is_some() {
            let key = self.key_of(key)?;
            if key != Key::Shared {
                return match self.keys.try_acquire(&key, n) {
                    KeyedAdmission::Gauge(Admission::Acquired) => Ok(true),
                    KeyedAdmission::Gauge(Admission::Busy) | KeyedAdmission::KeysFull => Ok(false),
                    KeyedAdmission::Gauge(Admission::TooLarge { limit }) => Err(refusal(
                        &self.core,
                        n,
                        None,
                        Refusal::TooLarge { most: limit },
                    )),
                };
            }
        }
        if self.remote.is_some() {
            return match self.block(py, n, Some(0.0)) {
                Ok(taken) => Ok(taken),
                Err(err) if err.is_instance_of::<super::errors::Overloaded>(py) => Ok(false),
                Err(err) => Err(err),
            };
        }
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
    #[pyo3(signature = (n = 1, *, timeout = None, key = None))]
    fn acquire(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::n)] n: i64,
        #[pyo3(from_py_with = arg::timeout)] timeout: Option<f64>,
        key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<GaugeAcquire>> {
        let n = weight(n)?;
        let timeout = wait_seconds("timeout", timeout)?;
        let key = self.key_of(key)?;
        GaugeAcquire::new(py, self.call_for(key, n, timeout, || Value::True))
    }

    /// Waits in this thread, with the GIL released, for `n` permits and
    /// returns True. Raises `Overloaded` if `timeout` seconds pass first.
    #[pyo3(signature = (n = 1, *, timeout = None, key = None))]
    fn acquire_blocking(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::n)] n: i64,
        #[pyo3(from_py_with = arg::timeout)] timeout: Option<f64>,
        key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let n = weight(n)?;
        let timeout = wait_seconds("timeout", timeout)?;
        let key = self.key_of(key)?;
        self.block_for(py, key, n, timeout)
    }

    /// Gives back `n` permits (of `key`'s, with `key=`); more than are held
    /// is a `ValueError`.
    #[pyo3(signature = (n = 1, *, key = None))]
    fn release(
        &self,
        #[pyo3(from_py_with = arg::n)] n: i64,
        key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let n = weight(n)?;
        if key.is_none() {
            return self.release_checked(n);
        }
        let key = self.key_of(key)?;
        self.release_key(&key, n)
    }

    /// True when an `acquire()` of one permit would have to wait.
    fn locked(&self) -> bool {
        match &self.remote {
            None => self.core.would_wait(1),
            Some(_) => self.stats_of_all().available == 0,
        }
    }

    /// A frozen snapshot of the gauge's state and counters. With a backend
    /// it tells what this process holds and has done; the permits held
    /// by every process are in Redis.
    ///
    /// With `key=`, the state of that key's permits (a key not in use
    /// answers as a new one). Without, the totals over the gauge's own
    /// permits and every key's: `in_flight`, `available` and `waiting` add
    /// up the keys in use, and `keys` counts them.
    #[pyo3(signature = (*, key = None))]
    fn stats(&self, key: Option<&Bound<'_, PyAny>>) -> PyResult<GaugeStats> {
        if key.is_some() {
            let key = self.key_of(key)?;
            if key != Key::Shared {
                return Ok(GaugeStats::local(&self.keys.snapshot_of(&key)));
            }
            return Ok(self.stats_of_all());
        }
        Ok(self.stats_of_all())
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        let entered = self.block(py, 1, self.max_wait)?;
        if self.remote.is_none() {
            hold_sample::thread_entered(&self.core);
        }
        Ok(entered)
    }

    #[pyo3(signature = (*_exc_info))]
    fn __exit__(&self, _exc_info: &Bound<'_, PyTuple>) -> PyResult<()> {
        hold_sample::thread_leaving(&self.core);
        self.release_checked(1)
    }

    fn __aenter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let call = self.call(1, self.max_wait, || Value::None);
        if self.remote.is_some() {
            return enter::<GaugeAcquire>(py, call);
        }
        // A block that has to wait is timed by its awaitable once it holds
        // the permit (`times_hold`); one that holds it at once, here.
        enter_with::<GaugeAcquire>(
            py,
            call,
            || hold_sample::task_entered(py, &self.core),
            |call| call.times_hold = true,
        )
    }

    #[pyo3(signature = (*_exc_info))]
    fn __aexit__(&self, py: Python<'_>, _exc_info: &Bound<'_, PyTuple>) -> PyResult<Py<Ready>> {
        hold_sample::task_leaving(py, &self.core);
        self.release_checked(1)?;
        ready(py)
    }

    /// `@gauge` on a def or async def: each call holds a permit, waiting as
    /// `max_wait` allows.
    ///
    /// `gauge(key=...)` is the same for one key's permits: `with
    /// gauge(key="alice"):`, `async with`, or `@gauge(key=lambda user, *a,
    /// **kw: user.id)`, whose function is given each call's arguments.
    #[pyo3(signature = (func = None, /, *, key = None, **kwargs))]
    fn __call__(
        slf: &Bound<'_, Self>,
        func: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        if kwargs.is_some() || key.is_some_and(PyAnyMethods::is_callable) {
            // A wrong keyword, or a key function: Python's side.
            let all = kwargs.map_or_else(|| PyDict::new(py), Clone::clone);
            if let Some(key) = key {
                all.set_item("key", key)?;
            }
            return limit_calls(slf.as_any(), func, Some(&all));
        }
        if let (Some(func), None) = (func, key) {
            return limit_calls(slf.as_any(), Some(func), None);
        }
        // A key value (or none: the limiter's own).
        let key_value = slf.get().key_of(key)?;
        let key_object = key.map_or_else(|| py.None(), |k| k.clone().unbind());
        let keyed = Py::new(
            py,
            GaugeKey {
                gauge: slf.clone().unbind(),
                key: key_value,
                key_object,
            },
        )?;
        match func {
            None => Ok(keyed.into_any()),
            Some(func) => limit_calls(keyed.bind(py).as_any(), Some(func), None),
        }
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let this = slf.get();
        let s = this.stats_of_all();
        let max_wait = wait_repr(this.max_wait);
        let shared = match &this.name {
            Some(name) => format!(
                " name={name:?}{}",
                if this.remote.is_some() { " shared" } else { "" }
            ),
            None => String::new(),
        };
        Ok(format!(
            "<{}.{}{shared} limit={} in_flight={} waiting={} max_wait={max_wait}>",
            slf.get_type().module()?,
            slf.get_type().qualname()?,
            s.limit,
            s.in_flight,
            s.waiting
        ))
    }
}

/// `gauge(key="alice")`: the gauge's `with`, `async with` and decorator forms
/// for one key's permits, waiting as the gauge's `max_wait` allows.
#[pyclass(frozen, module = "brakes")]
pub struct GaugeKey {
    gauge: Py<Gauge>,
    key: Key,
    key_object: Py<PyAny>,
}

#[pymethods]
impl GaugeKey {
    /// The gauge.
    #[getter]
    fn gauge(&self, py: Python<'_>) -> Py<Gauge> {
        self.gauge.clone_ref(py)
    }

    /// The key.
    #[getter]
    fn key(&self, py: Python<'_>) -> Py<PyAny> {
        self.key_object.clone_ref(py)
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        let gauge = self.gauge.get();
        gauge.block_for(py, self.key.clone(), 1, gauge.max_wait)
    }

    #[pyo3(signature = (*_exc_info))]
    fn __exit__(&self, _exc_info: &Bound<'_, PyTuple>) -> PyResult<()> {
        self.gauge.get().release_key(&self.key, 1)
    }

    fn __aenter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let gauge = self.gauge.get();
        enter::<GaugeAcquire>(
            py,
            gauge.call_for(self.key.clone(), 1, gauge.max_wait, || Value::None),
        )
    }

    #[pyo3(signature = (*_exc_info))]
    fn __aexit__(&self, py: Python<'_>, _exc_info: &Bound<'_, PyTuple>) -> PyResult<Py<Ready>> {
        self.gauge.get().release_key(&self.key, 1)?;
        ready(py)
    }

    /// `@gauge(key="alice")`: each call holds one of the key's permits.
    fn __call__(slf: &Bound<'_, Self>, func: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        limit_calls(slf.as_any(), Some(func), None)
    }

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        visit.call(&self.gauge)?;
        visit.call(&self.key_object)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "<brakes.GaugeKey key={} of {}>",
            self.key.describe(),
            self.gauge.bind(py).repr()?
        ))
    }
}

impl GaugeStats {
    fn local(s: &Snapshot) -> Self {
        Self {
            limit: s.limit,
            in_flight: s.in_flight,
            available: s.available,
            waiting: s.waiting,
            acquired: s.acquired,
            waited: s.waited,
            rejected: s.rejected,
            timed_out: s.timed_out,
            cancelled: s.cancelled,
            leases_lost: 0,
            backend_errors: 0,
            keys: 0,
            wait: s.wait.into(),
            hold: s.hold.into(),
        }
    }

    fn shared(s: &RemoteGaugeSnapshot) -> Self {
        Self {
            limit: s.limit,
            in_flight: s.held,
            available: s.limit.saturating_sub(s.held),
            waiting: s.waiting,
            acquired: s.acquired,
            waited: s.waited,
            rejected: s.rejected,
            timed_out: s.timed_out,
            cancelled: s.cancelled,
            leases_lost: s.leases_lost,
            backend_errors: s.backend_errors,
            keys: 0,
            wait: s.wait.into(),
            hold: HistogramSnapshot::default().into(),
        }
    }
}

stats_class!(
    /// A frozen snapshot of a gauge: its state and what it has done so far.
    GaugeStats {
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
        /// With a backend: permits whose lease lapsed before it was renewed
        /// (a pause longer than the lease); their release frees nothing.
        leases_lost: u64,
        /// With a backend: decisions Redis failed (unreachable, or an error).
        backend_errors: u64,
        /// With `key=`: the keys in use (holding permits, or waited for).
        keys: u64,
        /// How long acquisitions waited, each one counted (0 for those
        /// that did not wait).
        wait: Histogram,
        /// How long permits were held, timed on a sample of the `with`,
        /// `async with` and `@gauge` blocks without a key (at most one block
        /// at a time; a bare `release()` cannot say which acquisition it
        /// ends).
        hold: Histogram,
    }
);

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Gauge>()?;
    module.add_class::<GaugeStats>()?;
    module.add_class::<GaugeKey>()?;
    module.add_class::<Histogram>()?;
    super::awaitable::register::<GaugeAcquire>(module)
}
