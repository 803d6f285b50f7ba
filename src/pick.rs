//! Choosing a destination: by weight, or by a sticky key.
//!
//! By weight, a smooth weighted round robin (the one nginx uses), not a random draw: within one
//! Envoy worker, any window of `total weight` consecutive picks of a route holds exactly each
//! destination's weight, and the picks are spread out (7/3 gives `v1 v2 v1 v1 v1 v2 v1 v1 v2 v1`,
//! not seven v1 then three v2). Operators check a canary by counting, and a count that is exactly
//! what the config says leaves nothing to explain.
//!
//! By a sticky key ([`pick_sticky`]), weighted rendezvous hashing: each version scores the key
//! `-ln(u) / weight`, with `u` a hash of the key seeded by the version's name, and the lowest
//! score wins. A version's weight only scales its own scores, so when it grows no key leaves it,
//! when it shrinks only keys on it move, and a key never moves between two versions whose
//! weights stayed the same (docs/config.md, "Sticky split", has the proof and the measured
//! shares).

use crate::plan::Route;
use std::cell::Cell;
use xxhash_rust::xxh64::xxh64;

impl Route {
    /// The destination of a sticky key under the weights requests are split by now (a ramp's,
    /// the guard's); `None` only when every weight is 0, which validation never builds.
    pub fn sticky_destination(&self, key: &[u8]) -> Option<usize> {
        self.with_split_in_force(|split| {
            pick_sticky(
                key,
                self.destinations
                    .iter()
                    .map(|destination| destination.sticky_seed)
                    .zip(split.weights()),
            )
        })
    }

    /// The destination whose version is exactly `version` (an override header's value).
    pub fn destination_of_version(&self, version: &[u8]) -> Option<usize> {
        self.destinations
            .iter()
            .position(|destination| destination.version.as_bytes() == version)
    }
}

/// The per-route weighted round robin, and the route's current weights (a ramp changes them).
/// Its state is per Envoy worker (each worker has its own Wasm VM), kept in `Cell`s so that
/// picking needs no `&mut` and can never panic on a borrow.
#[derive(Debug)]
pub struct WeightedRoundRobin {
    /// As configured, or as a ramp has them now.
    weights: Vec<Cell<u32>>,
    /// `weights` divided by their greatest common divisor, so 70/30 cycles every 10 picks.
    reduced: Vec<Cell<i64>>,
    total: Cell<i64>,
    current: Vec<Cell<i64>>,
}

impl WeightedRoundRobin {
    /// `weights` must hold at least one non-zero weight (validation guarantees it); with only
    /// zeros every pick returns the first destination.
    pub fn new(weights: &[u32]) -> Self {
        let round_robin = Self {
            weights: weights.iter().map(|&w| Cell::new(w)).collect(),
            reduced: weights.iter().map(|_| Cell::new(0)).collect(),
            total: Cell::new(0),
            current: weights.iter().map(|_| Cell::new(0)).collect(),
        };
        round_robin.restart();
        round_robin
    }

    /// Derives the cycle from the weights and starts it afresh.
    fn restart(&self) {
        let divisor = self
            .weights
            .iter()
            .fold(0u64, |g, w| gcd(g, u64::from(w.get())))
            .max(1);
        let mut total = 0;
        for (weight, reduced) in self.weights.iter().zip(&self.reduced) {
            reduced.set((u64::from(weight.get()) / divisor) as i64);
            total += reduced.get();
        }
        self.total.set(total);
        for current in &self.current {
            current.set(0);
        }
    }

    /// The current weight of a destination (0 for an index out of range).
    pub fn weight(&self, index: usize) -> u32 {
        self.weights.get(index).map_or(0, Cell::get)
    }

