//! The one tokio runtime of the process, started by the first backend that
//! connects: no path that needs no network I/O ever starts it.

use std::cell::Cell;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};

static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();

thread_local!(static RUNTIME_THREAD: Cell<bool> = const { Cell::new(false) });

/// True on the runtime's own threads, which never hold the GIL: a wake-up
/// made here must not wait for it.
pub fn on_runtime_thread() -> bool {
    RUNTIME_THREAD.with(Cell::get)
}

/// The runtime, or None if the system would not give it a thread.
pub fn runtime() -> Option<&'static Runtime> {
    RUNTIME
        .get_or_init(|| {
            Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("brakes-redis")
                .on_thread_start(|| RUNTIME_THREAD.with(|t| t.set(true)))
                .enable_time()
                .enable_io()
                .build()
                .ok()
        })
        .as_ref()
}
