//! `brakes.Queue`, `LifoQueue` and `PriorityQueue`: the Python face of the
//! core queue, a drop-in for `asyncio.Queue` that threads can share.

use std::ops::Deref;

use parking_lot::Mutex;
use pyo3::exceptions::{PyRuntimeError, PyStopAsyncIteration, PyTimeoutError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyType};
use pyo3::{PyTraverseError, PyVisit};

use super::arguments::{arg, integer, nanoseconds, wait_seconds, weight};
use super::awaitable::{awaitable, Operation, Value};
use super::blocking::wait_here;
use super::errors::{is_queue_shut_down, queue_empty, queue_full, queue_shut_down, value_error};
use super::stats::{stats_class, Histogram};
use crate::core::batch::Batch;
use crate::core::queue::{Capacity, Get, Item, Join, Overflow, Put, Queue as CoreQueue, Snapshot};
use crate::core::store::Order;
use crate::core::wait::{Outcome, Poll, Refusal, Wait, Waker};

/// Items are Python objects; a priority queue orders them with `<`.
impl Item for Py<PyAny> {
    type Error = PyErr;
    fn attached<R>(f: impl FnOnce() -> R) -> R {
        Python::attach(|_| f())
    }
    fn share(&self) -> Self {
        // Inside `attached`: the thread holds the GIL already, so this
        // never waits for it while the queue's lock is held.
        Python::attach(|py| self.clone_ref(py))
    }
    fn goes_before(&self, other: &Self) -> PyResult<bool> {
        Python::attach(|py| self.bind(py).lt(other.bind(py)))
    }
}

type Core = CoreQueue<Py<PyAny>>;

const OVERFLOWS: [(&str, Overflow); 4] = [
    ("block", Overflow::Block),
    ("reject", Overflow::Reject),
    ("drop_new", Overflow::DropNew),
    ("drop_old", Overflow::DropOld),
];

fn overflow_name(overflow: Overflow) -> &'static str {
    OVERFLOWS
        .iter()
        .find(|(_, o)| *o == overflow)
        .map_or("block", |(name, _)| name)
}

fn check_maxsize(maxsize: &Bound<'_, PyAny>) -> PyResult<i64> {
    integer("maxsize", maxsize)
}

fn check_overflow(overflow: &Bound<'_, PyAny>) -> PyResult<Overflow> {
    let Ok(name) = overflow.extract::<String>() else {
        return Err(PyTypeError::new_err(format!(
            "overflow must be a string, got {}",
            overflow.repr()?
        )));
    };
    OVERFLOWS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, o)| *o)
        .ok_or_else(|| {
            value_error(format!(
                "overflow must be one of 'block', 'reject', 'drop_new', 'drop_old', got {name:?}"
            ))
        })
}

fn check_max_items(max_items: i64) -> PyResult<u64> {
    if max_items < 1 {
        return Err(value_error(format!(
            "max_items must be 1 or more, got {max_items}"
        )));
    }
    Ok(max_items as u64)
}

/// `linger`: seconds, or None to wait until the batch is full.
fn check_linger(linger: Option<f64>) -> PyResult<Option<u64>> {
    match linger {
        None => Ok(None),
        Some(s) if s.is_finite() && s >= 0.0 => Ok(nanoseconds(Some(s))),
        Some(s) => Err(value_error(format!(
            "linger must be None or a finite number of seconds >= 0, got {s}"
        ))),
    }
}

/// A queue's Python object, as the awaited calls hold it: it keeps the queue
/// (and its `on_drop`) alive for as long as they wait.
pub struct Shared(Py<Queue>);

impl Deref for Shared {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.0.get().core
    }
}

