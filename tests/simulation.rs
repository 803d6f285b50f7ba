//! The filter over time, simulated on its own core (`traffic_split::sim`): invariants over
//! random configs and timelines (proptest) and seeded runs.

use proptest::prelude::*;
use traffic_split::sim::{run, Behaviour, ClockStep, Run, Scenario};
use traffic_split::split::guard::GuardEvent;

const MINUTE: u64 = 60_000;
/// 2026-12-01T10:00:00Z, the ramps' start below.
const START_MS: u64 = 1_796_119_200_000;

fn two_versions(v1: u32, v2: u32, extra: &str) -> String {
    format!(
        r#"{{ "routes": [ {{ "name": "r", {extra}
            "destinations": [ {{ "version": "v1", "weight": {v1} }},
                              {{ "version": "v2", "weight": {v2} }} ] }} ] }}"#
    )
}

fn failing(version: &str, from_ms: u64, error_ratio: f64) -> Behaviour {
    Behaviour {
        version: version.to_owned(),
        from_ms,
        until_ms: u64::MAX,
        error_ratio,
        reset_ratio: 0.0,
        latency_ms: 0,
    }
}

fn count(run: &Run, version: &str, from_ms: u64, until_ms: u64) -> usize {
    run.requests
        .iter()
        .filter(|r| r.version.as_deref() == Some(version) && (from_ms..until_ms).contains(&r.at_ms))
        .count()
}

fn first_trip(run: &Run, version: &str) -> Option<(u64, u64)> {
    run.guard_events
        .iter()
        .find_map(|record| match record.event {
            GuardEvent::Tripped { until_ms, .. } if record.version == version => {
                Some((record.at_ms, until_ms))
            }
            _ => None,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// Every request routed to a version ends there once: requests = outcomes, per version,
    /// across workers and config pushes.
    #[test]
    fn counts_are_conserved_across_workers_and_pushes(
        seed in any::<u64>(),
        workers in 1usize..5,
        v1 in 0u32..1_000_000,
        v2 in 1u32..1_000_000,
        latency_ms in 0u64..300,
    ) {
        let mut scenario = Scenario::new(two_versions(v1, v2, "").as_bytes());
        scenario.seed = seed;
        scenario.workers = workers;
        scenario.duration_ms = 5_000;
        scenario.traffic.rate_per_s = 200.0;
        scenario.behaviours.push(Behaviour { latency_ms, ..failing("v2", 0, 0.3) });
        scenario.pushes.push(traffic_split::sim::Push {
            at_ms: 2_500,
            config: two_versions(v2, v1.max(1), "").into_bytes(),
        });
        let run = run(&scenario).unwrap();
        prop_assert_eq!(&run.routed, &run.ended);
        prop_assert_eq!(run.routed.values().sum::<u64>(), run.requests.len() as u64);
    }

    /// Under weights that stay put, each worker's split follows them within one request per
    /// version, at every weight scale from 1 to 1,000,000.
    #[test]
    fn shares_follow_static_weights_at_every_scale(
        seed in any::<u64>(),
        workers in 1usize..4,
        scale in 0u32..7,
        v1 in 1u32..10,
        v2 in 0u32..10,
    ) {
        let factor = 10u32.pow(scale).min(100_000);
        let (w1, w2) = (v1 * factor, v2 * factor);
        let mut scenario = Scenario::new(two_versions(w1, w2, "").as_bytes());
        scenario.seed = seed;
        scenario.workers = workers;
        scenario.duration_ms = 2_000;
        scenario.traffic.rate_per_s = 500.0;
        let run = run(&scenario).unwrap();
        for worker in 0..workers {
            let mine: Vec<_> = run.requests.iter().filter(|r| r.worker == worker).collect();
            let to_v2 = mine.iter().filter(|r| r.version.as_deref() == Some("v2")).count() as f64;
            let expected = mine.len() as f64 * f64::from(w2) / f64::from(w1 + w2);
            prop_assert!((to_v2 - expected).abs() <= 1.0, "worker {worker}: {to_v2} to v2, expected {expected}");
        }
    }

    /// Under a ramp, each worker's split follows the weights in force within one request per
    /// version over every stretch of requests that saw the same weights (here a ramp slower
    /// than the traffic; the trickle case is below).
    #[test]
    fn shares_follow_the_weights_in_force_through_a_ramp(
        seed in any::<u64>(),
        workers in 1usize..4,
        v1 in 1u32..1_000_000,
        to in 1u32..1_000_000,
        steps in 1u32..20,
    ) {
        let config = format!(r#"{{ "routes": [ {{ "name": "r",
            "ramp": {{ "version": "v2", "from": 0, "to": {to},
                       "start": "2026-12-01T10:00:00Z", "duration": "2m", "steps": {steps} }},
            "destinations": [ {{ "version": "v1", "weight": {v1} }}, {{ "version": "v2" }} ] }} ] }}"#);
        let mut scenario = Scenario::new(config.as_bytes());
        scenario.seed = seed;
        scenario.workers = workers;
        scenario.duration_ms = 2 * MINUTE + 10_000;
        scenario.traffic.rate_per_s = 100.0;
        scenario.keep_requests = true;
        let run = run(&scenario).unwrap();
        for worker in 0..workers {
            let mine: Vec<_> = run.requests.iter().filter(|r| r.worker == worker).collect();
            for stretch in mine.chunk_by(|a, b| a.weights == b.weights) {
                let weights = &stretch[0].weights;
                let to_v2 = stretch.iter().filter(|r| r.version.as_deref() == Some("v2")).count() as f64;
                let expected = stretch.len() as f64 * f64::from(weights[1]) / f64::from(weights[0] + weights[1]);
                prop_assert!((to_v2 - expected).abs() <= 1.0,
                    "worker {worker}, weights {weights:?}: {to_v2} of {} to v2, expected {expected}", stretch.len());
            }
        }
    }
}

