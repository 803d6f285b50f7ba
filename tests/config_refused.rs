//! A bad configuration is refused in `on_configure` with one log line naming the field, and
//! nothing already serving is disturbed; in the static bootstrap, over LDS, and over ECDS as
//! Istio delivers a WasmPlugin, where a proxy that has no earlier config fails every request
//! unless the config asks to pass requests through (`on_invalid_config`).

use traffic_split_e2e as support;

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
    if support::skip_without_envoy() {
        return;
    }
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
    if support::skip_without_envoy() {
        return;
    }
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
    if support::skip_without_envoy() {
        return;
    }
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
    if support::skip_without_envoy() {
        return;
    }
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
    assert_eq!(envoy.admin.stat(ECDS_REJECTED), Some(1));
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
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let envoy = Envoy::try_start(
        EnvoyConfig::shipped()
            .with_plugin_config(NEGATIVE_WEIGHT)
            .front_filter_from_ecds(),
    )
    .unwrap_or_else(|failure| panic!("Envoy did not turn ready:\n{}", failure.log));
    assert_eq!(envoy.admin.stat(ECDS_REJECTED), Some(1));
    assert_eq!(
        envoy.admin.stat("listener_manager.total_listeners_warming"),
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
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(NEGATIVE_WEIGHT_PASSED_THROUGH)
            .front_filter_from_ecds(),
    );
    assert_eq!(envoy.admin.stat(ECDS_REJECTED), Some(0));
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
    let metrics = envoy.admin.metrics();
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
    if support::skip_without_envoy() {
        return;
    }
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
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let envoy =
        Envoy::start(EnvoyConfig::shipped().with_plugin_config(NEGATIVE_WEIGHT_PASSED_THROUGH));
    let response = envoy.connect().get("/hello").expect("a response");
    assert_eq!(response.body_text().trim(), "Hello from springbootapp v1");
    assert_eq!(
        envoy
            .admin
            .metrics()
            .count("traffic_split_invalid_config_requests_total", &[]),
        1
    );
}

/// A 70/30 route, for broken configs to add a field to.
const ROUTE: &str = r#""name": "hello", "destinations": [
    { "version": "v1", "cluster": "springbootapp-v1", "weight": 70 },
    { "version": "v2", "cluster": "springbootapp-v2", "weight": 30 } ]"#;

