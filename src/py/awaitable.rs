//! The bridge from a core waiter to asyncio: a native awaitable that is a full
//! coroutine to asyncio, and the future handle the core wakes.

use std::sync::Arc;
use std::thread::ThreadId;

use parking_lot::Mutex;
use pyo3::exceptions::{PyRuntimeError, PyStopIteration, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyString, PyType};
use pyo3::{ffi, intern, PyTraverseError, PyVisit};

use super::arguments::patience;
use crate::core::gauge::{Admission, Enqueued, Patience};
use crate::core::waiter::{Notify, Waiter};

/// An asyncio future a waiting task sleeps on, with the loop that owns it.
pub struct FutureHandle {
    event_loop: Py<PyAny>,
    future: Py<PyAny>,
    loop_thread: ThreadId,
}

/// The current thread's id, without the reference count traffic of
/// `thread::current()`. Ids are never reused, unlike thread-local addresses.
fn current_thread() -> ThreadId {
    thread_local!(static ID: ThreadId = std::thread::current().id());
    ID.with(|id| *id)
}

/// `obj.name(arg)` without building a bound method or an argument tuple,
/// which pyo3's `call_method1` does under the 3.11 stable ABI.
fn call_method_one<'py>(
    obj: &Bound<'py, PyAny>,
    name: &Bound<'py, PyString>,
    arg: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    // SAFETY: all three pointers are live references held by the caller, and
    // the argument list ends with the NULL the C API requires.
    unsafe {
        Bound::from_owned_ptr_or_err(
            obj.py(),
            ffi::PyObject_CallMethodObjArgs(
                obj.as_ptr(),
                name.as_ptr(),
                arg.as_ptr(),
                std::ptr::null_mut::<ffi::PyObject>(),
            ),
        )
    }
}

fn is_invalid_state(py: Python<'_>, err: &PyErr) -> bool {
    static INVALID_STATE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    INVALID_STATE
        .import(py, "asyncio", "InvalidStateError")
        .is_ok_and(|t| err.is_instance(py, t))
}

pub type FutureWaiter = Waiter<FutureHandle>;

impl Notify for FutureHandle {
    fn notify(&self) -> bool {
        Python::attach(|py| {
            let future = self.future.bind(py);
            if current_thread() == self.loop_thread {
                return match call_method_one(
                    future,
                    intern!(py, "set_result"),
                    &py.None().into_bound(py),
                ) {
                    Ok(_) => true,
                    // Already cancelled: its canceller finds the grant and gives it back.
                    Err(err) => is_invalid_state(py, &err),
                };
            }
            let Ok(resolve) = resolver(py) else {
                return false;
            };
            // Fails when the loop has closed: the waiter is gone, its grant goes back.
            self.event_loop
                .bind(py)
                .call_method1(intern!(py, "call_soon_threadsafe"), (resolve, future))
                .is_ok()
        })
    }
}

/// Completes a waiter's future unless it is already done (cancelled).
#[pyfunction]
#[pyo3(name = "_resolve_future")]
fn resolve_future(future: &Bound<'_, PyAny>) -> PyResult<()> {
    let py = future.py();
    if !future.call_method0(intern!(py, "done"))?.is_truthy()? {
        call_method_one(future, intern!(py, "set_result"), &py.None().into_bound(py))?;
    }
    Ok(())
}

fn resolver(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static RESOLVER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    RESOLVER
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(wrap_pyfunction!(resolve_future, py)?.into_any().unbind())
        })
        .map(|f| f.bind(py))
}

