//! The resources that load the filter into an Envoy, and where each keeps the filter's config:
//! Istio's `TrafficExtension` (1.30 and later: `spec.wasm.pluginConfig`) and `WasmPlugin` (up
//! to 1.29, still served: `spec.pluginConfig`), both converted to JSON as a protobuf `Struct`
//! ([`crate::istio_struct`]); and Envoy Gateway's `EnvoyExtensionPolicy`, one config per
//! `spec.wasm[i].config`, handed to the filter as the JSON Kubernetes stores (integers stay
//! integers). Each resource's own fields a config depends on are checked here too; what it
//! attaches to is kept as a [`PluginRef`] for the mesh check ([`crate::mesh`]).

use crate::istio_struct::to_struct_json;
use crate::{Entry, Verdict};
use serde_json::Value as Json;
use serde_yaml::Value as Yaml;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use traffic_split::config::{compile_value, ConfigError};

/// The kinds of resource that carry a traffic-split config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PluginKind {
    TrafficExtension,
    WasmPlugin,
    EnvoyExtensionPolicy,
}

impl PluginKind {
    pub fn of(document: &Yaml) -> Option<PluginKind> {
        let api = at(document, &["apiVersion"]).as_str().unwrap_or_default();
        match at(document, &["kind"]).as_str()? {
            "TrafficExtension" => Some(PluginKind::TrafficExtension),
            "WasmPlugin" => Some(PluginKind::WasmPlugin),
            "EnvoyExtensionPolicy" if api.starts_with("gateway.envoyproxy.io/") => {
                Some(PluginKind::EnvoyExtensionPolicy)
            }
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PluginKind::TrafficExtension => "TrafficExtension",
            PluginKind::WasmPlugin => "WasmPlugin",
            PluginKind::EnvoyExtensionPolicy => "EnvoyExtensionPolicy",
        }
    }

    fn api_group(self) -> &'static str {
        match self {
            PluginKind::TrafficExtension | PluginKind::WasmPlugin => "extensions.istio.io/",
            PluginKind::EnvoyExtensionPolicy => "gateway.envoyproxy.io/",
        }
    }
}

/// A resource a policy attaches to (`targetRefs`): its kind and name, in the policy's
/// namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TargetRef {
    pub kind: String,
    pub name: String,
}

/// How a plugin picks the Envoys it runs in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attachment {
    /// `selector.matchLabels`: the workloads (sidecars, or an Istio gateway's pods) with these
    /// labels.
    Selector(BTreeMap<String, String>),
    /// `targetRefs` (or `targetRef`): Gateways, GatewayClasses, Services (their waypoint),
    /// HTTPRoutes (Envoy Gateway).
    Targets(Vec<TargetRef>),
    /// Neither: every workload of the namespace (of the mesh, in the root namespace).
    Namespace,
}

/// The parts of a plugin resource the mesh check needs.
#[derive(Clone, Debug)]
pub struct PluginRef {
    pub kind: PluginKind,
    pub file: PathBuf,
    /// `namespace/name`, or `name`.
    pub name: String,
    pub namespace: Option<String>,
    pub attachment: Attachment,
    /// Where the config sits in the resource, as error paths spell it.
    pub config_path: String,
}

/// The value at `path` in a YAML tree, or null: reading a manifest never panics.
pub fn at<'a>(value: &'a Yaml, path: &[&str]) -> &'a Yaml {
    static NULL: Yaml = Yaml::Null;
    path.iter()
        .try_fold(value, |value, key| value.get(key))
        .unwrap_or(&NULL)
}

/// A label map (`matchLabels`, `metadata.labels`), scalars as strings.
pub fn labels(value: &Yaml) -> Option<BTreeMap<String, String>> {
    value.as_mapping().map(|mapping| {
        mapping
            .iter()
            .filter_map(|(key, value)| Some((key.as_str()?.to_string(), scalar(value)?)))
            .collect()
    })
}

