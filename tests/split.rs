//! The weighted split, route matching and per-version counters, in a real Envoy.

use traffic_split_e2e as support;

use std::collections::BTreeMap;
use support::{exclusive, Envoy, EnvoyConfig, SHIPPED_PLUGIN};

/// Sends `count` requests on one connection; counts the version each upstream says it saw.
fn versions_seen(
    envoy: &Envoy,
    path: &str,
    headers: &[(&str, &str)],
    count: usize,
) -> BTreeMap<String, usize> {
    let mut connection = envoy.connect();
    let mut seen = BTreeMap::new();
    for _ in 0..count {
        let response = connection.request("GET", path, headers).expect("request");
        assert_eq!(response.status, 200, "{}", response.body_text());
        let body = response.body_text();
        let upstream = body.trim().rsplit(' ').next().unwrap_or("").to_string();
        assert_eq!(
            response.header("x-upstream-saw-version"),
            Some(upstream.as_str())
        );
        *seen.entry(upstream).or_default() += 1;
    }
    seen
}

fn split(v1: usize, v2: usize) -> BTreeMap<String, usize> {
    [("v1".to_string(), v1), ("v2".to_string(), v2)]
        .into_iter()
        .filter(|(_, count)| *count > 0)
        .collect()
}

#[test]
fn split_is_exactly_70_30_and_envoy_routes_by_the_written_cluster() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let envoy = Envoy::start(EnvoyConfig::shipped().with_plugin_config(support::SPLIT_70_30));
    assert_eq!(versions_seen(&envoy, "/hello", &[], 1000), split(700, 300));

    let metrics = envoy.admin.metrics_when(|metrics| {
        metrics.count(
            "traffic_split_request_duration_microseconds_count",
            &[("route", "hello"), ("version", "v1")],
        ) >= 700
    });
    for (version, expected) in [("v1", 700), ("v2", 300)] {
        let labels = [("route", "hello"), ("version", version)];
        assert_eq!(
            metrics.count("traffic_split_requests_total", &labels),
            expected
        );
        assert_eq!(
            metrics.count(
                "traffic_split_responses_total",
                &[
                    ("route", "hello"),
                    ("version", version),
                    ("code_class", "2xx")
                ]
            ),
            expected
        );
        assert_eq!(metrics.count("traffic_split_timeouts_total", &labels), 0);
        assert_eq!(
            metrics.count("traffic_split_request_duration_microseconds_count", &labels),
            expected
        );
    }
    assert_eq!(metrics.count("traffic_split_unmatched_total", &[]), 0);
}

#[test]
fn every_window_of_ten_requests_holds_seven_v1_and_three_v2() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let envoy = Envoy::start(EnvoyConfig::shipped().with_plugin_config(support::SPLIT_70_30));
    let mut connection = envoy.connect();
    let sequence: Vec<String> = (0..100)
        .map(|_| {
            let response = connection.get("/hello").expect("request");
            response
                .header("x-upstream-saw-version")
                .unwrap_or("")
                .to_string()
        })
        .collect();
    for window in sequence.windows(10) {
        assert_eq!(
            window.iter().filter(|v| *v == "v1").count(),
            7,
            "{window:?}"
        );
        assert_eq!(
            window.iter().filter(|v| *v == "v2").count(),
            3,
            "{window:?}"
        );
    }
}

#[test]
fn zero_weight_version_gets_nothing() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let config = support::SPLIT_70_30.replace("\"weight\": 70", "\"weight\": 0");
    let envoy = Envoy::start(EnvoyConfig::shipped().with_plugin_config(&config));
    assert_eq!(versions_seen(&envoy, "/hello", &[], 50), split(0, 50));
    let metrics = envoy.admin.metrics();
    assert_eq!(
        metrics.version_count("traffic_split_requests_total", "hello", "v1"),
        0
    );
}

