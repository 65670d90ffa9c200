//! `brakes.Queue`, `LifoQueue` and `PriorityQueue`: the Python face of the
//! core queue, a drop-in for `asyncio.Queue` that threads can share.

use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use pyo3::exceptions::{PyRuntimeError, PyTimeoutError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyType};
use pyo3::{PyTraverseError, PyVisit};

use super::arguments::{deadline_after, wait_seconds};
use super::awaitable::{
    Acquiring, Attempt, Call, FutureHandle, FutureWaiter, Lined, Operation, Resumed, Value,
};
use super::blocking::wait_detached;
use super::errors::{is_queue_shut_down, queue_empty, queue_full, queue_shut_down, value_error};
use crate::core::queue::{
    Capacity, Enqueued, Line, Offer, Overflow, Queue as CoreQueue, Snapshot, Take, Waited,
};
use crate::core::sorted::{locate, Spot};
use crate::core::store::Order;

type Core = CoreQueue<Py<PyAny>, FutureHandle>;

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
    if !maxsize.is_instance_of::<pyo3::types::PyInt>() {
        return Err(PyTypeError::new_err(format!(
            "maxsize must be an integer, got {}",
            maxsize.repr()?
        )));
    }
    maxsize.extract::<i64>().map_err(|_| {
        value_error(format!(
            "maxsize must fit in 64 bits, got {}",
            maxsize.repr().map(|r| r.to_string()).unwrap_or_default()
        ))
    })
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

