//! One frame of `traffic-split top`: the numbers it draws, prints as JSON and serves, per
//! route and version, computed from two readings of Envoy's stats.

use super::admin::PluginPlan;
use super::histogram::Histogram;
use super::stats::{Snapshot, VersionStats};
use serde::Serialize;
use std::time::Duration;
use traffic_split::metrics::CodeClass;
use traffic_split::split::guard::UNTIL_CONFIG_CHANGE;
use traffic_split::split::rollout::{format_percent, Phase};

/// Responses by class, as the filter counts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Responses {
    #[serde(rename = "2xx")]
    pub success: u64,
    #[serde(rename = "3xx")]
    pub redirect: u64,
    #[serde(rename = "4xx")]
    pub client_error: u64,
    #[serde(rename = "5xx")]
    pub server_error: u64,
}

impl Responses {
    fn from_counts(counts: &[u64; 4]) -> Responses {
        let count = |class: CodeClass| counts.get(class.index()).copied().unwrap_or_default();
        Responses {
            success: count(CodeClass::Success),
            redirect: count(CodeClass::Redirect),
            client_error: count(CodeClass::ClientError),
            server_error: count(CodeClass::ServerError),
        }
    }

    pub fn total(&self) -> u64 {
        self.success + self.redirect + self.client_error + self.server_error
    }

    /// The share of responses that were 5xx; `None` without responses.
    pub fn error_ratio(&self) -> Option<f64> {
        ratio(self.server_error, self.total())
    }
}

/// What one version did over a stretch of time: since Envoy started, or in the last interval.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Window {
    pub requests: u64,
    /// This version's part of the route's requests; `None` when the route had none.
    pub share: Option<f64>,
    /// Only for an interval: the time since Envoy started is not in its stats.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_per_second: Option<f64>,
    /// `None` (and no error ratio or timeouts) when the filter counts requests only.
    pub responses: Option<Responses>,
    /// 5xx responses over all responses.
    pub error_ratio: Option<f64>,
    pub timeouts: Option<u64>,
    /// Latency quantiles from the histogram's buckets; `None` without samples.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// The guard's view of a version, when the filter exports one.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Guard {
    pub ejected: Option<bool>,
    /// Out until the config changes: a halted rollout, or a cooldown `until_config_change`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latched: Option<bool>,
    pub trips: Option<u64>,
    /// From the config: how long a tripped version stays out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cooldown_seconds: Option<f64>,
    /// From the config: the share still sent to an ejected version, to see it recover.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_percent: Option<f64>,
    /// While ejected: the cooldown left, counted from when `top` saw the version go out (its
    /// trips grow, or its gauge turn 1); `None` when `top` did not see it go out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ejected_left_seconds: Option<f64>,
}

