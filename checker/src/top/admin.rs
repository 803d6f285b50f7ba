//! Reading Envoy's admin stats over HTTP, and turning successive readings into frames.

use super::frame::Frame;
use super::options::StatsForm;
use super::stats::{parse_json, parse_prometheus, Snapshot, JSON_PATH, PROMETHEUS_PATH};
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use traffic_split::config::compile;
use traffic_split::metrics::PluginLabel;
use traffic_split::plan::Plan;

/// Longer than any admin answer takes, shorter than a user's patience.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The largest stats answer read: ureq's default (10 MB) is met by about 1,300 routes of two
/// versions in JSON; this is room for 8,000 routes.
const MAX_STATS_BYTES: u64 = 64 << 20;
/// The largest `/config_dump` read: a big mesh's sidecar dumps tens of MB.
const MAX_CONFIG_DUMP_BYTES: u64 = 256 << 20;

/// How often the filter's config is read again from `/config_dump`: it changes rarely, and
/// an Istio sidecar's dump is large.
const CONFIG_EVERY: Duration = Duration::from_secs(30);

/// An Envoy admin endpoint.
pub struct Admin {
    base: String,
    url: String,
    form: StatsForm,
    agent: ureq::Agent,
}

impl Admin {
    /// `base` is the admin URL without a trailing slash: `http://127.0.0.1:9901`.
    pub fn new(base: &str, form: StatsForm) -> Admin {
        let path = match form {
            StatsForm::Prometheus => PROMETHEUS_PATH,
            StatsForm::Json => JSON_PATH,
        };
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(TIMEOUT))
            .build();
        Admin {
            base: base.to_string(),
            url: format!("{base}{path}"),
            form,
            agent: ureq::Agent::new_with_config(config),
        }
    }

    /// The body at `url` as text, up to `limit` bytes; why not, said apart for an admin out
    /// of reach, an answer too large and one that is not UTF-8.
    fn get_text(&self, url: &str, limit: u64) -> Result<String, String> {
        let mut response = self
            .agent
            .get(url)
            .call()
            .map_err(|error| unreachable_message(&self.base, url, &error))?;
        let bytes = response
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|error| match error {
                ureq::Error::BodyExceedsLimit(_) => format!(
                    "{url}: the answer is larger than {} MiB, more than top reads",
                    limit >> 20
                ),
                other => format!("{url}: reading the answer: {other}"),
            })?;
        String::from_utf8(bytes).map_err(|error| {
            format!(
                "{url}: the answer is not UTF-8 text (invalid byte at {})",
                error.utf8_error().valid_up_to()
            )
        })
    }

    /// One reading of the stats.
    pub fn read(&self) -> Result<Snapshot, String> {
        let text = self.get_text(&self.url, MAX_STATS_BYTES)?;
        match self.form {
            StatsForm::Prometheus => Ok(parse_prometheus(&text)),
            StatsForm::Json => parse_json(&text).map_err(|error| format!("{}: {error}", self.url)),
        }
    }
}

impl Admin {
    /// The filter's configs in Envoy's `/config_dump` (every Wasm `configuration` string the
    /// filter's compiler accepts), or why the dump cannot be read.
    pub fn read_plans(&self) -> Result<Vec<PluginPlan>, String> {
        let url = format!("{}/config_dump", self.base);
        let text = self.get_text(&url, MAX_CONFIG_DUMP_BYTES)?;
        if serde_json::from_str::<serde::de::IgnoredAny>(&text).is_err() {
            return Err(format!("{url}: not JSON"));
        }
        Ok(plans_in_config_dump(&text))
    }
}

/// One message for an admin that cannot be reached, saying what to do; other errors as they
/// are.
fn unreachable_message(base: &str, url: &str, error: &ureq::Error) -> String {
    match error {
        ureq::Error::Io(_) | ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => format!(
            "cannot reach Envoy's admin at {base} ({error}): is Envoy running, and is this its \
             admin address? (`make envoy-up` starts one on :9901; for a sidecar, \
             `kubectl port-forward POD 15000` and --admin http://127.0.0.1:15000)"
        ),
        _ => format!("{url}: {error}"),
    }
}

