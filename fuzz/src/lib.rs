//! The fuzz targets' inputs and checks, shared with the property tests of the core
//! (`tests/fuzz_properties.rs`, which includes the same file).

mod checks;

pub use checks::*;