fn check_linger(linger: f64) -> PyResult<f64> {
    match wait_seconds("linger", Some(linger))? {
        Some(seconds) => Ok(seconds),
        None => Err(value_error(format!(
            "linger must be a finite number of seconds >= 0, got {linger}"
        ))),
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
}

impl Queue {
    fn build(
        maxsize: &Bound<'_, PyAny>,
        overflow: &Bound<'_, PyAny>,
        on_drop: Option<Bound<'_, PyAny>>,
        order: Order,
    ) -> PyResult<Self> {
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
        })
    }

    /// Where `item` goes in a priority queue; None for the other kinds.
    /// Compares outside any lock; a comparison that raises fails the put.
    fn spot_for(&self, py: Python<'_>, item: &Py<PyAny>) -> PyResult<Option<Spot>> {
        let item = item.bind(py);
        loop {
            let Some(layout) = self.core.layout() else {
                return Ok(None);
            };
            let read = |chunk, index| {
                self.core
                    .read_sorted(layout.version, chunk, index, |x| x.clone_ref(py))
            };
            if let Some(spot) = locate(&layout, read, |other| item.lt(other.bind(py)))? {
                return Ok(Some(spot));
            }
        }
    }

    /// Offers an item, locating it again as long as its spot goes stale.
    fn offer(
        &self,
        py: Python<'_>,
        mut item: Py<PyAny>,
        can_wait: bool,
    ) -> PyResult<Offer<Py<PyAny>>> {
        loop {
            let spot = self.spot_for(py, &item)?;
            match self.core.offer(item, spot, can_wait) {
                Offer::Stale(back) => item = back,
                other => return Ok(other),
            }
        }
    }

    /// Puts the item of a caller holding a granted slot.
    fn put_granted(&self, py: Python<'_>, mut item: Py<PyAny>) -> PyResult<()> {
        loop {
            let spot = match self.spot_for(py, &item) {
                Ok(spot) => spot,
                Err(err) => {
                    self.core.release_slot();
                    return Err(err);
                }
            };
            match self.core.put_reserved(item, spot) {
                Offer::Stale(back) => item = back,
                Offer::ShutDown(_) => return Err(queue_shut_down(py)),
                _ => return Ok(()),
            }
        }
    }

    /// What a put that needed no wait comes to for its caller.
    fn settle_offer(&self, py: Python<'_>, offer: Offer<Py<PyAny>>) -> PyResult<()> {
        match offer {
            Offer::Stored | Offer::Stale(_) => Ok(()),
            Offer::Dropped(item) => self.hand_dropped(py, vec![item]),
            Offer::Full(_) | Offer::MustWait(_) => Err(self.full_error(py)),
            Offer::ShutDown(_) => Err(queue_shut_down(py)),
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

    fn full_error(&self, py: Python<'_>) -> PyErr {
        queue_full(py, format!("the queue is full (maxsize={})", self.maxsize))
    }

    fn empty_error(&self, py: Python<'_>) -> PyErr {
        if self.core.is_shut_down() {
            queue_shut_down(py)
        } else {
            queue_empty(py, "the queue is empty".to_owned())
        }
    }

    /// Waits in this thread, GIL released, in `line` until `timeout`.
    fn wait_here(
        &self,
        py: Python<'_>,
        line: Line,
        timeout: Option<f64>,
    ) -> (Waited, Option<PyErr>) {
        let deadline = deadline_after(timeout);
        wait_detached(py, |interrupted| {
            self.core.wait_blocking(line, deadline, interrupted)
        })
    }

    fn first_item(&self, py: Python<'_>, items: Vec<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        items.into_iter().next().ok_or_else(|| queue_shut_down(py))
    }

    fn get_here(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        self.get_numbered_here(py, timeout).map(|(_, item)| item)
    }

    /// Gets an item in this thread, with its number (see `Channel`).
    pub(crate) fn get_numbered_here(
        &self,
        py: Python<'_>,
        timeout: Option<f64>,
    ) -> PyResult<(u64, Py<PyAny>)> {
        match self.core.take_one_numbered() {
            Take::One(numbered) => return Ok(numbered),
            Take::ShutDown => return Err(queue_shut_down(py)),
            Take::Empty if timeout == Some(0.0) => return Err(self.empty_error(py)),
            Take::Empty => {}
        }
        match self.wait_here(py, Line::Getters, timeout) {
            (Waited::Granted, _) => {
                let (number, items) = self.core.take_reserved_numbered(1);
                Ok((number, self.first_item(py, items)?))
            }
            (Waited::TimedOut, _) => Err(queue_empty(
                py,
                "no item came within the timeout".to_owned(),
            )),
            (Waited::ShutDown, _) => Err(queue_shut_down(py)),
            (Waited::Interrupted, err) => Err(interrupted(err)),
        }
    }

    /// `await get_numbered()`: an awaited get whose value is `(number, item)`.
    pub(crate) fn get_numbered(queue: &Bound<'_, Self>) -> Acquiring {
        Acquiring::new(Call::Get(Get {
            queue: queue.clone().unbind(),
            ends_iteration: false,
            numbered: true,
        }))
    }

    /// A queue of the given capacity that only the crate makes.
    pub(crate) fn with_capacity(capacity: Capacity) -> Self {
        Self {
            core: CoreQueue::with_capacity(capacity, Order::Fifo, Overflow::Block),
            maxsize: match capacity {
                Capacity::Bounded(n) => n as i64,
                Capacity::Unbounded | Capacity::Handover => 0,
            },
            on_drop: Mutex::new(None),
        }
    }

    /// An awaited call that ends unfinished leaves its line; a grant that
    /// raced in goes back to the next in line.
    fn leave_line(&self, line: Line, waiting: Option<(u64, &FutureWaiter)>) {
        if let Some((id, waiter)) = waiting {
            self.core.abandon(line, id, waiter);
        }
    }

    fn stats_snapshot(&self) -> Snapshot {
        self.core.snapshot()
    }
}

fn interrupted(err: Option<PyErr>) -> PyErr {
    err.unwrap_or_else(|| PyRuntimeError::new_err("wait interrupted"))
}

#[pymethods]
impl Queue {
    #[new]
    #[pyo3(signature = (maxsize = None, *, overflow = None, on_drop = None),
           text_signature = "(maxsize=0, *, overflow='block', on_drop=None)")]
    fn new(
        py: Python<'_>,
        maxsize: Option<&Bound<'_, PyAny>>,
        overflow: Option<&Bound<'_, PyAny>>,
        on_drop: Option<Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        new_queue(py, maxsize, overflow, on_drop, Order::Fifo)
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
    fn put(slf: &Bound<'_, Self>, item: Py<PyAny>) -> Acquiring {
        Acquiring::new(Call::Put(Put {
            queue: slf.clone().unbind(),
            item: Mutex::new(Some(item)),
        }))
    }

    /// Puts `item` without waiting: `QueueFull` if there is no room and
    /// `overflow` is "block" or "reject".
    fn put_nowait(&self, py: Python<'_>, item: Py<PyAny>) -> PyResult<()> {
        let offer = self.offer(py, item, false)?;
        self.settle_offer(py, offer)
    }

    /// Puts `item` from a thread, waiting with the GIL released up to
    /// `timeout` seconds for room; `QueueFull` when the time runs out.
    #[pyo3(signature = (item, *, timeout = None))]
    fn put_blocking(&self, py: Python<'_>, item: Py<PyAny>, timeout: Option<f64>) -> PyResult<()> {
        let timeout = wait_seconds("timeout", timeout)?;
        let item = match self.offer(py, item, timeout != Some(0.0))? {
            Offer::MustWait(item) => item,
            offer => return self.settle_offer(py, offer),
        };
        match self.wait_here(py, Line::Putters, timeout) {
            (Waited::Granted, _) => self.put_granted(py, item),
            (Waited::TimedOut, _) => Err(self.full_error(py)),
            (Waited::ShutDown, _) => Err(queue_shut_down(py)),
            (Waited::Interrupted, err) => Err(interrupted(err)),
        }
    }

    /// Removes and returns an item, waiting on the running event loop for
    /// one; `QueueShutDown` once the queue is shut down and empty.
    fn get(slf: &Bound<'_, Self>) -> Acquiring {
        Acquiring::new(Call::Get(Get {
            queue: slf.clone().unbind(),
            ends_iteration: false,
            numbered: false,
        }))
    }

    /// Removes and returns an item if one is there, else `QueueEmpty`.
    fn get_nowait(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.get_here(py, Some(0.0))
    }

    /// Removes and returns an item from a thread, waiting with the GIL
    /// released up to `timeout` seconds; `QueueEmpty` when time runs out.
    #[pyo3(signature = (*, timeout = None))]
    fn get_blocking(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let timeout = wait_seconds("timeout", timeout)?;
        self.get_here(py, timeout)
    }

    /// Waits (up to `timeout`) for a first item, then up to `linger`
    /// seconds more for the batch to fill, and returns 1 to `max_items`
    /// items in queue order. With `linger=0` it takes what is there.
    #[pyo3(signature = (max_items, *, linger = 0.0, timeout = None))]
    fn get_batch(
        slf: &Bound<'_, Self>,
        max_items: i64,
        linger: f64,
        timeout: Option<f64>,
    ) -> PyResult<Acquiring> {
        Ok(Acquiring::new(Call::Batch(Batch {
            queue: slf.clone().unbind(),
            max_items: check_max_items(max_items)?,
            linger: check_linger(linger)?,
            timeout: wait_seconds("timeout", timeout)?,
            progress: Mutex::new(Progress::default()),
        })))
    }

    /// `get_batch` for threads, waiting with the GIL released.
    #[pyo3(signature = (max_items, *, linger = 0.0, timeout = None))]
    fn get_batch_blocking(
        &self,
        py: Python<'_>,
        max_items: i64,
        linger: f64,
        timeout: Option<f64>,
    ) -> PyResult<Py<PyList>> {
        let max_items = check_max_items(max_items)?;
        let linger = check_linger(linger)?;
        let timeout = wait_seconds("timeout", timeout)?;
        let mut reserved = self.core.reserve_now(max_items);
        if reserved == 0 {
            if timeout == Some(0.0) {
                return Err(self.empty_error(py));
            }
            match self.wait_here(py, Line::Getters, timeout) {
                (Waited::Granted, _) => reserved = 1,
                (Waited::TimedOut, _) => {
                    return Err(queue_empty(
                        py,
                        "no item came within the timeout".to_owned(),
                    ))
                }
                (Waited::ShutDown, _) => return Err(queue_shut_down(py)),
                (Waited::Interrupted, err) => return Err(interrupted(err)),
            }
        }
        let linger_ends = deadline_after(Some(linger));
        let (outcome, err) = wait_detached(py, |interrupted| loop {
            reserved += self.core.reserve_now(max_items - reserved);
            if reserved >= max_items || linger_ends.is_none_or(|end| end <= Instant::now()) {
                return Waited::TimedOut;
            }
            match self
                .core
                .wait_blocking(Line::Getters, linger_ends, &mut *interrupted)
            {
                Waited::Granted => reserved += 1,
                other => return other,
            }
        });
        if outcome == Waited::Interrupted {
            self.core.unreserve(reserved);
            return Err(interrupted(err));
        }
        batch_list(py, self.core.take_reserved(reserved))
    }

    /// Marks one item got earlier as processed, for `join`.
    fn task_done(&self) -> PyResult<()> {
        self.core
            .task_done()
            .map_err(|_| value_error("task_done() called too many times".to_owned()))
    }

    /// Waits on the running event loop until every item put has been marked
    /// done (by `task_done`, or by being dropped).
    fn join(slf: &Bound<'_, Self>) -> Acquiring {
        Acquiring::new(Call::Join(Join {
            queue: slf.clone().unbind(),
        }))
    }

    /// `join` for threads; `TimeoutError` if `timeout` seconds pass first.
    #[pyo3(signature = (*, timeout = None))]
    fn join_blocking(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        let timeout = wait_seconds("timeout", timeout)?;
        match self.wait_here(py, Line::Joiners, timeout) {
            (Waited::Interrupted, err) => Err(interrupted(err)),
            (Waited::Granted | Waited::ShutDown, _) => Ok(()),
            (Waited::TimedOut, _) => Err(PyTimeoutError::new_err(format!(
                "{} items not done within the timeout",
                self.core.unfinished()
            ))),
        }
    }

    /// Ends the queue, as Python 3.13's `asyncio.Queue.shutdown`: puts fail
    /// with `QueueShutDown` from now on, and gets do once the queue is empty.
    /// With `immediate=True` the items left are removed (handed to
    /// `on_drop`) and counted as done for `join`.
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
        QueueStats::from(self.stats_snapshot())
    }

    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// `async for item in queue`: gets until the queue is shut down and empty.
    fn __anext__(slf: &Bound<'_, Self>) -> Acquiring {
        Acquiring::new(Call::Get(Get {
            queue: slf.clone().unbind(),
            ends_iteration: true,
            numbered: false,
        }))
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// `for item in queue` in a thread: gets until shut down and empty.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        match self.get_here(py, None) {
            Ok(item) => Ok(Some(item)),
            Err(err) if is_queue_shut_down(py, &err) => Ok(None),
            Err(err) => Err(err),
        }
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let this = slf.get();
        let s = this.stats_snapshot();
        let shut = if s.shut_down { " shut down" } else { "" };
        Ok(format!(
            "<{}.{} maxsize={} overflow='{}' size={} putters={} getters={} unfinished={}{shut}>",
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

fn new_queue(
    py: Python<'_>,
    maxsize: Option<&Bound<'_, PyAny>>,
    overflow: Option<&Bound<'_, PyAny>>,
    on_drop: Option<Bound<'_, PyAny>>,
    order: Order,
) -> PyResult<Queue> {
    let zero = 0i64.into_pyobject(py)?.into_any();
    let block = "block".into_pyobject(py)?.into_any();
    Queue::build(
        maxsize.unwrap_or(&zero),
        overflow.unwrap_or(&block),
        on_drop,
        order,
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
            #[pyo3(signature = (maxsize = None, *, overflow = None, on_drop = None),
                   text_signature = "(maxsize=0, *, overflow='block', on_drop=None)")]
            fn new(
                py: Python<'_>,
                maxsize: Option<&Bound<'_, PyAny>>,
                overflow: Option<&Bound<'_, PyAny>>,
                on_drop: Option<Bound<'_, PyAny>>,
            ) -> PyResult<PyClassInitializer<Self>> {
                let queue = new_queue(py, maxsize, overflow, on_drop, $order)?;
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

fn batch_list(py: Python<'_>, items: Vec<Py<PyAny>>) -> PyResult<Py<PyList>> {
    if items.is_empty() {
        return Err(queue_shut_down(py));
    }
    Ok(PyList::new(py, items)?.unbind())
}

/// The waiting a put and a get share: one slot or one item, in `line`.
/// `claim` uses a grant; `shut_down` is the error a shutdown ends the wait with.
fn join_line(
    queue: &Queue,
    line: Line,
    waiter: &Arc<FutureWaiter>,
    claim: impl FnOnce() -> PyResult<Value>,
    shut_down: impl FnOnce() -> PyErr,
) -> Lined {
    match queue.core.enqueue(line, waiter) {
        Enqueued::Granted => Lined::Done(claim()),
        Enqueued::ShutDown => Lined::Done(Err(shut_down())),
        Enqueued::Queued(id) => Lined::Waiting { id, wake_in: None },
    }
}

/// Only a shutdown wakes a producer or consumer without a grant; a grant
/// that raced in is used instead.
fn woken_in_line(
    queue: &Queue,
    line: Line,
    id: u64,
    waiter: &FutureWaiter,
    claim: impl FnOnce() -> PyResult<Value>,
    shut_down: impl FnOnce() -> PyErr,
) -> Resumed {
    match queue.core.settle(line, id, waiter, Waited::ShutDown) {
        Waited::Granted => Resumed::Done(claim()),
        _ if queue.core.is_shut_down() => Resumed::Done(Err(shut_down())),
        _ => Resumed::Again,
    }
}

/// `await queue.put(item)`.
pub struct Put {
    queue: Py<Queue>,
    item: Mutex<Option<Py<PyAny>>>,
}

impl Put {
    fn item(&self) -> PyResult<Py<PyAny>> {
        self.item
            .lock()
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("the item was already put"))
    }

    fn put_granted(&self, py: Python<'_>) -> PyResult<Value> {
        let item = match self.item() {
            Ok(item) => item,
            Err(err) => {
                self.queue.get().core.release_slot();
                return Err(err);
            }
        };
        self.queue
            .get()
            .put_granted(py, item)
            .map(|()| Value::Nothing)
    }
}

impl Operation for Put {
    fn try_now(&self, py: Python<'_>) -> Attempt {
        let queue = self.queue.get();
        let can_wait = queue.core.overflow() == Overflow::Block;
        let offer = self.item().and_then(|item| queue.offer(py, item, can_wait));
        match offer {
            Ok(Offer::MustWait(item)) => {
                *self.item.lock() = Some(item);
                Attempt::MustWait
            }
            Ok(offer) => Attempt::Done(queue.settle_offer(py, offer).map(|()| Value::Nothing)),
            Err(err) => Attempt::Done(Err(err)),
        }
    }
    fn enqueue(&self, py: Python<'_>, waiter: &Arc<FutureWaiter>) -> Lined {
        let claim = || self.put_granted(py);
        join_line(self.queue.get(), Line::Putters, waiter, claim, || {
            queue_shut_down(py)
        })
    }
    fn granted(&self, py: Python<'_>, waiter: &FutureWaiter) -> Option<Resumed> {
        waiter.take().then(|| Resumed::Done(self.put_granted(py)))
    }
    fn woken(&self, py: Python<'_>, id: u64, waiter: &FutureWaiter) -> Resumed {
        let claim = || self.put_granted(py);
        let queue = self.queue.get();
        woken_in_line(queue, Line::Putters, id, waiter, claim, || {
            queue_shut_down(py)
        })
    }
    fn abandon(&self, waiting: Option<(u64, &FutureWaiter)>) {
        self.queue.get().leave_line(Line::Putters, waiting);
    }
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.queue)?;
        if let Some(item) = self.item.try_lock() {
            if let Some(item) = &*item {
                visit.call(item)?;
            }
        }
        Ok(())
    }
    fn method_name(&self) -> &'static str {
        "Queue.put()"
    }
}

