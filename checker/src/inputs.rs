//! Finding the plugin configs in the files a user names: a JSON file is one config (what
//! Envoy's `configuration` StringValue holds); a YAML file holds Kubernetes documents, and each
//! Istio `WasmPlugin` among them carries one in `spec.pluginConfig`. A folder is searched for
//! both.

use crate::istio_struct::to_struct_json;
use crate::mesh::WasmPluginRef;
use crate::{Entry, Verdict};
use serde::Deserialize;
use serde_yaml::Value as Yaml;
use std::fs;
use std::path::{Path, PathBuf};
use traffic_split::config::{compile, compile_value, ConfigError};

/// Where a WasmPlugin's config lives, as error paths spell it.
pub const PLUGIN_CONFIG_PATH: &str = "spec.pluginConfig";
/// The API group of Istio's WasmPlugin.
const WASM_PLUGIN_GROUP: &str = "extensions.istio.io/";

/// Checks a file or, recursively, a folder. In a folder, YAML files without a WasmPlugin and
/// JSON objects without `routes` are reported as skipped; a file named on its own must hold a
/// config.
pub fn check_path(path: &Path) -> Vec<Entry> {
    if path.is_dir() {
        let mut entries = Vec::new();
        for file in config_files(path) {
            entries.extend(check_file(&file, true));
        }
        if entries.is_empty() {
            entries.push(file_error(
                path,
                "no .json, .yaml or .yml file in this folder",
            ));
        }
        entries
    } else {
        check_file(path, false)
    }
}

/// The `.json`, `.yaml` and `.yml` files under `dir`, in a stable order; hidden entries are
/// left out.
fn config_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(listing) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in listing.flatten() {
            let path = entry.path();
            let hidden = entry.file_name().to_string_lossy().starts_with('.');
            if hidden {
                continue;
            }
            if path.is_dir() {
                pending.push(path);
            } else if kind_of(&path).is_some() {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[derive(Clone, Copy)]
enum FileKind {
    Json,
    Yaml,
}

fn kind_of(path: &Path) -> Option<FileKind> {
    match path.extension()?.to_str()? {
        "json" => Some(FileKind::Json),
        "yaml" | "yml" => Some(FileKind::Yaml),
        _ => None,
    }
}

fn file_error(path: &Path, message: impl Into<String>) -> Entry {
    Entry {
        origin: path.display().to_string(),
        verdict: Verdict::Invalid(vec![ConfigError {
            path: String::new(),
            message: message.into(),
        }]),
        notes: Vec::new(),
        plugin: None,
    }
}

fn check_file(path: &Path, in_folder: bool) -> Vec<Entry> {
    let Some(kind) = kind_of(path) else {
        return vec![file_error(
            path,
            "expected a .json plugin config or a .yaml/.yml file with WasmPlugins",
        )];
    };
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(error) => return vec![file_error(path, format!("cannot read: {error}"))],
    };
    match kind {
        FileKind::Json if in_folder && is_other_json(&text) => vec![Entry {
            origin: path.display().to_string(),
            verdict: Verdict::Skipped("a JSON object without \"routes\": not a plugin config"),
            notes: Vec::new(),
            plugin: None,
        }],
        FileKind::Json => vec![Entry {
            origin: path.display().to_string(),
            verdict: verdict(compile(&text)),
            notes: Vec::new(),
            plugin: None,
        }],
        FileKind::Yaml => check_yaml(path, &String::from_utf8_lossy(&text), in_folder),
    }
}

/// A JSON object without the one field every plugin config has, such as a Grafana dashboard
/// beside the configs; broken JSON, or an object with `routes`, is a config to check.
fn is_other_json(text: &[u8]) -> bool {
    matches!(
        serde_json::from_slice::<serde_json::Value>(text),
        Ok(serde_json::Value::Object(object)) if !object.contains_key("routes")
    )
}

fn verdict(result: Result<traffic_split::plan::Plan, Vec<ConfigError>>) -> Verdict {
    match result {
        Ok(plan) => Verdict::Ok(plan),
        Err(errors) => Verdict::Invalid(errors),
    }
}

fn check_yaml(path: &Path, text: &str, in_folder: bool) -> Vec<Entry> {
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        match Yaml::deserialize(document) {
            Ok(value) => documents.push(value),
            Err(error) => return vec![file_error(path, format!("not valid YAML: {error}"))],
        }
    }
    let mut entries = Vec::new();
    for (index, document) in documents.iter().enumerate() {
        if document["kind"].as_str() == Some("WasmPlugin") {
            entries.push(check_wasm_plugin(path, index + 1, document));
        }
    }
    if entries.is_empty() {
        let reason = "no WasmPlugin in it";
        entries.push(if in_folder {
            Entry {
                origin: path.display().to_string(),
                verdict: Verdict::Skipped(reason),
                notes: Vec::new(),
                plugin: None,
            }
        } else {
            file_error(path, reason)
        });
    }
    entries
}

