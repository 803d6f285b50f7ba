//! The guard as configured: what counts as an error, when a version trips, for how long.

use super::window::{Tally, BUCKETS};

/// A cooldown that lasts until the config changes (`"cooldown": "until_config_change"`), and
/// the end of a latched ejection: no clock reaches it.
pub const UNTIL_CONFIG_CHANGE: u64 = u64::MAX;

/// Which outcomes count as errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorClasses {
    /// Any response with a 5xx status (Envoy's own 503 and 504 included).
    pub server_error: bool,
    /// A request cut by Envoy's deadline (the `UT` flag).
    pub timeout: bool,
    /// A stream reset: no response at all, or Envoy's reset and connection-failure flags.
    pub reset: bool,
}

impl Default for ErrorClasses {
    fn default() -> Self {
        ErrorClasses {
            server_error: true,
            timeout: true,
            reset: false,
        }
    }
}

/// A route's guard, as configured.
#[derive(Clone, Debug, PartialEq)]
pub struct Guard {
    /// Trips when errors / requests in the window is above this.
    pub max_error_ratio: f64,
    /// ... with at least this many requests in the window.
    pub min_requests: u32,
    pub window_ms: u64,
    /// How long a trip keeps a version out; [`UNTIL_CONFIG_CHANGE`]: until the config changes.
    pub cooldown_ms: u64,
    pub errors: ErrorClasses,
    /// The share of the route sent to an ejected version during its cooldown, in hundredths
    /// of a percent (0: none).
    pub probe_basis_points: u32,
    /// Per destination, set by the route: `Some(fingerprint)` when a trip of it latches (every
    /// version under a cooldown [`UNTIL_CONFIG_CHANGE`]; the ramped version of a route with a
    /// ramp, whose trip halts the rollout). The fingerprint is of what configures the version
    /// (its weight, its ramp): a config that changes it releases the latch.
    pub latches: Vec<Option<u64>>,
}

impl Guard {
    pub(super) fn bucket_ms(&self) -> u64 {
        (self.window_ms / BUCKETS).max(1)
    }

    /// The fingerprint a trip of `destination` latches with, if it latches.
    pub(super) fn latch(&self, destination: usize) -> Option<u64> {
        self.latches.get(destination).copied().flatten()
    }

    pub(super) fn too_many_errors(&self, tally: Tally) -> bool {
        tally.requests > 0
            && f64::from(tally.errors) > self.max_error_ratio * f64::from(tally.requests)
    }
}
