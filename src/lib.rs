//! The native module `brakes._brakes`: registers classes and exceptions.

mod core;
mod py;

use pyo3::prelude::*;

#[pymodule(gil_used = false)]
fn _brakes(module: &Bound<'_, PyModule>) -> PyResult<()> {
    py::errors::register(module)?;
    py::awaitable::register(module)?;
    module.add_class::<py::gauge::Gauge>()?;
    module.add_class::<py::gauge::GaugeStats>()?;
    module.add_class::<py::bucket::Bucket>()?;
    module.add_class::<py::bucket::TokenBucket>()?;
    module.add_class::<py::bucket::LeakyBucket>()?;
    module.add_class::<py::bucket::BucketStats>()?;
    module.add_class::<py::clock::ManualClock>()?;
    module.add_class::<py::queue::Queue>()?;
    module.add_class::<py::queue::LifoQueue>()?;
    module.add_class::<py::queue::PriorityQueue>()?;
    module.add_class::<py::queue::QueueStats>()?;
    module.add_class::<py::channel::Channel>()?;
    module.add_class::<py::channel::Reorder>()?;
    module.add_class::<py::channel::Tally>()?;
    Ok(())
}
