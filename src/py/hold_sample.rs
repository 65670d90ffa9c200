//! Who holds a gauge's permit in a block, for the blocks the core gauge's
//! hold sampler times: a thread for `with`, an asyncio task for
//! `async with`. Only a block that is timed, or that ends while another is,
//! needs to say who it is.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::core::gauge::Gauge;

thread_local! {
    static THREAD_MARK: u8 = const { 0 };
}

fn this_thread() -> usize {
    THREAD_MARK.with(|mark| std::ptr::from_ref(mark) as usize)
}

/// The running asyncio task, as a number unique while it lives.
fn this_task(py: Python<'_>) -> Option<usize> {
    static CURRENT_TASK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let current = CURRENT_TASK
        .get_or_try_init(py, || {
            py.import("asyncio")?
                .getattr("current_task")
                .map(Bound::unbind)
        })
        .ok()?;
    let task = current.call0(py).ok()?;
    (!task.is_none(py)).then(|| task.as_ptr() as usize)
}

/// A thread entered a block that holds a permit of `gauge`.
pub fn thread_entered(gauge: &Gauge) {
    if gauge.hold_sample_due() {
        gauge.begin_hold_sample(this_thread());
    } else if gauge.hold_sampling() {
        gauge.nested_hold_sample(this_thread());
    }
}

/// A thread leaves such a block (before its permit goes back).
pub fn thread_leaving(gauge: &Gauge) {
    if gauge.hold_sampling() {
        gauge.end_hold_sample(this_thread());
    }
}

/// A task entered an `async with` block on `gauge`.
pub fn task_entered(py: Python<'_>, gauge: &Gauge) {
    if gauge.hold_sample_due() {
        if let Some(task) = this_task(py) {
            gauge.begin_hold_sample(task);
        }
    } else if gauge.hold_sampling() {
        if let Some(task) = this_task(py) {
            gauge.nested_hold_sample(task);
        }
    }
}

/// A task leaves such a block.
pub fn task_leaving(py: Python<'_>, gauge: &Gauge) {
    if gauge.hold_sampling() {
        if let Some(task) = this_task(py) {
            gauge.end_hold_sample(task);
        }
    }
}
