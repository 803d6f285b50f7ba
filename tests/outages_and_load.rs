//! Outages and load: an upstream that is gone, with and without the guard, and the config
//! changed under load (weights swapped, a bad config pushed) while wrk keeps every connection
//! busy.

use traffic_split_e2e as support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{exclusive, Envoy, EnvoyConfig, SPLIT_70_30};

fn by_status_and_version(envoy: &Envoy, count: usize) -> BTreeMap<(u16, String), usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..count {
        // A fresh connection each time: Envoy closes one after some local replies.
        let response = envoy.connect().get("/hello").expect("a response");
        let version = response
            .header("x-upstream-saw-version")
            .unwrap_or("-")
            .to_string();
        *seen.entry((response.status, version)).or_default() += 1;
    }
    seen
}

fn outcome(envoy: &Envoy, version: &str) -> (u64, u64, u64, u64) {
    envoy.admin.metrics().outcome("hello", version)
}

/// v2's listener is gone: Envoy cannot connect to it and answers its requests with 503. They
/// are counted under v2 as requests and 5xx responses (not timeouts); v1 and the split are
/// untouched.
#[test]
fn with_v2s_upstream_gone_its_requests_end_in_503_counted_under_v2() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(SPLIT_70_30)
            .without_listener("springbootapp-v2"),
    );
    let connect_failures = || {
        envoy
            .admin
            .stat("cluster.springbootapp-v2.upstream_cx_connect_fail")
            .unwrap_or(0)
    };
    // The harness's warm-up request to v2 failed already.
    let failed_before = connect_failures();
    let seen = by_status_and_version(&envoy, 100);
    let expected: BTreeMap<(u16, String), usize> =
        [((200, "v1".into()), 70), ((503, "-".into()), 30)].into();
    assert_eq!(seen, expected);
    assert_eq!(outcome(&envoy, "v1"), (70, 70, 0, 0));
    assert_eq!(outcome(&envoy, "v2"), (30, 0, 30, 0));
    let metrics = envoy.admin.metrics();
    assert_eq!(metrics.count("traffic_split_unmatched_total", &[]), 0);
    assert_eq!(metrics.count("traffic_split_host_errors_total", &[]), 0);
    assert_eq!(
        connect_failures() - failed_before,
        30,
        "the 503s are connection failures"
    );
}

/// The same with the guard on: v2 trips within its window and its traffic moves to v1.
#[test]
fn with_v2s_upstream_gone_the_guard_moves_its_traffic_to_v1() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let guarded = r#"{ "routes": [{ "name": "hello", "match": { "prefix": "/hello" },
        "guard": { "max_error_ratio": 0.05, "min_requests": 20, "window": "2s", "cooldown": "1m" },
        "destinations": [ { "version": "v1", "cluster": "springbootapp-v1", "weight": 70 },
                          { "version": "v2", "cluster": "springbootapp-v2", "weight": 30 } ] }] }"#;
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(guarded)
            .without_listener("springbootapp-v2"),
    );
    let started = Instant::now();
    loop {
        let batch = by_status_and_version(&envoy, 20);
        if batch.get(&(200, "v1".to_string())) == Some(&20) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "v2 was not taken out: {batch:?}"
        );
    }
    let after = by_status_and_version(&envoy, 100);
    assert_eq!(after.get(&(200, "v1".to_string())), Some(&100), "{after:?}");
    let metrics = envoy.admin.metrics();
    assert_eq!(
        metrics.version_count("traffic_split_guard_trips_total", "hello", "v2"),
        1
    );
}

/// What wrk reports: completed requests, non-2xx answers, socket errors.
#[derive(Debug)]
struct WrkSummary {
    requests: u64,
    non_2xx: u64,
    socket_errors: u64,
}

fn parse_wrk(out: &str) -> WrkSummary {
    let number_before = |line: &str, word: &str| -> u64 {
        line.split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .find(|pair| pair[1].starts_with(word))
            .and_then(|pair| pair[0].parse().ok())
            .unwrap_or(0)
    };
    let mut summary = WrkSummary {
        requests: 0,
        non_2xx: 0,
        socket_errors: 0,
    };
    for line in out.lines() {
        let line = line.trim();
        if line.contains("requests in") {
            summary.requests = number_before(line, "requests");
        } else if let Some(count) = line.strip_prefix("Non-2xx or 3xx responses:") {
            summary.non_2xx = count.trim().parse().expect("a count");
        } else if let Some(errors) = line.strip_prefix("Socket errors:") {
            summary.socket_errors = errors
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum();
        }
    }
    summary
}

fn split(v1: u32, v2: u32) -> String {
    format!(
        r#"{{ "routes": [{{ "name": "hello", "match": {{ "prefix": "/hello" }},
        "destinations": [ {{ "version": "v1", "cluster": "springbootapp-v1", "weight": {v1} }},
                          {{ "version": "v2", "cluster": "springbootapp-v2", "weight": {v2} }} ] }}] }}"#
    )
}

const WRK_CONNECTIONS: u64 = 8;

