//! The typed config ([`crate::config::PluginConfig`]) checked and compiled into a [`Plan`]:
//! names, header names, weights, durations, regexes, duplicates, header rules. Every error is
//! collected, each with its JSON path, so one refusal lists them all.

use crate::config::read::show;
use crate::config::{
    ConfigError, DestinationConfig, HeaderMatchConfig, MatchConfig, PluginConfig, RouteConfig,
    MAX_NAME_LEN,
};
use crate::duration::parse_timeout_ms;
use crate::metrics::DestinationMetricNames;
use crate::pick::WeightedRoundRobin;
use crate::plan::{
    Destination, HeaderMatch, HeaderRule, LogLevel, MetricsMode, PathMatch, Plan, Route,
    RouteMatch, WholeValueRegex, DEADLINE_HEADER, DEFAULT_CLUSTER_HEADER, DEFAULT_VERSION_HEADER,
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
            routes: routes?,
            metrics: metrics?,
            log_level: log_level?,
        })
    }

    fn routes(&mut self, configs: &[RouteConfig]) -> Option<Vec<Route>> {
        if configs.is_empty() {
            self.error("routes", "expected at least one route");
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
        let destinations_path = join(path, "destinations");
        let destinations = match &config.destinations {
            Some(destinations) => self.destinations(
                destinations,
                &destinations_path,
                name.as_deref().unwrap_or(""),
                timeout.flatten(),
            ),
            None => {
                self.error(
                    &destinations_path,
                    "required: a non-empty list of destinations",
                );
                None
            }
        };
        let (name, matcher, _, destinations) = (name?, matcher?, timeout?, destinations?);
        let weights: Vec<u32> = destinations.iter().map(|d| d.weight).collect();
        Some(Route {
            name,
            matcher,
            picker: WeightedRoundRobin::new(&weights),
            destinations,
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
    ) -> Option<Vec<Destination>> {
        if configs.is_empty() {
            self.error(path, "expected at least one destination");
            return None;
        }
        let mut versions = HashSet::new();
        let mut destinations = Vec::with_capacity(configs.len());
        for (index, config) in configs.iter().enumerate() {
            let destination_path = format!("{path}[{index}]");
            if let Some(destination) =
                self.destination(config, &destination_path, route_name, route_timeout_ms)
            {
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
        let (version, cluster, weight, timeout) = (version?, cluster?, weight?, timeout?);
        let deadline_ms = timeout.or(route_timeout_ms);
        Some(Destination {
            metric_names: DestinationMetricNames::new(route_name, &version),
            version,
            cluster,
            weight,
            deadline_ms,
            deadline_header_value: deadline_ms.map(|ms| ms.to_string()),
        })
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
