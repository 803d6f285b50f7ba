//! A route's `guard`: when a version fails too often it leaves the split for a cooldown.

use super::values::{basis_points, integer_in, number_in};
use super::Checker;
use crate::config::raw::GuardConfig;
use crate::split::guard::{ErrorClasses, Guard, MAX_PROBE_BASIS_POINTS, UNTIL_CONFIG_CHANGE};
use crate::units::duration::{parse_duration_ms, DurationRange};

const DEFAULT_GUARD_MIN_REQUESTS: u32 = 20;
const DEFAULT_GUARD_WINDOW_MS: u64 = 30_000;
const DEFAULT_GUARD_COOLDOWN_MS: u64 = 120_000;

/// A guard's window: a second (8 buckets of 125 ms) to an hour.
const GUARD_WINDOW: DurationRange = DurationRange {
    min_ms: 1_000,
    max_ms: 60 * 60 * 1_000,
    min_text: "1s",
    max_text: "1h",
    why_whole_ms: "",
};
/// The cooldown that lasts until the config changes: a trip latches.
const COOLDOWN_UNTIL_CONFIG_CHANGE: &str = "until_config_change";
/// A guard's cooldown: a second to a day (or [`COOLDOWN_UNTIL_CONFIG_CHANGE`]).
const GUARD_COOLDOWN: DurationRange = DurationRange {
    min_ms: 1_000,
    max_ms: 24 * 60 * 60 * 1_000,
    min_text: "1s",
    max_text: "24h",
    why_whole_ms: "",
};

impl Checker {
    pub(super) fn guard(&mut self, config: &GuardConfig, path: &str) -> Option<Guard> {
        let max_error_ratio = self.required(
            config.max_error_ratio.as_ref(),
            path,
            "max_error_ratio",
            "a number from 0 to 1",
            |c, value, path| c.reported(number_in(value, (0.0, 1.0), "a number from 0 to 1"), path),
        );
        let min_requests = self
            .optional(
                config.min_requests.as_ref(),
                path,
                "min_requests",
                |c, value, path| c.reported(integer_in(value, (1, 1_000_000)), path),
            )
            .map(|given| given.unwrap_or(DEFAULT_GUARD_MIN_REQUESTS));
        let window_ms = self
            .optional(config.window.as_deref(), path, "window", |c, text, path| {
                c.reported(parse_duration_ms(text, GUARD_WINDOW), path)
            })
            .map(|given| given.unwrap_or(DEFAULT_GUARD_WINDOW_MS));
        let cooldown_ms = self
            .optional(
                config.cooldown.as_deref(),
                path,
                "cooldown",
                |c, text, path| {
                    if text == COOLDOWN_UNTIL_CONFIG_CHANGE {
                        return Some(UNTIL_CONFIG_CHANGE);
                    }
                    c.reported(parse_duration_ms(text, GUARD_COOLDOWN), path)
                },
            )
            .map(|given| given.unwrap_or(DEFAULT_GUARD_COOLDOWN_MS));
        let errors = self
            .optional(
                config.errors.as_deref(),
                path,
                "errors",
                Self::error_classes,
            )
            .map(Option::unwrap_or_default);
        let probe_basis_points = self
            .optional(
                config.probe_percent.as_ref(),
                path,
                "probe_percent",
                |c, value, path| {
                    c.reported(basis_points(value, MAX_PROBE_BASIS_POINTS / 100), path)
                },
            )
            .map(Option::unwrap_or_default);
        Some(Guard {
            max_error_ratio: max_error_ratio?,
            min_requests: min_requests?,
            window_ms: window_ms?,
            cooldown_ms: cooldown_ms?,
            errors: errors?,
            probe_basis_points: probe_basis_points?,
            // Filled in by the route, which knows its destinations and its rollout.
            latches: Vec::new(),
        })
    }

