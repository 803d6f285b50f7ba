//! The plugin configuration as users write it (JSON: Envoy's `configuration` StringValue, or
//! Istio's `pluginConfig` Struct converted to JSON), and [`compile`], which turns it into a
//! [`Plan`] or refuses it with every error at once, each with its JSON path
//! (`routes[0].destinations[1].weight: ...`).
//!
//! Compiling is two steps, each adding to the same list of errors:
//! 1. [`read`] parses the JSON (refusing duplicate keys) and reads it into the types below,
//!    reporting unknown fields (typos such as `wieght`) with the fields allowed there. Only a
//!    value of the wrong JSON type (a list where an object belongs) stops reading.
//! 2. [`crate::validate`] checks the typed config: names, header names, weights, durations,
//!    regexes, duplicates, and builds the plan.
//!
//! The types below are the config exactly as written. Every field is an `Option`, required
//! ones too, so that a missing field is reported along with the rest rather than stopping the
//! check; values whose range is checked later (a weight, a metrics mode) are read loosely
//! enough that a bad one is reported with the rest, not a parse failure.

pub mod pass_through;
pub mod read;

use crate::plan::Plan;
use serde::Deserialize;
use serde_json::Value;
use std::fmt;

/// The longest route name or version: they become metric labels.
pub const MAX_NAME_LEN: usize = 64;

/// The plugin config's top level.
///
/// Read it through [`compile`] or [`compile_value`]: another deserializer would silently
/// ignore unknown fields.
#[derive(Debug, Default, Deserialize)]
pub struct PluginConfig {
    /// The header the chosen version is written to (default `x-split-version`).
    pub version_header: Option<String>,
    /// The header the chosen cluster is written to (default `x-split-cluster`).
    pub cluster_header: Option<String>,
    /// Required, at least one; tried in order.
    pub routes: Option<Vec<RouteConfig>>,
    /// `"full"` (default) or `"requests"`: see [`crate::plan::MetricsMode`].
    pub metrics: Option<String>,
    /// `"trace"`, `"debug"`, `"info"` (default), `"warn"`, `"error"` or `"critical"`.
    pub log_level: Option<String>,
    /// What the filter does with this config if it is refused: `"refuse"` (default: Envoy
    /// rejects it) or `"pass_through"`: see [`pass_through`].
    pub on_invalid_config: Option<String>,
}

/// A route: what it matches, and the versions its requests are split between.
#[derive(Debug, Default, Deserialize)]
pub struct RouteConfig {
    /// Required: 1-64 of `[A-Za-z0-9_-]`, unique; the `route` label of the metrics.
    pub name: Option<String>,
    /// Absent: the route matches every request.
    #[serde(rename = "match")]
    pub matcher: Option<MatchConfig>,
    /// Required, at least one.
    pub destinations: Option<Vec<DestinationConfig>>,
    /// The deadline of every destination without its own, as a duration (`"0.002s"`, `"2ms"`).
    pub timeout: Option<String>,
    /// Takes a failing version out of the split for a cooldown: see [`crate::split::guard`].
    pub guard: Option<GuardConfig>,
    /// Envoy's retries for every destination without its own.
    pub retries: Option<RetriesConfig>,
    /// Faults for drills, for every destination without its own.
    pub fault: Option<FaultConfig>,
    /// Requests carrying the same key go to the same version while the weights stay the same.
    pub sticky: Option<StickyConfig>,
    /// A request header naming one of the route's versions sends the request there, whatever
    /// the weights; removed before the request goes upstream.
    pub override_header: Option<String>,
    /// One version's weight moving over time.
    pub ramp: Option<RampConfig>,
}

/// `"fault"` on a route or a destination: at least one of `abort` and `delay`.
#[derive(Debug, Default, Deserialize)]
pub struct FaultConfig {
    pub abort: Option<AbortConfig>,
    pub delay: Option<DelayConfig>,
}

/// Answers a share of the requests at once with a local reply.
#[derive(Debug, Default, Deserialize)]
pub struct AbortConfig {
    /// Required: the status, from 200 to 599.
    pub status: Option<Value>,
    /// Required: the share, a percentage with at most two decimals.
    pub percent: Option<Value>,
}

/// Holds a share of the requests before they go on.
#[derive(Debug, Default, Deserialize)]
pub struct DelayConfig {
    /// Required: how long, as a duration.
    pub fixed: Option<String>,
    /// Required: the share, a percentage with at most two decimals.
    pub percent: Option<Value>,
}

/// `"guard"` on a route.
#[derive(Debug, Default, Deserialize)]
pub struct GuardConfig {
    /// Required: trips when errors / requests in the window is above this, from 0 to 1.
    pub max_error_ratio: Option<Value>,
    /// Requests a version needs in the window before it can trip (default 20).
    pub min_requests: Option<Value>,
    /// The sliding window (default `"30s"`), from 1s to 1h.
    pub window: Option<String>,
    /// How long a tripped version stays out (default `"2m"`), from 1s to 24h.
    pub cooldown: Option<String>,
    /// Which outcomes are errors: `"5xx"`, `"timeout"`, `"reset"` (default 5xx and timeout).
    pub errors: Option<Vec<String>>,
    /// The share of the route (a percentage with up to two decimals, at most 50) still sent
    /// to a tripped version, so that it can show it recovered (default 0).
    pub probe_percent: Option<Value>,
}

/// `"retries"` on a route or a destination: Envoy's retry policy, set per request.
#[derive(Debug, Default, Deserialize)]
pub struct RetriesConfig {
    /// Required: retries after the first attempt, 0 to 10 (`x-envoy-max-retries`).
    pub attempts: Option<Value>,
    /// Each attempt's deadline (`x-envoy-upstream-rq-per-try-timeout-ms`).
    pub per_try_timeout: Option<String>,
    /// Required: Envoy's retry conditions, comma-separated (`x-envoy-retry-on`).
    pub retry_on: Option<String>,
    /// Envoy's gRPC retry conditions, comma-separated (`x-envoy-retry-grpc-on`).
    pub grpc_retry_on: Option<String>,
}

