//! Durations and timestamps as users write them in the config.

pub mod duration;
pub mod timestamp;
