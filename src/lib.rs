mod core;
use pyo3::prelude::*;
#[pymodule]
fn _brakes(_m: &Bound<'_, PyModule>) -> PyResult<()> { Ok(()) }
