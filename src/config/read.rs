//! Reading JSON into the config types, with every problem reported by its JSON path.
//!
//! [`parse_json`] parses the text into a [`Value`], refusing a key that appears twice in one
//! object (serde_json would keep the last one silently). [`read_config`] then reads the typed
//! config with [`Reader`], a serde [`Deserializer`] over that value which knows where it is:
//! - an unknown field is added to the errors with the fields allowed there (from the derived
//!   type itself) and the one it most likely meant, and reading goes on;
//! - a value of the wrong JSON type stops reading, reported as the rest of the config's errors
//!   are: `routes: expected a list, got an object` (serde_json's own words would be
//!   `invalid type: map, expected a sequence`, with no path).

use super::error::ConfigError;
use super::raw::PluginConfig;
use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// Keys longer than this are never taken for a misspelt field: no field name is close.
const MAX_MISSPELT_KEY_LEN: usize = 64;

/// Parses JSON text into a value. Every key that appears twice in one object is added to
/// `errors`; text that is not JSON is `None`, with the parser's error added.
pub fn parse_json(json: &[u8], errors: &mut Vec<ConfigError>) -> Option<Value> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let seed = UniqueKeys {
        path: Path::Root,
        errors: &mut *errors,
    };
    let parsed = seed
        .deserialize(&mut deserializer)
        .and_then(|value| deserializer.end().map(|()| value));
    match parsed {
        Ok(value) => Some(value),
        Err(error) => {
            errors.push(ConfigError {
                path: String::new(),
                message: format!("the configuration is not valid JSON: {error}"),
            });
            None
        }
    }
}

/// Reads the typed config from `value`. Unknown fields are added to `errors` and skipped; a
/// value of the wrong type is added too, and is `None`: reading stops there.
pub fn read_config(value: &Value, errors: &mut Vec<ConfigError>) -> Option<PluginConfig> {
    let reader = Reader {
        value,
        path: Path::Root,
        errors: &mut *errors,
    };
    match PluginConfig::deserialize(reader) {
        Ok(config) => Some(config),
        Err(error) => {
            errors.push(ConfigError {
                path: error.path.unwrap_or_default(),
                message: error.message,
            });
            None
        }
    }
}

/// How a JSON value reads in an error message: short, and never a whole document.
pub fn show(value: &Value) -> String {
    let text = match value {
        Value::Object(_) => "an object".to_string(),
        Value::Array(_) => "a list".to_string(),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    };
    const MAX_LEN: usize = 80;
    if text.len() <= MAX_LEN {
        return text;
    }
    let cut = text
        .char_indices()
        .map(|(index, _)| index)
        .take_while(|&index| index <= MAX_LEN - 3)
        .last()
        .unwrap_or(0);
    format!("{}...", text.get(..cut).unwrap_or_default())
}

/// Where a value is in the document; spelt out (`routes[0].destinations[1].weight`) only when
/// an error needs it.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Field(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Field(Path::Root, key) => write!(f, "{key}"),
            Path::Field(parent, key) => write!(f, "{parent}.{key}"),
            Path::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

/// Builds a [`Value`] as serde_json does, but adds each key seen twice in one object to
/// `errors` (the later value is kept, as serde_json keeps it; the config is refused anyway).
struct UniqueKeys<'p, 'e> {
    path: Path<'p>,
    errors: &'e mut Vec<ConfigError>,
}

