//! The second shipped module, `traffic_split_requests.wasm` (no response-headers or log
//! callback), in a real Envoy: it splits and counts requests like the full module under a
//! config in `"metrics": "requests"`, and refuses at configure, naming the field, a config
//! that needs the response path, which it could only serve half.

use traffic_split_e2e as support;

use std::collections::BTreeMap;
use support::{exclusive, requests_module, Envoy, EnvoyConfig, Module};

/// Why these tests run only with the Wasm module (`TRAFFIC_SPLIT_MODULE`).
const WASM_ONLY: &str =
    "traffic_split_requests.wasm is a Wasm module; the native module has one build";

const REQUESTS_70_30: &str = r#"{ "metrics": "requests",
  "routes": [{ "name": "hello", "match": { "prefix": "/hello" },
    "destinations": [
      { "version": "v1", "cluster": "springbootapp-v1", "weight": 70 },
      { "version": "v2", "cluster": "springbootapp-v2", "weight": 30 } ] }] }"#;

#[test]
fn the_requests_module_splits_and_counts_a_requests_config() {
    if !Module::runs_with(Module::Wasm, WASM_ONLY) || support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_wasm_module(&requests_module())
            .with_plugin_config(REQUESTS_70_30),
    );
    let mut connection = envoy.connect();
    let mut seen = BTreeMap::<String, u64>::new();
    for _ in 0..100 {
        let response = connection
            .request("GET", "/hello", &[("x-split-version", "v2")])
            .expect("request");
        assert_eq!(response.status, 200);
        let version = response.header("x-upstream-saw-version").unwrap_or("-");
        *seen.entry(version.to_owned()).or_default() += 1;
    }
    assert_eq!(
        seen,
        BTreeMap::from([("v1".to_owned(), 70), ("v2".to_owned(), 30)]),
        "the split, whatever version the client asked for"
    );
    let metrics = envoy.admin.metrics();
    for (version, expected) in [("v1", 70), ("v2", 30)] {
        assert_eq!(
            metrics.version_count("traffic_split_requests_total", "hello", version),
            expected
        );
    }
    envoy.assert_vm_never_failed();
}

#[test]
fn the_requests_module_refuses_a_config_that_needs_the_response_path() {
    if !Module::runs_with(Module::Wasm, WASM_ONLY) || support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let refused = [
        (support::SPLIT_70_30, "metrics: \"full\" (the default)"),
        (
            &REQUESTS_70_30.replace(
                r#""match""#,
                r#""guard": { "max_error_ratio": 0.1 }, "match""#,
            )[..],
            "routes[0].guard: ",
        ),
    ];
    for (config, field) in refused {
        let failure = Envoy::try_start(
            EnvoyConfig::shipped()
                .with_wasm_module(&requests_module())
                .with_plugin_config(config),
        )
        .err()
        .unwrap_or_else(|| panic!("Envoy started the requests module with {config}"));
        let refusal = failure
            .log
            .lines()
            .find(|line| line.contains("configuration refused"))
            .unwrap_or_else(|| panic!("no refusal in the log:\n{}", failure.log));
        assert!(
            refusal.contains(&format!("configuration refused: {field}"))
                && refusal.contains("use traffic_split.wasm"),
            "{refusal}"
        );
    }
}
