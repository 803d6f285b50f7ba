//! The plugin configuration as users write it (JSON: Envoy's `configuration` StringValue, or
//! Istio's `pluginConfig` Struct converted to JSON), checked field by field and compiled into a
//! [`Plan`].
//!
//! The JSON is walked by hand rather than through serde derive so that every error is reported,
//! not only the first, each with its JSON path (`routes[0].destinations[1].weight: ...`), and so
//! that an unknown field (a typo such as `wieght`) is an error in its own right.

use crate::duration::parse_timeout_ms;
use crate::metrics::DestinationMetricNames;
use crate::pick::WeightedRoundRobin;
use crate::plan::{
    Destination, HeaderMatch, HeaderRule, PathMatch, Plan, Route, RouteMatch, DEADLINE_HEADER,
    DEFAULT_CLUSTER_HEADER, DEFAULT_VERSION_HEADER,
};
use regex_lite::{Regex, RegexBuilder};
use serde_json::{Map, Value};
use std::collections::HashSet;
use std::fmt;

/// The longest route name or version: they become metric labels.
pub const MAX_NAME_LEN: usize = 64;
/// Limits that keep a regex from blowing up the module's memory. Matching itself is linear
/// in the input (regex-lite has no backtracking blow-up, as RE2).
const MAX_REGEX_LEN: usize = 1024;
const MAX_REGEX_COMPILED_BYTES: usize = 256 * 1024;
const MAX_REGEX_NESTING: u32 = 32;