    /// The current weights, in the order of the route's destinations.
    pub fn weights(&self) -> impl Iterator<Item = u32> + '_ {
        self.weights.iter().map(Cell::get)
    }

    /// Changes one destination's weight (a ramp's step) and restarts the cycle, so that every
    /// window from here on holds the new weights exactly. Whether the weight changed.
    pub fn set_weight(&self, index: usize, weight: u32) -> bool {
        match self.weights.get(index) {
            Some(cell) if cell.get() != weight => {
                cell.set(weight);
                self.restart();
                true
            }
            _ => false,
        }
    }

    /// The length of one full cycle: the reduced total weight.
    pub fn cycle_len(&self) -> u64 {
        self.total.get() as u64
    }

    /// Returns the index of the next destination.
    pub fn pick(&self) -> usize {
        let mut best: Option<(usize, i64)> = None;
        for (index, (weight, current)) in self.reduced.iter().zip(&self.current).enumerate() {
            let weight = weight.get();
            if weight == 0 {
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
                    chosen.set(chosen.get() - self.total.get());
                }
                index
            }
            None => 0,
        }
    }
}

/// The hash seed of a version's sticky scores: its name, so that a key's score for a version
/// does not depend on the version's place in the list, on the other versions or on the route.
pub fn version_seed(version: &str) -> u64 {
    xxh64(version.as_bytes(), 0)
}

/// The version a sticky key belongs to: the index of the lowest `-ln(u) / weight` among the
/// `(seed, weight)` candidates, `u` being the key's hash under the candidate's seed mapped into
/// (0, 1). A weight of 0 never wins; `None` when every weight is 0. Ties (which need two 53-bit
/// hashes to agree) go to the first.
pub fn pick_sticky(key: &[u8], candidates: impl IntoIterator<Item = (u64, u32)>) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (index, (seed, weight)) in candidates.into_iter().enumerate() {
        if weight == 0 {
            continue;
        }
        let score = sticky_distance(key, seed) / f64::from(weight);
        if best.is_none_or(|(_, lowest)| score < lowest) {
            best = Some((index, score));
        }
    }
    best.map(|(index, _)| index)
}

