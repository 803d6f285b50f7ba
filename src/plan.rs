//! The compiled, immutable plan the request path reads: matchers with their regexes built,
//! weights ready for the round robin, deadlines already formatted as header values, metric
//! names already spelled, routes indexed by path ([`RouteTable`]). Built once by
//! [`crate::config::compile`]; a request only indexes it.

use crate::fault::FaultPlan;
use crate::guard::{effective_weights, Guard, Tally};
use crate::metrics::{DestinationMetricNames, RouteMetricNames};
use crate::pick::WeightedRoundRobin;
use crate::ramp::Ramp;
pub use crate::route_table::RouteTable;
use regex_lite::Regex;
use std::cell::Cell;

/// Default header carrying the chosen version (Istio's VirtualService matches on it).
pub const DEFAULT_VERSION_HEADER: &str = "x-split-version";
/// Default header carrying the chosen cluster (Envoy's `cluster_header` routing reads it).
pub const DEFAULT_CLUSTER_HEADER: &str = "x-split-cluster";
/// Envoy's per-request deadline header; the filter owns it on routes with a timeout.
pub const DEADLINE_HEADER: &str = "x-envoy-upstream-rq-timeout-ms";
/// Envoy's retry headers; the filter owns them on every route it matches: it writes the
/// route's retries, or removes what a client sent.
pub const MAX_RETRIES_HEADER: &str = "x-envoy-max-retries";
pub const RETRY_ON_HEADER: &str = "x-envoy-retry-on";
pub const PER_TRY_TIMEOUT_HEADER: &str = "x-envoy-upstream-rq-per-try-timeout-ms";
pub const GRPC_RETRY_ON_HEADER: &str = "x-envoy-retry-grpc-on";

#[derive(Debug)]
pub struct Plan {
    /// Lower case, as Envoy stores header names.
    pub version_header: String,
    /// Lower case.
    pub cluster_header: String,
    /// Tried in order; the first match wins ([`RouteTable`] finds it without trying the routes
    /// whose path cannot match).
    pub routes: RouteTable,
    /// What the filter counts (`"metrics"` in the config).
    pub metrics: MetricsMode,
    /// The most verbose level the filter logs at (`"log_level"` in the config).
    pub log_level: LogLevel,
    /// The plan of a refused config that asked to pass requests through
    /// (`"on_invalid_config": "pass_through"`): no routes; every request loses the owned
    /// headers and is counted as served under an invalid config.
    pub pass_through: bool,
}

impl Plan {
    /// The pass-through plan, owning these version and cluster headers (lower case).
    pub fn pass_through(version_header: String, cluster_header: String) -> Plan {
        Plan {
            version_header,
            cluster_header,
            routes: RouteTable::empty(),
            metrics: MetricsMode::Requests,
            log_level: LogLevel::default(),
            pass_through: true,
        }
    }
}

/// How much the filter counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MetricsMode {
    /// Requests, response classes, timeouts and the latency histogram per route and version.
    #[default]
    Full,
    /// Only requests per route and version (and unmatched requests): no work when a stream
    /// ends, for users whose cluster stats or mesh telemetry already give responses and latency.
    Requests,
}

/// Log levels, as the config spells them (`"trace"` .. `"critical"`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace,
    Debug,
    #[default]
    Info,
    Warn,
    Error,
    Critical,
}

#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub matcher: RouteMatch,
    pub destinations: Vec<Destination>,
    /// The route's current weights (a ramp moves one) and the round robin over them.
    pub picker: WeightedRoundRobin,
    pub guard: Option<Guard>,
    /// This worker's view of the guard's decisions, and the outcomes it has not yet merged.
    pub live: RouteLive,
    /// Where a request's sticky key is read, if the route has one.
    pub sticky: Option<Sticky>,
    /// The header naming a version that overrides the split; lower case.
    pub override_header: Option<String>,
    pub ramp: Option<Ramp>,
    pub metric_names: RouteMetricNames,
}

/// The part of a route that changes while it serves, per Envoy worker (each has its own VM
/// and so its own plan). Cells: the request path never holds a borrow, so it cannot panic on
/// one.
#[derive(Default)]
pub struct RouteLive {
    /// The round robin over the guard's effective weights while a version is out; `None`:
    /// the configured weights ([`Route::picker`]).
    effective_picker: Cell<Option<WeightedRoundRobin>>,
    /// Which destinations the guard has taken out, as of this worker's last merge.
    ejected: Vec<Cell<bool>>,
    /// Outcomes per destination since this worker's last merge.
    outcomes: Vec<Cell<Tally>>,
}

