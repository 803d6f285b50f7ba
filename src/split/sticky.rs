//! Sticky splits: weighted rendezvous hashing. Each version scores the key `-ln(u) / weight`,
//! with `u` a hash of the key seeded by the version's name, and the lowest score wins. A
//! version's weight only scales its own scores, so when it grows no key leaves it, when it
//! shrinks only keys on it move, and a key never moves between two versions whose weights
//! stayed the same (docs/config.md, "Sticky split", has the proof and the measured shares).

use xxhash_rust::xxh64::xxh64;

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
        // A canary rolled out in steps and rolled back, beside two steady versions.
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
}
