//! The worker's timer, shared by the guard (a merge every [`GUARD_TICK`]), the delay faults (a
//! held request resumes when its delay is up) and the ramps (their weight gauges move every
//! [`RAMP_TICK`] on a route without requests).
//!
//! A host has one timer per root (proxy-wasm: per root context), whose period Envoy applies from
//! the next firing on: a new, shorter wait must first stop the timer (period 0) and then set the
//! period, which arms it afresh. The timer always waits for the earliest of the guard's next
//! merge, the ramps' next tick and the first held request's release. The timer outlives a
//! configuration: a request held under the old one is still released after a push.

use super::host::WorkerHost;
use std::cell::{Cell, RefCell};
use std::time::Duration;

/// How often each worker merges its guard outcomes into the shared state and reads the
/// decisions: the longest a worker's split lags behind a trip (docs/config.md).
pub const GUARD_TICK: Duration = Duration::from_millis(250);

/// How often a configuration with a ramp brings its ramps and weight gauges up to the clock.
/// Requests do not wait for it: each reads the clock itself.
pub const RAMP_TICK: Duration = Duration::from_secs(1);

/// What a configuration needs the timer for, besides held requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TickNeeds {
    /// A route has a guard: merges every [`GUARD_TICK`].
    pub guarded: bool,
    /// A route has a ramp: its gauges move every [`RAMP_TICK`].
    pub ramped: bool,
}

/// Requests held by a delay fault, and the timer that releases them.
#[derive(Debug, Default)]
pub struct Timer {
    needs: Cell<TickNeeds>,
    /// The period the timer was last set to, in ms (0: stopped).
    period_ms: Cell<u64>,
    /// `(stream id, release time in ms)`.
    held: RefCell<Vec<(u64, u64)>>,
}

impl Timer {
    /// What the configuration in force needs the timer for; arms it accordingly.
    pub fn set_needs(&self, needs: TickNeeds, now_ms: u64, host: &impl WorkerHost) {
        self.needs.set(needs);
        self.arm(now_ms, host);
    }

    /// Holds a stream until `release_ms`.
    pub fn hold(&self, stream: u64, release_ms: u64, now_ms: u64, host: &impl WorkerHost) {
        if let Ok(mut held) = self.held.try_borrow_mut() {
            held.push((stream, release_ms));
        }
        self.arm(now_ms, host);
    }

    /// Forgets a stream (it ended, or was released).
    pub fn forget(&self, stream: u64) {
        if let Ok(mut held) = self.held.try_borrow_mut() {
            held.retain(|(id, _)| *id != stream);
        }
    }

    /// The streams whose delay is up, removed from the held ones.
    pub fn due(&self, now_ms: u64) -> Vec<u64> {
        let Ok(mut held) = self.held.try_borrow_mut() else {
            return Vec::new();
        };
        let due = held
            .iter()
            .filter(|(_, release_ms)| *release_ms <= now_ms)
            .map(|(id, _)| *id)
            .collect();
        held.retain(|(_, release_ms)| *release_ms > now_ms);
        due
    }

    /// The period the timer runs at, in ms (0: stopped).
    pub fn period_ms(&self) -> u64 {
        self.period_ms.get()
    }

    /// The period the timer should run at: the earliest of what is waited for, 0 (stopped)
    /// when nothing is.
    pub fn wanted_period_ms(&self, now_ms: u64) -> u64 {
        let next_release = self
            .held
            .try_borrow()
            .ok()
            .and_then(|held| held.iter().map(|(_, release)| *release).min())
            .map(|release| release.saturating_sub(now_ms).max(1));
        let needs = self.needs.get();
        let guard_ms = needs.guarded.then_some(GUARD_TICK.as_millis() as u64);
        let ramp_ms = needs.ramped.then_some(RAMP_TICK.as_millis() as u64);
        [next_release, guard_ms, ramp_ms]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(0)
    }

    /// Sets the timer to wait for the next merge, ramp tick or release.
    pub fn arm(&self, now_ms: u64, host: &impl WorkerHost) {
        let wanted = self.wanted_period_ms(now_ms);
        let current = self.period_ms.get();
        if wanted == current {
            return;
        }
        // A running timer takes a new period only after its current wait: stop it first, so
        // that setting the period arms it afresh.
        if current != 0 && wanted != 0 {
            let _ = host.set_tick_period_ms(0);
        }
        if host.set_tick_period_ms(wanted).is_ok() {
            self.period_ms.set(wanted);
        }
    }
}