/// The config changed five times and a bad one pushed, through ECDS as Istio does, while wrk
/// keeps 8 connections busy: every response is a 2xx from v1 or v2, none is lost, and within
/// a second of each change the requests follow the new weights (on the connections already
/// open: an ECDS update applies to their next request).
#[test]
fn config_changes_under_load_lose_nothing_and_the_split_follows_them() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(&split(70, 30))
            .front_filter_from_ecds(),
    );
    // The harness's warm-up requests reach the clusters too.
    let upstream_2xx = || -> u64 {
        ["springbootapp-v1", "springbootapp-v2"]
            .iter()
            .map(|cluster| {
                envoy
                    .admin
                    .stat(&format!("cluster.{cluster}.upstream_rq_2xx"))
                    .unwrap_or(0)
            })
            .sum()
    };
    let upstream_2xx_before = upstream_2xx();
    let url = format!("http://{}/hello", envoy.front);
    // Stopped with SIGINT once the phases are done; wrk then prints its summary as usual.
    let wrk = Command::new("wrk")
        .args(["-t1", &format!("-c{WRK_CONNECTIONS}"), "-d5m", &url])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run wrk (make apt-tools installs it)");
    // Both versions from one scrape: two scrapes apart would count the requests between them
    // for one version only, which under a busy machine is more than the in-flight slack.
    let routed_both = || -> (u64, u64) {
        let metrics = envoy.admin.metrics();
        let routed = |version: &str| {
            metrics.count(
                "traffic_split_requests_total",
                &[("route", "hello"), ("version", version)],
            )
        };
        (routed("v1"), routed("v2"))
    };
    // Each phase: a config, then a second of load under it, whose split is checked.
    type Weights = (u32, u32);
    // (the config pushed, if any; the weights the requests must follow).
    let phases: [(Option<Weights>, Weights); 7] = [
        (None, (70, 30)),
        (Some((50, 50)), (50, 50)),
        (Some((90, 10)), (90, 10)),
        // Refused (an all-zero split): the previous weights go on.
        (Some((0, 0)), (90, 10)),
        (Some((20, 80)), (20, 80)),
        (Some((100, 0)), (100, 0)),
        (Some((0, 100)), (0, 100)),
    ];
    let mut report = Vec::new();
    let started = Instant::now();
    while {
        let (v1, v2) = routed_both();
        v1 + v2
    } < 100
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "wrk sends nothing"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for (push, (w1, w2)) in phases {
        if let Some((p1, p2)) = push {
            let applied = envoy.reconfigure_filter(&split(p1, p2));
            assert_eq!(applied, (p1, p2) != (0, 0), "{p1}/{p2}");
        }
        let (v1_before, v2_before) = routed_both();
        std::thread::sleep(Duration::from_secs(1));
        let (v1_after, v2_after) = routed_both();
        let (v1, v2) = (v1_after - v1_before, v2_after - v2_before);
        let total = v1 + v2;
        assert!(total > 100, "too little load to judge: {total}");
        let expected_v1 = total * u64::from(w1) / u64::from(w1 + w2);
        // One worker, one round robin: exact but for the requests in flight at each reading.
        assert!(
            v1.abs_diff(expected_v1) <= WRK_CONNECTIONS + 10,
            "{w1}/{w2}: {v1} of {total} to v1, expected {expected_v1}"
        );
        report.push(format!("{w1}/{w2}: {v1}/{v2}"));
    }
    let interrupted = Command::new("kill")
        .args(["-INT", &wrk.id().to_string()])
        .status()
        .expect("signal wrk");
    assert!(interrupted.success());
    let output = wrk.wait_with_output().expect("wrk's summary");
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    let summary = parse_wrk(&out);
    eprintln!("phases {report:?}; wrk {summary:?}");
    assert!(summary.requests > 1_000, "{out}");
    assert_eq!(summary.non_2xx, 0, "{out}");
    assert_eq!(summary.socket_errors, 0, "{out}");
    // Every request Envoy answered was a 2xx from v1 or v2, and the filter routed each; the
    // only ones unanswered are those wrk left in flight when it stopped.
    let stat = |name: &str| envoy.admin.stat(name).unwrap_or(0);
    let received = stat("http.front.downstream_rq_total");
    let answered = stat("http.front.downstream_rq_completed");
    // wrk stops mid-flight: Envoy may have answered a few requests wrk no longer read.
    assert!(
        (summary.requests..=summary.requests + WRK_CONNECTIONS).contains(&answered),
        "Envoy answered {answered}, wrk received {}",
        summary.requests
    );
    assert_eq!(stat("http.front.downstream_rq_2xx"), answered, "all 2xx");
    assert_eq!(
        received - answered,
        stat("http.front.downstream_rq_rx_reset"),
        "the rest were reset by wrk at its end"
    );
    assert!(received - answered <= WRK_CONNECTIONS);
    assert!(
        received - summary.requests <= WRK_CONNECTIONS,
        "at most one in flight per connection"
    );
    assert_eq!(
        upstream_2xx() - upstream_2xx_before,
        answered,
        "from v1 or v2"
    );
    let (v1, v2) = routed_both();
    assert_eq!(v1 + v2, received, "the filter routed each");
}
