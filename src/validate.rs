//! The typed config ([`crate::config::PluginConfig`]) checked and compiled into a [`Plan`]:
//! names, header names, weights, durations, regexes, duplicates, header rules. Every error is
//! collected, each with its JSON path, so one refusal lists them all.

use crate::config::read::show;
use crate::config::{
    AbortConfig, ConfigError, DelayConfig, DestinationConfig, FaultConfig, GuardConfig,
    HeaderMatchConfig, MatchConfig, PluginConfig, RampConfig, RetriesConfig, RouteConfig,
    StickyConfig, MAX_NAME_LEN,
};
use crate::metrics::{DestinationMetricNames, RouteMetricNames, UNKNOWN_VERSION};
use crate::plan::{
    Destination, HeaderMatch, HeaderRule, LogLevel, MetricsMode, PathMatch, Plan, RetryHeaders,
    Route, RouteMatch, SetCookie, Sticky, StickyKey, WholeValueRegex, DEADLINE_HEADER,
    DEFAULT_CLUSTER_HEADER, DEFAULT_VERSION_HEADER, GRPC_RETRY_ON_HEADER, MAX_RETRIES_HEADER,
    PER_TRY_TIMEOUT_HEADER, RETRY_ON_HEADER,
};
use crate::split::fault::{Abort, Delay, Fault, FaultPlan};
use crate::split::guard::{ErrorClasses, Guard, MAX_PROBE_BASIS_POINTS};
use crate::split::ramp::Ramp;
use crate::split::sticky::version_seed;
use crate::units::duration::{parse_duration_ms, parse_timeout_ms, DurationRange};
use crate::units::timestamp::parse_rfc3339_ms;
use regex_lite::RegexBuilder;
use serde_json::Value;
use std::collections::HashSet;

/// The largest weight of one destination: Gateway API's `backendRefs[].weight` range, so a
/// split written for either reads the same.
pub const MAX_WEIGHT: u32 = 1_000_000;
/// Limits that keep a regex from blowing up the module's memory. Matching itself is linear
/// in the input (regex-lite never backtracks).
pub const MAX_REGEX_LEN: usize = 1024;
const MAX_REGEX_COMPILED_BYTES: usize = 256 * 1024;
const MAX_REGEX_NESTING: u32 = 32;
/// A ramp lasts from a second to a year; `steps` is at most [`MAX_WEIGHT`], since a weight
/// cannot take more distinct values than that on its way.
const RAMP_DURATION: DurationRange = DurationRange {
    min_ms: 1_000,
    max_ms: 365 * 24 * 60 * 60 * 1_000,
    min_text: "1s",
    max_text: "8760h (a year)",
    why_whole_ms: "",
};
/// A sticky cookie lives from a second to 400 days, the most browsers keep one (RFC 6265bis).
const COOKIE_MAX_AGE: DurationRange = DurationRange {
    min_ms: 1_000,
    max_ms: 400 * 24 * 60 * 60 * 1_000,
    min_text: "1s",
    max_text: "9600h (400 days)",
    why_whole_ms: "",
};

/// The most retries a route may ask Envoy for.
const MAX_RETRIES: u32 = 10;
/// Envoy's `x-envoy-retry-on` conditions.
const RETRY_ON: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
];
/// Envoy's `x-envoy-retry-grpc-on` conditions.
const GRPC_RETRY_ON: &[&str] = &[
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];
const DEFAULT_GUARD_MIN_REQUESTS: u32 = 20;
const DEFAULT_GUARD_WINDOW_MS: u64 = 30_000;
const DEFAULT_GUARD_COOLDOWN_MS: u64 = 120_000;

/// A duration in the unit users would write it in.
fn show_ms(millis: u64) -> String {
    match millis {
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1_000 == 0 => format!("{}s", ms / 1_000),
        ms => format!("{ms}ms"),
    }
}

/// `"metrics"` as the config spells it.
const METRICS_MODES: &[(&str, MetricsMode)] = &[
    ("full", MetricsMode::Full),
    ("requests", MetricsMode::Requests),
];
/// `"log_level"` as the config spells it.
const LOG_LEVELS: &[(&str, LogLevel)] = &[
    ("trace", LogLevel::Trace),
    ("debug", LogLevel::Debug),
    ("info", LogLevel::Info),
    ("warn", LogLevel::Warn),
    ("error", LogLevel::Error),
    ("critical", LogLevel::Critical),
];

/// `"on_invalid_config"` as the config spells it.
const ON_INVALID_CONFIG: &[&str] = &["refuse", PASS_THROUGH];
/// The `on_invalid_config` value that asks for the pass-through plan.
pub const PASS_THROUGH: &str = "pass_through";

/// Checks a config and builds its plan, or returns every error found.
pub fn validate(config: &PluginConfig) -> Result<Plan, Vec<ConfigError>> {
    let mut checker = Checker::default();
    match checker.plugin(config) {
        Some(plan) if checker.errors.is_empty() => Ok(plan),
        _ => Err(checker.errors),
    }
}

/// What a route hands its destinations: its name (for their metric names), what they inherit
/// unless they have their own, and the version whose weight its ramp sets.
struct RouteDefaults<'a> {
    name: &'a str,
    timeout_ms: Option<u64>,
    retries: Option<&'a RetryHeaders>,
    fault: Option<&'a Fault>,
    ramp_version: Option<&'a str>,
}