/// One problem in a config, with the JSON path of the field it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// All the errors of a config, joined into one line for a log.
pub fn describe_errors(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Parses and validates a config, returning the plan or every error found.
pub fn compile(json: &[u8]) -> Result<Plan, Vec<ConfigError>> {
    let value: Value = serde_json::from_slice(json).map_err(|error| {
        vec![ConfigError {
            path: String::new(),
            message: format!("the configuration is not valid JSON: {error}"),
        }]
    })?;
    compile_value(&value)
}

/// Validates a config already parsed as JSON (the checker reads YAML into the same value).
pub fn compile_value(value: &Value) -> Result<Plan, Vec<ConfigError>> {
    let mut checker = Checker::default();
    let plan = checker.plugin(value);
    match plan {
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

/// How a JSON value reads in an error message: short, and never a whole document.
fn show(value: &Value) -> String {
    let text = match value {
        Value::Object(_) => "an object".to_string(),
        Value::Array(_) => "a list".to_string(),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    };
    if text.len() > 80 {
        let mut end = 77;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &text[..end])
    } else {
        text
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

impl Checker {
    fn error(&mut self, path: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.to_string(),
            message: message.into(),
        });
    }

    /// The value as an object whose keys are all in `allowed`; unknown keys are errors.
    fn object<'v>(
        &mut self,
        value: &'v Value,
        path: &str,
        allowed: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let Some(object) = value.as_object() else {
            self.error(path, format!("expected an object, got {}", show(value)));
            return None;
        };
        for key in object.keys() {
            if !allowed.contains(&key.as_str()) {
                self.error(
                    &join(path, key),
                    format!("unknown field; expected one of {}", allowed.join(", ")),
                );
            }
        }
        Some(object)
    }

    fn string<'v>(&mut self, value: &'v Value, path: &str) -> Option<&'v str> {
        let text = value.as_str();
        if text.is_none() {
            self.error(path, format!("expected a string, got {}", show(value)));
        }
        text
    }

    fn list<'v>(&mut self, value: &'v Value, path: &str) -> Option<&'v Vec<Value>> {
        let list = value.as_array();
        if list.is_none() {
            self.error(path, format!("expected a list, got {}", show(value)));
        }
        list
    }

    fn header_name(&mut self, value: &Value, path: &str, allow_pseudo: bool) -> Option<String> {
        let name = self.string(value, path)?;
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

    fn regex(&mut self, value: &Value, path: &str) -> Option<Regex> {
        let pattern = self.string(value, path)?;
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
            Ok(regex) => Some(regex),
            Err(error) => {
                let first_line = error.to_string();
                let first_line = first_line.lines().last().unwrap_or("").trim().to_string();
                self.error(path, format!("invalid regex {pattern:?}: {first_line}"));
                None
            }
        }
    }

    fn timeout(&mut self, value: &Value, path: &str) -> Option<u64> {
        let text = self.string(value, path)?;
        match parse_timeout_ms(text) {
            Ok(millis) => Some(millis),
            Err(message) => {
                self.error(path, message);
                None
            }
        }
    }

    fn plugin(&mut self, value: &Value) -> Option<Plan> {
        let object = self.object(value, "", &["version_header", "cluster_header", "routes"])?;
        let version_header = match object.get("version_header") {
            Some(value) => self.header_name(value, "version_header", false),
            None => Some(DEFAULT_VERSION_HEADER.to_string()),
        };
        let cluster_header = match object.get("cluster_header") {
            Some(value) => self.header_name(value, "cluster_header", false),
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
        let routes = match object.get("routes") {
            Some(value) => self.routes(value),
            None => {
                self.error("routes", "required: a non-empty list of routes");
                None
            }
        };
        Some(Plan {
            version_header: version_header?,
            cluster_header: cluster_header?,
            routes: routes?,
        })
    }

    fn routes(&mut self, value: &Value) -> Option<Vec<Route>> {
        let list = self.list(value, "routes")?;
        if list.is_empty() {
            self.error("routes", "expected at least one route");
            return None;
        }
        let mut names = HashSet::new();
        let mut routes = Vec::with_capacity(list.len());
        for (index, value) in list.iter().enumerate() {
            let path = format!("routes[{index}]");
            if let Some(route) = self.route(value, &path) {
                if !names.insert(route.name.clone()) {
                    self.error(
                        &join(&path, "name"),
                        format!("duplicate route name {:?}", route.name),
                    );
                }
                routes.push(route);
            }
        }
        (routes.len() == list.len()).then_some(routes)
    }

    fn route(&mut self, value: &Value, path: &str) -> Option<Route> {
        let object = self.object(value, path, &["name", "match", "destinations", "timeout"])?;
        let name = match object.get("name") {
            Some(value) => self.name(value, &join(path, "name")),
            None => {
                self.error(&join(path, "name"), "required");
                None
            }
        };
        let matcher = match object.get("match") {
            Some(value) => self.route_match(value, &join(path, "match")),
            None => Some(RouteMatch::default()),
        };
        let timeout = match object.get("timeout") {
            Some(value) => self.timeout(value, &join(path, "timeout")).map(Some),
            None => Some(None),
        };
        let destinations_path = join(path, "destinations");
        let destinations = match object.get("destinations") {
            Some(value) => self.destinations(
                value,
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

    fn name(&mut self, value: &Value, path: &str) -> Option<String> {
        let text = self.string(value, path)?;
        if !is_name(text) {
            self.error(
                path,
                format!("expected 1-{MAX_NAME_LEN} characters of [A-Za-z0-9_-], got {text:?}"),
            );
            return None;
        }
        Some(text.to_string())
    }

    fn route_match(&mut self, value: &Value, path: &str) -> Option<RouteMatch> {
        let object = self.object(
            value,
            path,
            &["prefix", "exact", "regex", "methods", "headers"],
        )?;
        let mut ok = true;
        let given: Vec<&str> = ["prefix", "exact", "regex"]
            .into_iter()
            .filter(|key| object.contains_key(*key))
            .collect();
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
        if let Some(value) = object.get("prefix") {
            path_match = self
                .path_literal(value, &join(path, "prefix"))
                .map(PathMatch::Prefix);
            ok &= path_match.is_some();
        }
        if let Some(value) = object.get("exact") {
            path_match = self
                .path_literal(value, &join(path, "exact"))
                .map(PathMatch::Exact);
            ok &= path_match.is_some();
        }
        if let Some(value) = object.get("regex") {
            path_match = self
                .regex(value, &join(path, "regex"))
                .map(PathMatch::Regex);
            ok &= path_match.is_some();
        }
        let mut methods = Vec::new();
        if let Some(value) = object.get("methods") {
            let methods_path = join(path, "methods");
            match self.list(value, &methods_path) {
                Some(list) => {
                    if list.is_empty() {
                        self.error(
                            &methods_path,
                            "expected at least one method, or no methods field",
                        );
                        ok = false;
                    }
                    for (index, value) in list.iter().enumerate() {
                        let method_path = format!("{methods_path}[{index}]");
                        match self.string(value, &method_path) {
                            Some(method)
                                if is_token(method)
                                    && !method.bytes().any(|b| b.is_ascii_lowercase()) =>
                            {
                                methods.push(method.to_string())
                            }
                            Some(method) => {
                                self.error(
                                    &method_path,
                                    format!("expected an upper-case HTTP method such as \"GET\", got {method:?}"),
                                );
                                ok = false;
                            }
                            None => ok = false,
                        }
                    }
                }
                None => ok = false,
            }
        }
        let mut headers = Vec::new();
        if let Some(value) = object.get("headers") {
            let headers_path = join(path, "headers");
            match self.list(value, &headers_path) {
                Some(list) => {
                    for (index, value) in list.iter().enumerate() {
                        match self.header_match(value, &format!("{headers_path}[{index}]")) {
                            Some(header) => headers.push(header),
                            None => ok = false,
                        }
                    }
                }
                None => ok = false,
            }
        }
        ok.then_some(RouteMatch {
            path: path_match,
            methods,
            headers,
        })
    }

    fn path_literal(&mut self, value: &Value, path: &str) -> Option<String> {
        let text = self.string(value, path)?;
        if !text.starts_with('/') {
            self.error(
                path,
                format!("expected a path starting with \"/\", got {text:?}"),
            );
            return None;
        }
        Some(text.to_string())
    }

    fn header_match(&mut self, value: &Value, path: &str) -> Option<HeaderMatch> {
        let object = self.object(
            value,
            path,
            &["name", "exact", "prefix", "regex", "present"],
        )?;
        let name = match object.get("name") {
            Some(value) => self.header_name(value, &join(path, "name"), true),
            None => {
                self.error(&join(path, "name"), "required");
                None
            }
        };
        let given: Vec<&str> = ["exact", "prefix", "regex", "present"]
            .into_iter()
            .filter(|key| object.contains_key(*key))
            .collect();
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
        let rule = match given.first().copied() {
            Some("exact") => object
                .get("exact")
                .and_then(|v| self.string(v, &join(path, "exact")))
                .map(|s| HeaderRule::Exact(s.to_string())),
            Some("prefix") => object
                .get("prefix")
                .and_then(|v| self.string(v, &join(path, "prefix")))
                .map(|s| HeaderRule::Prefix(s.to_string())),
            Some("regex") => object
                .get("regex")
                .and_then(|v| self.regex(v, &join(path, "regex")))
                .map(HeaderRule::Regex),
            _ => match object.get("present") {
                Some(Value::Bool(true)) => Some(HeaderRule::Present),
                Some(other) => {
                    self.error(
                        &join(path, "present"),
                        format!("expected true, got {}", show(other)),
                    );
                    None
                }
                None => None,
            },
        };
        Some(HeaderMatch {
            name: name?,
            rule: rule?,
        })
    }

    fn destinations(
        &mut self,
        value: &Value,
        path: &str,
        route_name: &str,
        route_timeout_ms: Option<u64>,
    ) -> Option<Vec<Destination>> {
        let list = self.list(value, path)?;
        if list.is_empty() {
            self.error(path, "expected at least one destination");
            return None;
        }
        let mut versions = HashSet::new();
        let mut destinations = Vec::with_capacity(list.len());
        for (index, value) in list.iter().enumerate() {
            let destination_path = format!("{path}[{index}]");
            if let Some(destination) =
                self.destination(value, &destination_path, route_name, route_timeout_ms)
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
        if destinations.len() != list.len() {
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
        value: &Value,
        path: &str,
        route_name: &str,
        route_timeout_ms: Option<u64>,
    ) -> Option<Destination> {
        let object = self.object(value, path, &["version", "cluster", "weight", "timeout"])?;
        let version = match object.get("version") {
            Some(value) => self.name(value, &join(path, "version")),
            None => {
                self.error(&join(path, "version"), "required");
                None
            }
        };
        let cluster = match object.get("cluster") {
            Some(value) => self.cluster(value, &join(path, "cluster")).map(Some),
            None => Some(None),
        };
        let weight = match object.get("weight") {
            Some(value) => self.weight(value, &join(path, "weight")),
            None => {
                self.error(&join(path, "weight"), "required: a non-negative integer");
                None
            }
        };
        let timeout = match object.get("timeout") {
            Some(value) => self.timeout(value, &join(path, "timeout")).map(Some),
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

    fn cluster(&mut self, value: &Value, path: &str) -> Option<String> {
        let text = self.string(value, path)?;
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

    fn weight(&mut self, value: &Value, path: &str) -> Option<u32> {
        // Istio hands pluginConfig numbers over as doubles, so 70.0 must read as 70.
        let weight = match value {
            Value::Number(number) => number.as_u64().or_else(|| {
                number
                    .as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= f64::from(u32::MAX))
                    .map(|f| f as u64)
            }),
            _ => None,
        };
        match weight.map(u32::try_from) {
            Some(Ok(weight)) => Some(weight),
            Some(Err(_)) => {
                let max = u32::MAX;
                self.error(path, format!("expected at most {max}, got {}", show(value)));
                None
            }
            None => {
                let got = show(value);
                self.error(path, format!("expected a non-negative integer, got {got}"));
                None
            }
        }
    }
}
