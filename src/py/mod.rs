//! The thin PyO3 layer: argument checks, the GIL, the two drivers.

pub mod adaptive;
pub mod arguments;
pub mod awaitable;
pub mod blocking;
pub mod breaker;
pub mod bucket;
pub mod budget;
pub mod channel;
pub mod clock;
pub mod decorator;
pub mod errors;
pub mod gauge;
pub mod hold_sample;
#[cfg(unix)]
pub mod inbox;
#[cfg(not(unix))]
pub mod inbox {
    //! Without sockets a loop can watch, wake-ups take `call_soon_threadsafe`.
    use pyo3::prelude::*;
    use std::sync::Weak;

    pub struct Inbox;

    impl Inbox {
        pub fn post(&self, future: Py<PyAny>) {
            drop(future);
        }
    }

    pub fn inbox_for(_: &Bound<'_, PyAny>) -> Option<Weak<Inbox>> {
        None
    }
}
pub mod keys;
pub mod queue;
pub mod redis;
pub mod stats;
