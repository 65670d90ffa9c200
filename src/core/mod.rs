//! Pure Rust: the algorithms, with no knowledge of Python.

pub mod adaptive;
pub mod batch;
pub mod breaker;
pub mod bucket;
pub mod budget;
pub mod clock;
pub mod gauge;
pub mod histogram;
pub mod keyed_gauge;
pub mod keys;
pub mod pace;
pub mod queue;
pub mod redis;
pub mod reorder;
pub mod sorted;
pub mod store;
pub mod wait;
pub mod waiter;
pub mod waitlist;