/// Where a sticky key is read: exactly one of `header` and `cookie`.
#[derive(Debug, Default, Deserialize)]
pub struct StickyConfig {
    /// A request header whose value is the key (`x-user-id`).
    pub header: Option<String>,
    /// A cookie whose value is the key (`session`).
    pub cookie: Option<String>,
    /// With `cookie`: a response to a request without the cookie sets it to a fresh key.
    pub set_cookie: Option<SetCookieConfig>,
}

/// The cookie the filter sets for a request without one.
#[derive(Debug, Default, Deserialize)]
pub struct SetCookieConfig {
    /// Required: the cookie's `Max-Age`, a duration in whole seconds (`"24h"`).
    pub max_age: Option<String>,
}

/// A version's weight moving from `from` to `to` over `duration` from `start`.
#[derive(Debug, Default, Deserialize)]
pub struct RampConfig {
    /// Required: one of the route's versions; its destination has no `weight` of its own.
    pub version: Option<String>,
    /// Required: the weight before `start`, an integer from 0 to 1,000,000.
    pub from: Option<Value>,
    /// Required: the weight after `start + duration`.
    pub to: Option<Value>,
    /// Required: an RFC 3339 time (`"2026-12-01T10:00:00Z"`, or with an offset).
    pub start: Option<String>,
    /// Required: how long the weight takes to get from `from` to `to`.
    pub duration: Option<String>,
    /// The number of equal steps; left out, the weight moves linearly.
    pub steps: Option<Value>,
}

/// What a route matches; every part given must match.
#[derive(Debug, Default, Deserialize)]
pub struct MatchConfig {
    /// At most one of `prefix`, `exact` and `regex`.
    pub prefix: Option<String>,
    pub exact: Option<String>,
    /// Matched against the whole path, without its query string.
    pub regex: Option<String>,
    /// Upper-case methods; absent means any method.
    pub methods: Option<Vec<String>>,
    pub headers: Option<Vec<HeaderMatchConfig>>,
}

/// A header a route requires: `name` and exactly one of `exact`, `prefix`, `regex`,
/// `present: true`.
#[derive(Debug, Default, Deserialize)]
pub struct HeaderMatchConfig {
    /// Required; case-insensitive; pseudo-headers such as `:authority` allowed.
    pub name: Option<String>,
    pub exact: Option<String>,
    pub prefix: Option<String>,
    pub regex: Option<String>,
    pub present: Option<bool>,
}

/// One version of a route and its share of the route's requests.
#[derive(Debug, Default, Deserialize)]
pub struct DestinationConfig {
    /// Required: 1-64 of `[A-Za-z0-9_-]`, unique in the route; the `version` label.
    pub version: Option<String>,
    /// 1-255 visible ASCII characters, written into the cluster header.
    pub cluster: Option<String>,
    /// Required: an integer from 0 to [`crate::validate::MAX_WEIGHT`]. Kept as any JSON value,
    /// so that `-5`, `2.5` or `"70"` is reported with the config's other errors instead of
    /// stopping the check; Istio's integral doubles (`70.0`) read as integers.
    pub weight: Option<Value>,
    /// This destination's deadline; overrides the route's.
    pub timeout: Option<String>,
    /// This destination's retries; replace the route's.
    pub retries: Option<RetriesConfig>,
    /// This destination's faults; replace the route's.
    pub fault: Option<FaultConfig>,
}

