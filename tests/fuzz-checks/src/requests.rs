//! The hostile requests: header text built from the words the filter and the sample configs
//! use, how the host treats each request, and the sample configs they run against.

use arbitrary::Arbitrary;
use traffic_split::config::compile;
use traffic_split::config::pass_through::pass_through_plan;
use traffic_split::plan::Plan;

/// Configurations the hostile requests run against: between them every kind of matcher,
/// route and destination deadlines, destinations without a cluster, custom header names, a
/// zero weight, a catch-all route.
pub const SAMPLE_CONFIGS: &[&str] = &[
    r#"{ "routes": [
        { "name": "hello", "match": { "prefix": "/hello", "methods": ["GET"] }, "timeout": "2ms",
          "destinations": [ { "version": "v1", "cluster": "springbootapp-v1", "weight": 70 },
                            { "version": "v2", "cluster": "springbootapp-v2", "weight": 30 } ] } ] }"#,
    r#"{ "version_header": "X-Canary-Version", "cluster_header": "x-target",
         "routes": [
        { "name": "orders", "match": { "regex": "/api/v[0-9]+/orders/.*",
            "headers": [ { "name": "x-env", "exact": "prod" }, { "name": "x-user", "prefix": "a" },
                         { "name": "cookie", "regex": ".*canary=1.*" },
                         { "name": ":authority", "present": true } ] },
          "destinations": [ { "version": "v1", "weight": 1, "timeout": "250ms" },
                            { "version": "v2", "cluster": "orders-v2", "weight": 0 },
                            { "version": "v3", "cluster": "orders-v3", "weight": 3 } ] },
        { "name": "exact", "match": { "exact": "/", "methods": ["GET", "POST", "PURGE"] },
          "destinations": [ { "version": "stable", "cluster": "web", "weight": 5 } ] },
        { "name": "rest", "timeout": "1.5s",
          "destinations": [ { "version": "v9", "weight": 1, "timeout": "10ms" },
                            { "version": "v8", "cluster": "rest-v8", "weight": 2 } ] } ] }"#,
    r#"{ "routes": [
        { "name": "by-header", "match": { "headers": [ { "name": "x-canary", "present": true } ] },
          "destinations": [ { "version": "v1", "cluster": "springbootapp-v1", "weight": 1 } ] } ] }"#,
    r#"{ "metrics": "requests", "routes": [
        { "name": "retried", "match": { "prefix": "/hello" },
          "retries": { "attempts": 2, "retry_on": "5xx,reset", "per_try_timeout": "200ms" },
          "guard": { "max_error_ratio": 0.5, "min_requests": 2, "window": "1s", "cooldown": "1s",
                     "errors": ["5xx", "timeout", "reset"] },
          "destinations": [ { "version": "v1", "cluster": "app-v1", "weight": 1 },
                            { "version": "v2", "weight": 1,
                              "retries": { "attempts": 1, "retry_on": "connect-failure", "grpc_retry_on": "unavailable" } } ] },
        { "name": "rest",
          "fault": { "abort": { "status": 503, "percent": 30 }, "delay": { "fixed": "50ms", "percent": 30 } },
          "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#,
    // Sticky by header or cookie, an override header, a ramp.
    r#"{ "routes": [
        { "name": "by-user", "match": { "prefix": "/hello" }, "sticky": { "header": "x-user" },
          "override_header": "x-canary-version",
          "destinations": [ { "version": "v1", "cluster": "springbootapp-v1", "weight": 70 },
                            { "version": "v2", "cluster": "springbootapp-v2", "weight": 30 } ] },
        { "name": "by-cookie", "sticky": { "cookie": "session", "set_cookie": { "max_age": "24h" } },
          "ramp": { "version": "v2", "from": 0, "to": 50, "start": "1970-01-01T00:00:01Z",
                    "duration": "1h", "steps": 10 },
          "destinations": [ { "version": "v1", "weight": 50 }, { "version": "v2" } ] } ] }"#,
    // Refused (a negative weight), passed through: every request loses the owned headers.
    r#"{ "on_invalid_config": "pass_through", "version_header": "X-Canary-Version",
         "routes": [ { "name": "hello", "destinations": [ { "version": "v1", "weight": -5 } ] } ] }"#,
];

/// Fragments hostile text is built from: the owned headers, what the sample configs match on,
/// and bytes that trouble parsers.
const WORDS: &[&[u8]] = &[
    b":path",
    b":method",
    b":authority",
    b"x-split-version",
    b"x-split-cluster",
    b"x-canary-version",
    b"x-canary",
    b"x-target",
    b"x-envoy-upstream-rq-timeout-ms",
    b"x-envoy-max-retries",
    b"x-envoy-retry-on",
    b"x-envoy-upstream-rq-per-try-timeout-ms",
    b"x-envoy-retry-grpc-on",
    b"x-envoy-retriable-status-codes",
    b"x-envoy-retriable-header-names",
    b"x-envoy-hedge-on-per-try-timeout",
    b"x-env",
    b"x-user",
    b"cookie",
    b"session=",
    b"x-user",
    b"/hello",
    b"/api/v2/orders/",
    b"/",
    b"?",
    b"GET",
    b"POST",
    b"prod",
    b"a",
    b"canary=1",
    b"v1",
    b"v2",
    b"springbootapp-v1",
    b"",
    b"\xff\xfe",
    b"\0",
    b"%00",
    b"..",
    b";",
    b"=",
];

/// Text made of known words and raw bytes, so that random input often matches a route.
#[derive(Arbitrary, Clone, Debug)]
pub struct Text(Vec<Fragment>);

#[derive(Arbitrary, Clone, Debug)]
pub enum Fragment {
    Word(u8),
    Bytes(Vec<u8>),
}

impl Text {
    pub fn bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::new();
        for fragment in &self.0 {
            match fragment {
                Fragment::Word(index) => {
                    bytes.extend_from_slice(WORDS[usize::from(*index) % WORDS.len()]);
                }
                Fragment::Bytes(raw) => bytes.extend_from_slice(raw),
            }
        }
        bytes
    }
}

/// One request, and how the host treats it.
#[derive(Arbitrary, Clone, Debug)]
pub struct HostileRequest {
    pub headers: Vec<(Text, Text)>,
    pub fail_read: bool,
    /// One bit per owned header (in the order of `Plan::owned_headers`): its write fails.
    pub fail_writes: u8,
    pub fail_removes: bool,
    pub fail_response_code: bool,
    pub fail_response_flags: bool,
    pub fail_local_reply: bool,
    pub response_code: Option<i64>,
    pub response_flags: Option<u64>,
    pub elapsed_nanos: u64,
}

/// Requests one after another against one of [`SAMPLE_CONFIGS`] (the round robin's state
/// carries over, as in a worker).
#[derive(Arbitrary, Clone, Debug)]
pub struct HostileStreams {
    pub config: u8,
    pub requests: Vec<HostileRequest>,
}

/// A sample config's plan, or its pass-through plan if it is refused.
pub fn sample_plan(index: u8) -> Plan {
    let json = SAMPLE_CONFIGS[usize::from(index) % SAMPLE_CONFIGS.len()].as_bytes();
    compile(json)
        .ok()
        .or_else(|| pass_through_plan(json))
        .expect("the sample configs compile or pass through")
}
