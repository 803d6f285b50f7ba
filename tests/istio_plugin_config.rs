//! The Istio example, as far as a machine without Kubernetes takes it: the TrafficExtension of
//! examples/istio/traffic-split.yaml, its pluginConfig converted to JSON the way Istio converts
//! a protobuf Struct, loads in the real Envoy and splits, cuts and counts as the shipped
//! envoy/envoy.yaml does; and the sidecar bootstrap override of examples/istio/busyclient.yaml
//! turns the filter's stats into the same Prometheus labels. Every other plugin config under
//! examples/ (the WasmPlugins for Istio up to 1.29, the ingress gateway's, the ambient
//! waypoint's, Envoy Gateway's) loads and splits in the real Envoy too, as its resource hands
//! it over.

use traffic_split_e2e as support;

use serde_yaml::Value as Yaml;
use std::collections::BTreeMap;
use support::{exclusive, repo_root, Envoy, EnvoyConfig};
use traffic_split_check::istio_struct::to_struct_json;
use traffic_split_check::plugins::filter_configs;

/// All documents of a multi-document YAML file under examples/istio/ (separated by lines of
/// `---`, as they are written there).
fn istio_example(file: &str) -> Vec<Yaml> {
    let path = repo_root().join("examples/istio").join(file);
    let text = std::fs::read_to_string(&path).expect("read the Istio example");
    text.split("\n---\n")
        .map(|document| serde_yaml::from_str(document).expect("valid YAML"))
        .collect()
}

