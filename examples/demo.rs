//! `make run`: the classic Istio canary, on a local Envoy.
//!
//! Starts Envoy with `envoy/envoy.yaml` (or, after `make run CONFIG=file.json`, the bootstrap
//! `make` wrote for that plugin config, named by `TRAFFIC_SPLIT_ENVOY_CONFIG`) and the release
//! module, sends 1,000 requests to each route it can find a request for, prints what Envoy
//! counted per route and version (share, status classes, timeouts) and the matching Prometheus
//! lines, then stops Envoy. With the shipped config: 700 to v1, all 2xx; 300 to v2, all cut by
//! the 2 ms deadline because v2 answers in 5 ms.

use traffic_split_e2e as support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use support::{Envoy, EnvoyConfig};
use traffic_split::config::compile;
use traffic_split::plan::{MetricsMode, Plan};
use traffic_split_check::local_envoy::{sample_requests, SampleRequest};

const REQUESTS: usize = 1000;

fn main() {
    let path = std::env::var_os("TRAFFIC_SPLIT_ENVOY_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| support::repo_root().join("envoy/envoy.yaml"));
    // Envoy's timers read a clock that steps with the kernel's tick (4 ms), which cuts some
    // answers well within a 2 ms deadline; this makes them read a precise one, so the demo's
    // counts do not depend on where the ticks fall (docs/metrics.md, "Deadlines").
    std::env::set_var("EVENT_PRECISE_TIMER", "1");
    let mut config = EnvoyConfig::from_file(&path);
    let plan = compile(config.plugin_config().as_bytes()).expect("make checked the config");
    let envoy = Envoy::start(config);
    println!(
        "Envoy {} is up with {}: front listener {}, admin http://{}",
        support::envoy_binary().display(),
        path.display(),
        envoy.front,
        envoy.admin
    );
    println!(
        "Envoy's timers read a precise clock (EVENT_PRECISE_TIMER=1); each upstream connection \
         was warmed with\none request through a listener without the filter; sending {REQUESTS} \
         requests per route over one client connection ...\n"
    );

    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    let mut sent = Vec::new();
    for sample in sample_requests(&plan) {
        match sample {
            Ok(sample) => {
                send(&envoy, &sample, &mut statuses);
                sent.push(sample);
            }
            Err(no) => println!("route {}: not sent, {}\n", no.route, no.reason),
        }
    }

    // Durations are recorded when a stream ends (the last thing counted); with
    // `"metrics": "requests"` there are none, and the requests are enough.
    let counted_metric = match plan.metrics {
        MetricsMode::Full => "traffic_split_request_duration_microseconds_count",
        MetricsMode::Requests => "traffic_split_requests_total",
    };
    let metrics = envoy.admin.metrics_when(|metrics| {
        let counted: u64 = sent
            .iter()
            .flat_map(|sample| {
                versions(&plan, &sample.route).into_iter().map(|version| {
                    metrics.count(
                        counted_metric,
                        &[("route", &sample.route), ("version", &version)],
                    )
                })
            })
            .sum();
        counted >= (REQUESTS * sent.len()) as u64
    });
    for sample in &sent {
        println!(
            "route {} ({} {}{}):",
            sample.route,
            sample.method,
            sample.path,
            sample
                .headers
                .iter()
                .map(|(name, value)| format!(", {name}: {value}"))
                .collect::<String>()
        );
        println!(
            "{:<8} {:>8} {:>7} {:>6} {:>6} {:>6} {:>6} {:>9}",
            "version", "requests", "share", "2xx", "3xx", "4xx", "5xx", "timeouts"
        );
        for version in versions(&plan, &sample.route) {
            let labels = [("route", sample.route.as_str()), ("version", &version)];
            let requests = metrics.count("traffic_split_requests_total", &labels);
            let class = |code_class| {
                metrics.count(
                    "traffic_split_responses_total",
                    &[
                        ("route", sample.route.as_str()),
                        ("version", &version),
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
        println!();
    }
    let seen: Vec<String> = statuses
        .iter()
        .map(|(status, count)| format!("{status} x{count}"))
        .collect();
    println!("The client saw: {}", seen.join(", "));
    // Deadlines finer than Envoy's default timer clock: said only for a config that has one.
    let mut tight: Vec<u64> = plan
        .routes
        .iter()
        .flat_map(|route| &route.destinations)
        .filter_map(|destination| destination.deadline_ms)
        .filter(|ms| *ms < 10)
        .collect();
    tight.sort_unstable();
    tight.dedup();
    if !tight.is_empty() {
        let list: Vec<String> = tight.iter().map(|ms| format!("{ms} ms")).collect();
        println!(
            "(A deadline of {} is finer than the 4 ms steps of Envoy's default timer clock:\n\
             without EVENT_PRECISE_TIMER=1 some requests that answer in time are cut too, and \
             counted as timeouts of their version. See docs/metrics.md.)",
            list.join(", ")
        );
    }

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

/// Sends the route's sample request [`REQUESTS`] times over one connection.
fn send(envoy: &Envoy, sample: &SampleRequest, statuses: &mut BTreeMap<u16, usize>) {
    let headers: Vec<(&str, &str)> = sample
        .headers
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let mut connection = envoy.connect();
    for _ in 0..REQUESTS {
        let response = match connection.request(&sample.method, &sample.path, &headers) {
            Ok(response) => response,
            Err(_) => {
                // Envoy closes a connection after some local replies: open a new one.
                connection = envoy.connect();
                connection
                    .request(&sample.method, &sample.path, &headers)
                    .expect("request to Envoy")
            }
        };
        *statuses.entry(response.status).or_default() += 1;
    }
}

/// The versions of a route, in the config's order.
fn versions(plan: &Plan, route: &str) -> Vec<String> {
    plan.routes
        .iter()
        .filter(|candidate| candidate.name == route)
        .flat_map(|candidate| &candidate.destinations)
        .map(|destination| destination.version.clone())
        .collect()
}