fn scalar(value: &Yaml) -> Option<String> {
    match value {
        Yaml::String(text) => Some(text.clone()),
        Yaml::Number(number) => Some(number.to_string()),
        Yaml::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// `namespace/name` of a resource, or what stands in for a missing name.
pub fn qualified_name(document: &Yaml, number: usize) -> (Option<String>, String) {
    let namespace = at(document, &["metadata", "namespace"])
        .as_str()
        .map(str::to_string);
    let name = match (&namespace, at(document, &["metadata", "name"]).as_str()) {
        (Some(namespace), Some(name)) => format!("{namespace}/{name}"),
        (None, Some(name)) => name.to_string(),
        _ => format!("(document {number}, no metadata.name)"),
    };
    (namespace, name)
}

fn attachment(spec: &Yaml) -> Attachment {
    let mut targets: Vec<TargetRef> = at(spec, &["targetRefs"])
        .as_sequence()
        .into_iter()
        .flatten()
        .chain(
            at(spec, &["targetRef"])
                .as_mapping()
                .map(|_| &spec["targetRef"]),
        )
        .filter_map(|target| {
            Some(TargetRef {
                kind: at(target, &["kind"]).as_str()?.to_string(),
                name: at(target, &["name"]).as_str()?.to_string(),
            })
        })
        .collect();
    targets.sort();
    targets.dedup();
    if !targets.is_empty() {
        return Attachment::Targets(targets);
    }
    match labels(at(spec, &["selector", "matchLabels"])) {
        Some(selector) => Attachment::Selector(selector),
        None => Attachment::Namespace,
    }
}

/// Every entry one plugin resource yields: one for an Istio resource, one per Wasm extension
/// of an EnvoyExtensionPolicy (its Lua and ext_proc extensions are not the filter's).
pub fn check_document(path: &Path, number: usize, kind: PluginKind, document: &Yaml) -> Vec<Entry> {
    let (namespace, name) = qualified_name(document, number);
    let spec = at(document, &["spec"]);
    let plugin = |config_path: String| PluginRef {
        kind,
        file: path.to_path_buf(),
        name: name.clone(),
        namespace: namespace.clone(),
        attachment: attachment(spec),
        config_path,
    };
    let origin = format!("{}: {} {name}", path.display(), kind.name());
    let mut api_errors = Vec::new();
    match at(document, &["apiVersion"]).as_str() {
        Some(api) if api.starts_with(kind.api_group()) => {}
        other => api_errors.push(ConfigError {
            path: "apiVersion".into(),
            message: match other {
                Some(api) => format!("expected {}v1alpha1, got {api:?}", kind.api_group()),
                None => format!("required: {}v1alpha1", kind.api_group()),
            },
        }),
    }
    match kind {
        PluginKind::WasmPlugin => vec![istio_entry(
            origin,
            plugin("spec.pluginConfig".into()),
            spec,
            "spec",
            api_errors,
        )],
        PluginKind::TrafficExtension => {
            if at(spec, &["wasm"]).is_null() {
                let reason = if at(spec, &["lua"]).is_null() {
                    "no spec.wasm: not a Wasm extension"
                } else {
                    "a Lua extension, not the filter"
                };
                return vec![Entry::skipped(origin, reason)];
            }
            let wasm = at(spec, &["wasm"]);
            vec![istio_entry(
                origin,
                plugin("spec.wasm.pluginConfig".into()),
                wasm,
                "spec.wasm",
                api_errors,
            )]
        }
        PluginKind::EnvoyExtensionPolicy => {
            let extensions = at(spec, &["wasm"])
                .as_sequence()
                .cloned()
                .unwrap_or_default();
            if extensions.is_empty() {
                return vec![Entry::skipped(
                    origin,
                    "no spec.wasm: no Wasm extension in it",
                )];
            }
            extensions
                .iter()
                .enumerate()
                .map(|(index, wasm)| {
                    let label = at(wasm, &["name"])
                        .as_str()
                        .map(|name| format!(" wasm {name}"))
                        .unwrap_or_else(|| format!(" wasm[{index}]"));
                    envoy_gateway_entry(
                        format!("{origin}{label}"),
                        plugin(format!("spec.wasm[{index}].config")),
                        wasm,
                        index,
                        api_errors.clone(),
                    )
                })
                .collect()
        }
    }
}

/// An Istio resource: `url`, `sha256`, then the config as Istio hands it to the filter. `base`
/// is where `wasm` sits (`spec`, or `spec.wasm` in a TrafficExtension).
fn istio_entry(
    origin: String,
    plugin: PluginRef,
    wasm: &Yaml,
    base: &str,
    mut errors: Vec<ConfigError>,
) -> Entry {
    let mut notes = Vec::new();
    match at(wasm, &["url"]).as_str() {
        Some(url) if !url.is_empty() => {}
        _ => errors.push(ConfigError {
            path: format!("{base}.url"),
            message: "required: where the proxies fetch the module (oci://host/name:tag)".into(),
        }),
    }
    digest_check(
        at(wasm, &["sha256"]),
        &format!("{base}.sha256"),
        &mut errors,
        &mut notes,
    );
    let config = match at(wasm, &["pluginConfig"]) {
        Yaml::Null => Err(vec![ConfigError {
            path: plugin.config_path.clone(),
            message: "required: the traffic-split config (the filter refuses an empty one)".into(),
        }]),
        config => to_struct_json(config, &plugin.config_path),
    };
    finish(origin, plugin, config, errors, notes)
}

/// One Wasm extension of an EnvoyExtensionPolicy: its code source, `failOpen`, the config.
fn envoy_gateway_entry(
    origin: String,
    plugin: PluginRef,
    wasm: &Yaml,
    index: usize,
    mut errors: Vec<ConfigError>,
) -> Entry {
    let mut notes = Vec::new();
    let base = format!("spec.wasm[{index}]");
    let code = at(wasm, &["code"]);
    match at(code, &["type"]).as_str() {
        Some("Image") => {
            if at(code, &["image", "url"])
                .as_str()
                .is_none_or(str::is_empty)
            {
                errors.push(ConfigError {
                    path: format!("{base}.code.image.url"),
                    message: "required with type Image: the OCI image (registry/name:tag)".into(),
                });
            }
            digest_check(
                at(code, &["image", "sha256"]),
                &format!("{base}.code.image.sha256"),
                &mut errors,
                &mut notes,
            );
        }
        Some("HTTP") => {
            digest_check(
                at(code, &["http", "sha256"]),
                &format!("{base}.code.http.sha256"),
                &mut errors,
                &mut notes,
            );
        }
        other => errors.push(ConfigError {
            path: format!("{base}.code.type"),
            message: format!(
                "expected Image (the OCI image `make push` pushed) or HTTP, got {other:?}"
            ),
        }),
    }
    if at(wasm, &["failOpen"]).as_bool() != Some(true) {
        notes.push(format!(
            "{base}.failOpen is not true: should the module fail to load or crash, Envoy Gateway \
             answers 5xx to every request of the routes it covers, instead of leaving them to \
             the HTTPRoute's default rule"
        ));
    }
    let config = match at(wasm, &["config"]) {
        Yaml::Null => Err(vec![ConfigError {
            path: plugin.config_path.clone(),
            message: "required: the traffic-split config (the filter refuses an empty one)".into(),
        }]),
        // Kubernetes keeps this field as JSON and Envoy Gateway passes it on byte for byte:
        // numbers stay as written.
        config => serde_json::to_value(config).map_err(|error| {
            vec![ConfigError {
                path: plugin.config_path.clone(),
                message: format!("not representable as JSON: {error}"),
            }]
        }),
    };
    finish(origin, plugin, config, errors, notes)
}

fn finish(
    origin: String,
    plugin: PluginRef,
    config: Result<Json, Vec<ConfigError>>,
    mut errors: Vec<ConfigError>,
    notes: Vec<String>,
) -> Entry {
    let verdict = match config {
        Ok(json) => match compile_value(&json) {
            Ok(plan) if errors.is_empty() => Verdict::Ok(plan),
            Ok(_) => Verdict::Invalid(errors),
            Err(config_errors) => {
                errors.extend(config_errors.into_iter().map(|error| ConfigError {
                    path: prefixed(&plugin.config_path, &error.path),
                    message: error.message,
                }));
                Verdict::Invalid(errors)
            }
        },
        Err(conversion_errors) => {
            errors.extend(conversion_errors);
            Verdict::Invalid(errors)
        }
    };
    Entry {
        origin,
        verdict,
        notes,
        plugin: Some(plugin),
    }
}

/// The JSON the filter receives from `document`'s config at `config_path` (as [`PluginRef`]
/// names it), for the tests that run it in a real Envoy.
pub fn filter_json(document: &Yaml, config_path: &str) -> Option<Json> {
    match PluginKind::of(document)? {
        PluginKind::WasmPlugin => {
            to_struct_json(at(document, &["spec", "pluginConfig"]), config_path).ok()
        }
        PluginKind::TrafficExtension => {
            to_struct_json(at(document, &["spec", "wasm", "pluginConfig"]), config_path).ok()
        }
        PluginKind::EnvoyExtensionPolicy => {
            let index: usize = config_path
                .strip_prefix("spec.wasm[")?
                .split(']')
                .next()?
                .parse()
                .ok()?;
            let wasm = at(document, &["spec", "wasm"]).as_sequence()?.get(index)?;
            serde_json::to_value(at(wasm, &["config"])).ok()
        }
    }
}

/// Every traffic-split config in a YAML text, as the filter receives it: (the resource's kind
/// and name, the JSON). For the tests that run each example's config in a real Envoy.
pub fn filter_configs(text: &str) -> Vec<(String, Json)> {
    let Ok(documents) = crate::files::yaml_documents(text) else {
        return Vec::new();
    };
    let mut configs = Vec::new();
    for (index, document) in documents.iter().enumerate() {
        let Some(kind) = PluginKind::of(document) else {
            continue;
        };
        let (_, name) = qualified_name(document, index + 1);
        let paths: Vec<String> = match kind {
            PluginKind::WasmPlugin => vec!["spec.pluginConfig".into()],
            PluginKind::TrafficExtension => vec!["spec.wasm.pluginConfig".into()],
            PluginKind::EnvoyExtensionPolicy => (0..at(document, &["spec", "wasm"])
                .as_sequence()
                .map_or(0, Vec::len))
                .map(|wasm| format!("spec.wasm[{wasm}].config"))
                .collect(),
        };
        for path in paths {
            if let Some(json) = filter_json(document, &path) {
                configs.push((format!("{} {name} {path}", kind.name()), json));
            }
        }
    }
    configs
}

fn prefixed(base: &str, path: &str) -> String {
    if path.is_empty() {
        base.to_string()
    } else {
        format!("{base}.{path}")
    }
}

fn digest_check(digest: &Yaml, path: &str, errors: &mut Vec<ConfigError>, notes: &mut Vec<String>) {
    match digest {
        Yaml::Null => notes.push(format!(
            "no {path}: the proxies will not verify the module they pull"
        )),
        Yaml::String(digest) if digest.is_empty() => notes.push(format!(
            "no {path}: the proxies will not verify the module they pull"
        )),
        Yaml::String(digest) if is_sha256(digest) && digest.bytes().all(|b| b == b'0') => notes
            .push(format!(
                "{path} is a placeholder: put the digest `make oci` prints there"
            )),
        Yaml::String(digest) if is_sha256(digest) => {}
        _ => errors.push(ConfigError {
            path: path.to_string(),
            message: "expected 64 lower-case hex digits (the manifest digest `make oci` prints)"
                .into(),
        }),
    }
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
