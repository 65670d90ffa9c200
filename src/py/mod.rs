//! The thin PyO3 layer: argument checks, the GIL, the two drivers.

pub mod arguments;
pub mod awaitable;
pub mod blocking;
pub mod bucket;
pub mod channel;
pub mod clock;
pub mod decorator;
pub mod errors;
pub mod gauge;
pub mod keys;
pub mod queue;
pub mod redis;
pub mod stats;
