//! A configuration from raw bytes: compiled into a plan that keeps the plan's invariants, or
//! refused with at least one error.

use std::collections::HashSet;
use traffic_split::config::pass_through::pass_through_plan;
use traffic_split::config::{compile, describe_errors};
use traffic_split::plan::Plan;
use traffic_split::state::RouteState;

/// A configuration as arbitrary bytes: compiled into a sound plan, or refused with errors.
pub fn check_config_text(bytes: &[u8]) {
    match compile(bytes) {
        Ok(plan) => check_plan(&plan),
        Err(errors) => {
            check_refusal(&errors);
            if let Some(plan) = pass_through_plan(bytes) {
                assert!(plan.pass_through && plan.routes.is_empty());
                assert_ne!(plan.version_header, plan.cluster_header);
                for name in [&plan.version_header, &plan.cluster_header] {
                    assert_eq!(*name, name.to_ascii_lowercase());
                }
            }
        }
    }
}

pub(super) fn check_refusal(errors: &[traffic_split::config::ConfigError]) {
    assert!(!errors.is_empty(), "a refusal names at least one error");
    for error in errors {
        assert!(!error.message.is_empty(), "an error says what is wrong");
    }
    assert!(!describe_errors(errors).is_empty());
}

fn is_label(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// What every compiled plan holds, whatever config it came from.
pub fn check_plan(plan: &Plan) {
    assert!(!plan.routes.is_empty(), "a plan has a route");
    assert_ne!(plan.version_header, plan.cluster_header);
    let mut route_names = HashSet::new();
    for route in &plan.routes {
        assert!(is_label(&route.name), "route name {:?}", route.name);
        assert!(route_names.insert(&route.name), "route names are unique");
        assert!(!route.destinations.is_empty(), "a route has a destination");
        let mut versions = HashSet::new();
        for destination in &route.destinations {
            assert!(is_label(&destination.version));
            assert!(versions.insert(&destination.version), "versions are unique");
            assert_eq!(
                destination.deadline_header_value,
                destination.deadline_ms.map(|ms| ms.to_string())
            );
        }
        let total: u64 = route
            .destinations
            .iter()
            .map(|destination| u64::from(destination.weight))
            .sum();
        assert!(total > 0, "a route's weights add up to more than 0");
        // The exact split: one cycle of picks holds each destination's reduced weight.
        let mut state = RouteState::new(route);
        let cycle = state.split_in_force().cycle_len();
        if cycle <= 10_000 {
            let mut picks = vec![0u64; route.destinations.len()];
            for _ in 0..cycle {
                picks[state.pick()] += 1;
            }
            for (destination, picked) in route.destinations.iter().zip(&picks) {
                assert_eq!(
                    u128::from(*picked) * u128::from(total),
                    u128::from(destination.weight) * u128::from(cycle),
                    "{} of {cycle} picks for weight {} of {total}",
                    picked,
                    destination.weight
                );
            }
        }
    }
}
