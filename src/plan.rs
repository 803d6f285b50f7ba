//! The compiled, immutable plan the request path reads: matchers with their regexes built,
//! weights ready for the round robin, deadlines already formatted as header values, metric
//! names already spelled. Built once by [`crate::config::compile`]; a request only indexes it.

use crate::metrics::DestinationMetricNames;
use crate::pick::WeightedRoundRobin;
use regex_lite::Regex;

/// Default header carrying the chosen version (Istio's VirtualService matches on it).
pub const DEFAULT_VERSION_HEADER: &str = "x-split-version";
/// Default header carrying the chosen cluster (Envoy's `cluster_header` routing reads it).
pub const DEFAULT_CLUSTER_HEADER: &str = "x-split-cluster";
/// Envoy's per-request deadline header; the filter owns it on routes with a timeout.
pub const DEADLINE_HEADER: &str = "x-envoy-upstream-rq-timeout-ms";

#[derive(Debug)]
pub struct Plan {
    /// Lower case, as Envoy stores header names.
    pub version_header: String,
    /// Lower case.
    pub cluster_header: String,
    /// Tried in order; the first match wins.
    pub routes: Vec<Route>,
}

#[derive(Debug)]
pub struct Route {
    pub name: String,
    pub matcher: RouteMatch,
    pub destinations: Vec<Destination>,
    pub picker: WeightedRoundRobin,
}

#[derive(Debug)]
pub struct Destination {
    pub version: String,
    pub cluster: Option<String>,
    pub weight: u32,
    /// The deadline in milliseconds: the destination's own timeout, else the route's.
    pub deadline_ms: Option<u64>,
    /// `deadline_ms` formatted once, as written into [`DEADLINE_HEADER`].
    pub deadline_header_value: Option<String>,
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
    Regex(Regex),
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
    Regex(Regex),
    Present,
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
        self.routes
            .iter()
            .enumerate()
            .find(|(_, route)| route.matcher.matches(request))
    }
}

/// A regex match on bytes: a value that is not UTF-8 never matches a regex.
fn regex_matches(regex: &Regex, value: &[u8]) -> bool {
    std::str::from_utf8(value).is_ok_and(|text| regex.is_match(text))
}

impl RouteMatch {
    pub fn matches(&self, request: &mut impl RequestView) -> bool {
        if let Some(path_match) = &self.path {
            let path = request.path().unwrap_or_default();
            // Match on the path without its query string, as Envoy's route matcher does.
            let path = match path.iter().position(|&b| b == b'?') {
                Some(query_start) => path.get(..query_start).unwrap_or_default(),
                None => path,
            };
            let path_ok = match path_match {
                PathMatch::Prefix(prefix) => path.starts_with(prefix.as_bytes()),
                PathMatch::Exact(exact) => path == exact.as_bytes(),
                PathMatch::Regex(regex) => regex_matches(regex, path),
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
                (HeaderRule::Regex(regex), Some(value)) => regex_matches(regex, value),
            }
        })
    }
}

impl Route {
    /// Chooses the next destination by weight.
    /// `None` only for a route without destinations, which validation never builds.
    pub fn pick_destination(&self) -> Option<(usize, &Destination)> {
        let index = self.picker.pick();
        self.destinations
            .get(index)
            .map(|destination| (index, destination))
    }
}