/// A bounded queue for asyncio tasks and threads alike: a drop-in for
/// `asyncio.Queue` (`await put`, `await get`, `put_nowait`, `get_nowait`,
/// `task_done`, `await join`), with `put_blocking`, `get_blocking` and
/// `join_blocking` for threads, batches, Python 3.13's `shutdown`, and
/// iteration that ends at shutdown.
///
/// `overflow` says what a put does when the queue is full: "block" waits
/// for room (as asyncio does), "reject" raises `QueueFull` at once,
/// "drop_new" discards the new item, "drop_old" discards the oldest one.
/// Discarded items are handed to `on_drop(item)` if given.
///
/// >>> q = Queue(2, overflow="drop_old")
/// >>> for n in range(3):
/// ...     q.put_nowait(n)
/// >>> q.get_nowait(), q.get_nowait()
/// (1, 2)
#[pyclass(frozen, subclass, weakref, module = "brakes")]
pub struct Queue {
    core: Core,
    maxsize: i64,
    on_drop: Mutex<Option<Py<PyAny>>>,
    name: Option<String>,
}

/// What a get's outcome means to its caller.
#[derive(Clone, Copy)]
pub struct GetKind {
    /// `__anext__` ends the iteration at shutdown instead of raising.
    ends_iteration: bool,
    /// The value is `(number, item)`: see `Channel.get_numbered`.
    numbered: bool,
}

impl Queue {
    fn build(
        maxsize: &Bound<'_, PyAny>,
        overflow: &Bound<'_, PyAny>,
        on_drop: Option<Bound<'_, PyAny>>,
        order: Order,
        name: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let name = super::arguments::name(name)?;
        let maxsize = check_maxsize(maxsize)?;
        let overflow = check_overflow(overflow)?;
        let on_drop = on_drop.filter(|f| !f.is_none());
        if let Some(f) = &on_drop {
            if !f.is_callable() {
                return Err(PyTypeError::new_err(format!(
                    "on_drop must be callable or None, got {}",
                    f.repr()?
                )));
            }
        }
        Ok(Self {
            core: CoreQueue::new(maxsize.max(0) as u64, order, overflow),
            maxsize,
            on_drop: Mutex::new(on_drop.map(Bound::unbind)),
            name,
        })
    }

    /// A FIFO queue of the given capacity that only the crate makes.
    pub fn with_capacity(capacity: Capacity) -> Self {
        Self {
            core: CoreQueue::with_capacity(capacity, Order::Fifo, Overflow::Block),
            maxsize: match capacity {
                Capacity::Bounded(n) => n as i64,
                Capacity::Unbounded | Capacity::Handover => 0,
            },
            on_drop: Mutex::new(None),
            name: None,
        }
    }

