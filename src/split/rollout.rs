//! A rollout: one version's share of its route's requests, in millionths of the route, moving
//! through steps from an absolute `start`; the route's other versions split the rest by their
//! weights. A step reaches its share at once or linearly `over` a duration from the share
//! before it (0 before the first step), then holds it: for a duration, until the config
//! changes (a gate), or, the last step, forever.
//!
//! Where the rollout stands is a function of the proxy's clock alone, worked out when a request
//! arrives, so every worker and every sidecar agrees on it without a controller, and a
//! restarted proxy picks the rollout up where it stands. Integer arithmetic only.

use super::round_robin::gcd;

/// A share is counted in millionths of the route: 100% is this.
pub const SHARE_SCALE: u32 = 1_000_000;

/// How long a step holds its share before the next step starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hold {
    /// Milliseconds (0: the next step starts as soon as this one has its share).
    For(u64),
    /// A gate: the rollout stays at this step until a push changes the rollout.
    UntilConfigChange,
}

/// One step of a rollout.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Step {
    /// The rollout version's share once the step has it, in millionths of the route.
    pub share: u32,
    /// How long the share takes to get there from the share before, linearly; 0: at once.
    pub over_ms: u64,
    /// How long the step holds its share; the last step holds it forever, whatever this says.
    pub hold: Hold,
}

/// A rollout of one destination of a route.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rollout {
    /// The rollout version's destination index in its route.
    pub destination: usize,
    /// Milliseconds since the Unix epoch.
    pub start_ms: i64,
    /// At least one (validation guarantees it).
    pub steps: Vec<Step>,
}

/// What a rollout is doing at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Before `start`: the version has 0%.
    NotStarted,
    /// Moving linearly to the step's share.
    Moving,
    /// Holding the step's share until the next step starts.
    Holding,
    /// Holding the step's share until a push changes the rollout.
    Gate,
    /// The last step: its share, for good.
    Finished,
}

/// Where a rollout stands at a time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// The step in force (0 before the start as well).
    pub step: usize,
    pub phase: Phase,
    /// The rollout version's share now, in millionths of the route.
    pub share: u32,
    /// The next step and when it starts (ms since the epoch); `None` at a gate and at the end.
    pub next: Option<(usize, i64)>,
}

/// When a step starts, has its share, and ends (the next one starts); `None`: never ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepTimes {
    pub starts_ms: i64,
    pub reached_ms: i64,
    pub ends_ms: Option<i64>,
}

fn add_ms(at: i64, ms: u64) -> i64 {
    at.saturating_add(i64::try_from(ms).unwrap_or(i64::MAX))
}

impl Rollout {
    /// When each step starts, reaches its share and ends, in step order; the list stops at the
    /// first step that never ends (a gate, or the last).
    pub fn step_times(&self) -> Vec<StepTimes> {
        let mut times = Vec::with_capacity(self.steps.len());
        let mut at = self.start_ms;
        for (index, step) in self.steps.iter().enumerate() {
            let reached = add_ms(at, step.over_ms);
            let last = index + 1 == self.steps.len();
            let ends = match step.hold {
                _ if last => None,
                Hold::UntilConfigChange => None,
                Hold::For(ms) => Some(add_ms(reached, ms)),
            };
            times.push(StepTimes {
                starts_ms: at,
                reached_ms: reached,
                ends_ms: ends,
            });
            match ends {
                Some(ends) => at = ends,
                None => break,
            }
        }
        times
    }

    /// When the share stops moving without a push: the last step reached, or a gate's.
    pub fn settles_ms(&self) -> i64 {
        self.step_times()
            .last()
            .map_or(self.start_ms, |times| times.reached_ms)
    }

