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
//! Only the top level is read, leniently: the rest of the config is what was refused. The
//! module's size is a target (docs/performance.md): this reads with code the compiler already
//! has.

use crate::plan::{Plan, DEFAULT_CLUSTER_HEADER, DEFAULT_VERSION_HEADER};

/// The `on_invalid_config` value that asks for the pass-through plan.
pub const PASS_THROUGH: &str = "pass_through";

/// The pass-through plan for a refused config, if its top level is a JSON object with
/// `"on_invalid_config": "pass_through"`. Its `version_header` and `cluster_header` are owned
/// where they are strings that are not pseudo-headers and differ, the defaults otherwise.
pub fn pass_through_plan(json: &[u8]) -> Option<Plan> {
    // The compiler's own parser: its errors are the refusal's, already reported.
    let value = super::read::parse_json(json, &mut Vec::new())?;
    let mut asked = false;
    let mut version = DEFAULT_VERSION_HEADER;
    let mut cluster = DEFAULT_CLUSTER_HEADER;
    // One pass over the top level (rather than a lookup per field): the module carries no
    // map lookup code for it.
    for (key, value) in value.as_object()? {
        let text = value.as_str();
        match key.as_str() {
            "on_invalid_config" => asked = text == Some(PASS_THROUGH),
            "version_header" => version = ownable(text).unwrap_or(version),
            "cluster_header" => cluster = ownable(text).unwrap_or(cluster),
            _ => {}
        }
    }
    if !asked {
        return None;
    }
    let (version, cluster) = (version.to_ascii_lowercase(), cluster.to_ascii_lowercase());
    Some(if version == cluster {
        Plan::pass_through(
            DEFAULT_VERSION_HEADER.to_string(),
            DEFAULT_CLUSTER_HEADER.to_string(),
        )
    } else {
        Plan::pass_through(version, cluster)
    })
}

/// A header name pass-through may remove: any but a pseudo-header (`:path`), whose removal
/// would break the request. A name Envoy cannot hold is a removal that finds nothing.
fn ownable(name: Option<&str>) -> Option<&str> {
    name.filter(|name| !name.is_empty() && !name.starts_with(':'))
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
            &br#"{ "on_invalid_config": "pass_through", "version_header": "", "cluster_header": 7 }"#[..],
            br#"{ "on_invalid_config": "pass_through", "version_header": ":path", "cluster_header": ":authority" }"#,
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