    /// Hands discarded items to `on_drop`, with no lock held. The first
    /// exception reaches the caller once every item was handed over; later
    /// ones go to `sys.unraisablehook`.
    fn hand_dropped(&self, py: Python<'_>, items: Vec<Py<PyAny>>) -> PyResult<()> {
        let on_drop = self.on_drop.lock().as_ref().map(|f| f.clone_ref(py));
        let Some(on_drop) = on_drop else {
            return Ok(());
        };
        let mut first_error = None;
        for item in items {
            if let Err(err) = on_drop.call1(py, (item,)) {
                if first_error.is_none() {
                    first_error = Some(err);
                } else {
                    err.write_unraisable(py, Some(on_drop.bind(py)));
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// What a put's outcome means to its caller.
    fn put_result(
        &self,
        py: Python<'_>,
        outcome: Outcome<Option<Py<PyAny>>, PyErr>,
    ) -> PyResult<()> {
        match outcome {
            Ok(None) => Ok(()),
            Ok(Some(dropped)) => self.hand_dropped(py, vec![dropped]),
            Err(Refusal::ShutDown) => Err(queue_shut_down(py)),
            Err(Refusal::Failed(err)) => Err(err),
            Err(_) => Err(queue_full(
                py,
                format!("the queue is full (maxsize={})", self.maxsize),
            )),
        }
    }

    /// What a get's outcome means to its caller.
    fn get_result(
        py: Python<'_>,
        kind: GetKind,
        outcome: Outcome<(u64, Py<PyAny>)>,
    ) -> PyResult<Py<PyAny>> {
        match outcome {
            Ok((number, item)) if kind.numbered => {
                Ok((number, item).into_pyobject(py)?.into_any().unbind())
            }
            Ok((_, item)) => Ok(item),
            Err(Refusal::ShutDown) if kind.ends_iteration => Err(PyStopAsyncIteration::new_err(())),
            Err(refusal) => Err(nothing(py, refusal)),
        }
    }

    fn batch_result(
        py: Python<'_>,
        outcome: Outcome<(u64, Vec<Py<PyAny>>)>,
    ) -> PyResult<Py<PyList>> {
        match outcome {
            Ok((_, items)) => Ok(PyList::new(py, items)?.unbind()),
            Err(refusal) => Err(nothing(py, refusal)),
        }
    }

    fn get_here(&self, py: Python<'_>, kind: GetKind, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let mut wait = Get::new(&self.core, nanoseconds(timeout));
        let outcome = wait_here(py, &mut wait)?;
        Self::get_result(py, kind, outcome)
    }

    fn get_call(queue: &Bound<'_, Self>, kind: GetKind) -> PyResult<Py<QueueGet>> {
        let shared = Shared(queue.clone().unbind());
        let call = GetCall {
            wait: Get::new(shared, None),
            kind,
        };
        QueueGet::new(queue.py(), call)
    }
}

/// The error of a get that found nothing.
fn nothing(py: Python<'_>, refusal: Refusal) -> PyErr {
    match refusal {
        Refusal::ShutDown => queue_shut_down(py),
        Refusal::TimedOut => queue_empty(py, "no item came within the timeout".to_owned()),
        _ => queue_empty(py, "the queue is empty".to_owned()),
    }
}

/// Polls a wait that allows no wait: it is always over at once.
fn at_once<W: Wait>(wait: &mut W) -> PyResult<W::Output> {
    match wait.poll(None) {
        Poll::Ready(output) => Ok(output),
        Poll::Pending(_) => Err(PyRuntimeError::new_err("a call that may not wait waited")),
    }
}

/// `await queue.put(item)`.
pub struct PutCall {
    wait: Put<Shared, Py<PyAny>>,
}

impl Operation for PutCall {
    fn name(&self) -> &'static str {
        "Queue.put()"
    }
    fn poll(&mut self, py: Python<'_>, waker: Option<&Waker>) -> Poll<PyResult<Value>> {
        let polled = self.wait.poll(waker);
        polled.map(|outcome| {
            let queue = &self.wait.queue().0;
            queue.get().put_result(py, outcome).map(|()| Value::None)
        })
    }
    fn abandon(&mut self) {
        self.wait.abandon();
    }
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.wait.queue().0)?;
        if let Some(item) = self.wait.item() {
            visit.call(item)?;
        }
        Ok(())
    }
    fn clear(&mut self) {
        drop(self.wait.take_item());
    }
}

/// `await queue.get()`, each step of `async for`, `await get_numbered()`.
pub struct GetCall {
    wait: Get<Shared, Py<PyAny>>,
    kind: GetKind,
}

impl Operation for GetCall {
    fn name(&self) -> &'static str {
        "Queue.get()"
    }
    fn poll(&mut self, py: Python<'_>, waker: Option<&Waker>) -> Poll<PyResult<Value>> {
        let kind = self.kind;
        self.wait
            .poll(waker)
            .map(|outcome| Queue::get_result(py, kind, outcome).map(Value::Object))
    }
    fn abandon(&mut self) {
        self.wait.abandon();
    }
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.wait.queue().0)
    }
}

/// `await queue.join()`.
pub struct JoinCall {
    wait: Join<Shared, Py<PyAny>>,
}

impl Operation for JoinCall {
    fn name(&self) -> &'static str {
        "Queue.join()"
    }
    fn poll(&mut self, _py: Python<'_>, waker: Option<&Waker>) -> Poll<PyResult<Value>> {
        // Without a timeout, a join ends only when the work is done.
        self.wait.poll(waker).map(|_| Ok(Value::None))
    }
    fn abandon(&mut self) {
        self.wait.abandon();
    }
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.wait.queue().0)
    }
}

