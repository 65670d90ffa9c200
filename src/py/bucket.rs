//! `brakes.TokenBucket` and `brakes.LeakyBucket`: the Python face of the core
//! bucket. Both extend one native base that carries the limiter protocol.

use std::sync::Arc;

use parking_lot::Mutex;

use pyo3::prelude::*;
use pyo3::types::PyTuple;

use super::arguments::{arg, nanoseconds, wait_repr, wait_seconds, weight};
use super::awaitable::{awaitable, enter, ready, Operation, Ready, Value};
use super::blocking::wait_here;
use super::clock::clock_argument;
use super::decorator::limit_calls;
use super::errors::{rate_limited, value_error};
use super::keys::key_argument;
use super::redis::{backend_argument, log_failure, log_reached_again, remote_error};
use super::stats::{stats_class, Histogram};
use crate::core::bucket::{Acquire, Attempt, Bucket as CoreBucket, BucketSnapshot, Shape};
use crate::core::keys::Key;
use crate::core::pace::{decimal_fraction, Pace};
use crate::core::redis::backend::OnError;
use crate::core::redis::bucket::{
    PeekFailure, RemoteAcquire, RemoteBucket, RemoteError, RemoteSnapshot,
    MAX_TICKS_PER_NS as MAX_SHARED_TICKS_PER_NS,
};
use crate::core::redis::call::Call;
use crate::core::wait::{Outcome, Poll, Refusal, Wait, Waker};

fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

fn refused(retry_after_ns: u64) -> PyErr {
    let retry_after = seconds(retry_after_ns);
    Python::attach(|py| {
        rate_limited(
            py,
            format!("rate limited: retry after {retry_after} s"),
            retry_after,
        )
    })
}

fn weight_error(n: u64, most: u64) -> PyErr {
    value_error(format!(
        "n={n} is more than the bucket's burst of {most}: it could never be granted"
    ))
}

fn result(n: u64, name: &str, outcome: Outcome<(), RemoteError>) -> PyResult<()> {
    outcome.map_err(|refusal| match refusal {
        Refusal::TooLarge { most } => weight_error(n, most),
        Refusal::Busy { retry_after_ns } => refused(retry_after_ns.unwrap_or(0)),
        // A bucket refuses only at booking, with the wait it would take.
        Refusal::TimedOut | Refusal::ShutDown => refused(0),
        Refusal::Failed(err) => remote_error(err, name),
    })
}

/// A bucket's wait: on this process's bucket, or on a shared one.
pub enum BucketWait {
    Local(Acquire<Arc<CoreBucket>>),
    Remote(RemoteAcquire),
}

impl BucketWait {
    fn most(&self) -> Option<u64> {
        match self {
            Self::Local(wait) => wait.bucket().most(),
            Self::Remote(wait) => wait.bucket().most(),
        }
    }

    fn name(&self) -> &str {
        match self {
            Self::Local(_) => "",
            Self::Remote(wait) => &wait.bucket().name,
        }
    }

    /// Logs a backend failure the wait met (rate-limited).
    fn log(&mut self, py: Python<'_>) {
        if let Self::Remote(wait) = self {
            let failure = wait.failure.take();
            let bucket = wait.bucket();
            if let Some(failure) = failure {
                log_failure(py, &bucket.backend, &bucket.name, &failure);
            } else {
                log_reached_again(py, &bucket.backend, &bucket.name);
            }
        }
    }
}

impl Wait for BucketWait {
    type Output = Outcome<(), RemoteError>;
    fn poll(&mut self, waker: Option<&Waker>) -> Poll<Self::Output> {
        match self {
            Self::Local(wait) => wait.poll(waker).map(|o| o.map_err(Refusal::widen)),
            Self::Remote(wait) => wait.poll(waker),
        }
    }
    fn abandon(&mut self) {
        match self {
            Self::Local(wait) => wait.abandon(),
            Self::Remote(wait) => wait.abandon(),
        }
    }
}

