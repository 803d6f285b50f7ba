//! The plugin configuration as users write it (JSON: Envoy's `configuration` StringValue, or
//! Istio's `pluginConfig` Struct converted to JSON), and [`compile`], which turns it into a
//! [`Plan`] or refuses it with every error at once, each with its JSON path
//! (`routes[0].destinations[1].weight: ...`).
//!
//! Compiling is three steps, each adding to the same list of errors:
//! 1. [`limits`] refuses a config too large to read;
//! 2. [`read`] parses the JSON (refusing duplicate keys) and reads it into the [`raw`] types,
//!    reporting unknown fields (typos such as `wieght`) with the fields allowed there. Only a
//!    value of the wrong JSON type (a list where an object belongs) stops reading.
//! 3. `check` checks the typed config, one file per section (names, header names, weights,
//!    durations, regexes, duplicates), and builds the plan.
//!
//! [`pass_through`] is what a refused config that asks for it gets instead.

mod check;
pub mod error;
pub mod limits;
pub mod pass_through;
pub mod raw;
pub mod read;
#[cfg(test)]
mod test_configs;

pub use check::values::{MAX_NAME_LEN, MAX_REGEX_LEN, MAX_WEIGHT};
pub use check::MAX_ROLLOUT_STEPS;
pub use error::{describe_errors, ConfigError};

use crate::plan::Plan;
use serde_json::Value;

/// Parses and validates a config, returning the plan or every error found. A key that
/// appears twice in one object is an error (`routes[0].destinations[1].weight: duplicate
/// field`), not last-wins.
pub fn compile(json: &[u8]) -> Result<Plan, Vec<ConfigError>> {
    if let Some(too_large) = limits::check_config_size(json.len()) {
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
    match check::check(&config) {
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
    //! Compiling a whole config: every error at once, hostile input, a parsed value.
    use super::test_configs::{assert_error, errors_of, route_with};
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

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
}
