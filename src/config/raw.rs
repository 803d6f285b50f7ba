//! The plugin config as users write it: serde types that read exactly what is written.
//!
//! Every field is an `Option`, required ones too, so that a missing field is reported along
//! with the rest rather than stopping the check; values whose range is checked later (a
//! weight, a metrics mode) are read loosely enough that a bad one is reported with the rest,
//! not a parse failure. Each field's doc agrees with its row in docs/config.md; its check is in
//! the section's file under `check/`.

use serde::Deserialize;
use serde_json::Value;

/// The plugin config's top level.
///
/// Read it through [`super::compile`] or [`super::compile_value`]: another deserializer would silently
/// ignore unknown fields.
#[derive(Debug, Default, Deserialize)]
pub struct PluginConfig {
    /// The header the chosen version is written to (default `x-split-version`).
    pub version_header: Option<String>,
    /// The header the chosen cluster is written to (default `x-split-cluster`).
    pub cluster_header: Option<String>,
    /// Required: 1 to [`super::limits::MAX_ROUTES`] routes, tried in order; the first that
    /// matches wins.
    pub routes: Option<Vec<RouteConfig>>,
    /// `"full"` (default) or `"requests"`: see [`crate::plan::MetricsMode`].
    pub metrics: Option<String>,
    /// `"trace"`, `"debug"`, `"info"` (default), `"warn"`, `"error"` or `"critical"`.
    pub log_level: Option<String>,
    /// What the filter does with this config if it is refused: `"refuse"` (default: Envoy
    /// rejects it) or `"pass_through"`: see [`super::pass_through`].
    pub on_invalid_config: Option<String>,
}

/// A route: what it matches, and the versions its requests are split between.
#[derive(Debug, Default, Deserialize)]
pub struct RouteConfig {
    /// Required: 1-64 of `[A-Za-z0-9_-]`, unique; the `route` label of the metrics.
    pub name: Option<String>,
    /// Absent: the route matches every request.
    #[serde(rename = "match")]
    pub matcher: Option<MatchConfig>,
    /// Required: 1 to [`super::limits::MAX_DESTINATIONS_PER_ROUTE`] versions and their weights.
    pub destinations: Option<Vec<DestinationConfig>>,
    /// The deadline of every destination without its own, as a duration (`"0.002s"`, `"2ms"`).
    pub timeout: Option<String>,
    /// Takes a failing version out of the split for a cooldown: see [`crate::split::guard`].
    pub guard: Option<GuardConfig>,
    /// Envoy's retries for every destination without its own.
    pub retries: Option<RetriesConfig>,
    /// Faults for drills, for every destination without its own.
    pub fault: Option<FaultConfig>,
    /// Requests carrying the same key go to the same version while the weights stay the same.
    pub sticky: Option<StickyConfig>,
    /// A request header naming one of the route's versions sends the request there, whatever
    /// the weights; removed before the request goes upstream.
    pub override_header: Option<String>,
    /// One version's share of the route moving through steps over time.
    pub rollout: Option<RolloutConfig>,
    /// Replaced by `rollout`: refused, with the equivalent `rollout` in the message.
    pub ramp: Option<Value>,
}

/// `"fault"` on a route or a destination: at least one of `abort` and `delay`.
#[derive(Debug, Default, Deserialize)]
pub struct FaultConfig {
    /// Answers a share of the requests with a local reply.
    pub abort: Option<AbortConfig>,
    /// Holds a share of the requests before they go on.
    pub delay: Option<DelayConfig>,
}

/// Answers a share of the requests at once with a local reply.
#[derive(Debug, Default, Deserialize)]
pub struct AbortConfig {
    /// Required: the status, from 200 to 599.
    pub status: Option<Value>,
    /// Required: the share, a percentage from 0 to 100 with at most two decimals.
    pub percent: Option<Value>,
}

/// Holds a share of the requests before they go on.
#[derive(Debug, Default, Deserialize)]
pub struct DelayConfig {
    /// Required: how long, as a duration.
    pub fixed: Option<String>,
    /// Required: the share, a percentage from 0 to 100 with at most two decimals.
    pub percent: Option<Value>,
}

/// `"guard"` on a route.
#[derive(Debug, Default, Deserialize)]
pub struct GuardConfig {
    /// Required: trips when errors / requests in the window is above this, from 0 to 1.
    pub max_error_ratio: Option<Value>,
    /// Requests a version needs in the window before it can trip, from 1 to 1,000,000
    /// (default 20).
    pub min_requests: Option<Value>,
    /// The sliding window (default `"30s"`), from 1s to 1h.
    pub window: Option<String>,
    /// How long a tripped version stays out (default `"2m"`), from 1s to 24h, or
    /// `"until_config_change"`: a trip latches until the config changes the version or the guard.
    pub cooldown: Option<String>,
    /// Which outcomes are errors: `"5xx"`, `"timeout"`, `"reset"` (default 5xx and timeout).
    pub errors: Option<Vec<String>>,
    /// The share of the route (a percentage with up to two decimals, at most 50) still sent
    /// to a tripped version, so that it can show it recovered (default 0).
    pub probe_percent: Option<Value>,
}