/// `await bucket.acquire()` (True) and `async with bucket` (None).
pub struct AcquireCall {
    wait: BucketWait,
    n: u64,
    value: fn() -> Value,
}

impl Operation for AcquireCall {
    fn name(&self) -> &'static str {
        match self.wait.most() {
            Some(_) => "TokenBucket.acquire()",
            None => "LeakyBucket.acquire()",
        }
    }
    fn poll(&mut self, py: Python<'_>, waker: Option<&Waker>) -> Poll<PyResult<Value>> {
        let (n, value) = (self.n, self.value);
        let polled = self.wait.poll(waker);
        if matches!(polled, Poll::Ready(_)) {
            self.wait.log(py);
        }
        polled.map(|outcome| result(n, self.wait.name(), outcome).map(|()| value()))
    }
    fn abandon(&mut self) {
        self.wait.abandon();
    }
    fn woken_by_the_client(&self) -> bool {
        matches!(self.wait, BucketWait::Remote(_))
    }
}

awaitable!(
    /// The awaitable of `TokenBucket.acquire()` and `LeakyBucket.acquire()`.
    BucketAcquire,
    AcquireCall
);

/// The limiter protocol both buckets share. Not constructed directly.
#[pyclass(frozen, subclass, module = "brakes._brakes", name = "_Bucket")]
pub struct Bucket {
    core: Arc<CoreBucket>,
    remote: Option<Arc<RemoteBucket>>,
    backend_object: Option<Py<PyAny>>,
    name: Option<String>,
    /// The rate as the user wrote it (settable: see `reshape`), with the
    /// number of the change that set it.
    rate: Mutex<(u64, f64)>,
    per: f64,
    max_wait: Option<f64>,
}

fn positive_finite(name: &str, value: f64) -> PyResult<f64> {
    if !value.is_finite() || value <= 0.0 {
        return Err(value_error(format!(
            "{name} must be a finite number above 0, got {value}"
        )));
    }
    Ok(value)
}

/// `rate` tokens every `per` seconds, kept exactly.
fn pace_of(rate: f64, per: f64) -> PyResult<Pace> {
    let per_ns = (per * 1e9).round();
    let fraction = decimal_fraction(rate);
    let pace = match (fraction, (1.0..1e30).contains(&per_ns)) {
        (Some(fraction), true) => Pace::new(fraction, per_ns as u128).ok(),
        _ => None,
    };
    pace.ok_or_else(|| {
        value_error(format!(
            "rate={rate} per={per} is out of range: an interval of per/rate seconds must be kept exactly in nanoseconds"
        ))
    })
}

impl Bucket {
    /// Changes the rate (and a token bucket's burst) from now on; queued
    /// callers are re-booked at the new rate.
    fn reshape(&self, rate: Option<f64>, burst: Option<u64>) -> PyResult<()> {
        if self.remote.is_some() {
            return Err(value_error(
                "a shared bucket's rate and burst are part of its settings in Redis: build a bucket with another name to change them".to_owned(),
            ));
        }
        let rate = rate.map(|rate| positive_finite("rate", rate)).transpose()?;
        let pace = rate.map(|rate| pace_of(rate, self.per)).transpose()?;
        // A burst change leaves the rate to the core, and a rate change the
        // burst, so that two made at once from two threads both hold.
        let shape = match (self.core.shape(), burst) {
            (Shape::Token { .. }, Some(burst)) => Some(Shape::Token { burst }),
            _ => None,
        };
        // No lock of ours is held while the core wakes waiters (which runs
        // Python); the change numbers keep the rate shown the one in force.
        let generation = self.core.reshape(pace, shape);
        if let Some(rate) = rate {
            let mut shown = self.rate.lock();
            if generation > shown.0 {
                *shown = (generation, rate);
            }
        }
        Ok(())
    }