#[derive(Default)]
struct Checker {
    errors: Vec<ConfigError>,
    /// The headers the filter writes, which no header of a route may read from the client.
    owned_headers: Vec<String>,
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_NAME_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// RFC 9110 token characters: what a header name or method may hold.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The names of the fields given, from `(name, given)` pairs.
fn given(fields: &[(&'static str, bool)]) -> Vec<&'static str> {
    fields
        .iter()
        .filter(|(_, given)| *given)
        .map(|(name, _)| *name)
        .collect()
}

impl Checker {
    fn error(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.to_string(),
            message: message.into(),
        });
    }

    fn header_name(&mut self, name: &str, path: &str, allow_pseudo: bool) -> Option<String> {
        let bare = match name.strip_prefix(':') {
            Some(bare) if allow_pseudo => bare,
            _ => name,
        };
        if !is_token(bare) {
            self.error(path, format!("expected an HTTP header name, got {name:?}"));
            return None;
        }
        Some(name.to_ascii_lowercase())
    }

    fn regex(&mut self, pattern: &str, path: &str) -> Option<WholeValueRegex> {
        if pattern.len() > MAX_REGEX_LEN {
            self.error(
                path,
                format!("regex is longer than {MAX_REGEX_LEN} characters"),
            );
            return None;
        }
        // Anchored: Envoy's and Istio's regex matches are whole-value matches.
        let anchored = format!("^(?:{pattern})$");
        match RegexBuilder::new(&anchored)
            .size_limit(MAX_REGEX_COMPILED_BYTES)
            .nest_limit(MAX_REGEX_NESTING)
            .build()
        {
            Ok(regex) => Some(WholeValueRegex::new(pattern, regex)),
            Err(error) => {
                let first_line = error.to_string();
                let first_line = first_line.lines().last().unwrap_or("").trim().to_string();
                self.error(path, format!("invalid regex {pattern:?}: {first_line}"));
                None
            }
        }
    }

    fn timeout(&mut self, text: &str, path: &str) -> Option<u64> {
        match parse_timeout_ms(text) {
            Ok(millis) => Some(millis),
            Err(message) => {
                self.error(path, message);
                None
            }
        }
    }

    /// One of the `allowed` spellings, or `default` when the field is left out.
    fn keyword<T: Copy>(
        &mut self,
        given: Option<&str>,
        path: &str,
        allowed: &[(&str, T)],
        default: T,
    ) -> Option<T> {
        let Some(given) = given else {
            return Some(default);
        };
        let found = allowed
            .iter()
            .find(|(spelling, _)| *spelling == given)
            .map(|(_, value)| *value);
        if found.is_none() {
            let spellings: Vec<String> = allowed
                .iter()
                .map(|(spelling, _)| format!("{spelling:?}"))
                .collect();
            self.error(
                path,
                format!("expected one of {}, got {given:?}", spellings.join(", ")),
            );
        }
        found
    }

    fn plugin(&mut self, config: &PluginConfig) -> Option<Plan> {
        let version_header = match &config.version_header {
            Some(name) => self.header_name(name, "version_header", false),
            None => Some(DEFAULT_VERSION_HEADER.to_string()),
        };
        let cluster_header = match &config.cluster_header {
            Some(name) => self.header_name(name, "cluster_header", false),
            None => Some(DEFAULT_CLUSTER_HEADER.to_string()),
        };
        self.owned_headers = [&version_header, &cluster_header]
            .into_iter()
            .flatten()
            .cloned()
            .chain(
                [
                    DEADLINE_HEADER,
                    MAX_RETRIES_HEADER,
                    RETRY_ON_HEADER,
                    PER_TRY_TIMEOUT_HEADER,
                    GRPC_RETRY_ON_HEADER,
                ]
                .map(str::to_string),
            )
            .collect();
        if let (Some(version), Some(cluster)) = (&version_header, &cluster_header) {
            if version == cluster {
                self.error(
                    "cluster_header",
                    format!("must differ from version_header (both are {version:?})"),
                );
            }
            for (field, name) in [("version_header", version), ("cluster_header", cluster)] {
                if name == DEADLINE_HEADER {
                    self.error(
                        field,
                        format!("{DEADLINE_HEADER} is Envoy's deadline header"),
                    );
                }
            }
        }
        let routes = match &config.routes {
            Some(routes) => self.routes(routes),
            None => {
                self.error("routes", "required: a non-empty list of routes");
                None
            }
        };
        let metrics = self.keyword(
            config.metrics.as_deref(),
            "metrics",
            METRICS_MODES,
            MetricsMode::default(),
        );
        let log_level = self.keyword(
            config.log_level.as_deref(),
            "log_level",
            LOG_LEVELS,
            LogLevel::default(),
        );
        // Only checked here: it matters once a config is refused (config::pass_through).
        if let Some(given) = config.on_invalid_config.as_deref() {
            if !ON_INVALID_CONFIG.contains(&given) {
                self.error(
                    "on_invalid_config",
                    format!(r#"expected one of "refuse", "{PASS_THROUGH}", got {given:?}"#),
                );
            }
        }
        Some(Plan {
            version_header: version_header?,
            cluster_header: cluster_header?,
            routes: crate::plan::RouteTable::new(routes?),
            metrics: metrics?,
            log_level: log_level?,
            pass_through: false,
        })
    }

    fn routes(&mut self, configs: &[RouteConfig]) -> Option<Vec<Route>> {
        if configs.is_empty() {
            self.error("routes", "expected at least one route");
            return None;
        }
        // A config over the size limits is refused with the limit alone, before its routes are
        // compiled: compiling them is what the limits keep within the VM's means.
        let too_large = crate::limits::check_counts(
            configs
                .iter()
                .map(|route| route.destinations.as_ref().map_or(0, Vec::len)),
        );
        if !too_large.is_empty() {
            self.errors.extend(too_large);
            return None;
        }
        let mut names = HashSet::new();
        let mut routes = Vec::with_capacity(configs.len());
        for (index, config) in configs.iter().enumerate() {
            let path = format!("routes[{index}]");
            if let Some(route) = self.route(config, &path) {
                if !names.insert(route.name.clone()) {
                    self.error(
                        &join(&path, "name"),
                        format!("duplicate route name {:?}", route.name),
                    );
                }
                routes.push(route);
            }
        }
        (routes.len() == configs.len()).then_some(routes)
    }

    fn route(&mut self, config: &RouteConfig, path: &str) -> Option<Route> {
        let name = match &config.name {
            Some(name) => self.name(name, &join(path, "name")),
            None => {
                self.error(&join(path, "name"), "required");
                None
            }
        };
        let matcher = match &config.matcher {
            Some(matcher) => self.route_match(matcher, &join(path, "match")),
            None => Some(RouteMatch::default()),
        };
        let timeout = match &config.timeout {
            Some(text) => self.timeout(text, &join(path, "timeout")).map(Some),
            None => Some(None),
        };
        let guard = match &config.guard {
            Some(guard) => self.guard(guard, &join(path, "guard")).map(Some),
            None => Some(None),
        };
        let retries = match &config.retries {
            Some(retries) => self.retries(retries, &join(path, "retries")).map(Some),
            None => Some(None),
        };
        let fault = match &config.fault {
            Some(fault) => self.fault(fault, &join(path, "fault")).map(Some),
            None => Some(None),
        };
        let destinations_path = join(path, "destinations");
        // The ramped version's weight is the ramp's: its destination has none of its own.
        let ramp_version = config
            .ramp
            .as_ref()
            .and_then(|ramp| ramp.version.as_deref());
        let defaults = RouteDefaults {
            name: name.as_deref().unwrap_or(""),
            timeout_ms: timeout.flatten(),
            retries: retries.as_ref().and_then(Option::as_ref),
            fault: fault.as_ref().and_then(Option::as_ref),
            ramp_version,
        };
        let destinations = match &config.destinations {
            Some(destinations) => self.destinations(destinations, &destinations_path, &defaults),
            None => {
                self.error(
                    &destinations_path,
                    "required: a non-empty list of destinations",
                );
                None
            }
        };
        let ramp = match &config.ramp {
            Some(ramp) => self
                .ramp(
                    ramp,
                    &join(path, "ramp"),
                    config.destinations.as_deref(),
                    destinations.as_deref(),
                )
                .map(Some),
            None => Some(None),
        };
        let sticky = match &config.sticky {
            Some(sticky) => self.sticky(sticky, &join(path, "sticky")).map(Some),
            None => Some(None),
        };
        let override_header = match &config.override_header {
            Some(header) => self
                .override_header(header, &join(path, "override_header"), &destinations)
                .map(Some),
            None => Some(None),
        };
        let (name, matcher, _, guard, _, _, mut destinations, ramp, sticky, override_header) = (
            name?,
            matcher?,
            timeout?,
            guard?,
            retries?,
            fault?,
            destinations?,
            ramp?,
            sticky?,
            override_header?,
        );
        if let Some(ramp) = &ramp {
            if let Some(ramped) = destinations.get_mut(ramp.destination) {
                ramped.weight = ramp.from;
            }
        }
        Some(Route {
            metric_names: RouteMetricNames::new(&name),
            name,
            matcher,
            destinations,
            guard,
            sticky,
            override_header,
            ramp,
        })
    }

    /// Whether exactly one of the `(name, given)` fields is given; if not, an error naming
    /// them and those given.
    fn exactly_one(&mut self, path: &str, fields: &[(&'static str, bool)]) -> bool {
        let given = given(fields);
        if given.len() == 1 {
            return true;
        }
        let names: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
        let got = if given.is_empty() {
            "none".to_string()
        } else {
            given.join(", ")
        };
        self.error(
            path,
            format!("expected exactly one of {}; got {got}", names.join(", ")),
        );
        false
    }

    /// A required field: `check`ed when given, else an error saying what belongs there.
    fn required<V: ?Sized, T>(
        &mut self,
        value: Option<&V>,
        path: &str,
        expected: &str,
        check: impl FnOnce(&mut Self, &V) -> Option<T>,
    ) -> Option<T> {
        match value {
            Some(value) => check(self, value),
            None => {
                self.error(path, format!("required: {expected}"));
                None
            }
        }
    }

    /// The value, or its error reported at `path`.
    fn reported<T>(&mut self, result: Result<T, String>, path: &str) -> Option<T> {
        result.map_err(|message| self.error(path, message)).ok()
    }

    /// A header a route reads from the client: a valid name, not a pseudo-header, and none
    /// of the headers the filter writes (a client could otherwise choose through them).
    fn client_header(&mut self, name: &str, path: &str) -> Option<String> {
        let name = self.header_name(name, path, false)?;
        if self.owned_headers.contains(&name) {
            self.error(
                path,
                format!("{name} is a header the filter writes; choose another"),
            );
            return None;
        }
        Some(name)
    }

    fn sticky(&mut self, config: &StickyConfig, path: &str) -> Option<Sticky> {
        let key = match (&config.header, &config.cookie) {
            (Some(header), None) => self
                .client_header(header, &join(path, "header"))
                .map(StickyKey::Header),
            (None, Some(cookie)) => {
                if is_token(cookie) {
                    Some(StickyKey::Cookie(cookie.clone()))
                } else {
                    self.error(
                        &join(path, "cookie"),
                        format!("expected a cookie name (an HTTP token), got {cookie:?}"),
                    );
                    None
                }
            }
            (header, cookie) => {
                self.exactly_one(
                    path,
                    &[("header", header.is_some()), ("cookie", cookie.is_some())],
                );
                None
            }
        };
        let set_cookie = match (&config.set_cookie, &key) {
            (None, _) => Some(None),
            (Some(set_cookie), Some(StickyKey::Cookie(cookie))) => {
                let max_age_path = join(&join(path, "set_cookie"), "max_age");
                let max_age = match &set_cookie.max_age {
                    Some(text) => self.cookie_max_age(text, &max_age_path),
                    None => {
                        self.error(&max_age_path, "required: a duration such as \"24h\"");
                        None
                    }
                };
                max_age.map(|seconds| Some(SetCookie::new(cookie, seconds)))
            }
            (Some(_), Some(StickyKey::Header(_))) => {
                self.error(
                    &join(path, "set_cookie"),
                    "only with a cookie key: the filter cannot make a client send a header",
                );
                None
            }
            (Some(_), None) => None,
        };
        Some(Sticky {
            key: key?,
            set_cookie: set_cookie?,
        })
    }

    /// A cookie's `Max-Age`, in seconds.
    fn cookie_max_age(&mut self, text: &str, path: &str) -> Option<u64> {
        let millis = match parse_duration_ms(text, COOKIE_MAX_AGE) {
            Ok(millis) => millis,
            Err(message) => {
                self.error(path, message);
                return None;
            }
        };
        if millis % 1_000 != 0 {
            self.error(
                path,
                format!("{text:?} is not a whole number of seconds (Max-Age counts seconds)"),
            );
            return None;
        }
        Some(millis / 1_000)
    }

    fn override_header(
        &mut self,
        header: &str,
        path: &str,
        destinations: &Option<Vec<Destination>>,
    ) -> Option<String> {
        let name = self.client_header(header, path)?;
        let unknown_is_a_version = destinations
            .iter()
            .flatten()
            .any(|destination| destination.version == UNKNOWN_VERSION);
        if unknown_is_a_version {
            self.error(
                path,
                format!(
                    "overrides naming no version are counted as version {UNKNOWN_VERSION:?}, \
                     which this route has: rename that version"
                ),
            );
            return None;
        }
        Some(name)
    }

    /// The ramp, named among the route's `configs`; every field is checked even when the
    /// destinations were refused (`destinations` is `None`).
    fn ramp(
        &mut self,
        config: &RampConfig,
        path: &str,
        configs: Option<&[DestinationConfig]>,
        destinations: Option<&[Destination]>,
    ) -> Option<Ramp> {
        let version_path = join(path, "version");
        let destination = match (&config.version, configs) {
            (Some(_), None) => None,
            (Some(version), Some(configs)) => {
                let found = configs
                    .iter()
                    .position(|destination| destination.version.as_ref() == Some(version));
                if found.is_none() {
                    let versions: Vec<&str> = configs
                        .iter()
                        .filter_map(|d| d.version.as_deref())
                        .collect();
                    self.error(
                        &version_path,
                        format!(
                            "expected one of the route's versions ({}), got {version:?}",
                            versions.join(", ")
                        ),
                    );
                }
                found
            }
            (None, _) => {
                self.error(&version_path, "required: the version whose weight moves");
                None
            }
        };
        let weight_expected = format!("an integer from 0 to {MAX_WEIGHT}");
        let from_path = join(path, "from");
        let from = self.required(
            config.from.as_ref(),
            &from_path,
            &weight_expected,
            |c, v| c.weight(v, &from_path),
        );
        let to_path = join(path, "to");
        let to = self.required(config.to.as_ref(), &to_path, &weight_expected, |c, v| {
            c.weight(v, &to_path)
        });
        let start_path = join(path, "start");
        let start = self.required(
            config.start.as_deref(),
            &start_path,
            "an RFC 3339 time such as \"2026-12-01T10:00:00Z\"",
            |c, text| c.reported(parse_rfc3339_ms(text), &start_path),
        );
        let duration_path = join(path, "duration");
        let duration = self.required(
            config.duration.as_deref(),
            &duration_path,
            "a duration such as \"30m\"",
            |c, text| c.reported(parse_duration_ms(text, RAMP_DURATION), &duration_path),
        );
        let steps = match &config.steps {
            Some(value) => self
                .integer_in(value, &join(path, "steps"), (1, MAX_WEIGHT))
                .map(Some),
            None => Some(None),
        };
        let (destinations, destination, from, to) = (destinations?, destination?, from?, to?);
        let others: u64 = destinations
            .iter()
            .enumerate()
            .filter(|(index, _)| *index != destination)
            .map(|(_, d)| u64::from(d.weight))
            .sum();
        if others == 0 && from.min(to) == 0 {
            self.error(
                path,
                "the other versions' weights add up to 0, so the route would have no weight \
                 while the ramp is at 0",
            );
            return None;
        }
        Some(Ramp {
            destination,
            from,
            to,
            start_ms: start?,
            duration_ms: duration?,
            steps: steps?,
        })
    }

    fn name(&mut self, text: &str, path: &str) -> Option<String> {
        if !is_name(text) {
            self.error(
                path,
                format!("expected 1-{MAX_NAME_LEN} characters of [A-Za-z0-9_-], got {text:?}"),
            );
            return None;
        }
        Some(text.to_string())
    }

    fn route_match(&mut self, config: &MatchConfig, path: &str) -> Option<RouteMatch> {
        let mut ok = true;
        let given = given(&[
            ("prefix", config.prefix.is_some()),
            ("exact", config.exact.is_some()),
            ("regex", config.regex.is_some()),
        ]);
        if given.len() > 1 {
            self.error(
                path,
                format!(
                    "at most one of prefix, exact, regex; got {}",
                    given.join(", ")
                ),
            );
            ok = false;
        }
        let mut path_match = None;
        if let Some(prefix) = &config.prefix {
            path_match = self
                .path_literal(prefix, &join(path, "prefix"))
                .map(PathMatch::Prefix);
            ok &= path_match.is_some();
        }
        if let Some(exact) = &config.exact {
            path_match = self
                .path_literal(exact, &join(path, "exact"))
                .map(PathMatch::Exact);
            ok &= path_match.is_some();
        }
        if let Some(pattern) = &config.regex {
            path_match = self
                .regex(pattern, &join(path, "regex"))
                .map(PathMatch::Regex);
            ok &= path_match.is_some();
        }
        let mut methods = Vec::new();
        if let Some(given_methods) = &config.methods {
            let methods_path = join(path, "methods");
            if given_methods.is_empty() {
                self.error(
                    &methods_path,
                    "expected at least one method, or no methods field",
                );
                ok = false;
            }
            for (index, method) in given_methods.iter().enumerate() {
                if is_token(method) && !method.bytes().any(|b| b.is_ascii_lowercase()) {
                    methods.push(method.clone());
                } else {
                    self.error(
                        &format!("{methods_path}[{index}]"),
                        format!(
                            "expected an upper-case HTTP method such as \"GET\", got {method:?}"
                        ),
                    );
                    ok = false;
                }
            }
        }
        let mut headers = Vec::new();
        for (index, header) in config.headers.iter().flatten().enumerate() {
            match self.header_match(header, &format!("{path}.headers[{index}]")) {
                Some(header) => headers.push(header),
                None => ok = false,
            }
        }
        ok.then_some(RouteMatch {
            path: path_match,
            methods,
            headers,
        })
    }

    fn path_literal(&mut self, text: &str, path: &str) -> Option<String> {
        if !text.starts_with('/') {
            self.error(
                path,
                format!("expected a path starting with \"/\", got {text:?}"),
            );
            return None;
        }
        Some(text.to_string())
    }

    fn header_match(&mut self, config: &HeaderMatchConfig, path: &str) -> Option<HeaderMatch> {
        let name = match &config.name {
            Some(name) => self.header_name(name, &join(path, "name"), true),
            None => {
                self.error(&join(path, "name"), "required");
                None
            }
        };
        let one_rule = self.exactly_one(
            path,
            &[
                ("exact", config.exact.is_some()),
                ("prefix", config.prefix.is_some()),
                ("regex", config.regex.is_some()),
                ("present", config.present.is_some()),
            ],
        );
        if !one_rule {
            return None;
        }
        let rule = match (&config.exact, &config.prefix, &config.regex, config.present) {
            (Some(exact), _, _, _) => Some(HeaderRule::Exact(exact.clone())),
            (_, Some(prefix), _, _) => Some(HeaderRule::Prefix(prefix.clone())),
            (_, _, Some(pattern), _) => self
                .regex(pattern, &join(path, "regex"))
                .map(HeaderRule::Regex),
            (_, _, _, Some(true)) => Some(HeaderRule::Present),
            (_, _, _, present) => {
                let got = present.map_or("nothing".to_string(), |flag| flag.to_string());
                self.error(&join(path, "present"), format!("expected true, got {got}"));
                None
            }
        };
        Some(HeaderMatch {
            name: name?,
            rule: rule?,
        })
    }

    fn destinations(
        &mut self,
        configs: &[DestinationConfig],
        path: &str,
        route: &RouteDefaults<'_>,
    ) -> Option<Vec<Destination>> {
        if configs.is_empty() {
            self.error(path, "expected at least one destination");
            return None;
        }
        let mut versions = HashSet::new();
        let mut destinations = Vec::with_capacity(configs.len());
        for (index, config) in configs.iter().enumerate() {
            let destination_path = format!("{path}[{index}]");
            if let Some(destination) = self.destination(config, &destination_path, route) {
                if !versions.insert(destination.version.clone()) {
                    self.error(
                        &join(&destination_path, "version"),
                        format!("duplicate version {:?} in this route", destination.version),
                    );
                }
                destinations.push(destination);
            }
        }
        if destinations.len() != configs.len() {
            return None;
        }
        let total: u64 = destinations.iter().map(|d| u64::from(d.weight)).sum();
        // With a ramp, the route's ramp checks the weights it moves.
        if total == 0 && route.ramp_version.is_none() {
            self.error(
                path,
                "the weights add up to 0; at least one must be above 0",
            );
            return None;
        }
        Some(destinations)
    }

    fn destination(
        &mut self,
        config: &DestinationConfig,
        path: &str,
        route: &RouteDefaults<'_>,
    ) -> Option<Destination> {
        let ramped =
            route.ramp_version.is_some() && config.version.as_deref() == route.ramp_version;
        let version = match &config.version {
            Some(version) => self.name(version, &join(path, "version")),
            None => {
                self.error(&join(path, "version"), "required");
                None
            }
        };
        let cluster = match &config.cluster {
            Some(cluster) => self.cluster(cluster, &join(path, "cluster")).map(Some),
            None => Some(None),
        };
        let weight = match &config.weight {
            Some(_) if ramped => {
                self.error(
                    &join(path, "weight"),
                    "this version's weight is the route's ramp's; leave it out",
                );
                None
            }
            // The ramp's `from`, filled in once the ramp is checked.
            None if ramped => Some(0),
            Some(weight) => self.weight(weight, &join(path, "weight")),
            None => {
                self.error(
                    &join(path, "weight"),
                    format!("required: an integer from 0 to {MAX_WEIGHT}"),
                );
                None
            }
        };
        let timeout = match &config.timeout {
            Some(text) => self.timeout(text, &join(path, "timeout")).map(Some),
            None => Some(None),
        };
        let retries = match &config.retries {
            Some(retries) => self.retries(retries, &join(path, "retries")).map(Some),
            None => Some(None),
        };
        let fault = match &config.fault {
            Some(fault) => self.fault(fault, &join(path, "fault")).map(Some),
            None => Some(None),
        };
        let (version, cluster, weight, timeout, retries, fault) =
            (version?, cluster?, weight?, timeout?, retries?, fault?);
        let deadline_ms = timeout.or(route.timeout_ms);
        Some(Destination {
            metric_names: DestinationMetricNames::new(route.name, &version),
            sticky_seed: version_seed(&version),
            version,
            cluster,
            weight,
            deadline_ms,
            deadline_header_value: deadline_ms.map(|ms| ms.to_string()),
            retries: retries.or_else(|| route.retries.cloned()),
            fault: fault.as_ref().or(route.fault).map(FaultPlan::new),
        })
    }

    fn fault(&mut self, config: &FaultConfig, path: &str) -> Option<Fault> {
        if config.abort.is_none() && config.delay.is_none() {
            self.error(path, "expected at least one of abort, delay");
            return None;
        }
        let abort = match &config.abort {
            Some(abort) => self.abort(abort, &join(path, "abort")).map(Some),
            None => Some(None),
        };
        let delay = match &config.delay {
            Some(delay) => self.delay(delay, &join(path, "delay")).map(Some),
            None => Some(None),
        };
        Some(Fault {
            abort: abort?,
            delay: delay?,
        })
    }

    fn abort(&mut self, config: &AbortConfig, path: &str) -> Option<Abort> {
        let status_path = join(path, "status");
        let status = match &config.status {
            Some(value) => self.integer_in(value, &status_path, (200, 599)),
            None => {
                self.error(&status_path, "required: an HTTP status from 200 to 599");
                None
            }
        };
        let basis_points = self.percent(config.percent.as_ref(), &join(path, "percent"));
        Some(Abort {
            status: u16::try_from(status?).ok()?,
            basis_points: basis_points?,
        })
    }

    fn delay(&mut self, config: &DelayConfig, path: &str) -> Option<Delay> {
        let fixed_path = join(path, "fixed");
        let delay_ms = match &config.fixed {
            Some(text) => self.timeout(text, &fixed_path),
            None => {
                self.error(&fixed_path, "required: a duration such as \"50ms\"");
                None
            }
        };
        let basis_points = self.percent(config.percent.as_ref(), &join(path, "percent"));
        Some(Delay {
            delay_ms: delay_ms?,
            basis_points: basis_points?,
        })
    }

    /// A required percentage from 0 to 100 with at most two decimals, in hundredths of a
    /// percent.
    fn percent(&mut self, value: Option<&Value>, path: &str) -> Option<u32> {
        let Some(value) = value else {
            self.error(path, "required: a percentage from 0 to 100");
            return None;
        };
        self.basis_points(value, path, 100)
    }

    /// A percentage from 0 to `max_percent` with at most two decimals, in hundredths of a
    /// percent. (The bound is a whole number: formatting a float would link in the float
    /// printing code, some 13 KB of the module, for one message.)
    fn basis_points(&mut self, value: &Value, path: &str, max_percent: u32) -> Option<u32> {
        let percent = self.number_in(
            value,
            path,
            (0.0, f64::from(max_percent)),
            &format!("a percentage from 0 to {max_percent} with at most two decimals"),
        )?;
        let basis_points = (percent * 100.0).round();
        if (basis_points - percent * 100.0).abs() > 1e-6 {
            self.error(
                path,
                format!(
                    "expected a percentage with at most two decimals, got {}",
                    show(value)
                ),
            );
            return None;
        }
        Some(basis_points as u32)
    }

    /// A number within `range`, as a float (Istio hands every number over as a double).
    fn number_in(
        &mut self,
        value: &Value,
        path: &str,
        range: (f64, f64),
        what: &str,
    ) -> Option<f64> {
        let number = value
            .as_f64()
            .filter(|number| (range.0..=range.1).contains(number));
        if number.is_none() {
            self.error(path, format!("expected {what}, got {}", show(value)));
        }
        number
    }

    /// A whole number within `range` (`70.0` reads as 70).
    fn integer_in(&mut self, value: &Value, path: &str, range: (u32, u32)) -> Option<u32> {
        let (low, high) = range;
        let integer = value
            .as_f64()
            .filter(|number| {
                number.fract() == 0.0 && (f64::from(low)..=f64::from(high)).contains(number)
            })
            .map(|number| number as u32);
        if integer.is_none() {
            self.error(
                path,
                format!(
                    "expected an integer from {low} to {high}, got {}",
                    show(value)
                ),
            );
        }
        integer
    }

    /// A duration from `min_ms` to `max_ms`, or `default_ms` when left out.
    fn bounded_duration(
        &mut self,
        text: Option<&str>,
        path: &str,
        (min_ms, max_ms): (u64, u64),
        default_ms: u64,
    ) -> Option<u64> {
        let Some(text) = text else {
            return Some(default_ms);
        };
        let millis = self.timeout(text, path)?;
        if !(min_ms..=max_ms).contains(&millis) {
            self.error(
                path,
                format!(
                    "{text:?} is outside {} to {}",
                    show_ms(min_ms),
                    show_ms(max_ms)
                ),
            );
            return None;
        }
        Some(millis)
    }

    fn guard(&mut self, config: &GuardConfig, path: &str) -> Option<Guard> {
        let ratio_path = join(path, "max_error_ratio");
        let max_error_ratio = match &config.max_error_ratio {
            Some(value) => self.number_in(value, &ratio_path, (0.0, 1.0), "a number from 0 to 1"),
            None => {
                self.error(&ratio_path, "required: a number from 0 to 1");
                None
            }
        };
        let min_requests = match &config.min_requests {
            Some(value) => self.integer_in(value, &join(path, "min_requests"), (1, 1_000_000)),
            None => Some(DEFAULT_GUARD_MIN_REQUESTS),
        };
        let window_ms = self.bounded_duration(
            config.window.as_deref(),
            &join(path, "window"),
            (1_000, 3_600_000),
            DEFAULT_GUARD_WINDOW_MS,
        );
        let cooldown_ms = self.bounded_duration(
            config.cooldown.as_deref(),
            &join(path, "cooldown"),
            (1_000, 86_400_000),
            DEFAULT_GUARD_COOLDOWN_MS,
        );
        let errors = match &config.errors {
            Some(names) => self.error_classes(names, &join(path, "errors")),
            None => Some(ErrorClasses::default()),
        };
        let probe_basis_points = match &config.probe_percent {
            Some(value) => self.basis_points(
                value,
                &join(path, "probe_percent"),
                MAX_PROBE_BASIS_POINTS / 100,
            ),
            None => Some(0),
        };
        Some(Guard {
            max_error_ratio: max_error_ratio?,
            min_requests: min_requests?,
            window_ms: window_ms?,
            cooldown_ms: cooldown_ms?,
            errors: errors?,
            probe_basis_points: probe_basis_points?,
        })
    }

    fn error_classes(&mut self, names: &[String], path: &str) -> Option<ErrorClasses> {
        if names.is_empty() {
            self.error(
                path,
                "expected at least one of \"5xx\", \"timeout\", \"reset\"",
            );
            return None;
        }
        let mut classes = ErrorClasses {
            server_error: false,
            timeout: false,
            reset: false,
        };
        let mut ok = true;
        for (index, name) in names.iter().enumerate() {
            match name.as_str() {
                "5xx" => classes.server_error = true,
                "timeout" => classes.timeout = true,
                "reset" => classes.reset = true,
                other => {
                    self.error(
                        &format!("{path}[{index}]"),
                        format!("expected one of \"5xx\", \"timeout\", \"reset\", got {other:?}"),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(classes)
    }

    fn retries(&mut self, config: &RetriesConfig, path: &str) -> Option<RetryHeaders> {
        let attempts_path = join(path, "attempts");
        let attempts = match &config.attempts {
            Some(value) => self.integer_in(value, &attempts_path, (0, MAX_RETRIES)),
            None => {
                self.error(
                    &attempts_path,
                    format!("required: an integer from 0 to {MAX_RETRIES}"),
                );
                None
            }
        };
        let per_try_timeout = match &config.per_try_timeout {
            Some(text) => self
                .timeout(text, &join(path, "per_try_timeout"))
                .map(|ms| Some(ms.to_string())),
            None => Some(None),
        };
        let retry_on_path = join(path, "retry_on");
        let retry_on = match &config.retry_on {
            Some(text) => self.conditions(text, &retry_on_path, RETRY_ON),
            None => {
                self.error(
                    &retry_on_path,
                    "required: Envoy retry conditions, e.g. \"5xx,reset\"",
                );
                None
            }
        };
        let grpc_retry_on = match &config.grpc_retry_on {
            Some(text) => self
                .conditions(text, &join(path, "grpc_retry_on"), GRPC_RETRY_ON)
                .map(Some),
            None => Some(None),
        };
        Some(RetryHeaders {
            max_retries: attempts?.to_string(),
            retry_on: retry_on?,
            per_try_timeout_ms: per_try_timeout?,
            grpc_retry_on: grpc_retry_on?,
        })
    }

    /// A comma-separated list of Envoy's retry conditions, as Envoy's header takes it.
    fn conditions(&mut self, text: &str, path: &str, allowed: &[&str]) -> Option<String> {
        let conditions: Vec<&str> = text.split(',').map(str::trim).collect();
        let unknown: Vec<&str> = conditions
            .iter()
            .copied()
            .filter(|condition| !allowed.contains(condition))
            .collect();
        if !unknown.is_empty() {
            self.error(
                path,
                format!(
                    "unknown retry condition {:?}; expected a comma-separated list of {}",
                    unknown.join(","),
                    allowed.join(", ")
                ),
            );
            return None;
        }
        Some(conditions.join(","))
    }

    fn cluster(&mut self, text: &str, path: &str) -> Option<String> {
        // Written into a header: it must be a valid, non-empty header value.
        if text.is_empty() || text.len() > 255 || !text.bytes().all(|b| b.is_ascii_graphic()) {
            self.error(
                path,
                format!("expected 1-255 visible ASCII characters, got {text:?}"),
            );
            return None;
        }
        Some(text.to_string())
    }

    /// Any JSON value may arrive here: what is not an integer from 0 to [`MAX_WEIGHT`] is
    /// reported, with the value.
    fn weight(&mut self, value: &Value, path: &str) -> Option<u32> {
        self.integer_in(value, path, (0, MAX_WEIGHT))
    }
}

#[cfg(test)]
mod tests {
    //! The canary fields: sticky, override_header, ramp. (The other fields' checks are tested
    //! in `crate::config`, through `compile`.)
    use crate::config::compile;
    use crate::plan::{Plan, StickyKey};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// A route `r` with v1 (weight 100) and v2 (weight 0 unless the ramp has it), plus `fields`.
    fn route_with(fields: &str) -> String {
        let v2 = if fields.contains("\"ramp\"") {
            r#"{ "version": "v2" }"#
        } else {
            r#"{ "version": "v2", "weight": 0 }"#
        };
        format!(
            r#"{{ "routes": [ {{ "name": "r", {fields}
                 "destinations": [ {{ "version": "v1", "weight": 100 }}, {v2} ] }} ] }}"#
        )
    }

    fn compiled(fields: &str) -> Plan {
        compile(route_with(fields).as_bytes()).unwrap()
    }

    /// Every error of a whole config, which must be refused.
    fn refusal(json: &str) -> Vec<String> {
        match compile(json.as_bytes()) {
            Ok(_) => panic!("accepted: {json}"),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    /// Every error of route `r` with these fields.
    fn errors(fields: &str) -> Vec<String> {
        refusal(&route_with(fields))
    }

    const RAMP: &str = r#""ramp": { "version": "v2", "from": 0, "to": 50,
        "start": "2026-12-01T10:00:00Z", "duration": "30m", "steps": 10 },"#;

    #[test]
    fn the_issue_examples_compile() {
        let plan = compiled(
            r#""sticky": { "cookie": "session", "set_cookie": { "max_age": "24h" } },
               "override_header": "X-Canary-Version","#,
        );
        let route = &plan.routes[0];
        let sticky = route.sticky.as_ref().unwrap();
        assert!(matches!(&sticky.key, StickyKey::Cookie(name) if name == "session"));
        assert_eq!(
            sticky.set_cookie.as_ref().unwrap().value("k"),
            "session=k; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax"
        );
        assert_eq!(route.override_header.as_deref(), Some("x-canary-version"));

        let plan = compiled(r#""sticky": { "header": "X-User-Id" },"#);
        let sticky = plan.routes[0].sticky.as_ref().unwrap();
        assert!(matches!(&sticky.key, StickyKey::Header(name) if name == "x-user-id"));
        assert!(sticky.set_cookie.is_none());

        let plan = compiled(RAMP);
        let route = &plan.routes[0];
        let ramp = route.ramp.as_ref().unwrap();
        assert_eq!(
            (ramp.destination, ramp.from, ramp.to, ramp.steps),
            (1, 0, 50, Some(10))
        );
        assert_eq!(ramp.start_ms, 1_796_119_200_000);
        assert_eq!(ramp.duration_ms, 30 * 60 * 1000);
        assert_eq!(route.destinations[1].weight, 0, "the ramp's from");
        assert_eq!(route.configured_weights(), [100, 0]);
    }

    #[test]
    fn sticky_errors_name_their_field() {
        assert_eq!(
            errors(r#""sticky": {},"#),
            ["routes[0].sticky: expected exactly one of header, cookie; got none"]
        );
        assert_eq!(
            errors(r#""sticky": { "header": "a", "cookie": "b" },"#),
            ["routes[0].sticky: expected exactly one of header, cookie; got header, cookie"]
        );
        assert_eq!(
            errors(r#""sticky": { "header": "x-split-version" },"#),
            ["routes[0].sticky.header: x-split-version is a header the filter writes; choose another"]
        );
        assert_eq!(
            errors(r#""sticky": { "header": ":path" },"#),
            ["routes[0].sticky.header: expected an HTTP header name, got \":path\""]
        );
        assert_eq!(
            errors(r#""sticky": { "cookie": "a=b" },"#),
            ["routes[0].sticky.cookie: expected a cookie name (an HTTP token), got \"a=b\""]
        );
        assert_eq!(
            errors(r#""sticky": { "header": "x-user", "set_cookie": { "max_age": "1h" } },"#),
            ["routes[0].sticky.set_cookie: only with a cookie key: the filter cannot make a client send a header"]
        );
        assert_eq!(
            errors(r#""sticky": { "cookie": "s", "set_cookie": {} },"#),
            ["routes[0].sticky.set_cookie.max_age: required: a duration such as \"24h\""]
        );
        assert_eq!(
            errors(r#""sticky": { "cookie": "s", "set_cookie": { "max_age": "1.5s" } },"#),
            ["routes[0].sticky.set_cookie.max_age: \"1.5s\" is not a whole number of seconds (Max-Age counts seconds)"]
        );
        assert_eq!(
            errors(r#""sticky": { "cookie": "s", "set_cookie": { "max_age": "9601h" } },"#),
            ["routes[0].sticky.set_cookie.max_age: \"9601h\" is longer than the maximum of 9600h (400 days)"]
        );
        assert_eq!(
            errors(r#""sticky": { "cookie": "s", "set_cookie": { "maxage": "1h" } },"#),
            [
                "routes[0].sticky.set_cookie.maxage: unknown field; expected one of max_age; did you mean `max_age`?",
                "routes[0].sticky.set_cookie.max_age: required: a duration such as \"24h\"",
            ]
        );
    }

    #[test]
    fn override_header_errors_name_their_field() {
        assert_eq!(
            errors(r#""override_header": "x-envoy-upstream-rq-timeout-ms","#),
            ["routes[0].override_header: x-envoy-upstream-rq-timeout-ms is a header the filter writes; choose another"]
        );
        assert_eq!(
            errors(r#""override_header": "bad header","#),
            ["routes[0].override_header: expected an HTTP header name, got \"bad header\""]
        );
        let unknown = r#"{ "routes": [ { "name": "r", "override_header": "x-v",
            "destinations": [ { "version": "unknown", "weight": 1 } ] } ] }"#;
        let refused = refusal(unknown);
        assert_eq!(
            refused,
            ["routes[0].override_header: overrides naming no version are counted as version \"unknown\", which this route has: rename that version"]
        );
    }

    #[test]
    fn ramp_errors_name_their_field() {
        assert_eq!(
            errors(r#""ramp": {},"#),
            [
                "routes[0].destinations[1].weight: required: an integer from 0 to 1000000",
                "routes[0].ramp.version: required: the version whose weight moves",
                "routes[0].ramp.from: required: an integer from 0 to 1000000",
                "routes[0].ramp.to: required: an integer from 0 to 1000000",
                "routes[0].ramp.start: required: an RFC 3339 time such as \"2026-12-01T10:00:00Z\"",
                "routes[0].ramp.duration: required: a duration such as \"30m\"",
            ]
        );
        assert_eq!(
            errors(
                r#""ramp": { "version": "v3", "from": -1, "to": 1000001, "start": "2026-12-01",
                   "duration": "0.5s", "steps": 0 },"#
            ),
            [
                "routes[0].destinations[1].weight: required: an integer from 0 to 1000000",
                "routes[0].ramp.version: expected one of the route's versions (v1, v2), got \"v3\"",
                "routes[0].ramp.from: expected an integer from 0 to 1000000, got -1",
                "routes[0].ramp.to: expected an integer from 0 to 1000000, got 1000001",
                "routes[0].ramp.start: expected an RFC 3339 time such as \"2026-12-01T10:00:00Z\" or \"2026-12-01T11:00:00+01:00\", got \"2026-12-01\"",
                "routes[0].ramp.duration: \"0.5s\" is shorter than the minimum of 1s",
                "routes[0].ramp.steps: expected an integer from 1 to 1000000, got 0",
            ]
        );
        assert_eq!(
            errors(&RAMP.replace("30m", "8761h")),
            ["routes[0].ramp.duration: \"8761h\" is longer than the maximum of 8760h (a year)"]
        );
        assert_eq!(
            errors(&RAMP.replace("2026-12-01T10:00:00Z", "2026-02-30T10:00:00Z")),
            ["routes[0].ramp.start: \"2026-02-30T10:00:00Z\" is not a valid time of day and date"]
        );
    }

    #[test]
    fn the_ramped_version_takes_its_weight_from_the_ramp_only() {
        let with_weight = r#"{ "routes": [ { "name": "r", "ramp": { "version": "v2", "from": 0,
            "to": 5, "start": "2026-12-01T10:00:00Z", "duration": "1h" },
            "destinations": [ { "version": "v1", "weight": 1 }, { "version": "v2", "weight": 3 } ] } ] }"#;
        let refused = refusal(with_weight);
        assert_eq!(
            refused,
            ["routes[0].destinations[1].weight: this version's weight is the route's ramp's; leave it out"]
        );
        let nothing_else = r#"{ "routes": [ { "name": "r", "ramp": { "version": "v2", "from": 0,
            "to": 5, "start": "2026-12-01T10:00:00Z", "duration": "1h" },
            "destinations": [ { "version": "v1", "weight": 0 }, { "version": "v2" } ] } ] }"#;
        let refused = refusal(nothing_else);
        assert_eq!(
            refused,
            ["routes[0].ramp: the other versions' weights add up to 0, so the route would have no weight while the ramp is at 0"]
        );
        // From 5 to 10 with nothing else is a route that always has weight.
        assert!(compile(
            nothing_else
                .replace("\"from\": 0", "\"from\": 5")
                .as_bytes()
        )
        .is_ok());
    }
}
