//! What the fuzz targets (`fuzz/`) and their property-test equivalents check, on the
//! same inputs: hostile requests through the whole stream path, a header map as raw bytes, a
//! configuration as raw bytes or as a JSON tree.
//!
//! Each check panics when the filter breaks one of its promises, which is how libFuzzer and
//! proptest see a failure; the promises go beyond "no panic":
//! - a client never chooses an owned header's value: after a routed request the version and
//!   cluster headers hold exactly the destination's values, and after an unrouted one none,
//!   unless a host call failed (and was counted);
//! - every failed host call is counted exactly once; headers the filter does not own are left
//!   as they were; the header map is read at most once;
//! - a configuration is either compiled into a plan that keeps the plan's invariants (names,
//!   non-zero total weight, an exact split over one cycle) or refused with at least one error.
//!
//! One concept a file: [`requests`], the hostile requests and the sample configs they run
//! against; [`stream`], the stream's promises on them; [`header_map`], the header map from raw
//! bytes; [`config`], a configuration from raw bytes and the plan's invariants; [`json_tree`],
//! a configuration as a JSON tree biased towards the config's shape.
//!
//! Outside the shipped crate: the test-only crate `traffic-split-fuzz-checks`, which the fuzz
//! targets (`fuzz/fuzz_targets/`) and the property tests (`tests/fuzz_properties.rs`) depend
//! on. It needs the core's test-only `testing` feature (the scripted host). A check reports by
//! panicking, and may index what it has just checked.

// The entry points of the fuzz targets and the property tests; the rest by its module.
pub mod config;
pub mod header_map;
pub mod json_tree;
pub mod requests;
pub mod stream;

pub use config::{check_config_text, check_plan};
pub use header_map::check_header_map;
pub use json_tree::{check_config_tree, JsonTree};
pub use requests::{sample_plan, HostileStreams, SAMPLE_CONFIGS};
pub use stream::check_streams;
