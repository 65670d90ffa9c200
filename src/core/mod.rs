//! Pure Rust: the algorithms, with no knowledge of Python.

pub mod gauge;
pub mod waiter;
pub mod waitlist;
