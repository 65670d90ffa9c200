//! The thread driver: a core wait driven in a Python thread, with the GIL
//! released while it is parked, Ctrl-C still answered in the main thread.

use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::core::wait::{block_on, Poll, Wait};

/// How often the main thread, while parked, looks for a signal: only it
/// runs Python's signal handlers, so other threads sleep until woken or due.
const SIGNAL_CHECK: Duration = Duration::from_millis(50);

fn is_main_thread(py: Python<'_>) -> PyResult<bool> {
    static THREADING: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let threading = THREADING.get_or_try_init(py, || py.import("threading").map(Bound::unbind))?;
    let threading = threading.bind(py);
    let main = threading.call_method0("main_thread")?.getattr("ident")?;
    let current = threading.call_method0("get_ident")?;
    main.eq(current)
}

/// Runs `wait` to its end in this thread. The first look holds the GIL, so
/// an answer known at once costs no release of it; the wait proper runs with
/// the GIL released. A signal handler that raises (Ctrl-C) abandons the wait and
/// its exception is the error.
pub fn wait_here<W>(py: Python<'_>, wait: &mut W) -> PyResult<W::Output>
where
    W: Wait + Send,
    W::Output: Send,
{
    if let Poll::Ready(output) = wait.poll(None) {
        return Ok(output);
    }
    let main = is_main_thread(py)?;
    let mut interruption: Option<PyErr> = None;
    let output = py.detach(|| {
        let mut interrupted = || {
            Python::attach(|py| py.check_signals())
                .map_err(|err| interruption = Some(err))
                .is_err()
        };
        let check: Option<(&mut dyn FnMut() -> bool, Duration)> = if main {
            Some((&mut interrupted, SIGNAL_CHECK))
        } else {
            None
        };
        block_on(wait, check)
    });
    output
        .ok_or_else(|| interruption.unwrap_or_else(|| PyRuntimeError::new_err("wait interrupted")))
}
