//! A WasmPlugin's `pluginConfig` as the filter receives it.
//!
//! Kubernetes stores the YAML a user applies as JSON, Istio reads `spec.pluginConfig` into a
//! protobuf `Struct` and hands the filter that `Struct` written back out as JSON. A `Struct`
//! knows one kind of number, the double: `weight: 70` reaches the filter as a double (`70` or
//! `70.0`, depending on the printer). This module does the same round trip, so the checker
//! judges the very JSON the filter will parse.

use serde_json::{Map, Number, Value as Json};
use serde_yaml::Value as Yaml;
use traffic_split::config::ConfigError;

/// Converts a YAML value to JSON as a protobuf `Struct` carries it: every number a double,
/// every mapping key a string. `path` names `value` in error messages (`spec.pluginConfig`).
pub fn to_struct_json(value: &Yaml, path: &str) -> Result<Json, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let json = convert(value, path, &mut errors);
    if errors.is_empty() {
        Ok(json)
    } else {
        Err(errors)
    }
}

fn convert(value: &Yaml, path: &str, errors: &mut Vec<ConfigError>) -> Json {
    let mut fail = |message: String| {
        errors.push(ConfigError {
            path: path.to_string(),
            message,
        });
        Json::Null
    };
    match value {
        Yaml::Null => Json::Null,
        Yaml::Bool(flag) => Json::Bool(*flag),
        Yaml::String(text) => Json::String(text.clone()),
        Yaml::Number(number) => match number.as_f64().and_then(Number::from_f64) {
            Some(double) => Json::Number(double),
            None => fail(format!(
                "{number} is not a finite number; a protobuf Struct cannot carry it"
            )),
        },
        Yaml::Sequence(items) => Json::Array(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| convert(item, &format!("{path}[{index}]"), errors))
                .collect(),
        ),
        Yaml::Mapping(mapping) => {
            let mut object = Map::new();
            for (key, item) in mapping {
                // Kubernetes' YAML reader turns scalar keys into strings; anything else cannot
                // become a Struct field name.
                let key = match key {
                    Yaml::String(text) => text.clone(),
                    Yaml::Bool(flag) => flag.to_string(),
                    Yaml::Number(number) => number.to_string(),
                    _ => {
                        errors.push(ConfigError {
                            path: path.to_string(),
                            message: "a mapping key must be a string".to_string(),
                        });
                        continue;
                    }
                };
                let item_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let item = convert(item, &item_path, errors);
                object.insert(key, item);
            }
            Json::Object(object)
        }
        Yaml::Tagged(tagged) => fail(format!(
            "YAML tag {} is not supported in a pluginConfig",
            tagged.tag
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert_text(yaml: &str) -> Result<Json, Vec<ConfigError>> {
        let value: Yaml = serde_yaml::from_str(yaml).expect("valid YAML");
        to_struct_json(&value, "spec.pluginConfig")
    }

    #[test]
    fn integers_become_doubles_as_in_a_struct() {
        let json = convert_text("weight: 70").expect("converts");
        assert_eq!(json.to_string(), r#"{"weight":70.0}"#);
        assert!(json["weight"].is_f64());
    }

    #[test]
    fn strings_booleans_lists_and_nulls_are_kept() {
        let json = convert_text("a: [GET, true, null, '70']").expect("converts");
        assert_eq!(json.to_string(), r#"{"a":["GET",true,null,"70"]}"#);
    }

    #[test]
    fn scalar_keys_become_strings() {
        let json = convert_text("1: one\ntrue: yes").expect("converts");
        assert_eq!(json.to_string(), r#"{"1":"one","true":"yes"}"#);
    }

    #[test]
    fn a_number_no_struct_can_carry_is_an_error_with_its_path() {
        let errors = convert_text("routes:\n- weight: .nan").expect_err("refused");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].path, "spec.pluginConfig.routes[0].weight");
    }

    #[test]
    fn a_list_as_mapping_key_is_an_error() {
        let errors = convert_text("? [a, b]\n: value").expect_err("refused");
        assert_eq!(
            errors[0].to_string(),
            "spec.pluginConfig: a mapping key must be a string"
        );
    }
}
