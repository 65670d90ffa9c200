//! A gauge that finds its own limit: the published limit algorithms, and the
//! controller that decides which samples reach them.
// The binding (`brakes.AdaptiveGauge`) is not built yet.
#![allow(dead_code)]

pub mod algorithms;
pub mod controller;