/// `await queue.get()`, and each step of `async for`.
pub struct Get {
    queue: Py<Queue>,
    /// `__anext__` ends the iteration at shutdown instead of raising.
    ends_iteration: bool,
    /// The value is `(number, item)`: see `Channel.get_numbered`.
    numbered: bool,
}

impl Get {
    fn shut_down(&self, py: Python<'_>) -> PyErr {
        if self.ends_iteration {
            pyo3::exceptions::PyStopAsyncIteration::new_err(())
        } else {
            queue_shut_down(py)
        }
    }

    fn value(&self, py: Python<'_>, number: u64, item: Py<PyAny>) -> PyResult<Value> {
        if self.numbered {
            Ok(Value::Object(
                (number, item).into_pyobject(py)?.into_any().unbind(),
            ))
        } else {
            Ok(Value::Object(item))
        }
    }

    fn take_granted(&self, py: Python<'_>) -> PyResult<Value> {
        let (number, items) = self.queue.get().core.take_reserved_numbered(1);
        match items.into_iter().next() {
            Some(item) => self.value(py, number, item),
            None => Err(self.shut_down(py)),
        }
    }
}

impl Operation for Get {
    fn try_now(&self, py: Python<'_>) -> Attempt {
        match self.queue.get().core.take_one_numbered() {
            Take::One((number, item)) => Attempt::Done(self.value(py, number, item)),
            Take::Empty => Attempt::MustWait,
            Take::ShutDown => Attempt::Done(Err(self.shut_down(py))),
        }
    }
    fn enqueue(&self, py: Python<'_>, waiter: &Arc<FutureWaiter>) -> Lined {
        let claim = || self.take_granted(py);
        join_line(self.queue.get(), Line::Getters, waiter, claim, || {
            self.shut_down(py)
        })
    }
    fn granted(&self, py: Python<'_>, waiter: &FutureWaiter) -> Option<Resumed> {
        waiter.take().then(|| Resumed::Done(self.take_granted(py)))
    }
    fn woken(&self, py: Python<'_>, id: u64, waiter: &FutureWaiter) -> Resumed {
        let claim = || self.take_granted(py);
        let queue = self.queue.get();
        woken_in_line(queue, Line::Getters, id, waiter, claim, || {
            self.shut_down(py)
        })
    }
    fn abandon(&self, waiting: Option<(u64, &FutureWaiter)>) {
        self.queue.get().leave_line(Line::Getters, waiting);
    }
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.queue)
    }
    fn method_name(&self) -> &'static str {
        "Queue.get()"
    }
}

