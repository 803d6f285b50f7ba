//! A bad configuration is refused in `on_configure` with one log line naming the field, and
//! nothing already serving is disturbed; in the static bootstrap, over LDS, and over ECDS as
//! Istio delivers a WasmPlugin, where a proxy that has no earlier config fails every request
//! unless the config asks to pass requests through (`on_invalid_config`).

mod support;

use std::collections::BTreeMap;
use support::{exclusive, Envoy, EnvoyConfig, ECDS_REJECTED};

const NEGATIVE_WEIGHT: &str = r#"{
  "routes": [{ "name": "hello", "destinations": [
    { "version": "v1", "cluster": "springbootapp-v1", "weight": 70 },
    { "version": "v2", "cluster": "springbootapp-v2", "weight": -5 } ] }]
}"#;

fn refusal_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| line.contains("configuration refused"))
        .collect()
}

/// Whatever Envoy is told to do when the filter fails: a failure policy governs a VM that
/// dies, not a config the filter refuses.
#[test]
fn bad_config_at_start_is_refused_with_the_field_path_in_envoys_log_even_failing_open() {
    let _machine = exclusive();
    type Configure = fn(EnvoyConfig) -> EnvoyConfig;
    let policies: [(&str, Configure); 4] = [
        ("the shipped FAIL_OPEN", |config| config),
        ("fail_open: true", |config| config.with_fail_open(true)),
        ("FAIL_RELOAD", |config| {
            config.with_failure_policy("FAIL_RELOAD")
        }),
        ("FAIL_CLOSED", |config| {
            config.with_failure_policy("FAIL_CLOSED")
        }),
    ];
    for (policy, configure) in policies {
        let config = configure(EnvoyConfig::shipped().with_plugin_config(NEGATIVE_WEIGHT));
        let failure = Envoy::try_start(config)
            .err()
            .unwrap_or_else(|| panic!("{policy}: Envoy started with a config the filter refused"));
        assert_ne!(failure.exit_code, Some(0));
        let lines = refusal_lines(&failure.log);
        assert!(
            !lines.is_empty(),
            "{policy}: no refusal in the log:\n{}",
            failure.log
        );
        assert!(
            lines[0].contains(
                "routes[0].destinations[1].weight: expected an integer from 0 to 1000000, got -5"
            ),
            "{policy}: {}",
            lines[0]
        );
    }
}

#[test]
fn every_error_is_named_on_one_line() {
    let _machine = exclusive();
    let config = r#"{
      "routes": [{ "name": "bad name!", "timeout": "2 seconds", "destinations": [
        { "version": "v1", "wieght": 70 } ] }]
    }"#;
    let failure = Envoy::try_start(EnvoyConfig::shipped().with_plugin_config(config))
        .err()
        .expect("Envoy must refuse this config");
    let lines = refusal_lines(&failure.log);
    let line = lines.first().expect("a refusal line");
    for expected in [
        "routes[0].name: expected 1-64 characters of [A-Za-z0-9_-]",
        "routes[0].timeout: expected a duration",
        "routes[0].destinations[0].wieght: unknown field",
        "routes[0].destinations[0].weight: required",
    ] {
        assert!(line.contains(expected), "missing {expected:?} in {line}");
    }
}

fn versions_seen(envoy: &Envoy, count: usize) -> BTreeMap<String, usize> {
    let mut connection = envoy.connect();
    let mut seen = BTreeMap::new();
    for _ in 0..count {
        let response = connection.get("/hello").expect("request");
        let version = response.header("x-upstream-saw-version").unwrap_or("none");
        *seen.entry(version.to_string()).or_default() += 1;
    }
    seen
}

