//! A configuration as a JSON tree biased towards the config's own shape, through both of the
//! compiler's entries.

use super::config::{check_config_text, check_plan, check_refusal};
use arbitrary::Arbitrary;
use serde_json::{Map, Number, Value};
use traffic_split::config::compile_value;

/// Keys the config grammar knows, so that random trees often reach the deeper checks.
const KEYS: &[&str] = &[
    "version_header",
    "cluster_header",
    "routes",
    "name",
    "match",
    "destinations",
    "timeout",
    "prefix",
    "exact",
    "regex",
    "methods",
    "headers",
    "present",
    "version",
    "cluster",
    "weight",
    "metrics",
    "log_level",
    "on_invalid_config",
    "guard",
    "max_error_ratio",
    "min_requests",
    "window",
    "cooldown",
    "errors",
    "probe_percent",
    "retries",
    "attempts",
    "retry_on",
    "per_try_timeout",
    "grpc_retry_on",
    "fault",
    "abort",
    "delay",
    "status",
    "percent",
    "fixed",
];

/// String values the config grammar knows: good and bad durations, names, paths, regexes.
const STRINGS: &[&str] = &[
    "2ms",
    "0.002s",
    "1.5s",
    "24h",
    "25h",
    "0s",
    "0.5ms",
    "-1s",
    "1",
    "",
    " ",
    "v1",
    "v2",
    "hello",
    "a.b",
    "a b",
    "/hello",
    "hello",
    "/api/.*",
    "(",
    "a{1000}{1000}",
    "GET",
    "get",
    "x-split-version",
    "x-envoy-upstream-rq-timeout-ms",
    ":authority",
    "springbootapp-v1",
    "full",
    "requests",
    "pass_through",
    "5xx",
    "reset",
    "timeout",
    "5xx,reset,connect-failure",
    "debug",
];

/// A JSON tree biased towards the config's own shape.
#[derive(Arbitrary, Clone, Debug)]
pub enum JsonTree {
    Null,
    Bool(bool),
    Integer(i64),
    Float(f64),
    KnownString(u8),
    String(String),
    List(Vec<JsonTree>),
    Object(Vec<(JsonKey, JsonTree)>),
}

#[derive(Arbitrary, Clone, Debug)]
pub enum JsonKey {
    Known(u8),
    Other(String),
}

/// Deeper trees than this become `null`: serde_json refuses nesting beyond 128 anyway.
const MAX_DEPTH: usize = 32;

impl JsonTree {
    /// As JSON text, keys written twice kept (the compiler must refuse them).
    pub fn to_text(&self, depth: usize) -> String {
        let value = |tree: &JsonTree| tree.to_text(depth + 1);
        match self {
            _ if depth > MAX_DEPTH => "null".to_string(),
            JsonTree::Null => "null".to_string(),
            JsonTree::Bool(flag) => flag.to_string(),
            JsonTree::Integer(number) => number.to_string(),
            JsonTree::Float(number) => Number::from_f64(*number)
                .map_or_else(|| "null".to_string(), |number| number.to_string()),
            JsonTree::KnownString(index) => {
                Value::from(STRINGS[usize::from(*index) % STRINGS.len()]).to_string()
            }
            JsonTree::String(text) => Value::from(text.as_str()).to_string(),
            JsonTree::List(items) => {
                let items: Vec<String> = items.iter().map(value).collect();
                format!("[{}]", items.join(","))
            }
            JsonTree::Object(fields) => {
                let fields: Vec<String> = fields
                    .iter()
                    .map(|(key, tree)| format!("{}:{}", Value::from(key.name()), value(tree)))
                    .collect();
                format!("{{{}}}", fields.join(","))
            }
        }
    }

    /// As a `serde_json::Value` (a key written twice keeps its last value).
    pub fn to_value(&self, depth: usize) -> Value {
        match self {
            _ if depth > MAX_DEPTH => Value::Null,
            JsonTree::Null => Value::Null,
            JsonTree::Bool(flag) => Value::Bool(*flag),
            JsonTree::Integer(number) => Value::from(*number),
            JsonTree::Float(number) => Number::from_f64(*number).map_or(Value::Null, Value::Number),
            JsonTree::KnownString(index) => {
                Value::from(STRINGS[usize::from(*index) % STRINGS.len()])
            }
            JsonTree::String(text) => Value::from(text.as_str()),
            JsonTree::List(items) => {
                Value::Array(items.iter().map(|tree| tree.to_value(depth + 1)).collect())
            }
            JsonTree::Object(fields) => {
                let mut object = Map::new();
                for (key, tree) in fields {
                    object.insert(key.name().to_string(), tree.to_value(depth + 1));
                }
                Value::Object(object)
            }
        }
    }
}

impl JsonKey {
    fn name(&self) -> &str {
        match self {
            JsonKey::Known(index) => KEYS[usize::from(*index) % KEYS.len()],
            JsonKey::Other(name) => name,
        }
    }
}

/// A configuration as a JSON tree: as text through [`traffic_split::config::compile`], as a
/// value through [`compile_value`] (the checker's path), each compiled into a sound plan or
/// refused.
pub fn check_config_tree(tree: &JsonTree) {
    check_config_text(tree.to_text(0).as_bytes());
    match compile_value(&tree.to_value(0)) {
        Ok(plan) => check_plan(&plan),
        Err(errors) => check_refusal(&errors),
    }
}
