//! Reading Envoy's admin stats over HTTP, and turning successive readings into frames.

use super::frame::Frame;
use super::options::StatsForm;
use super::stats::{parse_json, parse_prometheus, Snapshot, JSON_PATH, PROMETHEUS_PATH};
use std::time::{Duration, Instant};

/// Longer than any admin answer takes, shorter than a user's patience.
const TIMEOUT: Duration = Duration::from_secs(5);

/// An Envoy admin endpoint.
pub struct Admin {
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
            url: format!("{base}{path}"),
            form,
            agent: ureq::Agent::new_with_config(config),
        }
    }

    /// One reading of the stats.
    pub fn read(&self) -> Result<Snapshot, String> {
        let text = self
            .agent
            .get(&self.url)
            .call()
            .and_then(|mut response| response.body_mut().read_to_string())
            .map_err(|error| format!("{}: {error}", self.url))?;
        match self.form {
            StatsForm::Prometheus => Ok(parse_prometheus(&text)),
            StatsForm::Json => parse_json(&text).map_err(|error| format!("{}: {error}", self.url)),
        }
    }
}

/// Reads the stats again and again, each frame measured against the reading before.
pub struct Poller {
    admin: Admin,
    previous: Option<(Snapshot, Instant)>,
}

impl Poller {
    pub fn new(admin: Admin) -> Poller {
        Poller {
            admin,
            previous: None,
        }
    }

    /// Reads the stats and returns the frame since the last successful reading.
    pub fn next_frame(&mut self) -> Result<Frame, String> {
        let snapshot = self.admin.read()?;
        let now = Instant::now();
        let frame = Frame::new(
            &snapshot,
            self.previous
                .as_ref()
                .map(|(before, at)| (before, now.duration_since(*at))),
        );
        self.previous = Some((snapshot, now));
        Ok(frame)
    }
}