/// A version that always fails is out of the split on every worker within one merge interval
/// of its trip, and stays out (no probes) until its cooldown ends.
#[test]
fn a_tripped_version_is_out_on_every_worker_within_one_merge_interval() {
    let guard = r#""guard": { "max_error_ratio": 0.2, "min_requests": 20, "window": "10s", "cooldown": "30s" },"#;
    for seed in 1..6 {
        let mut scenario = Scenario::new(two_versions(1, 1, guard).as_bytes());
        scenario.seed = seed;
        scenario.workers = 4;
        scenario.duration_ms = 40_000;
        scenario.traffic.rate_per_s = 200.0;
        scenario.conflict_ratio = 0.3;
        scenario.behaviours.push(failing("v2", 5_000, 1.0));
        let run = run(&scenario).unwrap();
        let (tripped_at, until_ms) = first_trip(&run, "v2").expect("v2 trips");
        let out_from = tripped_at + scenario.tick_ms;
        let out_until = until_ms - START_MS - scenario.tick_ms;
        assert_eq!(count(&run, "v2", out_from, out_until), 0, "seed {seed}");
        assert_eq!(&run.routed, &run.ended);
    }
}

/// Merges that land between another worker's read and write are retried: the shared window
/// holds every outcome once, the key's first write included (it is an empty state written at
/// configure, before any outcome: every merge of outcomes is a compare-and-swap).
#[test]
fn no_interleaving_of_merges_loses_or_double_counts_an_outcome() {
    let guard = r#""guard": { "max_error_ratio": 0.9, "min_requests": 1000000, "window": "1h", "cooldown": "30s" },"#;
    let mut scenario = Scenario::new(two_versions(3, 1, guard).as_bytes());
    scenario.seed = 7;
    scenario.workers = 3;
    scenario.duration_ms = 20_000;
    scenario.traffic.rate_per_s = 300.0;
    scenario.conflict_ratio = 1.0;
    let run = run(&scenario).unwrap();
    let windows = &run.shared_windows["r"];
    assert_eq!(u64::from(windows[0].requests), run.ended["v1"]);
    assert_eq!(u64::from(windows[1].requests), run.ended["v2"]);
}