/// One problem in a config, with the JSON path of the field it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// All the errors of a config, joined into one line for a log.
pub fn describe_errors(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Parses and validates a config, returning the plan or every error found. A key that
/// appears twice in one object is an error (`routes[0].destinations[1].weight: duplicate
/// field`), not last-wins.
pub fn compile(json: &[u8]) -> Result<Plan, Vec<ConfigError>> {
    if let Some(too_large) = crate::limits::check_config_size(json.len()) {
        return Err(vec![too_large]);
    }
    let mut errors = Vec::new();
    match read::parse_json(json, &mut errors) {
        Some(value) => compile_reporting(&value, errors),
        None => Err(errors),
    }
}

/// Validates a config already parsed as JSON (the checker converts YAML to the same value).
///
/// A [`Value`] cannot hold a key twice: whoever parsed it decided what a duplicate key
/// means, so refusing duplicates is the parser's job ([`compile`] does it for JSON text).
pub fn compile_value(value: &Value) -> Result<Plan, Vec<ConfigError>> {
    compile_reporting(value, Vec::new())
}

/// Reads and validates `value`, adding to the `errors` found so far.
fn compile_reporting(
    value: &Value,
    mut errors: Vec<ConfigError>,
) -> Result<Plan, Vec<ConfigError>> {
    let Some(config) = read::read_config(value, &mut errors) else {
        return Err(errors);
    };
    match crate::validate::validate(&config) {
        Ok(plan) if errors.is_empty() => Ok(plan),
        Ok(_) => Err(errors),
        Err(invalid) => {
            errors.extend(invalid);
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{LogLevel, MetricsMode};
    use crate::plan::{RequestView, DEFAULT_CLUSTER_HEADER, DEFAULT_VERSION_HEADER};
    use crate::validate::MAX_REGEX_LEN;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const ISSUE_EXAMPLE: &str = r#"{
      "version_header": "x-split-version",
      "cluster_header": "x-split-cluster",
      "routes": [
        {
          "name": "hello",
          "match": { "prefix": "/hello", "methods": ["GET"],
                     "headers": [ { "name": "x-env", "exact": "prod" } ] },
          "destinations": [
            { "version": "v1", "cluster": "springbootapp-v1", "weight": 70 },
            { "version": "v2", "cluster": "springbootapp-v2", "weight": 30, "timeout": "5ms" }
          ],
          "timeout": "0.002s"
        }
      ]
    }"#;

    fn errors_of(json: &str) -> Vec<String> {
        match compile(json.as_bytes()) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    fn assert_error(json: &str, expected: &str) {
        let errors = errors_of(json);
        assert!(
            errors.iter().any(|e| e == expected),
            "expected {expected:?} in {errors:?}"
        );
    }

    fn route_with(destinations: &str) -> String {
        format!(r#"{{ "routes": [ {{ "name": "r", "destinations": {destinations} }} ] }}"#)
    }

    fn route_with_match(matcher: &str) -> String {
        format!(
            r#"{{ "routes": [ {{ "name": "r", "match": {matcher},
                  "destinations": [ {{ "version": "v1", "weight": 1 }} ] }} ] }}"#
        )
    }

    #[test]
    fn issue_example_compiles_with_deadlines_resolved() {
        let plan = compile(ISSUE_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(plan.version_header, "x-split-version");
        assert_eq!(plan.cluster_header, "x-split-cluster");
        let route = &plan.routes[0];
        assert_eq!(route.name, "hello");
        let [v1, v2] = &route.destinations[..] else {
            panic!("two destinations")
        };
        assert_eq!(
            (v1.version.as_str(), v1.weight, v1.deadline_ms),
            ("v1", 70, Some(2))
        );
        assert_eq!(v1.deadline_header_value.as_deref(), Some("2"));
        assert_eq!(
            v2.deadline_ms,
            Some(5),
            "the destination's timeout overrides the route's"
        );
        assert_eq!(v2.cluster.as_deref(), Some("springbootapp-v2"));
        assert_eq!(
            v2.metric_names.requests,
            "traffic_split.route.hello.version.v2.requests_total"
        );
    }

    #[test]
    fn header_names_default_and_are_lower_cased() {
        let plan = compile(route_with(r#"[{"version":"v1","weight":1}]"#).as_bytes()).unwrap();
        assert_eq!(plan.version_header, DEFAULT_VERSION_HEADER);
        assert_eq!(plan.cluster_header, DEFAULT_CLUSTER_HEADER);
        let json = r#"{ "version_header": "X-Canary", "cluster_header": "X-Target",
                        "routes": [ { "name": "r", "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#;
        let plan = compile(json.as_bytes()).unwrap();
        assert_eq!(
            (plan.version_header.as_str(), plan.cluster_header.as_str()),
            ("x-canary", "x-target")
        );
        assert!(plan.routes[0].destinations[0].deadline_ms.is_none());
    }

    #[test]
    fn negative_weight_names_its_path() {
        assert_error(
            &route_with(r#"[{"version":"v1","weight":1},{"version":"v2","weight":-5}]"#),
            "routes[0].destinations[1].weight: expected an integer from 0 to 1000000, got -5",
        );
    }

    #[test]
    fn weights_must_be_integers_and_not_all_zero() {
        for bad in ["1.5", "\"70\"", "null", "true", "[]"] {
            let json = route_with(&format!(r#"[{{"version":"v1","weight":{bad}}}]"#));
            let errors = errors_of(&json);
            assert!(
                errors.iter().any(|e| e.starts_with(
                    "routes[0].destinations[0].weight: expected an integer from 0 to 1000000, got"
                )),
                "{bad}: {errors:?}"
            );
        }
        assert_error(
            &route_with(r#"[{"version":"v1","weight":4294967296}]"#),
            "routes[0].destinations[0].weight: expected an integer from 0 to 1000000, got 4294967296",
        );
        assert_error(
            &route_with(r#"[{"version":"v1","weight":0},{"version":"v2","weight":0}]"#),
            "routes[0].destinations: the weights add up to 0; at least one must be above 0",
        );
    }

    #[test]
    fn integral_doubles_from_istio_structs_are_weights() {
        let plan = compile(
            route_with(r#"[{"version":"v1","weight":70.0},{"version":"v2","weight":30}]"#)
                .as_bytes(),
        )
        .unwrap();
        let weights: Vec<u32> = plan.routes[0]
            .destinations
            .iter()
            .map(|d| d.weight)
            .collect();
        assert_eq!(weights, vec![70, 30]);
    }

    #[test]
    fn unknown_fields_are_errors_everywhere() {
        assert_error(
            &route_with(r#"[{"version":"v1","wieght":70}]"#),
            "routes[0].destinations[0].wieght: unknown field; expected one of version, cluster, weight, timeout, retries, fault; did you mean `weight`?",
        );
        let errors = errors_of(
            r#"{ "routs": [], "routes": [ { "name": "r", "matches": {}, "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#,
        );
        assert!(
            errors.iter().any(|e| e.starts_with("routs: unknown field")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("routes[0].matches: unknown field")),
            "{errors:?}"
        );
        assert_error(
            &route_with_match(r#"{ "prefix": "/", "header": [] }"#),
            "routes[0].match.header: unknown field; expected one of prefix, exact, regex, methods, headers; did you mean `headers`?",
        );
        assert_error(
            &route_with_match(r#"{ "headers": [ { "name": "a", "exact": "b", "invert": true } ] }"#),
            "routes[0].match.headers[0].invert: unknown field; expected one of name, exact, prefix, regex, present",
        );
    }

    #[test]
    fn weights_range_from_0_to_1000000() {
        let plan = compile(
            route_with(r#"[{"version":"v1","weight":1000000},{"version":"v2","weight":0}]"#)
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(plan.routes[0].destinations[0].weight, 1_000_000);
        for (bad, shown) in [
            ("1000001", "1000001"),
            ("100000000000000000000", "1e+20"),
            ("1e20", "1e+20"),
            ("-5", "-5"),
            ("-0.5", "-0.5"),
            ("2.5", "2.5"),
            ("1000000.5", "1000000.5"),
            (r#""70""#, r#""70""#),
            ("null", "null"),
            ("[70]", "a list"),
            (r#"{"value":70}"#, "an object"),
        ] {
            assert_eq!(
                errors_of(&route_with(&format!(
                    r#"[{{"version":"v1","weight":1}},{{"version":"v2","weight":{bad}}}]"#
                ))),
                [format!(
                    "routes[0].destinations[1].weight: expected an integer from 0 to 1000000, got {shown}"
                )],
                "{bad}"
            );
        }
    }

    #[test]
    fn a_bad_weight_does_not_stop_the_check_of_the_rest() {
        assert_eq!(
            errors_of(&route_with(
                r#"[{"version":"v1","weight":"70"},{"version":"v 2","weight":-5}]"#
            )),
            [
                r#"routes[0].destinations[0].weight: expected an integer from 0 to 1000000, got "70""#,
                r#"routes[0].destinations[1].version: expected 1-64 characters of [A-Za-z0-9_-], got "v 2""#,
                "routes[0].destinations[1].weight: expected an integer from 0 to 1000000, got -5",
            ]
        );
    }

    #[test]
    fn integral_doubles_in_a_value_are_weights() {
        let mut config: Value = serde_json::from_str(&route_with(
            r#"[{"version":"v1","weight":0},{"version":"v2","weight":0}]"#,
        ))
        .unwrap();
        let destinations = &mut config["routes"][0]["destinations"];
        destinations[0]["weight"] = Value::from(70.0);
        destinations[1]["weight"] = Value::from(30.0);
        assert!(destinations[0]["weight"].is_f64());
        let plan = compile_value(&config).unwrap();
        let weights: Vec<u32> = plan.routes[0]
            .destinations
            .iter()
            .map(|d| d.weight)
            .collect();
        assert_eq!(weights, vec![70, 30]);
    }

    #[test]
    fn duplicate_keys_are_refused_with_their_path() {
        assert_eq!(
            errors_of(&route_with(
                r#"[{"version":"v1","weight":70},{"version":"v2","weight":30,"timeout":"1s","weight":3}]"#
            )),
            ["routes[0].destinations[1].weight: duplicate field"]
        );
        assert_eq!(
            errors_of(
                r#"{ "routes": [ { "name": "a", "destinations": [ { "version": "v1", "weight": 1 } ] } ],
                     "metrics": "full", "metrics": "requests", "routes": [] }"#
            ),
            [
                "metrics: duplicate field",
                "routes: duplicate field",
                "routes: expected at least one route",
            ],
            "reported with every other error, the later value checked"
        );
        assert_eq!(
            errors_of(&route_with_match(
                r#"{ "headers": [ { "name": "a", "exact": "b", "name": "c", "wrong": 1, "wrong": 2 } ] }"#
            )),
            [
                "routes[0].match.headers[0].name: duplicate field",
                "routes[0].match.headers[0].wrong: duplicate field",
                "routes[0].match.headers[0].wrong: unknown field; expected one of name, exact, prefix, regex, present",
            ]
        );
    }

    #[test]
    fn misspelt_fields_name_the_field_they_most_likely_meant() {
        for (written, meant) in [
            ("wieght", "weight"),
            ("Weight", "weight"),
            ("WEIGHT", "weight"),
            ("weigth", "weight"),
            ("versoin", "version"),
            ("cluser", "cluster"),
            ("timeouts", "timeout"),
        ] {
            assert_eq!(
                errors_of(&route_with(&format!(
                    r#"[{{"version":"v1","weight":1,"{written}":1}}]"#
                ))),
                [format!(
                    "routes[0].destinations[0].{written}: unknown field; expected one of version, cluster, weight, timeout, retries, fault; did you mean `{meant}`?"
                )],
            );
        }
        for far in ["colour", "wt", "w", "", "weight_of_v1", "ü", "重さ"] {
            assert_eq!(
                errors_of(&route_with(&format!(
                    r#"[{{"version":"v1","weight":1,"{far}":1}}]"#
                ))),
                [format!(
                    "routes[0].destinations[0].{far}: unknown field; expected one of version, cluster, weight, timeout, retries, fault"
                )],
                "{far:?} is not close to any field"
            );
        }
        // In the order the keys are read: a JSON object's keys sorted.
        let errors = errors_of(
            r#"{ "routs": [], "log-level": "info", "Metrics": "full",
                 "routes": [ { "name": "r", "matches": {}, "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#,
        );
        let allowed = "expected one of version_header, cluster_header, routes, metrics, log_level, on_invalid_config";
        assert_eq!(
            errors,
            [
                format!("Metrics: unknown field; {allowed}; did you mean `metrics`?"),
                format!("log-level: unknown field; {allowed}; did you mean `log_level`?"),
                "routes[0].matches: unknown field; expected one of name, match, destinations, timeout, guard, retries, fault, sticky, override_header, ramp; did you mean `match`?".to_string(),
                format!("routs: unknown field; {allowed}; did you mean `routes`?"),
            ]
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_stops_reading_and_is_reported_with_its_path() {
        // The unknown field and the duplicate before it are reported too; the bad route name
        // after it is not: reading stopped, and nothing was validated.
        assert_eq!(
            errors_of(
                r#"{ "metrcs": "full", "metrcs": "full", "routes": [
                     { "name": "r", "destinations": [ { "version": 7, "weight": 1 } ] },
                     { "name": "bad name", "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#
            ),
            [
                "metrcs: duplicate field",
                "metrcs: unknown field; expected one of version_header, cluster_header, routes, metrics, log_level, on_invalid_config; did you mean `metrics`?",
                "routes[0].destinations[0].version: expected a string, got 7",
            ]
        );
        for (config, error) in [
            (
                route_with(r#"{"version":"v1","weight":1}"#),
                "routes[0].destinations: expected a list, got an object",
            ),
            (
                route_with(r#"["v1"]"#),
                r#"routes[0].destinations[0]: expected an object, got "v1""#,
            ),
            (
                route_with_match(r#"{ "methods": ["GET", 7] }"#),
                "routes[0].match.methods[1]: expected a string, got 7",
            ),
            (
                route_with_match(r#"{ "headers": [ { "name": "a", "present": "yes" } ] }"#),
                r#"routes[0].match.headers[0].present: expected a boolean, got "yes""#,
            ),
            (
                r#"{ "routes": [ 1, 2 ] }"#.to_string(),
                "routes[0]: expected an object, got 1",
            ),
            ("true".to_string(), "expected an object, got true"),
        ] {
            assert_eq!(errors_of(&config), [error], "{config}");
        }
    }

    #[test]
    fn null_is_a_value_of_the_wrong_type_not_a_left_out_field() {
        assert_error(
            &route_with(r#"[{"version":"v1","weight":1,"cluster":null}]"#),
            "routes[0].destinations[0].cluster: expected a string, got null",
        );
        assert_error(
            r#"{ "version_header": null, "routes": [] }"#,
            "version_header: expected a string, got null",
        );
    }

    #[test]
    fn metrics_default_to_full_and_may_be_only_requests() {
        let one_route = r#""routes": [ { "name": "r", "destinations": [ { "version": "v1", "weight": 1 } ] } ]"#;
        let plan = compile(format!("{{ {one_route} }}").as_bytes()).unwrap();
        assert_eq!(plan.metrics, MetricsMode::Full);
        for (written, mode) in [
            ("full", MetricsMode::Full),
            ("requests", MetricsMode::Requests),
        ] {
            let plan = compile(format!(r#"{{ "metrics": "{written}", {one_route} }}"#).as_bytes())
                .unwrap();
            assert_eq!(plan.metrics, mode, "{written}");
        }
        for bad in ["Full", "none", ""] {
            assert_eq!(
                errors_of(&format!(r#"{{ "metrics": "{bad}", {one_route} }}"#)),
                [format!(
                    r#"metrics: expected one of "full", "requests", got "{bad}""#
                )]
            );
        }
    }

    #[test]
    fn log_level_defaults_to_info_and_takes_the_six_levels() {
        let one_route = r#""routes": [ { "name": "r", "destinations": [ { "version": "v1", "weight": 1 } ] } ]"#;
        let plan = compile(format!("{{ {one_route} }}").as_bytes()).unwrap();
        assert_eq!(plan.log_level, LogLevel::Info);
        for (written, level) in [
            ("trace", LogLevel::Trace),
            ("debug", LogLevel::Debug),
            ("info", LogLevel::Info),
            ("warn", LogLevel::Warn),
            ("error", LogLevel::Error),
            ("critical", LogLevel::Critical),
        ] {
            let plan =
                compile(format!(r#"{{ "log_level": "{written}", {one_route} }}"#).as_bytes())
                    .unwrap();
            assert_eq!(plan.log_level, level, "{written}");
        }
        assert_eq!(
            errors_of(&format!(
                r#"{{ "log_level": "warning", "metrics": "some", {one_route} }}"#
            )),
            [
                r#"metrics: expected one of "full", "requests", got "some""#,
                r#"log_level: expected one of "trace", "debug", "info", "warn", "error", "critical", got "warning""#,
            ]
        );
    }

    #[test]
    fn hostile_configs_are_errors_not_crashes() {
        let deep_weight = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let errors = errors_of(&route_with(&format!(
            r#"[{{"version":"v1","weight":{deep_weight}}}]"#
        )));
        assert!(
            errors[0].starts_with("the configuration is not valid JSON: recursion limit exceeded"),
            "{errors:?}"
        );
        let long_text = "é".repeat(100);
        let errors = errors_of(&route_with(&format!(
            r#"[{{"version":"v1","weight":"{long_text}"}}]"#
        )));
        let [error] = &errors[..] else {
            panic!("one error: {errors:?}")
        };
        let shown = error
            .strip_prefix(
                "routes[0].destinations[0].weight: expected an integer from 0 to 1000000, got \"",
            )
            .unwrap();
        assert!(shown.ends_with("é..."), "{shown}");
        assert!(shown.len() <= 80, "cut short: {shown}");
        for odd in [
            "1e400",
            "-1e400",
            "123456789012345678901234567890",
            r#""\ud800""#,
            r#""\u0000""#,
            r#"{"\u0000": 1}"#,
        ] {
            let json = route_with(&format!(r#"[{{"version":"v1","weight":{odd}}}]"#));
            assert!(!errors_of(&json).is_empty(), "{odd}");
        }
        let key = "k".repeat(100_000);
        let errors = errors_of(&route_with(&format!(
            r#"[{{"version":"v1","weight":1,"{key}":1}}]"#
        )));
        assert_eq!(errors.len(), 1);
        assert!(errors[0]
            .ends_with("expected one of version, cluster, weight, timeout, retries, fault"));
        assert!(compile(b"\xff\xfe{}").is_err());
    }

    #[test]
    fn every_error_is_reported_not_only_the_first() {
        let errors = errors_of(
            r#"{ "routes": [
                 { "name": "ok", "destinations": [ { "version": "v1", "weight": -1 } ] },
                 { "name": "", "timeout": "0s", "destinations": [ { "version": "v 1", "weight": 1, "cluster": "" } ] }
               ] }"#,
        );
        assert_eq!(
            errors,
            vec![
                "routes[0].destinations[0].weight: expected an integer from 0 to 1000000, got -1",
                "routes[1].name: expected 1-64 characters of [A-Za-z0-9_-], got \"\"",
                "routes[1].timeout: \"0s\" is shorter than the minimum of 1ms",
                "routes[1].destinations[0].version: expected 1-64 characters of [A-Za-z0-9_-], got \"v 1\"",
                "routes[1].destinations[0].cluster: expected 1-255 visible ASCII characters, got \"\"",
            ]
        );
    }

    #[test]
    fn top_level_shape_errors() {
        assert_error("[]", "expected an object, got a list");
        assert_error("{}", "routes: required: a non-empty list of routes");
        assert_error(r#"{"routes": []}"#, "routes: expected at least one route");
        assert_error(
            r#"{"routes": {}}"#,
            "routes: expected a list, got an object",
        );
        let errors = errors_of("{ not json");
        assert!(
            errors[0].starts_with("the configuration is not valid JSON"),
            "{errors:?}"
        );
        assert!(
            !errors_of(&"[".repeat(10_000)).is_empty(),
            "deep nesting is an error, not a crash"
        );
        assert_eq!(errors_of("").len(), 1);
    }

    #[test]
    fn header_names_must_be_valid_and_distinct() {
        let with_headers = |version: &str, cluster: &str| {
            format!(
                r#"{{ "version_header": {version}, "cluster_header": {cluster},
                     "routes": [ {{ "name": "r", "destinations": [ {{ "version": "v1", "weight": 1 }} ] }} ] }}"#
            )
        };
        assert_error(
            &with_headers(r#""x-a""#, r#""X-A""#),
            "cluster_header: must differ from version_header (both are \"x-a\")",
        );
        assert_error(
            &with_headers(r#""bad header""#, r#""x-b""#),
            "version_header: expected an HTTP header name, got \"bad header\"",
        );
        assert_error(
            &with_headers(r#""x-a""#, r#"":authority""#),
            "cluster_header: expected an HTTP header name, got \":authority\"",
        );
        assert_error(
            &with_headers(r#""x-envoy-upstream-rq-timeout-ms""#, r#""x-b""#),
            "version_header: x-envoy-upstream-rq-timeout-ms is Envoy's deadline header",
        );
        assert_error(
            &with_headers("7", r#""x-b""#),
            "version_header: expected a string, got 7",
        );
    }

    #[test]
    fn route_names_and_versions_are_unique_metric_labels() {
        assert_error(
            r#"{ "routes": [
                 { "name": "a", "destinations": [ { "version": "v1", "weight": 1 } ] },
                 { "name": "a", "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#,
            "routes[1].name: duplicate route name \"a\"",
        );
        assert_error(
            &route_with(r#"[{"version":"v1","weight":1},{"version":"v1","weight":2}]"#),
            "routes[0].destinations[1].version: duplicate version \"v1\" in this route",
        );
        let long = "a".repeat(65);
        assert_error(
            &route_with(&format!(r#"[{{"version":"{long}","weight":1}}]"#)),
            &format!("routes[0].destinations[0].version: expected 1-64 characters of [A-Za-z0-9_-], got \"{long}\""),
        );
        assert_error(
            &route_with(r#"[{"version":"v.1","weight":1}]"#),
            "routes[0].destinations[0].version: expected 1-64 characters of [A-Za-z0-9_-], got \"v.1\"",
        );
        assert_error(
            r#"{ "routes": [ { "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#,
            "routes[0].name: required",
        );
        assert_error(
            r#"{ "routes": [ { "name": "r" } ] }"#,
            "routes[0].destinations: required: a non-empty list of destinations",
        );
        assert_error(
            &route_with("[]"),
            "routes[0].destinations: expected at least one destination",
        );
        assert_error(
            &route_with(r#"[{"weight":1}]"#),
            "routes[0].destinations[0].version: required",
        );
        assert_error(
            &route_with(r#"[{"version":"v1"}]"#),
            "routes[0].destinations[0].weight: required: an integer from 0 to 1000000",
        );
    }

    #[test]
    fn timeouts_are_checked_where_they_are_written() {
        assert_error(
            &route_with(r#"[{"version":"v1","weight":1,"timeout":"0.0001s"}]"#),
            "routes[0].destinations[0].timeout: \"0.0001s\" is not a whole number of milliseconds (Envoy deadlines have millisecond resolution)",
        );
        assert_error(
            &route_with(r#"[{"version":"v1","weight":1,"timeout":2}]"#),
            "routes[0].destinations[0].timeout: expected a string, got 2",
        );
        assert_error(
            r#"{ "routes": [ { "name": "r", "timeout": "25h", "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#,
            "routes[0].timeout: \"25h\" is longer than the maximum of 24h",
        );
    }

    #[test]
    fn match_errors_name_their_field() {
        assert_error(
            &route_with_match(r#"{ "prefix": "/a", "exact": "/b" }"#),
            "routes[0].match: at most one of prefix, exact, regex; got prefix, exact",
        );
        assert_error(
            &route_with_match(r#"{ "prefix": "hello" }"#),
            "routes[0].match.prefix: expected a path starting with \"/\", got \"hello\"",
        );
        assert_error(
            &route_with_match(r#"{ "methods": ["get"] }"#),
            "routes[0].match.methods[0]: expected an upper-case HTTP method such as \"GET\", got \"get\"",
        );
        assert_error(
            &route_with_match(r#"{ "methods": [] }"#),
            "routes[0].match.methods: expected at least one method, or no methods field",
        );
        assert_error(
            &route_with_match(r#"{ "headers": [ { "name": "a" } ] }"#),
            "routes[0].match.headers[0]: expected exactly one of exact, prefix, regex, present; got none",
        );
        assert_error(
            &route_with_match(r#"{ "headers": [ { "name": "a", "exact": "x", "prefix": "y" } ] }"#),
            "routes[0].match.headers[0]: expected exactly one of exact, prefix, regex, present; got exact, prefix",
        );
        assert_error(
            &route_with_match(r#"{ "headers": [ { "name": "a", "present": false } ] }"#),
            "routes[0].match.headers[0].present: expected true, got false",
        );
        assert_error(
            &route_with_match(r#"{ "headers": [ { "exact": "x" } ] }"#),
            "routes[0].match.headers[0].name: required",
        );
        let errors = errors_of(&route_with_match(r#"{ "regex": "/(unclosed" }"#));
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("routes[0].match.regex: invalid regex \"/(unclosed\"")),
            "{errors:?}"
        );
    }

    #[test]
    fn re2_syntax_regex_lite_lacks_is_refused_with_the_reason() {
        for (pattern, reason) in [
            (r"\\p{L}+", "Unicode character classes are not supported"),
            (r"\\Q.\\E", "unrecognized escape sequence"),
            (r"\\101", "backreferences are not supported"),
            ("[a-z&&b]", "character class intersection is not supported"),
        ] {
            let errors = errors_of(&route_with_match(&format!(r#"{{ "regex": "{pattern}" }}"#)));
            let [error] = &errors[..] else {
                panic!("one error for {pattern}: {errors:?}")
            };
            assert!(
                error.starts_with("routes[0].match.regex: invalid regex ")
                    && error.ends_with(reason),
                "{error}"
            );
        }
    }

    #[test]
    fn case_insensitive_regexes_fold_ascii_only() {
        let plan =
            compile(route_with_match(r#"{ "regex": "(?i)/caf[eé]/[a-z]+" }"#).as_bytes()).unwrap();
        assert!(matched_route(&plan, &mut FakeRequest::new("GET", b"/CAFE/MENU", &[])).is_some());
        assert!(matched_route(
            &plan,
            &mut FakeRequest::new("GET", "/Café/x".as_bytes(), &[])
        )
        .is_some());
        assert!(
            matched_route(
                &plan,
                &mut FakeRequest::new("GET", "/CAFÉ/x".as_bytes(), &[])
            )
            .is_none(),
            "RE2 would match: (?i) folds É to é there"
        );
    }

    #[test]
    fn regexes_that_would_blow_up_are_refused() {
        let huge = "a{1000}{1000}";
        let errors = errors_of(&route_with_match(&format!(r#"{{ "regex": "{huge}" }}"#)));
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("routes[0].match.regex: invalid regex")),
            "{errors:?}"
        );
        let nested = format!("{}a{}", "(".repeat(100), ")".repeat(100));
        let errors = errors_of(&route_with_match(&format!(r#"{{ "regex": "{nested}" }}"#)));
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("routes[0].match.regex: invalid regex")),
            "{errors:?}"
        );
        let long = "a".repeat(MAX_REGEX_LEN + 1);
        assert_error(
            &route_with_match(&format!(r#"{{ "regex": "{long}" }}"#)),
            "routes[0].match.regex: regex is longer than 1024 characters",
        );
    }

    /// A request for the matcher, answered from fixed values and counting header look-ups.
    struct FakeRequest {
        path: Option<Vec<u8>>,
        method: Option<Vec<u8>>,
        headers: Vec<(&'static str, Vec<u8>)>,
        header_lookups: usize,
    }

    impl FakeRequest {
        fn new(method: &str, path: &[u8], headers: &[(&'static str, &[u8])]) -> Self {
            FakeRequest {
                path: Some(path.to_vec()),
                method: Some(method.as_bytes().to_vec()),
                headers: headers.iter().map(|(n, v)| (*n, v.to_vec())).collect(),
                header_lookups: 0,
            }
        }
    }

    impl RequestView for FakeRequest {
        fn path(&mut self) -> Option<&[u8]> {
            self.path.as_deref()
        }
        fn method(&mut self) -> Option<&[u8]> {
            self.method.as_deref()
        }
        fn header(&mut self, name: &str) -> Option<&[u8]> {
            self.header_lookups += 1;
            self.headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_slice())
        }
    }

    fn matched_route(plan: &Plan, request: &mut FakeRequest) -> Option<String> {
        plan.match_route(request)
            .map(|(_, route)| route.name.clone())
    }

    #[test]
    fn issue_example_matches_prefix_method_and_header() {
        let plan = compile(ISSUE_EXAMPLE.as_bytes()).unwrap();
        let prod: &[(&str, &[u8])] = &[("x-env", b"prod")];
        let hello = Some("hello".to_string());
        assert_eq!(
            matched_route(&plan, &mut FakeRequest::new("GET", b"/hello", prod)),
            hello
        );
        assert_eq!(
            matched_route(
                &plan,
                &mut FakeRequest::new("GET", b"/hello/world?q=1", prod)
            ),
            hello
        );
        assert_eq!(
            matched_route(&plan, &mut FakeRequest::new("POST", b"/hello", prod)),
            None
        );
        assert_eq!(
            matched_route(&plan, &mut FakeRequest::new("GET", b"/hell", prod)),
            None
        );
        assert_eq!(
            matched_route(
                &plan,
                &mut FakeRequest::new("GET", b"/hello", &[("x-env", b"dev")])
            ),
            None
        );
        assert_eq!(
            matched_route(&plan, &mut FakeRequest::new("GET", b"/hello", &[])),
            None
        );
        let mut no_pseudo = FakeRequest::new("GET", b"/hello", prod);
        no_pseudo.path = None;
        no_pseudo.method = None;
        assert_eq!(matched_route(&plan, &mut no_pseudo), None);
    }

    #[test]
    fn path_matches_ignore_the_query_string() {
        let plan = compile(route_with_match(r#"{ "exact": "/a" }"#).as_bytes()).unwrap();
        assert!(matched_route(&plan, &mut FakeRequest::new("GET", b"/a?x=/b", &[])).is_some());
        assert!(matched_route(&plan, &mut FakeRequest::new("GET", b"/a/", &[])).is_none());
        let plan =
            compile(route_with_match(r#"{ "regex": "/v[0-9]+/items" }"#).as_bytes()).unwrap();
        assert!(matched_route(
            &plan,
            &mut FakeRequest::new("GET", b"/v12/items?page=2", &[])
        )
        .is_some());
        assert!(
            matched_route(&plan, &mut FakeRequest::new("GET", b"/v12/items/3", &[])).is_none(),
            "anchored"
        );
        assert!(
            matched_route(&plan, &mut FakeRequest::new("GET", b"x/v1/items", &[])).is_none(),
            "anchored"
        );
    }

    #[test]
    fn header_rules_match_bytes_safely() {
        let plan = compile(
            route_with_match(
                r#"{ "headers": [ { "name": "X-User", "prefix": "adm" }, { "name": "x-env", "regex": "pr(od|e)" },
                                  { "name": "x-debug", "present": true } ] }"#,
            )
            .as_bytes(),
        )
        .unwrap();
        let ok: &[(&str, &[u8])] = &[("x-user", b"admin"), ("x-env", b"pre"), ("x-debug", b"")];
        assert!(matched_route(&plan, &mut FakeRequest::new("GET", b"/", ok)).is_some());
        let not_utf8: &[(&str, &[u8])] = &[
            ("x-user", b"adm\xff"),
            ("x-env", b"pr\xffod"),
            ("x-debug", b"1"),
        ];
        assert!(matched_route(&plan, &mut FakeRequest::new("GET", b"/", not_utf8)).is_none());
        let regex_partial: &[(&str, &[u8])] = &[
            ("x-user", b"adm"),
            ("x-env", b"production"),
            ("x-debug", b"1"),
        ];
        assert!(matched_route(&plan, &mut FakeRequest::new("GET", b"/", regex_partial)).is_none());
        let missing: &[(&str, &[u8])] = &[("x-user", b"adm"), ("x-env", b"prod")];
        assert!(matched_route(&plan, &mut FakeRequest::new("GET", b"\xff\xfe", missing)).is_none());
    }

    #[test]
    fn first_matching_route_wins_and_later_routes_are_not_asked() {
        let plan = compile(
            br#"{ "routes": [
                 { "name": "first", "match": { "prefix": "/a" }, "destinations": [ { "version": "v1", "weight": 1 } ] },
                 { "name": "second", "match": { "headers": [ { "name": "x", "present": true } ] },
                   "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#,
        )
        .unwrap();
        let mut request = FakeRequest::new("GET", b"/a", &[("x", b"1")]);
        assert_eq!(matched_route(&plan, &mut request).as_deref(), Some("first"));
        assert_eq!(
            request.header_lookups, 0,
            "the header of a later route was fetched"
        );
    }

    #[test]
    fn a_route_picks_its_destinations_by_weight() {
        let plan = compile(ISSUE_EXAMPLE.as_bytes()).unwrap();
        let route = &plan.routes[0];
        let mut state = crate::state::RouteState::new(route);
        let mut v1 = 0;
        for _ in 0..1000 {
            v1 += usize::from(route.destinations[state.pick()].version == "v1");
        }
        assert_eq!(v1, 700);
    }

    fn route_with_field(field: &str) -> String {
        format!(
            r#"{{ "routes": [ {{ "name": "r", {field},
                  "destinations": [ {{ "version": "v1", "weight": 1 }}, {{ "version": "v2", "weight": 1 }} ] }} ] }}"#
        )
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
                "routes[0].guard.window: \"500ms\" is outside 1s to 1h",
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

    #[test]
    fn retries_are_the_destinations_else_the_routes() {
        let plan = compile(
            br#"{ "routes": [ { "name": "r",
                 "retries": { "attempts": 2, "retry_on": "5xx, reset", "per_try_timeout": "200ms" },
                 "destinations": [
                   { "version": "v1", "weight": 1 },
                   { "version": "v2", "weight": 1,
                     "retries": { "attempts": 0, "retry_on": "connect-failure", "grpc_retry_on": "unavailable" } } ] } ] }"#,
        )
        .unwrap();
        let v1 = plan.routes[0].destinations[0].retries.as_ref().unwrap();
        assert_eq!(
            (v1.max_retries.as_str(), v1.retry_on.as_str()),
            ("2", "5xx,reset")
        );
        assert_eq!(v1.per_try_timeout_ms.as_deref(), Some("200"));
        let v2 = plan.routes[0].destinations[1].retries.as_ref().unwrap();
        assert_eq!(v2.max_retries, "0");
        assert_eq!(v2.per_try_timeout_ms, None);
        assert_eq!(v2.grpc_retry_on.as_deref(), Some("unavailable"));
        let plan = compile(route_with("[{\"version\":\"v1\",\"weight\":1}]").as_bytes()).unwrap();
        assert_eq!(plan.routes[0].destinations[0].retries, None);
    }

    #[test]
    fn retry_errors_name_their_field() {
        let errors = errors_of(&route_with_field(
            r#""retries": { "attempts": 11, "retry_on": "5xx,teapot", "per_try_timeout": "0s" }"#,
        ));
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert_eq!(
            errors[0],
            "routes[0].retries.attempts: expected an integer from 0 to 10, got 11"
        );
        assert!(
            errors[1].starts_with("routes[0].retries.per_try_timeout: "),
            "{errors:?}"
        );
        assert!(
            errors[2].starts_with(
                "routes[0].retries.retry_on: unknown retry condition \"teapot\"; expected a comma-separated list of 5xx, gateway-error"
            ),
            "{errors:?}"
        );
        assert_error(
            &route_with_field(r#""retries": {}"#),
            "routes[0].retries.attempts: required: an integer from 0 to 10",
        );
        assert_error(
            &route_with_field(r#""retries": {}"#),
            "routes[0].retries.retry_on: required: Envoy retry conditions, e.g. \"5xx,reset\"",
        );
    }

    #[test]
    fn fault_errors_name_their_field() {
        assert_eq!(
            errors_of(&route_with_field(
                r#""fault": { "abort": { "status": 99, "percent": 100.5 }, "delay": { "fixed": "0s", "percent": 1.005 } }"#
            )),
            [
                "routes[0].fault.abort.status: expected an integer from 200 to 599, got 99",
                "routes[0].fault.abort.percent: expected a percentage from 0 to 100 with at most two decimals, got 100.5",
                "routes[0].fault.delay.fixed: \"0s\" is shorter than the minimum of 1ms",
                "routes[0].fault.delay.percent: expected a percentage with at most two decimals, got 1.005",
            ]
        );
        assert_error(
            &route_with_field(r#""fault": {}"#),
            "routes[0].fault: expected at least one of abort, delay",
        );
        assert_error(
            &route_with_field(r#""fault": { "abort": { "percent": 1 } }"#),
            "routes[0].fault.abort.status: required: an HTTP status from 200 to 599",
        );
        assert_error(
            &route_with_field(r#""fault": { "delay": { "fixed": "1s" } }"#),
            "routes[0].fault.delay.percent: required: a percentage from 0 to 100",
        );
    }

    #[test]
    fn a_versions_fault_replaces_the_routes() {
        let plan = compile(
            br#"{ "routes": [ { "name": "r", "fault": { "abort": { "status": 503, "percent": 10 } },
                 "destinations": [
                   { "version": "v1", "weight": 1 },
                   { "version": "v2", "weight": 1, "fault": { "delay": { "fixed": "50ms", "percent": 5.5 } } } ] } ] }"#,
        )
        .unwrap();
        use crate::split::fault::FaultKind;
        let kinds = |index: usize| {
            plan.routes[0].destinations[index]
                .fault
                .as_ref()
                .unwrap()
                .kinds()
        };
        assert_eq!(kinds(0), [FaultKind::Abort]);
        assert_eq!(kinds(1), [FaultKind::Delay]);
    }
}
