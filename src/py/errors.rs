//! The exceptions users catch.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};

create_exception!(
    brakes,
    BrakesError,
    PyException,
    "Base class of every error that brakes raises on purpose."
);
create_exception!(
    brakes,
    Overloaded,
    BrakesError,
    "No capacity within the allowed wait. `retry_after` is the number of seconds\nafter which a retry could succeed, or None when that is not known."
);
create_exception!(
    brakes,
    RateLimited,
    Overloaded,
    "A rate limiter said no; `retry_after` is always known."
);

create_exception!(
    brakes,
    CircuitOpen,
    Overloaded,
    "A circuit breaker refused the call: it is open (`retry_after` is the time\nleft open), forced open, or half-open with all its trial calls let in\n(`retry_after` None)."
);

create_exception!(
    brakes,
    BackendError,
    BrakesError,
    "A shared limit's backend (Redis) failed: it could not be reached in time,\nit answered an error, or it holds a limit of the same name with other settings."
);

/// Gives the classes their `retry_after` default, so an instance raised by
/// user code answers it too.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    py.get_type::<Overloaded>()
        .setattr("retry_after", py.None())?;
    // Always a number for a rate limit, even one raised by user code.
    py.get_type::<RateLimited>().setattr("retry_after", 0.0)?;
    module.add("BrakesError", py.get_type::<BrakesError>())?;
    module.add("Overloaded", py.get_type::<Overloaded>())?;
    module.add("RateLimited", py.get_type::<RateLimited>())?;
    module.add("BackendError", py.get_type::<BackendError>())?;
    module.add("CircuitOpen", py.get_type::<CircuitOpen>())?;
    register_queue_errors(module)
}

static QUEUE_FULL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static QUEUE_EMPTY: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static QUEUE_SHUT_DOWN: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// The queue errors are also the standard library's, so code written for
/// `asyncio.Queue` or `queue.Queue` catches them unchanged. Classes with
/// several bases are made the way Python makes them: by calling `type`.
fn register_queue_errors(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    let asyncio = py.import("asyncio")?;
    let queue = py.import("queue")?;
    let brakes_error = py.get_type::<BrakesError>().into_any();
    let errors = [
        (
            &QUEUE_FULL,
            "QueueFull",
            vec![py.get_type::<Overloaded>().into_any()],
            [("asyncio", "QueueFull"), ("queue", "Full")],
            "The queue has no room and the put may not wait (or its wait ran out).",
        ),
        (
            &QUEUE_EMPTY,
            "QueueEmpty",
            vec![brakes_error.clone()],
            [("asyncio", "QueueEmpty"), ("queue", "Empty")],
            "The queue has no item and the get may not wait (or its wait ran out).",
        ),
        (
            &QUEUE_SHUT_DOWN,
            "QueueShutDown",
            vec![brakes_error],
            [("asyncio", "QueueShutDown"), ("queue", "ShutDown")],
            "The queue was shut down: no more puts, and no more gets once it is empty.",
        ),
    ];
    for (cell, name, mut bases, standard, doc) in errors {
        for (module_name, class_name) in standard {
            let owner = if module_name == "asyncio" {
                &asyncio
            } else {
                &queue
            };
            // asyncio.QueueShutDown and queue.ShutDown exist from Python 3.13.
            if let Ok(class) = owner.getattr(class_name) {
                bases.push(class);
            }
        }
        let namespace = PyDict::new(py);
        namespace.set_item("__module__", "brakes")?;
        namespace.set_item("__doc__", doc)?;
        let class = py
            .get_type::<PyType>()
            .call1((name, PyTuple::new(py, bases)?, namespace))?
            .cast_into::<PyType>()?;
        module.add(name, &class)?;
        let _ = cell.set(py, class.unbind());
    }
    Ok(())
}

fn queue_error(py: Python<'_>, cell: &PyOnceLock<Py<PyType>>, message: String) -> PyErr {
    match cell.get(py) {
        Some(class) => PyErr::from_type(class.bind(py).clone(), message),
        None => PyException::new_err(message),
    }
}

pub fn queue_full(py: Python<'_>, message: String) -> PyErr {
    queue_error(py, &QUEUE_FULL, message)
}

pub fn queue_empty(py: Python<'_>, message: String) -> PyErr {
    queue_error(py, &QUEUE_EMPTY, message)
}

pub fn queue_shut_down(py: Python<'_>) -> PyErr {
    queue_error(py, &QUEUE_SHUT_DOWN, "the queue is shut down".to_owned())
}

pub fn overloaded(message: String) -> PyErr {
    Overloaded::new_err(message)
}

/// `RateLimited` with its `retry_after`, in seconds.
pub fn rate_limited(py: Python<'_>, message: String, retry_after: f64) -> PyErr {
    let err = RateLimited::new_err(message);
    // Setting an attribute on a fresh exception instance cannot fail in practice;
    // if it did, the class default (0.0) would still answer.
    let _ = err.value(py).setattr("retry_after", retry_after);
    err
}

pub fn value_error(message: String) -> PyErr {
    PyValueError::new_err(message)
}

pub fn is_queue_shut_down(py: Python<'_>, err: &PyErr) -> bool {
    QUEUE_SHUT_DOWN
        .get(py)
        .is_some_and(|class| err.is_instance(py, class.bind(py)))
}
