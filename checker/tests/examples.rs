//! Every plugin config shipped under examples/ passes the checker: the JSON files, the
//! TrafficExtensions and WasmPlugins of examples/istio/ and examples/ambient/ (converted as
//! Istio converts them) and the EnvoyExtensionPolicy of examples/envoy-gateway/.

use std::path::PathBuf;
use traffic_split_check::{Report, Verdict};

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

#[test]
fn every_config_under_examples_passes() {
    let report = Report::check(&[examples()]);
    assert!(report.passed(), "{report}");
    assert_eq!(report.errors(), Vec::<String>::new());
}

#[test]
fn the_istio_traffic_extension_is_found_and_split_70_30_with_a_2ms_deadline() {
    let report = Report::check(&[examples().join("istio")]);
    let plugins: Vec<_> = report
        .entries
        .iter()
        .filter(|entry| {
            entry
                .origin
                .ends_with("TrafficExtension istioclient/traffic-split")
        })
        .collect();
    assert_eq!(plugins.len(), 1, "{report}");
    let Verdict::Ok(plan) = &plugins[0].verdict else {
        panic!("the example TrafficExtension is valid:\n{report}");
    };
    let route = &plan.routes[0];
    assert_eq!(route.name, "hello");
    let split: Vec<(&str, u32, Option<u64>)> = route
        .destinations
        .iter()
        .map(|d| (d.version.as_str(), d.weight, d.deadline_ms))
        .collect();
    assert_eq!(split, [("v1", 70, Some(2)), ("v2", 30, Some(2))]);
    // The placeholder digest is called out, not silently accepted.
    assert!(
        plugins[0]
            .notes
            .iter()
            .any(|note| note.contains("placeholder")),
        "{report}"
    );
}

#[test]
fn yaml_without_a_plugin_resource_is_skipped_when_searching_a_folder() {
    let report = Report::check(&[examples().join("istio")]);
    let skipped: Vec<&str> = report
        .entries
        .iter()
        .filter(|entry| matches!(entry.verdict, Verdict::Skipped(_)))
        .filter_map(|entry| entry.origin.rsplit('/').next())
        .collect();
    assert!(skipped.contains(&"springbootapp.yaml"), "{report}");
    assert!(skipped.contains(&"native.yaml"), "{report}");
}

#[test]
fn json_that_is_not_a_plugin_config_is_skipped_when_searching_a_folder() {
    let dashboard = examples().join("observability/grafana-dashboard.json");
    let report = Report::check(&[examples().join("observability")]);
    let skipped: Vec<&str> = report
        .entries
        .iter()
        .filter(|entry| matches!(entry.verdict, Verdict::Skipped(_)))
        .filter_map(|entry| entry.origin.rsplit('/').next())
        .collect();
    assert_eq!(
        skipped,
        [
            "argo-analysis-template.yaml",
            "flagger-metric-templates.yaml",
            "grafana-dashboard.json",
            "prometheus.yml",
            "rules-test.yml",
            "rules.yml"
        ],
        "{report}"
    );
    // Named on its own, it must be a config.
    assert!(!Report::check(&[dashboard]).passed());
}

#[test]
fn every_kind_of_plugin_resource_in_the_examples_is_found_and_valid() {
    let report = Report::check(&[examples()]);
    for origin in [
        "istio/traffic-split.yaml: TrafficExtension istioclient/traffic-split",
        "istio/ingress-gateway.yaml: TrafficExtension istio-system/traffic-split-edge",
        "istio/wasmplugin/traffic-split.yaml: WasmPlugin istioclient/traffic-split",
        "istio/wasmplugin/ingress-gateway.yaml: WasmPlugin istio-system/traffic-split-edge",
        "ambient/traffic-split.yaml: TrafficExtension springistiodemo/traffic-split",
        "envoy-gateway/traffic-split.yaml: EnvoyExtensionPolicy springistiodemo/traffic-split wasm traffic-split",
    ] {
        let entry = report
            .entries
            .iter()
            .find(|entry| entry.origin.ends_with(origin))
            .unwrap_or_else(|| panic!("no {origin}:\n{report}"));
        assert!(matches!(entry.verdict, Verdict::Ok(_)), "{origin}:\n{report}");
    }
}