/// `"retries"` on a route or a destination: Envoy's retry policy, set per request.
#[derive(Debug, Default, Deserialize)]
pub struct RetriesConfig {
    /// Required: retries after the first attempt, 0 to 10 (`x-envoy-max-retries`).
    pub attempts: Option<Value>,
    /// Each attempt's deadline (`x-envoy-upstream-rq-per-try-timeout-ms`).
    pub per_try_timeout: Option<String>,
    /// Required: Envoy's retry conditions, comma-separated (`x-envoy-retry-on`).
    pub retry_on: Option<String>,
    /// Envoy's gRPC retry conditions, comma-separated (`x-envoy-retry-grpc-on`).
    pub grpc_retry_on: Option<String>,
    /// The statuses `retriable-status-codes` retries: 1 to 50 integers from 100 to 599
    /// (`x-envoy-retriable-status-codes`).
    pub retriable_status_codes: Option<Value>,
    /// The response headers `retriable-headers` retries on: 1 to 20 header names
    /// (`x-envoy-retriable-header-names`).
    pub retriable_headers: Option<Value>,
}

/// Where a sticky key is read: exactly one of `header` and `cookie`.
#[derive(Debug, Default, Deserialize)]
pub struct StickyConfig {
    /// A request header whose value is the key (`x-user-id`).
    pub header: Option<String>,
    /// A cookie whose value is the key (`session`).
    pub cookie: Option<String>,
    /// With `cookie`: a response to a request without the cookie sets it to a fresh key.
    pub set_cookie: Option<SetCookieConfig>,
}

/// The cookie the filter sets for a request without one.
#[derive(Debug, Default, Deserialize)]
pub struct SetCookieConfig {
    /// Required: the cookie's `Max-Age`, a duration in whole seconds (`"24h"`), from 1s to
    /// 400 days.
    pub max_age: Option<String>,
    /// `true`: the cookie is marked `Secure`, sent back only over HTTPS (default `false`).
    pub secure: Option<bool>,
}

/// One version's share of its route moving through steps from `start`; the route's other
/// versions split the rest by their weights.
#[derive(Debug, Default, Deserialize)]
pub struct RolloutConfig {
    /// Required: one of the route's versions; its destination has no `weight` of its own.
    pub version: Option<String>,
    /// Required: an RFC 3339 time (`"2026-12-01T10:00:00Z"`, or with an offset); before it the
    /// version has 0%.
    pub start: Option<String>,
    /// Required: 1 to [`crate::config::MAX_ROLLOUT_STEPS`] steps, taken in order.
    pub steps: Option<Vec<RolloutStepConfig>>,
}

/// A step of a rollout: its share, reached at once or `over` a duration, then held.
#[derive(Debug, Default, Deserialize)]
pub struct RolloutStepConfig {
    /// Required: the version's share of the route, in percent from 0 to 100 with at most four
    /// decimals.
    pub share: Option<Value>,
    /// How long the share takes to get there linearly from the share before (0 before the
    /// first step), from 1s to a year; left out, at once.
    pub over: Option<String>,
    /// How long the step holds its share before the next starts, from 1s to a year (left out:
    /// the next starts at once), or `"until_config_change"`: a gate, held until a push changes
    /// the rollout. Not on the last step, which holds forever.
    pub hold: Option<String>,
}

/// What a route matches; every part given must match.
#[derive(Debug, Default, Deserialize)]
pub struct MatchConfig {
    /// The path (without its query string) starts with it, a string starting with `/`. At
    /// most one of `prefix`, `exact` and `regex`.
    pub prefix: Option<String>,
    /// The path (without its query string) is exactly it, a string starting with `/`.
    pub exact: Option<String>,
    /// Matched against the whole path, without its query string.
    pub regex: Option<String>,
    /// Upper-case methods; absent means any method.
    pub methods: Option<Vec<String>>,
    /// Headers that must all match.
    pub headers: Option<Vec<HeaderMatchConfig>>,
}

/// A header a route requires: `name` and exactly one of `exact`, `prefix`, `regex`,
/// `present: true`.
#[derive(Debug, Default, Deserialize)]
pub struct HeaderMatchConfig {
    /// Required; case-insensitive; pseudo-headers such as `:authority` allowed.
    pub name: Option<String>,
    /// The header's first value equals it.
    pub exact: Option<String>,
    /// The header's first value starts with it.
    pub prefix: Option<String>,
    /// The header's first value matches the whole regex.
    pub regex: Option<String>,
    /// `true`: the header is present, with any value.
    pub present: Option<bool>,
}

/// One version of a route and its share of the route's requests.
#[derive(Debug, Default, Deserialize)]
pub struct DestinationConfig {
    /// Required: 1-64 of `[A-Za-z0-9_-]`, unique in the route; the `version` label.
    pub version: Option<String>,
    /// 1-255 visible ASCII characters, written into the cluster header.
    pub cluster: Option<String>,
    /// Required: an integer from 0 to [`super::MAX_WEIGHT`]. Kept as any JSON value,
    /// so that `-5`, `2.5` or `"70"` is reported with the config's other errors instead of
    /// stopping the check; Istio's integral doubles (`70.0`) read as integers.
    pub weight: Option<Value>,
    /// This destination's deadline; overrides the route's.
    pub timeout: Option<String>,
    /// This destination's retries; replace the route's.
    pub retries: Option<RetriesConfig>,
    /// This destination's faults; replace the route's.
    pub fault: Option<FaultConfig>,
}