impl<'de> DeserializeSeed<'de> for UniqueKeys<'_, '_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for UniqueKeys<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, flag: bool) -> Result<Value, E> {
        Ok(Value::Bool(flag))
    }

    fn visit_i64<E>(self, number: i64) -> Result<Value, E> {
        Ok(Value::from(number))
    }

    fn visit_u64<E>(self, number: u64) -> Result<Value, E> {
        Ok(Value::from(number))
    }

    fn visit_f64<E>(self, number: f64) -> Result<Value, E> {
        // The JSON parser yields only finite numbers.
        Ok(Number::from_f64(number).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, text: &str) -> Result<Value, E> {
        Ok(Value::String(text.to_string()))
    }

    fn visit_string<E>(self, text: String) -> Result<Value, E> {
        Ok(Value::String(text))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let UniqueKeys { path, errors } = self;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(UniqueKeys {
            path: Path::Index(&path, items.len()),
            errors: &mut *errors,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let UniqueKeys { path, errors } = self;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let field = Path::Field(&path, &key);
            let value = map.next_value_seed(UniqueKeys {
                path: field,
                errors: &mut *errors,
            })?;
            if object.contains_key(&key) {
                errors.push(ConfigError {
                    path: field.to_string(),
                    message: "duplicate field".to_string(),
                });
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Why reading stopped: a value of the wrong type. `path` is filled in by the innermost
/// [`Reader`] the error passes through when whoever raised it did not know it.
#[derive(Debug)]
pub struct ReadError {
    path: Option<String>,
    message: String,
}

impl ReadError {
    fn at(mut self, path: Path<'_>) -> Self {
        if self.path.is_none() {
            self.path = Some(path.to_string());
        }
        self
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) if !path.is_empty() => write!(f, "{path}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ReadError {}

impl de::Error for ReadError {
    fn custom<T: fmt::Display>(message: T) -> Self {
        ReadError {
            path: None,
            message: message.to_string(),
        }
    }
}

/// A serde [`Deserializer`] over one value of the document, at `path`.
struct Reader<'de, 'p, 'e> {
    value: &'de Value,
    path: Path<'p>,
    /// Where unknown fields are reported; reading goes on past them.
    errors: &'e mut Vec<ConfigError>,
}

impl Reader<'_, '_, '_> {
    fn wrong_type(&self, expected: &str) -> ReadError {
        ReadError {
            path: Some(self.path.to_string()),
            message: format!("expected {expected}, got {}", show(self.value)),
        }
    }
}

impl<'de> Deserializer<'de> for Reader<'de, '_, '_> {
    type Error = ReadError;

    /// Any value, as it is: what a field kept as a [`Value`] (the weight) reads.
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        let Reader {
            value,
            path,
            errors,
        } = self;
        let result = match value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(flag) => visitor.visit_bool(*flag),
            Value::Number(number) => match (number.as_u64(), number.as_i64(), number.as_f64()) {
                (Some(unsigned), _, _) => visitor.visit_u64(unsigned),
                (None, Some(signed), _) => visitor.visit_i64(signed),
                (None, None, float) => visitor.visit_f64(float.unwrap_or(f64::NAN)),
            },
            Value::String(text) => visitor.visit_borrowed_str(text),
            Value::Array(items) => visitor.visit_seq(SeqReader {
                items: items.iter().enumerate(),
                path,
                errors,
            }),
            Value::Object(object) => visitor.visit_map(MapReader {
                entries: object.iter(),
                fields: None,
                pending: None,
                path,
                errors,
            }),
        };
        result.map_err(|error| error.at(path))
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        match self.value {
            Value::String(text) => visitor
                .visit_borrowed_str::<ReadError>(text)
                .map_err(|error| error.at(self.path)),
            _ => Err(self.wrong_type("a string")),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        match self.value {
            Value::Bool(flag) => visitor
                .visit_bool::<ReadError>(*flag)
                .map_err(|error| error.at(self.path)),
            _ => Err(self.wrong_type("a boolean")),
        }
    }

    /// A field is either left out (`None`) or given: `null` is a value of the wrong type, as
    /// it always was in this config, never a way to spell "left out".
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        visitor.visit_some(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        let Value::Array(items) = self.value else {
            return Err(self.wrong_type("a list"));
        };
        let path = self.path;
        visitor
            .visit_seq(SeqReader {
                items: items.iter().enumerate(),
                path,
                errors: self.errors,
            })
            .map_err(|error| error.at(path))
    }

    /// An object whose keys are the struct's `fields`; any other key is an unknown field.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ReadError> {
        let Value::Object(object) = self.value else {
            return Err(self.wrong_type("an object"));
        };
        let path = self.path;
        visitor
            .visit_map(MapReader {
                entries: object.iter(),
                fields: Some(fields),
                pending: None,
                path,
                errors: self.errors,
            })
            .map_err(|error| error.at(path))
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        match self.value {
            Value::Object(_) => self.deserialize_any(visitor),
            _ => Err(self.wrong_type("an object")),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ReadError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit unit_struct
        tuple tuple_struct enum identifier
    }
}

/// The items of a list, each read at its index.
struct SeqReader<'de, 'p, 'e> {
    items: std::iter::Enumerate<std::slice::Iter<'de, Value>>,
    path: Path<'p>,
    errors: &'e mut Vec<ConfigError>,
}

impl<'de> SeqAccess<'de> for SeqReader<'de, '_, '_> {
    type Error = ReadError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ReadError> {
        let Some((index, value)) = self.items.next() else {
            return Ok(None);
        };
        seed.deserialize(Reader {
            value,
            path: Path::Index(&self.path, index),
            errors: &mut *self.errors,
        })
        .map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

/// The entries of an object. With `fields` (a struct's), other keys are reported as unknown
/// and skipped.
struct MapReader<'de, 'p, 'e> {
    entries: serde_json::map::Iter<'de>,
    fields: Option<&'static [&'static str]>,
    /// The entry whose key was handed out and whose value is asked for next.
    pending: Option<(&'de str, &'de Value)>,
    path: Path<'p>,
    errors: &'e mut Vec<ConfigError>,
}

impl<'de> MapAccess<'de> for MapReader<'de, '_, '_> {
    type Error = ReadError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ReadError> {
        for (key, value) in self.entries.by_ref() {
            if let Some(fields) = self.fields {
                if !fields.contains(&key.as_str()) {
                    self.errors
                        .push(unknown_field(Path::Field(&self.path, key), key, fields));
                    continue;
                }
            }
            self.pending = Some((key, value));
            return seed
                .deserialize(BorrowedStrDeserializer::new(key.as_str()))
                .map(Some);
        }
        Ok(None)
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, ReadError> {
        let Some((key, value)) = self.pending.take() else {
            return Err(de::Error::custom("a value was asked for before its key"));
        };
        seed.deserialize(Reader {
            value,
            path: Path::Field(&self.path, key),
            errors: &mut *self.errors,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// Fields still read only so that their refusal can show what replaced them (a route's old
/// `ramp`): never offered as a field to write.
const REPLACED_FIELDS: &[&str] = &["ramp"];

fn unknown_field(path: Path<'_>, key: &str, fields: &[&str]) -> ConfigError {
    let fields: Vec<&str> = fields
        .iter()
        .copied()
        .filter(|field| !REPLACED_FIELDS.contains(field))
        .collect();
    let mut message = format!("unknown field; expected one of {}", fields.join(", "));
    if let Some(field) = nearest_field(key, &fields) {
        message.push_str(&format!("; did you mean `{field}`?"));
    }
    ConfigError {
        path: path.to_string(),
        message,
    }
}

/// The field a misspelt key most likely meant: the same but for case, or at most two edits
/// away (swapping two neighbours counts as one) and not so short that two edits make it
/// another word.
fn nearest_field<'f>(key: &str, fields: &[&'f str]) -> Option<&'f str> {
    if key.len() > MAX_MISSPELT_KEY_LEN {
        return None;
    }
    // ASCII only: every field name is ASCII, and Unicode's case tables would swell the module.
    let key = key.to_ascii_lowercase();
    fields
        .iter()
        .map(|field| (strsim::osa_distance(&key, field), *field))
        .filter(|&(distance, field)| distance <= 2 && distance * 2 < field.len())
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, field)| field)
}

