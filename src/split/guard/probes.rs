//! The weights a route is split by while some of its versions are out: none for an ejected
//! version, or a small share of probes that shows whether it recovered.

/// The largest `probe_percent`, in hundredths of a percent: probes are a small share.
pub const MAX_PROBE_BASIS_POINTS: u32 = 5_000;

/// The scale of the weights a route is split by while a version is out: parts of a million.
pub const PROBE_SCALE: u64 = 1_000_000;

/// The weights the round robin uses while some versions are out. Without probes, an ejected
/// version gets 0 and the others keep their weights. With probes, the route is split on a
/// scale of its own ([`PROBE_SCALE`] parts): an ejected version gets `min(its share in force,
/// probe share)` of it (at least one part), never more than it had, and the serving versions
/// share the rest by their weights. Rounding the probe weight on the user's scale instead
/// would give a tripped version of `1 : 1` at least a third.
///
/// When no serving version has weight (the one healthy version ramped to 0 beside a tripped
/// one), the ejections are ignored: the guard never takes out the last version with weight.
pub fn effective_weights(weights: &[u32], ejected: &[bool], probe_basis_points: u32) -> Vec<u32> {
    let is_out = |index: usize| ejected.get(index).copied().unwrap_or(false);
    let serving: u64 = weights
        .iter()
        .enumerate()
        .filter(|(index, _)| !is_out(*index))
        .map(|(_, &weight)| u64::from(weight))
        .sum();
    let any_out = weights
        .iter()
        .enumerate()
        .any(|(index, &weight)| is_out(index) && weight > 0);
    if serving == 0 || !any_out {
        return weights.to_vec();
    }
    let basis_points = u64::from(probe_basis_points.min(MAX_PROBE_BASIS_POINTS));
    if basis_points == 0 {
        return weights
            .iter()
            .enumerate()
            .map(|(index, &weight)| if is_out(index) { 0 } else { weight })
            .collect();
    }
    let total: u64 = weights.iter().map(|&weight| u64::from(weight)).sum();
    let probe_parts = basis_points * (PROBE_SCALE / 10_000);
    let probes: Vec<u64> = weights
        .iter()
        .enumerate()
        .map(|(index, &weight)| {
            if !is_out(index) || weight == 0 {
                return 0;
            }
            let share_parts = (u64::from(weight) * PROBE_SCALE + total / 2) / total.max(1);
            share_parts.min(probe_parts).max(1)
        })
        .collect();
    let serving_parts = PROBE_SCALE.saturating_sub(probes.iter().sum()).max(1);
    let mut parts: Vec<u64> = weights
        .iter()
        .zip(&probes)
        .enumerate()
        .map(|(index, (&weight, &probe))| {
            if is_out(index) {
                probe
            } else {
                u64::from(weight) * serving_parts / serving
            }
        })
        .collect();
    // The serving versions' parts add up to theirs exactly: the heaviest takes the rounding.
    let given: u64 = parts
        .iter()
        .enumerate()
        .filter(|(index, _)| !is_out(*index))
        .map(|(_, &part)| part)
        .sum();
    let heaviest = weights
        .iter()
        .enumerate()
        .filter(|(index, _)| !is_out(*index))
        .max_by_key(|(index, &weight)| (weight, std::cmp::Reverse(*index)))
        .map(|(index, _)| index);
    if let Some(part) = heaviest.and_then(|index| parts.get_mut(index)) {
        *part += serving_parts.saturating_sub(given);
    }
    parts
        .into_iter()
        .map(|part| u32::try_from(part).unwrap_or(u32::MAX))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn effective_weights_drop_or_probe_an_ejected_version() {
        assert_eq!(effective_weights(&[70, 30], &[false, true], 0), [70, 0]);
        assert_eq!(effective_weights(&[70, 30], &[false, false], 100), [70, 30]);
        // 1% of the route, on a million parts.
        assert_eq!(
            effective_weights(&[70, 30], &[false, true], 100),
            [990_000, 10_000]
        );
        assert_eq!(
            effective_weights(&[990_000, 10_000], &[false, true], 100),
            [990_000, 10_000]
        );
        assert_eq!(effective_weights(&[0, 30], &[true, false], 100), [0, 30]);
    }

    #[test]
    fn a_probe_is_probe_percent_of_the_route_on_small_weights() {
        // Rounded up on the user's scale, 1 % of 1 : 1 was a third.
        assert_eq!(
            effective_weights(&[1, 1], &[false, true], 100),
            [990_000, 10_000]
        );
    }

    #[test]
    fn a_probe_never_gives_a_version_more_than_its_share_in_force() {
        // 20 % probes of a 10 % canary: it keeps its 10 %.
        assert_eq!(
            effective_weights(&[9, 1], &[false, true], 2_000),
            [900_000, 100_000]
        );
        // Two versions out, each capped on its own; the serving ones share the rest.
        assert_eq!(
            effective_weights(&[2, 1, 1], &[false, true, true], 100),
            [980_000, 10_000, 10_000]
        );
        // A share below one part still probes.
        assert_eq!(
            effective_weights(&[4_000_000_000, 1], &[false, true], 100),
            [999_999, 1]
        );
    }

    #[test]
    fn with_no_serving_weight_the_ejections_are_ignored() {
        // The one healthy version ramped to 0 beside a tripped one.
        assert_eq!(effective_weights(&[0, 30], &[false, true], 0), [0, 30]);
        assert_eq!(effective_weights(&[0, 30], &[false, true], 100), [0, 30]);
    }
}
