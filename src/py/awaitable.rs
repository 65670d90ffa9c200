//! The asyncio driver: a core wait as a native coroutine, the future handle
//! the core wakes, and the timers. It knows nothing of what it waits for:
//! each primitive gives it an `Operation` (its core wait, with the outcome
//! mapped to Python) and names its awaitable class with `awaitable!`.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::thread::ThreadId;
use std::time::Duration;

use parking_lot::Mutex;
use pyo3::exceptions::{PyRuntimeError, PyStopIteration, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyString, PyType};
use pyo3::{ffi, intern, PyTraverseError, PyVisit};

use super::inbox::{inbox_for, Inbox};
use crate::core::redis::runtime::on_runtime_thread;
use crate::core::wait::{Notify, Poll, Waker};

/// What a finished call gives the code that awaited it.
pub enum Value {
    None,
    True,
    Object(Py<PyAny>),
}

/// One awaited call: a core wait, and what its outcome means in Python.
pub trait Operation: Send + 'static {
    /// The method awaited, for messages: "Gauge.acquire()".
    fn name(&self) -> &'static str;
    /// Polls the core wait (see `core::wait::Wait`) and maps its outcome.
    fn poll(&mut self, py: Python<'_>, waker: Option<&Waker>) -> Poll<PyResult<Value>>;
    /// Ends the call unfinished: leaves the line, gives back a raced grant.
    fn abandon(&mut self);
    /// Python objects the call holds, for the garbage collector.
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        let _ = visit;
        Ok(())
    }
    /// Lets go of the Python objects the call holds (it is over).
    fn clear(&mut self) {}
    /// Whether the wait is woken from the Redis client's threads (then its
    /// wake-ups go through the loop's inbox).
    fn woken_by_the_client(&self) -> bool {
        false
    }
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

/// Where a waiting task's wake-up goes: the future it sleeps on, if it is
/// asleep; otherwise a note that it was woken while it looked.
#[derive(Default)]
struct Slot {
    future: Option<Py<PyAny>>,
    woken: bool,
    /// The future was completed on the loop's thread: it is done.
    completed: bool,
}

/// How the core wakes an asyncio task: by completing the future the task
/// sleeps on, from the loop's own thread or through `call_soon_threadsafe`.
pub struct FutureHandle {
    event_loop: Py<PyAny>,
    plain_futures: bool,
    loop_thread: ThreadId,
    slot: Mutex<Slot>,
    /// Where wake-ups from the Redis client's threads go.
    inbox: Option<Weak<Inbox>>,
}

impl FutureHandle {
    fn new(event_loop: &Bound<'_, PyAny>, inbox: Option<Weak<Inbox>>) -> Self {
        Self {
            inbox,
            plain_futures: makes_plain_futures(event_loop),
            event_loop: event_loop.clone().unbind(),
            loop_thread: current_thread(),
            slot: Mutex::new(Slot::default()),
        }
    }

    /// Sleeps on `future`, unless a wake came while the task looked (then
    /// false: look again).
    fn arm(&self, future: Py<PyAny>) -> bool {
        let mut slot = self.slot.lock();
        if std::mem::take(&mut slot.woken) {
            return false;
        }
        slot.future = Some(future);
        true
    }

    /// Awake: wakes from now on count for the next look.
    fn disarm(&self) -> Option<Py<PyAny>> {
        let mut slot = self.slot.lock();
        slot.woken = false;
        slot.completed = false;
        slot.future.take()
    }

    fn loop_closed(&self, py: Python<'_>) -> bool {
        self.event_loop
            .bind(py)
            .call_method0(intern!(py, "is_closed"))
            .and_then(|closed| closed.is_truthy())
            .unwrap_or(false)
    }

    /// True when a wake completed the future on the loop's own thread.
    fn completed(&self) -> bool {
        self.slot.lock().completed
    }

    fn visit(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.event_loop)?;
        // A busy slot is being changed by a waker: skipping it only keeps
        // objects alive a little longer.
        if let Some(slot) = self.slot.try_lock() {
            if let Some(future) = &slot.future {
                visit.call(future)?;
            }
        }
        Ok(())
    }
}

