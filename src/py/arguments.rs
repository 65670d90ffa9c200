//! Checks of the arguments users pass; each error names the argument and value.

use pyo3::exceptions::{PyOverflowError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyBool;

use super::errors::value_error;

/// A weight `n`: taken as signed so that `-1` is a `ValueError`, not an
/// `OverflowError`.
pub fn weight(n: i64) -> PyResult<u64> {
    if n < 1 {
        return Err(value_error(format!(
            "n must be a positive integer, got {n}"
        )));
    }
    Ok(n as u64)
}

pub fn limit(limit: i64) -> PyResult<u64> {
    if limit < 0 {
        return Err(value_error(format!("limit must be 0 or more, got {limit}")));
    }
    Ok(limit as u64)
}

/// A wait in seconds (`timeout`, `max_wait`): `None` and infinity wait forever.
pub fn wait_seconds(name: &str, seconds: Option<f64>) -> PyResult<Option<f64>> {
    match seconds {
        None => Ok(None),
        Some(s) if s.is_nan() || s < 0.0 => Err(value_error(format!(
            "{name} must be None or a number of seconds >= 0, got {s}"
        ))),
        Some(s) if s.is_infinite() => Ok(None),
        Some(s) => Ok(Some(s)),
    }
}

/// A wait already checked by `wait_seconds`, in whole nanoseconds (None: no
/// bound, also for waits too long to count).
pub fn nanoseconds(seconds: Option<f64>) -> Option<u64> {
    let ns = (seconds? * 1e9).round();
    (ns < u64::MAX as f64).then_some(ns as u64)
}

/// A wait as Python would print it: `None` or the float's repr.
pub fn wait_repr(seconds: Option<f64>) -> String {
    match seconds {
        None => "None".to_owned(),
        Some(s) => format!("{s:?}"),
    }
}

/// An integer argument as Python code means one: an `int` (or an object with
/// `__index__`), never a bool; one beyond 64 bits is a `ValueError` naming
/// the argument, not an `OverflowError` of the C layer.
pub fn integer(name: &str, value: &Bound<'_, PyAny>) -> PyResult<i64> {
    let py = value.py();
    if value.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "{name} must be an integer, got {}",
            value.repr()?
        )));
    }
    value.extract::<i64>().map_err(|err| {
        let repr = value.repr().map(|r| r.to_string()).unwrap_or_default();
        if err.is_instance_of::<PyOverflowError>(py) {
            value_error(format!("{name} must fit in 64 bits, got {repr}"))
        } else {
            PyTypeError::new_err(format!("{name} must be an integer, got {repr}"))
        }
    })
}

/// A number argument (a rate, a number of seconds): an `int` or a `float`
/// (or an object with `__float__`), never a bool.
pub fn number(name: &str, value: &Bound<'_, PyAny>) -> PyResult<f64> {
    let py = value.py();
    if value.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err(format!(
            "{name} must be a number, got {}",
            value.repr()?
        )));
    }
    value.extract::<f64>().map_err(|err| {
        let repr = value.repr().map(|r| r.to_string()).unwrap_or_default();
        if err.is_instance_of::<PyOverflowError>(py) {
            value_error(format!("{name} is too large, got {repr}"))
        } else {
            PyTypeError::new_err(format!("{name} must be a number, got {repr}"))
        }
    })
}

/// Extractors for `#[pyo3(from_py_with = ...)]`, one per argument name, so
/// that every error names its argument in its message.
macro_rules! extractors {
    ($($kind:ident $name:ident: $out:ty;)*) => {
        $(
            pub fn $name(value: &Bound<'_, PyAny>) -> PyResult<$out> {
                extractors!(@ $kind stringify!($name), value)
            }
        )*
    };
    (@ int $name:expr, $value:expr) => { integer($name, $value) };
    (@ opt_int $name:expr, $value:expr) => {
        if $value.is_none() { Ok(None) } else { integer($name, $value).map(Some) }
    };
    (@ num $name:expr, $value:expr) => { number($name, $value) };
    (@ opt_num $name:expr, $value:expr) => {
        if $value.is_none() { Ok(None) } else { number($name, $value).map(Some) }
    };
}

pub mod arg {
    use super::{integer, number};
    use pyo3::prelude::*;

    extractors! {
        int n: i64;
        int limit: i64;
        int max_items: i64;
        opt_int burst: Option<i64>;
        opt_int capacity: Option<i64>;
        opt_int max_keys: Option<i64>;
        num rate: f64;
        num per: f64;
        num seconds: f64;
        num start: f64;
        num lease: f64;
        num ratio: f64;
        num min_per_second: f64;
        num window: f64;
        num failure_rate: f64;
        num slow_call_rate: f64;
        num slow_call_duration: f64;
        num open_for: f64;
        int window_size: i64;
        int minimum_calls: i64;
        int half_open_calls: i64;
        int initial: i64;
        int min_limit: i64;
        int max_limit: i64;
        opt_num rtt: Option<f64>;
        opt_num timeout: Option<f64>;
        opt_num max_wait: Option<f64>;
        opt_num linger: Option<f64>;
    }
}

/// A `name=`: None, or a non-empty string of printable characters (it goes
/// into reprs, logs, metric labels and Redis keys).
pub fn name(name: Option<&Bound<'_, PyAny>>) -> PyResult<Option<String>> {
    let Some(name) = name.filter(|n| !n.is_none()) else {
        return Ok(None);
    };
    let Ok(text) = name.cast::<pyo3::types::PyString>() else {
        return Err(PyTypeError::new_err(format!(
            "name must be a string or None, got {}",
            name.get_type().name()?
        )));
    };
    // Python's own idea of printable, as the Python classes check it.
    let printable = text.call_method0("isprintable")?.is_truthy()?;
    let shown = text.repr()?;
    if text.len()? == 0 || !printable {
        return Err(value_error(format!(
            "name must be a non-empty string of printable characters, got {shown}"
        )));
    }
    Ok(Some(text.to_str()?.to_owned()))
}
