//! A simulation of the filter over virtual time, on the filter's own core (feature `simulate`,
//! never in the shipped module): N Envoy workers, each a core [`crate::worker::Worker`] as the
//! proxy-wasm adapter and the native module drive it (configure on every push, tick, the
//! streams' callbacks), over an in-memory host whose store has Envoy's compare-and-swap
//! semantics, on clocks that can be skewed or step back; behind a model of Envoy's router
//! (deadlines, retries) and of the versions' upstreams.
//! - [`scenario`]: what is simulated: the config, the traffic, each version's behaviour, pushes;
//! - [`engine`]: the run: workers (each a core [`crate::worker::Worker`] per config), their
//!   ticks and pushes, requests and their ends;
//! - `host`: a worker's host: its clock, the shared store, merges that interleave;
//! - `queue`: virtual time, event by event; `random`: the seed's numbers;
//! - `router`: Envoy's router and the upstreams: the deadline, retries, what the filter sees at
//!   a stream's end;
//! - [`records`]: what a run records: every request, every guard event, rows per period.
//!
//! It lives in the core crate because it drives the same worker the hosts drive, and holds no
//! logic of a worker's own; both the tests (tests/simulation.rs) and `traffic-split simulate`
//! (the checker) use it.

pub mod engine;
mod host;
mod queue;
mod random;
pub mod records;
mod router;
pub mod scenario;

pub use engine::run;
pub use records::{GuardRecord, RequestRecord, Row, Run, VersionRow};
pub use scenario::{Behaviour, ClockStep, Push, Scenario, Traffic};