impl Notify for FutureHandle {
    fn notify(&self) -> bool {
        if on_runtime_thread() {
            if let Some(inbox) = self.inbox.as_ref().and_then(Weak::upgrade) {
                let future = {
                    let mut slot = self.slot.lock();
                    let Some(future) = slot.future.take() else {
                        slot.woken = true;
                        return true;
                    };
                    future
                };
                inbox.post(future);
                return true;
            }
        }
        Python::attach(|py| {
            let future = {
                let mut slot = self.slot.lock();
                let Some(future) = slot.future.take() else {
                    slot.woken = true;
                    drop(slot);
                    // Woken while it looks, unless its loop has closed with
                    // the wake-up that left the slot empty still queued:
                    // then it never looks again.
                    return !self.loop_closed(py);
                };
                future
            };
            let future = future.into_bound(py);
            if current_thread() == self.loop_thread {
                return match call_method_one(
                    &future,
                    intern!(py, "set_result"),
                    &py.None().into_bound(py),
                ) {
                    Ok(_) => {
                        self.slot.lock().completed = true;
                        true
                    }
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

fn running_loop<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let get = GET_RUNNING_LOOP.import(py, "asyncio", "_get_running_loop")?;
    let event_loop = get.call0()?;
    if event_loop.is_none() {
        return Err(PyRuntimeError::new_err(format!(
            "{name} must be awaited in a running asyncio event loop, and none is running in this thread"
        )));
    }
    Ok(event_loop)
}

/// Whether `event_loop` makes its futures as asyncio's own loops do, with
/// `BaseEventLoop.create_future` (uvloop and others make their own).
fn makes_plain_futures(event_loop: &Bound<'_, PyAny>) -> bool {
    // The answer for the last loop type asked about: one type, in practice.
    static LAST: Mutex<Option<(Py<PyType>, bool)>> = Mutex::new(None);
    let loop_type = event_loop.get_type();
    if let Some((known, plain)) = &*LAST.lock() {
        if known.is(&loop_type) {
            return *plain;
        }
    }
    let plain = looks_up_plain_futures(event_loop);
    let replaced = LAST.lock().replace((loop_type.unbind(), plain));
    drop(replaced);
    plain
}

fn looks_up_plain_futures(event_loop: &Bound<'_, PyAny>) -> bool {
    static CREATE_FUTURE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let py = event_loop.py();
    let Ok(plain) = CREATE_FUTURE.import(py, "asyncio.base_events", "BaseEventLoop") else {
        return false;
    };
    let plain = plain.getattr(intern!(py, "create_future"));
    let own = event_loop.get_type().getattr(intern!(py, "create_future"));
    matches!((plain, own), (Ok(plain), Ok(own)) if plain.is(&own))
}

/// A new future of the running loop, marked as a task expects a yielded
/// one. For asyncio's own loops it is made directly, on this (the loop's)
/// thread: what `create_future` does, without its Python frame.
fn new_future<'py>(handle: &FutureHandle, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
    static FUTURE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let future = if handle.plain_futures {
        FUTURE.import(py, "asyncio", "Future")?.call0()?
    } else {
        handle
            .event_loop
            .bind(py)
            .call_method0(intern!(py, "create_future"))?
    };
    future.setattr(intern!(py, "_asyncio_future_blocking"), true)?;
    Ok(future)
}

/// Completes `future` after `after`.
fn arm_timer(
    event_loop: &Bound<'_, PyAny>,
    future: &Bound<'_, PyAny>,
    after: Duration,
) -> PyResult<Py<PyAny>> {
    let py = event_loop.py();
    let resolve = resolver(py)?;
    let timer = event_loop.call_method1(
        intern!(py, "call_later"),
        (after.as_secs_f64(), resolve, future),
    )?;
    Ok(timer.unbind())
}

/// A task asleep in a wait: the future it sleeps on and its timer.
struct Sleep {
    handle: Arc<FutureHandle>,
    waker: Waker,
    future: Py<PyAny>,
    timer: Option<Py<PyAny>>,
}

impl Sleep {
    fn cancel_timer(&mut self, py: Python<'_>) {
        if let Some(timer) = self.timer.take() {
            // A timer that fires anyway only completes a done future: harmless.
            let _ = timer.bind(py).call_method0(intern!(py, "cancel"));
        }
    }
}

enum Stage {
    Fresh,
    /// Polled once without a waker already (by `__aenter__`).
    Tried,
    Asleep(Sleep),
    Done,
}

/// How a step ends: it yields a future, or the call is over with a value.
enum Stepped {
    Yield(Py<PyAny>),
    Return(Value),
}

/// A call and where it stands.
struct State<O> {
    op: O,
    stage: Stage,
}

/// Drives an `Operation` as asyncio drives a coroutine. It does its work
/// when first stepped, so a call that is never awaited holds nothing.
///
/// Its state is entered by one caller at a time: `busy` is taken with one
/// atomic swap and given back with a plain store, cheaper than a lock on a
/// path every `await` takes. A second caller (re-entry from a callback the
/// step ran, or the garbage collector) finds it busy and backs off.
pub struct Driver<O: Operation> {
    busy: AtomicBool,
    state: UnsafeCell<State<O>>,
}

// SAFETY: the state is only reached through `enter`, by whoever holds `busy`.
unsafe impl<O: Operation> Sync for Driver<O> {}

/// A driver's state, held by one caller; given back when dropped.
struct Entered<'a, O: Operation> {
    driver: &'a Driver<O>,
}

impl<O: Operation> std::ops::Deref for Entered<'_, O> {
    type Target = State<O>;
    fn deref(&self) -> &State<O> {
        // SAFETY: holding `busy` gives this guard sole access to the state.
        unsafe { &*self.driver.state.get() }
    }
}

impl<O: Operation> std::ops::DerefMut for Entered<'_, O> {
    fn deref_mut(&mut self) -> &mut State<O> {
        // SAFETY: as above.
        unsafe { &mut *self.driver.state.get() }
    }
}

impl<O: Operation> Drop for Entered<'_, O> {
    fn drop(&mut self) {
        self.driver.busy.store(false, Ordering::Release);
    }
}

