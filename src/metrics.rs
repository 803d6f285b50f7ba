//! Metric names and labels. Pure: the adapter defines each name once at configure time.
//!
//! Proxy-wasm metrics carry no labels, so the labels are spelled into the stat name in a fixed
//! dotted layout, and Envoy's `stats_tags` (see `envoy/envoy.yaml` and `docs/metrics.md`) turn
//! them back into Prometheus labels:
//!
//! ```text
//! traffic_split.route.<route>.version.<version>.requests_total
//! traffic_split.route.<route>.version.<version>.code_class.<2xx..5xx>.responses_total
//! traffic_split.route.<route>.version.<version>.timeouts_total
//! traffic_split.route.<route>.version.<version>.request_duration_microseconds
//! traffic_split.route.<route>.version.<version>.weight
//! traffic_split.route.<route>.version.<version>.guard_trips_total
//! traffic_split.route.<route>.version.<version>.guard_ejected
//! traffic_split.route.<route>.version.<version>.guard_held_total
//! traffic_split.route.<route>.version.<version>.fault.<abort|delay>.faults_total
//! traffic_split.route.<route>.version.<version>.source.<header|cookie|none>.sticky_total
//! traffic_split.route.<route>.version.<version|unknown>.overrides_total
//! traffic_split.unmatched_total
//! traffic_split.host_errors_total
//! traffic_split.invalid_config_requests_total
//! ```
//!
//! Envoy puts every Wasm-defined stat under the `wasmcustom.` namespace and strips it again in
//! `/stats/prometheus`, so users see `traffic_split_requests_total{route="hello",version="v1"}`.
//! Route names and versions are validated to `[A-Za-z0-9_-]`, so they never contain the dots
//! that separate the parts.

use crate::split::fault::FaultKind;

/// Every stat name starts with this.
pub const PREFIX: &str = "traffic_split";
/// The counter of requests that matched no route.
pub const UNMATCHED: &str = "traffic_split.unmatched_total";
/// The counter of host calls that failed while handling a request (a header that could not be
/// read or written, a response that could not be read). A request with a failed write is
/// counted here and not as routed.
pub const HOST_ERRORS: &str = "traffic_split.host_errors_total";
/// The counter of requests passed through under a refused config that asked for it
/// (`"on_invalid_config": "pass_through"`). Defined only then.
pub const INVALID_CONFIG_REQUESTS: &str = "traffic_split.invalid_config_requests_total";

/// The response classes counted. Envoy never forwards a final 1xx except on upgrades, so they
/// and any status outside 100-599 are not counted as a response class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeClass {
    Success,
    Redirect,
    ClientError,
    ServerError,
}

impl CodeClass {
    pub const ALL: [CodeClass; 4] = [
        CodeClass::Success,
        CodeClass::Redirect,
        CodeClass::ClientError,
        CodeClass::ServerError,
    ];

    /// The class of a response code, as Envoy's `response.code` attribute gives it.
    pub fn of_code(code: i64) -> Option<CodeClass> {
        match code {
            200..=299 => Some(CodeClass::Success),
            300..=399 => Some(CodeClass::Redirect),
            400..=499 => Some(CodeClass::ClientError),
            500..=599 => Some(CodeClass::ServerError),
            _ => None,
        }
    }

    /// The label value, as Istio and Kiali spell it.
    pub fn label(self) -> &'static str {
        match self {
            CodeClass::Success => "2xx",
            CodeClass::Redirect => "3xx",
            CodeClass::ClientError => "4xx",
            CodeClass::ServerError => "5xx",
        }
    }

    /// The position of this class in [`CodeClass::ALL`], for arrays indexed by class.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Where a sticky route found a request's key: the `source` label of its sticky counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeySource {
    Header,
    Cookie,
    /// No key: the round robin chose (or, with `set_cookie`, the fresh key of the cookie set).
    None,
}

impl KeySource {
    pub const ALL: [KeySource; 3] = [KeySource::Header, KeySource::Cookie, KeySource::None];

    pub fn label(self) -> &'static str {
        match self {
            KeySource::Header => "header",
            KeySource::Cookie => "cookie",
            KeySource::None => "none",
        }
    }

    /// The position of this source in [`KeySource::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The `version` label of the overrides whose value named no version of the route. A route
/// with an override header may not have a version of this name.
pub const UNKNOWN_VERSION: &str = "unknown";

