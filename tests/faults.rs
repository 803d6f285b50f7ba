//! Faults for drills in a real Envoy: an abort share that is exact, a delay that holds a
//! request and keeps its deadline, and a held request whose client leaves.

use traffic_split_e2e as support;

use std::io::Write;
use std::time::{Duration, Instant};
use support::{exclusive, Envoy, EnvoyConfig};

fn faults(metrics: &support::Metrics, version: &str, kind: &str) -> u64 {
    metrics.count(
        "traffic_split_faults_total",
        &[("route", "hello"), ("version", version), ("kind", kind)],
    )
}

#[test]
fn the_abort_share_is_exact_over_10000_requests() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let config = r#"{ "routes": [ { "name": "hello",
        "fault": { "abort": { "status": 503, "percent": 12.34 } },
        "destinations": [ { "version": "v1", "cluster": "springbootapp-v1", "weight": 1 } ] } ] }"#;
    let envoy = Envoy::start(EnvoyConfig::shipped().with_plugin_config(config));
    let mut connection = envoy.connect();
    let (mut aborted, mut served) = (0, 0);
    for _ in 0..10_000 {
        let response = match connection.get("/hello") {
            Ok(response) => response,
            Err(_) => {
                connection = envoy.connect();
                connection.get("/hello").expect("request")
            }
        };
        match (response.status, response.header("x-traffic-split-fault")) {
            (503, Some("abort")) => {
                assert_eq!(response.body_text(), "fault injected by traffic-split\n");
                aborted += 1;
            }
            (200, None) => served += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((aborted, served), (1_234, 8_766));
    let metrics = envoy.admin.metrics_when(|metrics| {
        metrics.count(
            "traffic_split_responses_total",
            &[("route", "hello"), ("version", "v1"), ("code_class", "5xx")],
        ) >= 1_234
    });
    assert_eq!(faults(&metrics, "v1", "abort"), 1_234);
    assert_eq!(metrics.outcome("hello", "v1"), (10_000, 8_766, 1_234, 0));
}

#[test]
fn a_delayed_request_takes_its_delay_and_keeps_its_deadline() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    // v2 is held 50 ms, then its 2 ms deadline cuts it as ever (its upstream takes 5 ms). The
    // guard's 250 ms timer runs too: a hold must not wait for it.
    let config = r#"{ "routes": [ { "name": "hello", "timeout": "2ms",
        "guard": { "max_error_ratio": 1, "min_requests": 1000000 },
        "destinations": [
          { "version": "v1", "cluster": "springbootapp-v1", "weight": 1, "timeout": "10s" },
          { "version": "v2", "cluster": "springbootapp-v2", "weight": 1,
            "fault": { "delay": { "fixed": "50ms", "percent": 100 } } } ] } ] }"#;
    let envoy = Envoy::start(EnvoyConfig::shipped().with_plugin_config(config));
    let mut connection = envoy.connect();
    let mut held = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        let response = connection.get("/hello").expect("request");
        let waited = started.elapsed();
        match response.status {
            200 => assert!(waited < Duration::from_millis(40), "v1 waited {waited:?}"),
            504 => held.push(waited),
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(held.len(), 10);
    for waited in &held {
        assert!(
            *waited >= Duration::from_millis(50) && *waited < Duration::from_millis(150),
            "v2 waited {waited:?}: {held:?}"
        );
    }
    let metrics = envoy.admin.metrics();
    assert_eq!(faults(&metrics, "v2", "delay"), 10);
    assert_eq!(metrics.outcome("hello", "v2"), (10, 0, 10, 10));
}

#[test]
fn a_held_request_whose_client_leaves_is_forgotten() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let config = r#"{ "routes": [ { "name": "hello",
        "fault": { "delay": { "fixed": "300ms", "percent": 50 } },
        "destinations": [ { "version": "v1", "cluster": "springbootapp-v1", "weight": 1 } ] } ] }"#;
    let envoy = Envoy::start(EnvoyConfig::shipped().with_plugin_config(config));
    let vms = |envoy: &Envoy| {
        let metrics = envoy.admin.metrics();
        (
            metrics.count("envoy_wasm_envoy_wasm_runtime_v8_active", &[]),
            metrics.count("envoy_wasm_envoy_wasm_runtime_v8_created", &[]),
        )
    };
    let vms_at_start = vms(&envoy);
    // Ten requests on connections closed at once: five are held, then their clients leave.
    for _ in 0..10 {
        let mut socket = std::net::TcpStream::connect(envoy.front).expect("connect");
        socket
            .write_all(b"GET /hello HTTP/1.1\r\nhost: springbootapp\r\n\r\n")
            .expect("send");
    }
    // Envoy keeps serving (the VM did not trap resuming a stream that is gone), held or not.
    let mut connection = envoy.connect();
    let started = Instant::now();
    let mut statuses = Vec::new();
    while started.elapsed() < Duration::from_millis(800) {
        statuses.push(connection.get("/hello").expect("request").status);
    }
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
    let metrics = envoy.admin.metrics();
    assert_eq!(
        faults(&metrics, "v1", "delay"),
        metrics.count(
            "traffic_split_requests_total",
            &[("route", "hello"), ("version", "v1")],
        ) / 2
    );
    assert_eq!(vms(&envoy), vms_at_start, "no VM failed or was replaced");
    assert!(
        !envoy.log().contains("Function: proxy_on_tick failed"),
        "{}",
        envoy.log()
    );
}