/// A traffic-split config of the dump and the `plugin` label of the plugin that runs it.
#[derive(Debug)]
pub struct PluginPlan {
    pub plugin: String,
    pub plan: Plan,
}

/// Every `configuration` StringValue of the dump that compiles as a traffic-split config, with
/// the `plugin` label of the plugin's `name` beside it (the label its metrics carry).
pub fn plans_in_config_dump(text: &str) -> Vec<PluginPlan> {
    let Ok(dump) = serde_json::from_str::<serde_json::Value>(text) else {
        return Vec::new();
    };
    let mut plans = Vec::new();
    let mut pending = vec![&dump];
    while let Some(value) = pending.pop() {
        match value {
            serde_json::Value::Object(object) => {
                if let Some(config) = object
                    .get("configuration")
                    .and_then(|configuration| configuration.get("value"))
                    .and_then(serde_json::Value::as_str)
                {
                    if let Ok(plan) = compile(config.as_bytes()) {
                        let name = object.get("name").and_then(serde_json::Value::as_str);
                        let plugin = PluginLabel::of_plugin_name(name.unwrap_or_default());
                        plans.push(PluginPlan {
                            plugin: plugin.as_str().to_string(),
                            plan,
                        });
                    }
                }
                pending.extend(object.values());
            }
            serde_json::Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
    plans
}

/// Reads the stats again and again, each frame measured against the reading before.
pub struct Poller {
    admin: Admin,
    previous: Option<(Snapshot, Instant)>,
    plans: Vec<PluginPlan>,
    plans_read: Option<Instant>,
    /// Why the last reading of the config failed.
    plans_problem: Option<String>,
    /// When each (route, version) was seen going out of the split.
    ejected_since: BTreeMap<(String, String, String), Instant>,
}

impl Poller {
    pub fn new(admin: Admin) -> Poller {
        Poller {
            admin,
            previous: None,
            plans: Vec::new(),
            plans_read: None,
            plans_problem: None,
            ejected_since: BTreeMap::new(),
        }
    }

    /// Reads the stats and returns the frame since the last successful reading.
    pub fn next_frame(&mut self) -> Result<Frame, String> {
        let snapshot = self.admin.read()?;
        let now = Instant::now();
        if self
            .plans_read
            .is_none_or(|read| now.duration_since(read) >= CONFIG_EVERY)
        {
            match self.admin.read_plans() {
                Ok(plans) => {
                    self.plans = plans;
                    self.plans_problem = None;
                }
                Err(problem) => self.plans_problem = Some(problem),
            }
            self.plans_read = Some(now);
        }
        let mut frame = Frame::new(
            &snapshot,
            self.previous
                .as_ref()
                .map(|(before, at)| (before, now.duration_since(*at))),
        );
        self.track_ejections(&snapshot, now);
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
            });
        frame.apply_config(&self.plans, now_ms);
        frame.config_problem = self.plans_problem.clone();
        frame.apply_ejections(|plugin, route, version| {
            self.ejected_since
                .get(&(plugin.to_string(), route.to_string(), version.to_string()))
                .map(|since| now.duration_since(*since).as_secs_f64())
        });
        self.previous = Some((snapshot, now));
        Ok(frame)
    }

    /// Notes when a version went out: its trips grew, or its gauge turned 1, since the last
    /// reading. A version already out at the first reading has no known start.
    fn track_ejections(&mut self, snapshot: &Snapshot, now: Instant) {
        let Some((before, _)) = &self.previous else {
            return;
        };
        for (key, stats) in &snapshot.versions {
            let id = (key.plugin.clone(), key.route.clone(), key.version.clone());
            if stats.guard_ejected != Some(true) {
                self.ejected_since.remove(&id);
                continue;
            }
            let earlier = before.versions.get(key);
            let tripped = earlier.is_some_and(|earlier| {
                earlier.guard_ejected != Some(true) || stats.guard_trips > earlier.guard_trips
            });
            if tripped {
                self.ejected_since.insert(id, now);
            }
        }
    }
}
