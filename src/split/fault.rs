//! Faults for drills: abort a share of a version's requests with a local reply, or hold a
//! share for a fixed delay before they go on.
//!
//! The share is drawn like the split, not at random: a [`ExactDraw`] of `p` hundredths of a
//! percent fires exactly `p` times in every 10,000 consecutive requests of its version (per
//! Envoy worker), spread out evenly, so a drill's count is what the config says.

/// The draws of one fault are counted over this many requests.
pub const DRAW_PERIOD: u32 = 10_000;

/// A fault of a route (or of one of its versions).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Fault {
    pub abort: Option<Abort>,
    pub delay: Option<Delay>,
}

/// Answers the request at once with `status`, a short body and `x-traffic-split-fault: abort`.
#[derive(Clone, Debug, PartialEq)]
pub struct Abort {
    pub status: u16,
    /// Hundredths of a percent of the version's requests.
    pub basis_points: u32,
}

/// Holds the request for `delay_ms` before it goes on to its version (its deadline starts
/// when it does).
#[derive(Clone, Debug, PartialEq)]
pub struct Delay {
    pub delay_ms: u64,
    /// Hundredths of a percent of the version's requests.
    pub basis_points: u32,
}

/// What a fault does to one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultAction {
    Abort { status: u16 },
    Delay { delay_ms: u64 },
}

// The kinds of fault are a metric label: declared with the metrics, which come before split.
pub use crate::metrics::FaultKind;

impl FaultAction {
    pub fn kind(self) -> FaultKind {
        match self {
            FaultAction::Abort { .. } => FaultKind::Abort,
            FaultAction::Delay { .. } => FaultKind::Delay,
        }
    }
}

/// Fires `basis_points` times in every [`DRAW_PERIOD`] calls: call `n` fires when
/// `floor((n + 1) * p / 10000)` passes `floor(n * p / 10000)`. The count of calls is the
/// caller's ([`FaultDraws`], in the route's state), so the draw itself never changes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExactDraw {
    basis_points: u32,
}

impl ExactDraw {
    pub fn new(basis_points: u32) -> Self {
        ExactDraw {
            basis_points: basis_points.min(DRAW_PERIOD),
        }
    }

    /// Whether call number `calls` fires; advances `calls`.
    pub fn draw(&self, calls: &mut u32) -> bool {
        if self.basis_points == 0 {
            return false;
        }
        let call = *calls;
        *calls = (call + 1) % DRAW_PERIOD;
        let fired = |calls: u32| u64::from(calls) * u64::from(self.basis_points) / 10_000;
        fired(call + 1) > fired(call)
    }
}

/// How many requests each fault of a version has drawn for, in the current period: what
/// changes while serving, kept in the route's state (per Envoy worker).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultDraws {
    abort: u32,
    delay: u32,
}

/// A version's fault with its draws, as the plan holds it.
#[derive(Debug, Default)]
pub struct FaultPlan {
    abort: Option<(u16, ExactDraw)>,
    delay: Option<(u64, ExactDraw)>,
}

impl FaultPlan {
    pub fn new(fault: &Fault) -> Self {
        FaultPlan {
            abort: fault
                .abort
                .as_ref()
                .map(|abort| (abort.status, ExactDraw::new(abort.basis_points))),
            delay: fault
                .delay
                .as_ref()
                .map(|delay| (delay.delay_ms, ExactDraw::new(delay.basis_points))),
        }
    }

    /// Whether this request is aborted, delayed, or neither. Both draws advance on every
    /// request, so each fault's share is exact on its own; a request drawn for both is aborted
    /// at once (a delay before an abort would only hold a connection).
    pub fn draw(&self, draws: &mut FaultDraws) -> Option<FaultAction> {
        let abort = self
            .abort
            .as_ref()
            .filter(|(_, draw)| draw.draw(&mut draws.abort))
            .map(|(status, _)| FaultAction::Abort { status: *status });
        let delay = self
            .delay
            .as_ref()
            .filter(|(_, draw)| draw.draw(&mut draws.delay))
            .map(|(delay_ms, _)| FaultAction::Delay {
                delay_ms: *delay_ms,
            });
        abort.or(delay)
    }

    /// Which kinds this version can inject (for defining its metrics).
    pub fn kinds(&self) -> Vec<FaultKind> {
        let mut kinds = Vec::new();
        if self.abort.is_some() {
            kinds.push(FaultKind::Abort);
        }
        if self.delay.is_some() {
            kinds.push(FaultKind::Delay);
        }
        kinds
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn fired(basis_points: u32, calls: u32) -> u32 {
        let draw = ExactDraw::new(basis_points);
        let mut drawn = 0;
        (0..calls).filter(|_| draw.draw(&mut drawn)).count() as u32
    }

    #[test]
    fn a_share_is_exact_over_every_period() {
        for basis_points in [0, 1, 3, 100, 1_000, 1_234, 3_333, 5_000, 9_999, 10_000] {
            let draw = ExactDraw::new(basis_points);
            let mut drawn = 0;
            for period in 0..3 {
                let fired = (0..DRAW_PERIOD).filter(|_| draw.draw(&mut drawn)).count() as u32;
                assert_eq!(fired, basis_points, "{basis_points} bp, period {period}");
            }
        }
    }

    #[test]
    fn draws_are_spread_out_not_batched() {
        // 10%: one in every 10 consecutive requests, not a run of 1,000.
        let draw = ExactDraw::new(1_000);
        let mut drawn = 0;
        let sequence: Vec<bool> = (0..100).map(|_| draw.draw(&mut drawn)).collect();
        for window in sequence.chunks(10) {
            assert_eq!(window.iter().filter(|&&fired| fired).count(), 1);
        }
        assert_eq!(fired(50, 400), 2, "0.5% of 400");
    }

    #[test]
    fn abort_wins_over_delay_and_both_shares_hold() {
        let plan = FaultPlan::new(&Fault {
            abort: Some(Abort {
                status: 503,
                basis_points: 1_000,
            }),
            delay: Some(Delay {
                delay_ms: 50,
                basis_points: 1_000,
            }),
        });
        let mut draws = FaultDraws::default();
        let actions: Vec<Option<FaultAction>> =
            (0..DRAW_PERIOD).map(|_| plan.draw(&mut draws)).collect();
        let aborts = actions
            .iter()
            .filter(|a| matches!(a, Some(FaultAction::Abort { status: 503 })))
            .count();
        assert_eq!(aborts, 1_000);
        // The delay fires on the same requests as the abort here (same share, same phase):
        // every one of them is aborted instead.
        let delays = actions
            .iter()
            .filter(|a| matches!(a, Some(FaultAction::Delay { delay_ms: 50 })))
            .count();
        assert_eq!(delays, 0);
        assert_eq!(plan.kinds(), [FaultKind::Abort, FaultKind::Delay]);
        assert_eq!(FaultPlan::new(&Fault::default()).draw(&mut draws), None);
    }
}