/// `await queue.join()`.
pub struct Join {
    queue: Py<Queue>,
}

impl Operation for Join {
    fn weight(&self) -> u64 {
        0
    }
    fn try_now(&self, _py: Python<'_>) -> Attempt {
        if self.queue.get().core.unfinished() == 0 {
            Attempt::Done(Ok(Value::Nothing))
        } else {
            Attempt::MustWait
        }
    }
    fn enqueue(&self, _py: Python<'_>, waiter: &Arc<FutureWaiter>) -> Lined {
        match self.queue.get().core.enqueue(Line::Joiners, waiter) {
            Enqueued::Queued(id) => Lined::Waiting { id, wake_in: None },
            Enqueued::Granted | Enqueued::ShutDown => Lined::Done(Ok(Value::Nothing)),
        }
    }
    fn granted(&self, _py: Python<'_>, waiter: &FutureWaiter) -> Option<Resumed> {
        waiter.take().then_some(Resumed::Done(Ok(Value::Nothing)))
    }
    fn woken(&self, _py: Python<'_>, _id: u64, _waiter: &FutureWaiter) -> Resumed {
        Resumed::Sleep { wake_in: None }
    }
    fn abandon(&self, waiting: Option<(u64, &FutureWaiter)>) {
        self.queue.get().leave_line(Line::Joiners, waiting);
    }
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.queue)
    }
    fn method_name(&self) -> &'static str {
        "Queue.join()"
    }
}