fn with_destinations(destinations: &str) -> String {
    format!(r#"{{ "routes": [ {{ "name": "hello", "destinations": [ {destinations} ] }} ] }}"#)
}

fn with_route_field(field: &str) -> String {
    format!(r#"{{ "routes": [ {{ {ROUTE}, {field} }} ] }}"#)
}

fn with_top_field(field: &str) -> String {
    format!(r#"{{ {field}, "routes": [ {{ {ROUTE} }} ] }}"#)
}

fn with_header_matcher(matcher: &str) -> String {
    with_route_field(&format!(r#""match": {{ "headers": [ {matcher} ] }}"#))
}

/// Broken configs, each with an error it must be refused with, exactly as written
/// (`path: message`). By kind: malformed JSON, wrong types, unknown fields, missing or empty
/// parts, duplicates, names, weights, regexes, durations, matchers, header names, and the
/// fields of metrics, logging, the guard, retries, sticky splits, overrides, ramps, faults and
/// on_invalid_config.
fn broken_configs() -> Vec<(String, &'static str)> {
    let d = with_destinations;
    let r = with_route_field;
    let t = with_top_field;
    let h = with_header_matcher;
    vec![
        // Malformed JSON.
        ("{ \"routes\": [ ".into(), "the configuration is not valid JSON: EOF while parsing a list at line 1 column 14"),
        ("".into(), "the configuration is not valid JSON: EOF while parsing a value at line 1 column 0"),
        // Wrong types.
        ("[]".into(), "expected an object, got a list"),
        (r#"{ "routes": {} }"#.into(), "routes: expected a list, got an object"),
        (d(r#"{ "version": "v1", "weight": "70" }"#), r#"routes[0].destinations[0].weight: expected an integer from 0 to 1000000, got "70""#),
        (d(r#"{ "version": 1, "weight": 1 }"#), "routes[0].destinations[0].version: expected a string, got 1"),
        (r(r#""match": { "methods": "GET" }"#), r#"routes[0].match.methods: expected a list, got "GET""#),
        (h(r#"{ "name": "x-env", "present": "yes" }"#), r#"routes[0].match.headers[0].present: expected a boolean, got "yes""#),
        // Unknown fields, with the one most likely meant.
        (t(r#""rutes": 1"#), "rutes: unknown field; expected one of version_header, cluster_header, routes, metrics, log_level, on_invalid_config; did you mean `routes`?"),
        (r(r#""timeot": "2ms""#), "routes[0].timeot: unknown field; expected one of name, match, destinations, timeout, guard, retries, fault, sticky, override_header, ramp; did you mean `timeout`?"),
        (d(r#"{ "version": "v1", "wieght": 1 }"#), "routes[0].destinations[0].wieght: unknown field; expected one of version, cluster, weight, timeout, retries, fault; did you mean `weight`?"),
        (r(r#""match": { "prefx": "/hello" }"#), "routes[0].match.prefx: unknown field; expected one of prefix, exact, regex, methods, headers; did you mean `prefix`?"),
        (h(r#"{ "name": "x-env", "exakt": "prod" }"#), "routes[0].match.headers[0].exakt: unknown field; expected one of name, exact, prefix, regex, present; did you mean `exact`?"),
        // Missing and empty parts.
        ("{ }".into(), "routes: required: a non-empty list of routes"),
        (r#"{ "routes": [] }"#.into(), "routes: expected at least one route"),
        (d(""), "routes[0].destinations: expected at least one destination"),
        (d(r#"{ "version": "v1" }"#), "routes[0].destinations[0].weight: required: an integer from 0 to 1000000"),
        // Duplicates: names, versions, a key written twice.
        (format!(r#"{{ "routes": [ {{ {ROUTE} }}, {{ {ROUTE} }} ] }}"#), r#"routes[1].name: duplicate route name "hello""#),
        (d(r#"{ "version": "v1", "weight": 1 }, { "version": "v1", "weight": 2 }"#), r#"routes[0].destinations[1].version: duplicate version "v1" in this route"#),
        (r#"{ "routes": [ { "name": "a", "name": "b", "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#.into(), "routes[0].name: duplicate field"),
        // Names with dots or spaces.
        (r#"{ "routes": [ { "name": "a.b", "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#.into(), r#"routes[0].name: expected 1-64 characters of [A-Za-z0-9_-], got "a.b""#),
        (r#"{ "routes": [ { "name": "a b", "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#.into(), r#"routes[0].name: expected 1-64 characters of [A-Za-z0-9_-], got "a b""#),
        (d(r#"{ "version": "v1.2", "weight": 1 }"#), r#"routes[0].destinations[0].version: expected 1-64 characters of [A-Za-z0-9_-], got "v1.2""#),
        (d(r#"{ "version": "v 1", "weight": 1 }"#), r#"routes[0].destinations[0].version: expected 1-64 characters of [A-Za-z0-9_-], got "v 1""#),
        (d(r#"{ "version": "v1", "cluster": "a b", "weight": 1 }"#), r#"routes[0].destinations[0].cluster: expected 1-255 visible ASCII characters, got "a b""#),
        // Weights.
        (d(r#"{ "version": "v1", "weight": -5 }"#), "routes[0].destinations[0].weight: expected an integer from 0 to 1000000, got -5"),
        (d(r#"{ "version": "v1", "weight": 0 }, { "version": "v2", "weight": 0 }"#), "routes[0].destinations: the weights add up to 0; at least one must be above 0"),
        (d(r#"{ "version": "v1", "weight": 2.5 }"#), "routes[0].destinations[0].weight: expected an integer from 0 to 1000000, got 2.5"),
        (d(r#"{ "version": "v1", "weight": 1000001 }"#), "routes[0].destinations[0].weight: expected an integer from 0 to 1000000, got 1000001"),
        // Regexes.
        (r(r#""match": { "regex": "/api/(v1" }"#), r#"routes[0].match.regex: invalid regex "/api/(v1": found open group without closing ')'"#),
        (h(r#"{ "name": "x-env", "regex": "[a-" }"#), r#"routes[0].match.headers[0].regex: invalid regex "[a-": invalid range in character class"#),
        // Durations: empty, negative, below 1 ms, above 24 h, unitless.
        (r(r#""timeout": """#), r#"routes[0].timeout: expected a duration such as "0.002s", "1.5s", "2ms", "1m" or "1h", got """#),
        (r(r#""timeout": "-1s""#), r#"routes[0].timeout: expected a duration such as "0.002s", "1.5s", "2ms", "1m" or "1h", got "-1s""#),
        (r(r#""timeout": "0.5ms""#), r#"routes[0].timeout: "0.5ms" is not a whole number of milliseconds (Envoy deadlines have millisecond resolution)"#),
        (r(r#""retries": { "attempts": 2, "retry_on": "5xx", "per_try_timeout": "0s" }"#), r#"routes[0].retries.per_try_timeout: "0s" is shorter than the minimum of 1ms"#),
        (r(r#""timeout": "25h""#), r#"routes[0].timeout: "25h" is longer than the maximum of 24h"#),
        (r(r#""timeout": "5""#), r#"routes[0].timeout: expected a duration such as "0.002s", "1.5s", "2ms", "1m" or "1h", got "5""#),
        // Matchers: header matchers with no or two operators, two path matches, bad parts.
        (h(r#"{ "name": "x-env" }"#), "routes[0].match.headers[0]: expected exactly one of exact, prefix, regex, present; got none"),
        (h(r#"{ "name": "x-env", "exact": "a", "prefix": "b" }"#), "routes[0].match.headers[0]: expected exactly one of exact, prefix, regex, present; got exact, prefix"),
        (h(r#"{ "exact": "a" }"#), "routes[0].match.headers[0].name: required"),
        (h(r#"{ "name": "x-split-version", "exact": "v2" }"#), "routes[0].match.headers[0].name: x-split-version is written by the filter; a client's value would pick the route"),
        (r(r#""match": { "prefix": "/a", "exact": "/b" }"#), "routes[0].match: at most one of prefix, exact, regex; got prefix, exact"),
        (r(r#""match": { "prefix": "hello" }"#), r#"routes[0].match.prefix: expected a path starting with "/", got "hello""#),
        (r(r#""match": { "methods": ["get"] }"#), r#"routes[0].match.methods[0]: expected an upper-case HTTP method such as "GET", got "get""#),
        (r(r#""match": { "methods": [] }"#), "routes[0].match.methods: expected at least one method, or no methods field"),
        // Header names.
        (t(r#""version_header": "x-same", "cluster_header": "x-same""#), r#"cluster_header: must differ from version_header (both are "x-same")"#),
        (t(r#""version_header": "x-envoy-upstream-rq-timeout-ms""#), "version_header: x-envoy-upstream-rq-timeout-ms is Envoy's deadline header"),
        (t(r#""version_header": "bad header""#), r#"version_header: expected an HTTP header name, got "bad header""#),
        // Metrics, logging, on_invalid_config.
        (t(r#""metrics": "all""#), r#"metrics: expected one of "full", "requests", got "all""#),
        (t(r#""log_level": "verbose""#), r#"log_level: expected one of "trace", "debug", "info", "warn", "error", "critical", got "verbose""#),
        (t(r#""on_invalid_config": "ignore""#), r#"on_invalid_config: expected one of "refuse", "pass_through", got "ignore""#),
        // The guard.
        (r(r#""guard": { }"#), "routes[0].guard.max_error_ratio: required: a number from 0 to 1"),
        (r(r#""guard": { "max_error_ratio": 1.5 }"#), "routes[0].guard.max_error_ratio: expected a number from 0 to 1, got 1.5"),
        (r(r#""guard": { "max_error_ratio": 0.1, "window": "10h" }"#), r#"routes[0].guard.window: "10h" is longer than the maximum of 1h"#),
        (r(r#""guard": { "max_error_ratio": 0.1, "errors": ["4xx"] }"#), r#"routes[0].guard.errors[0]: expected one of "5xx", "timeout", "reset", got "4xx""#),
        (r(r#""guard": { "max_error_ratio": 0.1, "probe_percent": 60 }"#), "routes[0].guard.probe_percent: expected a percentage from 0 to 50 with at most two decimals, got 60"),
        // Retries.
        (r(r#""retries": { "attempts": 11, "retry_on": "5xx" }"#), "routes[0].retries.attempts: expected an integer from 0 to 10, got 11"),
        (r(r#""retries": { "attempts": 2, "retry_on": "sometimes" }"#), r#"routes[0].retries.retry_on: unknown retry condition "sometimes"; expected a comma-separated list of 5xx, gateway-error, reset, reset-before-request, connect-failure, envoy-ratelimited, retriable-4xx, refused-stream, retriable-status-codes, retriable-headers, http3-post-connect-failure"#),
        (r(r#""retries": { "attempts": 2, "retry_on": "5xx", "retriable_status_codes": [503] }"#), "routes[0].retries.retriable_status_codes: needs retriable-status-codes in retry_on"),
        (r(r#""retries": { "attempts": 2, "retry_on": "retriable-status-codes", "retriable_status_codes": [99] }"#), "routes[0].retries.retriable_status_codes: expected a list of 1 to 50 distinct integers from 100 to 599, got 99"),
        (r(r#""retries": { "attempts": 2, "retry_on": "retriable-headers", "retriable_headers": ["bad header"] }"#), r#"routes[0].retries.retriable_headers: expected an HTTP header name, got "bad header""#),
        // Sticky splits, overrides, ramps.
        (r(r#""sticky": { "header": "x-user", "cookie": "session" }"#), "routes[0].sticky: expected exactly one of header, cookie; got header, cookie"),
        (r(r#""sticky": { "header": "x-user", "set_cookie": { "max_age": "1h" } }"#), "routes[0].sticky.set_cookie: only with a cookie key: the filter cannot make a client send a header"),
        (r(r#""override_header": "bad header""#), r#"routes[0].override_header: expected an HTTP header name, got "bad header""#),
        (r(r#""ramp": { "version": "v3", "from": 0, "to": 50, "start": "2026-12-01T10:00:00Z", "duration": "30m" }"#), r#"routes[0].ramp.version: expected one of the route's versions (v1, v2), got "v3""#),
        (r(r#""ramp": { "version": "v2", "from": 0, "to": 50, "start": "tomorrow", "duration": "30m" }"#), r#"routes[0].ramp.start: expected an RFC 3339 time such as "2026-12-01T10:00:00Z" or "2026-12-01T11:00:00+01:00", got "tomorrow""#),
        // Faults.
        (r(r#""fault": { }"#), "routes[0].fault: expected at least one of abort, delay"),
        (r(r#""fault": { "abort": { "status": 600, "percent": 10 } }"#), "routes[0].fault.abort.status: expected an integer from 200 to 599, got 600"),
        (r(r#""fault": { "abort": { "status": 503, "percent": 101 } }"#), "routes[0].fault.abort.percent: expected a percentage from 0 to 100 with at most two decimals, got 101"),
        (r(r#""fault": { "delay": { "fixed": "forever", "percent": 10 } }"#), r#"routes[0].fault.delay.fixed: expected a duration such as "0.002s", "1.5s", "2ms", "1m" or "1h", got "forever""#),
    ]
}

#[test]
fn every_broken_config_is_refused_with_its_path_and_message() {
    let broken = broken_configs();
    assert!(broken.len() >= 30, "only {} broken configs", broken.len());
    for (config, expected) in &broken {
        let errors: Vec<String> = traffic_split::config::compile(config.as_bytes())
            .expect_err(expected)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            errors.iter().any(|error| error == expected),
            "{config}\n  expected {expected:?}\n  got {errors:?}"
        );
    }
}

/// Each broken config pushed to a running Envoy, as Istio pushes a WasmPlugin (ECDS): each is
/// rejected with its message in Envoy's log, and the 70/30 split goes on exactly.
#[test]
fn every_broken_config_pushed_to_a_running_envoy_is_rejected_and_the_split_goes_on() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let split_70_30 = format!(r#"{{ "routes": [ {{ {ROUTE} }} ] }}"#);
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(&split_70_30)
            .front_filter_from_ecds(),
    );
    let expected: BTreeMap<String, usize> = [("v1".into(), 70), ("v2".into(), 30)].into();
    assert_eq!(versions_seen(&envoy, 100), expected);
    let broken = broken_configs();
    for (config, message) in &broken {
        assert!(!envoy.reconfigure_filter(config), "applied: {message}");
    }
    assert_eq!(envoy.admin.stat(ECDS_REJECTED), Some(broken.len() as u64));
    assert_eq!(
        versions_seen(&envoy, 100),
        expected,
        "the running split changed"
    );
    let log = envoy.stop();
    let refusals = refusal_lines(&log);
    for (_, message) in &broken {
        assert!(
            refusals.iter().any(|line| line.contains(message)),
            "no refusal with {message:?}"
        );
    }
}

/// Each broken config in a static bootstrap: Envoy refuses to start, with the message in its
/// log.
#[test]
fn envoy_refuses_to_start_with_any_broken_config() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    for (config, message) in broken_configs() {
        let failure = Envoy::try_start(EnvoyConfig::shipped().with_plugin_config(&config))
            .err()
            .unwrap_or_else(|| panic!("Envoy started with a broken config: {message}"));
        assert!(
            refusal_lines(&failure.log)
                .iter()
                .any(|line| line.contains(message)),
            "no refusal with {message:?} in:\n{}",
            failure.log
        );
    }
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
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let failure = Envoy::try_start(EnvoyConfig::shipped().with_plugin_config(&routes_config(
        traffic_split::config::limits::MAX_ROUTES + 1,
    )))
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
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(&routes_config(traffic_split::config::limits::MAX_ROUTES)),
    );
    let last = traffic_split::config::limits::MAX_ROUTES - 1;
    let response = envoy
        .connect()
        .get(&format!("/service-{last}/x"))
        .expect("request");
    assert_eq!(response.header("x-upstream-saw-version"), Some("v1"));
    assert_eq!(
        envoy.admin.metrics().count(
            "traffic_split_requests_total",
            &[("route", &format!("r{last}")), ("version", "v1")]
        ),
        1
    );
}
