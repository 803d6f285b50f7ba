//! The guard: takes a failing version out of a route's split for a cooldown, and back.
//!
//! Each Envoy worker counts its routed requests' outcomes locally (no host call per request);
//! a root-context timer merges them into one [`RouteGuardState`] per route held in proxy-wasm
//! shared data, which every worker of the proxy reads and writes with compare-and-swap. The
//! decision (a version's `ejected_until_ms`) lives in that state, so all workers agree within
//! one timer period. Everything here is pure: the adapter only moves bytes and counts events.
//!
//! The window is sliding in [`BUCKETS`] steps: outcomes fall in buckets of `window / BUCKETS`,
//! and the ratio is taken over the last `BUCKETS` buckets.
//!
//! One concept a file:
//! - [`policy`]: the guard as configured ([`Guard`], [`ErrorClasses`]);
//! - [`window`]: one version's outcomes in the sliding window ([`Tally`], [`VersionState`]);
//! - [`trip`]: the route's state and the merge that takes versions out and back
//!   ([`RouteGuardState`], [`GuardEvent`]);
//! - [`wire`]: the state's bytes in shared data ([`RouteGuardState::encode`] and `decode`);
//! - [`shared`]: the compare-and-swap store the workers share ([`SharedStore`],
//!   [`merge_shared`]), and [`memory_store`], an in-memory one for tests;
//! - [`probes`]: the weights a route is split by while a version is out
//!   ([`effective_weights`]).

#[cfg(any(test, feature = "testing"))]
pub mod memory_store;
pub mod policy;
pub mod probes;
pub mod shared;
pub mod trip;
pub mod window;
pub mod wire;

pub use policy::{ErrorClasses, Guard, UNTIL_CONFIG_CHANGE};
pub use probes::{effective_weights, MAX_PROBE_BASIS_POINTS, PROBE_SCALE};
pub use shared::{merge_shared, SharedStore, Stored, CAS_ATTEMPTS};
pub use trip::{GuardEvent, RouteGuardState, PROBES_TO_RETURN};
pub use window::{Tally, VersionState, BUCKETS};

/// What the guard's tests share: a guard and a time to start from.
#[cfg(test)]
mod test_support {
    use super::{ErrorClasses, Guard, Tally};

    pub fn guard() -> Guard {
        Guard {
            max_error_ratio: 0.05,
            min_requests: 50,
            window_ms: 2_000,
            cooldown_ms: 10_000,
            errors: ErrorClasses::default(),
            probe_basis_points: 0,
            latches: Vec::new(),
        }
    }

    pub fn tally(requests: u32, errors: u32) -> Tally {
        Tally { requests, errors }
    }

    pub const START: u64 = 1_000_000;
}