/// Where a batch stands between steps.
#[derive(Default)]
struct Progress {
    /// Items reserved for this batch; they stay in the queue until taken.
    reserved: u64,
    /// When lingering ends (set by the first item).
    linger_ends: Option<Instant>,
}

/// `await queue.get_batch(max_items, linger=..., timeout=...)`.
pub struct Batch {
    queue: Py<Queue>,
    max_items: u64,
    linger: f64,
    timeout: Option<f64>,
    progress: Mutex<Progress>,
}

/// What a batch does after reserving what it could.
enum Next {
    Finish,
    WaitMore,
}

impl Batch {
    fn core(&self) -> &Core {
        &self.queue.get().core
    }

    /// Adds `granted` reservations and whatever else is there, then decides.
    fn reserve(&self, granted: u64) -> Next {
        let mut progress = self.progress.lock();
        progress.reserved += granted;
        progress.reserved += self.core().reserve_now(self.max_items - progress.reserved);
        if progress.reserved == 0 {
            return Next::WaitMore;
        }
        let linger = self.linger;
        let linger_ends = *progress
            .linger_ends
            .get_or_insert_with(|| deadline_after(Some(linger)).unwrap_or_else(Instant::now));
        if progress.reserved >= self.max_items || linger_ends <= Instant::now() {
            Next::Finish
        } else {
            Next::WaitMore
        }
    }

