//! `@limiter` on a def or async def, for every limiter: the wrapping itself is
//! Python's (`brakes._decorate`), which keeps name, docstring and signature.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

pub fn limit_calls(limiter: &Bound<'_, PyAny>, func: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    static DECORATE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let decorate = DECORATE.import(limiter.py(), "brakes._decorate", "limit_calls")?;
    Ok(decorate.call1((limiter, func))?.unbind())
}