/// `await queue.get_batch(...)`.
pub struct BatchCall {
    wait: Batch<Shared, Py<PyAny>>,
}

impl Operation for BatchCall {
    fn name(&self) -> &'static str {
        "Queue.get_batch()"
    }
    fn poll(&mut self, py: Python<'_>, waker: Option<&Waker>) -> Poll<PyResult<Value>> {
        self.wait.poll(waker).map(|outcome| {
            Queue::batch_result(py, outcome).map(|list| Value::Object(list.into_any()))
        })
    }
    fn abandon(&mut self) {
        self.wait.abandon();
    }
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.wait.queue().0)
    }
}

awaitable!(
    /// The awaitable of `Queue.put()`.
    QueuePut,
    PutCall
);
awaitable!(
    /// The awaitable of `Queue.get()`.
    QueueGet,
    GetCall
);
awaitable!(
    /// The awaitable of `Queue.join()`.
    QueueJoin,
    JoinCall
);
awaitable!(
    /// The awaitable of `Queue.get_batch()`.
    QueueGetBatch,
    BatchCall
);

#[pymethods]
impl Queue {
    #[new]
    #[pyo3(signature = (maxsize = None, *, overflow = None, on_drop = None, name = None),
           text_signature = "(maxsize=0, *, overflow='block', on_drop=None, name=None)")]
    fn new(
        py: Python<'_>,
        maxsize: Option<&Bound<'_, PyAny>>,
        overflow: Option<&Bound<'_, PyAny>>,
        on_drop: Option<Bound<'_, PyAny>>,
        name: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        new_queue(py, maxsize, overflow, on_drop, Order::Fifo, name)
    }

    /// The queue's name (in reprs, logs and metrics), or None.
    #[getter]
    fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    #[classmethod]
    fn __class_getitem__(cls: &Bound<'_, PyType>, item: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let py = cls.py();
        let alias = py.import("types")?.getattr("GenericAlias")?;
        Ok(alias.call1((cls, item))?.unbind())
    }

    /// The bound given at construction; 0 or less is unbounded.
    #[getter]
    fn maxsize(&self) -> i64 {
        self.maxsize
    }

    /// What a put does when the queue is full.
    #[getter]
    fn overflow(&self) -> &'static str {
        overflow_name(self.core.overflow())
    }

    /// Items a consumer could take now.
    fn qsize(&self) -> u64 {
        self.core.size()
    }

    /// True when `get_nowait` would find nothing.
    fn empty(&self) -> bool {
        self.core.size() == 0
    }

    /// True when `put_nowait` would find no room.
    fn full(&self) -> bool {
        self.core.is_full()
    }

    /// Puts `item`, waiting on the running event loop for room if the queue
    /// is full and `overflow` is "block".
    fn put(slf: &Bound<'_, Self>, item: Py<PyAny>) -> PyResult<Py<QueuePut>> {
        let shared = Shared(slf.clone().unbind());
        let call = PutCall {
            wait: Put::new(shared, item, None),
        };
        QueuePut::new(slf.py(), call)
    }

    /// Puts `item` without waiting: `QueueFull` if there is no room and
    /// `overflow` is "block" or "reject".
    fn put_nowait(&self, py: Python<'_>, item: Py<PyAny>) -> PyResult<()> {
        let outcome = at_once(&mut Put::new(&self.core, item, Some(0)))?;
        self.put_result(py, outcome)
    }

    /// Puts `item` from a thread, waiting with the GIL released up to
    /// `timeout` seconds for room; `QueueFull` when the time runs out.
    #[pyo3(signature = (item, *, timeout = None))]
    fn put_blocking(
        &self,
        py: Python<'_>,
        item: Py<PyAny>,
        #[pyo3(from_py_with = arg::timeout)] timeout: Option<f64>,
    ) -> PyResult<()> {
        let timeout = wait_seconds("timeout", timeout)?;
        let mut wait = Put::new(&self.core, item, nanoseconds(timeout));
        let outcome = wait_here(py, &mut wait)?;
        self.put_result(py, outcome)
    }

    /// Removes and returns an item, waiting on the running event loop for
    /// one; `QueueShutDown` once the queue is shut down and empty.
    fn get(slf: &Bound<'_, Self>) -> PyResult<Py<QueueGet>> {
        Self::get_call(slf, GetKind::ITEM)
    }

    /// Removes and returns an item if one is there, else `QueueEmpty`.
    fn get_nowait(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let outcome = at_once(&mut Get::new(&self.core, Some(0)))?;
        Self::get_result(py, GetKind::ITEM, outcome)
    }

    /// Removes and returns an item from a thread, waiting with the GIL
    /// released up to `timeout` seconds; `QueueEmpty` when time runs out.
    #[pyo3(signature = (*, timeout = None))]
    fn get_blocking(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::timeout)] timeout: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        let timeout = wait_seconds("timeout", timeout)?;
        self.get_here(py, GetKind::ITEM, timeout)
    }

    /// Waits (up to `timeout`) for a first item, then up to `linger`
    /// seconds more for the batch to fill, and returns 1 to `max_items`
    /// items in queue order. With `linger=0` it takes what is there; with
    /// `linger=None` it waits until the batch is full (or the queue shuts
    /// down).
    #[pyo3(signature = (max_items, *, linger = Some(0.0), timeout = None),
           text_signature = "($self, max_items, *, linger=0.0, timeout=None)")]
    fn get_batch(
        slf: &Bound<'_, Self>,
        #[pyo3(from_py_with = arg::max_items)] max_items: i64,
        #[pyo3(from_py_with = arg::linger)] linger: Option<f64>,
        #[pyo3(from_py_with = arg::timeout)] timeout: Option<f64>,
    ) -> PyResult<Py<QueueGetBatch>> {
        let max_items = check_max_items(max_items)?;
        let linger = check_linger(linger)?;
        let timeout = wait_seconds("timeout", timeout)?;
        let shared = Shared(slf.clone().unbind());
        let call = BatchCall {
            wait: Batch::new(shared, max_items, linger, nanoseconds(timeout)),
        };
        QueueGetBatch::new(slf.py(), call)
    }

    /// `get_batch` for threads, waiting with the GIL released.
    #[pyo3(signature = (max_items, *, linger = Some(0.0), timeout = None),
           text_signature = "($self, max_items, *, linger=0.0, timeout=None)")]
    fn get_batch_blocking(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::max_items)] max_items: i64,
        #[pyo3(from_py_with = arg::linger)] linger: Option<f64>,
        #[pyo3(from_py_with = arg::timeout)] timeout: Option<f64>,
    ) -> PyResult<Py<PyList>> {
        let max_items = check_max_items(max_items)?;
        let linger = check_linger(linger)?;
        let timeout = wait_seconds("timeout", timeout)?;
        let mut wait = Batch::new(&self.core, max_items, linger, nanoseconds(timeout));
        let outcome = wait_here(py, &mut wait)?;
        Self::batch_result(py, outcome)
    }

    /// Marks `n` items got earlier as processed, for `join` (a consumer that
    /// took a batch marks it done at once). More than are unfinished is a
    /// `ValueError` and marks nothing.
    #[pyo3(signature = (n = 1))]
    fn task_done(&self, #[pyo3(from_py_with = arg::n)] n: i64) -> PyResult<()> {
        let n = weight(n)?;
        self.core.task_done(n).map_err(|_| {
            value_error(format!(
                "task_done(n={n}) called too many times: {} items are unfinished",
                self.core.unfinished()
            ))
        })
    }

    /// A view of this queue with `queue.Queue`'s API and semantics, for
    /// thread code (`put(item, block=True, timeout=None)`, `get`,
    /// `task_done`, `join`, `shutdown`, raising `queue.Full`, `queue.Empty`
    /// and `queue.ShutDown`), over the same items as the asyncio side.
    #[getter]
    fn sync(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let view = slf
            .py()
            .import("brakes._queue_sync")?
            .getattr("SyncQueue")?;
        Ok(view.call1((slf,))?.unbind())
    }

    /// Waits on the running event loop until every item put has been marked
    /// done (by `task_done`, or by being dropped).
    fn join(slf: &Bound<'_, Self>) -> PyResult<Py<QueueJoin>> {
        let shared = Shared(slf.clone().unbind());
        let call = JoinCall {
            wait: Join::new(shared, None),
        };
        QueueJoin::new(slf.py(), call)
    }

    /// `join` for threads; `TimeoutError` if `timeout` seconds pass first.
    #[pyo3(signature = (*, timeout = None))]
    fn join_blocking(
        &self,
        py: Python<'_>,
        #[pyo3(from_py_with = arg::timeout)] timeout: Option<f64>,
    ) -> PyResult<()> {
        let timeout = wait_seconds("timeout", timeout)?;
        let mut wait = Join::new(&self.core, nanoseconds(timeout));
        wait_here(py, &mut wait)?.map_err(|_| {
            PyTimeoutError::new_err(format!(
                "{} items not done within the timeout",
                self.core.unfinished()
            ))
        })
    }

    /// Ends the queue, as Python 3.13's `asyncio.Queue.shutdown`: puts fail
    /// with `QueueShutDown` from now on, and gets do once the queue is empty.
    /// With `immediate=True` the items left are removed: counted in
    /// `stats().dropped`, handed to `on_drop` and counted as done for `join`.
    #[pyo3(signature = (immediate = false))]
    fn shutdown(&self, py: Python<'_>, immediate: bool) -> PyResult<()> {
        let removed = self.core.shutdown(immediate);
        self.hand_dropped(py, removed)
    }

    /// True once `shutdown` was called.
    #[getter]
    fn is_shut_down(&self) -> bool {
        self.core.is_shut_down()
    }

    /// A frozen snapshot of the queue's state and counters.
    fn stats(&self) -> QueueStats {
        QueueStats::from(self.core.snapshot())
    }

    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// `async for item in queue`: gets until the queue is shut down and empty.
    fn __anext__(slf: &Bound<'_, Self>) -> PyResult<Py<QueueGet>> {
        Self::get_call(slf, GetKind::ITERATION)
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// `for item in queue` in a thread: gets until shut down and empty.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        match self.get_here(py, GetKind::ITEM, None) {
            Ok(item) => Ok(Some(item)),
            Err(err) if is_queue_shut_down(py, &err) => Ok(None),
            Err(err) => Err(err),
        }
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let this = slf.get();
        let s = this.core.snapshot();
        let shut = if s.shut_down { " shut down" } else { "" };
        let name = this
            .name
            .as_ref()
            .map_or_else(String::new, |n| format!(" name={n:?}"));
        Ok(format!(
            "<{}.{}{name} maxsize={} overflow='{}' size={} putters={} getters={} unfinished={}{shut}>",
            slf.get_type().module()?,
            slf.get_type().qualname()?,
            this.maxsize,
            overflow_name(this.core.overflow()),
            s.size,
            s.putters_waiting,
            s.getters_waiting,
            s.unfinished,
        ))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(on_drop) = self.on_drop.try_lock() {
            if let Some(f) = &*on_drop {
                visit.call(f)?;
            }
        }
        let mut result = Ok(());
        self.core.visit_items(|item| {
            if result.is_ok() {
                result = visit.call(item);
            }
        });
        result
    }

    fn __clear__(&self) {
        let on_drop = self.on_drop.lock().take();
        let items = self.core.clear_items();
        drop(on_drop);
        drop(items);
    }
}

