//! A gauge that finds its own limit: the published limit algorithms, and the
//! controller that decides which samples reach them.

pub mod algorithms;
pub mod controller;
