//! Envoy's admin API as the tests read it: its stats (`/stats` by name, `/stats/prometheus`
//! parsed with the checker's Prometheus parser), its listeners' addresses and its runtime.

use super::http;
use super::wait::poll_until;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;
use traffic_split_check::PrometheusSample;

/// A running Envoy's admin endpoint.
#[derive(Clone, Copy, Debug)]
pub struct Admin {
    pub address: SocketAddr,
}

/// The address, so that `http://{admin}` is the admin's URL.
impl fmt::Display for Admin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.address.fmt(f)
    }
}

impl Admin {
    /// A GET that must answer 200.
    fn get(&self, path: &str) -> http::Response {
        let response = http::get(self.address, path).unwrap_or_else(|error| {
            panic!("read {path} from Envoy's admin: {error}");
        });
        assert_eq!(response.status, 200, "{path}: {}", response.body_text());
        response
    }

    /// Whether Envoy's admin answers `/ready` with 200.
    pub fn is_ready(&self) -> bool {
        http::get(self.address, "/ready").is_ok_and(|response| response.status == 200)
    }

    /// Envoy's own stats as `/stats` spells them: (name, value) per line, to `find` in.
    fn find_stat<T>(&self, find: impl FnMut((&str, &str)) -> Option<T>) -> Option<T> {
        self.get("/stats")
            .body_text()
            .lines()
            .filter_map(|line| line.split_once(": "))
            .map(|(name, value)| (name, value.trim()))
            .find_map(find)
    }

    /// One of Envoy's own stats by its full name (`wasm.traffic-split.vm_reload_success`), as
    /// `/stats` spells it; `None` when Envoy has no such stat.
    pub fn stat(&self, name: &str) -> Option<u64> {
        self.find_stat(|(stat, value)| (stat == name).then(|| value.parse().ok()).flatten())
    }

    /// How many connections each worker thread has accepted on the front listener, by worker
    /// (Envoy's `listener.front.worker_<n>.downstream_cx_total`), with
    /// [`super::EnvoyConfig::with_balanced_workers`].
    pub fn connections_per_worker(&self) -> BTreeMap<String, u64> {
        self.get("/stats")
            .body_text()
            .lines()
            .filter_map(|line| {
                let (name, value) = line.split_once(": ")?;
                let worker = name
                    .strip_prefix("listener.front.")?
                    .strip_suffix(".downstream_cx_total")?;
                worker
                    .starts_with("worker_")
                    .then(|| (worker.to_string(), value.trim().parse().unwrap_or(0)))
            })
            .collect()
    }

    /// Envoy's `/stats/prometheus`, parsed.
    pub fn metrics(&self) -> Metrics {
        Metrics::parse(&self.get("/stats/prometheus").body_text())
    }

    /// Polls `/stats/prometheus` until `ready` holds (at most 10 s), and returns that reading.
    /// Histograms are merged from the workers asynchronously after each admin read, so they
    /// can trail the counters by a read or two.
    pub fn metrics_when(&self, ready: impl Fn(&Metrics) -> bool) -> Metrics {
        let mut last = None;
        poll_until(Duration::from_secs(10), Duration::from_millis(50), || {
            let metrics = self.metrics();
            if ready(&metrics) {
                return Some(metrics);
            }
            last = Some(metrics);
            None
        })
        .or(last)
        .unwrap_or_default()
    }

    /// Envoy's `/stats/prometheus` lines about traffic-split, as text.
    pub fn prometheus_lines(&self) -> Vec<String> {
        self.get("/stats/prometheus")
            .body_text()
            .lines()
            .filter(|line| {
                line.starts_with("traffic_split_") || line.starts_with("# TYPE traffic_split_")
            })
            .map(str::to_string)
            .collect()
    }

