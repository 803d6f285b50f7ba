//! What a run records: every request (when asked), every guard decision, and per period one
//! row per route and version, the numbers `traffic-split simulate` prints.

use crate::split::guard::{GuardEvent, Tally};
use std::collections::BTreeMap;

/// One routed (or unmatched) request.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestRecord {
    pub at_ms: u64,
    pub worker: usize,
    /// Which config it ran under: 0 the first, then one per push.
    pub generation: usize,
    pub route: Option<String>,
    pub version: Option<String>,
    /// The weights in force on its worker when it was split (after the ramp moved), and which
    /// versions that worker had out, in destination order.
    pub weights: Vec<u32>,
    pub ejected: Vec<bool>,
    pub sticky_key: Option<u32>,
    /// An injected abort answered it.
    pub fault: bool,
    /// It ended as an error (a 5xx: an abort, a 503, a reset, a timeout), whatever the guard
    /// counts.
    pub error: bool,
    /// The status the filter saw at the stream's end (`None`: unmatched, not followed).
    pub status: Option<u16>,
    /// Envoy's deadline (or a per-try timeout, the retries spent) answered it: 504 `UT`.
    pub timed_out: bool,
    /// Attempts Envoy's router sent to the version (0: the filter answered it).
    pub attempts: u32,
    /// When the stream ended, in virtual ms.
    pub ended_ms: u64,
}

/// A guard decision, as the worker whose merge made it saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct GuardRecord {
    pub at_ms: u64,
    pub worker: usize,
    pub route: String,
    pub version: String,
    pub event: GuardEvent,
}

/// One version of one route over one period.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct VersionRow {
    pub version: String,
    /// The weight in force on worker 0 at the end of the period.
    pub weight: u32,
    pub requests: u64,
    /// Requests that ended in a 5xx (timeouts and resets included) or an injected abort.
    pub errors: u64,
    /// Requests Envoy's deadline cut (504 with `UT`), as the filter counts them.
    pub timeouts: u64,
    /// Retries Envoy's router sent, beyond each request's first attempt.
    pub retries: u64,
    pub faults: u64,
    /// Requests sent while their worker had the version out (probes).
    pub probes: u64,
    pub trips: u64,
    pub returns: u64,
    /// Out of the split on worker 0 at the end of the period.
    pub ejected: bool,
    /// ... latched there until the config changes (a halted rollout).
    pub latched: bool,
}

/// One route over one period.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Row {
    pub from_ms: u64,
    pub until_ms: u64,
    pub route: String,
    pub versions: Vec<VersionRow>,
}

/// What a run recorded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Run {
    pub requests: Vec<RequestRecord>,
    pub guard_events: Vec<GuardRecord>,
    pub rows: Vec<Row>,
    /// Per version name: requests routed to it, and requests that ended there (every worker,
    /// every config).
    pub routed: BTreeMap<String, u64>,
    pub ended: BTreeMap<String, u64>,
    /// Per version name: the timeouts the core counted at the streams' ends (the filter's
    /// `traffic_split_timeouts_total`; none under `"metrics": "requests"`).
    pub timeouts_counted: BTreeMap<String, u64>,
    pub unmatched: u64,
    /// Merges the store refused after every retry (the outcomes wait for the next tick).
    pub failed_merges: u64,
    /// At the end, per guarded route of the last config: each version's outcomes in the
    /// shared state's window.
    pub shared_windows: BTreeMap<String, Vec<Tally>>,
}

impl Run {
    /// The routes no request reached in any period, in the order they first appear.
    pub fn routes_without_requests(&self) -> Vec<String> {
        let mut routes: Vec<(String, bool)> = Vec::new();
        for row in &self.rows {
            let reached = row.versions.iter().any(|version| version.requests > 0);
            match routes.iter_mut().find(|(name, _)| *name == row.route) {
                Some((_, seen)) => *seen |= reached,
                None => routes.push((row.route.clone(), reached)),
            }
        }
        routes
            .into_iter()
            .filter(|(_, reached)| !reached)
            .map(|(name, _)| name)
            .collect()
    }
}

/// A version as worker 0 has it when a period closes.
pub(crate) struct VersionAtClose {
    pub version: String,
    pub weight: u32,
    pub ejected: bool,
    pub latched: bool,
}

/// The rows of the period under way, per route and version, until it closes.
#[derive(Default)]
pub(crate) struct Periods {
    current: BTreeMap<String, BTreeMap<String, VersionRow>>,
    pub start_ms: u64,
}

impl Periods {
    pub(crate) fn version_row(&mut self, route: &str, version: &str) -> &mut VersionRow {
        self.current
            .entry(route.to_owned())
            .or_default()
            .entry(version.to_owned())
            .or_insert_with(|| VersionRow {
                version: version.to_owned(),
                ..VersionRow::default()
            })
    }

    /// Closes the period at `until_ms`: counts the guard's events in it, takes each route's
    /// weights and states from worker 0's `routes`, and starts the next period there.
    pub(crate) fn close(
        &mut self,
        until_ms: u64,
        guard_events: &[GuardRecord],
        routes: Vec<(String, Vec<VersionAtClose>)>,
    ) -> Vec<Row> {
        let from_ms = self.start_ms;
        for record in guard_events {
            if !(from_ms..until_ms).contains(&record.at_ms) {
                continue;
            }
            let row = self.version_row(&record.route, &record.version);
            match record.event {
                GuardEvent::Tripped { .. } => row.trips += 1,
                GuardEvent::Returned { .. } => row.returns += 1,
                GuardEvent::Held { .. } => {}
            }
        }
        for (route, versions) in routes {
            for at_close in versions {
                let row = self.version_row(&route, &at_close.version);
                row.weight = at_close.weight;
                row.ejected = at_close.ejected;
                row.latched = at_close.latched;
            }
        }
        self.start_ms = until_ms;
        std::mem::take(&mut self.current)
            .into_iter()
            .map(|(route, versions)| Row {
                from_ms,
                until_ms,
                route,
                versions: versions.into_values().collect(),
            })
            .collect()
    }
}
