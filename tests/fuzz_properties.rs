//! The fuzz targets' property-test equivalents: the same inputs (random bytes read by the
//! same `Arbitrary` models) and the same checks, for machines without a nightly toolchain.
//! The inputs and checks are the crate traffic-split-fuzz-checks (tests/fuzz-checks),
//! shared with the fuzz targets. Host only: the
//! randomness needs an OS.
#![cfg(not(target_arch = "wasm32"))]

use arbitrary::{Arbitrary, Unstructured};
use proptest::collection::vec;
use proptest::prelude::*;
use std::time::{Duration, Instant};
use traffic_split_fuzz_checks::*;

/// Far above what a case takes in a debug build (a few milliseconds): a case that takes
/// this long has found unbounded work.
const TIME_LIMIT: Duration = Duration::from_secs(2);

fn within_time_limit(check: impl FnOnce()) {
    let started = Instant::now();
    check();
    let elapsed = started.elapsed();
    assert!(elapsed < TIME_LIMIT, "took {elapsed:?}");
}

fn decode<T: for<'a> Arbitrary<'a>>(bytes: &[u8]) -> Option<T> {
    T::arbitrary(&mut Unstructured::new(bytes)).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn hostile_requests_never_let_a_client_choose(bytes in vec(any::<u8>(), 0..4096)) {
        if let Some(case) = decode::<HostileStreams>(&bytes) {
            within_time_limit(|| check_streams(&case));
        }
    }

    #[test]
    fn any_header_map_bytes_read_safely(bytes in vec(any::<u8>(), 0..2048)) {
        within_time_limit(|| check_header_map(&bytes));
    }

    #[test]
    fn any_config_bytes_compile_or_are_refused(bytes in vec(any::<u8>(), 0..2048)) {
        within_time_limit(|| check_config_text(&bytes));
    }

    #[test]
    fn any_config_tree_compiles_or_is_refused(bytes in vec(any::<u8>(), 0..4096)) {
        if let Some(tree) = decode::<JsonTree>(&bytes) {
            within_time_limit(|| check_config_tree(&tree));
        }
    }

    /// Sample configs with a few bytes inserted, replaced or removed: mostly near-valid
    /// JSON, which random bytes rarely are.
    #[test]
    fn edited_configs_compile_or_are_refused(
        sample in 0..SAMPLE_CONFIGS.len(),
        edits in vec((any::<usize>(), any::<u8>(), 0u8..3), 1..8),
    ) {
        let mut bytes = SAMPLE_CONFIGS[sample].as_bytes().to_vec();
        for (position, byte, edit) in edits {
            let at = position % (bytes.len() + 1);
            match edit {
                0 => bytes.insert(at, byte),
                1 if at < bytes.len() => bytes[at] = byte,
                _ if at < bytes.len() => { bytes.remove(at); }
                _ => {}
            }
        }
        within_time_limit(|| check_config_text(&bytes));
    }
}

#[test]
fn the_sample_configs_compile_into_sound_plans_or_pass_through() {
    for index in 0..SAMPLE_CONFIGS.len() {
        let plan = sample_plan(index as u8);
        if !plan.pass_through {
            check_plan(&plan);
        }
    }
}