impl std::fmt::Debug for RouteLive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteLive")
            .field("ejected", &self.ejected())
            .finish_non_exhaustive()
    }
}

impl RouteLive {
    pub fn new(destinations: usize) -> Self {
        RouteLive {
            effective_picker: Cell::new(None),
            ejected: (0..destinations).map(|_| Cell::new(false)).collect(),
            outcomes: (0..destinations)
                .map(|_| Cell::new(Tally::default()))
                .collect(),
        }
    }

    /// Counts a routed request's outcome for the guard's next merge.
    pub fn record_outcome(&self, destination: usize, error: bool) {
        if let Some(cell) = self.outcomes.get(destination) {
            let mut tally = cell.get();
            tally.add(Tally::one(error));
            cell.set(tally);
        }
    }

    /// The outcomes since the last call, per destination.
    pub fn take_outcomes(&self) -> Vec<Tally> {
        self.outcomes.iter().map(|cell| cell.take()).collect()
    }

    pub fn ejected(&self) -> Vec<bool> {
        self.ejected.iter().map(Cell::get).collect()
    }
}

/// Envoy's retry policy for a request, as the header values the filter writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryHeaders {
    /// `x-envoy-max-retries`.
    pub max_retries: String,
    /// `x-envoy-retry-on`.
    pub retry_on: String,
    /// `x-envoy-upstream-rq-per-try-timeout-ms`.
    pub per_try_timeout_ms: Option<String>,
    /// `x-envoy-retry-grpc-on`.
    pub grpc_retry_on: Option<String>,
}

/// A sticky split: requests with the same key go to the same version.
#[derive(Debug)]
pub struct Sticky {
    pub key: StickyKey,
    /// With a cookie key: the cookie set on the response to a request without one.
    pub set_cookie: Option<SetCookie>,
}

#[derive(Debug)]
pub enum StickyKey {
    /// A request header, by lower-case name.
    Header(String),
    /// A cookie of the request's `cookie` header, by name.
    Cookie(String),
}

/// A `Set-Cookie` value spelt out at configure time but for the fresh key between the parts.
#[derive(Debug)]
pub struct SetCookie {
    /// `session=`
    pub before_key: String,
    /// `; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax`
    pub after_key: String,
}

impl SetCookie {
    pub fn new(cookie: &str, max_age_seconds: u64) -> Self {
        SetCookie {
            before_key: format!("{cookie}="),
            after_key: format!("; Path=/; Max-Age={max_age_seconds}; HttpOnly; SameSite=Lax"),
        }
    }

    /// The header value that sets the cookie to `key`.
    pub fn value(&self, key: &str) -> String {
        [self.before_key.as_str(), key, self.after_key.as_str()].concat()
    }
}

#[derive(Debug)]
pub struct Destination {
    pub version: String,
    pub cluster: Option<String>,
    /// The configured weight; for a ramp's version, its weight before the ramp (`from`). The
    /// weight in force is the route's `picker.weight(index)`.
    pub weight: u32,
    /// The seed of this version's sticky scores (`crate::pick::version_seed`).
    pub sticky_seed: u64,
    /// The deadline in milliseconds: the destination's own timeout, else the route's.
    pub deadline_ms: Option<u64>,
    /// `deadline_ms` formatted once, as written into [`DEADLINE_HEADER`].
    pub deadline_header_value: Option<String>,
    /// The destination's retries, else the route's; `None`: the filter removes a client's.
    pub retries: Option<RetryHeaders>,
    /// The destination's faults, else the route's, with their draws.
    pub fault: Option<FaultPlan>,
    pub metric_names: DestinationMetricNames,
}

/// What a route matches; every part given must match. An empty match matches everything.
#[derive(Debug, Default)]
pub struct RouteMatch {
    pub path: Option<PathMatch>,
    /// Empty means any method.
    pub methods: Vec<String>,
    pub headers: Vec<HeaderMatch>,
}

#[derive(Debug)]
pub enum PathMatch {
    Prefix(String),
    Exact(String),
    /// Anchored at both ends: the whole path must match, as in Envoy's `safe_regex`.
    Regex(WholeValueRegex),
}

#[derive(Debug)]
pub struct HeaderMatch {
    /// Lower case.
    pub name: String,
    pub rule: HeaderRule,
}

#[derive(Debug)]
pub enum HeaderRule {
    Exact(String),
    Prefix(String),
    /// Anchored at both ends.
    Regex(WholeValueRegex),
    Present,
}

