//! Headers the filter owns: a client never picks a cluster or a version, and no request,
//! however odd, breaks the filter.

use traffic_split_e2e as support;

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
    if support::skip_without_envoy() {
        return;
    }
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
    let metrics = envoy.admin.metrics();
    assert_eq!(
        metrics.version_count("traffic_split_requests_total", "hello", "v2"),
        4
    );
}

#[test]
fn spoofed_cluster_header_is_removed_when_no_route_matches() {
    if support::skip_without_envoy() {
        return;
    }
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
    if support::skip_without_envoy() {
        return;
    }
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
    if support::skip_without_envoy() {
        return;
    }
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
    if support::skip_without_envoy() {
        return;
    }
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
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(config)
            .with_failure_policy("FAIL_RELOAD"),
    );
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
        // Envoy's own timeout and retry headers, as a client might spoof them.
        b"GET /hello/x HTTP/1.1\r\nhost: x\r\nx-env: prod\r\nx-user: a\r\nx-envoy-upstream-rq-timeout-ms: 1\r\nx-envoy-upstream-rq-per-try-timeout-ms: 1\r\nx-envoy-max-retries: 100\r\nx-envoy-retry-on: 5xx,reset\r\n\r\n".to_vec(),
        // Header names no client should send: a token with odd characters, an empty value.
        b"GET /hello/x HTTP/1.1\r\nhost: x\r\nx-env!#$%&'*+.^_`|~: prod\r\nx-user:\r\n\r\n".to_vec(),
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
    envoy.assert_vm_never_failed();
    let metrics = envoy.admin.metrics();
    let v2 = [("route", "by-header"), ("version", "v2")];
    assert!(metrics.count("traffic_split_requests_total", &v2) >= 2);
}

/// A request that matches the route below: GET /hello with a session cookie.
fn session_request(path: &str, session: &str, extra: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nhost: x\r\ncookie: theme=dark; session={session}\r\n{extra}\r\n"
    )
    .into_bytes()
}

const BY_SESSION_70_30: &str = r#"{
  "routes": [{ "name": "hello",
    "match": { "prefix": "/hello", "headers": [ { "name": "cookie", "regex": ".*session=[0-9a-z]+.*" } ] },
    "destinations": [ { "version": "v1", "cluster": "springbootapp-v1", "weight": 70 },
                      { "version": "v2", "cluster": "springbootapp-v2", "weight": 30 } ] }]
}"#;

/// Envoy's defaults: request headers up to 60 KiB in all (`max_request_headers_kb`), 100
/// headers at most (`max_headers_count`). Just within them the filter reads, matches and
/// writes as usual; just beyond them Envoy answers 431 itself, and the filter never sees them.
#[test]
fn requests_at_envoys_header_limits_are_served_by_the_config() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(BY_SESSION_70_30)
            .with_failure_policy("FAIL_RELOAD"),
    );
    // Within the limits with room for the few headers Envoy and the filter add, since the
    // demo upstream (an Envoy too) applies the same limits.
    let long_path = format!("/hello/{}", "p".repeat(56 * 1024));
    let long_session = "s".repeat(56 * 1024);
    let many_headers: String = (0..90).map(|i| format!("x-h{i}: {i}\r\n")).collect();
    let within = [
        session_request(&long_path, "1", ""),
        session_request("/hello", &long_session, ""),
        session_request("/hello", "1", &many_headers),
    ];
    for request in &within {
        let response = envoy.connect().send_raw(request).expect("a response");
        assert_eq!(response.status, 200, "{} bytes", request.len());
        assert!(response.header("x-upstream-saw-version").is_some());
    }
    let beyond = [
        session_request(&format!("/hello/{}", "p".repeat(61 * 1024)), "1", ""),
        session_request("/hello", &"s".repeat(61 * 1024), ""),
        session_request(
            "/hello",
            "1",
            &(0..101)
                .map(|i| format!("x-h{i}: {i}\r\n"))
                .collect::<String>(),
        ),
    ];
    for request in &beyond {
        let response = envoy.connect().send_raw(request).expect("a response");
        assert_eq!(response.status, 431, "{} bytes", request.len());
    }
    let v1 = [("route", "hello"), ("version", "v1")];
    let v2 = [("route", "hello"), ("version", "v2")];
    let metrics = envoy.admin.metrics();
    assert_eq!(
        metrics.count("traffic_split_requests_total", &v1)
            + metrics.count("traffic_split_requests_total", &v2),
        3,
        "the filter saw exactly the requests within the limits"
    );
    assert_eq!(metrics.count("traffic_split_host_errors_total", &[]), 0);
    envoy.assert_vm_never_failed();
}

/// Keys a sticky split would hash (sessions, users), 10,000 of them, each new: every request
/// is served by the config, the split stays exact, nothing fails.
#[test]
fn ten_thousand_distinct_keys_are_split_exactly_without_a_failure() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(BY_SESSION_70_30)
            .with_failure_policy("FAIL_RELOAD"),
    );
    const CONNECTIONS: usize = 4;
    const PER_CONNECTION: usize = 2_500;
    let served: Vec<(usize, usize)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..CONNECTIONS)
            .map(|connection_index| {
                let envoy = &envoy;
                scope.spawn(move || {
                    let mut connection = envoy.connect();
                    let (mut v1, mut v2) = (0, 0);
                    for request_index in 0..PER_CONNECTION {
                        let key = format!("{connection_index}k{request_index}");
                        let user = format!("x-user: user-{key}\r\n");
                        let response = connection
                            .send_raw(&session_request("/hello", &key, &user))
                            .expect("a response");
                        assert_eq!(response.status, 200, "session {key}");
                        match response.header("x-upstream-saw-version") {
                            Some("v1") => v1 += 1,
                            Some("v2") => v2 += 1,
                            other => panic!("session {key} reached {other:?}"),
                        }
                    }
                    (v1, v2)
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|worker| worker.join().expect("a client thread"))
            .collect()
    });
    let v1: usize = served.iter().map(|(v1, _)| v1).sum();
    let v2: usize = served.iter().map(|(_, v2)| v2).sum();
    // One Envoy worker, one round robin: exact over any 10 consecutive requests.
    assert_eq!((v1, v2), (7_000, 3_000));
    let metrics = envoy.admin.metrics();
    let labels = |version| [("route", "hello"), ("version", version)];
    assert_eq!(
        metrics.count("traffic_split_requests_total", &labels("v1")),
        7_000
    );
    assert_eq!(
        metrics.count("traffic_split_requests_total", &labels("v2")),
        3_000
    );
    assert_eq!(metrics.count("traffic_split_host_errors_total", &[]), 0);
    envoy.assert_vm_never_failed();
}