    /// The address Envoy bound for a listener by name (configured with port 0).
    pub fn listener(&self, name: &str) -> SocketAddr {
        let response = self.get("/listeners?format=json");
        let listeners: serde_json::Value =
            serde_json::from_slice(&response.body).expect("/listeners is JSON");
        listeners["listener_statuses"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|listener| listener["name"] == name)
            .and_then(|listener| {
                let socket = &listener["local_address"]["socket_address"];
                format!(
                    "{}:{}",
                    socket["address"].as_str()?,
                    socket["port_value"].as_u64()?
                )
                .parse()
                .ok()
            })
            .unwrap_or_else(|| panic!("Envoy reports no address for listener {name}"))
    }

    /// Sets a key of Envoy's admin runtime layer.
    pub fn set_runtime(&self, key: &str, value: &str) {
        let path = format!("/runtime_modify?{key}={value}");
        let response = http::Connection::open(self.address)
            .and_then(|mut admin| admin.request("POST", &path, &[]))
            .expect("POST /runtime_modify");
        assert_eq!(response.status, 200, "{}", response.body_text());
    }
}

/// The `plugin` label of the filter in the shipped `envoy/envoy.yaml` (`config.name:
/// traffic-split`): the plugin whose series [`Metrics`] reads when a test names none.
pub const SHIPPED_PLUGIN: &str = "traffic-split";

/// Prometheus samples: metric name and labels to value.
#[derive(Debug, Default)]
pub struct Metrics {
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let samples = text
            .lines()
            .filter_map(PrometheusSample::parse)
            .map(|sample| {
                let labels = sample
                    .labels
                    .into_iter()
                    .map(|(key, value)| (key.to_string(), value))
                    .collect();
                (sample.name.to_string(), labels, sample.value)
            })
            .collect();
        Metrics { samples }
    }

    /// The value of the series with exactly these labels; without a `plugin` label among them,
    /// the series of [`SHIPPED_PLUGIN`] (every series of the filter carries its plugin, in a
    /// label or, without the `stats_tags`, in its name: `traffic_split_plugin_...`).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
        if name.starts_with("traffic_split_") && !name.starts_with("traffic_split_plugin_") {
            wanted
                .entry("plugin".to_string())
                .or_insert_with(|| SHIPPED_PLUGIN.to_string());
        }
        self.samples
            .iter()
            .find(|(sample_name, sample_labels, _)| sample_name == name && *sample_labels == wanted)
            .map(|(_, _, value)| *value)
    }

    /// Every series of `name`: its labels and value.
    pub fn series(&self, name: &str) -> Vec<(&BTreeMap<String, String>, f64)> {
        self.samples
            .iter()
            .filter(|(sample_name, ..)| sample_name == name)
            .map(|(_, labels, value)| (labels, *value))
            .collect()
    }

    /// One version's counters: (requests, 2xx responses, 5xx responses, timeouts).
    pub fn outcome(&self, route: &str, version: &str) -> (u64, u64, u64, u64) {
        self.plugin_outcome(SHIPPED_PLUGIN, route, version)
    }

    /// One version's counters of one plugin: (requests, 2xx responses, 5xx responses,
    /// timeouts).
    pub fn plugin_outcome(&self, plugin: &str, route: &str, version: &str) -> (u64, u64, u64, u64) {
        let version_count = |name| {
            self.count(
                name,
                &[("plugin", plugin), ("route", route), ("version", version)],
            )
        };
        let class = |class| {
            let labels = [
                ("plugin", plugin),
                ("route", route),
                ("version", version),
                ("code_class", class),
            ];
            self.count("traffic_split_responses_total", &labels)
        };
        (
            version_count("traffic_split_requests_total"),
            class("2xx"),
            class("5xx"),
            version_count("traffic_split_timeouts_total"),
        )
    }

    /// A counter of one route and version (`traffic_split_requests_total` of `hello`, `v2`),
    /// with an absent series read as 0.
    pub fn version_count(&self, name: &str, route: &str, version: &str) -> u64 {
        self.count(name, &[("route", route), ("version", version)])
    }

    /// Like [`Metrics::get`], with an absent series read as 0.
    pub fn count(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        self.get(name, labels).unwrap_or(0.0) as u64
    }
}
