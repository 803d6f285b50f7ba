//! Envoy's stats about traffic-split, read into numbers per route and version.
//!
//! Envoy serves them in two forms, and both are read:
//!
//! - Prometheus (`/stats/prometheus`):
//!   `traffic_split_requests_total{plugin="traffic-split",route="hello",version="v1"}`, the
//!   labels made by the `stats_tags` of `docs/metrics.md`;
//! - JSON (`/stats?format=json&histogram_buckets=cumulative`): the stat names as the filter
//!   defines them,
//!   `wasmcustom.traffic_split.plugin.traffic-split.route.hello.version.v1.requests_total`,
//!   which carry plugin, route and version even where the `stats_tags` are missing.
//!
//! The names come from the filter's own metric tables ([`DestinationMetric`],
//! [`PluginMetric`]), so the reader and the filter cannot drift apart.

use super::histogram::{Bucket, Histogram};
pub use super::prometheus_text::Sample;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use traffic_split::metrics::{CodeClass, DestinationMetric, PluginLabel, PluginMetric, PREFIX};

/// Envoy puts every stat a Wasm module defines under this namespace.
const WASM_NAMESPACE: &str = "wasmcustom.";

/// The admin paths that serve each form, filtered to traffic-split's stats.
pub const PROMETHEUS_PATH: &str = "/stats/prometheus?filter=traffic_split";
pub const JSON_PATH: &str = "/stats?format=json&filter=traffic_split&histogram_buckets=cumulative";

/// A plugin's route and one of its versions. Two plugins on one proxy may each have a route
/// of one name: their series are apart, and so are their keys.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct VersionKey {
    /// The `plugin` label (`PluginLabel`); empty where Envoy's `stats_tags` give none.
    pub plugin: String,
    pub route: String,
    pub version: String,
}

/// What Envoy counted for one route and version, since it started.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VersionStats {
    pub requests: u64,
    /// Indexed by [`CodeClass::index`].
    pub responses: [u64; 4],
    pub timeouts: u64,
    /// Whether the filter counts responses and timeouts (not in its `requests` metrics mode).
    pub outcomes_counted: bool,
    /// Durations in milliseconds, whatever unit the filter records them in.
    pub duration: Option<Histogram>,
    /// The weight the filter applies now, when it exports one.
    pub weight: Option<f64>,
    pub guard_trips: Option<u64>,
    pub guard_ejected: Option<bool>,
    /// Out until the config changes (a halted rollout), when the filter exports it.
    pub guard_latched: Option<bool>,
}

/// One reading of Envoy's stats.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub versions: BTreeMap<VersionKey, VersionStats>,
    /// Requests no route matched, summed over the plugins; `None` when Envoy has no such stat
    /// (no filter loaded).
    pub unmatched: Option<u64>,
    /// Host calls the filter saw fail, summed over the plugins; `None` when Envoy has no such
    /// stat.
    pub host_errors: Option<u64>,
}

/// Which of a version's stats a name stands for.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stat {
    Requests,
    Responses(CodeClass),
    Timeouts,
    Duration,
    Weight,
    GuardTrips,
    GuardEjected,
    GuardLatched,
}

/// The stats of one version, with the name the filter gives each after `...version.<v>.`,
/// which is also the name's last part in the Prometheus form.
fn version_stats(plugin: &PluginLabel, route: &str, version: &str) -> Vec<(String, Stat)> {
    let mut stats = vec![
        (DestinationMetric::Requests, Stat::Requests),
        (DestinationMetric::Timeouts, Stat::Timeouts),
        (DestinationMetric::Duration, Stat::Duration),
        (DestinationMetric::Weight, Stat::Weight),
        (DestinationMetric::GuardTrips, Stat::GuardTrips),
        (DestinationMetric::GuardEjected, Stat::GuardEjected),
        (DestinationMetric::GuardLatched, Stat::GuardLatched),
    ];
    for class in CodeClass::ALL {
        stats.push((DestinationMetric::response(class), Stat::Responses(class)));
    }
    stats
        .into_iter()
        .map(|(metric, stat)| (metric.name(plugin, route, version), stat))
        .collect()
}

