//! The smooth weighted round robin (the one nginx uses), not a random draw: within one Envoy
//! worker, any window of `total weight` consecutive picks of a route holds exactly each
//! destination's weight, and the picks are spread out (7/3 gives `v1 v2 v1 v1 v1 v2 v1 v1 v2 v1`,
//! not seven v1 then three v2). Operators check a canary by counting, and a count that is exactly
//! what the config says leaves nothing to explain.

/// A weighted round robin over a route's destinations, and the weights it splits by (a rollout
/// changes them). It changes with every pick, so it lives in the route's state
/// (`crate::state::RouteState`), one per Envoy worker, never in the plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WeightedRoundRobin {
    /// As configured, or as a rollout has them now.
    weights: Vec<u32>,
    /// `weights` divided by their greatest common divisor, so 70/30 cycles every 10 picks.
    reduced: Vec<i64>,
    total: i64,
    current: Vec<i64>,
}

impl WeightedRoundRobin {
    /// `weights` must hold at least one non-zero weight (validation guarantees it); with only
    /// zeros every pick returns the first destination.
    pub fn new(weights: &[u32]) -> Self {
        let mut round_robin = Self {
            weights: weights.to_vec(),
            reduced: vec![0; weights.len()],
            total: 0,
            current: vec![0; weights.len()],
        };
        round_robin.restart();
        round_robin
    }

    /// Derives the cycle from the weights and starts it afresh.
    fn restart(&mut self) {
        let (reduced, total) = reduce(&self.weights);
        self.reduced = reduced;
        self.total = total;
        self.current.iter_mut().for_each(|current| *current = 0);
    }

    /// The current weight of a destination (0 for an index out of range).
    pub fn weight(&self, index: usize) -> u32 {
        self.weights.get(index).copied().unwrap_or(0)
    }

    /// The current weights, in the order of the route's destinations.
    pub fn weights(&self) -> &[u32] {
        &self.weights
    }

    /// Changes one destination's weight (a rollout's step), keeping every destination's credit
    /// (see [`WeightedRoundRobin::set_weights`]). Whether the weight changed.
    pub fn set_weight(&mut self, index: usize, weight: u32) -> bool {
        let mut weights = self.weights.clone();
        match weights.get_mut(index) {
            Some(current) if *current != weight => {
                *current = weight;
                self.set_weights(&weights)
            }
            _ => false,
        }
    }

    /// Changes the weights (a rollout's step, a trip, a return) without restarting the cycle:
    /// each destination keeps its credit, rescaled to the new total, so a deficit a
    /// destination has built up is paid even when every pick sees new weights. A restart
    /// would re-enter the cycle at its heaviest destination each time, and a rollout that moves
    /// more often than a worker sees `1 / share` requests would never reach the canary. A
    /// destination whose weight goes to 0 leaves its credit to the others; one that comes
    /// back starts at 0. Whether the weights changed (`weights` of another length: no).
    pub fn set_weights(&mut self, weights: &[u32]) -> bool {
        if weights.len() != self.weights.len() || weights == self.weights.as_slice() {
            return false;
        }
        let (reduced, total) = reduce(weights);
        let old_total = i128::from(self.total.max(1));
        let mut credits: Vec<i64> = self
            .current
            .iter()
            .zip(&reduced)
            .map(|(&credit, &weight)| {
                if weight == 0 {
                    return 0;
                }
                let scaled = i128::from(credit) * i128::from(total) / old_total;
                i64::try_from(scaled).unwrap_or(0)
            })
            .collect();
        // The credits sum to 0 again: the heaviest destination takes the rounding and what
        // the destinations gone to 0 left.
        let residual: i64 = credits.iter().sum();
        let heaviest = reduced
            .iter()
            .enumerate()
            .max_by_key(|(index, &weight)| (weight, std::cmp::Reverse(*index)))
            .map(|(index, _)| index);
        if let Some(credit) = heaviest.and_then(|index| credits.get_mut(index)) {
            *credit -= residual;
        }
        if total == 0 {
            credits.iter_mut().for_each(|credit| *credit = 0);
        }
        self.weights = weights.to_vec();
        self.reduced = reduced;
        self.total = total;
        self.current = credits;
        true
    }

    /// The length of one full cycle: the reduced total weight.
    pub fn cycle_len(&self) -> u64 {
        self.total as u64
    }

    /// Returns the index of the next destination.
    pub fn pick(&mut self) -> usize {
        let mut best: Option<(usize, i64)> = None;
        for (index, (&weight, current)) in self.reduced.iter().zip(&mut self.current).enumerate() {
            if weight == 0 {
                continue;
            }
            *current += weight;
            if best.is_none_or(|(_, top)| *current > top) {
                best = Some((index, *current));
            }
        }
        match best {
            Some((index, _)) => {
                if let Some(chosen) = self.current.get_mut(index) {
                    *chosen -= self.total;
                }
                index
            }
            None => 0,
        }
    }
}

/// The weights divided by their greatest common divisor, and their sum.
fn reduce(weights: &[u32]) -> (Vec<i64>, i64) {
    let divisor = weights
        .iter()
        .fold(0u64, |g, &w| gcd(g, u64::from(w)))
        .max(1);
    let reduced: Vec<i64> = weights
        .iter()
        .map(|&weight| (u64::from(weight) / divisor) as i64)
        .collect();
    let total = reduced.iter().sum();
    (reduced, total)
}