#[test]
fn request_matching_no_route_is_counted_once_under_its_plugin_only_and_left_alone() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let envoy = Envoy::start(EnvoyConfig::shipped().with_plugin_config(support::SPLIT_70_30));
    let mut connection = envoy.connect();
    for path in ["/other", "/", "/hell"] {
        let response = connection.get(path).expect("request");
        // Envoy's own default route (v1) served it; the filter wrote nothing.
        assert_eq!(response.status, 200);
        assert_eq!(response.header("x-upstream-saw-version"), None);
        assert_eq!(response.header("x-upstream-saw-cluster"), None);
    }
    // The route only matches GET.
    let response = connection
        .request("POST", "/hello", &[("content-length", "0")])
        .expect("post");
    assert_eq!(response.header("x-upstream-saw-version"), None);

    let metrics = envoy.admin.metrics();
    assert_eq!(
        metrics.get(
            "traffic_split_unmatched_total",
            &[("plugin", SHIPPED_PLUGIN)]
        ),
        Some(4.0),
        "no route, no version: the plugin is its only label"
    );
    for version in ["v1", "v2"] {
        let labels = [("route", "hello"), ("version", version)];
        assert_eq!(metrics.count("traffic_split_requests_total", &labels), 0);
    }
}

#[test]
fn first_matching_route_wins_with_header_and_regex_matches() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let config = r#"{
      "routes": [
        { "name": "prod-canary",
          "match": { "prefix": "/hello", "headers": [ { "name": "x-env", "exact": "prod" } ] },
          "destinations": [ { "version": "v2", "cluster": "springbootapp-v2", "weight": 1 } ] },
        { "name": "numbered",
          "match": { "regex": "/hello/[0-9]+" },
          "destinations": [ { "version": "v2", "cluster": "springbootapp-v2", "weight": 1 } ] },
        { "name": "rest",
          "destinations": [ { "version": "v1", "cluster": "springbootapp-v1", "weight": 1 } ] }
      ]
    }"#;
    let envoy = Envoy::start(EnvoyConfig::shipped().with_plugin_config(config));
    assert_eq!(
        versions_seen(&envoy, "/hello", &[("x-env", "prod")], 5),
        split(0, 5)
    );
    assert_eq!(
        versions_seen(&envoy, "/hello", &[("x-env", "dev")], 5),
        split(5, 0)
    );
    assert_eq!(versions_seen(&envoy, "/hello/42?x=1", &[], 5), split(0, 5));
    assert_eq!(versions_seen(&envoy, "/hello/42x", &[], 5), split(5, 0));

    let metrics = envoy.admin.metrics();
    let count = |route| {
        metrics.count(
            "traffic_split_requests_total",
            &[
                ("route", route),
                ("version", if route == "rest" { "v1" } else { "v2" }),
            ],
        )
    };
    assert_eq!(
        (count("prod-canary"), count("numbered"), count("rest")),
        (5, 5, 10)
    );
}

/// Two plugins in one VM (same `vm_id` and module, as Istio does for two WasmPlugins of one
/// image on a workload): each stream must follow the configuration of its own plugin, which the
/// filter learns from the root context Envoy names when it creates the stream.
#[test]
fn plugins_sharing_one_vm_each_follow_their_own_configuration() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let only = |route: &str, version: &str| {
        format!(
            r#"{{ "routes": [ {{ "name": "{route}", "match": {{ "prefix": "/hello" }},
                  "destinations": [ {{ "version": "{version}", "cluster": "springbootapp-{version}", "weight": 1 }} ] }} ] }}"#
        )
    };
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(&only("first", "v1"))
            .with_another_front("second-front", &only("second", "v2")),
    );
    let mut first = envoy.connect();
    let mut second =
        support::http::Connection::open(envoy.listener("second-front")).expect("connect");
    for _ in 0..20 {
        for (connection, version) in [(&mut first, "v1"), (&mut second, "v2")] {
            let response = connection.request("GET", "/hello", &[]).expect("request");
            assert_eq!(response.header("x-upstream-saw-version"), Some(version));
        }
    }
    let metrics = envoy
        .admin
        .metrics_when(|m| m.outcome("first", "v1").0 + m.outcome("second", "v2").0 >= 40);
    assert_eq!(metrics.outcome("first", "v1").0, 20);
    assert_eq!(metrics.outcome("second", "v2").0, 20);
    assert_eq!(metrics.outcome("first", "v2").0, 0);
    assert_eq!(metrics.outcome("second", "v1").0, 0);
}

