//! One version's outcomes: counted per request, kept in the buckets of a sliding window.

use super::policy::UNTIL_CONFIG_CHANGE;

/// How many buckets a window is cut into.
pub const BUCKETS: u64 = 8;

/// How a routed request ended, as far as the guard is concerned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub requests: u32,
    pub errors: u32,
}

impl Tally {
    pub fn add(&mut self, other: Tally) {
        self.requests = self.requests.saturating_add(other.requests);
        self.errors = self.errors.saturating_add(other.errors);
    }

    pub fn one(error: bool) -> Tally {
        Tally {
            requests: 1,
            errors: u32::from(error),
        }
    }
}

/// One version's part of the shared state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionState {
    /// `(bucket index, outcomes)`, oldest first, at most [`BUCKETS`].
    pub buckets: Vec<(u64, Tally)>,
    /// When an ejection ends, in ms since the epoch; 0 while the version serves;
    /// [`UNTIL_CONFIG_CHANGE`] while latched.
    pub ejected_until_ms: u64,
    /// The guard would eject it but it is the last version with weight: said once, until the
    /// errors subside.
    pub held: bool,
    /// While latched: the fingerprint of the version's configuration when it tripped
    /// ([`super::Guard::latches`]); 0 otherwise.
    pub latch: u64,
}

impl VersionState {
    /// Whether it is out of the split at `now_ms`: in its cooldown, or latched by a trip under
    /// the configuration it still has (`latch`: what the guard latches it with now).
    pub(super) fn out_at(&self, now_ms: u64, latch: Option<u64>) -> bool {
        if self.ejected_until_ms == UNTIL_CONFIG_CHANGE {
            return latch == Some(self.latch);
        }
        self.ejected_until_ms > now_ms
    }

    /// The outcomes in the window (while out of the split: its probes).
    pub(super) fn window(&self) -> Tally {
        let mut window = Tally::default();
        for (_, tally) in &self.buckets {
            window.add(*tally);
        }
        window
    }
}
