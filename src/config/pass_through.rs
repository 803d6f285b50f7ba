//! `"on_invalid_config": "pass_through"`: a config the filter refuses, but that asks to be
//! accepted anyway in a safe state, so that a proxy which has no earlier config (an Istio pod
//! that starts while a bad config is in place) passes requests on instead of failing every
//! one of them (docs/reliability.md has the measurements behind this).
//!
//! The pass-through plan has no routes: every request loses the owned version and cluster
//! headers, so it takes the proxy's default route, and is counted under
//! `traffic_split_invalid_config_requests_total`; the adapter logs the config's errors at
//! error level when it accepts it.
//!
//! Only the top level is read, leniently: the rest of the config is what was refused.

use crate::plan::{Plan, DEFAULT_CLUSTER_HEADER, DEFAULT_VERSION_HEADER};
use crate::validate::{is_ownable_header_name, PASS_THROUGH};
use serde_json::{Map, Value};

/// The pass-through plan for a refused config, if its top level is a JSON object with
/// `"on_invalid_config": "pass_through"`. Its `version_header` and `cluster_header` are owned
/// where they are valid and differ, the defaults otherwise.
pub fn pass_through_plan(json: &[u8]) -> Option<Plan> {
    let value: Value = serde_json::from_slice(json).ok()?;
    let object = value.as_object()?;
    if object.get("on_invalid_config")?.as_str()? != PASS_THROUGH {
        return None;
    }
    let version = header_name(object, "version_header", DEFAULT_VERSION_HEADER);
    let cluster = header_name(object, "cluster_header", DEFAULT_CLUSTER_HEADER);
    Some(if version == cluster {
        Plan::pass_through(
            DEFAULT_VERSION_HEADER.to_string(),
            DEFAULT_CLUSTER_HEADER.to_string(),
        )
    } else {
        Plan::pass_through(version, cluster)
    })
}

fn header_name(object: &Map<String, Value>, field: &str, default: &str) -> String {
    object
        .get(field)
        .and_then(Value::as_str)
        .filter(|name| is_ownable_header_name(name))
        .unwrap_or(default)
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::compile;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn owned(plan: &Plan) -> (&str, &str) {
        (&plan.version_header, &plan.cluster_header)
    }

    #[test]
    fn a_refused_config_that_asks_for_it_gets_the_pass_through_plan() {
        let json = br#"{ "on_invalid_config": "pass_through", "version_header": "X-Canary",
            "routes": [ { "name": "hello", "destinations": [ { "version": "v1", "weight": -5 } ] } ] }"#;
        assert!(compile(json).is_err());
        let plan = pass_through_plan(json).expect("a pass-through plan");
        assert!(plan.pass_through);
        assert!(plan.routes.is_empty());
        assert_eq!(owned(&plan), ("x-canary", "x-split-cluster"));
    }

    #[test]
    fn only_an_object_with_the_exact_value_asks_for_it() {
        for json in [
            &br#"{ "routes": [] }"#[..],
            br#"{ "on_invalid_config": "refuse", "routes": [] }"#,
            br#"{ "on_invalid_config": "pass-through", "routes": [] }"#,
            br#"{ "on_invalid_config": true }"#,
            br#"[ { "on_invalid_config": "pass_through" } ]"#,
            br#"{ "on_invalid_config": "pass_through", "routes": [ "#,
            b"",
        ] {
            assert!(
                pass_through_plan(json).is_none(),
                "{}",
                String::from_utf8_lossy(json)
            );
        }
    }

    #[test]
    fn header_names_it_cannot_own_fall_back_to_the_defaults() {
        for json in [
            &br#"{ "on_invalid_config": "pass_through", "version_header": "x bad", "cluster_header": 7 }"#[..],
            br#"{ "on_invalid_config": "pass_through", "version_header": ":path", "cluster_header": "x-envoy-upstream-rq-timeout-ms" }"#,
            br#"{ "on_invalid_config": "pass_through", "version_header": "x-same", "cluster_header": "X-Same" }"#,
        ] {
            let plan = pass_through_plan(json).expect("a pass-through plan");
            assert_eq!(owned(&plan), (DEFAULT_VERSION_HEADER, DEFAULT_CLUSTER_HEADER));
        }
    }

    #[test]
    fn the_field_is_checked_in_a_config_that_compiles() {
        let route = r#""routes": [ { "name": "r", "destinations": [ { "version": "v1", "weight": 1 } ] } ]"#;
        let good = format!(r#"{{ "on_invalid_config": "pass_through", {route} }}"#);
        assert!(compile(good.as_bytes()).is_ok());
        let typo = format!(r#"{{ "on_invalid_config": "pass-through", {route} }}"#);
        let errors: Vec<String> = compile(typo.as_bytes())
            .expect_err("refused")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            errors,
            [r#"on_invalid_config: expected one of "refuse", "pass_through", got "pass-through""#]
        );
    }
}
