//! What the fuzz targets (`fuzz/`) and their property-test equivalents (below) check, on the
//! same inputs: hostile requests through the whole stream path, a header map as raw bytes, a
//! configuration as raw bytes or as a JSON tree.
//!
//! Each check panics when the filter breaks one of its promises, which is how libFuzzer and
//! proptest see a failure; the promises go beyond "no panic":
//! - a client never chooses an owned header's value: after a routed request the version and
//!   cluster headers hold exactly the destination's values, and after an unrouted one none,
//!   unless a host call failed (and was counted);
//! - every failed host call is counted exactly once; headers the filter does not own are left
//!   as they were; the header map is read at most once;
//! - a configuration is either compiled into a plan that keeps the plan's invariants (names,
//!   non-zero total weight, an exact split over one cycle) or refused with at least one error.
//!
//! Outside the shipped crate: the fuzz crate's library (`fuzz/src/lib.rs`) and the property
//! tests (`tests/fuzz_properties.rs`) include this file. It needs the core's test-only
//! `testing` feature (the scripted host).
// A check reports by panicking, and may index what it has just checked.
#![allow(
    dead_code,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use arbitrary::{Arbitrary, Unstructured};
use serde_json::{Map, Number, Value};
use std::collections::HashSet;
use traffic_split::config::pass_through::pass_through_plan;
use traffic_split::config::{compile, compile_value, describe_errors};
use traffic_split::metrics::{CodeClass, DestinationMetric, PluginMetric};
use traffic_split::plan::{
    Destination, MetricsMode, Plan, DEADLINE_HEADER, GRPC_RETRY_ON_HEADER,
    HEDGE_ON_PER_TRY_TIMEOUT_HEADER, MAX_RETRIES_HEADER, PER_TRY_TIMEOUT_HEADER,
    REMOVED_TIMEOUT_HEADERS, RETRIABLE_HEADER_NAMES_HEADER, RETRIABLE_STATUS_CODES_HEADER,
    RETRY_ON_HEADER,
};
use traffic_split::request::headers::{serialize_pairs, HeaderPairs};
use traffic_split::request::scripted_host::ScriptedHost;
use traffic_split::request::{Chosen, Count, Stream, Verdict};
use traffic_split::split::fault::FaultKind;
use traffic_split::state::RouteState;

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
    // Sticky by header or cookie, an override header, a rollout.
    r#"{ "routes": [
        { "name": "by-user", "match": { "prefix": "/hello" }, "sticky": { "header": "x-user" },
          "override_header": "x-canary-version",
          "destinations": [ { "version": "v1", "cluster": "springbootapp-v1", "weight": 70 },
                            { "version": "v2", "cluster": "springbootapp-v2", "weight": 30 } ] },
        { "name": "by-cookie", "sticky": { "cookie": "session", "set_cookie": { "max_age": "24h" } },
          "rollout": { "version": "v2", "start": "1970-01-01T00:00:01Z",
                       "steps": [ { "share": 10, "hold": "10m" }, { "share": 50, "over": "1h" } ] },
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
    b"x-envoy-upstream-rq-timeout-alt-response",
    b"x-envoy-upstream-stream-duration-ms",
    b"x-envoy-expected-rq-timeout-ms",
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
    /// One bit per owned header (in the order of `owned_headers`): its write fails.
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

/// Runs every request through a fresh stream and checks the stream's promises.
pub fn check_streams(case: &HostileStreams) {
    let plan = sample_plan(case.config);
    let mut states = RouteState::for_plan(&plan);
    for request in &case.requests {
        check_request(&plan, &mut states, request);
    }
}

/// The retry headers: owned on every route the filter matches.
const RETRY_HEADERS: [&str; 4] = [
    MAX_RETRIES_HEADER,
    RETRY_ON_HEADER,
    PER_TRY_TIMEOUT_HEADER,
    GRPC_RETRY_ON_HEADER,
];

/// Every header the filter may write or remove: the version and cluster headers (on every
/// request), the deadline and retry headers (on matched routes).
fn owned_headers(plan: &Plan) -> [&str; 13] {
    let [max_retries, retry_on, per_try, grpc] = RETRY_HEADERS;
    let [alt_response, stream_duration, expected_timeout] = REMOVED_TIMEOUT_HEADERS;
    [
        &plan.version_header,
        &plan.cluster_header,
        DEADLINE_HEADER,
        max_retries,
        retry_on,
        per_try,
        grpc,
        RETRIABLE_STATUS_CODES_HEADER,
        RETRIABLE_HEADER_NAMES_HEADER,
        HEDGE_ON_PER_TRY_TIMEOUT_HEADER,
        alt_response,
        stream_duration,
        expected_timeout,
    ]
}

/// The values a routed request's retry headers must have: the destination's retries, or none.
fn expected_retry_values(destination: &Destination) -> [Option<&str>; 4] {
    match &destination.retries {
        Some(retries) => [
            Some(retries.max_retries.as_str()),
            Some(retries.retry_on.as_str()),
            retries.per_try_timeout_ms.as_deref(),
            retries.grpc_retry_on.as_deref(),
        ],
        None => [None; 4],
    }
}

pub fn check_request(plan: &Plan, states: &mut [RouteState], request: &HostileRequest) {
    let owned = owned_headers(plan);
    let mut host = ScriptedHost {
        headers: request
            .headers
            .iter()
            .map(|(name, value)| (name.bytes(), value.bytes()))
            .collect(),
        fail_read: request.fail_read,
        fail_writes_of: owned
            .iter()
            .enumerate()
            .filter(|(bit, _)| u32::from(request.fail_writes) & (1u32 << bit) != 0)
            .map(|(_, name)| name.to_string())
            .collect(),
        fail_removes: request.fail_removes,
        fail_response_code: request.fail_response_code,
        fail_response_flags: request.fail_response_flags,
        fail_local_reply: request.fail_local_reply,
        response_code: request.response_code,
        response_flags: request.response_flags,
        ..ScriptedHost::default()
    };
    let sent = host.headers.clone();
    // Override headers are removed on the routes that have one.
    let overrides: Vec<&str> = plan
        .routes
        .iter()
        .filter_map(|route| route.override_header.as_deref())
        .collect();
    let mut stream = Stream::default();
    let verdict = stream.on_request_headers(plan, states, &mut host);

    assert!(host.reads <= 1, "the header map is read at most once");
    assert_eq!(
        host.count_of(Count::Plugin(PluginMetric::HostErrors)),
        host.failed_calls,
        "every failed host call is counted once"
    );
    let except = |headers: &[(Vec<u8>, Vec<u8>)], names: &[&str]| -> Vec<(Vec<u8>, Vec<u8>)> {
        headers
            .iter()
            .filter(|(name, _)| !names.iter().any(|owned| name == owned.as_bytes()))
            .cloned()
            .collect()
    };
    let all_owned: Vec<&str> = owned.iter().copied().chain(overrides).collect();
    assert_eq!(
        except(&host.headers, &all_owned),
        except(&sent, &all_owned),
        "headers the filter does not own are left as they were"
    );
    let routed: Vec<Chosen> = host
        .counts
        .iter()
        .filter_map(|count| match count {
            Count::Destination(chosen, DestinationMetric::Requests) => Some(*chosen),
            _ => None,
        })
        .collect();
    let unmatched = host.count_of(Count::Plugin(PluginMetric::Unmatched))
        + host.count_of(Count::Plugin(PluginMetric::InvalidConfigRequests));
    if plan.pass_through {
        assert_eq!(host.count_of(Count::Plugin(PluginMetric::Unmatched)), 0);
    } else {
        assert_eq!(
            host.count_of(Count::Plugin(PluginMetric::InvalidConfigRequests)),
            0
        );
    }
    let read_failed = usize::from(request.fail_read && host.reads == 1);
    // An abort whose local reply failed: counted, and the request goes on routed.
    let reply_failed = usize::from(
        request.fail_local_reply
            && host.counts.iter().any(|count| {
                matches!(count, Count::Destination(_, DestinationMetric::FaultsAbort))
            }),
    );
    let writes_failed = host.failed_calls - read_failed - reply_failed;
    match stream.chosen {
        Some(chosen) => {
            assert_eq!(
                writes_failed, 0,
                "a request with a failed write is not routed"
            );
            assert_eq!(routed, [chosen], "a routed request is counted once");
            // A fault drawn is counted; an abort is answered, unless the reply failed.
            let faults: Vec<&Count> = host
                .counts
                .iter()
                .filter(|count| {
                    matches!(
                        count,
                        Count::Destination(
                            _,
                            DestinationMetric::FaultsAbort | DestinationMetric::FaultsDelay
                        )
                    )
                })
                .collect();
            match verdict {
                Verdict::Continue => {
                    assert!(host.local_replies.is_empty());
                    assert!(
                        faults.is_empty() || request.fail_local_reply,
                        "a fault that neither answered nor held: {faults:?}"
                    );
                }
                Verdict::Answered => {
                    assert_eq!(
                        faults,
                        [&Count::Destination(
                            chosen,
                            DestinationMetric::fault(FaultKind::Abort)
                        )]
                    );
                    assert_eq!(host.local_replies.len(), 1);
                }
                Verdict::Held { .. } => {
                    assert_eq!(
                        faults,
                        [&Count::Destination(
                            chosen,
                            DestinationMetric::fault(FaultKind::Delay)
                        )]
                    );
                }
            }
            assert_eq!(unmatched, 0);
            let destination = &plan.routes[chosen.route].destinations[chosen.destination];
            assert_eq!(
                host.raw_values(&plan.version_header),
                [destination.version.as_bytes()],
                "the version header holds the destination's version, and only it"
            );
            let cluster = host.raw_values(&plan.cluster_header);
            match &destination.cluster {
                Some(expected) => assert_eq!(cluster, [expected.as_bytes()]),
                None => assert!(cluster.is_empty(), "no cluster header without a cluster"),
            }
            let deadline = host.raw_values(DEADLINE_HEADER);
            match &destination.deadline_header_value {
                Some(expected) => assert_eq!(deadline, [expected.as_bytes()]),
                None => assert!(deadline.is_empty(), "a client's deadline is removed"),
            }
            for header in REMOVED_TIMEOUT_HEADERS {
                assert!(
                    host.raw_values(header).is_empty(),
                    "a client's {header} is removed"
                );
            }
            for (header, expected) in RETRY_HEADERS.iter().zip(expected_retry_values(destination)) {
                let values = host.raw_values(header);
                match expected {
                    Some(expected) => assert_eq!(values, [expected.as_bytes()], "{header}"),
                    None => assert!(values.is_empty(), "a client's {header} is removed"),
                }
            }
            assert!(
                host.raw_values(HEDGE_ON_PER_TRY_TIMEOUT_HEADER).is_empty(),
                "a client's hedging is removed"
            );
            if destination.retries.is_none() {
                for header in [RETRIABLE_STATUS_CODES_HEADER, RETRIABLE_HEADER_NAMES_HEADER] {
                    assert!(
                        host.raw_values(header).is_empty(),
                        "a client's {header} is removed"
                    );
                }
            }
        }
        None => {
            assert!(
                routed.is_empty(),
                "an unrouted request is not counted as routed"
            );
            assert_eq!(
                verdict,
                Verdict::Continue,
                "only a routed request meets a fault"
            );
            assert!(unmatched <= 1);
            if writes_failed == 0 {
                assert_eq!(
                    unmatched, 1,
                    "without a host failure, unrouted means unmatched"
                );
                for name in [&plan.version_header, &plan.cluster_header] {
                    assert!(
                        host.raw_values(name).is_empty(),
                        "an unmatched request keeps no {name}"
                    );
                }
                let routing = [plan.version_header.as_str(), &plan.cluster_header];
                assert_eq!(
                    except(&host.headers, &routing),
                    except(&sent, &routing),
                    "an unmatched request keeps its deadline and retry headers"
                );
            }
        }
    }

    let counted = host.counts.len();
    let failed_before_end = host.failed_calls;
    host.clock = host.clock.saturating_add(request.elapsed_nanos);
    stream.on_end(plan, states, &mut host);
    let at_end = &host.counts[counted..];
    let end_failures = host.failed_calls - failed_before_end;
    assert_eq!(
        at_end
            .iter()
            .filter(|&&count| count == Count::Plugin(PluginMetric::HostErrors))
            .count(),
        end_failures,
        "every failed host call at the end is counted once"
    );
    let ended_with: Vec<&Count> = at_end
        .iter()
        .filter(|&&count| count != Count::Plugin(PluginMetric::HostErrors))
        .collect();
    match stream.chosen {
        Some(chosen) if plan.metrics == MetricsMode::Full => {
            assert_eq!(
                host.durations.len(),
                1,
                "a routed stream records its duration"
            );
            let class = match request.response_code {
                Some(code) if !request.fail_response_code => CodeClass::of_code(code),
                _ => None,
            };
            let responses: Vec<&Count> = at_end
                .iter()
                .filter(|count| {
                    matches!(
                        count,
                        Count::Destination(
                            _,
                            DestinationMetric::Responses2xx
                                | DestinationMetric::Responses3xx
                                | DestinationMetric::Responses4xx
                                | DestinationMetric::Responses5xx
                        )
                    )
                })
                .collect();
            match class {
                Some(class) => assert_eq!(
                    responses,
                    [&Count::Destination(
                        chosen,
                        DestinationMetric::response(class)
                    )]
                ),
                None => assert!(responses.is_empty()),
            }
            let timed_out =
                at_end.contains(&Count::Destination(chosen, DestinationMetric::Timeouts));
            let envoys_deadline = request.response_code == Some(504)
                && !request.fail_response_code
                && !request.fail_response_flags
                && request.response_flags.is_some_and(|flags| flags & 0x4 != 0);
            assert_eq!(
                timed_out, envoys_deadline,
                "a timeout is Envoy's deadline only"
            );
        }
        Some(_) => {
            // Requests mode: the guard may read the response, and counts only its failures.
            assert!(ended_with.is_empty(), "counted at the end: {ended_with:?}");
            assert!(host.durations.is_empty());
        }
        None => {
            assert!(
                at_end.is_empty(),
                "nothing is counted at the end: {at_end:?}"
            );
            assert!(host.durations.is_empty());
        }
    }
}

/// A header map as the host serializes it, from arbitrary bytes: reading never panics, never
/// reads past the buffer, and `get` agrees with `iter`. The same bytes, read as a list of
/// pairs, must survive serializing and reading back unchanged.
pub fn check_header_map(bytes: &[u8]) {
    let headers = HeaderPairs::new(bytes);
    let pairs: Vec<(&[u8], &[u8])> = headers.iter().collect();
    // Each name and value is followed by a NUL, which the last value may lack.
    let read: usize = pairs
        .iter()
        .map(|(name, value)| name.len() + value.len() + 2)
        .sum();
    if !pairs.is_empty() {
        assert!(
            4 + 8 * pairs.len() + read - 1 <= bytes.len(),
            "read past the buffer"
        );
    }
    for (name, _) in &pairs {
        if let Ok(name) = std::str::from_utf8(name) {
            let first = pairs
                .iter()
                .find(|(key, _)| *key == name.as_bytes())
                .map(|(_, value)| *value);
            assert_eq!(headers.get(name), first, "get gives the first value");
        }
    }
    let Ok(pairs) = Vec::<(Vec<u8>, Vec<u8>)>::arbitrary(&mut Unstructured::new(bytes)) else {
        return;
    };
    let serialized = serialize_pairs(&pairs);
    let read_back: Vec<(Vec<u8>, Vec<u8>)> = HeaderPairs::new(&serialized)
        .iter()
        .map(|(name, value)| (name.to_vec(), value.to_vec()))
        .collect();
    assert_eq!(read_back, pairs, "a serialized map reads back unchanged");
}

/// A configuration as arbitrary bytes: compiled into a sound plan, or refused with errors.
pub fn check_config_text(bytes: &[u8]) {
    match compile(bytes) {
        Ok(plan) => check_plan(&plan),
        Err(errors) => {
            check_refusal(&errors);
            if let Some(plan) = pass_through_plan(bytes) {
                assert!(plan.pass_through && plan.routes.is_empty());
                assert_ne!(plan.version_header, plan.cluster_header);
                for name in [&plan.version_header, &plan.cluster_header] {
                    assert_eq!(*name, name.to_ascii_lowercase());
                }
            }
        }
    }
}

fn check_refusal(errors: &[traffic_split::config::ConfigError]) {
    assert!(!errors.is_empty(), "a refusal names at least one error");
    for error in errors {
        assert!(!error.message.is_empty(), "an error says what is wrong");
    }
    assert!(!describe_errors(errors).is_empty());
}

fn is_label(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// What every compiled plan holds, whatever config it came from.
pub fn check_plan(plan: &Plan) {
    assert!(!plan.routes.is_empty(), "a plan has a route");
    assert_ne!(plan.version_header, plan.cluster_header);
    let mut route_names = HashSet::new();
    for route in &plan.routes {
        assert!(is_label(&route.name), "route name {:?}", route.name);
        assert!(route_names.insert(&route.name), "route names are unique");
        assert!(!route.destinations.is_empty(), "a route has a destination");
        let mut versions = HashSet::new();
        for destination in &route.destinations {
            assert!(is_label(&destination.version));
            assert!(versions.insert(&destination.version), "versions are unique");
            assert_eq!(
                destination.deadline_header_value,
                destination.deadline_ms.map(|ms| ms.to_string())
            );
        }
        let total: u64 = route
            .destinations
            .iter()
            .map(|destination| u64::from(destination.weight))
            .sum();
        assert!(total > 0, "a route's weights add up to more than 0");
        // The exact split: one cycle of picks holds each destination's reduced weight.
        let mut state = RouteState::new(route);
        let cycle = state.split_in_force().cycle_len();
        if cycle <= 10_000 {
            let mut picks = vec![0u64; route.destinations.len()];
            for _ in 0..cycle {
                picks[state.pick()] += 1;
            }
            for (destination, picked) in route.destinations.iter().zip(&picks) {
                assert_eq!(
                    u128::from(*picked) * u128::from(total),
                    u128::from(destination.weight) * u128::from(cycle),
                    "{} of {cycle} picks for weight {} of {total}",
                    picked,
                    destination.weight
                );
            }
        }
    }
}

/// Keys the config grammar knows, so that random trees often reach the deeper checks.
const KEYS: &[&str] = &[
    "version_header",
    "cluster_header",
    "routes",
    "name",
    "match",
    "destinations",
    "timeout",
    "prefix",
    "exact",
    "regex",
    "methods",
    "headers",
    "present",
    "version",
    "cluster",
    "weight",
    "metrics",
    "log_level",
    "on_invalid_config",
    "guard",
    "max_error_ratio",
    "min_requests",
    "window",
    "cooldown",
    "errors",
    "probe_percent",
    "retries",
    "attempts",
    "retry_on",
    "per_try_timeout",
    "grpc_retry_on",
    "fault",
    "abort",
    "delay",
    "status",
    "percent",
    "fixed",
];

/// String values the config grammar knows: good and bad durations, names, paths, regexes.
const STRINGS: &[&str] = &[
    "2ms",
    "0.002s",
    "1.5s",
    "24h",
    "25h",
    "0s",
    "0.5ms",
    "-1s",
    "1",
    "",
    " ",
    "v1",
    "v2",
    "hello",
    "a.b",
    "a b",
    "/hello",
    "hello",
    "/api/.*",
    "(",
    "a{1000}{1000}",
    "GET",
    "get",
    "x-split-version",
    "x-envoy-upstream-rq-timeout-ms",
    ":authority",
    "springbootapp-v1",
    "full",
    "requests",
    "pass_through",
    "5xx",
    "reset",
    "timeout",
    "5xx,reset,connect-failure",
    "debug",
];

/// A JSON tree biased towards the config's own shape.
#[derive(Arbitrary, Clone, Debug)]
pub enum JsonTree {
    Null,
    Bool(bool),
    Integer(i64),
    Float(f64),
    KnownString(u8),
    String(String),
    List(Vec<JsonTree>),
    Object(Vec<(JsonKey, JsonTree)>),
}

#[derive(Arbitrary, Clone, Debug)]
pub enum JsonKey {
    Known(u8),
    Other(String),
}

/// Deeper trees than this become `null`: serde_json refuses nesting beyond 128 anyway.
const MAX_DEPTH: usize = 32;

impl JsonTree {
    /// As JSON text, keys written twice kept (the compiler must refuse them).
    pub fn to_text(&self, depth: usize) -> String {
        let value = |tree: &JsonTree| tree.to_text(depth + 1);
        match self {
            _ if depth > MAX_DEPTH => "null".to_string(),
            JsonTree::Null => "null".to_string(),
            JsonTree::Bool(flag) => flag.to_string(),
            JsonTree::Integer(number) => number.to_string(),
            JsonTree::Float(number) => Number::from_f64(*number)
                .map_or_else(|| "null".to_string(), |number| number.to_string()),
            JsonTree::KnownString(index) => {
                Value::from(STRINGS[usize::from(*index) % STRINGS.len()]).to_string()
            }
            JsonTree::String(text) => Value::from(text.as_str()).to_string(),
            JsonTree::List(items) => {
                let items: Vec<String> = items.iter().map(value).collect();
                format!("[{}]", items.join(","))
            }
            JsonTree::Object(fields) => {
                let fields: Vec<String> = fields
                    .iter()
                    .map(|(key, tree)| format!("{}:{}", Value::from(key.name()), value(tree)))
                    .collect();
                format!("{{{}}}", fields.join(","))
            }
        }
    }

    /// As a `serde_json::Value` (a key written twice keeps its last value).
    pub fn to_value(&self, depth: usize) -> Value {
        match self {
            _ if depth > MAX_DEPTH => Value::Null,
            JsonTree::Null => Value::Null,
            JsonTree::Bool(flag) => Value::Bool(*flag),
            JsonTree::Integer(number) => Value::from(*number),
            JsonTree::Float(number) => Number::from_f64(*number).map_or(Value::Null, Value::Number),
            JsonTree::KnownString(index) => {
                Value::from(STRINGS[usize::from(*index) % STRINGS.len()])
            }
            JsonTree::String(text) => Value::from(text.as_str()),
            JsonTree::List(items) => {
                Value::Array(items.iter().map(|tree| tree.to_value(depth + 1)).collect())
            }
            JsonTree::Object(fields) => {
                let mut object = Map::new();
                for (key, tree) in fields {
                    object.insert(key.name().to_string(), tree.to_value(depth + 1));
                }
                Value::Object(object)
            }
        }
    }
}

impl JsonKey {
    fn name(&self) -> &str {
        match self {
            JsonKey::Known(index) => KEYS[usize::from(*index) % KEYS.len()],
            JsonKey::Other(name) => name,
        }
    }
}

/// A configuration as a JSON tree: as text through [`compile`], as a value through
/// [`compile_value`] (the checker's path), each compiled into a sound plan or refused.
pub fn check_config_tree(tree: &JsonTree) {
    check_config_text(tree.to_text(0).as_bytes());
    match compile_value(&tree.to_value(0)) {
        Ok(plan) => check_plan(&plan),
        Err(errors) => check_refusal(&errors),
    }
}
