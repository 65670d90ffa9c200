//! Who holds a gauge's permit in a block, for timing one block in
//! `SAMPLE_EVERY` (see the core gauge's hold sampler): a thread for `with`,
//! an asyncio task for `async with`.

use std::cell::Cell;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::core::gauge::Gauge;

/// One block in this many entered on a thread may be timed.
const SAMPLE_EVERY: u32 = 64;

thread_local! {
    static THREAD_MARK: u8 = const { 0 };
    static BLOCKS_ENTERED: Cell<u32> = const { Cell::new(0) };
}

/// True for one block entered on this thread in `SAMPLE_EVERY`.
fn due() -> bool {
    BLOCKS_ENTERED.with(|entered| {
        let n = entered.get().wrapping_add(1);
        entered.set(n);
        n % SAMPLE_EVERY == 0
    })
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
    if due() {
        gauge.begin_hold_sample(this_thread());
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
    if due() {
        if let Some(task) = this_task(py) {
            gauge.begin_hold_sample(task);
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
