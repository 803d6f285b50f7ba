//! The compiled, immutable plan the request path reads: matchers with their regexes built,
//! deadlines already formatted as header values, metric names already spelled, routes indexed
//! by path. Built once by [`crate::config::compile`]; a request only indexes it. Nothing here
//! changes while serving: that is the routes' state ([`crate::state`]), kept beside the plan.
//! - this file: [`Plan`], its modes, and the headers the filter owns ([`owned_headers`]: the
//!   one list);
//! - [`route`]: [`Route`] and [`Destination`];
//! - [`matcher`]: what a route matches, against a [`RequestView`];
//! - [`index`]: the routes indexed by path ([`RouteTable`]), so that matching does not grow
//!   with them.

pub mod index;
pub mod matcher;
pub mod route;

pub use index::RouteTable;
pub use matcher::{
    literal_prefix, matched_path, HeaderMatch, HeaderRule, PathMatch, RequestView, RouteMatch,
    WholeValueRegex,
};
pub use route::{Destination, RetryHeaders, Route, SetCookie, Sticky, StickyKey};

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
pub const RETRIABLE_STATUS_CODES_HEADER: &str = "x-envoy-retriable-status-codes";
pub const RETRIABLE_HEADER_NAMES_HEADER: &str = "x-envoy-retriable-header-names";
/// Hedging is not offered: always removed, so that a client cannot turn a route's per-try
/// timeout into hedged requests.
pub const HEDGE_ON_PER_TRY_TIMEOUT_HEADER: &str = "x-envoy-hedge-on-per-try-timeout";
/// Every retry header the filter owns, in the order it writes them.
pub const RETRY_HEADERS: [&str; 7] = [
    MAX_RETRIES_HEADER,
    RETRY_ON_HEADER,
    PER_TRY_TIMEOUT_HEADER,
    GRPC_RETRY_ON_HEADER,
    RETRIABLE_STATUS_CODES_HEADER,
    RETRIABLE_HEADER_NAMES_HEADER,
    HEDGE_ON_PER_TRY_TIMEOUT_HEADER,
];

/// Every header the filter owns, in the order it writes them: the version and cluster headers
/// the config names (`named`; while a config is checked, those of them that are valid), the
/// deadline header and Envoy's retry headers. The one list: the config check refuses a matcher
/// or override on any of them, the stream writes or removes each, and the fuzz checks hold the
/// stream to leaving every other header as the client sent it.
pub fn owned_headers<'a>(
    named: impl IntoIterator<Item = &'a str>,
) -> impl Iterator<Item = &'a str> {
    named
        .into_iter()
        .chain(std::iter::once(DEADLINE_HEADER))
        .chain(RETRY_HEADERS)
}

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

impl Plan {
    /// What in this plan needs the response path (Envoy entering the module for a stream's
    /// response headers and at its end), as a refusal names it: the field, then why. `None`
    /// when nothing does, so the module built without those callbacks
    /// (`traffic_split_requests.wasm`, feature `requests-only`) can serve it.
    pub fn response_path_use(&self) -> Option<String> {
        if self.routes.is_empty() {
            return None;
        }
        if self.metrics == MetricsMode::Full {
            return Some(
                "metrics: \"full\" (the default) counts each response when its stream ends".into(),
            );
        }
        self.routes.iter().enumerate().find_map(|(index, route)| {
            if route.guard.is_some() {
                return Some(format!(
                    "routes[{index}].guard: the guard counts each response when its stream ends"
                ));
            }
            route
                .sticky
                .as_ref()
                .and_then(|sticky| sticky.set_cookie.as_ref())
                .map(|_| {
                    format!("routes[{index}].sticky.set_cookie: the cookie is set on the response")
                })
        })
    }

    /// Every header the filter owns under this plan ([`owned_headers`]).
    pub fn owned_headers(&self) -> impl Iterator<Item = &str> {
        owned_headers([self.version_header.as_str(), self.cluster_header.as_str()])
    }

    /// The first route that matches the request, with its index.
    pub fn match_route(&self, request: &mut impl RequestView) -> Option<(usize, &Route)> {
        self.routes.first_match(request)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::compile;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn response_path_use(fields: &str, route: &str) -> Option<String> {
        let json = format!(
            r#"{{ {fields} "routes": [
                {{ "name": "a", "destinations": [ {{ "version": "v1", "weight": 1 }} ] }},
                {{ "name": "b", {route} "destinations": [ {{ "version": "v1", "weight": 1 }} ] }} ] }}"#
        );
        compile(json.as_bytes()).unwrap().response_path_use()
    }

    #[test]
    fn the_owned_headers_are_the_plans_two_then_the_deadline_and_every_retry_header() {
        let plan = compile(
            br#"{ "version_header": "x-canary", "routes": [
            { "name": "a", "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#,
        )
        .unwrap();
        let owned: Vec<&str> = plan.owned_headers().collect();
        assert_eq!(
            owned,
            [
                "x-canary",
                "x-split-cluster",
                "x-envoy-upstream-rq-timeout-ms",
                "x-envoy-max-retries",
                "x-envoy-retry-on",
                "x-envoy-upstream-rq-per-try-timeout-ms",
                "x-envoy-retry-grpc-on",
                "x-envoy-retriable-status-codes",
                "x-envoy-retriable-header-names",
                "x-envoy-hedge-on-per-try-timeout",
            ]
        );
    }

    #[test]
    fn what_needs_the_response_path_is_named_by_its_field() {
        let requests = r#""metrics": "requests","#;
        assert_eq!(response_path_use(requests, ""), None);
        assert!(response_path_use("", "")
            .is_some_and(|why| why.starts_with("metrics: \"full\" (the default)")));
        assert!(
            response_path_use(requests, r#""guard": { "max_error_ratio": 0.1 },"#)
                .is_some_and(|why| why.starts_with("routes[1].guard: "))
        );
        assert!(response_path_use(
            requests,
            r#""sticky": { "cookie": "s", "set_cookie": { "max_age": "1h" } },"#
        )
        .is_some_and(|why| why.starts_with("routes[1].sticky.set_cookie: ")));
        assert_eq!(
            response_path_use(requests, r#""sticky": { "header": "x-user" },"#),
            None
        );
    }
}