fn already_executing() -> PyErr {
    PyValueError::new_err("coroutine already executing")
}

impl<O: Operation> Driver<O> {
    pub fn new(op: O) -> Self {
        Self::at(op, Stage::Fresh)
    }

    fn at(op: O, stage: Stage) -> Self {
        Self {
            busy: AtomicBool::new(false),
            state: UnsafeCell::new(State { op, stage }),
        }
    }

    fn enter(&self) -> Option<Entered<'_, O>> {
        (!self.busy.swap(true, Ordering::Acquire)).then_some(Entered { driver: self })
    }

    fn step(&self, py: Python<'_>) -> PyResult<Stepped> {
        let mut entered = self.enter().ok_or_else(already_executing)?;
        let state = &mut *entered;
        match std::mem::replace(&mut state.stage, Stage::Done) {
            Stage::Fresh => match state.op.poll(py, None) {
                Poll::Ready(outcome) => outcome.map(Stepped::Return),
                Poll::Pending(_) => Self::first_look(py, state),
            },
            Stage::Tried => Self::first_look(py, state),
            Stage::Asleep(sleep) => Self::wake(py, state, sleep),
            Stage::Done => Err(PyRuntimeError::new_err(
                "cannot reuse already awaited coroutine",
            )),
        }
    }

    /// Polled without a waker, the call holds nothing yet: an error finding
    /// the loop leaves nothing behind.
    fn first_look(py: Python<'_>, state: &mut State<O>) -> PyResult<Stepped> {
        let event_loop = running_loop(py, state.op.name())?;
        let inbox = if state.op.woken_by_the_client() {
            inbox_for(&event_loop)
        } else {
            None
        };
        let handle = Arc::new(FutureHandle::new(&event_loop, inbox));
        let waker: Waker = handle.clone();
        Self::look(py, state, handle, waker)
    }

    /// Polls with the task's waker; sleeps on a new future if still pending.
    fn look(
        py: Python<'_>,
        state: &mut State<O>,
        handle: Arc<FutureHandle>,
        waker: Waker,
    ) -> PyResult<Stepped> {
        let after = match state.op.poll(py, Some(&waker)) {
            Poll::Ready(outcome) => return outcome.map(Stepped::Return),
            Poll::Pending(after) => after,
        };
        let event_loop = handle.event_loop.bind(py);
        let armed = new_future(&handle, py).and_then(|future| {
            let timer = if handle.arm(future.clone().unbind()) {
                after
                    .map(|after| arm_timer(event_loop, &future, after))
                    .transpose()?
            } else {
                // Woken while it looked: it looks again after one pass of the
                // loop, behind tasks woken before it (so that, as with asyncio's
                // own locks, callers resume in the order they were granted).
                let none = py.None().into_bound(py);
                call_method_one(&future, intern!(py, "set_result"), &none)?;
                None
            };
            Ok((future, timer))
        });
        match armed {
            Ok((future, timer)) => {
                let yielded = future.clone().unbind();
                state.stage = Stage::Asleep(Sleep {
                    handle,
                    waker,
                    future: future.unbind(),
                    timer,
                });
                Ok(Stepped::Yield(yielded))
            }
            Err(err) => {
                state.op.abandon();
                drop(handle.disarm());
                Err(err)
            }
        }
    }

    /// The task was stepped: its future is done (woken, or its timer), or
    /// it was stepped early and sleeps on.
    fn wake(py: Python<'_>, state: &mut State<O>, mut sleep: Sleep) -> PyResult<Stepped> {
        let future = sleep.future.bind(py);
        // Completed here by a wake (the common case): no need to ask.
        let done = if sleep.handle.completed() {
            Ok(true)
        } else {
            future
                .call_method0(intern!(py, "done"))
                .and_then(|done| done.is_truthy())
        };
        match done {
            Ok(true) => {}
            Ok(false) => {
                let again = future.setattr(intern!(py, "_asyncio_future_blocking"), true);
                let yielded = sleep.future.clone_ref(py);
                return match again {
                    Ok(()) => {
                        state.stage = Stage::Asleep(sleep);
                        Ok(Stepped::Yield(yielded))
                    }
                    Err(err) => {
                        Self::abandon_asleep(py, &mut state.op, sleep);
                        Err(err)
                    }
                };
            }
            Err(err) => {
                Self::abandon_asleep(py, &mut state.op, sleep);
                return Err(err);
            }
        }
        sleep.cancel_timer(py);
        drop(sleep.handle.disarm());
        let Sleep { handle, waker, .. } = sleep;
        Self::look(py, state, handle, waker)
    }

    fn abandon_asleep(py: Python<'_>, op: &mut O, mut sleep: Sleep) {
        sleep.cancel_timer(py);
        op.abandon();
        drop(sleep.handle.disarm());
    }

    /// Ends the call where it stands (`throw`, `close`): it leaves the line
    /// and gives back a grant that raced in.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let mut entered = self.enter().ok_or_else(already_executing)?;
        let state = &mut *entered;
        match std::mem::replace(&mut state.stage, Stage::Done) {
            Stage::Asleep(sleep) => Self::abandon_asleep(py, &mut state.op, sleep),
            Stage::Fresh | Stage::Tried => state.op.abandon(),
            Stage::Done => {}
        }
        Ok(())
    }

    /// `__next__`: yields the future to sleep on, or ends the coroutine.
    pub fn next(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        match self.step(py)? {
            Stepped::Yield(future) => Ok(Some(future)),
            Stepped::Return(Value::None) => Ok(None),
            Stepped::Return(value) => {
                // NULL with StopIteration set to the value is how a native
                // iterator ends with one.
                stop_with(py, value);
                Ok(None)
            }
        }
    }

    /// `send(value)`, which asyncio's task calls on what it runs directly.
    pub fn send(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self.step(py)? {
            Stepped::Yield(future) => Ok(future),
            Stepped::Return(Value::None) => Err(PyStopIteration::new_err(())),
            Stepped::Return(Value::True) => Err(PyStopIteration::new_err(true)),
            Stepped::Return(Value::Object(value)) => Err(stop_iteration(py, value)),
        }
    }

    pub fn throw(
        &self,
        py: Python<'_>,
        typ: &Bound<'_, PyAny>,
        value: Option<&Bound<'_, PyAny>>,
        traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.stop(py)?;
        Err(thrown(py, typ, value, traceback))
    }

    pub fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.stop(py)
    }

    pub fn repr(&self) -> String {
        let Some(state) = self.enter() else {
            return "<brakes awaitable running>".to_owned();
        };
        let standing = match state.stage {
            Stage::Fresh | Stage::Tried => "not started",
            Stage::Asleep(_) => "waiting",
            Stage::Done => "done",
        };
        format!("<brakes {} {standing}>", state.op.name())
    }

    pub fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        // Busy: being stepped; missing its references only keeps objects alive.
        let Some(state) = self.enter() else {
            return Ok(());
        };
        state.op.traverse(visit)?;
        if let Stage::Asleep(sleep) = &state.stage {
            visit.call(&sleep.future)?;
            if let Some(timer) = &sleep.timer {
                visit.call(timer)?;
            }
            sleep.handle.visit(visit)?;
        }
        Ok(())
    }

    /// Breaks reference cycles: the call ends, and lets go of its objects.
    pub fn clear(&self) {
        let Some(mut entered) = self.enter() else {
            return;
        };
        let state = &mut *entered;
        if let Stage::Asleep(sleep) = std::mem::replace(&mut state.stage, Stage::Done) {
            state.op.abandon();
            drop(sleep.handle.disarm());
            drop(sleep);
        }
        state.op.clear();
    }
}