/// Checks one WasmPlugin document: the resource fields a config depends on, then the config
/// exactly as Istio will hand it to the filter.
fn check_wasm_plugin(path: &Path, number: usize, document: &Yaml) -> Entry {
    let metadata = &document["metadata"];
    let name = match (metadata["namespace"].as_str(), metadata["name"].as_str()) {
        (Some(namespace), Some(name)) => format!("{namespace}/{name}"),
        (None, Some(name)) => name.to_string(),
        _ => format!("(document {number}, no metadata.name)"),
    };
    let mut entry = Entry {
        origin: format!("{}: WasmPlugin {name}", path.display()),
        verdict: Verdict::Invalid(Vec::new()),
        notes: Vec::new(),
        plugin: Some(WasmPluginRef::from_document(path, document)),
    };
    let mut errors = Vec::new();
    let mut error = |path: &str, message: String| {
        errors.push(ConfigError {
            path: path.to_string(),
            message,
        })
    };
    match document["apiVersion"].as_str() {
        Some(api) if api.starts_with(WASM_PLUGIN_GROUP) => {}
        Some(api) => error(
            "apiVersion",
            format!("expected extensions.istio.io/v1alpha1, got {api:?}"),
        ),
        None => error(
            "apiVersion",
            "required: extensions.istio.io/v1alpha1".into(),
        ),
    }
    let spec = &document["spec"];
    match spec["url"].as_str() {
        Some(url) if !url.is_empty() => {}
        _ => error(
            "spec.url",
            "required: where the sidecars fetch the module (oci://host/name:tag)".into(),
        ),
    }
    match spec.get("sha256").map(|digest| digest.as_str()) {
        None | Some(Some("")) => entry
            .notes
            .push("no spec.sha256: the sidecars will not verify the module they pull".into()),
        Some(Some(digest)) if is_sha256(digest) && digest.bytes().all(|b| b == b'0') => entry
            .notes
            .push("spec.sha256 is a placeholder: put the digest `make oci` prints there".into()),
        Some(Some(digest)) if is_sha256(digest) => {}
        Some(_) => error(
            "spec.sha256",
            "expected 64 lower-case hex digits (the manifest digest `make oci` prints)".into(),
        ),
    }
    match spec.get("pluginConfig") {
        None | Some(Yaml::Null) => error(
            PLUGIN_CONFIG_PATH,
            "required: the traffic-split config (the filter refuses an empty one)".into(),
        ),
        Some(config) => match to_struct_json(config, PLUGIN_CONFIG_PATH) {
            Ok(json) => match compile_value(&json) {
                Ok(plan) if errors.is_empty() => {
                    entry.verdict = Verdict::Ok(plan);
                    return entry;
                }
                Ok(_) => {}
                Err(config_errors) => {
                    errors.extend(config_errors.into_iter().map(|e| ConfigError {
                        path: prefixed(&e.path),
                        message: e.message,
                    }))
                }
            },
            Err(conversion_errors) => errors.extend(conversion_errors),
        },
    }
    entry.verdict = Verdict::Invalid(errors);
    entry
}

fn prefixed(path: &str) -> String {
    if path.is_empty() {
        PLUGIN_CONFIG_PATH.to_string()
    } else {
        format!("{PLUGIN_CONFIG_PATH}.{path}")
    }
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
