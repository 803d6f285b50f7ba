//! `traffic-split top --once` and `--json` against a real Envoy running the filter: after a
//! known number of requests they give the exact counts, per route and version.

use traffic_split_e2e as support;
mod top_support;

use serde_json::Value as Json;
use std::io::{BufRead, BufReader};
use std::process::{Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::{exclusive, Envoy, EnvoyConfig};
use top_support::{send_hello, top, wait_until_counted, ROUTE};

/// 10 rounds of the split: 70 to v1 (all 2xx), 30 to v2 (all cut by the deadline).
const REQUESTS: u64 = 100;

fn envoy_after_known_requests(config: EnvoyConfig) -> Envoy {
    let envoy = Envoy::start(config.with_plugin_config(support::ROUTE_2MS_V1_10S));
    send_hello(&envoy, REQUESTS as usize);
    wait_until_counted(&envoy, REQUESTS);
    envoy
}

fn run(envoy: &Envoy, args: &[&str]) -> Output {
    let output = top(envoy, args).output().expect("run traffic-split top");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn once_json(envoy: &Envoy, stats_form: &str) -> Json {
    let output = run(
        envoy,
        &[
            "--once",
            "--json",
            "--interval",
            "100ms",
            "--stats",
            stats_form,
        ],
    );
    serde_json::from_slice(&output.stdout).expect("--json prints JSON")
}

/// The right-aligned value that ends where the `column` header ends, in a text frame's row.
fn column(header: &str, row: &str, column: &str) -> String {
    // The heading itself, not one it starts (`5xx` is not `5xx%`).
    let end = header
        .match_indices(column)
        .map(|(start, _)| start + column.len())
        .find(|&end| header[end..].starts_with(' ') || end == header.len())
        .unwrap_or_else(|| panic!("no {column} in {header}"));
    let cells: String = row.chars().take(end).collect();
    cells
        .split_whitespace()
        .last()
        .unwrap_or_default()
        .to_string()
}

/// The percentage after the bar of a share `column`, in a text frame's row.
fn share(header: &str, row: &str, column: &str) -> String {
    let start = header
        .find(column)
        .unwrap_or_else(|| panic!("no {column} in {header}"));
    let cells: String = row.chars().skip(start).collect();
    cells
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

/// The version rows of a JSON frame's only route, by version.
fn version<'a>(frame: &'a Json, name: &str) -> &'a Json {
    let routes = frame["routes"].as_array().expect("routes");
    assert_eq!(routes.len(), 1, "{frame}");
    assert_eq!(routes[0]["route"], ROUTE);
    routes[0]["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .find(|row| row["version"] == name)
        .unwrap_or_else(|| panic!("no {name} in {frame}"))
}

#[test]
fn once_prints_the_exact_counts_per_version() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let envoy = envoy_after_known_requests(EnvoyConfig::shipped());
    let output = run(&envoy, &["--once", "--interval", "100ms"]);
    let text = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = text.lines().collect();
    let line = |start: &str| {
        *lines
            .iter()
            .find(|line| line.starts_with(start))
            .unwrap_or_else(|| panic!("no line starts with {start:?}:\n{text}"))
    };
    assert!(
        line("route hello").starts_with("route hello  100 requests, 0.0 req/s now"),
        "{text}"
    );
    // The filter's weight gauge gives the configured split.
    assert!(!text.contains("weights unknown"), "{text}");
    let header = line("version");
    // (version, requests, share, 2xx, 5xx, timeouts)
    for (name, weight, requests, total_share, ok, errors, timeouts) in [
        ("v1", "70 (70%)", "70", "70.0%", "70", "0", "0"),
        ("v2", "30 (30%)", "30", "30.0%", "0", "30", "30"),
    ] {
        let row = line(&format!("{name} "));
        assert!(row[name.len()..].trim_start().starts_with(weight), "{text}");
        assert_eq!(column(header, row, "requests"), requests, "{text}");
        assert_eq!(share(header, row, "share total"), total_share, "{text}");
        assert_eq!(column(header, row, "2xx"), ok, "{text}");
        assert_eq!(column(header, row, "4xx"), "0", "{text}");
        assert_eq!(column(header, row, "5xx"), errors, "{text}");
        assert_eq!(column(header, row, "timeouts"), timeouts, "{text}");
        // No request in the last interval: no share, no latency.
        assert_eq!(share(header, row, "share now"), "-", "{text}");
        assert_eq!(column(header, row, "req/s"), "0.0", "{text}");
        assert_eq!(column(header, row, "p99 now"), "-", "{text}");
    }
    let filled = |name: &str| line(&format!("{name} ")).matches('█').count();
    assert!(
        filled("v1") > 2 * filled("v2") && filled("v2") > 0,
        "{text}"
    );
    assert_eq!(
        line("unmatched requests"),
        "unmatched requests: 0   host errors: 0"
    );
}

#[test]
fn json_gives_the_same_exact_counts_from_either_form_of_envoys_stats() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let envoy = envoy_after_known_requests(EnvoyConfig::shipped());
    for form in ["prometheus", "json"] {
        let frame = once_json(&envoy, form);
        assert_eq!(frame["routes"][0]["requests"], REQUESTS, "{form}: {frame}");
        assert_eq!(frame["unmatched"], 0);
        assert_eq!(frame["host_errors"], 0);
        assert_eq!(frame["weights_known"], true);
        assert_eq!(frame["guard_known"], false);
        assert!(frame["interval_seconds"].as_f64().is_some_and(|s| s >= 0.1));
        for (name, requests, share, ok, errors, timeouts) in
            [("v1", 70, 0.7, 70, 0, 0), ("v2", 30, 0.3, 0, 30, 30)]
        {
            let row = version(&frame, name);
            let total = &row["since_start"];
            assert_eq!(total["requests"], requests, "{form} {name}: {row}");
            assert_eq!(total["share"], share, "{form} {name}: {row}");
            assert_eq!(total["responses"]["2xx"], ok, "{form} {name}: {row}");
            assert_eq!(total["responses"]["5xx"], errors, "{form} {name}: {row}");
            assert_eq!(total["timeouts"], timeouts, "{form} {name}: {row}");
            assert_eq!(row["weight"], share * 100.0, "{form} {name}: {row}");
            assert!(row.get("guard").is_none());
            assert_eq!(row["last_interval"]["requests"], 0);
        }
        // v2 is never faster than its 2 ms deadline; v1 answers at once.
        let p50 = |name| version(&frame, name)["since_start"]["p50_ms"].as_f64();
        let (v1_p50, v2_p50) = (p50("v1").expect("v1 p50"), p50("v2").expect("v2 p50"));
        assert!(
            v2_p50 > 1.0 && v1_p50 < v2_p50,
            "{form}: p50 v1 {v1_p50}, v2 {v2_p50}"
        );
    }
}