    fn finish(&self, py: Python<'_>) -> PyResult<Value> {
        let reserved = std::mem::take(&mut self.progress.lock().reserved);
        let items = self.core().take_reserved(reserved);
        Ok(Value::Object(batch_list(py, items)?.into_any()))
    }

    /// Seconds to sleep: until the first item's timeout, then until
    /// lingering ends.
    fn wake_in(&self) -> Option<f64> {
        match self.progress.lock().linger_ends {
            None => self.timeout,
            Some(end) => Some(end.saturating_duration_since(Instant::now()).as_secs_f64()),
        }
    }

    fn has_items(&self) -> bool {
        self.progress.lock().reserved > 0
    }

    fn after_grant(&self, py: Python<'_>) -> Resumed {
        match self.reserve(1) {
            Next::Finish => Resumed::Done(self.finish(py)),
            Next::WaitMore => Resumed::Again,
        }
    }
}

impl Operation for Batch {
    fn try_now(&self, py: Python<'_>) -> Attempt {
        if let Next::Finish = self.reserve(0) {
            return Attempt::Done(self.finish(py));
        }
        if !self.has_items() {
            if self.core().is_shut_down() {
                return Attempt::Done(Err(queue_shut_down(py)));
            }
            if self.timeout == Some(0.0) {
                return Attempt::Done(Err(self.queue.get().empty_error(py)));
            }
        }
        Attempt::MustWait
    }
    fn enqueue(&self, py: Python<'_>, waiter: &Arc<FutureWaiter>) -> Lined {
        loop {
            match self.core().enqueue(Line::Getters, waiter) {
                Enqueued::Granted => {
                    if let Next::Finish = self.reserve(1) {
                        return Lined::Done(self.finish(py));
                    }
                }
                Enqueued::ShutDown if self.has_items() => return Lined::Done(self.finish(py)),
                Enqueued::ShutDown => return Lined::Done(Err(queue_shut_down(py))),
                Enqueued::Queued(id) => {
                    return Lined::Waiting {
                        id,
                        wake_in: self.wake_in(),
                    }
                }
            }
        }
    }
    fn granted(&self, py: Python<'_>, waiter: &FutureWaiter) -> Option<Resumed> {
        waiter.take().then(|| self.after_grant(py))
    }
    fn woken(&self, py: Python<'_>, id: u64, waiter: &FutureWaiter) -> Resumed {
        // A timer (the first item's timeout, or the end of lingering), or a
        // shutdown.
        match self
            .core()
            .settle(Line::Getters, id, waiter, Waited::TimedOut)
        {
            Waited::Granted => self.after_grant(py),
            _ if self.has_items() => Resumed::Done(self.finish(py)),
            _ if self.core().is_shut_down() => Resumed::Done(Err(queue_shut_down(py))),
            _ => Resumed::Done(Err(queue_empty(
                py,
                "no item came within the timeout".to_owned(),
            ))),
        }
    }
    fn abandon(&self, waiting: Option<(u64, &FutureWaiter)>) {
        self.queue.get().leave_line(Line::Getters, waiting);
        // The batch's items never left the queue: letting go puts them back
        // at the front, in order, for the next consumer.
        let reserved = std::mem::take(&mut self.progress.lock().reserved);
        self.core().unreserve(reserved);
    }
    fn traverse(&self, visit: &PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.queue)
    }
    fn method_name(&self) -> &'static str {
        "Queue.get_batch()"
    }
}

/// A frozen snapshot of a queue: its state and what it has done so far.
#[pyclass(frozen, eq, hash, get_all, module = "brakes")]
#[derive(PartialEq, Eq, Hash)]
pub struct QueueStats {
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
}

impl From<Snapshot> for QueueStats {
    fn from(s: Snapshot) -> Self {
        Self {
            maxsize: s.maxsize,
            size: s.size,
            unfinished: s.unfinished,
            putters_waiting: s.putters_waiting,
            getters_waiting: s.getters_waiting,
            put: s.put,
            got: s.got,
            dropped: s.dropped,
            rejected: s.rejected,
            shut_down: s.shut_down,
        }
    }
}

#[pymethods]
impl QueueStats {
    fn __repr__(&self) -> String {
        format!(
            "QueueStats(maxsize={}, size={}, unfinished={}, putters_waiting={}, getters_waiting={}, put={}, got={}, dropped={}, rejected={}, shut_down={})",
            self.maxsize,
            self.size,
            self.unfinished,
            self.putters_waiting,
            self.getters_waiting,
            self.put,
            self.got,
            self.dropped,
            self.rejected,
            if self.shut_down { "True" } else { "False" }
        )
    }
}