    fn build(
        rate: f64,
        per: f64,
        shape: Shape,
        max_wait: Option<f64>,
        clock: Option<&Bound<'_, PyAny>>,
        max_keys: Option<i64>,
        shared: (Option<&Bound<'_, PyAny>>, Option<String>),
    ) -> PyResult<Self> {
        let (backend, name) = shared;
        let remote_of = backend_argument(backend, name.as_deref(), clock)?;
        let rate = positive_finite("rate", rate)?;
        let per = positive_finite("per", per)?;
        let pace = pace_of(rate, per)?;
        if remote_of.is_some() && pace.ticks_per_ns() > MAX_SHARED_TICKS_PER_NS {
            return Err(value_error(format!(
                "rate={rate} per={per} has too many significant digits for a limit shared through Redis"
            )));
        }
        let max_keys = match max_keys {
            None => None,
            Some(m) if m >= 1 => Some(m as usize),
            Some(m) => {
                return Err(value_error(format!(
                    "max_keys must be None or 1 or more, got {m}"
                )))
            }
        };
        let core = CoreBucket::new(pace, shape, clock_argument(clock)?, max_keys);
        let remote =
            remote_of.map(|(backend, name)| RemoteBucket::new(backend, name, Arc::clone(&core)));
        Ok(Self {
            core,
            remote,
            backend_object: backend.filter(|b| !b.is_none()).map(|b| b.clone().unbind()),
            name,
            rate: Mutex::new((0, rate)),
            per,
            max_wait: wait_seconds("max_wait", max_wait)?,
        })
    }

    fn wait(&self, key: Key, n: u64, timeout: Option<f64>) -> BucketWait {
        let timeout = nanoseconds(timeout);
        match &self.remote {
            None => BucketWait::Local(Acquire::new(self.core.clone(), key, n, timeout)),
            Some(remote) => {
                BucketWait::Remote(RemoteAcquire::new(Arc::clone(remote), key, n, timeout))
            }
        }
    }

    fn call(&self, key: Key, n: u64, timeout: Option<f64>, value: fn() -> Value) -> AcquireCall {
        AcquireCall {
            wait: self.wait(key, n, timeout),
            n,
            value,
        }
    }

    /// Waits in this thread, with the GIL released while parked.
    fn block(&self, py: Python<'_>, key: Key, n: u64, timeout: Option<f64>) -> PyResult<bool> {
        let mut wait = self.wait(key, n, timeout);
        let outcome = wait_here(py, &mut wait)?;
        wait.log(py);
        result(n, wait.name(), outcome).map(|()| true)
    }

    /// The shared bucket's wait for `n` tokens and its debt, in one round trip.
    /// Reads `key`'s state on Redis: the wait for `n` tokens and the ticks
    /// in debt. `Ok(None)` when Redis cannot answer and `on_error` is not
    /// "raise": the caller answers as a decision would. A read that fails is
    /// counted and logged as a decision's failure is.
    fn peek(
        &self,
        py: Python<'_>,
        remote: &Arc<RemoteBucket>,
        key: Key,
        n: u64,
    ) -> PyResult<Option<(u64, u128)>> {
        let work = Arc::clone(remote).peek(key, n);
        let mut call = Call::new(work, |_| {});
        match wait_here(py, &mut call)? {
            Ok(found) => {
                log_reached_again(py, &remote.backend, &remote.name);
                Ok(Some(found))
            }
            Err(PeekFailure::Conflict(message)) => {
                Err(remote_error(RemoteError::Backend(message), &remote.name))
            }
            Err(PeekFailure::Failed(failure)) => {
                remote.count_failure();
                log_failure(py, &remote.backend, &remote.name, &failure);
                match remote.backend.on_error {
                    OnError::Raise => Err(remote_error(
                        RemoteError::Backend(failure.message()),
                        &remote.name,
                    )),
                    OnError::Allow | OnError::Deny | OnError::Local => Ok(None),
                }
            }
        }
    }

    /// Takes `n` tokens if they are there now and nobody is queued; never waits.
    fn try_acquire_impl(
        &self,
        py: Python<'_>,
        n: i64,
        key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let n = weight(n)?;
        let key = key_argument(key)?;
        if self.remote.is_some() {
            return match self.block(py, key, n, Some(0.0)) {
                Ok(taken) => Ok(taken),
                Err(err) if err.is_instance_of::<super::errors::RateLimited>(py) => Ok(false),
                Err(err) => Err(err),
            };
        }
        match self.core.try_acquire(key, n) {
            Attempt::Acquired => Ok(true),
            Attempt::TooLarge { most } => Err(weight_error(n, most)),
            Attempt::Later { .. } => {
                self.core.count_rejected();
                Ok(false)
            }
        }
    }

    /// Waits on the running event loop for `n` tokens and returns True. If
    /// the wait needed is longer than `timeout`, raises `RateLimited` at once.
    fn acquire_impl(
        &self,
        py: Python<'_>,
        n: i64,
        timeout: Option<f64>,
        key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<BucketAcquire>> {
        let n = weight(n)?;
        let timeout = wait_seconds("timeout", timeout)?;
        let key = key_argument(key)?;
        BucketAcquire::new(py, self.call(key, n, timeout, || Value::True))
    }

    /// Waits in this thread, with the GIL released, for `n` tokens and returns
    /// True. If the wait needed is longer than `timeout`, raises `RateLimited`
    /// at once.
    fn acquire_blocking_impl(
        &self,
        py: Python<'_>,
        n: i64,
        timeout: Option<f64>,
        key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let n = weight(n)?;
        let timeout = wait_seconds("timeout", timeout)?;
        let key = key_argument(key)?;
        self.block(py, key, n, timeout)
    }

    /// Seconds until `n` tokens could be granted (behind anyone queued), 0.0
    /// if now. Rounded up: waiting this long always suffices.
    fn retry_after_impl(
        &self,
        py: Python<'_>,
        n: i64,
        key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<f64> {
        let n = weight(n)?;
        let key = key_argument(key)?;
        if let Some(remote) = &self.remote {
            if let Some(most) = remote.most().filter(|&most| n > most) {
                return Err(weight_error(n, most));
            }
            // While Redis cannot answer: what a decision would do now.
            return match self.peek(py, remote, key.clone(), n)? {
                Some((wait_ns, _)) => Ok(seconds(wait_ns)),
                None => match remote.backend.on_error {
                    OnError::Deny => Ok(seconds(remote.interval_ns())),
                    OnError::Local => remote
                        .fallback
                        .retry_after_ns(&key, n)
                        .map(seconds)
                        .map_err(|most| weight_error(n, most)),
                    OnError::Raise | OnError::Allow => Ok(0.0),
                },
            };
        }
        self.core
            .retry_after_ns(&key, n)
            .map(seconds)
            .map_err(|most| weight_error(n, most))
    }

    /// A frozen snapshot of the bucket's counters (with a backend: this
    /// process's calls).
    fn stats_impl(&self) -> BucketStats {
        let local = self.core.snapshot();
        match &self.remote {
            None => BucketStats::local(&local),
            Some(remote) => {
                BucketStats::shared(&remote.snapshot(), remote.remembered() as u64, &local)
            }
        }
    }
}

#[pymethods]
impl Bucket {
    /// Tokens per `per` seconds.
    #[getter]
    fn rate(&self) -> f64 {
        self.rate.lock().1
    }

    /// Sets the rate from now on (Go's `SetLimit`): each key keeps the
    /// tokens it has, and callers queued keep their places, their turns
    /// re-booked at the new rate.
    #[setter]
    fn set_rate(&self, #[pyo3(from_py_with = arg::rate)] rate: f64) -> PyResult<()> {
        self.reshape(Some(rate), None)
    }

    #[getter]
    fn per(&self) -> f64 {
        self.per
    }

    /// How long `with`, `async with` and the decorator wait; None is without bound.
    #[getter]
    fn max_wait(&self) -> Option<f64> {
        self.max_wait
    }

    /// The Redis time (ns) of this process's latest decision made in Redis,
    /// for tests that replay decisions on a local bucket.
    #[getter]
    fn _redis_time_ns(&self) -> Option<u64> {
        self.remote.as_ref().and_then(|r| r.last_redis_now_ns())
    }

    /// The limit's name (in Redis, with a backend), or None.
    #[getter]
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The Redis backend the limit is shared through, or None.
    #[getter]
    fn backend(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.backend_object.as_ref().map(|b| b.clone_ref(py))
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        self.block(py, Key::Shared, 1, self.max_wait)
    }

    /// Nothing to give back: a token taken is spent.
    #[pyo3(signature = (*_exc_info))]
    fn __exit__(&self, _exc_info: &Bound<'_, PyTuple>) {}

    fn __aenter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        enter::<BucketAcquire>(py, self.call(Key::Shared, 1, self.max_wait, || Value::None))
    }

    #[pyo3(signature = (*_exc_info))]
    fn __aexit__(&self, py: Python<'_>, _exc_info: &Bound<'_, PyTuple>) -> PyResult<Py<Ready>> {
        ready(py)
    }

    /// `@bucket` on a def or async def: each call takes a token first,
    /// waiting as `max_wait` allows.
    ///
    /// `bucket(key=...)` is the same for one key's tokens: `with
    /// bucket(key="alice"):`, `async with`, or `@bucket(key=lambda request,
    /// *a, **kw: request.client.host)`, whose function is given each call's
    /// arguments.
    #[pyo3(signature = (func = None, /, *, key = None, **kwargs))]
    fn __call__(
        slf: &Bound<'_, Self>,
        func: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
        kwargs: Option<&Bound<'_, pyo3::types::PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        if kwargs.is_some() || key.is_some_and(PyAnyMethods::is_callable) {
            // A wrong keyword, or a key function: Python's side.
            let all = kwargs.map_or_else(|| pyo3::types::PyDict::new(py), Clone::clone);
            if let Some(key) = key {
                all.set_item("key", key)?;
            }
            return limit_calls(slf.as_any(), func, Some(&all));
        }
        if let (Some(func), None) = (func, key) {
            return limit_calls(slf.as_any(), Some(func), None);
        }
        // A key value (or none: the limiter's own).
        let key_value = key_argument(key)?;
        let key_object = key.map_or_else(|| py.None(), |k| k.clone().unbind());
        let keyed = Py::new(
            py,
            BucketKey {
                bucket: slf.clone().unbind(),
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
        let shape = match this.core.most() {
            Some(burst) => format!("burst={burst}"),
            None => "leaky".to_owned(),
        };
        let shared = match &this.name {
            Some(name) => format!(
                " name={name:?}{}",
                if this.remote.is_some() { " shared" } else { "" }
            ),
            None => String::new(),
        };
        let stats = this.stats_impl();
        Ok(format!(
            "<{}.{}{shared} rate={:?} per={:?} {shape} keys={} waiting={} max_wait={}>",
            slf.get_type().module()?,
            slf.get_type().qualname()?,
            this.rate(),
            this.per,
            stats.keys,
            stats.waiting,
            wait_repr(this.max_wait)
        ))
    }
}

/// The protocol's methods with arguments, defined on each bucket class so
/// that an argument error names it (`TokenBucket.acquire()`), not the base.
macro_rules! bucket_pymethods {
    ($class:ident { $($body:tt)* }) => {
        #[pymethods]
        impl $class {
            $($body)*

            /// Takes `n` tokens if they are there now and nobody is queued; never waits.
            #[pyo3(signature = (n = 1, *, key = None))]
            fn try_acquire(
                slf: &Bound<'_, Self>,
                #[pyo3(from_py_with = arg::n)] n: i64,
                key: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<bool> {
                slf.as_super().get().try_acquire_impl(slf.py(), n, key)
            }

            /// Waits on the running event loop for `n` tokens and returns True. If
            /// the wait needed is longer than `timeout`, raises `RateLimited` at once.
            #[pyo3(signature = (n = 1, *, timeout = None, key = None))]
            fn acquire(
                slf: &Bound<'_, Self>,
                #[pyo3(from_py_with = arg::n)] n: i64,
                #[pyo3(from_py_with = arg::timeout)] timeout: Option<f64>,
                key: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<Py<BucketAcquire>> {
                slf.as_super().get().acquire_impl(slf.py(), n, timeout, key)
            }

            /// Waits in this thread, with the GIL released, for `n` tokens and returns
            /// True. If the wait needed is longer than `timeout`, raises `RateLimited`
            /// at once.
            #[pyo3(signature = (n = 1, *, timeout = None, key = None))]
            fn acquire_blocking(
                slf: &Bound<'_, Self>,
                #[pyo3(from_py_with = arg::n)] n: i64,
                #[pyo3(from_py_with = arg::timeout)] timeout: Option<f64>,
                key: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<bool> {
                slf.as_super().get().acquire_blocking_impl(slf.py(), n, timeout, key)
            }

            /// Seconds until `n` tokens could be granted (behind anyone queued), 0.0
            /// if now. Rounded up: waiting this long always suffices.
            #[pyo3(signature = (n = 1, *, key = None))]
            fn retry_after(
                slf: &Bound<'_, Self>,
                #[pyo3(from_py_with = arg::n)] n: i64,
                key: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<f64> {
                slf.as_super().get().retry_after_impl(slf.py(), n, key)
            }

            /// A frozen snapshot of the bucket's counters (with a backend: this
            /// process's calls).
            fn stats(slf: &Bound<'_, Self>) -> BucketStats {
                slf.as_super().get().stats_impl()
            }
        }
    };
}

/// `bucket(key="alice")`: the bucket's `with`, `async with` and decorator
/// forms for one key's tokens, waiting as the bucket's `max_wait` allows.
#[pyclass(frozen, module = "brakes")]
pub struct BucketKey {
    bucket: Py<Bucket>,
    key: Key,
    key_object: Py<PyAny>,
}

#[pymethods]
impl BucketKey {
    /// The bucket.
    #[getter]
    fn bucket(&self, py: Python<'_>) -> Py<PyAny> {
        self.bucket.clone_ref(py).into_any()
    }

    /// The key.
    #[getter]
    fn key(&self, py: Python<'_>) -> Py<PyAny> {
        self.key_object.clone_ref(py)
    }

    fn __enter__(&self, py: Python<'_>) -> PyResult<bool> {
        let bucket = self.bucket.get();
        bucket.block(py, self.key.clone(), 1, bucket.max_wait)
    }

    /// Nothing to give back: a token taken is spent.
    #[pyo3(signature = (*_exc_info))]
    fn __exit__(&self, _exc_info: &Bound<'_, PyTuple>) {}

    fn __aenter__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let bucket = self.bucket.get();
        enter::<BucketAcquire>(
            py,
            bucket.call(self.key.clone(), 1, bucket.max_wait, || Value::None),
        )
    }

    #[pyo3(signature = (*_exc_info))]
    fn __aexit__(&self, py: Python<'_>, _exc_info: &Bound<'_, PyTuple>) -> PyResult<Py<Ready>> {
        ready(py)
    }

    /// `@bucket(key="alice")`: each call takes one of the key's tokens first.
    fn __call__(slf: &Bound<'_, Self>, func: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        limit_calls(slf.as_any(), Some(func), None)
    }

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        visit.call(&self.bucket)?;
        visit.call(&self.key_object)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "<brakes.BucketKey key={} of {}>",
            self.key.describe(),
            self.bucket.bind(py).repr()?
        ))
    }
}

/// A token bucket: refills `rate` tokens every `per` seconds, continuously,
/// and holds at most `burst` (default: `rate` rounded up, at least 1); it
/// starts full. Bursts of up to `burst` pass at once.
///
/// `max_wait` sets how long `with`, `async with` and `@bucket` wait for a
/// token: None waits as long as it takes, 0 refuses at once. When the wait
/// needed is longer, they raise `brakes.RateLimited` at once, with
/// `retry_after` set. `key=` gives each key its own bucket.
///
/// >>> from brakes.testing import ManualClock
/// >>> clock = ManualClock()
/// >>> bucket = TokenBucket(10, burst=2, clock=clock)
/// >>> [bucket.try_acquire() for _ in range(3)]
/// [True, True, False]
/// >>> bucket.retry_after()
/// 0.1
#[pyclass(frozen, subclass, extends = Bucket, module = "brakes")]
pub struct TokenBucket {
    burst: u64,
}

bucket_pymethods!(TokenBucket {
    #[new]
    #[pyo3(signature = (rate, *, per = 1.0, burst = None, max_wait = None, clock = None, max_keys = None, backend = None, name = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        #[pyo3(from_py_with = arg::rate)] rate: f64,
        #[pyo3(from_py_with = arg::per)] per: f64,
        #[pyo3(from_py_with = arg::burst)] burst: Option<i64>,
        #[pyo3(from_py_with = arg::max_wait)] max_wait: Option<f64>,
        clock: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = arg::max_keys)] max_keys: Option<i64>,
        backend: Option<&Bound<'_, PyAny>>,
        name: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let name = super::arguments::name(name)?;
        let burst = match burst {
            None if rate.is_finite() && rate > 0.0 => {
                rate.ceil().max(1.0).min(f64::from(u32::MAX)) as u64
            }
            None => 1,
            Some(b) if b >= 1 => b as u64,
            Some(b) => return Err(value_error(format!("burst must be 1 or more, got {b}"))),
        };
        let base = Bucket::build(
            rate,
            per,
            Shape::Token { burst },
            max_wait,
            clock,
            max_keys,
            (backend, name),
        )?;
        Ok(PyClassInitializer::from(base).add_subclass(Self { burst }))
    }

    /// The most tokens the bucket holds, and so the most one call can take.
    #[getter]
    fn burst(slf: &Bound<'_, Self>) -> u64 {
        slf.as_super().get().core.most().unwrap_or(slf.get().burst)
    }

    /// Sets the burst from now on (Go's `SetBurst`): each key keeps the
    /// tokens it has, up to the new burst.
    #[setter]
    fn set_burst(
        slf: &Bound<'_, Self>,
        #[pyo3(from_py_with = arg::burst)] burst: Option<i64>,
    ) -> PyResult<()> {
        match burst {
            Some(b) if b >= 1 => slf.as_super().get().reshape(None, Some(b as u64)),
            Some(b) => Err(value_error(format!("burst must be 1 or more, got {b}"))),
            None => Err(pyo3::exceptions::PyTypeError::new_err(
                "burst must be an int of 1 or more, got None",
            )),
        }
    }

    /// Tokens there now, less those booked by queued callers (so it can be
    /// negative while callers wait).
    #[pyo3(signature = (key = None))]
    fn tokens(slf: &Bound<'_, Self>, key: Option<&Bound<'_, PyAny>>) -> PyResult<f64> {
        let key = key_argument(key)?;
        let base = slf.as_super().get();
        if let Some(remote) = &base.remote {
            // While Redis cannot answer: full if decisions allow, empty if
            // they refuse, the local fallback's tokens if it decides.
            return Ok(match base.peek(slf.py(), remote, key.clone(), 1)? {
                Some((_, debt)) => remote.tokens_from_debt(debt),
                None => match remote.backend.on_error {
                    OnError::Deny => 0.0,
                    OnError::Local => remote.fallback.tokens(&key),
                    OnError::Raise | OnError::Allow => remote.tokens_from_debt(0),
                },
            });
        }
        Ok(base.core.tokens(&key))
    }
});

/// A leaky bucket: grants exactly `per / rate` seconds apart, with no
/// bursts; `n` books n consecutive slots. At most `capacity` callers may wait
/// for their turn (None: no bound); the next is refused at once with
/// `brakes.RateLimited`.
///
/// >>> from brakes.testing import ManualClock
/// >>> clock = ManualClock()
/// >>> bucket = LeakyBucket(2, clock=clock)
/// >>> bucket.try_acquire(), bucket.try_acquire(), bucket.retry_after()
/// (True, False, 0.5)
#[pyclass(frozen, subclass, extends = Bucket, module = "brakes")]
pub struct LeakyBucket {
    capacity: Option<u64>,
}

bucket_pymethods!(LeakyBucket {
    #[new]
    #[pyo3(signature = (rate, *, per = 1.0, capacity = None, max_wait = None, clock = None, max_keys = None, backend = None, name = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        #[pyo3(from_py_with = arg::rate)] rate: f64,
        #[pyo3(from_py_with = arg::per)] per: f64,
        #[pyo3(from_py_with = arg::capacity)] capacity: Option<i64>,
        #[pyo3(from_py_with = arg::max_wait)] max_wait: Option<f64>,
        clock: Option<&Bound<'_, PyAny>>,
        #[pyo3(from_py_with = arg::max_keys)] max_keys: Option<i64>,
        backend: Option<&Bound<'_, PyAny>>,
        name: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyClassInitializer<Self>> {
        let name = super::arguments::name(name)?;
        let capacity = match capacity {
            None => None,
            Some(c) if c >= 0 => Some(c as u64),
            Some(c) => {
                return Err(value_error(format!(
                    "capacity must be None or 0 or more, got {c}"
                )))
            }
        };
        let base = Bucket::build(
            rate,
            per,
            Shape::Leaky { capacity },
            max_wait,
            clock,
            max_keys,
            (backend, name),
        )?;
        Ok(PyClassInitializer::from(base).add_subclass(Self { capacity }))
    }

    /// How many callers may wait for their turn; None is without bound.
    #[getter]
    fn capacity(&self) -> Option<u64> {
        self.capacity
    }
});

impl BucketStats {
    fn local(s: &BucketSnapshot) -> Self {
        Self {
            keys: s.keys,
            waiting: s.waiting,
            acquired: s.acquired,
            waited: s.waited,
            rejected: s.rejected,
            cancelled: s.cancelled,
            rejected_locally: 0,
            backend_errors: 0,
            wait: s.wait.into(),
        }
    }

    /// A shared bucket's counts, with those its local fallback decided.
    fn shared(s: &RemoteSnapshot, remembered: u64, fallback: &BucketSnapshot) -> Self {
        Self {
            keys: remembered,
            waiting: s.waiting + fallback.waiting,
            acquired: s.acquired,
            waited: s.waited,
            rejected: s.rejected,
            cancelled: s.cancelled + fallback.cancelled,
            rejected_locally: s.rejected_locally,
            backend_errors: s.backend_errors,
            wait: s.wait.into(),
        }
    }
}

stats_class!(
    /// A frozen snapshot of a bucket's counters.
    BucketStats {
        /// Keys with state kept (idle keys are forgotten).
        keys: u64,
        /// Callers queued for their turn.
        waiting: u64,
        /// Acquisitions that succeeded, at once or after waiting.
        acquired: u64,
        /// Of those, the ones that had to wait.
        waited: u64,
        /// Refusals: `try_acquire` said no, or the wait needed was too long.
        rejected: u64,
        /// Waits that were cancelled or interrupted.
        cancelled: u64,
        /// With a backend: refusals answered here, from a refusal Redis gave
        /// that had not expired yet (counted in `rejected` too).
        rejected_locally: u64,
        /// With a backend: decisions Redis failed (unreachable, or an error).
        backend_errors: u64,
        /// How long acquisitions waited for their turn, each one counted
        /// (0 for those served at once).
        wait: Histogram,
    }
);

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Bucket>()?;
    module.add_class::<TokenBucket>()?;
    module.add_class::<BucketKey>()?;
    module.add_class::<LeakyBucket>()?;
    module.add_class::<BucketStats>()?;
    super::awaitable::register::<BucketAcquire>(module)
}
