//! traffic-split: an Istio VirtualService's traffic control as one proxy-wasm filter.
//!
//! For each request the filter matches a route, picks a service version by weight, writes the
//! version and cluster headers Envoy (or the mesh) routes by, sets the route's deadline, and
//! counts requests, response classes, timeouts and latency per route and version.
//!
//! The crate is a pure core, built and tested on any target, and a thin proxy-wasm adapter
//! (`filter`, only in the Wasm module). Dependencies run one way: [`units`] and [`metrics`],
//! then [`split`], then [`plan`], then [`state`], then [`request`], then [`worker`], then the
//! hosts (`filter`, [`sim`]); [`config`] builds a plan.
//! - [`config`]: the JSON config as users write it, read with every error's JSON path,
//!   checked (one file per section under `config/check/`, within `config/limits.rs`) and
//!   compiled by [`config::compile`] into a [`plan::Plan`];
//! - [`units`]: durations and timestamps as users write them;
//! - [`metrics`]: metric names and labels;
//! - [`split`]: the pure algorithms: round robin, sticky hashing, ramp schedule, guard, faults;
//! - [`plan`]: the compiled, immutable plan: routes, destinations, matchers, the route index;
//! - [`state`]: what changes while a route serves, one [`state::RouteState`] per route, kept
//!   beside the plan;
//! - [`request`]: what the filter does for one stream, against a small host trait; header maps;
//! - [`worker`]: what one Envoy worker holds and does for one configuration (configure, the
//!   guard's merges, ramps, gauges, the timer), against a small root-host trait: every host
//!   drives it;
//! - `filter`: the proxy-wasm adapter: glue from the SDK's callbacks to the worker and the
//!   stream, and the host calls;
//! - `ablation` (test-only features): the benchmark's ablation modules, in one place.
//!
//! The fuzz targets' inputs and checks live outside the shipped crate, in tests/fuzz-checks/
//! (shared with tests/fuzz_properties.rs); the test-only `testing` feature exposes
//! `request::scripted_host`, the in-memory host they use. The test-and-tool-only `simulate`
//! feature adds `sim`: the filter over virtual time, on this core, for tests/simulation.rs and
//! `traffic-split simulate`.
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
pub mod metrics;
pub mod plan;
pub mod request;
#[cfg(feature = "simulate")]
pub mod sim;
pub mod split;
pub mod state;
pub mod units;
pub mod worker;

mod ablation;

// The adapter imports proxy-wasm host functions, so it exists only in the Wasm module.
#[cfg(all(feature = "filter", target_arch = "wasm32"))]
pub mod filter;