impl<O: Operation> Drop for Driver<O> {
    fn drop(&mut self) {
        // A sleeping call dropped unawaited leaves its line, gives back a
        // grant that reached it, and stops its timer.
        let state = self.state.get_mut();
        match std::mem::replace(&mut state.stage, Stage::Done) {
            Stage::Asleep(sleep) => {
                Python::attach(|py| Self::abandon_asleep(py, &mut state.op, sleep));
            }
            // Never stepped nor closed: it did nothing, as a coroutine that
            // is never awaited does, and says so as asyncio's do.
            Stage::Fresh => {
                let name = state.op.name();
                Python::attach(|py| warn_never_awaited(py, name));
            }
            Stage::Tried | Stage::Done => {}
        }
    }
}

/// `RuntimeWarning: coroutine 'Queue.put' was never awaited`, as CPython
/// warns for its own coroutines; an error the warning raises (a filter set
/// to "error") is reported as unraisable, a Ctrl-C is delivered again, and
/// an error already set is kept.
fn warn_never_awaited(py: Python<'_>, name: &str) {
    let saved = PyErr::take(py);
    let message = format!(
        "coroutine '{}' was never awaited",
        name.trim_end_matches("()")
    );
    let category = py.get_type::<pyo3::exceptions::PyRuntimeWarning>();
    if let Err(err) = PyErr::warn(
        py,
        &category,
        &std::ffi::CString::new(message).unwrap_or_default(),
        1,
    ) {
        if err.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py) {
            // Ctrl-C came while the warning ran Python code, where it could
            // not be raised: it is delivered again, to whoever looks next
            // (a blocking wait looks for it before taking a grant).
            // SAFETY: the GIL is held.
            unsafe { ffi::PyErr_SetInterrupt() };
        } else {
            err.write_unraisable(py, None);
        }
    }
    if let Some(saved) = saved {
        saved.restore(py);
    }
}