/// `-ln(u)` for the key's hash under `seed`: exponentially distributed, in (0, 37.4]. libm's
/// `log` is the same Rust code on wasm32 and on the host, so the result is bit for bit the
/// same everywhere (`f64::ln` would call each platform's C library).
fn sticky_distance(key: &[u8], seed: u64) -> f64 {
    // The top 53 bits, centred in their interval: u is never 0 nor 1.
    let unit = ((xxh64(key, seed) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -libm::log(unit)
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

    /// Bit patterns and picks computed on x86_64 Linux (see `sticky_picks_are_the_same_on_every_target`).
    const DISTANCE_USER_1_V1: u64 = 0x3fea_a706_3377_9822;
    const DISTANCE_USER_1_V2: u64 = 0x3fca_e083_8dfd_914d;
    /// The versions of `user-0` .. `user-63` at 70/25/5.
    const PICKS_OF_64_KEYS: &str =
        "3211121112111121221211112111122111212213131121111111112221121121";
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
    fn one_in_ten_thousand_is_exactly_one_in_ten_thousand() {
        // The 1 : 999,999 a Gateway API weight allows, at a scale a test can run.
        assert_eq!(counts(&[1, 9_999], 10_000), vec![1, 9_999]);
        assert_eq!(counts(&[1, 999_999], 1_000_000), vec![1, 999_999]);
    }

    #[test]
    fn a_changed_weight_restarts_an_exact_cycle() {
        let rr = WeightedRoundRobin::new(&[70, 30]);
        for _ in 0..3 {
            rr.pick();
        }
        assert!(rr.set_weight(1, 70));
        assert!(!rr.set_weight(1, 70), "unchanged");
        assert!(!rr.set_weight(7, 1), "no such destination");
        assert_eq!(rr.weights().collect::<Vec<_>>(), [70, 70]);
        assert_eq!(rr.cycle_len(), 2);
        let picks: Vec<usize> = (0..10).map(|_| rr.pick()).collect();
        assert_eq!(picks.iter().filter(|&&p| p == 1).count(), 5);
        assert!(rr.set_weight(0, 0));
        assert!((0..10).all(|_| rr.pick() == 1));
    }

    fn sticky_version(key: &str, versions: &[(&str, u32)]) -> Option<usize> {
        pick_sticky(
            key.as_bytes(),
            versions
                .iter()
                .map(|(version, weight)| (version_seed(version), *weight)),
        )
    }

    fn keys(count: usize) -> Vec<String> {
        (0..count).map(|index| format!("user-{index}")).collect()
    }

    #[test]
    fn a_key_always_gets_the_same_version() {
        let versions = [("v1", 70), ("v2", 30)];
        for key in keys(1_000) {
            let first = sticky_version(&key, &versions);
            assert!(first.is_some());
            for _ in 0..3 {
                assert_eq!(sticky_version(&key, &versions), first, "{key}");
            }
        }
    }

    #[test]
    fn a_key_belongs_to_a_version_by_name_not_by_place() {
        let ordered = [("v1", 70), ("v2", 30)];
        let swapped = [("v2", 30), ("v1", 70)];
        let with_a_new_version = [("v1", 70), ("v2", 30), ("v3", 0)];
        for key in keys(1_000) {
            let version = sticky_version(&key, &ordered).unwrap();
            assert_eq!(sticky_version(&key, &swapped), Some(1 - version), "{key}");
            assert_eq!(sticky_version(&key, &with_a_new_version), Some(version));
        }
    }

    #[test]
    fn a_version_of_weight_zero_gets_no_key() {
        for key in keys(2_000) {
            assert_eq!(sticky_version(&key, &[("v1", 0), ("v2", 1)]), Some(1));
            assert_ne!(
                sticky_version(&key, &[("v1", 5), ("v2", 0), ("v3", 1)]),
                Some(1)
            );
        }
        assert_eq!(sticky_version("k", &[("v1", 0), ("v2", 0)]), None);
        assert_eq!(sticky_version("k", &[]), None);
    }

    /// Where every key is, under `weights` (seeds of versions v0, v1, ...).
    fn assignment(keys: &[String], weights: &[u32]) -> Vec<usize> {
        let seeds: Vec<u64> = (0..weights.len())
            .map(|index| version_seed(&format!("v{index}")))
            .collect();
        keys.iter()
            .map(|key| {
                pick_sticky(
                    key.as_bytes(),
                    seeds.iter().copied().zip(weights.iter().copied()),
                )
                .unwrap()
            })
            .collect()
    }

    /// The monotone property, for any change of any weights: a key moves from `a` to `b` only
    /// if `a`'s weight fell or `b`'s grew. So when one weight grows keys only join it, when it
    /// falls only its own keys leave, and keys never move between unchanged versions.
    fn assert_monotone(keys: &[String], before: &[u32], after: &[u32]) -> usize {
        let (was, is) = (assignment(keys, before), assignment(keys, after));
        let mut moved = 0;
        for ((key, &from), &to) in keys.iter().zip(&was).zip(&is) {
            if from != to {
                moved += 1;
                assert!(
                    after[from] < before[from] || after[to] > before[to],
                    "{key} moved from v{from} to v{to} when {before:?} became {after:?}"
                );
            }
        }
        moved
    }

    #[test]
    fn raising_a_weight_only_brings_keys_to_it_and_lowering_only_takes_its_own() {
        let keys = keys(20_000);
        // A canary ramped up in steps and rolled back, beside two steady versions.
        let mut steps: Vec<u32> = (0..=20).map(|step| step * 5).collect();
        steps.extend((0..20).rev().map(|step| step * 5));
        for pair in steps.windows(2) {
            let before = [100, pair[0], 20];
            let after = [100, pair[1], 20];
            let (was, is) = (assignment(&keys, &before), assignment(&keys, &after));
            for (&from, &to) in was.iter().zip(&is) {
                if from != to && pair[1] > pair[0] {
                    assert_eq!(
                        to, 1,
                        "a key left another version for one that did not grow"
                    );
                }
                if from != to && pair[1] < pair[0] {
                    assert_eq!(from, 1, "a key left a version that did not shrink");
                }
            }
            assert_monotone(&keys, &before, &after);
        }
    }

    #[test]
    fn keys_move_only_as_weights_change_under_random_changes() {
        let keys = keys(5_000);
        // A fixed pseudo-random walk over four versions' weights (an LCG: the same every run).
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |bound: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % bound
        };
        let mut weights = vec![50u32, 30, 20, 0];
        let mut moved = 0;
        for _ in 0..60 {
            let mut after = weights.clone();
            // One, two or all weights change at once, some to 0, some up to a million.
            for _ in 0..=next(3) {
                let index = next(4) as usize;
                after[index] = match next(4) {
                    0 => 0,
                    1 => next(1_000_001) as u32,
                    _ => next(200) as u32,
                };
            }
            if after.iter().all(|&w| w == 0) {
                continue;
            }
            moved += assert_monotone(&keys, &weights, &after);
            weights = after;
        }
        assert!(moved > 1_000, "the walk moved keys: {moved}");
    }

    /// The largest gap between a version's share of `keys` sticky keys and its share of the
    /// weight, in percentage points.
    fn worst_share_gap(keys: &[String], weights: &[u32]) -> f64 {
        let total: u32 = weights.iter().sum();
        let mut seen = vec![0usize; weights.len()];
        for index in assignment(keys, weights) {
            seen[index] += 1;
        }
        seen.iter()
            .zip(weights)
            .map(|(&count, &weight)| {
                (count as f64 / keys.len() as f64 - f64::from(weight) / f64::from(total)).abs()
                    * 100.0
            })
            .fold(0.0, f64::max)
    }

    const SHARE_CASES: [&[u32]; 6] = [
        &[50, 50],
        &[70, 30],
        &[90, 10],
        &[99, 1],
        &[50, 30, 20],
        &[80, 15, 5],
    ];

    #[test]
    fn sticky_shares_follow_the_weights() {
        // A binomial share of n keys has a standard deviation of at most 50/sqrt(n) points:
        // 0.5 at 10,000 keys. Four of those is a bound a fair hash stays within.
        let keys = keys(10_000);
        for weights in SHARE_CASES {
            let gap = worst_share_gap(&keys, weights);
            assert!(gap < 2.0, "{weights:?}: {gap:.2} points");
        }
    }

    /// The figures in docs/config.md ("How close the shares come"):
    /// `cargo test --lib sticky_share_figures -- --ignored --nocapture`.
    #[test]
    #[ignore = "prints figures for the docs"]
    fn sticky_share_figures() {
        for count in [10_000, 100_000, 1_000_000] {
            let keys = keys(count);
            for weights in SHARE_CASES {
                println!(
                    "{count} keys, weights {weights:?}: worst gap {:.3} points",
                    worst_share_gap(&keys, weights)
                );
            }
        }
    }

    #[test]
    fn sticky_picks_are_the_same_on_every_target() {
        // Computed on x86_64 Linux; `make wasm-test` runs this on wasm32. The xxh64 values
        // are the algorithm's published test vectors.
        assert_eq!(xxh64(b"", 0), 0xef46_db37_51d8_e999);
        assert_eq!(xxh64(b"a", 0), 0xd24e_c4f1_a98c_6e5b);
        assert_eq!(
            sticky_distance(b"user-1", version_seed("v1")).to_bits(),
            DISTANCE_USER_1_V1
        );
        assert_eq!(
            sticky_distance(b"user-1", version_seed("v2")).to_bits(),
            DISTANCE_USER_1_V2
        );
        let picks: String = keys(64)
            .iter()
            .map(
                |key| match sticky_version(key, &[("v1", 70), ("v2", 25), ("v3", 5)]) {
                    Some(0) => '1',
                    Some(1) => '2',
                    Some(2) => '3',
                    _ => '?',
                },
            )
            .collect();
        assert_eq!(picks, PICKS_OF_64_KEYS);
    }

    #[test]
    fn huge_weights_do_not_overflow() {
        let rr = WeightedRoundRobin::new(&[u32::MAX, u32::MAX - 1, 1]);
        for _ in 0..1000 {
            assert!(rr.pick() < 3);
        }
    }
}
