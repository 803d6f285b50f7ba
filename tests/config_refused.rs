//! A bad configuration is refused in `on_configure` with one log line naming the field, and
//! nothing already serving is disturbed.

mod support;

use std::collections::BTreeMap;
use support::{exclusive, Envoy, EnvoyConfig};

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

#[test]
fn bad_config_at_start_is_refused_with_the_field_path_in_envoys_log() {
    let _machine = exclusive();
    let failure = Envoy::try_start(EnvoyConfig::shipped().with_plugin_config(NEGATIVE_WEIGHT))
        .err()
        .expect("Envoy must not start with a filter it cannot configure");
    assert_ne!(failure.exit_code, Some(0));
    let lines = refusal_lines(&failure.log);
    assert!(!lines.is_empty(), "no refusal in the log:\n{}", failure.log);
    assert!(
        lines[0].contains(
            "routes[0].destinations[1].weight: expected an integer from 0 to 1000000, got -5"
        ),
        "{}",
        lines[0]
    );
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

/// `count` routes, each of its own path, with one destination.
fn routes_config(count: usize) -> String {
    let routes: Vec<String> = (0..count)
        .map(|index| {
            format!(
                r#"{{ "name": "r{index}", "match": {{ "prefix": "/service-{index}/" }},
                     "destinations": [{{ "version": "v1", "cluster": "springbootapp-v1", "weight": 1 }}] }}"#
            )
        })
        .collect();
    format!(r#"{{ "routes": [{}] }}"#, routes.join(","))
}

#[test]
fn a_config_with_more_routes_than_the_limit_is_refused_naming_the_limit() {
    let _machine = exclusive();
    let failure = Envoy::try_start(
        EnvoyConfig::shipped()
            .with_plugin_config(&routes_config(traffic_split::limits::MAX_ROUTES + 1)),
    )
    .err()
    .expect("Envoy must not start with more routes than the limit");
    let lines = refusal_lines(&failure.log);
    let line = lines.first().expect("a refusal line");
    assert!(
        line.contains("routes: 10001 routes; at most 10000"),
        "{line}"
    );
}

#[test]
fn a_config_at_the_route_limit_is_served_and_its_last_route_matches() {
    let _machine = exclusive();
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(&routes_config(traffic_split::limits::MAX_ROUTES)),
    );
    let last = traffic_split::limits::MAX_ROUTES - 1;
    let response = envoy
        .connect()
        .get(&format!("/service-{last}/x"))
        .expect("request");
    assert_eq!(response.header("x-upstream-saw-version"), Some("v1"));
    assert_eq!(
        envoy.metrics().count(
            "traffic_split_requests_total",
            &[("route", &format!("r{last}")), ("version", "v1")]
        ),
        1
    );
}