/// Ends an iterator with `value`: StopIteration set to the value itself, not
/// to an exception made from it (which the interpreter would only unpack).
/// A tuple or an exception is wrapped, or it would be read as arguments.
fn stop_with(py: Python<'_>, value: Value) {
    let value = match value {
        Value::None => py.None(),
        Value::True => pyo3::types::PyBool::new(py, true)
            .to_owned()
            .into_any()
            .unbind(),
        Value::Object(value) => value,
    };
    let bound = value.bind(py);
    if bound.is_instance_of::<pyo3::types::PyTuple>()
        || bound.is_instance_of::<pyo3::exceptions::PyBaseException>()
    {
        stop_iteration(py, value).restore(py);
        return;
    }
    // SAFETY: both are live objects; PyErr_SetObject takes its own references.
    unsafe { ffi::PyErr_SetObject(ffi::PyExc_StopIteration, bound.as_ptr()) };
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

/// A native awaitable class: one per kind of call, made by `awaitable!`.
pub trait Awaitable: pyo3::PyClass + Into<PyClassInitializer<Self>> {
    type Op: Operation;
    fn wrap(driver: Driver<Self::Op>) -> Self;
}

/// A new awaitable of class `A` for `op`.
pub fn new_awaitable<A: Awaitable>(py: Python<'_>, op: A::Op) -> PyResult<Py<A>> {
    Py::new(py, A::wrap(Driver::new(op)))
}

/// For `__aenter__`, which the interpreter awaits at once, so it may act at
/// call time: a call that is over at once (a free permit, a refusal) needs no
/// awaitable of its own (the shared finished one, or the error); the others
/// go on in one.
pub fn enter<A: Awaitable>(py: Python<'_>, op: A::Op) -> PyResult<Py<PyAny>> {
    enter_with::<A>(py, op, || {}, |_| {})
}

/// `enter`, calling `on_ready` once the operation finished at once, or
/// `on_pending` with it before it is wrapped to wait.
pub fn enter_with<A: Awaitable>(
    py: Python<'_>,
    mut op: A::Op,
    on_ready: impl FnOnce(),
    on_pending: impl FnOnce(&mut A::Op),
) -> PyResult<Py<PyAny>> {
    match op.poll(py, None) {
        Poll::Ready(outcome) => {
            outcome?;
            on_ready();
            Ok(ready(py)?.into_any())
        }
        Poll::Pending(_) => {
            on_pending(&mut op);
            Ok(Py::new(py, A::wrap(Driver::at(op, Stage::Tried)))?.into_any())
        }
    }
}

/// Defines the awaitable class of one kind of call, a coroutine to asyncio.
macro_rules! awaitable {
    ($(#[$meta:meta])* $name:ident, $op:ty) => {
        $(#[$meta])*
        #[pyo3::pyclass(frozen, module = "brakes._brakes")]
        pub struct $name($crate::py::awaitable::Driver<$op>);

        impl $crate::py::awaitable::Awaitable for $name {
            type Op = $op;
            fn wrap(driver: $crate::py::awaitable::Driver<$op>) -> Self {
                Self(driver)
            }
        }

        impl $name {
            pub fn new(py: pyo3::Python<'_>, op: $op) -> pyo3::PyResult<pyo3::Py<Self>> {
                $crate::py::awaitable::new_awaitable(py, op)
            }
        }

        #[pyo3::pymethods]
        impl $name {
            fn __await__(slf: pyo3::Py<Self>) -> pyo3::Py<Self> {
                slf
            }

            fn __iter__(slf: pyo3::Py<Self>) -> pyo3::Py<Self> {
                slf
            }

            fn __next__(
                &self,
                py: pyo3::Python<'_>,
            ) -> pyo3::PyResult<Option<pyo3::Py<pyo3::PyAny>>> {
                self.0.next(py)
            }

            #[pyo3(signature = (value, /))]
            fn send(
                &self,
                py: pyo3::Python<'_>,
                value: &pyo3::Bound<'_, pyo3::PyAny>,
            ) -> pyo3::PyResult<pyo3::Py<pyo3::PyAny>> {
                let _ = value;
                self.0.send(py)
            }

            #[pyo3(signature = (typ, val=None, tb=None, /))]
            fn throw(
                &self,
                py: pyo3::Python<'_>,
                typ: &pyo3::Bound<'_, pyo3::PyAny>,
                val: Option<&pyo3::Bound<'_, pyo3::PyAny>>,
                tb: Option<&pyo3::Bound<'_, pyo3::PyAny>>,
            ) -> pyo3::PyResult<()> {
                self.0.throw(py, typ, val, tb)
            }

            fn close(&self, py: pyo3::Python<'_>) -> pyo3::PyResult<()> {
                self.0.close(py)
            }

            fn __repr__(&self) -> String {
                self.0.repr()
            }

            fn __traverse__(
                &self,
                visit: pyo3::PyVisit<'_>,
            ) -> Result<(), pyo3::PyTraverseError> {
                self.0.traverse(&visit)
            }

            fn __clear__(&self) {
                self.0.clear()
            }
        }
    };
}
pub(crate) use awaitable;

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

/// Adds an awaitable class to the module and lets asyncio's `create_task`,
/// `gather` and `TaskGroup` take it, as a coroutine.
pub fn register<T: pyo3::PyClass>(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    module.add_class::<T>()?;
    let coroutine = py.import("collections.abc")?.getattr("Coroutine")?;
    coroutine.call_method1("register", (py.get_type::<T>(),))?;
    Ok(())
}

/// Registers what every primitive shares.
pub fn register_shared(module: &Bound<'_, PyModule>) -> PyResult<()> {
    register::<Ready>(module)
}