#[cfg(test)]
mod tests {
    //! What reading reports: unknown and misspelt fields, duplicate keys, values of the wrong
    //! JSON type (through `compile`, so with the rest of a config's errors).
    use crate::config::test_configs::{assert_error, errors_of, route_with, route_with_match};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn unknown_fields_are_errors_everywhere() {
        assert_error(
            &route_with(r#"[{"version":"v1","wieght":70}]"#),
            "routes[0].destinations[0].wieght: unknown field; expected one of version, cluster, weight, timeout, retries, fault; did you mean `weight`?",
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
            "routes[0].match.header: unknown field; expected one of prefix, exact, regex, methods, headers; did you mean `headers`?",
        );
        assert_error(
            &route_with_match(r#"{ "headers": [ { "name": "a", "exact": "b", "invert": true } ] }"#),
            "routes[0].match.headers[0].invert: unknown field; expected one of name, exact, prefix, regex, present",
        );
    }

    #[test]
    fn misspelt_fields_name_the_field_they_most_likely_meant() {
        for (written, meant) in [
            ("wieght", "weight"),
            ("Weight", "weight"),
            ("WEIGHT", "weight"),
            ("weigth", "weight"),
            ("versoin", "version"),
            ("cluser", "cluster"),
            ("timeouts", "timeout"),
        ] {
            assert_eq!(
                errors_of(&route_with(&format!(
                    r#"[{{"version":"v1","weight":1,"{written}":1}}]"#
                ))),
                [format!(
                    "routes[0].destinations[0].{written}: unknown field; expected one of version, cluster, weight, timeout, retries, fault; did you mean `{meant}`?"
                )],
            );
        }
        for far in ["colour", "wt", "w", "", "weight_of_v1", "ü", "重さ"] {
            assert_eq!(
                errors_of(&route_with(&format!(
                    r#"[{{"version":"v1","weight":1,"{far}":1}}]"#
                ))),
                [format!(
                    "routes[0].destinations[0].{far}: unknown field; expected one of version, cluster, weight, timeout, retries, fault"
                )],
                "{far:?} is not close to any field"
            );
        }
        // In the order the keys are read: a JSON object's keys sorted.
        let errors = errors_of(
            r#"{ "routs": [], "log-level": "info", "Metrics": "full",
                 "routes": [ { "name": "r", "matches": {}, "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#,
        );
        let allowed = "expected one of version_header, cluster_header, routes, metrics, log_level, on_invalid_config";
        assert_eq!(
            errors,
            [
                format!("Metrics: unknown field; {allowed}; did you mean `metrics`?"),
                format!("log-level: unknown field; {allowed}; did you mean `log_level`?"),
                "routes[0].matches: unknown field; expected one of name, match, destinations, timeout, guard, retries, fault, sticky, override_header, rollout; did you mean `match`?".to_string(),
                format!("routs: unknown field; {allowed}; did you mean `routes`?"),
            ]
        );
    }

    #[test]
    fn duplicate_keys_are_refused_with_their_path() {
        assert_eq!(
            errors_of(&route_with(
                r#"[{"version":"v1","weight":70},{"version":"v2","weight":30,"timeout":"1s","weight":3}]"#
            )),
            ["routes[0].destinations[1].weight: duplicate field"]
        );
        assert_eq!(
            errors_of(
                r#"{ "routes": [ { "name": "a", "destinations": [ { "version": "v1", "weight": 1 } ] } ],
                     "metrics": "full", "metrics": "requests", "routes": [] }"#
            ),
            [
                "metrics: duplicate field",
                "routes: duplicate field",
                "routes: expected at least one route",
            ],
            "reported with every other error, the later value checked"
        );
        assert_eq!(
            errors_of(&route_with_match(
                r#"{ "headers": [ { "name": "a", "exact": "b", "name": "c", "wrong": 1, "wrong": 2 } ] }"#
            )),
            [
                "routes[0].match.headers[0].name: duplicate field",
                "routes[0].match.headers[0].wrong: duplicate field",
                "routes[0].match.headers[0].wrong: unknown field; expected one of name, exact, prefix, regex, present",
            ]
        );
    }

    #[test]
    fn a_value_of_the_wrong_type_stops_reading_and_is_reported_with_its_path() {
        // The unknown field and the duplicate before it are reported too; the bad route name
        // after it is not: reading stopped, and nothing was validated.
        assert_eq!(
            errors_of(
                r#"{ "metrcs": "full", "metrcs": "full", "routes": [
                     { "name": "r", "destinations": [ { "version": 7, "weight": 1 } ] },
                     { "name": "bad name", "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#
            ),
            [
                "metrcs: duplicate field",
                "metrcs: unknown field; expected one of version_header, cluster_header, routes, metrics, log_level, on_invalid_config; did you mean `metrics`?",
                "routes[0].destinations[0].version: expected a string, got 7",
            ]
        );
        for (config, error) in [
            (
                route_with(r#"{"version":"v1","weight":1}"#),
                "routes[0].destinations: expected a list, got an object",
            ),
            (
                route_with(r#"["v1"]"#),
                r#"routes[0].destinations[0]: expected an object, got "v1""#,
            ),
            (
                route_with_match(r#"{ "methods": ["GET", 7] }"#),
                "routes[0].match.methods[1]: expected a string, got 7",
            ),
            (
                route_with_match(r#"{ "headers": [ { "name": "a", "present": "yes" } ] }"#),
                r#"routes[0].match.headers[0].present: expected a boolean, got "yes""#,
            ),
            (
                r#"{ "routes": [ 1, 2 ] }"#.to_string(),
                "routes[0]: expected an object, got 1",
            ),
            ("true".to_string(), "expected an object, got true"),
        ] {
            assert_eq!(errors_of(&config), [error], "{config}");
        }
    }

    #[test]
    fn null_is_a_value_of_the_wrong_type_not_a_left_out_field() {
        assert_error(
            &route_with(r#"[{"version":"v1","weight":1,"cluster":null}]"#),
            "routes[0].destinations[0].cluster: expected a string, got null",
        );
        assert_error(
            r#"{ "version_header": null, "routes": [] }"#,
            "version_header: expected a string, got null",
        );
    }
}