/// A regex that must match a whole value, with the literal text every match starts with,
/// found at configure time. Most values a route sees are misses, and most miss on their first
/// bytes (`/api/items` against `/v[0-9]+/orders/.*`): comparing the prefix settles those
/// without running the regex, which costs several times more.
#[derive(Debug)]
pub struct WholeValueRegex {
    /// Compiled as `^(?:pattern)$`.
    regex: Regex,
    literal_prefix: String,
}

impl WholeValueRegex {
    /// `anchored` is `pattern` compiled as `^(?:pattern)$`.
    pub fn new(pattern: &str, anchored: Regex) -> Self {
        WholeValueRegex {
            regex: anchored,
            literal_prefix: literal_prefix(pattern),
        }
    }

    /// The anchored pattern, `^(?:pattern)$`.
    pub fn as_str(&self) -> &str {
        self.regex.as_str()
    }

    /// The literal text every match starts with (see [`literal_prefix`]).
    pub fn literal_prefix(&self) -> &str {
        &self.literal_prefix
    }

    /// A value that is not UTF-8 never matches.
    pub fn matches(&self, value: &[u8]) -> bool {
        value.starts_with(self.literal_prefix.as_bytes())
            && std::str::from_utf8(value).is_ok_and(|text| self.regex.is_match(text))
    }
}

/// The literal text at the start of every whole-value match of `pattern`; empty when there is
/// none, or when the pattern is too clever to tell (an alternation anywhere, a group or class
/// first, an escape, a flag). Only ever too short, never too long: a character followed by a
/// quantifier that allows zero (`*`, `?`, `{`) is not part of it.
pub fn literal_prefix(pattern: &str) -> String {
    if pattern.contains('|') {
        return String::new();
    }
    let mut prefix = String::new();
    for character in pattern.chars() {
        match character {
            '*' | '?' | '{' => {
                prefix.pop();
                break;
            }
            '\\' | '.' | '+' | '(' | ')' | '[' | ']' | '}' | '^' | '$' => break,
            literal => prefix.push(literal),
        }
    }
    prefix
}

/// The request as the matcher sees it. The adapter asks the host only when a route first needs
/// to know something about the request. Values are bytes: a client may send anything, and a
/// header that is not UTF-8 must not break matching.
pub trait RequestView {
    /// The `:path` pseudo-header, query string included.
    fn path(&mut self) -> Option<&[u8]>;
    /// The `:method` pseudo-header.
    fn method(&mut self) -> Option<&[u8]>;
    /// The first value of a request header, by lower-case name.
    fn header(&mut self, name: &str) -> Option<&[u8]>;
}

impl Plan {
    /// The first route that matches the request, with its index.
    pub fn match_route(&self, request: &mut impl RequestView) -> Option<(usize, &Route)> {
        self.routes.first_match(request)
    }
}

/// The request's path as routes match it: without the query string, as Envoy's route matcher
/// does; empty when the request has no `:path`.
pub fn matched_path(request: &mut impl RequestView) -> &[u8] {
    let path = request.path().unwrap_or_default();
    match path.iter().position(|&b| b == b'?') {
        Some(query_start) => path.get(..query_start).unwrap_or_default(),
        None => path,
    }
}

impl RouteMatch {
    pub fn matches(&self, request: &mut impl RequestView) -> bool {
        if let Some(path_match) = &self.path {
            let path = matched_path(request);
            let path_ok = match path_match {
                PathMatch::Prefix(prefix) => path.starts_with(prefix.as_bytes()),
                PathMatch::Exact(exact) => path == exact.as_bytes(),
                PathMatch::Regex(regex) => regex.matches(path),
            };
            if !path_ok {
                return false;
            }
        }
        if !self.methods.is_empty() {
            let method = request.method().unwrap_or_default();
            if !self
                .methods
                .iter()
                .any(|allowed| allowed.as_bytes() == method)
            {
                return false;
            }
        }
        self.headers.iter().all(|header| {
            let value = request.header(&header.name);
            match (&header.rule, value) {
                (HeaderRule::Present, value) => value.is_some(),
                (_, None) => false,
                (HeaderRule::Exact(exact), Some(value)) => value == exact.as_bytes(),
                (HeaderRule::Prefix(prefix), Some(value)) => value.starts_with(prefix.as_bytes()),
                (HeaderRule::Regex(regex), Some(value)) => regex.matches(value),
            }
        })
    }
}

impl Route {
    /// Chooses the next destination by weight: the guard's effective weights while a version
    /// is out, else the configured ones.
    /// `None` only for a route without destinations, which validation never builds.
    pub fn pick_destination(&self) -> Option<(usize, &Destination)> {
        let index = self.with_split_in_force(WeightedRoundRobin::pick);
        self.destinations
            .get(index)
            .map(|destination| (index, destination))
    }

