//! Checks of the arguments users pass; each error names the argument and value.

use pyo3::prelude::*;

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
