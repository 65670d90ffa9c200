//! The one tokio runtime of the process, started by the first backend that
//! connects: no path that needs no network I/O ever starts it.

use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};

static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();

/// The runtime, or None if the system would not give it a thread.
pub fn runtime() -> Option<&'static Runtime> {
    RUNTIME
        .get_or_init(|| {
            Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("brakes-redis")
                .enable_time()
                .enable_io()
                .build()
                .ok()
        })
        .as_ref()
}