    /// Where the rollout stands at `now_ms`.
    pub fn position_at(&self, now_ms: i64) -> Position {
        if now_ms < self.start_ms {
            return Position {
                step: 0,
                phase: Phase::NotStarted,
                share: 0,
                next: Some((0, self.start_ms)),
            };
        }
        let mut before = 0u32;
        let mut at = self.start_ms;
        for (index, step) in self.steps.iter().enumerate() {
            let last = index + 1 == self.steps.len();
            let reached = add_ms(at, step.over_ms);
            let ends = match step.hold {
                _ if last => None,
                Hold::UntilConfigChange => None,
                Hold::For(ms) => Some(add_ms(reached, ms)),
            };
            let next = ends.map(|ends| (index + 1, ends));
            if now_ms < reached {
                // Linear from `before`, rounded towards it.
                let (from, to) = (i128::from(before), i128::from(step.share));
                let done = i128::from(now_ms) - i128::from(at);
                let whole = (i128::from(reached) - i128::from(at)).max(1);
                let share = u32::try_from(from + (to - from) * done / whole).unwrap_or(step.share);
                return Position {
                    step: index,
                    phase: Phase::Moving,
                    share,
                    next,
                };
            }
            match ends {
                Some(ends) if now_ms >= ends => {
                    before = step.share;
                    at = ends;
                }
                _ => {
                    let phase = if last {
                        Phase::Finished
                    } else if ends.is_none() {
                        Phase::Gate
                    } else {
                        Phase::Holding
                    };
                    return Position {
                        step: index,
                        phase,
                        share: step.share,
                        next,
                    };
                }
            }
        }
        // No steps: validation never builds one.
        Position {
            step: 0,
            phase: Phase::Finished,
            share: 0,
            next: None,
        }
    }

    /// The share at a proxy clock reading in nanoseconds since the Unix epoch.
    pub fn share_at_nanos(&self, now_nanos: u64) -> u32 {
        self.position_at(i64::try_from(now_nanos / 1_000_000).unwrap_or(i64::MAX))
            .share
    }
}

/// The weights a route is split by with its rollout version (`rollout`) at `share` millionths
/// of the route: the other versions split the rest by their `weights` (the rollout version's
/// own entry is ignored). Exact where the exact weights fit a `u32` (they always do for
/// weights adding up to at most 4,294 once divided by their common divisor): then the rollout
/// version has exactly `share` and the others keep exactly their ratios, so that a sticky key
/// only ever moves to or from the rollout version. Beyond, the route is split in millionths,
/// the heaviest other version taking the rounding.
///
/// The other versions' weights add up to more than 0 (validation guarantees it); if they do
/// not, the rollout version takes the route.
pub fn split_weights(weights: &[u32], rollout: usize, share: u32) -> Vec<u32> {
    let share = u64::from(share.min(SHARE_SCALE));
    let rest = u64::from(SHARE_SCALE) - share;
    let others = || {
        weights
            .iter()
            .enumerate()
            .filter(move |(index, _)| *index != rollout)
    };
    let divisor = others()
        .fold(0u64, |g, (_, &w)| gcd(g, u64::from(w)))
        .max(1);
    let others_total: u64 = others().map(|(_, &w)| u64::from(w) / divisor).sum();
    if others_total == 0 {
        return weights
            .iter()
            .enumerate()
            .map(|(index, _)| u32::from(index == rollout))
            .collect();
    }
    // The rollout version gets share * W, the others w * (1 - share): exactly share of the
    // route, the rest in the others' ratios. Every product fits: 10^6 * 100 * 10^6 < 2^64.
    let exact: Vec<u64> = weights
        .iter()
        .enumerate()
        .map(|(index, &weight)| {
            if index == rollout {
                share * others_total
            } else {
                u64::from(weight) / divisor * rest
            }
        })
        .collect();
    let common = exact.iter().fold(0, |g, &w| gcd(g, w)).max(1);
    let reduced: Option<Vec<u32>> = exact
        .iter()
        .map(|&weight| u32::try_from(weight / common).ok())
        .collect();
    if let Some(reduced) = reduced {
        return reduced;
    }
    let mut parts: Vec<u64> = weights
        .iter()
        .enumerate()
        .map(|(index, &weight)| {
            if index == rollout {
                share
            } else {
                u64::from(weight) / divisor * rest / others_total
            }
        })
        .collect();
    let given: u64 = parts.iter().sum();
    let heaviest = others()
        .max_by_key(|(index, &weight)| (weight, std::cmp::Reverse(*index)))
        .map(|(index, _)| index);
    if let Some(part) = heaviest.and_then(|index| parts.get_mut(index)) {
        *part += u64::from(SHARE_SCALE).saturating_sub(given);
    }
    parts
        .into_iter()
        .map(|part| u32::try_from(part).unwrap_or(u32::MAX))
        .collect()
}

