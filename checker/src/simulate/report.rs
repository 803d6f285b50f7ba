//! What a run prints: the table per period, or the same as JSON.

use std::fmt::Write as _;
use std::path::Path;
use traffic_split::sim::{Row, Run, Scenario};
use traffic_split::units::timestamp::format_rfc3339_ms;

pub(super) fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

fn minutes(ms: u64) -> String {
    if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}s", ms as f64 / 1000.0)
    }
}

pub(super) fn text(config: &Path, scenario: &Scenario, result: &Run) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} requests/s for {} on {} worker(s) from {}, seed {}, requests {} {}",
        config.display(),
        scenario.traffic.rate_per_s,
        minutes(scenario.duration_ms),
        scenario.workers,
        format_rfc3339_ms(i64::try_from(scenario.start_ms).unwrap_or(0)),
        scenario.seed,
        scenario.traffic.methods.join(","),
        scenario.traffic.path
    );
    let _ = writeln!(
        out,
        "{:<11} {:<12} {:<10} {:>9} {:>7} {:>9} {:>7} {:>8} {:>7} {:>5} {:>7} {:>6}  state",
        "period",
        "route",
        "version",
        "weight",
        "share",
        "requests",
        "errors",
        "timeouts",
        "retries",
        "trips",
        "returns",
        "probes"
    );
    for row in &result.rows {
        let total: u64 = row.versions.iter().map(|v| v.requests).sum();
        let period = format!("{}-{}", minutes(row.from_ms), minutes(row.until_ms));
        for version in &row.versions {
            let _ = writeln!(
                out,
                "{:<11} {:<12} {:<10} {:>9} {:>6.1}% {:>9} {:>6.1}% {:>7.1}% {:>7} {:>5} {:>7} {:>6}  {}",
                period,
                row.route,
                version.version,
                version.weight,
                share(version.requests, total),
                version.requests,
                share(version.errors, version.requests),
                share(version.timeouts, version.requests),
                version.retries,
                version.trips,
                version.returns,
                version.probes,
                match (version.ejected, version.latched) {
                    (true, true) => "latched",
                    (true, false) => "out",
                    _ => "in",
                }
            );
        }
    }
    let routed: u64 = result.routed.values().sum();
    let _ = writeln!(
        out,
        "total: {routed} routed, {} unmatched, {} guard event(s), {} merge(s) refused by the store",
        result.unmatched,
        result.guard_events.len(),
        result.failed_merges
    );
    out
}

#[derive(serde::Serialize)]
struct JsonEvent<'a> {
    at_ms: u64,
    worker: usize,
    route: &'a str,
    version: &'a str,
    event: &'static str,
}

#[derive(serde::Serialize)]
struct JsonRun<'a> {
    config: String,
    rate_per_s: f64,
    duration_ms: u64,
    workers: usize,
    seed: u64,
    start: String,
    periods: &'a [Row],
    events: Vec<JsonEvent<'a>>,
    routed: u64,
    unmatched: u64,
}

pub(super) fn json(config: &Path, scenario: &Scenario, result: &Run) -> String {
    use traffic_split::split::guard::GuardEvent;
    let events = result
        .guard_events
        .iter()
        .map(|record| JsonEvent {
            at_ms: record.at_ms,
            worker: record.worker,
            route: &record.route,
            version: &record.version,
            event: match record.event {
                GuardEvent::Tripped { .. } => "tripped",
                GuardEvent::Returned { early: true, .. } => "returned early",
                GuardEvent::Returned { .. } => "returned",
                GuardEvent::Held { .. } => "held",
            },
        })
        .collect();
    let run = JsonRun {
        config: config.display().to_string(),
        rate_per_s: scenario.traffic.rate_per_s,
        duration_ms: scenario.duration_ms,
        workers: scenario.workers,
        seed: scenario.seed,
        start: format_rfc3339_ms(i64::try_from(scenario.start_ms).unwrap_or(0)),
        periods: &result.rows,
        events,
        routed: result.routed.values().sum(),
        unmatched: result.unmatched,
    };
    serde_json::to_string_pretty(&run).unwrap_or_default()
}
