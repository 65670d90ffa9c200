//! The native module `brakes._brakes`: registers classes and exceptions.

mod core;
mod py;

use pyo3::prelude::*;

#[pymodule(gil_used = false)]
fn _brakes(module: &Bound<'_, PyModule>) -> PyResult<()> {
    py::errors::register(module)?;
    py::awaitable::register_shared(module)?;
    py::gauge::register(module)?;
    py::adaptive::register(module)?;
    py::bucket::register(module)?;
    py::budget::register(module)?;
    py::breaker::register(module)?;
    py::queue::register(module)?;
    py::channel::register(module)?;
    py::redis::register(module)?;
    module.add_class::<py::clock::ManualClock>()?;
    Ok(())
}
