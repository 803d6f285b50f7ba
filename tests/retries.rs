//! Retries set by the filter per route and version, in a real Envoy: they reach a failing
//! upstream again, and a client's own retry headers never decide.

use traffic_split_e2e as support;

use support::{exclusive, Envoy, EnvoyConfig};

/// Every request to v2 (weight 100), which fails; `retries` is the route's retries field.
fn failing_v2(route_retries: &str, v2_retries: &str) -> String {
    format!(
        r#"{{
      "routes": [{{
        "name": "hello",
        {route_retries}
        "destinations": [
          {{ "version": "v1", "cluster": "springbootapp-v1", "weight": 0 }},
          {{ "version": "v2", "cluster": "springbootapp-v2", "weight": 100 {v2_retries} }}
        ]
      }}]
    }}"#
    )
}

/// Upstream retries Envoy made to v2 after `requests` requests with these headers.
fn retries_to_v2(config: &str, requests: usize, headers: &[(&str, &str)]) -> u64 {
    let _machine = exclusive();
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(config)
            .with_v2_failure_switch()
            .trusting_client_headers(),
    );
    envoy.set_v2_failing(true);
    let mut connection = envoy.connect();
    for _ in 0..requests {
        let response = match connection.request("GET", "/hello", headers) {
            Ok(response) => response,
            Err(_) => {
                connection = envoy.connect();
                connection
                    .request("GET", "/hello", headers)
                    .expect("request")
            }
        };
        assert_eq!(response.status, 503);
    }
    envoy.admin.metrics().count(
        "envoy_cluster_upstream_rq_retry",
        &[("envoy_cluster_name", "springbootapp-v2")],
    )
}

#[test]
fn a_versions_retries_reach_a_failing_upstream_again() {
    if support::skip_without_envoy() {
        return;
    }
    let config = failing_v2(
        "",
        r#", "retries": { "attempts": 2, "retry_on": "5xx,reset", "per_try_timeout": "1s" }"#,
    );
    assert_eq!(retries_to_v2(&config, 10, &[]), 20);
}

#[test]
fn a_clients_retry_headers_are_replaced_by_the_routes() {
    if support::skip_without_envoy() {
        return;
    }
    let config = failing_v2(r#""retries": { "attempts": 1, "retry_on": "5xx" },"#, "");
    let spoofed = [("x-envoy-max-retries", "5"), ("x-envoy-retry-on", "5xx")];
    assert_eq!(retries_to_v2(&config, 10, &spoofed), 10);
}

#[test]
fn a_clients_retry_headers_are_removed_on_a_route_without_retries() {
    if support::skip_without_envoy() {
        return;
    }
    let spoofed = [("x-envoy-max-retries", "3"), ("x-envoy-retry-on", "5xx")];
    assert_eq!(retries_to_v2(&failing_v2("", ""), 10, &spoofed), 0);
}

#[test]
fn a_request_the_filter_does_not_route_keeps_the_clients_retry_headers() {
    if support::skip_without_envoy() {
        return;
    }
    // The control for the tests above: on the same trusting Envoy, a request no route of the
    // filter matches (Envoy's default route, pointed at v2 here) is retried as its client
    // asked, so the removal above is the filter's doing.
    let _machine = exclusive();
    let config = r#"{ "routes": [ { "name": "hello", "match": { "prefix": "/hello" },
        "destinations": [ { "version": "v2", "cluster": "springbootapp-v2", "weight": 1 } ] } ] }"#;
    let mut envoy_config = EnvoyConfig::shipped()
        .with_plugin_config(config)
        .with_v2_failure_switch()
        .trusting_client_headers();
    // Envoy's default route, the last one, to v2 instead of v1.
    let default_route = envoy_config
        .front_routes()
        .last_mut()
        .expect("a default route");
    default_route["route"]["cluster"] = "springbootapp-v2".into();
    let envoy = Envoy::start(envoy_config);
    envoy.set_v2_failing(true);
    let mut connection = envoy.connect();
    let spoofed = [("x-envoy-max-retries", "3"), ("x-envoy-retry-on", "5xx")];
    for _ in 0..10 {
        let response = match connection.request("GET", "/other", &spoofed) {
            Ok(response) => response,
            Err(_) => {
                connection = envoy.connect();
                connection
                    .request("GET", "/other", &spoofed)
                    .expect("request")
            }
        };
        assert_eq!(response.status, 503);
    }
    assert_eq!(
        envoy.admin.metrics().count(
            "envoy_cluster_upstream_rq_retry",
            &[("envoy_cluster_name", "springbootapp-v2")],
        ),
        30
    );
}
