//! Configs and helpers the config's tests share (tests only).

use super::compile;

/// The issue's example: one route, two versions, a route timeout and a version's own.
pub const ISSUE_EXAMPLE: &str = r#"{
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

/// Every error of a config, as users read them; none if it compiles.
pub fn errors_of(json: &str) -> Vec<String> {
    match compile(json.as_bytes()) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

/// `expected` is among the errors of the config.
pub fn assert_error(json: &str, expected: &str) {
    let errors = errors_of(json);
    assert!(
        errors.iter().any(|e| e == expected),
        "expected {expected:?} in {errors:?}"
    );
}

/// A route `r` with these destinations (JSON).
pub fn route_with(destinations: &str) -> String {
    format!(r#"{{ "routes": [ {{ "name": "r", "destinations": {destinations} }} ] }}"#)
}

/// A route `r` with this match and one version.
pub fn route_with_match(matcher: &str) -> String {
    format!(
        r#"{{ "routes": [ {{ "name": "r", "match": {matcher},
              "destinations": [ {{ "version": "v1", "weight": 1 }} ] }} ] }}"#
    )
}

/// A route `r` with this field and two versions of weight 1.
pub fn route_with_field(field: &str) -> String {
    format!(
        r#"{{ "routes": [ {{ "name": "r", {field},
              "destinations": [ {{ "version": "v1", "weight": 1 }}, {{ "version": "v2", "weight": 1 }} ] }} ] }}"#
    )
}