/// The units a duration histogram may be recorded in, by the suffix of its name, and how to
/// turn a value into milliseconds (division where it is exact: 4500 us is 4.5 ms).
type ToMilliseconds = fn(f64) -> f64;
const DURATION_UNITS: [(&str, ToMilliseconds); 3] = [
    ("_microseconds", |value| value / 1000.0),
    ("_milliseconds", |value| value),
    ("_seconds", |value| value * 1000.0),
];

/// Turns a value of the filter's duration histogram into milliseconds, whatever unit its name
/// (`request_duration_microseconds`) says it records.
fn duration_in_milliseconds(value: f64) -> f64 {
    let name = DestinationMetric::Duration.name(&any_plugin(), "route", "version");
    DURATION_UNITS
        .iter()
        .find(|(suffix, _)| name.ends_with(suffix))
        .map_or(value, |(_, convert)| convert(value))
}

/// The stat a Prometheus metric name stands for (`traffic_split_requests_total`), and its
/// code class label when it needs one.
fn prometheus_stat(name: &str, code_class: Option<&str>) -> Option<Stat> {
    version_stats(&any_plugin(), "route", "version")
        .into_iter()
        .find(|(dotted, stat)| {
            let last_part = dotted.rsplit('.').next().unwrap_or_default();
            let class_matches = match stat {
                Stat::Responses(class) => code_class == Some(class.label()),
                _ => true,
            };
            name.strip_prefix(PREFIX)
                .and_then(|rest| rest.strip_prefix('_'))
                == Some(last_part)
                && class_matches
        })
        .map(|(_, stat)| stat)
}

/// A plugin label for names whose plugin part does not matter (their last part, their unit).
fn any_plugin() -> PluginLabel {
    PluginLabel::of_plugin_name("plugin")
}

/// The plugin label and the rest of a dotted stat name (`traffic_split.plugin.<plugin>.`),
/// with or without the `wasmcustom.` namespace.
fn dotted_plugin(name: &str) -> Option<(&str, &str)> {
    let name = name.strip_prefix(WASM_NAMESPACE).unwrap_or(name);
    name.strip_prefix(PREFIX)?
        .strip_prefix(".plugin.")?
        .split_once('.')
}

/// The plugin metric a dotted stat name stands for, and its plugin.
fn dotted_plugin_stat(name: &str) -> Option<(&str, PluginMetric)> {
    let (plugin, rest) = dotted_plugin(name)?;
    let metric = PluginMetric::ALL
        .iter()
        .find(|metric| metric.row().name == rest)?;
    Some((plugin, *metric))
}

/// The plugin, route, version and stat of a dotted stat name, with or without the
/// `wasmcustom.` namespace.
fn dotted_stat(name: &str) -> Option<(VersionKey, Stat)> {
    let name = name.strip_prefix(WASM_NAMESPACE).unwrap_or(name);
    let (plugin, rest) = dotted_plugin(name)?;
    let (route, rest) = rest.strip_prefix("route.")?.split_once('.')?;
    let (version, _) = rest.strip_prefix("version.")?.split_once('.')?;
    let label = PluginLabel::of_plugin_name(plugin);
    let stat = version_stats(&label, route, version)
        .into_iter()
        .find(|(dotted, _)| dotted == name)
        .map(|(_, stat)| stat)?;
    Some((
        VersionKey {
            plugin: plugin.to_string(),
            route: route.to_string(),
            version: version.to_string(),
        },
        stat,
    ))
}

/// Envoy's cumulative buckets of one histogram, as read so far.
#[derive(Default)]
struct PartialHistogram {
    buckets: Vec<Bucket>,
    infinite: Option<u64>,
    count: Option<u64>,
    sum: Option<f64>,
}

impl PartialHistogram {
    /// The histogram, its bounds and sum in milliseconds.
    fn finish(mut self) -> Histogram {
        for bucket in &mut self.buckets {
            bucket.upper_bound = duration_in_milliseconds(bucket.upper_bound);
        }
        self.buckets
            .sort_by(|a, b| a.upper_bound.total_cmp(&b.upper_bound));
        let last_bucket = self.buckets.last().map(|bucket| bucket.cumulative);
        Histogram {
            count: self
                .count
                .or(self.infinite)
                .or(last_bucket)
                .unwrap_or_default(),
            buckets: self.buckets,
            sum: self.sum.map(duration_in_milliseconds),
        }
    }
}

