//! The root context's timer, shared by the guard (a merge every [`GUARD_TICK`]), the delay
//! faults (a held request resumes when its delay is up) and the ramps (their weight gauges move
//! every [`RAMP_TICK`] on a route without requests).
//!
//! proxy-wasm has one timer per root context, whose period Envoy applies from the next firing
//! on: a new, shorter wait must first stop the timer (period 0) and then set the period, which
//! arms it afresh. The timer always waits for the earliest of the guard's next merge, the ramps'
//! next tick and the first held request's release.

use proxy_wasm::hostcalls;
use std::cell::{Cell, RefCell};
use std::time::Duration;

/// How often each worker merges its guard outcomes into the shared state and reads the
/// decisions: the longest a worker's split lags behind a trip (docs/config.md).
pub(super) const GUARD_TICK: Duration = Duration::from_millis(250);

/// How often a configuration with a ramp brings its ramps and weight gauges up to the clock.
/// Requests do not wait for it: each reads the clock itself.
pub(super) const RAMP_TICK: Duration = Duration::from_secs(1);

/// Envoy's wall clock in milliseconds.
pub(super) fn now_ms() -> u64 {
    super::host::proxy_clock_nanos() / 1_000_000
}

/// Requests held by a delay fault, and the timer that releases them.
#[derive(Default)]
pub(super) struct Timer {
    /// Whether any route of the configuration has a guard.
    guarded: Cell<bool>,
    /// Whether any route of the configuration has a ramp.
    ramped: Cell<bool>,
    /// The period the timer was last set to, in ms (0: stopped).
    period_ms: Cell<u64>,
    /// `(stream context id, release time in ms)`.
    held: RefCell<Vec<(u32, u64)>>,
}

impl Timer {
    /// What the configuration needs the timer for, besides held requests.
    pub fn set_periodic(&self, guarded: bool, ramped: bool) {
        self.guarded.set(guarded);
        self.ramped.set(ramped);
        self.arm(now_ms());
    }

    /// Holds a stream until `release_ms`.
    pub fn hold(&self, context_id: u32, release_ms: u64, now_ms: u64) {
        if let Ok(mut held) = self.held.try_borrow_mut() {
            held.push((context_id, release_ms));
        }
        self.arm(now_ms);
    }

    /// Forgets a stream (it ended, or was released).
    pub fn forget(&self, context_id: u32) {
        if let Ok(mut held) = self.held.try_borrow_mut() {
            held.retain(|(id, _)| *id != context_id);
        }
    }

    /// The streams whose delay is up, removed from the held ones.
    pub fn due(&self, now_ms: u64) -> Vec<u32> {
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

    /// Sets the timer to wait for the next merge or release.
    pub fn arm(&self, now_ms: u64) {
        let next_release = self
            .held
            .try_borrow()
            .ok()
            .and_then(|held| held.iter().map(|(_, release)| *release).min())
            .map(|release| release.saturating_sub(now_ms).max(1));
        let guard_ms = self.guarded.get().then_some(GUARD_TICK.as_millis() as u64);
        let ramp_ms = self.ramped.get().then_some(RAMP_TICK.as_millis() as u64);
        // The earliest of what is waited for; 0 (stopped) when nothing is.
        let wanted = [next_release, guard_ms, ramp_ms]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(0);
        let current = self.period_ms.get();
        if wanted == current {
            return;
        }
        // A running timer takes a new period only after its current wait: stop it first, so
        // that setting the period arms it afresh.
        if current != 0 && wanted != 0 {
            let _ = hostcalls::set_tick_period(Duration::ZERO);
        }
        if hostcalls::set_tick_period(Duration::from_millis(wanted)).is_ok() {
            self.period_ms.set(wanted);
        }
    }
}