#[test]
fn bad_reconfiguration_is_refused_and_the_running_split_goes_on() {
    let _machine = exclusive();
    let split_70_30 = r#"{ "routes": [{ "name": "hello", "destinations": [
        { "version": "v1", "cluster": "springbootapp-v1", "weight": 7 },
        { "version": "v2", "cluster": "springbootapp-v2", "weight": 3 } ] }] }"#;
    let all_v2 = r#"{ "routes": [{ "name": "hello", "destinations": [
        { "version": "v2", "cluster": "springbootapp-v2", "weight": 1 } ] }] }"#;
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(split_70_30)
            .front_listener_from_lds(),
    );
    let expected: BTreeMap<String, usize> = [("v1".into(), 70), ("v2".into(), 30)].into();
    assert_eq!(versions_seen(&envoy, 100), expected);

    assert!(
        !envoy.reconfigure(NEGATIVE_WEIGHT),
        "Envoy accepted a negative weight"
    );
    assert!(envoy.log().contains(
        "routes[0].destinations[1].weight: expected an integer from 0 to 1000000, got -5"
    ));
    assert_eq!(
        versions_seen(&envoy, 100),
        expected,
        "the running split changed"
    );

    // A good configuration still goes through afterwards.
    assert!(
        envoy.reconfigure(all_v2),
        "Envoy refused a good configuration"
    );
    let all: BTreeMap<String, usize> = [("v2".into(), 10)].into();
    assert_eq!(versions_seen(&envoy, 10), all);
}

const ALL_V2: &str = r#"{ "routes": [{ "name": "hello", "destinations": [
    { "version": "v2", "cluster": "springbootapp-v2", "weight": 1 } ] }] }"#;

/// [`NEGATIVE_WEIGHT`], asking to be passed through rather than refused.
const NEGATIVE_WEIGHT_PASSED_THROUGH: &str = r#"{
  "on_invalid_config": "pass_through",
  "routes": [{ "name": "hello", "destinations": [
    { "version": "v1", "cluster": "springbootapp-v1", "weight": 70 },
    { "version": "v2", "cluster": "springbootapp-v2", "weight": -5 } ] }]
}"#;

#[test]
fn bad_ecds_update_is_rejected_and_the_last_good_config_goes_on() {
    let _machine = exclusive();
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(ALL_V2)
            .front_filter_from_ecds(),
    );
    // An ECDS update reaches requests on connections already open, unlike an LDS update
    // (whose old filter chain keeps its connections until they drain).
    let mut open = envoy.connect();
    let version = |connection: &mut support::http::Connection| {
        let response = connection.get("/hello").expect("request");
        response
            .header("x-upstream-saw-version")
            .map(str::to_string)
    };
    assert_eq!(version(&mut open).as_deref(), Some("v2"));
    assert!(
        !envoy.reconfigure_filter(NEGATIVE_WEIGHT),
        "a negative weight was applied"
    );
    assert_eq!(envoy.stat(ECDS_REJECTED), Some(1));
    assert_eq!(
        version(&mut open).as_deref(),
        Some("v2"),
        "the running split changed"
    );
    let all_v1 = ALL_V2.replace("v2", "v1");
    assert!(envoy.reconfigure_filter(&all_v1));
    assert_eq!(
        version(&mut open).as_deref(),
        Some("v1"),
        "the open connection has the new config"
    );
    let log = envoy.stop();
    assert!(log.contains(
        "routes[0].destinations[1].weight: expected an integer from 0 to 1000000, got -5"
    ));
}

/// What an Istio pod that starts while a refused WasmPlugin config is in place gets: Istio's
/// listener waits for the filter's config with no timeout, but a rejection ends the wait.
/// Envoy turns ready, and answers every request on the listener with 500 (`NFCF`: no filter
/// config found), until a config the filter accepts arrives.
#[test]
fn a_proxy_that_starts_with_a_refused_ecds_config_fails_every_request_with_500() {
    let _machine = exclusive();
    let envoy = Envoy::try_start(
        EnvoyConfig::shipped()
            .with_plugin_config(NEGATIVE_WEIGHT)
            .front_filter_from_ecds(),
    )
    .unwrap_or_else(|failure| panic!("Envoy did not turn ready:\n{}", failure.log));
    assert_eq!(envoy.stat(ECDS_REJECTED), Some(1));
    assert_eq!(
        envoy.stat("listener_manager.total_listeners_warming"),
        Some(0)
    );
    for _ in 0..3 {
        let response = envoy.connect().get("/hello").expect("a response");
        assert_eq!(response.status, 500);
    }
    assert!(envoy.reconfigure_filter(ALL_V2));
    let response = envoy.connect().get("/hello").expect("a response");
    assert_eq!(response.header("x-upstream-saw-version"), Some("v2"));
}

