//! `make run`: the classic Istio canary, on a local Envoy.
//!
//! Starts Envoy with `envoy/envoy.yaml` and the release module, sends 1,000 requests to
//! `/hello`, prints what Envoy counted per version (share, status classes, timeouts) and the
//! matching Prometheus lines, then stops Envoy. With the shipped config: 700 to v1, all 2xx;
//! 300 to v2, all cut by the 2 ms deadline because v2 answers in 5 ms.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use support::{Envoy, EnvoyConfig};

const REQUESTS: usize = 1000;
const ROUTE: &str = "hello";

fn main() {
    let envoy = Envoy::start(EnvoyConfig::shipped());
    println!(
        "Envoy {} is up: front listener {}, admin http://{}",
        support::envoy_binary().display(),
        envoy.front,
        envoy.admin
    );
    println!(
        "Each upstream connection was warmed with one request through a listener without the \
         filter;\nsending {REQUESTS} requests to GET /hello over one client connection ...\n"
    );

    let mut connection = envoy.connect();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for _ in 0..REQUESTS {
        let response = match connection.get("/hello") {
            Ok(response) => response,
            Err(_) => {
                // Envoy closes a connection after some local replies: open a new one.
                connection = envoy.connect();
                connection.get("/hello").expect("request to Envoy")
            }
        };
        *statuses.entry(response.status).or_default() += 1;
    }

    let metrics = envoy.admin.metrics_when(|metrics| {
        let durations = "traffic_split_request_duration_microseconds_count";
        let recorded: u64 = ["v1", "v2"]
            .iter()
            .map(|version| metrics.count(durations, &[("route", ROUTE), ("version", version)]))
            .sum();
        recorded >= REQUESTS as u64
    });
    println!(
        "{:<8} {:>8} {:>7} {:>6} {:>6} {:>6} {:>6} {:>9}",
        "version", "requests", "share", "2xx", "3xx", "4xx", "5xx", "timeouts"
    );
    for version in ["v1", "v2"] {
        let labels = [("route", ROUTE), ("version", version)];
        let requests = metrics.count("traffic_split_requests_total", &labels);
        let class = |code_class| {
            metrics.count(
                "traffic_split_responses_total",
                &[
                    ("route", ROUTE),
                    ("version", version),
                    ("code_class", code_class),
                ],
            )
        };
        println!(
            "{:<8} {:>8} {:>6.1}% {:>6} {:>6} {:>6} {:>6} {:>9}",
            version,
            requests,
            100.0 * requests as f64 / REQUESTS as f64,
            class("2xx"),
            class("3xx"),
            class("4xx"),
            class("5xx"),
            metrics.count("traffic_split_timeouts_total", &labels),
        );
    }
    let seen: Vec<String> = statuses
        .iter()
        .map(|(status, count)| format!("{status} x{count}"))
        .collect();
    println!("\nThe client saw: {}", seen.join(", "));
    println!(
        "(2 ms is the Istio experiment's deadline: with cold connections, or a new connection per \
         request,\nsome v1 requests are cut too, and counted as v1 timeouts. See README.md.)"
    );

    println!("\nPrometheus, from Envoy's admin /stats/prometheus:");
    for line in envoy.admin.prometheus_lines() {
        // The histogram's buckets are many; its _count and _sum say enough here.
        if !line.contains("_bucket{") {
            println!("  {line}");
        }
    }
    drop(envoy);
    println!("\nEnvoy stopped.");
}
