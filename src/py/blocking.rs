//! Waiting in a Python thread: the GIL released, signals still answered.

use pyo3::prelude::*;

/// Runs `wait` with the GIL released. `wait` is handed a check to call every
/// few milliseconds; it says stop once a signal handler raised (Ctrl-C), and
/// that exception is returned beside the outcome.
pub fn wait_detached<T: Send>(
    py: Python<'_>,
    wait: impl FnOnce(&mut dyn FnMut() -> bool) -> T + Send,
) -> (T, Option<PyErr>) {
    let mut interruption: Option<PyErr> = None;
    let outcome = py.detach(|| {
        let mut interrupted = || {
            Python::attach(|py| py.check_signals())
                .map_err(|err| interruption = Some(err))
                .is_err()
        };
        wait(&mut interrupted)
    });
    (outcome, interruption)
}