fn running_loop(py: Python<'_>) -> PyResult<Option<Bound<'_, PyAny>>> {
    static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let get = GET_RUNNING_LOOP.import(py, "asyncio", "_get_running_loop")?;
    let event_loop = get.call0()?;
    Ok((!event_loop.is_none()).then_some(event_loop))
}

/// What an awaitable waits on: a primitive built on the core wait list.
pub trait WaitSource: Send + Sync {
    fn try_now(&self, n: u64, patience: Patience) -> Admission;
    fn enqueue(&self, waiter: &Arc<FutureWaiter>) -> Enqueued;
    fn take_granted(&self, waiter: &FutureWaiter) -> bool;
    fn settle_timeout(&self, id: u64, waiter: &FutureWaiter) -> bool;
    fn abandon(&self, id: u64, waiter: &FutureWaiter);
    fn count_rejected(&self);
    /// The error for a caller that gave up after `waited` seconds.
    fn gave_up(&self, waited: f64) -> PyErr;
    /// The error for a weight the primitive can never hold at its current limit.
    fn too_large(&self, n: u64, limit: u64) -> PyErr;
    /// The name callers know the awaiting method by, for error messages.
    fn method_name(&self) -> &'static str;
}

enum Step {
    Fresh,
    Waiting(Wait),
    /// Being stepped right now (re-entry is an error, as for a coroutine).
    Running,
    Done,
}

struct Wait {
    id: u64,
    waiter: Arc<FutureWaiter>,
    future: Py<PyAny>,
    timer: Option<Py<PyAny>>,
    /// False until the future has been handed to the task once.
    yielded: bool,
}

/// The awaitable returned by `acquire()`: it does its work when first
/// stepped, so one that is never awaited holds nothing.
#[pyclass(frozen, module = "brakes._brakes")]
pub struct Acquiring {
    source: Arc<dyn WaitSource>,
    n: u64,
    timeout: Option<f64>,
    /// `acquire()` returns True, as asyncio's does; `__aenter__` returns None.
    returns_true: bool,
    step: Mutex<Step>,
}

impl Acquiring {
    pub fn new(
        source: Arc<dyn WaitSource>,
        n: u64,
        timeout: Option<f64>,
        returns_true: bool,
    ) -> Self {
        Self {
            source,
            n,
            timeout,
            returns_true,
            step: Mutex::new(Step::Fresh),
        }
    }

    /// For `__aenter__`, which has just found the gauge busy and is awaited at
    /// once: queues now, and returns the shared finished awaitable if capacity
    /// came free meanwhile.
    pub fn enter(
        py: Python<'_>,
        source: Arc<dyn WaitSource>,
        timeout: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        if timeout == Some(0.0) {
            source.count_rejected();
            return Err(source.gave_up(0.0));
        }
        let mut this = Self::new(source, 1, timeout, false);
        match this.start_waiting(py)? {
            None => Ok(ready(py)?.into_any()),
            Some(wait) => {
                *this.step.get_mut() = Step::Waiting(wait);
                Ok(Py::new(py, this)?.into_any())
            }
        }
    }

    fn finished(&self) -> PyResult<Option<Py<PyAny>>> {
        if self.returns_true {
            Err(PyStopIteration::new_err((true,)))
        } else {
            Ok(None)
        }
    }

    fn advance(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let current = std::mem::replace(&mut *self.step.lock(), Step::Running);
        let (next, outcome) = match current {
            Step::Fresh => self.begin(py),
            Step::Waiting(wait) => self.resume(py, wait),
            Step::Running => {
                *self.step.lock() = Step::Running;
                return Err(PyValueError::new_err("coroutine already executing"));
            }
            Step::Done => (
                Step::Done,
                Err(PyRuntimeError::new_err(
                    "cannot reuse already awaited coroutine",
                )),
            ),
        };
        *self.step.lock() = next;
        outcome
    }

    fn begin(&self, py: Python<'_>) -> (Step, PyResult<Option<Py<PyAny>>>) {
        match self.source.try_now(self.n, patience(self.timeout)) {
            Admission::Acquired => return (Step::Done, self.finished()),
            Admission::TooLarge { limit } => {
                return (Step::Done, Err(self.source.too_large(self.n, limit)))
            }
            Admission::Busy => {}
        }
        if self.timeout == Some(0.0) {
            self.source.count_rejected();
            return (Step::Done, Err(self.source.gave_up(0.0)));
        }
        match self.start_waiting(py) {
            Ok(Some(mut wait)) => {
                wait.yielded = true;
                let future = wait.future.clone_ref(py);
                (Step::Waiting(wait), Ok(Some(future)))
            }
            Ok(None) => (Step::Done, self.finished()),
            Err(err) => (Step::Done, Err(err)),
        }
    }

    /// Queues a waiter on a new future of the running loop; `None` if capacity
    /// came free meanwhile.
    fn start_waiting(&self, py: Python<'_>) -> PyResult<Option<Wait>> {
        let Some(event_loop) = running_loop(py)? else {
            return Err(PyRuntimeError::new_err(format!(
                "{} must be awaited in a running asyncio event loop, and none is running in this thread",
                self.source.method_name()
            )));
        };
        // Everything that can fail happens before the waiter is queued, but for
        // the timer, which must follow it and takes the waiter out if it fails.
        let future = event_loop.call_method0(intern!(py, "create_future"))?;
        future.setattr(intern!(py, "_asyncio_future_blocking"), true)?;
        let resolve = if self.timeout.is_some() {
            Some(resolver(py)?)
        } else {
            None
        };
        let handle = FutureHandle {
            event_loop: event_loop.clone().unbind(),
            future: future.clone().unbind(),
            loop_thread: current_thread(),
        };
        let waiter = Waiter::for_future(self.n, handle);
        let id = match self.source.enqueue(&waiter) {
            Enqueued::Acquired => return Ok(None),
            Enqueued::TooLarge { limit } => return Err(self.source.too_large(self.n, limit)),
            Enqueued::Queued(id) => id,
        };
        let timer = match (self.timeout, resolve) {
            (Some(seconds), Some(resolve)) => {
                let scheduled =
                    event_loop.call_method1(intern!(py, "call_later"), (seconds, resolve, &future));
                match scheduled {
                    Ok(timer) => Some(timer.unbind()),
                    Err(err) => {
                        self.source.abandon(id, &waiter);
                        return Err(err);
                    }
                }
            }
            _ => None,
        };
        Ok(Some(Wait {
            id,
            waiter,
            future: future.unbind(),
            timer,
            yielded: false,
        }))
    }

    fn resume(&self, py: Python<'_>, mut wait: Wait) -> (Step, PyResult<Option<Py<PyAny>>>) {
        if wait.waiter.is_granted() && self.source.take_granted(&wait.waiter) {
            cancel_timer(py, &wait);
            return (Step::Done, self.finished());
        }
        if !wait.yielded {
            wait.yielded = true;
            let future = wait.future.clone_ref(py);
            return (Step::Waiting(wait), Ok(Some(future)));
        }
        let future = wait.future.bind(py);
        match future
            .call_method0(intern!(py, "done"))
            .and_then(|d| d.is_truthy())
        {
            Ok(true) => {
                // Only the timer completes the future without a grant.
                if self.source.settle_timeout(wait.id, &wait.waiter) {
                    (Step::Done, self.finished())
                } else {
                    let waited = self.timeout.unwrap_or(0.0);
                    (Step::Done, Err(self.source.gave_up(waited)))
                }
            }
            Ok(false) => {
                // Stepped early: keep waiting on the same future.
                let blocking = future.setattr(intern!(py, "_asyncio_future_blocking"), true);
                let future = wait.future.clone_ref(py);
                match blocking {
                    Ok(()) => (Step::Waiting(wait), Ok(Some(future))),
                    Err(err) => {
                        self.abandon(py, wait);
                        (Step::Done, Err(err))
                    }
                }
            }
            Err(err) => {
                self.abandon(py, wait);
                (Step::Done, Err(err))
            }
        }
    }

    fn abandon(&self, py: Python<'_>, wait: Wait) {
        cancel_timer(py, &wait);
        self.source.abandon(wait.id, &wait.waiter);
    }

    /// Leaves the queue (or gives back a grant that raced in) and ends.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let current = std::mem::replace(&mut *self.step.lock(), Step::Done);
        match current {
            Step::Waiting(wait) => self.abandon(py, wait),
            Step::Running => {
                *self.step.lock() = Step::Running;
                return Err(PyValueError::new_err("coroutine already executing"));
            }
            Step::Fresh | Step::Done => {}
        }
        Ok(())
    }
}

