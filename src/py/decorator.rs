//! `@limiter` on a def or async def, for every limiter: the wrapping itself is
//! Python's (`brakes._decorate`), which keeps name, docstring and signature.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

/// `limiter(func)`, `limiter(key=...)` or `limiter(func, key=...)`: the
/// arguments are checked in Python, whose errors name the limiter's class.
pub fn limit_calls(
    limiter: &Bound<'_, PyAny>,
    func: Option<&Bound<'_, PyAny>>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<Py<PyAny>> {
    static DECORATE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let py = limiter.py();
    let decorate = DECORATE.import(py, "brakes._decorate", "called")?;
    let func = func.map_or_else(|| py.None().into_bound(py), Clone::clone);
    Ok(decorate.call((limiter, func), kwargs)?.unbind())
}