/// The greatest common divisor (0 only for 0 and 0).
pub(crate) fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn counts(weights: &[u32], picks: usize) -> Vec<u64> {
        let mut rr = WeightedRoundRobin::new(weights);
        let mut counts = vec![0; weights.len()];
        for _ in 0..picks {
            counts[rr.pick()] += 1;
        }
        counts
    }

    /// Every window of `total` consecutive picks, aligned or not, holds exactly the weights.
    fn assert_every_window_exact(weights: &[u32]) {
        let total: u32 = weights.iter().sum();
        let mut rr = WeightedRoundRobin::new(weights);
        let sequence: Vec<usize> = (0..total as usize * 5).map(|_| rr.pick()).collect();
        for window in sequence.windows(total as usize) {
            for (index, &weight) in weights.iter().enumerate() {
                let seen = window.iter().filter(|&&p| p == index).count() as u32;
                assert_eq!(seen, weight, "weights {weights:?}, window {window:?}");
            }
        }
    }

    #[test]
    fn seventy_thirty_is_exact_over_every_window() {
        assert_every_window_exact(&[70, 30]);
        assert_eq!(counts(&[70, 30], 1000), vec![700, 300]);
    }

    #[test]
    fn proportional_weights_give_the_same_split() {
        let mut a = WeightedRoundRobin::new(&[70, 30]);
        let mut b = WeightedRoundRobin::new(&[7, 3]);
        assert_eq!(a.cycle_len(), 10);
        for _ in 0..100 {
            assert_eq!(a.pick(), b.pick());
        }
    }

    #[test]
    fn picks_are_interleaved_not_batched() {
        let mut rr = WeightedRoundRobin::new(&[7, 3]);
        let cycle: Vec<usize> = (0..10).map(|_| rr.pick()).collect();
        assert_eq!(cycle, vec![0, 1, 0, 0, 0, 1, 0, 0, 1, 0]);
    }

    #[test]
    fn zero_weight_destination_is_never_picked() {
        assert_eq!(counts(&[0, 5], 100), vec![0, 100]);
        assert_eq!(counts(&[3, 0, 1], 400), vec![300, 0, 100]);
        assert_every_window_exact(&[3, 0, 1]);
    }

    #[test]
    fn single_destination_takes_everything() {
        assert_eq!(counts(&[1], 50), vec![50]);
        assert_eq!(counts(&[100], 50), vec![50]);
    }

    #[test]
    fn three_destinations_split_exactly() {
        assert_every_window_exact(&[50, 30, 20]);
        assert_every_window_exact(&[1, 1, 1]);
        assert_every_window_exact(&[97, 2, 1]);
        assert_eq!(counts(&[50, 30, 20], 10_000), vec![5000, 3000, 2000]);
    }

    #[test]
    fn many_requests_keep_the_ratio_for_odd_weights() {
        assert_eq!(counts(&[13, 7, 1], 21 * 1000), vec![13_000, 7000, 1000]);
        assert_every_window_exact(&[13, 7, 1]);
    }

    #[test]
    fn all_zero_weights_do_not_panic() {
        assert_eq!(counts(&[0, 0], 3), vec![3, 0]);
    }

    #[test]
    fn one_in_ten_thousand_is_exactly_one_in_ten_thousand() {
        // The 1 : 999,999 a Gateway API weight allows, at a scale a test can run.
        assert_eq!(counts(&[1, 9_999], 10_000), vec![1, 9_999]);
        assert_eq!(counts(&[1, 999_999], 1_000_000), vec![1, 999_999]);
    }

    #[test]
    fn a_changed_weight_keeps_the_exact_split_from_there_on() {
        let mut rr = WeightedRoundRobin::new(&[70, 30]);
        for _ in 0..3 {
            rr.pick();
        }
        assert!(rr.set_weight(1, 70));
        assert!(!rr.set_weight(1, 70), "unchanged");
        assert!(!rr.set_weight(7, 1), "no such destination");
        assert_eq!(rr.weights(), [70, 70]);
        assert_eq!(rr.cycle_len(), 2);
        let picks: Vec<usize> = (0..10).map(|_| rr.pick()).collect();
        assert_eq!(picks.iter().filter(|&&p| p == 1).count(), 5);
        assert!(rr.set_weight(0, 0));
        assert!((0..10).all(|_| rr.pick() == 1));
        assert!(rr.set_weight(0, 70));
        let picks: Vec<usize> = (0..10).map(|_| rr.pick()).collect();
        assert_eq!(picks.iter().filter(|&&p| p == 0).count(), 5, "{picks:?}");
    }

    #[test]
    fn a_weight_change_on_every_pick_still_gives_each_its_share() {
        // 1,000,000 against a canary a third of the way, moving a little on every pick: a
        // restart would pick the heaviest version every time.
        let mut rr = WeightedRoundRobin::new(&[1_000_000, 500_000]);
        let mut due = 0.0;
        let mut picked = 0u32;
        for step in 0..300u32 {
            let ramped = 500_000 + step * 3;
            rr.set_weight(1, ramped);
            due += f64::from(ramped) / f64::from(1_000_000 + ramped);
            if rr.pick() == 1 {
                picked += 1;
            }
            assert!(
                (f64::from(picked) - due).abs() < 2.0,
                "after {step} picks: {picked} picked, {due} due"
            );
        }
        assert!(picked >= 99, "{picked}");
    }

    #[test]
    fn a_trip_and_a_return_keep_the_credits_summing_to_zero() {
        let mut rr = WeightedRoundRobin::new(&[990_000, 10_000]);
        for weights in [[99, 1], [1, 1], [3, 0], [0, 0], [7, 3], [u32::MAX, 1]] {
            for _ in 0..7 {
                rr.pick();
            }
            rr.set_weights(&weights);
            assert_eq!(rr.current.iter().sum::<i64>(), 0, "{weights:?}");
        }
    }

    #[test]
    fn huge_weights_do_not_overflow() {
        let mut rr = WeightedRoundRobin::new(&[u32::MAX, u32::MAX - 1, 1]);
        for _ in 0..1000 {
            assert!(rr.pick() < 3);
        }
    }
}