    /// Runs `use_split` on the round robin (and its weights) requests are split by now: the
    /// guard's while a version is out, else the route's own.
    pub fn with_split_in_force<T>(&self, use_split: impl FnOnce(&WeightedRoundRobin) -> T) -> T {
        match self.live.effective_picker.take() {
            Some(effective) => {
                let result = use_split(&effective);
                self.live.effective_picker.set(Some(effective));
                result
            }
            None => use_split(&self.picker),
        }
    }
}

impl Route {
    /// The weights before the guard's, in destination order: the configured ones, with a
    /// ramped version's where its ramp stands.
    pub fn weights(&self) -> Vec<u32> {
        self.picker.weights().collect()
    }

    /// Takes in the guard's decisions (which destinations are out); returns whether they
    /// changed this worker's split.
    pub fn apply_ejections(&self, ejected: &[bool]) -> bool {
        let changed = self
            .live
            .ejected
            .iter()
            .zip(ejected)
            .any(|(cell, &out)| cell.get() != out);
        if !changed {
            return false;
        }
        for (cell, &out) in self.live.ejected.iter().zip(ejected) {
            cell.set(out);
        }
        self.rebuild_effective_picker();
        true
    }

    /// Builds the guard's round robin from the weights before it and its decisions (none
    /// while no version is out): after the decisions or those weights (a ramp) changed.
    pub(crate) fn rebuild_effective_picker(&self) {
        let ejected = self.live.ejected();
        let picker = ejected.iter().any(|&out| out).then(|| {
            let probe = self.guard.as_ref().map_or(0, |g| g.probe_basis_points);
            WeightedRoundRobin::new(&effective_weights(&self.weights(), &ejected, probe))
        });
        self.live.effective_picker.set(picker);
    }

    /// The weights requests are split by now, in destination order.
    pub fn effective_weights(&self) -> Vec<u32> {
        let ejected = self.live.ejected();
        if !ejected.iter().any(|&out| out) {
            return self.weights();
        }
        let probe = self.guard.as_ref().map_or(0, |g| g.probe_basis_points);
        effective_weights(&self.weights(), &ejected, probe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn whole(pattern: &str) -> WholeValueRegex {
        let anchored = regex_lite::Regex::new(&format!("^(?:{pattern})$")).unwrap();
        WholeValueRegex::new(pattern, anchored)
    }

    #[test]
    fn literal_prefix_stops_before_anything_that_is_not_plain_text() {
        for (pattern, prefix) in [
            ("/v[0-9]+/orders/[0-9]+", "/v"),
            ("/api/items", "/api/items"),
            ("/api/.*", "/api/"),
            ("/apis?/x", "/api"),
            ("/ab*c", "/a"),
            ("/ab+c", "/ab"),
            ("/a{0,2}", "/"),
            ("/a\\.b", "/a"),
            ("(?i)/admin", ""),
            ("[a-z]+/x", ""),
            ("/a|/b", ""),
            ("/(a|b)", ""),
            ("^/x", ""),
            ("", ""),
            ("/ü/x", "/ü/x"),
        ] {
            assert_eq!(literal_prefix(pattern), prefix, "{pattern:?}");
        }
    }

    #[test]
    fn the_prefix_never_changes_what_a_regex_matches() {
        let values: &[&[u8]] = &[
            b"/v1/orders/7",
            b"/v/orders/7",
            b"/api/items",
            b"/apis/x",
            b"/api/x",
            b"/ac",
            b"/abbc",
            b"/abc",
            b"/",
            b"/aa",
            b"/a.b",
            b"/aXb",
            b"/ADMIN",
            b"/admin",
            b"/a",
            b"/b",
            b"",
            b"/\xff",
            "/ü/x".as_bytes(),
        ];
        for pattern in [
            "/v[0-9]+/orders/[0-9]+",
            "/api/.*",
            "/apis?/x",
            "/ab*c",
            "/ab+c",
            "/a{0,2}",
            "/a\\.b",
            "(?i)/admin",
            "/a|/b",
            "/(a|b)",
            "/ü/x",
            "",
        ] {
            let anchored = regex_lite::Regex::new(&format!("^(?:{pattern})$")).unwrap();
            let with_prefix = whole(pattern);
            for value in values {
                let plain = std::str::from_utf8(value).is_ok_and(|text| anchored.is_match(text));
                assert_eq!(
                    with_prefix.matches(value),
                    plain,
                    "{pattern:?} on {value:?}"
                );
            }
        }
    }
}
