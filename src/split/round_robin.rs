//! The smooth weighted round robin (the one nginx uses), not a random draw: within one Envoy
//! worker, any window of `total weight` consecutive picks of a route holds exactly each
//! destination's weight, and the picks are spread out (7/3 gives `v1 v2 v1 v1 v1 v2 v1 v1 v2 v1`,
//! not seven v1 then three v2). Operators check a canary by counting, and a count that is exactly
//! what the config says leaves nothing to explain.

/// A weighted round robin over a route's destinations, and the weights it splits by (a ramp
/// changes one). It changes with every pick, so it lives in the route's state
/// (`crate::state::RouteState`), one per Envoy worker, never in the plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WeightedRoundRobin {
    /// As configured, or as a ramp has them now.
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
        let divisor = self
            .weights
            .iter()
            .fold(0u64, |g, &w| gcd(g, u64::from(w)))
            .max(1);
        let mut total = 0;
        for (weight, reduced) in self.weights.iter().zip(&mut self.reduced) {
            *reduced = (u64::from(*weight) / divisor) as i64;
            total += *reduced;
        }
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

    /// Changes one destination's weight (a ramp's step) and restarts the cycle, so that every
    /// window from here on holds the new weights exactly. Whether the weight changed.
    pub fn set_weight(&mut self, index: usize, weight: u32) -> bool {
        match self.weights.get_mut(index) {
            Some(current) if *current != weight => {
                *current = weight;
                self.restart();
                true
            }
            _ => false,
        }
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

fn gcd(a: u64, b: u64) -> u64 {
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
    fn a_changed_weight_restarts_an_exact_cycle() {
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
    }

    #[test]
    fn huge_weights_do_not_overflow() {
        let mut rr = WeightedRoundRobin::new(&[u32::MAX, u32::MAX - 1, 1]);
        for _ in 0..1000 {
            assert!(rr.pick() < 3);
        }
    }
}