/// The same, where only later writes conflict: the compare-and-swap retries lose nothing.
#[test]
fn conflicting_merges_after_the_first_write_lose_nothing() {
    let guard = r#""guard": { "max_error_ratio": 0.9, "min_requests": 1000000, "window": "1h", "cooldown": "30s" },"#;
    for seed in 1..4 {
        let mut scenario = Scenario::new(two_versions(3, 1, guard).as_bytes());
        scenario.seed = seed;
        scenario.workers = 3;
        scenario.duration_ms = 20_000;
        scenario.traffic.rate_per_s = 300.0;
        // One worker writes the key first, alone; from then on half the merges conflict.
        scenario.conflict_ratio = 0.5;
        scenario.tick_ms = 250;
        let mut calm = scenario.clone();
        calm.conflict_ratio = 0.0;
        let run = run(&scenario).unwrap();
        let windows = &run.shared_windows["r"];
        let merged = u64::from(windows[0].requests + windows[1].requests);
        let ended: u64 = run.ended.values().sum();
        // Every outcome merged once: none lost to a conflict, none counted twice.
        assert_eq!(merged, ended, "seed {seed}");
    }
}

/// A worker whose clock steps back after a trip keeps the ejection: no version comes back
/// before its cooldown ends. (It failed while a stale worker wrote an older bucket after a
/// newer one: the state had 9 buckets, decode refused it and the route's state reset.)
#[test]
fn a_clock_stepping_back_loses_no_ejection() {
    let guard = r#""guard": { "max_error_ratio": 0.2, "min_requests": 20, "window": "8s", "cooldown": "60s" },"#;
    let mut scenario = Scenario::new(two_versions(1, 1, guard).as_bytes());
    scenario.seed = 3;
    scenario.workers = 2;
    scenario.duration_ms = 60_000;
    scenario.traffic.rate_per_s = 200.0;
    scenario.behaviours.push(failing("v2", 5_000, 1.0));
    scenario.behaviours.push(failing("v1", 0, 0.01));
    scenario.clock_steps.push(ClockStep {
        at_ms: 15_000,
        worker: 1,
        offset_ms: -4_000,
    });
    let run = run(&scenario).unwrap();
    let (tripped_at, _) = first_trip(&run, "v2").expect("v2 trips");
    let after = count(&run, "v2", tripped_at + 1_000, 60_000);
    assert_eq!(after, 0, "v2 came back within its cooldown");
}

/// With `probe_percent: 1` on weights 1 : 1, a tripped version gets 1% of the route.
#[test]
fn a_tripped_versions_share_is_at_most_its_probe_percent() {
    let guard = r#""guard": { "max_error_ratio": 0.2, "min_requests": 20, "window": "10s", "cooldown": "2m", "probe_percent": 1 },"#;
    let mut scenario = Scenario::new(two_versions(1, 1, guard).as_bytes());
    scenario.workers = 2;
    scenario.duration_ms = 60_000;
    scenario.traffic.rate_per_s = 200.0;
    scenario.behaviours.push(failing("v2", 0, 1.0));
    let run = run(&scenario).unwrap();
    let (tripped_at, _) = first_trip(&run, "v2").expect("v2 trips");
    let from = tripped_at + scenario.tick_ms;
    let v2 = count(&run, "v2", from, 60_000) as f64;
    let all = (count(&run, "v1", from, 60_000)) as f64 + v2;
    assert!(v2 / all <= 0.01 + 0.002, "{v2} of {all} to the tripped v2");
}

/// Injected aborts are not the version's errors: a drill never trips the guard.
#[test]
fn injected_faults_never_trip_the_guard() {
    let config = r#"{ "routes": [ { "name": "r",
        "guard": { "max_error_ratio": 0.2, "min_requests": 20, "window": "10s", "cooldown": "30s" },
        "destinations": [
          { "version": "a", "weight": 1, "fault": { "abort": { "status": 503, "percent": 40 } } },
          { "version": "b", "weight": 1 } ] } ] }"#;
    let mut scenario = Scenario::new(config.as_bytes());
    scenario.workers = 2;
    scenario.duration_ms = 30_000;
    scenario.traffic.rate_per_s = 200.0;
    let run = run(&scenario).unwrap();
    assert!(run.requests.iter().any(|r| r.fault), "the drill ran");
    assert_eq!(first_trip(&run, "a"), None);
}

