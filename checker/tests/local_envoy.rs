//! `make envoy-up CONFIG=file.json` (and `make run`, `make watch`): every sample config under
//! examples/configs, put into the local bootstrap as `make` does, runs in the real Envoy: each
//! route's sample request reaches the versions the config gives weight, through the clusters
//! it names, and the upstream sees the version the filter wrote. A refused config stops `make`
//! before anything starts.

use traffic_split_e2e as support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{exclusive, repo_root, Envoy, EnvoyConfig};
use traffic_split::config::compile;
use traffic_split_check::local_envoy::{bootstrap, sample_requests};

const ROUNDS: usize = 40;

fn sample_configs() -> Vec<PathBuf> {
    let mut configs: Vec<PathBuf> = std::fs::read_dir(repo_root().join("examples/configs"))
        .expect("examples/configs")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    configs.sort();
    configs
}

/// The bootstrap `make` writes for `config`, in a file of the test's own.
fn local_bootstrap(config: &Path) -> PathBuf {
    let text = std::fs::read_to_string(config).expect("read the config");
    let plan = compile(text.as_bytes()).expect("a sample config compiles");
    let base = std::fs::read_to_string(repo_root().join("envoy/envoy.yaml")).expect("base");
    let yaml = bootstrap(&base, &text, &plan).expect("a bootstrap");
    let name = config
        .file_stem()
        .and_then(|stem| stem.to_str())
        .unwrap_or("config");
    let path = std::env::temp_dir().join(format!(
        "traffic-split-local-{}-{name}.yaml",
        std::process::id()
    ));
    std::fs::write(&path, yaml).expect("write the bootstrap");
    path
}

#[test]
fn every_sample_config_runs_in_the_local_envoy_and_reaches_its_versions() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let mut routes_checked = 0;
    for config in sample_configs() {
        let text = std::fs::read_to_string(&config).expect("read the config");
        let plan = compile(text.as_bytes()).expect("compiles");
        let path = local_bootstrap(&config);
        let mut envoy_config = EnvoyConfig::from_file(&path);
        assert_eq!(
            envoy_config.plugin_config(),
            text,
            "the config goes in as written"
        );
        let envoy = Envoy::start(envoy_config);
        let _ = std::fs::remove_file(&path);
        for sample in sample_requests(&plan).into_iter().flatten() {
            let route = plan
                .routes
                .iter()
                .find(|route| route.name == sample.route)
                .expect("the sample's route");
            let headers: Vec<(&str, &str)> = sample
                .headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect();
            // What the upstream saw, by version: (requests, the clusters it was sent through).
            let mut seen: BTreeMap<String, usize> = BTreeMap::new();
            for _ in 0..ROUNDS {
                let mut connection = envoy.connect();
                let response = connection
                    .request(&sample.method, &sample.path, &headers)
                    .expect("a response");
                if let (Some(version), Some(cluster)) = (
                    response.header("x-upstream-saw-version"),
                    response.header("x-upstream-saw-cluster"),
                ) {
                    let destination = route
                        .destinations
                        .iter()
                        .find(|destination| destination.version == version)
                        .unwrap_or_else(|| {
                            panic!("{}: unknown version {version}", config.display())
                        });
                    assert_eq!(
                        destination.cluster.as_deref(),
                        Some(cluster),
                        "{}: route {} version {version}",
                        config.display(),
                        sample.route
                    );
                    *seen.entry(version.to_string()).or_default() += 1;
                }
            }
            let weights = route.configured_weights();
            for (destination, weight) in route.destinations.iter().zip(weights) {
                // Every version with a weight of at least 1 in 20 gets some of 40 requests
                // (a 2 ms deadline may cut some: the demo's v2 answers in 5 ms).
                let total: u32 = route.configured_weights().iter().sum();
                let share = f64::from(weight) / f64::from(total.max(1));
                if share >= 0.05 {
                    let metrics = envoy.admin.metrics();
                    let requests = metrics.count(
                        "traffic_split_requests_total",
                        &[("route", &sample.route), ("version", &destination.version)],
                    );
                    assert!(
                        requests > 0,
                        "{}: route {} version {} got no request",
                        config.display(),
                        sample.route,
                        destination.version
                    );
                } else if weight == 0 && route.ramp.is_none() {
                    // (A ramp's version starts at 0 and moves by the clock.)
                    assert!(!seen.contains_key(&destination.version));
                }
            }
            assert!(
                !seen.is_empty(),
                "{}: route {}: no answer reached an upstream",
                config.display(),
                sample.route
            );
            routes_checked += 1;
        }
    }
    assert!(routes_checked >= 4, "only {routes_checked} routes checked");
}

#[test]
fn make_stops_at_a_refused_config_before_anything_is_started() {
    let output = Command::new("make")
        .args([
            "--no-print-directory",
            "local-config",
            "CONFIG=checker/tests/broken/negative-weight.json",
            "LOCAL_ENVOY_YAML=build/local-envoy-refused-test.yaml",
        ])
        .current_dir(repo_root())
        .output()
        .expect("run make");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_ne!(output.status.code(), Some(0));
    assert!(
        stdout.contains("weight: expected an integer from 0 to 1000000, got -5"),
        "{stdout}"
    );
    assert!(
        stderr.contains("is refused (above); nothing was started"),
        "{stderr}"
    );
    assert!(!repo_root()
        .join("build/local-envoy-refused-test.yaml")
        .exists());
}

#[test]
fn clusters_whose_names_clean_alike_or_run_long_each_reach_their_own_upstream() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let long = format!("outbound|8080|v9|{}.svc.cluster.local", "a".repeat(120));
    let clusters = ["svc.v3", "svc-v3", long.as_str()];
    let routes: Vec<String> = clusters
        .iter()
        .enumerate()
        .map(|(index, cluster)| {
            format!(
                r#"{{"name": "r{index}", "match": {{"prefix": "/r{index}"}},
                   "destinations": [{{"version": "v{index}", "cluster": "{cluster}", "weight": 1}}]}}"#
            )
        })
        .collect();
    let text = format!("{{\"routes\": [{}]}}\r\n", routes.join(",\r\n"));
    let plan = compile(text.as_bytes()).expect("compiles");
    let base = std::fs::read_to_string(repo_root().join("envoy/envoy.yaml")).expect("base");
    let yaml = bootstrap(&base, &text, &plan).expect("a bootstrap");
    let path = std::env::temp_dir().join(format!(
        "traffic-split-local-{}-clusters.yaml",
        std::process::id()
    ));
    std::fs::write(&path, yaml).expect("write the bootstrap");
    let mut envoy_config = EnvoyConfig::from_file(&path);
    assert_eq!(envoy_config.plugin_config(), text, "byte for byte");
    let envoy = Envoy::start(envoy_config);
    let _ = std::fs::remove_file(&path);
    for (index, cluster) in clusters.iter().enumerate() {
        let response = envoy
            .connect()
            .request("GET", &format!("/r{index}"), &[])
            .expect("a response");
        assert_eq!(response.status, 200);
        assert_eq!(response.header("x-upstream-saw-cluster"), Some(*cluster));
        assert_eq!(response.body_text(), format!("Hello from {cluster}\n"));
    }
}
