//! traffic-split: an Istio VirtualService's traffic control as one proxy-wasm filter.
//!
//! For each request the filter matches a route, picks a service version by weight, writes the
//! version and cluster headers Envoy (or the mesh) routes by, sets the route's deadline, and
//! counts requests, response classes, timeouts and latency per route and version.
//!
//! The crate is a pure core, built and tested on any target, and a thin proxy-wasm adapter
//! ([`filter`], only in the Wasm module):
//! - [`config`]: the JSON config as users write it, read with every error's JSON path,
//!   checked (one file per section) and compiled into a [`plan::Plan`]; how large a config
//!   the filter accepts;
//! - [`plan`]: the immutable plan and route matching;
//! - [`route_table`]: the routes indexed by path, so that matching does not grow with them;
//! - [`ramp`]: a version's weight moving over time;
//! - [`pick`]: the weighted round robin and sticky keys' versions;
//! - [`duration`]: durations as users write them;
//! - [`timestamp`]: RFC 3339 times (a ramp's start);
//! - [`fault`]: aborts and delays for drills, drawn exactly;
//! - [`guard`]: taking a failing version out of the split, and back;
//! - [`headers`]: the request's header map, read in one host call;
//! - [`metrics`]: metric names and labels;
//! - [`stream`]: what the filter does for one stream, against a small host trait.
//!
//! `fuzzing` (tests and the `fuzzing` feature only) holds the fuzz targets' inputs and checks.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod config;
pub mod duration;
pub mod fault;
#[cfg(any(feature = "fuzzing", all(test, not(target_arch = "wasm32"))))]
pub mod fuzzing;
pub mod guard;
pub mod headers;
pub mod metrics;
pub mod pick;
pub mod plan;
pub mod ramp;
pub mod route_table;
pub mod stream;
pub mod timestamp;

// The adapter's path to the size limits, which live in config/.
#[cfg(all(feature = "filter", target_arch = "wasm32"))]
use config::limits;

// The adapter imports proxy-wasm host functions, so it exists only in the Wasm module.
#[cfg(all(feature = "filter", target_arch = "wasm32"))]
pub mod filter;
