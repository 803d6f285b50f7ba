//! Choosing a destination by weight.
//!
//! A smooth weighted round robin (the one nginx uses), not a random draw: within one Envoy
//! worker, any window of `total weight` consecutive picks of a route holds exactly each
//! destination's weight, and the picks are spread out (7/3 gives `v1 v2 v1 v1 v1 v2 v1 v1 v2 v1`,
//! not seven v1 then three v2). Operators check a canary by counting, and a count that is exactly
//! what the config says leaves nothing to explain.

use std::cell::Cell;

/// The per-route weighted round robin. Its state is per Envoy worker (each worker has its own
/// Wasm VM), kept in `Cell`s so that picking needs no `&mut` and can never panic on a borrow.
#[derive(Debug)]
pub struct WeightedRoundRobin {
    /// Weights divided by their greatest common divisor, so 70/30 cycles every 10 picks.
    weights: Vec<i64>,
    total: i64,
    current: Vec<Cell<i64>>,
}

impl WeightedRoundRobin {
    /// `weights` must hold at least one non-zero weight (validation guarantees it); with only
    /// zeros every pick returns the first destination.
    pub fn new(weights: &[u32]) -> Self {
        let divisor = weights
            .iter()
            .fold(0u64, |g, &w| gcd(g, u64::from(w)))
            .max(1);
        let weights: Vec<i64> = weights
            .iter()
            .map(|&w| (u64::from(w) / divisor) as i64)
            .collect();
        let total = weights.iter().sum();
        let current = weights.iter().map(|_| Cell::new(0)).collect();
        Self {
            weights,
            total,
            current,
        }
    }

    /// The length of one full cycle: the reduced total weight.
    pub fn cycle_len(&self) -> u64 {
        self.total as u64
    }

    /// Returns the index of the next destination.
    pub fn pick(&self) -> usize {
        let mut best: Option<(usize, i64)> = None;
        for (index, (weight, current)) in self.weights.iter().zip(&self.current).enumerate() {
            if *weight == 0 {
                continue;
            }
            let raised = current.get() + weight;
            current.set(raised);
            if best.is_none_or(|(_, top)| raised > top) {
                best = Some((index, raised));
            }
        }
        match best {
            Some((index, _)) => {
                if let Some(chosen) = self.current.get(index) {
                    chosen.set(chosen.get() - self.total);
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
        let rr = WeightedRoundRobin::new(weights);
        let mut counts = vec![0; weights.len()];
        for _ in 0..picks {
            counts[rr.pick()] += 1;
        }
        counts
    }

    /// Every window of `total` consecutive picks, aligned or not, holds exactly the weights.
    fn assert_every_window_exact(weights: &[u32]) {
        let total: u32 = weights.iter().sum();
        let rr = WeightedRoundRobin::new(weights);
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
        let a = WeightedRoundRobin::new(&[70, 30]);
        let b = WeightedRoundRobin::new(&[7, 3]);
        assert_eq!(a.cycle_len(), 10);
        for _ in 0..100 {
            assert_eq!(a.pick(), b.pick());
        }
    }

    #[test]
    fn picks_are_interleaved_not_batched() {
        let rr = WeightedRoundRobin::new(&[7, 3]);
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
    fn huge_weights_do_not_overflow() {
        let rr = WeightedRoundRobin::new(&[u32::MAX, u32::MAX - 1, 1]);
        for _ in 0..1000 {
            assert!(rr.pick() < 3);
        }
    }
}