/// Adds one plugin's count to a sum over the plugins.
fn add(sum: &mut Option<u64>, value: f64) {
    *sum = Some(sum.unwrap_or_default().saturating_add(whole(value)));
}

/// Counters are whole numbers; Envoy prints them as such.
fn whole(value: f64) -> u64 {
    if value.is_finite() && value > 0.0 {
        value.round() as u64
    } else {
        0
    }
}

fn record(stats: &mut VersionStats, stat: Stat, value: f64) {
    match stat {
        Stat::Requests => stats.requests = whole(value),
        Stat::Responses(class) => {
            if let Some(count) = stats.responses.get_mut(class.index()) {
                *count = whole(value);
            }
            stats.outcomes_counted = true;
        }
        Stat::Timeouts => {
            stats.timeouts = whole(value);
            stats.outcomes_counted = true;
        }
        Stat::Weight => stats.weight = Some(value),
        Stat::GuardTrips => stats.guard_trips = Some(whole(value)),
        Stat::GuardEjected => stats.guard_ejected = Some(value != 0.0),
        Stat::GuardLatched => stats.guard_latched = Some(value != 0.0),
        // A histogram is read from its buckets.
        Stat::Duration => {}
    }
}

/// Reads Envoy's `/stats/prometheus`. Lines about anything else are skipped.
pub fn parse_prometheus(text: &str) -> Snapshot {
    let mut snapshot = Snapshot::default();
    let mut histograms: BTreeMap<VersionKey, PartialHistogram> = BTreeMap::new();
    let unmatched = format!("{PREFIX}_{}", PluginMetric::Unmatched.row().name);
    let host_errors = format!("{PREFIX}_{}", PluginMetric::HostErrors.row().name);
    for line in text.lines() {
        let Some(sample) = Sample::parse(line) else {
            continue;
        };
        if sample.name == unmatched {
            add(&mut snapshot.unmatched, sample.value);
            continue;
        }
        if sample.name == host_errors {
            add(&mut snapshot.host_errors, sample.value);
            continue;
        }
        let (Some(route), Some(version)) = (sample.label("route"), sample.label("version")) else {
            continue;
        };
        let key = VersionKey {
            plugin: sample.label("plugin").unwrap_or_default().to_string(),
            route: route.to_string(),
            version: version.to_string(),
        };
        if let Some(part) = histogram_part(sample.name) {
            let histogram = histograms.entry(key).or_default();
            match part {
                HistogramPart::Bucket => match sample.label("le") {
                    Some("+Inf") => histogram.infinite = Some(whole(sample.value)),
                    Some(bound) => {
                        if let Ok(upper_bound) = bound.parse::<f64>() {
                            histogram.buckets.push(Bucket {
                                upper_bound,
                                cumulative: whole(sample.value),
                            });
                        }
                    }
                    None => {}
                },
                HistogramPart::Count => histogram.count = Some(whole(sample.value)),
                HistogramPart::Sum => histogram.sum = Some(sample.value),
            }
            continue;
        }
        if let Some(stat) = prometheus_stat(sample.name, sample.label("code_class")) {
            record(
                snapshot.versions.entry(key).or_default(),
                stat,
                sample.value,
            );
        }
    }
    for (key, histogram) in histograms {
        snapshot.versions.entry(key).or_default().duration = Some(histogram.finish());
    }
    snapshot
}

enum HistogramPart {
    Bucket,
    Count,
    Sum,
}

/// Whether a Prometheus name is a part of the duration histogram.
fn histogram_part(name: &str) -> Option<HistogramPart> {
    let duration = version_stats(&any_plugin(), "route", "version")
        .into_iter()
        .find(|(_, stat)| *stat == Stat::Duration)
        .map(|(dotted, _)| dotted)?;
    let last_part = duration.rsplit('.').next()?;
    let rest = name
        .strip_prefix(PREFIX)?
        .strip_prefix('_')?
        .strip_prefix(last_part)?;
    match rest {
        "_bucket" => Some(HistogramPart::Bucket),
        "_count" => Some(HistogramPart::Count),
        "_sum" => Some(HistogramPart::Sum),
        _ => None,
    }
}

