//! A simulation of the filter over virtual time, on the filter's own core (feature `simulate`,
//! never in the shipped module): N workers, each with its own plan and [`crate::state::RouteState`]s,
//! sending requests through [`crate::request::Stream`] with an in-memory host, merging their
//! guards through [`crate::split::guard::merge_shared`] into a store with Envoy's
//! compare-and-swap semantics, on clocks that can be skewed or step back, with config pushes.
//! - [`scenario`]: what is simulated: the config, the traffic, each version's behaviour, pushes;
//! - [`engine`]: the run: workers, their ticks and pushes, requests and their ends;
//! - `queue`: virtual time, event by event; `random`: the seed's numbers;
//! - `router`: Envoy's router and the upstreams: the deadline, retries, what the filter sees at
//!   a stream's end;
//! - [`records`]: what a run records: every request, every guard event, rows per period.
//!
//! It lives in the core crate because it drives the same types the adapter drives; both the
//! tests (tests/simulation.rs) and `traffic-split simulate` (the checker) use it.

pub mod engine;
mod queue;
mod random;
pub mod records;
mod router;
pub mod scenario;

pub use engine::run;
pub use records::{GuardRecord, RequestRecord, Row, Run, VersionRow};
pub use scenario::{Behaviour, ClockStep, Push, Scenario, Traffic};
