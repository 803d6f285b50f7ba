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
//! traffic_split.unmatched_total
//! traffic_split.host_errors_total
//! ```
//!
//! Envoy puts every Wasm-defined stat under the `wasmcustom.` namespace and strips it again in
//! `/stats/prometheus`, so users see `traffic_split_requests_total{route="hello",version="v1"}`.
//! Route names and versions are validated to `[A-Za-z0-9_-]`, so they never contain the dots
//! that separate the parts.

use crate::fault::FaultKind;

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

/// The names of the metrics of one route and version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestinationMetricNames {
    pub requests: String,
    /// Indexed by [`CodeClass::index`].
    pub responses: [String; 4],
    pub timeouts: String,
    pub duration: String,
    /// Gauge: the weight requests are split by now (the configured one, or the guard's).
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
}

impl DestinationMetricNames {
    pub fn new(route: &str, version: &str) -> Self {
        let base = format!("{PREFIX}.route.{route}.version.{version}");
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