impl GetKind {
    const ITEM: Self = Self {
        ends_iteration: false,
        numbered: false,
    };
    const ITERATION: Self = Self {
        ends_iteration: true,
        numbered: false,
    };
    const NUMBERED: Self = Self {
        ends_iteration: false,
        numbered: true,
    };
}

/// For `Channel`: gets that return `(number, item)`.
impl Queue {
    pub fn get_numbered(queue: &Bound<'_, Self>) -> PyResult<Py<QueueGet>> {
        Self::get_call(queue, GetKind::NUMBERED)
    }

    pub fn get_numbered_blocking(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        self.get_here(py, GetKind::NUMBERED, timeout)
    }
}

fn new_queue(
    py: Python<'_>,
    maxsize: Option<&Bound<'_, PyAny>>,
    overflow: Option<&Bound<'_, PyAny>>,
    on_drop: Option<Bound<'_, PyAny>>,
    order: Order,
    name: Option<&Bound<'_, PyAny>>,
) -> PyResult<Queue> {
    let zero = 0i64.into_pyobject(py)?.into_any();
    let block = "block".into_pyobject(py)?.into_any();
    Queue::build(
        maxsize.unwrap_or(&zero),
        overflow.unwrap_or(&block),
        on_drop,
        order,
        name,
    )
}