/// A linear ramp over fine weights under a trickle (one request per weight change) gives the
/// ramped version its share: 1,000,000 vs 0 -> 1,000,000 over an hour, 30 minutes in.
#[test]
fn a_fine_ramp_under_a_trickle_reaches_the_canary() {
    let ramp = r#""ramp": { "version": "v2", "from": 0, "to": 1000000,
        "start": "2026-12-01T10:00:00Z", "duration": "1h", "steps": 1000000 },"#;
    let config = format!(
        r#"{{ "routes": [ {{ "name": "r", {ramp}
            "destinations": [ {{ "version": "v1", "weight": 1000000 }}, {{ "version": "v2" }} ] }} ] }}"#
    );
    let mut scenario = Scenario::new(config.as_bytes());
    scenario.start_ms = START_MS + 30 * MINUTE;
    scenario.workers = 1;
    scenario.duration_ms = 1_800;
    scenario.traffic.rate_per_s = 1000.0 / 6.0;
    let run = run(&scenario).unwrap();
    let v2 = count(&run, "v2", 0, 1_800);
    let all = run.requests.len();
    let expected = all as f64 / 3.0;
    assert!((v2 as f64 - expected).abs() <= 10.0, "v2 got {v2} of {all}");
}

/// A long seeded run: a ramp with a guard over two simulated hours on four workers, where the
/// canary fails for ten minutes; conservation and the guard's reaction hold throughout, and
/// the trip halts the rollout: the canary is still out at the end, though it recovered and
/// its ramp has ended.
#[test]
fn a_long_seeded_rollout_conserves_counts_and_trips_the_failing_canary() {
    let config = r#"{ "routes": [ { "name": "r",
        "guard": { "max_error_ratio": 0.1, "min_requests": 50, "window": "30s", "cooldown": "5m" },
        "ramp": { "version": "v2", "from": 0, "to": 100, "start": "2026-12-01T10:00:00Z",
                  "duration": "1h", "steps": 10 },
        "destinations": [ { "version": "v1", "weight": 100 }, { "version": "v2" } ] } ] }"#;
    let mut scenario = Scenario::new(config.as_bytes());
    scenario.workers = 4;
    scenario.duration_ms = 120 * MINUTE;
    scenario.traffic.rate_per_s = 20.0;
    scenario.conflict_ratio = 0.1;
    scenario.behaviours.push(Behaviour {
        until_ms: 40 * MINUTE,
        ..failing("v2", 30 * MINUTE, 0.5)
    });
    let run = run(&scenario).unwrap();
    assert_eq!(&run.routed, &run.ended);
    let (tripped_at, _) = first_trip(&run, "v2").expect("the failing canary trips");
    assert!(
        (30 * MINUTE..40 * MINUTE).contains(&tripped_at),
        "{tripped_at}"
    );
    assert_eq!(run.rows.len(), 120, "a row per minute");
    let last = &run.rows[119];
    assert_eq!(
        last.versions.iter().map(|v| v.weight).collect::<Vec<_>>(),
        [100, 0]
    );
    assert_eq!(
        count(&run, "v2", tripped_at + scenario.tick_ms, 120 * MINUTE),
        0
    );
}

/// Sticky keys move only as weighted rendezvous hashing allows: under the same weights in force
/// a key stays on its version; when only v2's weight rises, no key leaves v2, and when it falls
/// (a trip), no key leaves v1. Through a ramp, a trip and a return, on several workers.
#[test]
fn sticky_keys_stay_monotone_through_ramps_trips_and_returns() {
    let config = r#"{ "routes": [ { "name": "r",
        "sticky": { "header": "x-user" },
        "guard": { "max_error_ratio": 0.2, "min_requests": 20, "window": "10s", "cooldown": "1m" },
        "ramp": { "version": "v2", "from": 0, "to": 100, "start": "2026-12-01T10:00:00Z",
                  "duration": "10m", "steps": 20 },
        "destinations": [ { "version": "v1", "weight": 100 }, { "version": "v2" } ] } ] }"#;
    for seed in 1..4 {
        let mut scenario = Scenario::new(config.as_bytes());
        scenario.seed = seed;
        scenario.workers = 3;
        scenario.duration_ms = 12 * MINUTE;
        scenario.traffic.rate_per_s = 20.0;
        scenario.traffic.sticky_header = Some(("x-user".to_owned(), 300));
        scenario.behaviours.push(Behaviour {
            until_ms: 5 * MINUTE + 20_000,
            ..failing("v2", 5 * MINUTE, 1.0)
        });
        let run = run(&scenario).unwrap();
        assert!(first_trip(&run, "v2").is_some(), "seed {seed}: v2 trips");
        let mut last: std::collections::HashMap<u32, (Vec<u32>, String)> = Default::default();
        for request in &run.requests {
            let (Some(key), Some(version)) = (request.sticky_key, &request.version) else {
                continue;
            };
            if let Some((weights, was)) = last.get(&key) {
                let v2_rose = weights[0] == request.weights[0] && request.weights[1] > weights[1];
                let v2_fell = weights[0] == request.weights[0] && request.weights[1] < weights[1];
                if *weights == request.weights
                    || (v2_rose && was == "v2")
                    || (v2_fell && was == "v1")
                {
                    assert_eq!(
                        version, was,
                        "seed {seed}: key {key} moved at {} ms",
                        request.at_ms
                    );
                }
            }
            last.insert(key, (request.weights.clone(), version.clone()));
        }
    }
}