fn cancel_timer(py: Python<'_>, wait: &Wait) {
    if let Some(timer) = &wait.timer {
        // A timer that fires anyway only completes a done future: harmless.
        let _ = timer.bind(py).call_method0(intern!(py, "cancel"));
    }
}

/// The exception `throw` raises: the thrown one, built as a generator would.
fn thrown(
    py: Python<'_>,
    typ: &Bound<'_, PyAny>,
    value: Option<&Bound<'_, PyAny>>,
    traceback: Option<&Bound<'_, PyAny>>,
) -> PyErr {
    let value = value.filter(|v| !v.is_none());
    let exception = if typ.is_instance_of::<PyType>() {
        match value {
            Some(v) if v.is_instance(typ).unwrap_or(false) => Ok(v.clone()),
            Some(v) => typ.call1((v,)),
            None => typ.call0(),
        }
    } else {
        Ok(typ.clone())
    };
    let exception = match exception {
        Ok(exc) => exc,
        Err(err) => return err,
    };
    if let Some(tb) = traceback.filter(|t| !t.is_none()) {
        if let Err(err) = exception.call_method1(intern!(py, "with_traceback"), (tb,)) {
            return err;
        }
    }
    PyErr::from_value(exception)
}

#[pymethods]
impl Acquiring {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.advance(py)
    }

    #[pyo3(signature = (value, /))]
    fn send(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        let _ = value;
        match self.advance(py)? {
            Some(yielded) => Ok(Some(yielded)),
            None => Err(PyStopIteration::new_err(())),
        }
    }

    #[pyo3(signature = (typ, val=None, tb=None, /))]
    fn throw(
        &self,
        py: Python<'_>,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.stop(py)?;
        Err(thrown(py, typ, val, tb))
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.stop(py)
    }

    fn __repr__(&self) -> String {
        let state = match &*self.step.lock() {
            Step::Fresh => "not started",
            Step::Waiting(_) => "waiting",
            Step::Running => "running",
            Step::Done => "done",
        };
        format!(
            "<brakes {} n={} {state}>",
            self.source.method_name(),
            self.n
        )
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(step) = self.step.try_lock() {
            if let Step::Waiting(wait) = &*step {
                visit.call(&wait.future)?;
                if let Some(timer) = &wait.timer {
                    visit.call(timer)?;
                }
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        let current = self
            .step
            .try_lock()
            .map(|mut s| std::mem::replace(&mut *s, Step::Done));
        if let Some(Step::Waiting(wait)) = current {
            self.source.abandon(wait.id, &wait.waiter);
        }
    }
}

impl Drop for Acquiring {
    fn drop(&mut self) {
        // A waiting awaitable that is dropped unawaited leaves the queue, and a
        // grant that reached it goes back.
        if let Step::Waiting(wait) = std::mem::replace(self.step.get_mut(), Step::Done) {
            self.source.abandon(wait.id, &wait.waiter);
        }
    }
}

/// The one awaitable `__aenter__` and `__aexit__` return when they already
/// finished their work at call time: awaiting it returns None at once.
#[pyclass(frozen, module = "brakes._brakes")]
pub struct Ready;

#[pymethods]
impl Ready {
    fn __await__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self) -> Option<Py<PyAny>> {
        None
    }

    #[pyo3(signature = (value, /))]
    fn send(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let _ = value;
        Err(PyStopIteration::new_err(()))
    }

    #[pyo3(signature = (typ, val=None, tb=None, /))]
    fn throw(
        &self,
        py: Python<'_>,
        typ: &Bound<'_, PyAny>,
        val: Option<&Bound<'_, PyAny>>,
        tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        Err(thrown(py, typ, val, tb))
    }

    fn close(&self) {}

    fn __repr__(&self) -> &'static str {
        "<brakes ready>"
    }
}

pub fn ready(py: Python<'_>) -> PyResult<Py<Ready>> {
    static READY: PyOnceLock<Py<Ready>> = PyOnceLock::new();
    READY
        .get_or_try_init(py, || Py::new(py, Ready))
        .map(|r| r.clone_ref(py))
}

/// Lets asyncio's `create_task`, `gather` and `TaskGroup` take our awaitables.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    module.add_class::<Acquiring>()?;
    module.add_class::<Ready>()?;
    let coroutine = py.import("collections.abc")?.getattr("Coroutine")?;
    coroutine.call_method1("register", (py.get_type::<Acquiring>(),))?;
    coroutine.call_method1("register", (py.get_type::<Ready>(),))?;
    Ok(())
}
