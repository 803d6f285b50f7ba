//! Headers the filter owns: a client never picks a cluster or a version, and no request,
//! however odd, breaks the filter.

mod support;

use support::{exclusive, Envoy, EnvoyConfig};

/// v2 only, so any request that reaches v1 was steered there by something other than the split.
const ALL_TO_V2: &str = r#"{
  "routes": [{
    "name": "hello",
    "match": { "prefix": "/hello" },
    "destinations": [ { "version": "v2", "cluster": "springbootapp-v2", "weight": 1 } ]
  }]
}"#;

#[test]
fn spoofed_cluster_and_version_headers_are_replaced() {
    let _machine = exclusive();
    let envoy = Envoy::start(EnvoyConfig::shipped().with_plugin_config(ALL_TO_V2));
    let mut connection = envoy.connect();
    let spoofs: [&[(&str, &str)]; 4] = [
        &[("x-split-cluster", "springbootapp-v1")],
        &[("x-split-version", "v1")],
        &[
            ("x-split-cluster", "springbootapp-v1"),
            ("x-split-version", "v1"),
        ],
        &[
            ("x-split-cluster", "springbootapp-v1"),
            ("x-split-cluster", "springbootapp-v1"),
        ],
    ];
    for headers in spoofs {
        let response = connection
            .request("GET", "/hello", headers)
            .expect("request");
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("x-upstream-saw-cluster"),
            Some("springbootapp-v2"),
            "{headers:?}"
        );
        assert_eq!(
            response.header("x-upstream-saw-version"),
            Some("v2"),
            "{headers:?}"
        );
    }
    let metrics = envoy.metrics();
    let v2 = [("route", "hello"), ("version", "v2")];
    assert_eq!(metrics.count("traffic_split_requests_total", &v2), 4);
}

#[test]
fn spoofed_cluster_header_is_removed_when_no_route_matches() {
    let _machine = exclusive();
    let envoy = Envoy::start(EnvoyConfig::shipped().with_plugin_config(ALL_TO_V2));
    let response = envoy
        .connect()
        .request(
            "GET",
            "/elsewhere",
            &[
                ("x-split-cluster", "springbootapp-v2"),
                ("x-split-version", "v2"),
            ],
        )
        .expect("request");
    // Envoy's default route (v1) served it: the client could not pick v2.
    assert_eq!(response.status, 200);
    assert_eq!(response.body_text().trim(), "Hello from springbootapp v1");
    assert_eq!(response.header("x-upstream-saw-cluster"), None);
    assert_eq!(response.header("x-upstream-saw-version"), None);
}

#[test]
fn destination_without_cluster_removes_a_spoofed_cluster_header() {
    let _machine = exclusive();
    let config = r#"{
      "routes": [{ "name": "hello",
        "destinations": [ { "version": "v9", "weight": 1 } ] }]
    }"#;
    let envoy = Envoy::start(EnvoyConfig::shipped().with_plugin_config(config));
    let response = envoy
        .connect()
        .request("GET", "/hello", &[("x-split-cluster", "springbootapp-v2")])
        .expect("request");
    assert_eq!(response.body_text().trim(), "Hello from springbootapp v1");
    assert_eq!(response.header("x-upstream-saw-version"), Some("v9"));
    assert_eq!(response.header("x-upstream-saw-cluster"), None);
}

#[test]
fn custom_header_names_are_owned_too() {
    let _machine = exclusive();
    let config = r#"{
      "version_header": "X-Canary-Version",
      "cluster_header": "x-split-cluster",
      "routes": [{ "name": "hello",
        "destinations": [ { "version": "v2", "cluster": "springbootapp-v2", "weight": 1 } ] }]
    }"#;
    let envoy = Envoy::start(EnvoyConfig::shipped().with_plugin_config(config));
    let response = envoy
        .connect()
        .request("GET", "/hello", &[("x-canary-version", "v1")])
        .expect("request");
    assert_eq!(
        response.header("x-upstream-saw-cluster"),
        Some("springbootapp-v2")
    );
    // The demo upstream echoes x-split-version, which this config no longer writes.
    assert_eq!(response.header("x-upstream-saw-version"), None);
}

/// Requests no browser sends: bytes that are not UTF-8 in matched headers and the path, huge
/// values, odd methods. Each gets an answer, and Envoy goes on serving with the filter intact.
#[test]
fn hostile_requests_never_break_the_filter() {
    let _machine = exclusive();
    let config = r#"{
      "routes": [
        { "name": "by-header",
          "match": { "regex": "/hello/.*", "headers": [
            { "name": "x-env", "regex": "pr[o]d" }, { "name": "x-user", "prefix": "a" } ] },
          "destinations": [ { "version": "v2", "cluster": "springbootapp-v2", "weight": 1 } ] },
        { "name": "rest", "match": { "prefix": "/", "methods": ["GET", "POST"] },
          "destinations": [ { "version": "v1", "cluster": "springbootapp-v1", "weight": 1 } ] }
      ]
    }"#;
    let envoy = Envoy::start(EnvoyConfig::shipped().with_plugin_config(config));
    let long_value = "a".repeat(50_000);
    let mut requests: Vec<Vec<u8>> = vec![
        b"GET /hello/\xff\xfe HTTP/1.1\r\nhost: x\r\nx-env: \xff\xfeprod\r\nx-user: \xc3\x28\r\n\r\n".to_vec(),
        b"GET /hello/x HTTP/1.1\r\nhost: x\r\nx-env: prod\r\nx-user: a\x80\x81\r\n\r\n".to_vec(),
        format!("GET /hello/{long_value} HTTP/1.1\r\nhost: x\r\nx-env: prod\r\nx-user: {long_value}\r\n\r\n").into_bytes(),
        b"BREW /hello/x HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
        b"GET /hello/x?\xff=\xff HTTP/1.1\r\nhost: x\r\nx-split-cluster: \xff\r\nx-split-version:\r\n\r\n".to_vec(),
        b"GET * HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
        b"OPTIONS * HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
        b"GET /hello/x HTTP/1.1\r\nhost: x\r\nx-env: prod\r\nx-env: prod\r\nx-user: a\r\n\r\n".to_vec(),
        b"GET /%00%ff/../.. HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
    ];
    requests
        .push(b"GET /hello/x HTTP/1.1\r\nhost: x\r\nx-env: prod\r\nx-user: alice\r\n\r\n".to_vec());
    for request in &requests {
        // Envoy may refuse a request outright (400) and close; a fresh connection each time.
        let response = envoy.connect().send_raw(request);
        if let Ok(response) = response {
            assert!(response.status < 600, "{}", response.status);
        }
    }
    // The filter still splits: the last hostile-looking request was a valid v2 match.
    let response = envoy
        .connect()
        .request(
            "GET",
            "/hello/ok",
            &[("x-env", "prod"), ("x-user", "alice")],
        )
        .expect("request");
    assert_eq!(response.header("x-upstream-saw-version"), Some("v2"));
    let response = envoy.connect().get("/").expect("request");
    assert_eq!(response.header("x-upstream-saw-version"), Some("v1"));
    let log = envoy.log();
    assert!(!log.contains("panicked"), "the filter panicked:\n{log}");
    assert!(
        !log.contains("Wasm VM failed"),
        "the Wasm VM failed:\n{log}"
    );
    let metrics = envoy.metrics();
    let v2 = [("route", "by-header"), ("version", "v2")];
    assert!(metrics.count("traffic_split_requests_total", &v2) >= 2);
}