/// Two traffic-split plugins on one proxy (two WasmPlugins on one workload, here sharing one
/// VM), each with a route `hello`: each counts into series of its own, labelled with its
/// plugin's name (Istio's `<namespace>.<name>`, its dot made `_`), never into one sum.
#[test]
fn two_plugins_with_one_route_name_count_apart() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let hello_v1 = r#"{ "routes": [ { "name": "hello", "match": { "prefix": "/hello" },
        "destinations": [ { "version": "v1", "cluster": "springbootapp-v1", "weight": 1 } ] } ] }"#;
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(hello_v1)
            .with_another_plugin("payments-front", "payments.traffic-split", hello_v1),
    );
    let second_plugin = "payments_traffic-split";
    let mut first = envoy.connect();
    let mut second =
        support::http::Connection::open(envoy.listener("payments-front")).expect("connect");
    for (connection, requests) in [(&mut first, 5), (&mut second, 7)] {
        for _ in 0..requests {
            let response = connection.request("GET", "/hello", &[]).expect("request");
            assert_eq!(response.header("x-upstream-saw-version"), Some("v1"));
        }
    }
    let response = second.request("GET", "/elsewhere", &[]).expect("request");
    assert_eq!(response.status, 200);
    let metrics = envoy.admin.metrics_when(|m| {
        m.plugin_outcome(SHIPPED_PLUGIN, "hello", "v1").0 >= 5
            && m.plugin_outcome(second_plugin, "hello", "v1").0 >= 7
            && m.count(
                "traffic_split_unmatched_total",
                &[("plugin", second_plugin)],
            ) >= 1
    });
    assert_eq!(metrics.plugin_outcome(SHIPPED_PLUGIN, "hello", "v1").0, 5);
    assert_eq!(metrics.plugin_outcome(second_plugin, "hello", "v1").0, 7);
    let mut hello_v1_series: Vec<(String, f64)> = metrics
        .series("traffic_split_requests_total")
        .into_iter()
        .filter(|(labels, _)| {
            labels.get("route").map(String::as_str) == Some("hello")
                && labels.get("version").map(String::as_str) == Some("v1")
        })
        .map(|(labels, value)| (labels.get("plugin").cloned().unwrap_or_default(), value))
        .collect();
    hello_v1_series.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        hello_v1_series,
        [
            (second_plugin.to_string(), 7.0),
            (SHIPPED_PLUGIN.to_string(), 5.0)
        ],
        "one series per plugin, none summing both"
    );
    assert_eq!(
        metrics.count(
            "traffic_split_unmatched_total",
            &[("plugin", second_plugin)]
        ),
        1
    );
    assert_eq!(metrics.count("traffic_split_unmatched_total", &[]), 0);
}

#[test]
fn requests_metrics_mode_counts_requests_only() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let requests_only = support::SPLIT_70_30.replacen('{', r#"{ "metrics": "requests","#, 1);
    let envoy = Envoy::start(EnvoyConfig::shipped().with_plugin_config(&requests_only));
    assert_eq!(versions_seen(&envoy, "/hello", &[], 100), split(70, 30));
    let lines = envoy.admin.prometheus_lines();
    let series = |prefix: &str| lines.iter().filter(|line| line.starts_with(prefix)).count();
    assert_eq!(
        series(
            r#"traffic_split_requests_total{plugin="traffic-split",route="hello",version="v1"} 70"#
        ),
        1,
        "{lines:#?}"
    );
    assert_eq!(series("traffic_split_responses_total"), 0, "{lines:#?}");
    assert_eq!(series("traffic_split_timeouts_total"), 0, "{lines:#?}");
    assert_eq!(series("traffic_split_request_duration"), 0, "{lines:#?}");
}
