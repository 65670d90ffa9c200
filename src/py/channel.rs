//! `Channel`: the queue between two pipeline stages; `Reorder`, the window
//! an ordered stage's results wait in; `Tally`, a counter threads share.

use std::sync::atomic::{AtomicI64, Ordering};

use pyo3::prelude::*;
use pyo3::{PyTraverseError, PyVisit};

use super::arguments::{arg, wait_seconds};
use super::errors::value_error;
use super::queue::{Queue, QueueGet};
use crate::core::queue::Capacity;
use crate::core::reorder::{Pushed, Reorder as CoreReorder};
/// A FIFO `Queue` between pipeline stages. `buffer` items may wait in it;
/// with `buffer=0` a put goes through only to a consumer already waiting
/// (Go's unbuffered channel), so nothing waits in the channel at all.
/// Items are numbered in the order they are taken, so that workers sharing
/// a channel can put their results back in order.
#[pyclass(frozen, extends = Queue, module = "brakes._brakes")]
pub struct Channel;

#[pymethods]
impl Channel {
    #[new]
    fn new(buffer: i64) -> PyResult<PyClassInitializer<Self>> {
        let capacity = match buffer {
            ..0 => {
                return Err(value_error(format!(
                    "buffer must be 0 or more, got {buffer}"
                )))
            }
            0 => Capacity::Handover,
            n => Capacity::Bounded(n as u64),
        };
        Ok(PyClassInitializer::from(Queue::with_capacity(capacity)).add_subclass(Self))
    }

    /// `await get_numbered()`: `(number, item)`, where `number` counts the
    /// items taken before this one.
    fn get_numbered(slf: &Bound<'_, Self>) -> PyResult<Py<QueueGet>> {
        Queue::get_numbered(slf.as_super())
    }

    /// `get_numbered` for threads, waiting with the GIL released.
    #[pyo3(signature = (*, timeout = None))]
    fn get_numbered_blocking(
        slf: &Bound<'_, Self>,
        #[pyo3(from_py_with = arg::timeout)] timeout: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        let timeout = wait_seconds("timeout", timeout)?;
        slf.as_super()
            .get()
            .get_numbered_blocking(slf.py(), timeout)
    }
}

/// Results of an ordered stage wait here for the ones before them.
///
/// `push(number, result)` returns True when the caller is now the emitter:
/// it then calls `pop(default)` and sends each result on, in order, until
/// `pop` returns `default`. One caller at a time emits.
#[pyclass(frozen, module = "brakes._brakes")]
pub struct Reorder {
    core: CoreReorder<Py<PyAny>>,
}

#[pymethods]
impl Reorder {
    #[new]
    fn new() -> Self {
        Self {
            core: CoreReorder::new(),
        }
    }

    fn push(&self, number: u64, result: Py<PyAny>) -> PyResult<bool> {
        match self.core.push(number, result) {
            Ok(Pushed::Emit) => Ok(true),
            Ok(Pushed::Wait) => Ok(false),
            Err((already, _result)) => Err(value_error(format!(
                "result {} was already pushed",
                already.0
            ))),
        }
    }

    fn pop(&self, default: Py<PyAny>) -> Py<PyAny> {
        self.core.pop().unwrap_or(default)
    }

    /// Drops every waiting result (when the stage stops).
    fn clear(&self) {
        drop(self.core.drain());
    }

    fn __len__(&self) -> usize {
        self.core.waiting()
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        let mut result = Ok(());
        self.core.visit(|item| {
            if result.is_ok() {
                result = visit.call(item);
            }
        });
        result
    }

    fn __clear__(&self) {
        drop(self.core.drain());
    }
}

/// A counter that threads and tasks update without a lock (stage and pool
/// statistics).
#[pyclass(frozen, module = "brakes._brakes")]
pub struct Tally {
    value: AtomicI64,
}

#[pymethods]
impl Tally {
    #[new]
    fn new() -> Self {
        Self {
            value: AtomicI64::new(0),
        }
    }

    /// Adds `n` and returns the new value, in one step.
    #[pyo3(signature = (n = 1))]
    fn add(&self, #[pyo3(from_py_with = arg::n)] n: i64) -> i64 {
        self.value.fetch_add(n, Ordering::Relaxed).wrapping_add(n)
    }

    #[getter]
    fn value(&self) -> i64 {
        self.value.load(Ordering::Relaxed)
    }
}

pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Channel>()?;
    module.add_class::<Reorder>()?;
    module.add_class::<Tally>()
}
