//! Every custom resource under examples/ (Istio's, Gateway API's, Envoy Gateway's) is valid
//! against its project's own CRD: each field is one the CRD's openAPIV3Schema knows
//! (Kubernetes' strict field validation would refuse an unknown one), of its type, with its
//! enum values, its required fields and its length and count limits. The CRDs are cut from
//! each project's repository to the kinds the examples use, in checker/tests/data/ (each
//! file's header names the revision); `$ISTIO_CRDS`, `$GATEWAY_API_CRDS` and
//! `$ENVOY_GATEWAY_CRDS` point at other copies, e.g. the whole files at a newer revision.

use serde_yaml::Value as Yaml;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The CRD files: (environment variable for another copy, the fixture).
const CRD_FILES: [(&str, &str); 3] = [
    ("ISTIO_CRDS", "istio-crds.yaml"),
    ("GATEWAY_API_CRDS", "gateway-api-crds.yaml"),
    ("ENVOY_GATEWAY_CRDS", "envoy-gateway-crds.yaml"),
];

fn crd_files() -> Vec<PathBuf> {
    CRD_FILES
        .iter()
        .map(|(variable, fixture)| {
            let path = std::env::var_os(variable)
                .map(PathBuf::from)
                .unwrap_or_else(|| repo().join("checker/tests/data").join(fixture));
            assert!(
                path.is_file(),
                "no CRDs at {} (set {variable} to another copy)",
                path.display()
            );
            path
        })
        .collect()
}

/// The API groups whose resources the examples must hold valid.
const CUSTOM_GROUPS: [&str; 3] = [
    "istio.io/",
    "gateway.networking.k8s.io/",
    "gateway.envoyproxy.io/",
];

/// Every YAML file under examples/, recursively.
fn example_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![repo().join("examples")];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).expect("a folder").flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path
                .extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
            {
                files.push(path);
            }
        }
    }
    files.sort();
    files
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
    for crd in crd_files().iter().flat_map(|file| documents(file)) {
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
    // Every schema of an allOf holds (kubebuilder writes an enum of a named type this way).
    for part in schema["allOf"].as_sequence().into_iter().flatten() {
        violations(value, part, path, found);
    }
    if let Some(allowed) = schema["enum"].as_sequence() {
        if !allowed.contains(value) {
            found.push(format!("{path}: {value:?} is not one of {allowed:?}"));
        }
    }
    let limit = |key: &str| schema[key].as_u64().map(|limit| limit as usize);
    let size = value
        .as_str()
        .map(|text| text.chars().count())
        .or_else(|| value.as_sequence().map(Vec::len));
    if let Some(size) = size {
        let (min, max) = if value.is_string() {
            (limit("minLength"), limit("maxLength"))
        } else {
            (limit("minItems"), limit("maxItems"))
        };
        if min.is_some_and(|min| size < min) || max.is_some_and(|max| size > max) {
            found.push(format!("{path}: {size} is outside {min:?}..{max:?}"));
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
fn every_custom_resource_in_the_examples_is_valid_against_its_crd() {
    let schemas = schemas();
    assert!(
        schemas.len() >= 9,
        "not every CRD read: {:?}",
        schemas.keys()
    );
    let mut checked = Vec::new();
    let mut found = Vec::new();
    for file in example_files() {
        for document in documents(&file) {
            let api = document["apiVersion"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if !CUSTOM_GROUPS.iter().any(|group| api.contains(group)) {
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
    let count = |kind: &str| {
        checked
            .iter()
            .filter(|origin| origin.contains(&format!(": {kind} ")))
            .count()
    };
    // The examples the docs promise: a TrafficExtension in a sidecar, at the ingress gateway
    // and in a waypoint; the WasmPlugins for Istio up to 1.29; Envoy Gateway's policy and the
    // HTTPRoutes of the waypoint and of Envoy Gateway.
    assert!(count("TrafficExtension") >= 3, "{checked:?}");
    assert!(count("WasmPlugin") >= 2, "{checked:?}");
    assert!(count("EnvoyExtensionPolicy") >= 1, "{checked:?}");
    assert!(count("HTTPRoute") >= 2, "{checked:?}");
    assert!(count("Gateway") >= 3, "{checked:?}");
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

#[test]
fn the_check_reads_the_gateway_api_and_envoy_gateway_schemas_too() {
    let schemas = schemas();
    let route = &schemas[&(
        "gateway.networking.k8s.io/v1".to_string(),
        "HTTPRoute".to_string(),
    )];
    let wrong: Yaml = serde_yaml::from_str(
        "spec: { rules: [ { matches: [ { headers: [ { name: x-split-version, vaule: v1 } ] } ] } ] }",
    )
    .expect("YAML");
    let mut found = Vec::new();
    violations(&wrong, route, "", &mut found);
    let text = found.join("\n");
    assert!(
        text.contains("headers[0].vaule: no such field in the CRD"),
        "{text}"
    );
    assert!(text.contains("headers[0]: value is required"), "{text}");
    let policy = &schemas[&(
        "gateway.envoyproxy.io/v1alpha1".to_string(),
        "EnvoyExtensionPolicy".to_string(),
    )];
    let wrong: Yaml =
        serde_yaml::from_str("spec: { wasm: [ { code: { type: Docker }, failOpen: yes } ] }")
            .expect("YAML");
    let mut found = Vec::new();
    violations(&wrong, policy, "", &mut found);
    let text = found.join("\n");
    assert!(
        text.contains(".spec.wasm[0].code.type: String(\"Docker\") is not one of"),
        "{text}"
    );
    assert!(
        text.contains(".spec.wasm[0].failOpen: expected boolean"),
        "{text}"
    );
}
