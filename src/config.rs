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
    Destination, HeaderMatch, HeaderRule, LogLevel, MetricsMode, PathMatch, Plan, Route,
    RouteMatch, WholeValueRegex, DEADLINE_HEADER, DEFAULT_CLUSTER_HEADER, DEFAULT_VERSION_HEADER,
};
use regex_lite::RegexBuilder;
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
    if let Some(too_large) = crate::limits::check_config_size(json.len()) {
        return Err(vec![too_large]);
    }
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

    fn regex(&mut self, value: &Value, path: &str) -> Option<WholeValueRegex> {
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
            Ok(regex) => Some(WholeValueRegex::new(pattern, regex)),
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
            routes: crate::plan::RouteTable::new(routes?),
            metrics: MetricsMode::Full,
            log_level: LogLevel::Info,
        })
    }

    fn routes(&mut self, value: &Value) -> Option<Vec<Route>> {
        let list = self.list(value, "routes")?;
        if list.is_empty() {
            self.error("routes", "expected at least one route");
            return None;
        }
        let too_large = crate::limits::check_counts(list.iter().map(|route| {
            let destinations = route.get("destinations").and_then(Value::as_array);
            destinations.map_or(0, Vec::len)
        }));
        if !too_large.is_empty() {
            self.errors.extend(too_large);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::RequestView;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const ISSUE_EXAMPLE: &str = r#"{
      "version_header": "x-split-version",
      "cluster_header": "x-split-cluster",
      "routes": [
        {
          "name": "hello",
          "match": { "prefix": "/hello", "methods": ["GET"],
                     "headers": [ { "name": "x-env", "exact": "prod" } ] },
          "destinations": [
            { "version": "v1", "cluster": "springbootapp-v1", "weight": 70 },
            { "version": "v2", "cluster": "springbootapp-v2", "weight": 30, "timeout": "5ms" }
          ],
          "timeout": "0.002s"
        }
      ]
    }"#;

    fn errors_of(json: &str) -> Vec<String> {
        match compile(json.as_bytes()) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    fn assert_error(json: &str, expected: &str) {
        let errors = errors_of(json);
        assert!(
            errors.iter().any(|e| e == expected),
            "expected {expected:?} in {errors:?}"
        );
    }

    fn route_with(destinations: &str) -> String {
        format!(r#"{{ "routes": [ {{ "name": "r", "destinations": {destinations} }} ] }}"#)
    }

    fn route_with_match(matcher: &str) -> String {
        format!(
            r#"{{ "routes": [ {{ "name": "r", "match": {matcher},
                  "destinations": [ {{ "version": "v1", "weight": 1 }} ] }} ] }}"#
        )
    }

    #[test]
    fn issue_example_compiles_with_deadlines_resolved() {
        let plan = compile(ISSUE_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(plan.version_header, "x-split-version");
        assert_eq!(plan.cluster_header, "x-split-cluster");
        let route = &plan.routes[0];
        assert_eq!(route.name, "hello");
        let [v1, v2] = &route.destinations[..] else {
            panic!("two destinations")
        };
        assert_eq!(
            (v1.version.as_str(), v1.weight, v1.deadline_ms),
            ("v1", 70, Some(2))
        );
        assert_eq!(v1.deadline_header_value.as_deref(), Some("2"));
        assert_eq!(
            v2.deadline_ms,
            Some(5),
            "the destination's timeout overrides the route's"
        );
        assert_eq!(v2.cluster.as_deref(), Some("springbootapp-v2"));
        assert_eq!(
            v2.metric_names.requests,
            "traffic_split.route.hello.version.v2.requests_total"
        );
    }

    #[test]
    fn header_names_default_and_are_lower_cased() {
        let plan = compile(route_with(r#"[{"version":"v1","weight":1}]"#).as_bytes()).unwrap();
        assert_eq!(plan.version_header, DEFAULT_VERSION_HEADER);
        assert_eq!(plan.cluster_header, DEFAULT_CLUSTER_HEADER);
        let json = r#"{ "version_header": "X-Canary", "cluster_header": "X-Target",
                        "routes": [ { "name": "r", "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#;
        let plan = compile(json.as_bytes()).unwrap();
        assert_eq!(
            (plan.version_header.as_str(), plan.cluster_header.as_str()),
            ("x-canary", "x-target")
        );
        assert!(plan.routes[0].destinations[0].deadline_ms.is_none());
    }

    #[test]
    fn negative_weight_names_its_path() {
        assert_error(
            &route_with(r#"[{"version":"v1","weight":1},{"version":"v2","weight":-5}]"#),
            "routes[0].destinations[1].weight: expected a non-negative integer, got -5",
        );
    }

    #[test]
    fn weights_must_be_integers_and_not_all_zero() {
        for bad in ["1.5", "\"70\"", "null", "true", "[]"] {
            let json = route_with(&format!(r#"[{{"version":"v1","weight":{bad}}}]"#));
            let errors = errors_of(&json);
            assert!(
                errors.iter().any(|e| e.starts_with(
                    "routes[0].destinations[0].weight: expected a non-negative integer, got"
                )),
                "{bad}: {errors:?}"
            );
        }
        assert_error(
            &route_with(r#"[{"version":"v1","weight":4294967296}]"#),
            "routes[0].destinations[0].weight: expected at most 4294967295, got 4294967296",
        );
        assert_error(
            &route_with(r#"[{"version":"v1","weight":0},{"version":"v2","weight":0}]"#),
            "routes[0].destinations: the weights add up to 0; at least one must be above 0",
        );
    }

    #[test]
    fn integral_doubles_from_istio_structs_are_weights() {
        let plan = compile(
            route_with(r#"[{"version":"v1","weight":70.0},{"version":"v2","weight":30}]"#)
                .as_bytes(),
        )
        .unwrap();
        let weights: Vec<u32> = plan.routes[0]
            .destinations
            .iter()
            .map(|d| d.weight)
            .collect();
        assert_eq!(weights, vec![70, 30]);
    }

    #[test]
    fn unknown_fields_are_errors_everywhere() {
        assert_error(
            &route_with(r#"[{"version":"v1","wieght":70}]"#),
            "routes[0].destinations[0].wieght: unknown field; expected one of version, cluster, weight, timeout",
        );
        let errors = errors_of(
            r#"{ "routs": [], "routes": [ { "name": "r", "matches": {}, "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#,
        );
        assert!(
            errors.iter().any(|e| e.starts_with("routs: unknown field")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("routes[0].matches: unknown field")),
            "{errors:?}"
        );
        assert_error(
            &route_with_match(r#"{ "prefix": "/", "header": [] }"#),
            "routes[0].match.header: unknown field; expected one of prefix, exact, regex, methods, headers",
        );
        assert_error(
            &route_with_match(r#"{ "headers": [ { "name": "a", "exact": "b", "invert": true } ] }"#),
            "routes[0].match.headers[0].invert: unknown field; expected one of name, exact, prefix, regex, present",
        );
    }

    #[test]
    fn every_error_is_reported_not_only_the_first() {
        let errors = errors_of(
            r#"{ "routes": [
                 { "name": "ok", "destinations": [ { "version": "v1", "weight": -1 } ] },
                 { "name": "", "timeout": "0s", "destinations": [ { "version": "v 1", "weight": 1, "cluster": "" } ] }
               ] }"#,
        );
        assert_eq!(
            errors,
            vec![
                "routes[0].destinations[0].weight: expected a non-negative integer, got -1",
                "routes[1].name: expected 1-64 characters of [A-Za-z0-9_-], got \"\"",
                "routes[1].timeout: \"0s\" is shorter than the minimum of 1ms",
                "routes[1].destinations[0].version: expected 1-64 characters of [A-Za-z0-9_-], got \"v 1\"",
                "routes[1].destinations[0].cluster: expected 1-255 visible ASCII characters, got \"\"",
            ]
        );
    }

    #[test]
    fn top_level_shape_errors() {
        assert_error("[]", "expected an object, got a list");
        assert_error("{}", "routes: required: a non-empty list of routes");
        assert_error(r#"{"routes": []}"#, "routes: expected at least one route");
        assert_error(
            r#"{"routes": {}}"#,
            "routes: expected a list, got an object",
        );
        let errors = errors_of("{ not json");
        assert!(
            errors[0].starts_with("the configuration is not valid JSON"),
            "{errors:?}"
        );
        assert!(
            !errors_of(&"[".repeat(10_000)).is_empty(),
            "deep nesting is an error, not a crash"
        );
        assert_eq!(errors_of("").len(), 1);
    }

    #[test]
    fn header_names_must_be_valid_and_distinct() {
        let with_headers = |version: &str, cluster: &str| {
            format!(
                r#"{{ "version_header": {version}, "cluster_header": {cluster},
                     "routes": [ {{ "name": "r", "destinations": [ {{ "version": "v1", "weight": 1 }} ] }} ] }}"#
            )
        };
        assert_error(
            &with_headers(r#""x-a""#, r#""X-A""#),
            "cluster_header: must differ from version_header (both are \"x-a\")",
        );
        assert_error(
            &with_headers(r#""bad header""#, r#""x-b""#),
            "version_header: expected an HTTP header name, got \"bad header\"",
        );
        assert_error(
            &with_headers(r#""x-a""#, r#"":authority""#),
            "cluster_header: expected an HTTP header name, got \":authority\"",
        );
        assert_error(
            &with_headers(r#""x-envoy-upstream-rq-timeout-ms""#, r#""x-b""#),
            "version_header: x-envoy-upstream-rq-timeout-ms is Envoy's deadline header",
        );
        assert_error(
            &with_headers("7", r#""x-b""#),
            "version_header: expected a string, got 7",
        );
    }

    #[test]
    fn route_names_and_versions_are_unique_metric_labels() {
        assert_error(
            r#"{ "routes": [
                 { "name": "a", "destinations": [ { "version": "v1", "weight": 1 } ] },
                 { "name": "a", "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#,
            "routes[1].name: duplicate route name \"a\"",
        );
        assert_error(
            &route_with(r#"[{"version":"v1","weight":1},{"version":"v1","weight":2}]"#),
            "routes[0].destinations[1].version: duplicate version \"v1\" in this route",
        );
        let long = "a".repeat(65);
        assert_error(
            &route_with(&format!(r#"[{{"version":"{long}","weight":1}}]"#)),
            &format!("routes[0].destinations[0].version: expected 1-64 characters of [A-Za-z0-9_-], got \"{long}\""),
        );
        assert_error(
            &route_with(r#"[{"version":"v.1","weight":1}]"#),
            "routes[0].destinations[0].version: expected 1-64 characters of [A-Za-z0-9_-], got \"v.1\"",
        );
        assert_error(
            r#"{ "routes": [ { "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#,
            "routes[0].name: required",
        );
        assert_error(
            r#"{ "routes": [ { "name": "r" } ] }"#,
            "routes[0].destinations: required: a non-empty list of destinations",
        );
        assert_error(
            &route_with("[]"),
            "routes[0].destinations: expected at least one destination",
        );
        assert_error(
            &route_with(r#"[{"weight":1}]"#),
            "routes[0].destinations[0].version: required",
        );
        assert_error(
            &route_with(r#"[{"version":"v1"}]"#),
            "routes[0].destinations[0].weight: required: a non-negative integer",
        );
    }

    #[test]
    fn timeouts_are_checked_where_they_are_written() {
        assert_error(
            &route_with(r#"[{"version":"v1","weight":1,"timeout":"0.0001s"}]"#),
            "routes[0].destinations[0].timeout: \"0.0001s\" is not a whole number of milliseconds (Envoy deadlines have millisecond resolution)",
        );
        assert_error(
            &route_with(r#"[{"version":"v1","weight":1,"timeout":2}]"#),
            "routes[0].destinations[0].timeout: expected a string, got 2",
        );
        assert_error(
            r#"{ "routes": [ { "name": "r", "timeout": "25h", "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#,
            "routes[0].timeout: \"25h\" is longer than the maximum of 24h",
        );
    }

    #[test]
    fn match_errors_name_their_field() {
        assert_error(
            &route_with_match(r#"{ "prefix": "/a", "exact": "/b" }"#),
            "routes[0].match: at most one of prefix, exact, regex; got prefix, exact",
        );
        assert_error(
            &route_with_match(r#"{ "prefix": "hello" }"#),
            "routes[0].match.prefix: expected a path starting with \"/\", got \"hello\"",
        );
        assert_error(
            &route_with_match(r#"{ "methods": ["get"] }"#),
            "routes[0].match.methods[0]: expected an upper-case HTTP method such as \"GET\", got \"get\"",
        );
        assert_error(
            &route_with_match(r#"{ "methods": [] }"#),
            "routes[0].match.methods: expected at least one method, or no methods field",
        );
        assert_error(
            &route_with_match(r#"{ "headers": [ { "name": "a" } ] }"#),
            "routes[0].match.headers[0]: expected exactly one of exact, prefix, regex, present; got none",
        );
        assert_error(
            &route_with_match(r#"{ "headers": [ { "name": "a", "exact": "x", "prefix": "y" } ] }"#),
            "routes[0].match.headers[0]: expected exactly one of exact, prefix, regex, present; got exact, prefix",
        );
        assert_error(
            &route_with_match(r#"{ "headers": [ { "name": "a", "present": false } ] }"#),
            "routes[0].match.headers[0].present: expected true, got false",
        );
        assert_error(
            &route_with_match(r#"{ "headers": [ { "exact": "x" } ] }"#),
            "routes[0].match.headers[0].name: required",
        );
        let errors = errors_of(&route_with_match(r#"{ "regex": "/(unclosed" }"#));
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("routes[0].match.regex: invalid regex \"/(unclosed\"")),
            "{errors:?}"
        );
    }

    #[test]
    fn regexes_that_would_blow_up_are_refused() {
        let huge = "a{1000}{1000}";
        let errors = errors_of(&route_with_match(&format!(r#"{{ "regex": "{huge}" }}"#)));
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("routes[0].match.regex: invalid regex")),
            "{errors:?}"
        );
        let nested = format!("{}a{}", "(".repeat(100), ")".repeat(100));
        let errors = errors_of(&route_with_match(&format!(r#"{{ "regex": "{nested}" }}"#)));
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("routes[0].match.regex: invalid regex")),
            "{errors:?}"
        );
        let long = "a".repeat(MAX_REGEX_LEN + 1);
        assert_error(
            &route_with_match(&format!(r#"{{ "regex": "{long}" }}"#)),
            "routes[0].match.regex: regex is longer than 1024 characters",
        );
    }

    /// A request for the matcher, answered from fixed values and counting header look-ups.
    struct FakeRequest {
        path: Option<Vec<u8>>,
        method: Option<Vec<u8>>,
        headers: Vec<(&'static str, Vec<u8>)>,
        header_lookups: usize,
    }

    impl FakeRequest {
        fn new(method: &str, path: &[u8], headers: &[(&'static str, &[u8])]) -> Self {
            FakeRequest {
                path: Some(path.to_vec()),
                method: Some(method.as_bytes().to_vec()),
                headers: headers.iter().map(|(n, v)| (*n, v.to_vec())).collect(),
                header_lookups: 0,
            }
        }
    }

    impl RequestView for FakeRequest {
        fn path(&mut self) -> Option<&[u8]> {
            self.path.as_deref()
        }
        fn method(&mut self) -> Option<&[u8]> {
            self.method.as_deref()
        }
        fn header(&mut self, name: &str) -> Option<&[u8]> {
            self.header_lookups += 1;
            self.headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_slice())
        }
    }

    fn matched_route(plan: &Plan, request: &mut FakeRequest) -> Option<String> {
        plan.match_route(request)
            .map(|(_, route)| route.name.clone())
    }

    #[test]
    fn issue_example_matches_prefix_method_and_header() {
        let plan = compile(ISSUE_EXAMPLE.as_bytes()).unwrap();
        let prod: &[(&str, &[u8])] = &[("x-env", b"prod")];
        let hello = Some("hello".to_string());
        assert_eq!(
            matched_route(&plan, &mut FakeRequest::new("GET", b"/hello", prod)),
            hello
        );
        assert_eq!(
            matched_route(
                &plan,
                &mut FakeRequest::new("GET", b"/hello/world?q=1", prod)
            ),
            hello
        );
        assert_eq!(
            matched_route(&plan, &mut FakeRequest::new("POST", b"/hello", prod)),
            None
        );
        assert_eq!(
            matched_route(&plan, &mut FakeRequest::new("GET", b"/hell", prod)),
            None
        );
        assert_eq!(
            matched_route(
                &plan,
                &mut FakeRequest::new("GET", b"/hello", &[("x-env", b"dev")])
            ),
            None
        );
        assert_eq!(
            matched_route(&plan, &mut FakeRequest::new("GET", b"/hello", &[])),
            None
        );
        let mut no_pseudo = FakeRequest::new("GET", b"/hello", prod);
        no_pseudo.path = None;
        no_pseudo.method = None;
        assert_eq!(matched_route(&plan, &mut no_pseudo), None);
    }

    #[test]
    fn path_matches_ignore_the_query_string() {
        let plan = compile(route_with_match(r#"{ "exact": "/a" }"#).as_bytes()).unwrap();
        assert!(matched_route(&plan, &mut FakeRequest::new("GET", b"/a?x=/b", &[])).is_some());
        assert!(matched_route(&plan, &mut FakeRequest::new("GET", b"/a/", &[])).is_none());
        let plan =
            compile(route_with_match(r#"{ "regex": "/v[0-9]+/items" }"#).as_bytes()).unwrap();
        assert!(matched_route(
            &plan,
            &mut FakeRequest::new("GET", b"/v12/items?page=2", &[])
        )
        .is_some());
        assert!(
            matched_route(&plan, &mut FakeRequest::new("GET", b"/v12/items/3", &[])).is_none(),
            "anchored"
        );
        assert!(
            matched_route(&plan, &mut FakeRequest::new("GET", b"x/v1/items", &[])).is_none(),
            "anchored"
        );
    }

    #[test]
    fn header_rules_match_bytes_safely() {
        let plan = compile(
            route_with_match(
                r#"{ "headers": [ { "name": "X-User", "prefix": "adm" }, { "name": "x-env", "regex": "pr(od|e)" },
                                  { "name": "x-debug", "present": true } ] }"#,
            )
            .as_bytes(),
        )
        .unwrap();
        let ok: &[(&str, &[u8])] = &[("x-user", b"admin"), ("x-env", b"pre"), ("x-debug", b"")];
        assert!(matched_route(&plan, &mut FakeRequest::new("GET", b"/", ok)).is_some());
        let not_utf8: &[(&str, &[u8])] = &[
            ("x-user", b"adm\xff"),
            ("x-env", b"pr\xffod"),
            ("x-debug", b"1"),
        ];
        assert!(matched_route(&plan, &mut FakeRequest::new("GET", b"/", not_utf8)).is_none());
        let regex_partial: &[(&str, &[u8])] = &[
            ("x-user", b"adm"),
            ("x-env", b"production"),
            ("x-debug", b"1"),
        ];
        assert!(matched_route(&plan, &mut FakeRequest::new("GET", b"/", regex_partial)).is_none());
        let missing: &[(&str, &[u8])] = &[("x-user", b"adm"), ("x-env", b"prod")];
        assert!(matched_route(&plan, &mut FakeRequest::new("GET", b"\xff\xfe", missing)).is_none());
    }

    #[test]
    fn first_matching_route_wins_and_later_routes_are_not_asked() {
        let plan = compile(
            br#"{ "routes": [
                 { "name": "first", "match": { "prefix": "/a" }, "destinations": [ { "version": "v1", "weight": 1 } ] },
                 { "name": "second", "match": { "headers": [ { "name": "x", "present": true } ] },
                   "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#,
        )
        .unwrap();
        let mut request = FakeRequest::new("GET", b"/a", &[("x", b"1")]);
        assert_eq!(matched_route(&plan, &mut request).as_deref(), Some("first"));
        assert_eq!(
            request.header_lookups, 0,
            "the header of a later route was fetched"
        );
    }

    #[test]
    fn a_route_picks_its_destinations_by_weight() {
        let plan = compile(ISSUE_EXAMPLE.as_bytes()).unwrap();
        let route = &plan.routes[0];
        let mut v1 = 0;
        for _ in 0..1000 {
            let (index, destination) = route.pick_destination().unwrap();
            assert_eq!(route.destinations[index].version, destination.version);
            v1 += usize::from(destination.version == "v1");
        }
        assert_eq!(v1, 700);
    }
}
