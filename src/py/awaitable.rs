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

use super::queue::{Batch, Get, Join, Put};
use crate::core::keys::Key;
use crate::core::waiter::{Notify, Waiter, Wake};

/// An asyncio future a waiting task sleeps on, with the loop that owns it.
pub struct FutureHandle {
    event_loop: Py<PyAny>,
    /// The future the task sleeps on now; a waiter that must wait again
    /// (a bucket whose turn moved) sleeps on a new one.
    future: Mutex<Py<PyAny>>,
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
            let future = self.future.lock().clone_ref(py).into_bound(py);
            let future = &future;
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

/// The answer of a first attempt, before any future exists.
pub enum Now {
    Acquired,
    MustWait,
    Failed(PyErr),
}

/// The answer of asking to wait with a waiter in hand.
pub enum Queued {
    Acquired,
    /// Queued as `id`; look again after `wake_in` seconds if given.
    Waiting {
        id: u64,
        wake_in: Option<f64>,
    },
    Failed(PyErr),
}

/// What a waiter woken without a grant does next.
pub enum Woken {
    Acquired,
    Failed(PyErr),
    WaitMore { wake_in: Option<f64> },
}

/// What an awaitable waits on: a primitive built on the core wait list.
/// `key` is the per-key bucket (`Key::Shared` for a gauge).
pub trait WaitSource: Send + Sync {
    /// Takes `n` now if possible; fails at once if `timeout` allows no wait.
    fn try_now(&self, key: &Key, n: u64, timeout: Option<f64>) -> Now;
    fn enqueue(&self, key: &Key, waiter: &Arc<FutureWaiter>, timeout: Option<f64>) -> Queued;
    fn take_granted(&self, waiter: &FutureWaiter) -> bool;
    /// The waiter's future completed without a grant (a timer, or a kick).
    fn woken(&self, key: &Key, id: u64, waiter: &FutureWaiter, timeout: Option<f64>) -> Woken;
    fn abandon(&self, key: &Key, id: u64, waiter: &FutureWaiter);
    /// The name callers know the awaiting method by, for error messages.
    fn method_name(&self) -> &'static str;
}

/// What a finished operation gives the code that awaited it.
pub enum Value {
    True,
    Nothing,
    Object(Py<PyAny>),
}

/// The first attempt of an operation, before any future exists.
pub enum Attempt {
    Done(PyResult<Value>),
    MustWait,
}

/// The answer of joining a line with a waiter in hand.
pub enum Lined {
    Done(PyResult<Value>),
    /// In line as `id`; look again after `wake_in` seconds if given.
    Waiting {
        id: u64,
        wake_in: Option<f64>,
    },
}

/// What an operation does after its waiter was granted or woken.
pub enum Resumed {
    Done(PyResult<Value>),
    /// Sleep again with the same waiter on a new future.
    Sleep {
        wake_in: Option<f64>,
    },
    /// The grant was taken and more is wanted: join the line anew.
    Again,
}

/// One awaited call (`acquire`, `put`, `get`, ...): its arguments and the
/// state it holds between steps. The awaitable drives it.
pub trait Operation: Send + Sync {
    fn weight(&self) -> u64 {
        1
    }
    fn try_now(&self, py: Python<'_>) -> Attempt;
    fn enqueue(&self, py: Python<'_>, waiter: &Arc<FutureWaiter>) -> Lined;
    /// The waiter was marked granted: claims the grant. None if the grant
    /// could not be claimed.
    fn granted(&self, py: Python<'_>, waiter: &FutureWaiter) -> Option<Resumed>;
    /// The waiter's future completed without a grant (a timer, or a kick).
    fn woken(&self, py: Python<'_>, id: u64, waiter: &FutureWaiter) -> Resumed;
    /// The call ends unfinished: leaves the line (`waiting`, giving back a
    /// grant that raced in) and lets go of anything else it holds.
    fn abandon(&self, waiting: Option<(u64, &FutureWaiter)>);
    /// Python objects the call holds, for the garbage collector.
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        let _ = visit;
        Ok(())
    }
    /// The name callers know the awaiting method by, for messages.
    fn method_name(&self) -> &'static str;
}

/// Every call an awaitable drives, held inline: awaiting allocates nothing
/// but the awaitable itself.
pub enum Call {
    Limit(Limit),
    Put(Put),
    Get(Get),
    Join(Join),
    Batch(Batch),
}

impl Call {
    fn op(&self) -> &dyn Operation {
        match self {
            Self::Limit(call) => call,
            Self::Put(call) => call,
            Self::Get(call) => call,
            Self::Join(call) => call,
            Self::Batch(call) => call,
        }
    }
}

/// Acquiring `n` from a limiter (a gauge, a bucket under `key`).
pub struct Limit {
    source: Arc<dyn WaitSource>,
    key: Key,
    n: u64,
    timeout: Option<f64>,
    /// `acquire()` returns True, as asyncio's does; `__aenter__` returns None.
    returns_true: bool,
}

impl Limit {
    fn value(&self) -> Value {
        if self.returns_true {
            Value::True
        } else {
            Value::Nothing
        }
    }
}

impl Operation for Limit {
    fn weight(&self) -> u64 {
        self.n
    }
    fn try_now(&self, _py: Python<'_>) -> Attempt {
        match self.source.try_now(&self.key, self.n, self.timeout) {
            Now::Acquired => Attempt::Done(Ok(self.value())),
            Now::Failed(err) => Attempt::Done(Err(err)),
            Now::MustWait => Attempt::MustWait,
        }
    }
    fn enqueue(&self, _py: Python<'_>, waiter: &Arc<FutureWaiter>) -> Lined {
        match self.source.enqueue(&self.key, waiter, self.timeout) {
            Queued::Acquired => Lined::Done(Ok(self.value())),
            Queued::Failed(err) => Lined::Done(Err(err)),
            Queued::Waiting { id, wake_in } => Lined::Waiting { id, wake_in },
        }
    }
    fn granted(&self, _py: Python<'_>, waiter: &FutureWaiter) -> Option<Resumed> {
        self.source
            .take_granted(waiter)
            .then(|| Resumed::Done(Ok(self.value())))
    }
    fn woken(&self, _py: Python<'_>, id: u64, waiter: &FutureWaiter) -> Resumed {
        match self.source.woken(&self.key, id, waiter, self.timeout) {
            Woken::Acquired => Resumed::Done(Ok(self.value())),
            Woken::Failed(err) => Resumed::Done(Err(err)),
            Woken::WaitMore { wake_in } => Resumed::Sleep { wake_in },
        }
    }
    fn abandon(&self, waiting: Option<(u64, &FutureWaiter)>) {
        if let Some((id, waiter)) = waiting {
            self.source.abandon(&self.key, id, waiter);
        }
    }
    fn method_name(&self) -> &'static str {
        self.source.method_name()
    }
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

/// How a step of the awaitable ends: it yields a future, or it is over.
type Stepped = (Step, PyResult<Option<Py<PyAny>>>);

/// The awaitable of every waiting call (`acquire()`, `put()`, `get()`, ...):
/// it does its work when first stepped, so one that is never awaited holds
/// nothing.
#[pyclass(frozen, module = "brakes._brakes")]
pub struct Acquiring {
    call: Call,
    step: Mutex<Step>,
}

impl Acquiring {
    pub fn new(call: Call) -> Self {
        Self {
            call,
            step: Mutex::new(Step::Fresh),
        }
    }

    fn op(&self) -> &dyn Operation {
        self.call.op()
    }

    /// `acquire(n)` of a limiter, returning True.
    pub fn limit(
        source: Arc<dyn WaitSource>,
        key: Key,
        n: u64,
        timeout: Option<f64>,
        returns_true: bool,
    ) -> Self {
        Self::new(Call::Limit(Limit {
            source,
            key,
            n,
            timeout,
            returns_true,
        }))
    }

    /// For `__aenter__`, which the interpreter awaits at once, so it may act at
    /// call time: takes the permit or token now if it can (returning the
    /// shared, finished awaitable: no allocation), refuses at once if no wait
    /// is allowed, and otherwise queues now and returns the waiting awaitable.
    pub fn enter<S: WaitSource + 'static>(
        py: Python<'_>,
        source: &Arc<S>,
        key: Key,
        timeout: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        match source.try_now(&key, 1, timeout) {
            Now::Acquired => return Ok(ready(py)?.into_any()),
            Now::Failed(err) => return Err(err),
            Now::MustWait => {}
        }
        let source: Arc<dyn WaitSource> = source.clone();
        let mut this = Self::limit(source, key, 1, timeout, false);
        match this.start_waiting(py) {
            Ok(Started::Waiting(wait)) => {
                *this.step.get_mut() = Step::Waiting(wait);
                Ok(Py::new(py, this)?.into_any())
            }
            Ok(Started::Done(outcome)) => outcome.and_then(|_| Ok(ready(py)?.into_any())),
            Err(err) => Err(err),
        }
    }

    /// How a coroutine ends with `outcome`: StopIteration carries a value.
    fn finished(py: Python<'_>, outcome: PyResult<Value>) -> PyResult<Option<Py<PyAny>>> {
        match outcome? {
            Value::Nothing => Ok(None),
            Value::True => Err(PyStopIteration::new_err(true)),
            Value::Object(value) => Err(stop_iteration(py, value)),
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

    fn begin(&self, py: Python<'_>) -> Stepped {
        match self.op().try_now(py) {
            Attempt::Done(outcome) => (Step::Done, Self::finished(py, outcome)),
            Attempt::MustWait => self.wait_in_line(py),
        }
    }

    /// Joins the line with a new waiter and yields its future, or ends if
    /// the wait turned out to be over already.
    fn wait_in_line(&self, py: Python<'_>) -> Stepped {
        match self.start_waiting(py) {
            Ok(Started::Waiting(mut wait)) => {
                wait.yielded = true;
                let future = wait.future.clone_ref(py);
                (Step::Waiting(wait), Ok(Some(future)))
            }
            Ok(Started::Done(outcome)) => (Step::Done, Self::finished(py, outcome)),
            Err(err) => (Step::Done, Err(err)),
        }
    }

    /// Queues a waiter on a new future of the running loop.
    fn start_waiting(&self, py: Python<'_>) -> PyResult<Started> {
        let prepared = running_loop(py).and_then(|event_loop| {
            let Some(event_loop) = event_loop else {
                return Err(PyRuntimeError::new_err(format!(
                    "{} must be awaited in a running asyncio event loop, and none is running in this thread",
                    self.op().method_name()
                )));
            };
            let future = new_future(&event_loop)?;
            let resolve = resolver(py)?.clone();
            Ok((event_loop, future, resolve))
        });
        // Everything that can fail happens before the waiter is queued, but for
        // the timer, which must follow it and takes the waiter out if it fails.
        let (event_loop, future, resolve) = match prepared {
            Ok(prepared) => prepared,
            Err(err) => {
                self.op().abandon(None);
                return Err(err);
            }
        };
        let handle = FutureHandle {
            event_loop: event_loop.clone().unbind(),
            future: Mutex::new(future.clone().unbind()),
            loop_thread: current_thread(),
        };
        let waiter = Waiter::for_future(self.op().weight(), handle);
        let (id, wake_in) = match self.op().enqueue(py, &waiter) {
            Lined::Done(outcome) => return Ok(Started::Done(outcome)),
            Lined::Waiting { id, wake_in } => (id, wake_in),
        };
        let timer = match arm_timer(&event_loop, &resolve, &future, wake_in) {
            Ok(timer) => timer,
            Err(err) => {
                self.op().abandon(Some((id, &waiter)));
                return Err(err);
            }
        };
        Ok(Started::Waiting(Wait {
            id,
            waiter,
            future: future.unbind(),
            timer,
            yielded: false,
        }))
    }

    /// Sleeps again on a fresh future (the last one completed without a
    /// grant). Returns false if a grant arrived meanwhile.
    fn wait_again(&self, py: Python<'_>, wait: &mut Wait, wake_in: Option<f64>) -> PyResult<bool> {
        let Wake::Future(handle) = &wait.waiter.wake else {
            return Ok(false);
        };
        let event_loop = handle.event_loop.bind(py);
        let future = new_future(event_loop)?;
        let replaced = std::mem::replace(&mut *handle.future.lock(), future.clone().unbind());
        // Dropped once the lock is released: a decref may run Python code.
        drop(replaced);
        // A grant that reached the old future has marked the waiter first.
        if wait.waiter.is_granted() {
            return Ok(false);
        }
        cancel_timer(py, wait);
        wait.timer = arm_timer(event_loop, resolver(py)?, &future, wake_in)?;
        wait.future = future.unbind();
        Ok(true)
    }

    /// Carries out what the operation decided after a grant or a wake-up.
    fn follow(&self, py: Python<'_>, mut wait: Wait, resumed: Resumed) -> Stepped {
        match resumed {
            Resumed::Done(outcome) => {
                cancel_timer(py, &wait);
                (Step::Done, Self::finished(py, outcome))
            }
            Resumed::Again => {
                cancel_timer(py, &wait);
                self.wait_in_line(py)
            }
            Resumed::Sleep { wake_in } => match self.wait_again(py, &mut wait, wake_in) {
                Ok(true) => {
                    let future = wait.future.clone_ref(py);
                    (Step::Waiting(wait), Ok(Some(future)))
                }
                Ok(false) => match self.op().granted(py, &wait.waiter) {
                    Some(resumed) => self.follow(py, wait, resumed),
                    None => {
                        self.abandon(py, wait);
                        let lost = "the wait ended without a grant";
                        (Step::Done, Err(PyRuntimeError::new_err(lost)))
                    }
                },
                Err(err) => {
                    self.abandon(py, wait);
                    (Step::Done, Err(err))
                }
            },
        }
    }

    fn resume(&self, py: Python<'_>, mut wait: Wait) -> Stepped {
        if wait.waiter.is_granted() {
            if let Some(resumed) = self.op().granted(py, &wait.waiter) {
                return self.follow(py, wait, resumed);
            }
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
                // Completed without a grant: a timer, or a kick to look again.
                let resumed = self.op().woken(py, wait.id, &wait.waiter);
                self.follow(py, wait, resumed)
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
        self.op().abandon(Some((wait.id, &wait.waiter)));
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

/// Where `start_waiting` left the call.
enum Started {
    Waiting(Wait),
    Done(PyResult<Value>),
}

/// The StopIteration that returns `value` from an awaitable. Set with the
/// value itself rather than an argument tuple, the interpreter takes the value
/// without making an exception object. A tuple must be wrapped, or it would
/// be read as the exception's arguments, and so must an exception, or it
/// would be taken for the StopIteration itself.
fn stop_iteration(py: Python<'_>, value: Py<PyAny>) -> PyErr {
    let bound = value.bind(py);
    let must_wrap = bound.is_instance_of::<pyo3::types::PyTuple>()
        || bound.is_instance_of::<pyo3::exceptions::PyBaseException>();
    if must_wrap {
        PyStopIteration::new_err((value,))
    } else {
        PyStopIteration::new_err(value)
    }
}

/// A new future of `event_loop`, marked as a task expects a yielded one.
fn new_future<'py>(event_loop: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = event_loop.py();
    let future = event_loop.call_method0(intern!(py, "create_future"))?;
    future.setattr(intern!(py, "_asyncio_future_blocking"), true)?;
    Ok(future)
}

/// Completes `future` after `wake_in` seconds, if given.
fn arm_timer(
    event_loop: &Bound<'_, PyAny>,
    resolve: &Bound<'_, PyAny>,
    future: &Bound<'_, PyAny>,
    wake_in: Option<f64>,
) -> PyResult<Option<Py<PyAny>>> {
    let Some(seconds) = wake_in else {
        return Ok(None);
    };
    let py = event_loop.py();
    let timer = event_loop.call_method1(intern!(py, "call_later"), (seconds, resolve, future))?;
    Ok(Some(timer.unbind()))
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
        format!("<brakes {} {state}>", self.op().method_name())
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        self.op().traverse(&visit)?;
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
            self.op().abandon(Some((wait.id, &wait.waiter)));
        }
    }
}

impl Drop for Acquiring {
    fn drop(&mut self) {
        // A waiting awaitable that is dropped unawaited leaves the queue, and a
        // grant that reached it goes back.
        if let Step::Waiting(wait) = std::mem::replace(self.step.get_mut(), Step::Done) {
            self.op().abandon(Some((wait.id, &wait.waiter)));
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