/// A subclass of `Queue` that only sets the order items leave in.
macro_rules! queue_kind {
    ($(#[doc = $doc:literal])* $name:ident, $order:expr) => {
        $(#[doc = $doc])*
        #[pyclass(frozen, subclass, extends = Queue, module = "brakes")]
        pub struct $name;

        #[pymethods]
        impl $name {
            #[new]
            #[pyo3(signature = (maxsize = None, *, overflow = None, on_drop = None, name = None),
                   text_signature = "(maxsize=0, *, overflow='block', on_drop=None, name=None)")]
            fn new(
                py: Python<'_>,
                maxsize: Option<&Bound<'_, PyAny>>,
                overflow: Option<&Bound<'_, PyAny>>,
                on_drop: Option<Bound<'_, PyAny>>,
                name: Option<&Bound<'_, PyAny>>,
            ) -> PyResult<PyClassInitializer<Self>> {
                let queue = new_queue(py, maxsize, overflow, on_drop, $order, name)?;
                Ok(PyClassInitializer::from(queue).add_subclass(Self))
            }
        }
    };
}

queue_kind!(
    /// A `Queue` that hands out the newest item first, as `asyncio.LifoQueue`.
    /// `drop_old` discards the oldest item, at the bottom.
    LifoQueue,
    Order::Lifo
);