/// A share in percent with up to four decimals, without float formatting (which would bring
/// the float printing code into the module): 125_000 is `12.5`.
pub fn format_percent(share: u32) -> String {
    let (whole, fraction) = (share / 10_000, share % 10_000);
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:04}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const MINUTE: i64 = 60_000;
    const START: i64 = 1_796_119_200_000;
    const PERCENT: u32 = 10_000;

    /// The issue's example: 1% for 10m, 10% for 10m, 50% over 20m then a gate, 100%.
    fn issue_example() -> Rollout {
        let step = |percent: u32, over: i64, hold: Hold| Step {
            share: percent * PERCENT,
            over_ms: over as u64,
            hold,
        };
        Rollout {
            destination: 1,
            start_ms: START,
            steps: vec![
                step(1, 0, Hold::For(10 * MINUTE as u64)),
                step(10, 0, Hold::For(10 * MINUTE as u64)),
                step(50, 20 * MINUTE, Hold::UntilConfigChange),
                step(100, 0, Hold::For(0)),
            ],
        }
    }

    fn share_at(rollout: &Rollout, at: i64) -> u32 {
        rollout.position_at(at).share
    }

    #[test]
    fn before_the_start_the_version_has_nothing() {
        let rollout = issue_example();
        for at in [i64::MIN, 0, START - 1] {
            let position = rollout.position_at(at);
            assert_eq!(position.share, 0);
            assert_eq!(position.phase, Phase::NotStarted);
            assert_eq!(position.next, Some((0, START)));
        }
        assert_eq!(share_at(&rollout, START), PERCENT);
    }

    #[test]
    fn each_step_holds_its_share_then_the_next_starts() {
        let rollout = issue_example();
        let at = |minutes: i64| rollout.position_at(START + minutes * MINUTE);
        assert_eq!(
            at(0),
            Position {
                step: 0,
                phase: Phase::Holding,
                share: PERCENT,
                next: Some((1, START + 10 * MINUTE))
            }
        );
        assert_eq!(share_at(&rollout, START + 10 * MINUTE - 1), PERCENT);
        assert_eq!(
            at(10),
            Position {
                step: 1,
                phase: Phase::Holding,
                share: 10 * PERCENT,
                next: Some((2, START + 20 * MINUTE))
            }
        );
        assert_eq!(at(19).share, 10 * PERCENT);
    }

    #[test]
    fn a_linear_step_moves_from_the_share_before_it() {
        let rollout = issue_example();
        let at = |minutes: i64| rollout.position_at(START + minutes * MINUTE);
        assert_eq!(
            at(20).share,
            10 * PERCENT,
            "the segment starts where step 1 held"
        );
        assert_eq!(at(20).phase, Phase::Moving);
        assert_eq!(
            at(30).share,
            30 * PERCENT,
            "half way: half the way from 10 to 50"
        );
        assert_eq!(at(35).share, 40 * PERCENT);
        assert_eq!(share_at(&rollout, START + 40 * MINUTE - 1), 499_999);
        assert_eq!(at(40).share, 50 * PERCENT);
        // Down: rounded towards the share before, never below the target.
        let down = Rollout {
            steps: vec![
                Step {
                    share: 3,
                    over_ms: 0,
                    hold: Hold::For(0),
                },
                Step {
                    share: 0,
                    over_ms: 2,
                    hold: Hold::For(0),
                },
            ],
            ..issue_example()
        };
        assert_eq!([0, 1, 2].map(|ms| share_at(&down, START + ms)), [3, 2, 0]);
    }

    #[test]
    fn a_gate_holds_past_any_time() {
        let rollout = issue_example();
        for at in [START + 40 * MINUTE, START + 1_000 * MINUTE, i64::MAX] {
            let position = rollout.position_at(at);
            assert_eq!(position.phase, Phase::Gate);
            assert_eq!(
                (position.step, position.share, position.next),
                (2, 500_000, None)
            );
        }
    }

    #[test]
    fn the_last_step_holds_forever() {
        let mut rollout = issue_example();
        rollout.steps[2].hold = Hold::For(5 * MINUTE as u64);
        let position = rollout.position_at(START + 45 * MINUTE);
        assert_eq!(
            position,
            Position {
                step: 3,
                phase: Phase::Finished,
                share: SHARE_SCALE,
                next: None
            }
        );
        assert_eq!(share_at(&rollout, i64::MAX), SHARE_SCALE);
        assert_eq!(rollout.share_at_nanos(u64::MAX), SHARE_SCALE);
        assert_eq!(rollout.share_at_nanos(0), 0);
    }

    #[test]
    fn a_rollout_settles_at_its_gate_or_its_last_step() {
        assert_eq!(
            issue_example().settles_ms(),
            START + 40 * MINUTE,
            "the gate's share"
        );
        let mut open = issue_example();
        open.steps[2].hold = Hold::For(MINUTE as u64);
        assert_eq!(open.settles_ms(), START + 41 * MINUTE, "the last step");
    }

    #[test]
    fn step_times_stop_at_the_gate() {
        let times = issue_example().step_times();
        assert_eq!(
            times,
            [
                StepTimes {
                    starts_ms: START,
                    reached_ms: START,
                    ends_ms: Some(START + 10 * MINUTE)
                },
                StepTimes {
                    starts_ms: START + 10 * MINUTE,
                    reached_ms: START + 10 * MINUTE,
                    ends_ms: Some(START + 20 * MINUTE)
                },
                StepTimes {
                    starts_ms: START + 20 * MINUTE,
                    reached_ms: START + 40 * MINUTE,
                    ends_ms: None
                },
            ]
        );
    }

    #[test]
    fn the_rollout_version_gets_exactly_its_share_and_the_others_the_rest_by_weight() {
        // 25% beside one version: 1 : 3.
        assert_eq!(split_weights(&[100, 0], 1, 25 * PERCENT), [3, 1]);
        // 20% beside 3 : 1: 20 / 60 / 20.
        assert_eq!(split_weights(&[3, 0, 1], 1, 20 * PERCENT), [3, 1, 1]);
        assert_eq!(split_weights(&[3, 0, 1], 1, 0), [3, 0, 1]);
        assert_eq!(split_weights(&[3, 0, 1], 1, SHARE_SCALE), [0, 1, 0]);
        // A millionth.
        assert_eq!(split_weights(&[7, 0], 1, 1), [999_999, 1]);
        // The others' ratio kept exactly: 1 : 2 at 1/3.
        let weights = split_weights(&[1, 2, 0], 2, 333_333);
        assert_eq!(weights[1], 2 * weights[0]);
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        assert_eq!(u64::from(weights[2]) * 1_000_000, 333_333 * total);
    }

    #[test]
    fn weights_too_large_for_the_exact_split_are_split_in_millionths() {
        let weights = split_weights(&[999_999, 1_000_000, 0], 2, 123_457);
        assert_eq!(weights[2], 123_457);
        assert_eq!(
            weights.iter().map(|&w| u64::from(w)).sum::<u64>(),
            1_000_000
        );
        assert!(weights[0].abs_diff(weights[1]) <= 1, "{weights:?}");
        // Nothing else has weight: the rollout version has the route.
        assert_eq!(split_weights(&[0, 0], 1, 0), [0, 1]);
    }

    #[test]
    fn shares_are_printed_in_percent() {
        assert_eq!(format_percent(0), "0");
        assert_eq!(format_percent(SHARE_SCALE), "100");
        assert_eq!(format_percent(125_000), "12.5");
        assert_eq!(format_percent(1), "0.0001");
        assert_eq!(format_percent(333_333), "33.3333");
    }
}
