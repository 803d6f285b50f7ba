//! The host calls one Envoy worker makes for a configuration, outside any stream: the clock,
//! the guard's shared store, metric definitions and values, and the tick timer. The proxy-wasm
//! adapter implements it with host calls, the native module with Envoy's dynamic-module ABI,
//! the simulator and the tests in memory. Logging goes through the `log` crate.

use crate::metrics::MetricKind;
use crate::request::HostError;
use crate::split::guard::Stored;

/// What a worker needs from its host. Every method takes `&self`: the guard's merge reads the
/// clock and the store in one loop, and proxy-wasm's host calls are free functions anyway.
pub trait WorkerHost {
    /// The proxy's clock, in nanoseconds since the Unix epoch (0 if the host cannot tell).
    fn now_nanos(&self) -> u64;
    /// The value and compare-and-swap token stored at `key` in the store the workers of one
    /// proxy share (proxy-wasm shared data; the native module's own memory).
    fn shared_get(&self, key: &str) -> Result<Stored, HostError>;
    /// Stores `value` at `key`; with `cas`, only if the token is still the stored one.
    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError>;
    /// Defines a metric, returning its id.
    fn define_metric(&self, kind: MetricKind, name: &str) -> Result<u32, HostError>;
    fn increment_metric(&self, id: u32, by: u64);
    /// Sets a gauge, or records a histogram value.
    fn record_metric(&self, id: u32, value: u64);
    /// Sets the period of the worker's timer, in ms (0 stops it).
    fn set_tick_period_ms(&self, period_ms: u64) -> Result<(), HostError>;
}

/// The proxy's clock in milliseconds since the Unix epoch.
pub fn now_ms(host: &impl WorkerHost) -> u64 {
    host.now_nanos() / 1_000_000
}