    fn error_classes(&mut self, names: &[String], path: &str) -> Option<ErrorClasses> {
        if names.is_empty() {
            self.error(
                path,
                "expected at least one of \"5xx\", \"timeout\", \"reset\"",
            );
            return None;
        }
        let mut classes = ErrorClasses {
            server_error: false,
            timeout: false,
            reset: false,
        };
        let mut ok = true;
        for (index, name) in names.iter().enumerate() {
            match name.as_str() {
                "5xx" => classes.server_error = true,
                "timeout" => classes.timeout = true,
                "reset" => classes.reset = true,
                other => {
                    self.error(
                        &format!("{path}[{index}]"),
                        format!("expected one of \"5xx\", \"timeout\", \"reset\", got {other:?}"),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(classes)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::compile;
    use crate::config::test_configs::{assert_error, errors_of, route_with_field};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn latches(route: &str) -> Vec<Option<u64>> {
        let plan = compile(format!(r#"{{ "routes": [ {route} ] }}"#).as_bytes()).unwrap();
        plan.routes[0].guard.as_ref().unwrap().latches.clone()
    }

    #[test]
    fn a_trip_latches_under_until_config_change() {
        let two = |v2: u32, cooldown: &str| {
            latches(&format!(
                r#"{{ "name": "r", "guard": {{ "max_error_ratio": 0.1, "cooldown": "{cooldown}" }},
                   "destinations": [ {{ "version": "v1", "weight": 70 }}, {{ "version": "v2", "weight": {v2} }} ] }}"#
            ))
        };
        let latched = two(30, "until_config_change");
        assert!(latched.iter().all(Option::is_some), "{latched:?}");
        assert_eq!(two(30, "2m"), [None, None]);
        let moved = two(40, "until_config_change");
        assert_eq!(latched[0], moved[0], "v1 unchanged");
        assert_ne!(latched[1], moved[1], "v2's weight changed: released");
        // A rollout's version latches whatever the cooldown: check::rollout's tests.
    }

    #[test]
    fn a_guard_is_compiled_with_its_defaults() {
        let plan = compile(route_with_field(r#""guard": { "max_error_ratio": 0.05 }"#).as_bytes())
            .unwrap();
        let guard = plan.routes[0].guard.as_ref().unwrap();
        assert_eq!(guard.max_error_ratio, 0.05);
        assert_eq!(guard.min_requests, 20);
        assert_eq!((guard.window_ms, guard.cooldown_ms), (30_000, 120_000));
        assert_eq!(guard.errors, crate::split::guard::ErrorClasses::default());
        assert_eq!(guard.probe_basis_points, 0);
        let plan = compile(
            route_with_field(
                r#""guard": { "max_error_ratio": 1, "min_requests": 50.0, "window": "2s",
                   "cooldown": "24h", "errors": ["reset"], "probe_percent": 1.25 }"#,
            )
            .as_bytes(),
        )
        .unwrap();
        let guard = plan.routes[0].guard.as_ref().unwrap();
        assert_eq!(guard.min_requests, 50);
        assert_eq!(guard.probe_basis_points, 125);
        assert!(guard.errors.reset && !guard.errors.server_error && !guard.errors.timeout);
    }

    #[test]
    fn guard_errors_name_their_field() {
        let errors = errors_of(&route_with_field(
            r#""guard": { "max_error_ratio": 1.5, "min_requests": 0, "window": "500ms",
               "cooldown": "25h", "errors": ["5xx", "4xx"], "probe_percent": 0.125 }"#,
        ));
        assert_eq!(
            errors,
            [
                "routes[0].guard.max_error_ratio: expected a number from 0 to 1, got 1.5",
                "routes[0].guard.min_requests: expected an integer from 1 to 1000000, got 0",
                "routes[0].guard.window: \"500ms\" is shorter than the minimum of 1s",
                "routes[0].guard.cooldown: \"25h\" is longer than the maximum of 24h",
                "routes[0].guard.errors[1]: expected one of \"5xx\", \"timeout\", \"reset\", got \"4xx\"",
                "routes[0].guard.probe_percent: expected a percentage with at most two decimals, got 0.125",
            ]
        );
        assert_error(
            &route_with_field(r#""guard": {}"#),
            "routes[0].guard.max_error_ratio: required: a number from 0 to 1",
        );
        assert_error(
            &route_with_field(r#""guard": { "max_error_ratio": 0.1, "probe_percent": 51 }"#),
            "routes[0].guard.probe_percent: expected a percentage from 0 to 50 with at most two decimals, got 51",
        );
        assert_error(
            &route_with_field(r#""guard": { "max_error_ratio": 0.1, "errors": [] }"#),
            "routes[0].guard.errors: expected at least one of \"5xx\", \"timeout\", \"reset\"",
        );
        assert_error(
            &route_with_field(r#""guard": { "max_error_ratio": 0.1, "windows": "2s" }"#),
            "routes[0].guard.windows: unknown field; expected one of max_error_ratio, min_requests, window, cooldown, errors, probe_percent; did you mean `window`?",
        );
    }
}