/// The names of the metrics of one route and version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestinationMetricNames {
    pub requests: String,
    /// Indexed by [`CodeClass::index`].
    pub responses: [String; 4],
    pub timeouts: String,
    pub duration: String,
    /// Gauge: the weight requests are split by now (the configured one, where a ramp stands,
    /// or the guard's).
    pub weight: String,
    /// Counter: how often the guard took this version out of the split.
    pub guard_trips: String,
    /// Gauge: 1 while the guard holds this version out of the split, else 0.
    pub guard_ejected: String,
    /// Counter: how often the guard would have taken this version out but could not, since
    /// it was the last version with weight.
    pub guard_held: String,
    /// Counters of injected faults, indexed by [`FaultKind::index`].
    pub faults: [String; 2],
    /// Indexed by [`KeySource::index`]; defined only on sticky routes.
    pub sticky: [String; 3],
    /// Defined only on routes with an override header.
    pub overrides: String,
}

fn destination_base(route: &str, version: &str) -> String {
    format!("{PREFIX}.route.{route}.version.{version}")
}

impl DestinationMetricNames {
    pub fn new(route: &str, version: &str) -> Self {
        let base = destination_base(route, version);
        Self {
            requests: format!("{base}.requests_total"),
            responses: CodeClass::ALL
                .map(|class| format!("{base}.code_class.{}.responses_total", class.label())),
            timeouts: format!("{base}.timeouts_total"),
            duration: format!("{base}.request_duration_microseconds"),
            weight: format!("{base}.weight"),
            guard_trips: format!("{base}.guard_trips_total"),
            guard_ejected: format!("{base}.guard_ejected"),
            guard_held: format!("{base}.guard_held_total"),
            faults: FaultKind::ALL
                .map(|kind| format!("{base}.fault.{}.faults_total", kind.label())),
            sticky: KeySource::ALL
                .map(|source| format!("{base}.source.{}.sticky_total", source.label())),
            overrides: format!("{base}.overrides_total"),
        }
    }
}

/// The names of a route's own metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteMetricNames {
    /// Overrides naming no version of the route; defined only with an override header.
    pub unknown_overrides: String,
}

impl RouteMetricNames {
    pub fn new(route: &str) -> Self {
        Self {
            unknown_overrides: format!(
                "{}.overrides_total",
                destination_base(route, UNKNOWN_VERSION)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn names_spell_route_and_version_as_tag_segments() {
        let names = DestinationMetricNames::new("hello", "v1");
        assert_eq!(
            names.requests,
            "traffic_split.route.hello.version.v1.requests_total"
        );
        assert_eq!(
            names.responses[CodeClass::ServerError.index()],
            "traffic_split.route.hello.version.v1.code_class.5xx.responses_total"
        );
        assert_eq!(
            names.timeouts,
            "traffic_split.route.hello.version.v1.timeouts_total"
        );
        assert_eq!(
            names.duration,
            "traffic_split.route.hello.version.v1.request_duration_microseconds"
        );
        assert_eq!(names.weight, "traffic_split.route.hello.version.v1.weight");
        assert_eq!(
            names.sticky[KeySource::Cookie.index()],
            "traffic_split.route.hello.version.v1.source.cookie.sticky_total"
        );
        assert_eq!(
            names.overrides,
            "traffic_split.route.hello.version.v1.overrides_total"
        );
        assert_eq!(
            RouteMetricNames::new("hello").unknown_overrides,
            "traffic_split.route.hello.version.unknown.overrides_total"
        );
    }

    #[test]
    fn key_source_index_matches_all() {
        for (position, source) in KeySource::ALL.iter().enumerate() {
            assert_eq!(source.index(), position);
        }
    }

    #[test]
    fn status_classes() {
        assert_eq!(CodeClass::of_code(200), Some(CodeClass::Success));
        assert_eq!(CodeClass::of_code(299), Some(CodeClass::Success));
        assert_eq!(CodeClass::of_code(302), Some(CodeClass::Redirect));
        assert_eq!(CodeClass::of_code(404), Some(CodeClass::ClientError));
        assert_eq!(CodeClass::of_code(504), Some(CodeClass::ServerError));
        for odd in [i64::MIN, -200, 0, 101, 199, 600, 2000, i64::MAX] {
            assert_eq!(CodeClass::of_code(odd), None, "{odd}");
        }
    }

    #[test]
    fn class_index_matches_all() {
        for (position, class) in CodeClass::ALL.iter().enumerate() {
            assert_eq!(class.index(), position);
        }
    }
}