/// A trip of a ramp's version halts the rollout: the version stays out on every worker, past
/// its cooldown, until the config changes.
#[test]
fn a_halted_rollout_stays_halted_on_every_worker_until_the_config_changes() {
    let config = |to: u32| {
        format!(
            r#"{{ "routes": [ {{ "name": "r",
            "guard": {{ "max_error_ratio": 0.2, "min_requests": 20, "window": "10s", "cooldown": "1m" }},
            "ramp": {{ "version": "v2", "from": 0, "to": {to}, "start": "2026-12-01T10:00:00Z",
                      "duration": "10m", "steps": 10 }},
            "destinations": [ {{ "version": "v1", "weight": 100 }}, {{ "version": "v2" }} ] }} ] }}"#
        )
    };
    let mut scenario = Scenario::new(config(100).as_bytes());
    scenario.workers = 3;
    scenario.duration_ms = 12 * MINUTE;
    scenario.traffic.rate_per_s = 50.0;
    scenario.behaviours.push(Behaviour {
        until_ms: 3 * MINUTE + 30_000,
        ..failing("v2", 3 * MINUTE, 1.0)
    });
    scenario.pushes.push(traffic_split::sim::Push {
        at_ms: 10 * MINUTE,
        config: config(90).into_bytes(),
    });
    let run = run(&scenario).unwrap();
    let (tripped_at, _) = first_trip(&run, "v2").expect("v2 trips");
    assert_eq!(
        count(&run, "v2", tripped_at + scenario.tick_ms, 10 * MINUTE),
        0
    );
    assert!(
        count(&run, "v2", 10 * MINUTE + scenario.tick_ms, 12 * MINUTE) > 0,
        "released by the push"
    );
}

/// A push that leaves a route's guard unchanged keeps its ejected version out for the rest of
/// its cooldown, from the push's first request on.
#[test]
fn a_push_that_leaves_the_guard_unchanged_keeps_an_ejected_version_out() {
    let guard = r#""guard": { "max_error_ratio": 0.2, "min_requests": 20, "window": "10s", "cooldown": "5m" },"#;
    let config = two_versions(1, 1, guard);
    let mut scenario = Scenario::new(config.as_bytes());
    scenario.workers = 2;
    scenario.duration_ms = 2 * MINUTE;
    scenario.traffic.rate_per_s = 200.0;
    scenario.behaviours.push(failing("v2", 10_000, 1.0));
    scenario.pushes.push(traffic_split::sim::Push {
        at_ms: MINUTE,
        config: config.clone().into_bytes(),
    });
    let run = run(&scenario).unwrap();
    let (tripped_at, _) = first_trip(&run, "v2").expect("v2 trips");
    assert!(tripped_at < MINUTE);
    assert_eq!(
        count(&run, "v2", tripped_at + scenario.tick_ms, 2 * MINUTE),
        0
    );
}

/// A push that changes the guard (here a higher `max_error_ratio`) releases the ejected version.
#[test]
fn a_push_that_changes_the_guard_releases_an_ejected_version() {
    let guard = |ratio: &str| {
        format!(
            r#""guard": {{ "max_error_ratio": {ratio}, "min_requests": 20, "window": "10s", "cooldown": "5m" }},"#
        )
    };
    let mut scenario = Scenario::new(two_versions(1, 1, &guard("0.2")).as_bytes());
    scenario.workers = 2;
    scenario.duration_ms = 2 * MINUTE;
    scenario.traffic.rate_per_s = 200.0;
    scenario.behaviours.push(Behaviour {
        until_ms: 20_000,
        ..failing("v2", 10_000, 1.0)
    });
    scenario.pushes.push(traffic_split::sim::Push {
        at_ms: MINUTE,
        config: two_versions(1, 1, &guard("0.9")).into_bytes(),
    });
    let run = run(&scenario).unwrap();
    assert!(first_trip(&run, "v2").is_some_and(|(at, _)| at < MINUTE));
    assert!(count(&run, "v2", MINUTE + scenario.tick_ms, 2 * MINUTE) > 1_000);
}