/// The same start with `on_invalid_config: pass_through`: the config is accepted in a safe
/// state. Requests lose the owned headers and take Envoy's default route (v1), whatever the
/// client sent, each counted as served under an invalid config, with one loud log line.
#[test]
fn with_pass_through_a_proxy_that_starts_with_a_refused_config_serves_the_default_route() {
    let _machine = exclusive();
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(NEGATIVE_WEIGHT_PASSED_THROUGH)
            .front_filter_from_ecds(),
    );
    assert_eq!(envoy.stat(ECDS_REJECTED), Some(0));
    for spoofed in ["", "springbootapp-v2"] {
        let headers: &[(&str, &str)] = if spoofed.is_empty() {
            &[]
        } else {
            &[("x-split-cluster", spoofed), ("x-split-version", "v2")]
        };
        let response = envoy
            .connect()
            .request("GET", "/hello", headers)
            .expect("a response");
        assert_eq!(response.status, 200);
        assert_eq!(response.body_text().trim(), "Hello from springbootapp v1");
        assert_eq!(response.header("x-upstream-saw-version"), None);
        assert_eq!(response.header("x-upstream-saw-cluster"), None);
    }
    let metrics = envoy.metrics();
    assert_eq!(
        metrics.count("traffic_split_invalid_config_requests_total", &[]),
        2
    );
    assert_eq!(metrics.count("traffic_split_unmatched_total", &[]), 0);
    // A good config takes over from the pass-through plan.
    assert!(envoy.reconfigure_filter(ALL_V2));
    let response = envoy.connect().get("/hello").expect("a response");
    assert_eq!(response.header("x-upstream-saw-version"), Some("v2"));
    let log = envoy.stop();
    let loud: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("configuration INVALID"))
        .collect();
    assert!(!loud.is_empty(), "no loud line:\n{log}");
    assert!(loud[0].contains("[error]"), "{}", loud[0]);
    assert!(
        loud[0].contains(
            "routes[0].destinations[1].weight: expected an integer from 0 to 1000000, got -5"
        ),
        "{}",
        loud[0]
    );
}

/// The price of pass-through, on a proxy that was splitting: the bad push is accepted, so
/// its split stops (everything to the default route) instead of going on with the last good
/// config, until a good config is pushed.
#[test]
fn with_pass_through_a_running_proxy_stops_splitting_on_a_bad_push() {
    let _machine = exclusive();
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(ALL_V2)
            .front_filter_from_ecds(),
    );
    let version = || {
        let response = envoy.connect().get("/hello").expect("a response");
        assert_eq!(response.status, 200);
        response
            .header("x-upstream-saw-version")
            .map(str::to_string)
    };
    assert_eq!(version().as_deref(), Some("v2"));
    assert!(envoy.reconfigure_filter(NEGATIVE_WEIGHT_PASSED_THROUGH));
    assert_eq!(version(), None, "passed through to the default route");
    assert!(envoy.reconfigure_filter(ALL_V2));
    assert_eq!(version().as_deref(), Some("v2"));
}

/// In a static bootstrap, pass-through lets Envoy start where it would refuse to.
#[test]
fn with_pass_through_envoy_starts_with_a_bad_static_config() {
    let _machine = exclusive();
    let envoy =
        Envoy::start(EnvoyConfig::shipped().with_plugin_config(NEGATIVE_WEIGHT_PASSED_THROUGH));
    let response = envoy.connect().get("/hello").expect("a response");
    assert_eq!(response.body_text().trim(), "Hello from springbootapp v1");
    assert_eq!(
        envoy
            .metrics()
            .count("traffic_split_invalid_config_requests_total", &[]),
        1
    );
}