/// Reads Envoy's `/stats?format=json&histogram_buckets=cumulative`.
pub fn parse_json(text: &str) -> Result<Snapshot, String> {
    let document: Json =
        serde_json::from_str(text).map_err(|error| format!("not JSON: {error}"))?;
    let stats = document
        .get("stats")
        .and_then(Json::as_array)
        .ok_or("no \"stats\" list: is this Envoy's /stats?format=json?")?;
    let mut snapshot = Snapshot::default();
    for stat in stats {
        if let (Some(name), Some(value)) = (stat["name"].as_str(), stat["value"].as_f64()) {
            if let Some((_, metric)) = dotted_plugin_stat(name) {
                match metric {
                    PluginMetric::Unmatched => add(&mut snapshot.unmatched, value),
                    PluginMetric::HostErrors => add(&mut snapshot.host_errors, value),
                    // Shown by the checks of the config and the module, not the live view.
                    PluginMetric::InvalidConfigRequests | PluginMetric::Panics => {}
                }
            } else if let Some((key, stat)) = dotted_stat(name) {
                record(snapshot.versions.entry(key).or_default(), stat, value);
            }
        }
        for histogram in stat["histograms"].as_array().into_iter().flatten() {
            let Some((key, Stat::Duration)) = histogram["name"].as_str().and_then(dotted_stat)
            else {
                continue;
            };
            let Some(buckets) = histogram["buckets"].as_array() else {
                return Err(
                    "histograms without buckets: ask for them with histogram_buckets=cumulative"
                        .into(),
                );
            };
            let mut partial = PartialHistogram::default();
            for bucket in buckets {
                if let (Some(upper_bound), Some(cumulative)) = (
                    bucket["upper_bound"].as_f64(),
                    bucket["cumulative"].as_f64(),
                ) {
                    partial.buckets.push(Bucket {
                        upper_bound,
                        cumulative: whole(cumulative),
                    });
                }
            }
            snapshot.versions.entry(key).or_default().duration = Some(partial.finish());
        }
    }
    Ok(snapshot)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Envoy 1.40's `/stats/prometheus?filter=traffic_split` after 14 requests to v1 and 6 to
    /// v2 (cut by the 2 ms deadline) and one unmatched request; buckets (microseconds) abridged.
    const PROMETHEUS: &str = r#"# TYPE traffic_split_requests_total counter
traffic_split_requests_total{plugin="traffic-split",route="hello",version="v1"} 14
traffic_split_requests_total{plugin="traffic-split",route="hello",version="v2"} 6
# TYPE traffic_split_responses_total counter
traffic_split_responses_total{plugin="traffic-split",route="hello",version="v1",code_class="2xx"} 14
traffic_split_responses_total{plugin="traffic-split",route="hello",version="v1",code_class="3xx"} 0
traffic_split_responses_total{plugin="traffic-split",route="hello",version="v1",code_class="4xx"} 0
traffic_split_responses_total{plugin="traffic-split",route="hello",version="v1",code_class="5xx"} 0
traffic_split_responses_total{plugin="traffic-split",route="hello",version="v2",code_class="2xx"} 0
traffic_split_responses_total{plugin="traffic-split",route="hello",version="v2",code_class="5xx"} 6
# TYPE traffic_split_timeouts_total counter
traffic_split_timeouts_total{plugin="traffic-split",route="hello",version="v1"} 0
traffic_split_timeouts_total{plugin="traffic-split",route="hello",version="v2"} 6
# TYPE traffic_split_unmatched_total counter
traffic_split_unmatched_total{plugin="traffic-split"} 1
# TYPE traffic_split_host_errors_total counter
traffic_split_host_errors_total{plugin="traffic-split"} 0
# TYPE traffic_split_request_duration_microseconds histogram
traffic_split_request_duration_microseconds_bucket{plugin="traffic-split",route="hello",version="v1",le="500"} 13
traffic_split_request_duration_microseconds_bucket{plugin="traffic-split",route="hello",version="v1",le="1000"} 14
traffic_split_request_duration_microseconds_bucket{plugin="traffic-split",route="hello",version="v1",le="5000"} 14
traffic_split_request_duration_microseconds_bucket{plugin="traffic-split",route="hello",version="v1",le="+Inf"} 14
traffic_split_request_duration_microseconds_sum{plugin="traffic-split",route="hello",version="v1"} 4500
traffic_split_request_duration_microseconds_count{plugin="traffic-split",route="hello",version="v1"} 14
traffic_split_request_duration_microseconds_bucket{plugin="traffic-split",route="hello",version="v2",le="500"} 0
traffic_split_request_duration_microseconds_bucket{plugin="traffic-split",route="hello",version="v2",le="1000"} 0
traffic_split_request_duration_microseconds_bucket{plugin="traffic-split",route="hello",version="v2",le="5000"} 6
traffic_split_request_duration_microseconds_bucket{plugin="traffic-split",route="hello",version="v2",le="+Inf"} 6
traffic_split_request_duration_microseconds_sum{plugin="traffic-split",route="hello",version="v2"} 13500
traffic_split_request_duration_microseconds_count{plugin="traffic-split",route="hello",version="v2"} 6
"#;

    /// The same reading from `/stats?format=json&...&histogram_buckets=cumulative`, abridged.
    const JSON: &str = r#"{"stats":[
{"name":"wasmcustom.traffic_split.plugin.traffic-split.route.hello.version.v1.code_class.2xx.responses_total","value":14},
{"name":"wasmcustom.traffic_split.plugin.traffic-split.route.hello.version.v1.requests_total","value":14},
{"name":"wasmcustom.traffic_split.plugin.traffic-split.route.hello.version.v1.timeouts_total","value":0},
{"name":"wasmcustom.traffic_split.plugin.traffic-split.route.hello.version.v2.code_class.5xx.responses_total","value":6},
{"name":"wasmcustom.traffic_split.plugin.traffic-split.route.hello.version.v2.requests_total","value":6},
{"name":"wasmcustom.traffic_split.plugin.traffic-split.route.hello.version.v2.timeouts_total","value":6},
{"name":"wasmcustom.traffic_split.plugin.traffic-split.unmatched_total","value":1},
{"name":"wasmcustom.traffic_split.plugin.traffic-split.host_errors_total","value":0},
{"histograms":[
 {"name":"wasmcustom.traffic_split.plugin.traffic-split.route.hello.version.v1.request_duration_microseconds",
  "buckets":[{"upper_bound":500,"interval":0,"cumulative":13},{"upper_bound":1000,"interval":0,"cumulative":14},
             {"upper_bound":5000,"interval":0,"cumulative":14}]},
 {"name":"wasmcustom.traffic_split.plugin.traffic-split.route.hello.version.v2.request_duration_microseconds",
  "buckets":[{"upper_bound":500,"interval":0,"cumulative":0},{"upper_bound":1000,"interval":0,"cumulative":0},
             {"upper_bound":5000,"interval":0,"cumulative":6}]}]}]}"#;

    fn key(route: &str, version: &str) -> VersionKey {
        VersionKey {
            plugin: "traffic-split".into(),
            route: route.into(),
            version: version.into(),
        }
    }

    fn assert_counts_of_the_reading(snapshot: &Snapshot) {
        let v1 = &snapshot.versions[&key("hello", "v1")];
        let v2 = &snapshot.versions[&key("hello", "v2")];
        assert_eq!(snapshot.versions.len(), 2);
        assert_eq!(snapshot.unmatched, Some(1));
        assert_eq!(
            (v1.requests, v1.responses, v1.timeouts),
            (14, [14, 0, 0, 0], 0)
        );
        assert_eq!(
            (v2.requests, v2.responses, v2.timeouts),
            (6, [0, 0, 0, 6], 6)
        );
        let v2_duration = v2.duration.as_ref().expect("v2 has a histogram");
        assert_eq!(v2_duration.count, 6);
        assert_eq!(
            v2_duration.buckets.last(),
            Some(&Bucket {
                upper_bound: 5.0,
                cumulative: 6
            })
        );
        assert_eq!(v1.weight, None);
        assert_eq!((v1.guard_trips, v1.guard_ejected), (None, None));
    }

    #[test]
    fn prometheus_form_gives_counts_per_route_and_version() {
        let snapshot = parse_prometheus(PROMETHEUS);
        assert_counts_of_the_reading(&snapshot);
        let v1 = snapshot.versions[&key("hello", "v1")]
            .duration
            .clone()
            .expect("histogram");
        assert_eq!((v1.count, v1.sum), (14, Some(4.5)));
        assert_eq!(v1.buckets.len(), 3, "+Inf is the count, not a bucket");
    }

    #[test]
    fn json_form_gives_the_same_counts() {
        let snapshot = parse_json(JSON).expect("parses");
        assert_counts_of_the_reading(&snapshot);
    }

    #[test]
    fn the_filters_duration_unit_is_known() {
        let name = DestinationMetric::Duration.name(&any_plugin(), "r", "v");
        assert!(
            DURATION_UNITS
                .iter()
                .any(|(suffix, _)| name.ends_with(suffix)),
            "{name}: teach DURATION_UNITS its unit"
        );
    }

    #[test]
    fn a_filter_counting_requests_only_has_no_outcomes() {
        let snapshot = parse_prometheus(
            r#"traffic_split_requests_total{plugin="traffic-split",route="r",version="v"} 3"#,
        );
        let stats = &snapshot.versions[&key("r", "v")];
        assert_eq!(stats.requests, 3);
        assert!(!stats.outcomes_counted);
        assert_eq!(stats.duration, None);
    }

    #[test]
    fn json_without_buckets_asks_for_them() {
        let text =
            r#"{"stats":[{"histograms":{"supported_quantiles":[50],"computed_quantiles":[]}}]}"#;
        assert_eq!(parse_json(text), Ok(Snapshot::default()));
        let text = r#"{"stats":[{"histograms":[{"name":"wasmcustom.traffic_split.plugin.traffic-split.route.r.version.v.request_duration_microseconds","values":[]}]}]}"#;
        let error = parse_json(text).expect_err("refused");
        assert!(error.contains("histogram_buckets=cumulative"), "{error}");
    }

    #[test]
    fn json_that_is_not_envoys_stats_is_an_error() {
        assert!(parse_json("not json").is_err());
        assert!(parse_json(r#"{"other":1}"#).is_err());
    }

    #[test]
    fn weight_and_guard_are_read_when_the_filter_exports_them() {
        let text = r#"
traffic_split_weight{plugin="traffic-split",route="hello",version="v1"} 90
traffic_split_weight{plugin="traffic-split",route="hello",version="v2"} 10
traffic_split_guard_trips_total{plugin="traffic-split",route="hello",version="v2"} 3
traffic_split_guard_ejected{plugin="traffic-split",route="hello",version="v2"} 1
traffic_split_guard_ejected{plugin="traffic-split",route="hello",version="v1"} 0
"#;
        let snapshot = parse_prometheus(text);
        let v1 = &snapshot.versions[&key("hello", "v1")];
        let v2 = &snapshot.versions[&key("hello", "v2")];
        assert_eq!((v1.weight, v2.weight), (Some(90.0), Some(10.0)));
        assert_eq!((v2.guard_trips, v2.guard_ejected), (Some(3), Some(true)));
        assert_eq!((v1.guard_trips, v1.guard_ejected), (None, Some(false)));

        let json = r#"{"stats":[
{"name":"wasmcustom.traffic_split.plugin.traffic-split.route.hello.version.v2.weight","value":10},
{"name":"wasmcustom.traffic_split.plugin.traffic-split.route.hello.version.v2.guard_trips_total","value":3},
{"name":"wasmcustom.traffic_split.plugin.traffic-split.route.hello.version.v2.guard_ejected","value":1}]}"#;
        let v2 = &parse_json(json).expect("parses").versions[&key("hello", "v2")];
        assert_eq!(
            (v2.weight, v2.guard_trips, v2.guard_ejected),
            (Some(10.0), Some(3), Some(true))
        );
    }

    #[test]
    fn other_stats_and_untagged_names_are_skipped() {
        let text = r#"
envoy_cluster_upstream_rq_total{envoy_cluster_name="traffic_split_v1"} 5
traffic_split_route_hello_version_v1_requests_total{} 7
traffic_split_plugin_p_route_hello_version_v1_requests_total{} 7
traffic_split_requests_total{plugin="traffic-split",route="hello"} 7
traffic_split_something_else{plugin="traffic-split",route="hello",version="v1"} 7
"#;
        let snapshot = parse_prometheus(text);
        assert!(snapshot.versions.is_empty(), "{snapshot:?}");
        assert_eq!(snapshot.unmatched, None);
    }

    #[test]
    fn label_values_may_hold_escapes_commas_and_braces() {
        let sample = Sample::parse(r#"m{a="x\"y,}",b="\\n"} 2 1700000000"#).expect("parses");
        assert_eq!(sample.label("a"), Some("x\"y,}"));
        assert_eq!(sample.label("b"), Some("\\n"));
        assert_eq!(sample.value, 2.0);
    }

    #[test]
    fn samples_without_labels_have_none() {
        // Envoy writes its untagged stats with empty braces; other exporters without them.
        for line in ["envoy_server_live{} 1", "envoy_server_live 1"] {
            let sample = Sample::parse(line).expect("parses");
            assert_eq!((sample.name, sample.value), ("envoy_server_live", 1.0));
            assert!(sample.labels.is_empty(), "{line}");
        }
        let sample = Sample::parse(r#"m_bucket{a="x",le="+Inf"} 7"#).expect("parses");
        assert_eq!(
            sample.labels,
            [("a", "x".to_string()), ("le", "+Inf".to_string())]
        );
    }

    #[test]
    fn broken_lines_are_skipped_not_fatal() {
        for line in [
            "",
            "# HELP x",
            "m{a=\"unterminated} 1",
            "m{a=x} 1",
            "m{a=\"x\"}",
            "m 1 2 3",
            "m NaN-ish",
            "{}",
            "m{",
            "traffic_split_requests_total{route=\"é\",version=\"v\"} 18446744073709551616",
        ] {
            let _ = Sample::parse(line);
            let _ = parse_prometheus(line);
        }
        let sample = Sample::parse("m 1 2 3").expect("value then timestamp");
        assert_eq!(sample.value, 1.0);
        assert!(Sample::parse("m{a=\"x\"}").is_none());
    }

    #[test]
    fn dotted_names_parse_with_or_without_the_wasm_namespace() {
        let (key, stat) = dotted_stat(
            "traffic_split.plugin.ns_p-1.route.r-1.version.v_2.code_class.4xx.responses_total",
        )
        .expect("parses");
        assert_eq!(
            (
                key.plugin.as_str(),
                key.route.as_str(),
                key.version.as_str()
            ),
            ("ns_p-1", "r-1", "v_2")
        );
        assert_eq!(stat, Stat::Responses(CodeClass::ClientError));
        assert!(dotted_stat(
            "wasmcustom.traffic_split.plugin.traffic-split.route.r.version.v.requests_total"
        )
        .is_some());
        assert!(dotted_stat(
            "wasmcustom.traffic_split.plugin.traffic-split.route.r.version.v.code_class.6xx.responses_total"
        )
        .is_none());
        assert!(dotted_stat(
            "wasmcustom.traffic_split.plugin.traffic-split.route.r.requests_total"
        )
        .is_none());
        assert!(
            dotted_stat("wasmcustom.traffic_split.route.r.version.v.requests_total").is_none(),
            "a name without its plugin is not the filter's"
        );
    }

    #[test]
    fn two_plugins_with_one_route_name_are_read_apart() {
        let text = r#"
traffic_split_requests_total{plugin="default_split-a",route="hello",version="v1"} 5
traffic_split_requests_total{plugin="default_split-b",route="hello",version="v1"} 7
traffic_split_unmatched_total{plugin="default_split-a"} 1
traffic_split_unmatched_total{plugin="default_split-b"} 2
"#;
        let json = r#"{"stats":[
{"name":"wasmcustom.traffic_split.plugin.default_split-a.route.hello.version.v1.requests_total","value":5},
{"name":"wasmcustom.traffic_split.plugin.default_split-b.route.hello.version.v1.requests_total","value":7},
{"name":"wasmcustom.traffic_split.plugin.default_split-a.unmatched_total","value":1},
{"name":"wasmcustom.traffic_split.plugin.default_split-b.unmatched_total","value":2}]}"#;
        for snapshot in [parse_prometheus(text), parse_json(json).expect("parses")] {
            let requests = |plugin: &str| {
                let key = VersionKey {
                    plugin: plugin.into(),
                    route: "hello".into(),
                    version: "v1".into(),
                };
                snapshot.versions[&key].requests
            };
            assert_eq!(
                (requests("default_split-a"), requests("default_split-b")),
                (5, 7)
            );
            assert_eq!(snapshot.unmatched, Some(3), "summed over the plugins");
        }
    }
}