queue_kind!(
    /// A `Queue` that hands out the smallest item first, as
    /// `asyncio.PriorityQueue` (items are often `(priority, data)` tuples);
    /// equal items leave in arrival order. `drop_old` discards the largest
    /// item: the lowest priority.
    PriorityQueue,
    Order::Priority
);

stats_class!(
    /// A frozen snapshot of a queue: its state and what it has done so far.
    QueueStats from Snapshot {
        /// The bound (0: unbounded).
        maxsize: u64,
        /// Items a consumer could take.
        size: u64,
        /// Items put and not yet marked done.
        unfinished: u64,
        /// Producers waiting for room.
        putters_waiting: u64,
        /// Consumers waiting for an item.
        getters_waiting: u64,
        /// Items stored so far.
        put: u64,
        /// Items taken so far.
        got: u64,
        /// Items discarded by the overflow policy.
        dropped: u64,
        /// Puts refused with `QueueFull`.
        rejected: u64,
        /// True once `shutdown` was called.
        shut_down: bool,
        /// How long producers waited for room, per item stored (0 for
        /// those that did not wait).
        put_wait: Histogram,
        /// How long consumers waited for an item, per item taken (0 for
        /// those that did not wait; a batch's items, its wait).
        get_wait: Histogram,
    }
);

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Queue>()?;
    module.add_class::<LifoQueue>()?;
    module.add_class::<PriorityQueue>()?;
    module.add_class::<QueueStats>()?;
    super::awaitable::register::<QueuePut>(module)?;
    super::awaitable::register::<QueueGet>(module)?;
    super::awaitable::register::<QueueJoin>(module)?;
    super::awaitable::register::<QueueGetBatch>(module)
}
