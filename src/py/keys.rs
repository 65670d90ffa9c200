//! The `key=` argument: str, bytes, int or None.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyString};

use crate::core::keys::Key;

pub fn key_argument(key: Option<&Bound<'_, PyAny>>) -> PyResult<Key> {
    let Some(key) = key.filter(|k| !k.is_none()) else {
        return Ok(Key::Shared);
    };
    if let Ok(text) = key.cast::<PyString>() {
        return Ok(Key::text(text.to_str()?));
    }
    if let Ok(bytes) = key.cast::<PyBytes>() {
        return Ok(Key::bytes(bytes.as_bytes()));
    }
    if key.is_instance_of::<PyInt>() {
        return Ok(match key.extract::<i64>() {
            Ok(small) => Key::Int(small),
            Err(_) => Key::big_int(key.str()?.to_str()?),
        });
    }
    Err(PyTypeError::new_err(format!(
        "key must be str, bytes, int or None, got {}",
        key.get_type().name()?
    )))
}