/// The probe share is min(the version's share in force, `probe_percent`), at every weight scale.
#[test]
fn a_tripped_versions_share_is_min_of_its_share_and_probe_percent_at_every_scale() {
    for (seed, (v1, v2, probe)) in [(1, 1, 1), (9, 1, 20), (999_999, 1, 5), (3, 1_000_000, 1)]
        .into_iter()
        .enumerate()
    {
        let guard = format!(
            r#""guard": {{ "max_error_ratio": 0.2, "min_requests": 20, "window": "10s", "cooldown": "5m", "probe_percent": {probe} }},"#
        );
        let mut scenario = Scenario::new(two_versions(v1, v2, &guard).as_bytes());
        scenario.seed = seed as u64 + 1;
        scenario.workers = 2;
        scenario.duration_ms = 60_000;
        scenario.traffic.rate_per_s = 200.0;
        scenario.behaviours.push(failing("v2", 0, 1.0));
        let run = run(&scenario).unwrap();
        let Some((tripped_at, _)) = first_trip(&run, "v2") else {
            continue; // v2 too light to reach min_requests: nothing to check
        };
        let from = tripped_at + scenario.tick_ms;
        let to_v2 = count(&run, "v2", from, 60_000) as f64;
        let all = count(&run, "v1", from, 60_000) as f64 + to_v2;
        let in_force = f64::from(v2) / f64::from(v1 + v2);
        let allowed = in_force.min(f64::from(probe) / 100.0);
        assert!(
            to_v2 <= all * allowed + 2.0 * scenario.workers as f64,
            "weights {v1}:{v2}, probe {probe}%: {to_v2} of {all} to the tripped v2"
        );
    }
}

/// The seed's experiment, the README's config: 70/30 behind a 2 ms deadline, v2 answering in
/// 5 ms. Envoy's deadline cuts every v2 request with a 504 `UT`, counted as a timeout of v2,
/// and no v1 request, as tests/deadlines.rs sees in the real Envoy.
#[test]
fn the_seeds_experiment_times_out_every_v2_request_and_no_v1_request() {
    let config = r#"{ "routes": [ { "name": "hello",
        "match": { "prefix": "/hello", "methods": ["GET"] },
        "destinations": [
          { "version": "v1", "cluster": "springbootapp-v1", "weight": 70 },
          { "version": "v2", "cluster": "springbootapp-v2", "weight": 30 } ],
        "timeout": "0.002s" } ] }"#;
    let mut scenario = Scenario::new(config.as_bytes());
    scenario.workers = 1;
    scenario.duration_ms = 10_000;
    scenario.traffic.rate_per_s = 100.0;
    scenario.traffic.path = "/hello".to_owned();
    scenario.behaviours.push(Behaviour {
        latency_ms: 5,
        ..failing("v2", 0, 0.0)
    });
    let run = run(&scenario).unwrap();
    let outcome = |version: &str| {
        let mine: Vec<_> = run
            .requests
            .iter()
            .filter(|r| r.version.as_deref() == Some(version))
            .collect();
        let ok = mine.iter().filter(|r| r.status == Some(200)).count();
        let cut = mine
            .iter()
            .filter(|r| r.timed_out && r.status == Some(504) && r.ended_ms == r.at_ms + 2)
            .count();
        (mine.len(), ok, cut)
    };
    assert_eq!(outcome("v1"), (700, 700, 0));
    assert_eq!(outcome("v2"), (300, 0, 300));
    let v2_rows: Vec<_> = run
        .rows
        .iter()
        .flat_map(|row| row.versions.iter().filter(|v| v.version == "v2"))
        .collect();
    let timeouts: u64 = v2_rows.iter().map(|v| v.timeouts).sum();
    let errors: u64 = v2_rows.iter().map(|v| v.errors).sum();
    assert_eq!((timeouts, errors), (300, 300));
    // The core, at each stream's end, counted every cut as a timeout of v2 and none of v1.
    assert_eq!(
        run.timeouts_counted.into_iter().collect::<Vec<_>>(),
        [("v2".to_owned(), 300)]
    );
}