fn document<'a>(documents: &'a [Yaml], kind: &str) -> &'a Yaml {
    documents
        .iter()
        .find(|document| document["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("a {kind} in the example"))
}

/// The TrafficExtension's pluginConfig, as the JSON Envoy hands the filter in Istio.
fn wasm_plugin_config() -> String {
    let documents = istio_example("traffic-split.yaml");
    let plugin = document(&documents, "TrafficExtension");
    let config = to_struct_json(
        &plugin["spec"]["wasm"]["pluginConfig"],
        "spec.wasm.pluginConfig",
    )
    .expect("the pluginConfig converts as Istio converts it");
    serde_json::to_string(&config).expect("JSON")
}

/// Every plugin config of a YAML file under examples/, as its resource hands it to the filter.
fn example_configs(file: &str) -> Vec<(String, String)> {
    let text =
        std::fs::read_to_string(repo_root().join("examples").join(file)).expect("read the example");
    filter_configs(&text)
        .into_iter()
        .map(|(origin, json)| (format!("{file}: {origin}"), json.to_string()))
        .collect()
}

/// The stats config (tag rules, histogram buckets) the busyclient's sidecar gets from its
/// bootstrap override.
fn bootstrap_override_stats_config() -> Yaml {
    let documents = istio_example("busyclient.yaml");
    let config_map = document(&documents, "ConfigMap");
    let bootstrap = config_map["data"]["custom_bootstrap.json"]
        .as_str()
        .expect("a custom_bootstrap.json");
    // JSON is YAML: read it straight into the Envoy document's value type.
    let bootstrap: Yaml = serde_yaml::from_str(bootstrap).expect("the override is JSON");
    bootstrap["stats_config"].clone()
}

/// What 1,000 GET /hello did: responses by (status, version the upstream saw), and per version
/// (requests, 2xx, 5xx, timeouts) from Envoy's Prometheus stats.
#[derive(Debug, PartialEq)]
struct Observed {
    responses: BTreeMap<(u16, String), usize>,
    per_version: BTreeMap<&'static str, (u64, u64, u64, u64)>,
    unmatched: u64,
}

fn observe(envoy: &Envoy) -> Observed {
    let mut connection = envoy.connect();
    let mut responses = BTreeMap::new();
    for _ in 0..1000 {
        let response = connection.get("/hello").expect("request");
        let version = response.header("x-upstream-saw-version").unwrap_or("-");
        *responses
            .entry((response.status, version.to_string()))
            .or_default() += 1;
    }
    let metrics = envoy.admin.metrics();
    let per_version = ["v1", "v2"]
        .into_iter()
        .map(|version| {
            let counts = metrics.outcome("hello", version);
            (version, counts)
        })
        .collect();
    Observed {
        responses,
        per_version,
        unmatched: metrics.count("traffic_split_unmatched_total", &[]),
    }
}

/// The experiment's outcome: 700 to v1 with the 2 ms deadline, 300 to v2, every v2 request cut
/// by the deadline and counted as a timeout of v2. The deadline applies to v1 too, so a machine
/// that stalls Envoy for 2 ms may cut a few v1 requests; each is then a v1 timeout.
fn assert_experiment_outcome(observed: &Observed) {
    let (v1_requests, v1_ok, v1_errors, v1_timeouts) = observed.per_version["v1"];
    assert_eq!(
        observed.per_version["v2"],
        (300, 0, 300, 300),
        "{observed:?}"
    );
    assert_eq!(v1_requests, 700, "{observed:?}");
    assert_eq!(v1_ok + v1_errors, 700, "{observed:?}");
    assert_eq!(v1_errors, v1_timeouts, "{observed:?}");
    assert!(
        v1_ok >= support::V1_WITHIN_2MS_AT_LEAST,
        "v1 answered only {v1_ok} of 700 within 2 ms"
    );
    let answers = |status, version: &str| {
        let key = (status, version.to_string());
        observed.responses.get(&key).copied().unwrap_or(0) as u64
    };
    assert_eq!(answers(200, "v1"), v1_ok, "{observed:?}");
    assert_eq!(answers(504, "-"), 300 + v1_timeouts, "{observed:?}");
    assert_eq!(observed.unmatched, 0);
}

#[test]
fn plugin_config_under_test_carries_numbers_as_doubles_as_istio_does() {
    let json = wasm_plugin_config();
    assert!(json.contains(r#""weight":70.0"#), "{json}");
    assert!(json.contains(r#""weight":30.0"#), "{json}");
}

#[test]
fn wasm_plugin_config_splits_cuts_and_counts_like_the_shipped_envoy_config() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let shipped = Envoy::start(EnvoyConfig::shipped());
    let shipped_observed = observe(&shipped);
    drop(shipped);
    assert_experiment_outcome(&shipped_observed);

    // The Istio config, with the tag rules and buckets of the sidecar's bootstrap override in
    // place of envoy.yaml's: the labelled metrics read above must come out of those rules too.
    let mut istio = EnvoyConfig::shipped().with_plugin_config(&wasm_plugin_config());
    let overrides = bootstrap_override_stats_config();
    for field in ["stats_tags", "histogram_bucket_settings"] {
        istio.document["stats_config"][field] = overrides[field].clone();
    }
    let istio = Envoy::start(istio);
    let istio_observed = observe(&istio);
    assert_experiment_outcome(&istio_observed);
    // The override's buckets hold a bound at the 2 ms deadline (the histogram is in µs).
    assert!(
        istio.admin.prometheus_lines().iter().any(|line| line.starts_with(
            r#"traffic_split_request_duration_microseconds_bucket{plugin="traffic-split",route="hello",version="v2",le="2000"}"#
        )),
        "no 2 ms bucket in the sidecar's histogram"
    );

    // Beyond a scheduling hiccup on v1, the two runs are the same.
    assert_eq!(
        istio_observed.per_version["v2"],
        shipped_observed.per_version["v2"]
    );
    assert_eq!(
        istio_observed.per_version["v1"].0,
        shipped_observed.per_version["v1"].0
    );
}

#[test]
fn wasm_plugin_config_leaves_requests_for_other_services_alone() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let envoy = Envoy::start(EnvoyConfig::shipped().with_plugin_config(&wasm_plugin_config()));
    let mut connection = envoy.connect();
    // Another service the client calls on port 8080: the route's :authority match keeps the
    // filter out of it, and the mesh's default route takes it (the local Envoy's is v1).
    let response = connection
        .send_raw(b"GET /hello HTTP/1.1\r\nhost: reviews.default:8080\r\n\r\n")
        .expect("request");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-upstream-saw-version"), None);
    let response = connection
        .send_raw(b"GET /hello HTTP/1.1\r\nhost: springbootapp-svc.springistiodemo:8080\r\n\r\n")
        .expect("request");
    assert_eq!(response.header("x-upstream-saw-version"), Some("v1"));
    let metrics = envoy.admin.metrics();
    assert_eq!(metrics.count("traffic_split_unmatched_total", &[]), 1);
    assert_eq!(
        metrics.count(
            "traffic_split_requests_total",
            &[("route", "hello"), ("version", "v1")]
        ),
        1
    );
}

#[test]
fn every_mesh_plugin_config_in_the_examples_loads_and_splits_in_envoy() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let mut configs = Vec::new();
    for file in [
        "istio/wasmplugin/traffic-split.yaml",
        "istio/ingress-gateway.yaml",
        "istio/wasmplugin/ingress-gateway.yaml",
        "ambient/traffic-split.yaml",
        "envoy-gateway/traffic-split.yaml",
    ] {
        let found = example_configs(file);
        assert_eq!(found.len(), 1, "{file}: {found:?}");
        configs.extend(found);
    }
    // The WasmPlugin carries the TrafficExtension's config, as Istio converts it.
    assert_eq!(configs[0].1, wasm_plugin_config());
    for (origin, config) in configs {
        let route = serde_json::from_str::<serde_json::Value>(&config).expect("JSON")["routes"][0]
            ["name"]
            .as_str()
            .expect("a route name")
            .to_string();
        let envoy = Envoy::start(EnvoyConfig::shipped().with_plugin_config(&config));
        let mut connection = envoy.connect();
        for _ in 0..20 {
            // The host the configs that match :authority expect.
            connection
                .send_raw(
                    b"GET /hello HTTP/1.1\r\nhost: springbootapp-svc.springistiodemo:8080\r\n\r\n",
                )
                .expect("request");
        }
        let metrics = envoy.admin.metrics();
        let split: u64 = ["v1", "v2"]
            .iter()
            .map(|version| metrics.version_count("traffic_split_requests_total", &route, version))
            .sum();
        assert_eq!(
            split, 20,
            "{origin}: the filter did not split every request"
        );
        assert_eq!(
            metrics.count("traffic_split_invalid_config_requests_total", &[]),
            0,
            "{origin}"
        );
        envoy.assert_vm_never_failed();
    }
}
