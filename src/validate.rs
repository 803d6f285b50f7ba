//! The typed config ([`crate::config::PluginConfig`]) checked and compiled into a [`Plan`]:
//! names, header names, weights, durations, regexes, duplicates, header rules. Every error is
//! collected, each with its JSON path, so one refusal lists them all.

use crate::config::read::show;
use crate::config::{
    AbortConfig, ConfigError, DelayConfig, DestinationConfig, FaultConfig, GuardConfig,
    HeaderMatchConfig, MatchConfig, PluginConfig, RetriesConfig, RouteConfig, MAX_NAME_LEN,
};
use crate::duration::parse_timeout_ms;
use crate::fault::{Abort, Delay, Fault, FaultPlan};
use crate::guard::{ErrorClasses, Guard, MAX_PROBE_BASIS_POINTS};
use crate::metrics::DestinationMetricNames;
use crate::pick::WeightedRoundRobin;
use crate::plan::{
    Destination, HeaderMatch, HeaderRule, LogLevel, MetricsMode, PathMatch, Plan, RetryHeaders,
    Route, RouteLive, RouteMatch, WholeValueRegex, DEADLINE_HEADER, DEFAULT_CLUSTER_HEADER,
    DEFAULT_VERSION_HEADER,
};
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

/// Checks a config and builds its plan, or returns every error found.
pub fn validate(config: &PluginConfig) -> Result<Plan, Vec<ConfigError>> {
    let mut checker = Checker::default();
    match checker.plugin(config) {
        Some(plan) if checker.errors.is_empty() => Ok(plan),
        _ => Err(checker.errors),
    }
}

#[derive(Default)]
struct Checker {
    errors: Vec<ConfigError>,
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
        Some(Plan {
            version_header: version_header?,
            cluster_header: cluster_header?,
            routes: crate::plan::RouteTable::new(routes?),
            metrics: metrics?,
            log_level: log_level?,
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
        let destinations = match &config.destinations {
            Some(destinations) => self.destinations(
                destinations,
                &destinations_path,
                name.as_deref().unwrap_or(""),
                timeout.flatten(),
                retries.as_ref().and_then(Option::as_ref),
                fault.as_ref().and_then(Option::as_ref),
            ),
            None => {
                self.error(
                    &destinations_path,
                    "required: a non-empty list of destinations",
                );
                None
            }
        };
        let (name, matcher, _, guard, _, _, destinations) = (
            name?,
            matcher?,
            timeout?,
            guard?,
            retries?,
            fault?,
            destinations?,
        );
        let weights: Vec<u32> = destinations.iter().map(|d| d.weight).collect();
        Some(Route {
            name,
            matcher,
            picker: WeightedRoundRobin::new(&weights),
            live: RouteLive::new(destinations.len()),
            destinations,
            guard,
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
        let given = given(&[
            ("exact", config.exact.is_some()),
            ("prefix", config.prefix.is_some()),
            ("regex", config.regex.is_some()),
            ("present", config.present.is_some()),
        ]);
        if given.len() != 1 {
            let got = if given.is_empty() {
                "none".to_string()
            } else {
                given.join(", ")
            };
            self.error(
                path,
                format!("expected exactly one of exact, prefix, regex, present; got {got}"),
            );
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
        route_name: &str,
        route_timeout_ms: Option<u64>,
        route_retries: Option<&RetryHeaders>,
        route_fault: Option<&Fault>,
    ) -> Option<Vec<Destination>> {
        if configs.is_empty() {
            self.error(path, "expected at least one destination");
            return None;
        }
        let mut versions = HashSet::new();
        let mut destinations = Vec::with_capacity(configs.len());
        for (index, config) in configs.iter().enumerate() {
            let destination_path = format!("{path}[{index}]");
            if let Some(destination) = self.destination(
                config,
                &destination_path,
                route_name,
                route_timeout_ms,
                route_retries,
                route_fault,
            ) {
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
        if total == 0 {
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
        route_name: &str,
        route_timeout_ms: Option<u64>,
        route_retries: Option<&RetryHeaders>,
        route_fault: Option<&Fault>,
    ) -> Option<Destination> {
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
        let deadline_ms = timeout.or(route_timeout_ms);
        Some(Destination {
            metric_names: DestinationMetricNames::new(route_name, &version),
            version,
            cluster,
            weight,
            deadline_ms,
            deadline_header_value: deadline_ms.map(|ms| ms.to_string()),
            retries: retries.or_else(|| route_retries.cloned()),
            fault: fault.as_ref().or(route_fault).map(FaultPlan::new),
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
        self.basis_points(value, path, 100.0)
    }

    /// A percentage from 0 to `max` with at most two decimals, in hundredths of a percent.
    fn basis_points(&mut self, value: &Value, path: &str, max: f64) -> Option<u32> {
        let percent = self.number_in(
            value,
            path,
            (0.0, max),
            &format!("a percentage from 0 to {max} with at most two decimals"),
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
                f64::from(MAX_PROBE_BASIS_POINTS) / 100.0,
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
        let weight = match value {
            Value::Number(number) => match number.as_u64() {
                Some(integer) => Some(integer),
                // Istio hands pluginConfig numbers over as doubles, so 70.0 must read as 70.
                None => number
                    .as_f64()
                    .filter(|float| float.fract() == 0.0 && (0.0..=1e9).contains(float))
                    .map(|float| float as u64),
            },
            _ => None,
        };
        let weight = weight
            .and_then(|weight| u32::try_from(weight).ok())
            .filter(|weight| *weight <= MAX_WEIGHT);
        if weight.is_none() {
            self.error(
                path,
                format!(
                    "expected an integer from 0 to {MAX_WEIGHT}, got {}",
                    show(value)
                ),
            );
        }
        weight
    }
}
