//! The exceptions users catch.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;

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

/// Gives the classes their `retry_after` default, so an instance raised by
/// user code answers it too.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    py.get_type::<Overloaded>()
        .setattr("retry_after", py.None())?;
    module.add("BrakesError", py.get_type::<BrakesError>())?;
    module.add("Overloaded", py.get_type::<Overloaded>())?;
    module.add("RateLimited", py.get_type::<RateLimited>())?;
    Ok(())
}

pub fn overloaded(message: String) -> PyErr {
    Overloaded::new_err(message)
}

/// `RateLimited` with its `retry_after`, in seconds.
pub fn rate_limited(py: Python<'_>, message: String, retry_after: f64) -> PyErr {
    let err = RateLimited::new_err(message);
    // Setting an attribute on a fresh exception instance cannot fail in practice;
    // if it did, the class default (None) would still answer.
    let _ = err.value(py).setattr("retry_after", retry_after);
    err
}

pub fn value_error(message: String) -> PyErr {
    PyValueError::new_err(message)
}
