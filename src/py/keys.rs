//! The `key=` argument: str, bytes, int or None.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyString};

use crate::core::keys::Key;

pub fn key_argument(key: Option<&Bound<'_, PyAny>>) -> PyResult<Key> {
    let Some(key) = key.filter(|k| !k.is_none()) else {
        return Ok(Key::Shared);
    };
    if let Ok(text) = key.cast::<PyString>() {
        let text = text.to_str().map_err(|_| {
            PyValueError::new_err(
                "key must be a str that encodes to UTF-8 (it holds a lone surrogate)",
            )
        })?;
        return Ok(Key::text(text));
    }
    if let Ok(bytes) = key.cast::<PyBytes>() {
        return Ok(Key::bytes(bytes.as_bytes()));
    }
    if key.is_instance_of::<PyInt>() {
        if let Ok(small) = key.extract::<i64>() {
            return Ok(Key::Int(small));
        }
        // By int's own digits: a subclass's __str__ must not merge keys.
        let digits = key
            .py()
            .get_type::<PyInt>()
            .call_method1("__repr__", (key,))
            .map_err(|err| {
                PyValueError::new_err(format!("key is an int too large to use: {err}"))
            })?;
        return Ok(Key::big_int(digits.cast::<PyString>()?.to_str()?));
    }
    Err(PyTypeError::new_err(format!(
        "key must be str, bytes, int or None, got {}",
        key.get_type().name()?
    )))
}