#[test]
fn json_form_needs_no_stats_tags() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let mut config = EnvoyConfig::shipped();
    if let Some(stats_config) = config.document["stats_config"].as_mapping_mut() {
        stats_config.remove("stats_tags");
    }
    let envoy = Envoy::start(config.with_plugin_config(support::ROUTE_2MS_V1_10S));
    send_hello(&envoy, REQUESTS as usize);
    // Envoy's own counters, with plugin, route and version in their names for want of the tags
    // (the plugin's `-` made `_` by Envoy's Prometheus form).
    let metrics = envoy.admin.metrics_when(|metrics| {
        metrics.count(
            "traffic_split_plugin_traffic_split_route_hello_version_v2_code_class_5xx_responses_total",
            &[],
        ) + metrics.count(
            "traffic_split_plugin_traffic_split_route_hello_version_v1_code_class_2xx_responses_total",
            &[],
        ) == REQUESTS
    });
    assert_eq!(
        metrics.count(
            "traffic_split_plugin_traffic_split_route_hello_version_v2_timeouts_total",
            &[]
        ),
        30
    );
    let frame = once_json(&envoy, "json");
    assert_eq!(version(&frame, "v1")["since_start"]["requests"], 70);
    assert_eq!(version(&frame, "v2")["since_start"]["timeouts"], 30);

    // Without the tags the Prometheus form has no labels to read, and top says so.
    let frame = once_json(&envoy, "prometheus");
    assert_eq!(frame["routes"], serde_json::json!([]), "{frame}");
    let output = run(&envoy, &["--once", "--interval", "100ms"]);
    assert!(String::from_utf8_lossy(&output.stdout).contains("(try --stats json)"));
}

#[test]
fn json_lines_count_each_interval_exactly() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let envoy = envoy_after_known_requests(EnvoyConfig::shipped());
    let mut child = top(&envoy, &["--json", "--interval", "200ms"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start traffic-split top --json");
    let stdout = child.stdout.take().expect("stdout");
    let (sender, frames) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let frame: Json = serde_json::from_str(&line).expect("each line is a JSON frame");
            if sender.send(frame).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let next = || {
        frames
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("a frame every 200 ms")
    };
    let first = next();
    assert_eq!(first["routes"][0]["requests"], REQUESTS);
    assert_eq!(
        first["interval_seconds"],
        Json::Null,
        "the first frame has no interval"
    );

    // 20 more requests: two rounds of the split, 14 to v1 and 6 to v2, spread over intervals.
    send_hello(&envoy, 20);
    let mut in_intervals = [0, 0];
    loop {
        let frame = next();
        for (count, name) in in_intervals.iter_mut().zip(["v1", "v2"]) {
            *count += version(&frame, name)["last_interval"]["requests"]
                .as_u64()
                .expect("an interval count");
        }
        if frame["routes"][0]["requests"] == REQUESTS + 20 {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(in_intervals, [14, 6]);
}

#[test]
fn once_without_an_envoy_fails_naming_the_address() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let output = top_support::traffic_split()
        .args(["top", "--once", "--admin", &format!("127.0.0.1:{port}")])
        .output()
        .expect("run traffic-split top");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with(&format!(
            "traffic-split top: cannot reach Envoy's admin at http://127.0.0.1:{port} ("
        )),
        "{stderr}"
    );
    assert!(stderr.contains("is Envoy running"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one message: {stderr}");
}

#[test]
fn a_usage_error_exits_2() {
    let output = top_support::traffic_split()
        .args(["top", "--interval", "never"])
        .output()
        .expect("run traffic-split top");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--interval: "), "{stderr}");
    // The error and where the options are, not the whole help after it.
    assert_eq!(stderr.lines().count(), 2, "{stderr}");
}