/// Where a route's rollout stands, from its config and the clock.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RolloutState {
    pub version: String,
    /// The step in force, from 1, of `steps`.
    pub step: usize,
    pub steps: usize,
    /// `"not started"`, `"moving"`, `"holding"`, `"gate"` or `"finished"`.
    pub phase: &'static str,
    /// The version's share by the schedule now, in percent.
    pub share_percent: String,
    /// The next step (from 1), its share in percent and how long until it starts; `None` at a
    /// gate and at the last step.
    pub next_step: Option<usize>,
    pub next_share_percent: Option<String>,
    pub next_in_seconds: Option<f64>,
    /// The guard has halted it: the version tripped and stays out until a push changes the
    /// rollout.
    pub halted: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VersionRow {
    pub version: String,
    /// The weight the filter applies now (`traffic_split_weight`); `None`: unknown.
    pub weight: Option<f64>,
    /// That weight as a share of the route's weights.
    pub weight_share: Option<f64>,
    pub since_start: Window,
    /// `None` in a frame from a single reading.
    pub last_interval: Option<Window>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guard: Option<Guard>,
    /// The version's deadline from the config (its own `timeout`, else the route's); `None`
    /// without one, or when `top` could not read the config.
    pub deadline_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RouteRows {
    /// The `plugin` label of the filter that counts this route: two plugins on one proxy may
    /// each have a route of this name.
    pub plugin: String,
    pub route: String,
    pub requests: u64,
    pub last_interval_requests: Option<u64>,
    pub versions: Vec<VersionRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutState>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Frame {
    /// The time between the two readings; `None` for a frame from one reading.
    pub interval_seconds: Option<f64>,
    pub routes: Vec<RouteRows>,
    /// Requests that matched no route, since Envoy started.
    pub unmatched: Option<u64>,
    /// Host calls the filter saw fail, since Envoy started (expected to stay 0).
    pub host_errors: Option<u64>,
    /// Whether the filter exports the effective weights; when not, they are unknown.
    pub weights_known: bool,
    /// Whether the filter exports the guard's state; when not, there is no guard column.
    pub guard_known: bool,
    /// Whether `top` read the filter's config (deadlines, rollouts, the guard's cooldown) from
    /// Envoy's `/config_dump`.
    pub config_known: bool,
    /// Why the config could not be read from `/config_dump` (too large, not JSON, ...): its
    /// deadlines, rollouts and cooldowns are then missing from the view.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_problem: Option<String>,
}

fn ratio(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// How much a counter grew; a counter that went down was reset (Envoy restarted), so all of
/// its value is new.
fn increase(now: u64, before: u64) -> u64 {
    now.checked_sub(before).unwrap_or(now)
}

/// A version's counts over an interval (the difference of two readings).
fn interval_stats(now: &VersionStats, before: Option<&VersionStats>) -> VersionStats {
    let Some(before) = before else {
        return now.clone();
    };
    let mut responses = [0; 4];
    for (slot, (now, before)) in responses
        .iter_mut()
        .zip(now.responses.iter().zip(&before.responses))
    {
        *slot = increase(*now, *before);
    }
    VersionStats {
        requests: increase(now.requests, before.requests),
        responses,
        timeouts: increase(now.timeouts, before.timeouts),
        duration: match (&now.duration, &before.duration) {
            (Some(now), Some(before)) => Some(now.since(before)),
            (now, _) => now.clone(),
        },
        ..now.clone()
    }
}

fn window(stats: &VersionStats, route_requests: u64, seconds: Option<f64>) -> Window {
    let responses = stats
        .outcomes_counted
        .then(|| Responses::from_counts(&stats.responses));
    let quantile = |q| {
        stats
            .duration
            .as_ref()
            .and_then(|h: &Histogram| h.quantile(q))
    };
    Window {
        requests: stats.requests,
        share: ratio(stats.requests, route_requests),
        requests_per_second: seconds
            .filter(|seconds| *seconds > 0.0)
            .map(|seconds| stats.requests as f64 / seconds),
        responses,
        error_ratio: responses.and_then(|responses| responses.error_ratio()),
        timeouts: stats.outcomes_counted.then_some(stats.timeouts),
        p50_ms: quantile(0.5),
        p99_ms: quantile(0.99),
    }
}

/// One version's stats since start and over the last interval.
struct Reading<'a> {
    version: &'a str,
    since_start: &'a VersionStats,
    interval: Option<VersionStats>,
}

impl Frame {
    /// The frame for `current`, with the last interval measured from `previous` (a reading
    /// taken `elapsed` before) when there is one.
    pub fn new(current: &Snapshot, previous: Option<(&Snapshot, Duration)>) -> Frame {
        let mut frame = Frame {
            interval_seconds: previous.map(|(_, elapsed)| elapsed.as_secs_f64()),
            unmatched: current.unmatched,
            host_errors: current.host_errors,
            ..Frame::default()
        };
        // The snapshot is ordered by plugin, route, then version.
        let mut routes: Vec<((&str, &str), Vec<Reading>)> = Vec::new();
        for (key, stats) in &current.versions {
            let reading = Reading {
                version: &key.version,
                since_start: stats,
                interval: previous
                    .map(|(before, _)| interval_stats(stats, before.versions.get(key))),
            };
            let route = (key.plugin.as_str(), key.route.as_str());
            match routes.last_mut() {
                Some((last, readings)) if *last == route => readings.push(reading),
                _ => routes.push((route, vec![reading])),
            }
        }
        for ((plugin, route), readings) in routes {
            let rows = frame.route(plugin, route, &readings);
            frame.routes.push(rows);
        }
        frame
    }

    /// Whether the routes come from more than one plugin: then each names its plugin (a user
    /// with one plugin sees the routes as ever).
    pub fn several_plugins(&self) -> bool {
        self.routes
            .first()
            .is_some_and(|first| self.routes.iter().any(|rows| rows.plugin != first.plugin))
    }

    /// The rows of one route, noting whether the filter exports weights and guard state.
    fn route(&mut self, plugin: &str, route: &str, readings: &[Reading]) -> RouteRows {
        let requests = readings
            .iter()
            .map(|reading| reading.since_start.requests)
            .sum();
        let last_interval_requests = self.interval_seconds.map(|_| {
            readings
                .iter()
                .filter_map(|reading| reading.interval.as_ref())
                .map(|interval| interval.requests)
                .sum()
        });
        let weights: Option<f64> = readings
            .iter()
            .map(|reading| reading.since_start.weight)
            .sum();
        let mut versions = Vec::new();
        for reading in readings {
            let stats = reading.since_start;
            let guard =
                (stats.guard_ejected.is_some() || stats.guard_trips.is_some()).then_some(Guard {
                    ejected: stats.guard_ejected,
                    latched: stats.guard_latched,
                    trips: stats.guard_trips,
                    ..Guard::default()
                });
            self.weights_known |= stats.weight.is_some();
            self.guard_known |= guard.is_some();
            versions.push(VersionRow {
                version: reading.version.to_string(),
                weight: stats.weight,
                weight_share: match (stats.weight, weights) {
                    (Some(weight), Some(all)) if all > 0.0 => Some(weight / all),
                    _ => None,
                },
                since_start: window(stats, requests, None),
                last_interval: reading.interval.as_ref().map(|interval| {
                    window(
                        interval,
                        last_interval_requests.unwrap_or_default(),
                        self.interval_seconds,
                    )
                }),
                guard,
                deadline_ms: None,
            });
        }
        RouteRows {
            plugin: plugin.to_string(),
            route: route.to_string(),
            requests,
            last_interval_requests,
            versions,
            rollout: None,
        }
    }

    /// Adds what the config says: each version's deadline, the guard's cooldown and probes,
    /// and where each rollout stands at `now_ms` (milliseconds since the Unix epoch). A route
    /// takes its config from its plugin's plan, else from the first plan with a route of its
    /// name (a dump whose plugin has no name).
    pub fn apply_config(&mut self, plans: &[PluginPlan], now_ms: i64) {
        self.config_known = !plans.is_empty();
        for rows in &mut self.routes {
            let named = |plugin: Option<&str>| {
                plans
                    .iter()
                    .filter(|configured| plugin.is_none_or(|plugin| configured.plugin == plugin))
                    .flat_map(|configured| configured.plan.routes.iter())
                    .find(|route| route.name == rows.route)
            };
            let Some(route) = named(Some(&rows.plugin)).or_else(|| named(None)) else {
                continue;
            };
            for row in &mut rows.versions {
                let Some(destination) = route
                    .destinations
                    .iter()
                    .find(|destination| destination.version == row.version)
                else {
                    continue;
                };
                row.deadline_ms = destination.deadline_ms;
                if let (Some(guard), Some(config)) = (row.guard.as_mut(), route.guard.as_ref()) {
                    guard.cooldown_seconds = (config.cooldown_ms != UNTIL_CONFIG_CHANGE)
                        .then(|| config.cooldown_ms as f64 / 1000.0);
                    guard.probe_percent = (config.probe_basis_points > 0)
                        .then(|| f64::from(config.probe_basis_points) / 100.0);
                }
            }
            rows.rollout = route.rollout.as_ref().and_then(|rollout| {
                let version = route.destinations.get(rollout.destination)?.version.clone();
                let position = rollout.position_at(now_ms);
                let halted = rows.versions.iter().any(|row| {
                    row.version == version
                        && row.guard.as_ref().and_then(|guard| guard.latched) == Some(true)
                });
                Some(RolloutState {
                    version,
                    step: position.step + 1,
                    steps: rollout.steps.len(),
                    phase: match position.phase {
                        Phase::NotStarted => "not started",
                        Phase::Moving => "moving",
                        Phase::Holding => "holding",
                        Phase::Gate => "gate",
                        Phase::Finished => "finished",
                    },
                    share_percent: format_percent(position.share),
                    next_step: position.next.map(|(step, _)| step + 1),
                    next_share_percent: position
                        .next
                        .and_then(|(step, _)| Some(format_percent(rollout.steps.get(step)?.share))),
                    next_in_seconds: position
                        .next
                        .map(|(_, at_ms)| (at_ms - now_ms) as f64 / 1000.0),
                    halted,
                })
            });
        }
    }

    /// Sets how long each ejected version has left, from when it went out.
    pub fn apply_ejections(&mut self, ejected_for: impl Fn(&str, &str, &str) -> Option<f64>) {
        for rows in &mut self.routes {
            for row in &mut rows.versions {
                let seen = ejected_for(&rows.plugin, &rows.route, &row.version);
                if let Some(guard) = row.guard.as_mut() {
                    guard.ejected_left_seconds = match (guard.ejected, guard.cooldown_seconds, seen)
                    {
                        _ if guard.latched == Some(true) => None,
                        (Some(true), Some(cooldown), Some(seen)) => {
                            Some((cooldown - seen).max(0.0))
                        }
                        _ => None,
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::top::histogram::Bucket;
    use crate::top::stats::VersionKey;

    fn stats(requests: u64, server_errors: u64, timeouts: u64) -> VersionStats {
        VersionStats {
            requests,
            responses: [requests - server_errors, 0, 0, server_errors],
            timeouts,
            outcomes_counted: true,
            duration: Some(Histogram {
                buckets: vec![
                    Bucket {
                        upper_bound: 1.0,
                        cumulative: requests - timeouts,
                    },
                    Bucket {
                        upper_bound: 5.0,
                        cumulative: requests,
                    },
                ],
                count: requests,
                sum: None,
            }),
            ..VersionStats::default()
        }
    }

    fn snapshot(versions: &[(&str, &str, VersionStats)]) -> Snapshot {
        Snapshot {
            versions: versions
                .iter()
                .map(|(route, version, stats)| {
                    (
                        VersionKey {
                            plugin: "traffic-split".to_string(),
                            route: route.to_string(),
                            version: version.to_string(),
                        },
                        stats.clone(),
                    )
                })
                .collect(),
            unmatched: Some(0),
            host_errors: Some(0),
        }
    }

    #[test]
    fn two_plugins_with_one_route_name_get_a_route_each() {
        let mut now = snapshot(&[("hello", "v1", stats(5, 0, 0))]);
        now.versions.insert(
            VersionKey {
                plugin: "payments_traffic-split".into(),
                route: "hello".into(),
                version: "v1".into(),
            },
            stats(7, 0, 0),
        );
        let frame = Frame::new(&now, None);
        let routes: Vec<(&str, &str, u64)> = frame
            .routes
            .iter()
            .map(|rows| (rows.plugin.as_str(), rows.route.as_str(), rows.requests))
            .collect();
        assert_eq!(
            routes,
            [
                ("payments_traffic-split", "hello", 7),
                ("traffic-split", "hello", 5)
            ]
        );
        assert!(frame.several_plugins());
        let one = Frame::new(&snapshot(&[("hello", "v1", stats(5, 0, 0))]), None);
        assert!(!one.several_plugins());
    }

    #[test]
    fn one_reading_gives_shares_and_counts_since_start() {
        let now = snapshot(&[
            ("hello", "v1", stats(700, 0, 0)),
            ("hello", "v2", stats(300, 300, 300)),
        ]);
        let frame = Frame::new(&now, None);
        assert_eq!(frame.interval_seconds, None);
        assert_eq!(frame.routes.len(), 1);
        let route = &frame.routes[0];
        assert_eq!((route.route.as_str(), route.requests), ("hello", 1000));
        let [v1, v2] = &route.versions[..] else {
            panic!("two versions: {route:?}")
        };
        assert_eq!(v1.since_start.share, Some(0.7));
        assert_eq!(v2.since_start.share, Some(0.3));
        assert_eq!(v2.since_start.responses.map(|r| r.server_error), Some(300));
        assert_eq!(v2.since_start.error_ratio, Some(1.0));
        assert_eq!(v1.since_start.error_ratio, Some(0.0));
        assert_eq!(v2.since_start.timeouts, Some(300));
        assert_eq!(v2.since_start.p50_ms, Some(3.0));
        assert_eq!(v1.since_start.p50_ms, Some(0.5));
        assert_eq!(v1.last_interval, None);
        assert_eq!(v1.since_start.requests_per_second, None);
        assert!(!frame.weights_known && !frame.guard_known);
        assert_eq!((v1.weight, v1.weight_share, &v1.guard), (None, None, &None));
    }

    #[test]
    fn two_readings_give_the_last_interval_and_its_rate() {
        let before = snapshot(&[
            ("hello", "v1", stats(70, 0, 0)),
            ("hello", "v2", stats(30, 30, 30)),
        ]);
        let now = snapshot(&[
            ("hello", "v1", stats(90, 0, 0)),
            ("hello", "v2", stats(110, 40, 30)),
        ]);
        let frame = Frame::new(&now, Some((&before, Duration::from_secs(2))));
        let route = &frame.routes[0];
        assert_eq!(route.last_interval_requests, Some(100));
        let v1 = route.versions[0].last_interval.as_ref().expect("interval");
        let v2 = route.versions[1].last_interval.as_ref().expect("interval");
        assert_eq!((v1.requests, v1.share), (20, Some(0.2)));
        assert_eq!((v2.requests, v2.share), (80, Some(0.8)));
        assert_eq!(v2.requests_per_second, Some(40.0));
        assert_eq!(v2.responses.map(|r| r.server_error), Some(10));
        assert_eq!(v2.error_ratio, Some(10.0 / 80.0));
        assert_eq!(v2.timeouts, Some(0));
        // All 80 new v2 samples were fast: the interval's median is in the first bucket.
        assert_eq!(v2.p50_ms, Some(0.5));
        assert_eq!(route.versions[1].since_start.requests, 110);
    }

    #[test]
    fn a_quiet_interval_has_no_share_and_no_latency() {
        let reading = snapshot(&[("hello", "v1", stats(10, 0, 0))]);
        let frame = Frame::new(&reading, Some((&reading, Duration::from_secs(1))));
        let v1 = frame.routes[0].versions[0]
            .last_interval
            .clone()
            .expect("interval");
        assert_eq!((v1.requests, v1.share, v1.p99_ms), (0, None, None));
        assert_eq!(v1.requests_per_second, Some(0.0));
    }

    #[test]
    fn a_counter_that_went_down_counts_as_new() {
        let before = snapshot(&[("hello", "v1", stats(500, 0, 0))]);
        let now = snapshot(&[("hello", "v1", stats(20, 0, 0))]);
        let frame = Frame::new(&now, Some((&before, Duration::from_secs(1))));
        let v1 = frame.routes[0].versions[0]
            .last_interval
            .clone()
            .expect("interval");
        assert_eq!(v1.requests, 20);
    }

    #[test]
    fn a_version_new_since_the_last_reading_counts_all_it_has() {
        let before = snapshot(&[("hello", "v1", stats(5, 0, 0))]);
        let now = snapshot(&[
            ("hello", "v1", stats(5, 0, 0)),
            ("hello", "v3", stats(5, 0, 0)),
        ]);
        let frame = Frame::new(&now, Some((&before, Duration::from_secs(1))));
        let v3 = frame.routes[0].versions[1]
            .last_interval
            .clone()
            .expect("interval");
        assert_eq!((v3.requests, v3.share), (5, Some(1.0)));
    }

    #[test]
    fn routes_are_grouped_with_their_own_shares() {
        let now = snapshot(&[
            ("a", "v1", stats(1, 0, 0)),
            ("a", "v2", stats(3, 0, 0)),
            ("b", "v1", stats(2, 0, 0)),
        ]);
        let frame = Frame::new(&now, None);
        let shares: Vec<(String, String, Option<f64>)> = frame
            .routes
            .iter()
            .flat_map(|route| {
                route.versions.iter().map(|row| {
                    (
                        route.route.clone(),
                        row.version.clone(),
                        row.since_start.share,
                    )
                })
            })
            .collect();
        assert_eq!(
            shares,
            [
                ("a".into(), "v1".into(), Some(0.25)),
                ("a".into(), "v2".into(), Some(0.75)),
                ("b".into(), "v1".into(), Some(1.0)),
            ]
        );
    }

    #[test]
    fn exported_weights_and_guard_state_are_shown() {
        let mut v1 = stats(0, 0, 0);
        v1.weight = Some(90.0);
        v1.guard_ejected = Some(false);
        let mut v2 = stats(0, 0, 0);
        v2.weight = Some(10.0);
        v2.guard_ejected = Some(true);
        v2.guard_trips = Some(2);
        let frame = Frame::new(&snapshot(&[("hello", "v1", v1), ("hello", "v2", v2)]), None);
        assert!(frame.weights_known && frame.guard_known);
        let rows = &frame.routes[0].versions;
        assert_eq!(rows[0].weight_share, Some(0.9));
        assert_eq!(rows[1].weight_share, Some(0.1));
        assert_eq!(
            rows[1].guard,
            Some(Guard {
                ejected: Some(true),
                trips: Some(2),
                ..Guard::default()
            })
        );
        // No requests yet: no share, no latency.
        assert_eq!(
            (rows[0].since_start.share, rows[0].since_start.p50_ms),
            (None, None)
        );
    }

    #[test]
    fn a_filter_counting_requests_only_shows_no_outcomes() {
        let requests_only = VersionStats {
            requests: 5,
            ..VersionStats::default()
        };
        let frame = Frame::new(&snapshot(&[("hello", "v1", requests_only)]), None);
        let v1 = &frame.routes[0].versions[0].since_start;
        assert_eq!((v1.requests, v1.share), (5, Some(1.0)));
        assert_eq!(
            (v1.responses, v1.error_ratio, v1.timeouts),
            (None, None, None)
        );
    }

    #[test]
    fn json_spells_classes_as_envoy_does_and_leaves_out_what_is_absent() {
        let frame = Frame::new(&snapshot(&[("hello", "v1", stats(7, 0, 0))]), None);
        let json = serde_json::to_value(&frame).expect("serialises");
        let v1 = &json["routes"][0]["versions"][0];
        assert_eq!(v1["since_start"]["responses"]["2xx"], 7);
        assert_eq!(v1["since_start"]["share"], 1.0);
        assert!(v1.get("guard").is_none());
        assert!(v1["since_start"].get("requests_per_second").is_none());
        assert_eq!(v1["weight"], serde_json::Value::Null);
        assert_eq!(json["weights_known"], false);
    }
}
