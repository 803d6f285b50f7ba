//! Every Istio resource under examples/istio/ is valid against Istio's own CRDs: each field is
//! one the CRD's openAPIV3Schema knows (Kubernetes' strict field validation would refuse an
//! unknown one), of its type, with its enum values and its required fields. The CRDs are
//! istio/api's `kubernetes/customresourcedefinitions.gen.yaml` cut to the kinds the examples
//! use, in checker/tests/data/istio-crds.yaml (its header names the revision); `$ISTIO_CRDS`
//! points at another copy, e.g. the whole file at a newer revision.

use serde_yaml::Value as Yaml;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn crds_file() -> PathBuf {
    let path = std::env::var_os("ISTIO_CRDS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("checker/tests/data/istio-crds.yaml"));
    assert!(
        path.is_file(),
        "no Istio CRDs at {} (set ISTIO_CRDS to istio/api's customresourcedefinitions.gen.yaml)",
        path.display()
    );
    path
}

fn documents(path: &Path) -> Vec<Yaml> {
    let text = fs::read_to_string(path).expect("read YAML");
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| <Yaml as serde::Deserialize>::deserialize(document).expect("YAML"))
        .filter(|document| !document.is_null())
        .collect()
}

/// (apiVersion, kind) to the version's openAPIV3Schema.
fn schemas() -> BTreeMap<(String, String), Yaml> {
    let mut schemas = BTreeMap::new();
    for crd in documents(&crds_file()) {
        let group = crd["spec"]["group"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let kind = crd["spec"]["names"]["kind"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for version in crd["spec"]["versions"].as_sequence().into_iter().flatten() {
            let name = version["name"].as_str().unwrap_or_default();
            schemas.insert(
                (format!("{group}/{name}"), kind.clone()),
                version["schema"]["openAPIV3Schema"].clone(),
            );
        }
    }
    schemas
}

/// The ways `value` at `path` breaks `schema`.
fn violations(value: &Yaml, schema: &Yaml, path: &str, found: &mut Vec<String>) {
    if schema["x-kubernetes-preserve-unknown-fields"] == Yaml::Bool(true)
        && schema.get("properties").is_none()
    {
        return;
    }
    if schema["x-kubernetes-int-or-string"] == Yaml::Bool(true) {
        if !(value.is_string() || value.is_i64() || value.is_u64()) {
            found.push(format!("{path}: expected an integer or a string"));
        }
        return;
    }
    let expected = schema["type"].as_str();
    let fits = match expected {
        Some("object") => value.is_mapping(),
        Some("array") => value.is_sequence(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_bool(),
        _ => true,
    };
    if !fits {
        found.push(format!(
            "{path}: expected {}, got {value:?}",
            expected.unwrap_or("?")
        ));
        return;
    }
    if let Some(allowed) = schema["enum"].as_sequence() {
        if !allowed.contains(value) {
            found.push(format!("{path}: {value:?} is not one of {allowed:?}"));
        }
    }
    if let Some(mapping) = value.as_mapping() {
        for required in schema["required"].as_sequence().into_iter().flatten() {
            if !mapping.contains_key(required) {
                found.push(format!(
                    "{path}: {} is required",
                    required.as_str().unwrap_or("?")
                ));
            }
        }
        let properties = schema["properties"].as_mapping();
        for (key, item) in mapping {
            let name = key.as_str().unwrap_or("?");
            let child = format!("{path}.{name}");
            match (
                properties.and_then(|p| p.get(key)),
                schema.get("additionalProperties"),
            ) {
                (Some(property), _) => violations(item, property, &child, found),
                (None, Some(additional)) if additional.is_mapping() => {
                    violations(item, additional, &child, found)
                }
                (None, _) if properties.is_some() => {
                    found.push(format!("{child}: no such field in the CRD"))
                }
                _ => {}
            }
        }
    }
    if let Some(items) = value.as_sequence() {
        for (index, item) in items.iter().enumerate() {
            violations(item, &schema["items"], &format!("{path}[{index}]"), found);
        }
    }
}

#[test]
fn every_istio_resource_in_the_examples_is_valid_against_istios_crds() {
    let schemas = schemas();
    assert!(schemas.len() >= 4, "no CRDs read");
    let mut checked = Vec::new();
    let mut found = Vec::new();
    let mut files: Vec<PathBuf> = fs::read_dir(repo().join("examples/istio"))
        .expect("examples/istio")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect();
    files.sort();
    for file in files {
        for document in documents(&file) {
            let api = document["apiVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if !api.contains("istio.io/") {
                continue;
            }
            let kind = document["kind"].as_str().unwrap_or_default().to_string();
            let name = document["metadata"]["name"].as_str().unwrap_or("?");
            let origin = format!("{}: {kind} {name}", file.display());
            let Some(schema) = schemas.get(&(api.clone(), kind.clone())) else {
                found.push(format!("{origin}: no CRD for {api} {kind}"));
                continue;
            };
            // The CRD describes spec (and status); metadata is Kubernetes' own.
            let mut body = document.clone();
            if let Some(mapping) = body.as_mapping_mut() {
                for key in ["apiVersion", "kind", "metadata"] {
                    mapping.remove(key);
                }
            }
            let mut here = Vec::new();
            violations(&body, schema, "", &mut here);
            found.extend(
                here.into_iter()
                    .map(|problem| format!("{origin}: {problem}")),
            );
            checked.push(origin);
        }
    }
    assert!(
        checked
            .iter()
            .filter(|origin| origin.contains("WasmPlugin"))
            .count()
            >= 2,
        "{checked:?}"
    );
    assert!(checked
        .iter()
        .any(|origin| origin.contains("Gateway springbootapp-gateway")));
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn the_check_finds_an_unknown_field_a_wrong_type_and_a_bad_enum() {
    let schemas = schemas();
    let schema = &schemas[&(
        "extensions.istio.io/v1alpha1".to_string(),
        "WasmPlugin".to_string(),
    )];
    let plugin: Yaml = serde_yaml::from_str(
        "spec: { url: oci://x, failStrategy: FAIL_SOMETIMES, priorty: 1, selector: { matchLabels: { app: 3 } } }",
    )
    .expect("YAML");
    let mut found = Vec::new();
    violations(&plugin, schema, "", &mut found);
    let text = found.join("\n");
    assert!(
        text.contains(".spec.failStrategy: String(\"FAIL_SOMETIMES\") is not one of"),
        "{text}"
    );
    assert!(
        text.contains(".spec.priorty: no such field in the CRD"),
        "{text}"
    );
    assert!(
        text.contains(".spec.selector.matchLabels.app: expected string"),
        "{text}"
    );
}