/// The same experiment with a guard on timeouts: the cuts are the version's errors, so the
/// guard takes v2 out once its window has `min_requests` of them.
#[test]
fn a_guard_on_timeouts_takes_out_the_version_the_deadline_cuts() {
    let config = r#"{ "routes": [ { "name": "hello",
        "guard": { "max_error_ratio": 0.5, "min_requests": 20, "window": "10s", "cooldown": "10m",
                   "errors": ["timeout"] },
        "timeout": "0.002s",
        "destinations": [ { "version": "v1", "weight": 70 }, { "version": "v2", "weight": 30 } ] } ] }"#;
    let mut scenario = Scenario::new(config.as_bytes());
    scenario.duration_ms = 20_000;
    scenario.traffic.rate_per_s = 50.0;
    scenario.behaviours.push(Behaviour {
        latency_ms: 5,
        ..failing("v2", 0, 0.0)
    });
    let run = run(&scenario).unwrap();
    let (tripped_at, _) = first_trip(&run, "v2").expect("the cut version trips");
    assert!(tripped_at < 5_000, "tripped at {tripped_at} ms");
    assert_eq!(first_trip(&run, "v1"), None);
    assert_eq!(count(&run, "v2", tripped_at + scenario.tick_ms, 20_000), 0);
}

/// Retries over time: while v2 fails half its attempts (minute 1 to 2), a policy of 3 retries on
/// 5xx sends each failing request up to 4 times, so about 1 in 16 requests still fails and a
/// guard at 20% never trips; the same config without retries trips it. Before and after the
/// failures, nothing is retried.
#[test]
fn retries_hide_a_flaky_version_from_the_guard_while_it_fails() {
    let guard = r#""guard": { "max_error_ratio": 0.2, "min_requests": 50, "window": "30s", "cooldown": "10m" },"#;
    let retries = r#""retries": { "attempts": 3, "retry_on": "5xx" },"#;
    let scenario_with = |extra: &str| {
        let mut scenario = Scenario::new(two_versions(1, 1, extra).as_bytes());
        scenario.duration_ms = 3 * MINUTE;
        scenario.period_ms = MINUTE;
        scenario.traffic.rate_per_s = 50.0;
        scenario.behaviours.push(Behaviour {
            until_ms: 2 * MINUTE,
            ..failing("v2", MINUTE, 0.5)
        });
        scenario
    };
    let retried = run(&scenario_with(&format!("{guard} {retries}"))).unwrap();
    assert_eq!(first_trip(&retried, "v2"), None);
    let v2 = |run: &Run, minute: usize| {
        run.rows[minute]
            .versions
            .iter()
            .find(|v| v.version == "v2")
            .cloned()
            .unwrap()
    };
    let failing_minute = v2(&retried, 1);
    let error_ratio = failing_minute.errors as f64 / failing_minute.requests as f64;
    assert!(
        (0.02..0.12).contains(&error_ratio),
        "{failing_minute:?}: about 1/16 fail"
    );
    // Each request's retries: 1 with probability 1/2, 2 with 1/4, 3 with 1/8 (7/8 on average).
    let per_request = failing_minute.retries as f64 / failing_minute.requests as f64;
    assert!((0.75..1.0).contains(&per_request), "{failing_minute:?}");
    assert_eq!((v2(&retried, 0).retries, v2(&retried, 2).retries), (0, 0));
    let outside_failures =
        |r: &&traffic_split::sim::RequestRecord| !(MINUTE..2 * MINUTE).contains(&r.at_ms);
    assert!(retried.requests.iter().all(|r| r.attempts <= 4));
    assert!(retried
        .requests
        .iter()
        .filter(outside_failures)
        .all(|r| r.attempts == 1));
    let bare = run(&scenario_with(guard)).unwrap();
    let (tripped_at, _) = first_trip(&bare, "v2").expect("without retries the guard trips");
    assert!((MINUTE..2 * MINUTE).contains(&tripped_at));
}
