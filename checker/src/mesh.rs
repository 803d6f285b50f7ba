//! A WasmPlugin read together with the Istio manifests beside it: the VirtualServices that
//! route on the filter's version header, the DestinationRules whose subsets they (and any
//! `outbound|port|subset|host` cluster of the config) name, and the workloads its selector
//! picks. A version no VirtualService routes is an error: its requests would take the default
//! route silently. What falls through (requests the filter does not split, callers it does
//! not select) is said in a note.
//!
//! The manifests come from the paths the user named and, for a named file, the other YAML
//! files of its folder (`traffic-split check examples/istio/traffic-split.yaml` sees the
//! DestinationRule in `springbootapp.yaml`).

use crate::{Entry, Verdict};
use serde::Deserialize;
use serde_yaml::Value as Yaml;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use traffic_split::config::ConfigError;
use traffic_split::plan::Plan;

/// The value at `path` in a YAML tree, or null: reading a manifest never panics.
fn at<'a>(value: &'a Yaml, path: &[&str]) -> &'a Yaml {
    static NULL: Yaml = Yaml::Null;
    path.iter()
        .try_fold(value, |value, key| value.get(key))
        .unwrap_or(&NULL)
}

/// The parts of a WasmPlugin resource the mesh check needs.
#[derive(Clone, Debug, Default)]
pub struct WasmPluginRef {
    pub file: PathBuf,
    pub namespace: Option<String>,
    /// `spec.selector.matchLabels`; `None` without a selector.
    pub selector: Option<BTreeMap<String, String>>,
}

impl WasmPluginRef {
    pub fn from_document(file: &Path, document: &Yaml) -> WasmPluginRef {
        WasmPluginRef {
            file: file.to_path_buf(),
            namespace: at(document, &["metadata", "namespace"])
                .as_str()
                .map(str::to_string),
            selector: labels(at(document, &["spec", "selector", "matchLabels"])),
        }
    }
}

fn labels(value: &Yaml) -> Option<BTreeMap<String, String>> {
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

/// A header condition of a VirtualService match.
#[derive(Debug)]
enum HeaderCondition {
    Exact(String),
    Prefix(String),
    /// A regex (or anything else): the check cannot tell which versions it takes.
    Other,
}

impl HeaderCondition {
    fn takes(&self, version: &str) -> Option<bool> {
        match self {
            HeaderCondition::Exact(value) => Some(value == version),
            HeaderCondition::Prefix(prefix) => Some(version.starts_with(prefix.as_str())),
            HeaderCondition::Other => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            HeaderCondition::Exact(value) => value.clone(),
            HeaderCondition::Prefix(prefix) => format!("{prefix}*"),
            HeaderCondition::Other => "(regex)".into(),
        }
    }
}

#[derive(Debug)]
struct HttpRoute {
    name: Option<String>,
    /// Each `match` entry's condition on the version header; an entry without one is `None`.
    version_conditions: Vec<Option<HeaderCondition>>,
    /// No `match` at all: the default route.
    matches_all: bool,
    /// (host, subset) of each destination.
    destinations: Vec<(String, Option<String>)>,
}

impl HttpRoute {
    fn describe(&self) -> String {
        let targets: Vec<String> = self
            .destinations
            .iter()
            .map(|(host, subset)| match subset {
                Some(subset) => format!("{host} subset {subset}"),
                None => host.clone(),
            })
            .collect();
        match &self.name {
            Some(name) => format!("route {name} -> {}", targets.join(", ")),
            None => format!("a route -> {}", targets.join(", ")),
        }
    }
}

#[derive(Debug)]
struct VirtualService {
    origin: String,
    routes: Vec<HttpRoute>,
    /// Whether it applies to sidecars (no `gateways`, or `mesh` among them) and to gateways
    /// (any other name among them).
    for_sidecars: bool,
    for_gateways: bool,
}

#[derive(Debug)]
struct DestinationRule {
    origin: String,
    host: String,
    subsets: Vec<String>,
}

#[derive(Debug)]
struct Workload {
    origin: String,
    namespace: Option<String>,
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Default)]
struct Manifests {
    virtual_services: Vec<(VirtualServiceSource, VirtualService)>,
    destination_rules: Vec<DestinationRule>,
    workloads: Vec<Workload>,
}

/// A VirtualService as written, to be read once the version header is known.
#[derive(Debug)]
struct VirtualServiceSource {
    namespace: Option<String>,
    document: Yaml,
}

/// A host as Istio resolves it: a short name in the resource's namespace.
fn full_host(host: &str, namespace: Option<&str>) -> String {
    let parts = host.split('.').count();
    match (parts, namespace) {
        (1, Some(namespace)) => format!("{host}.{namespace}.svc.cluster.local"),
        (2, _) => format!("{host}.svc.cluster.local"),
        _ => host.to_string(),
    }
}

impl Manifests {
    fn load(files: &[PathBuf]) -> Manifests {
        let mut manifests = Manifests::default();
        for file in files {
            let Ok(text) = fs::read_to_string(file) else {
                continue;
            };
            for document in serde_yaml::Deserializer::from_str(&text) {
                let Ok(document) = Yaml::deserialize(document) else {
                    break;
                };
                manifests.add(file, document);
            }
        }
        manifests
    }

    fn add(&mut self, file: &Path, document: Yaml) {
        let namespace = at(&document, &["metadata", "namespace"])
            .as_str()
            .map(str::to_string);
        let name = at(&document, &["metadata", "name"]).as_str().unwrap_or("?");
        let kind = at(&document, &["kind"])
            .as_str()
            .unwrap_or_default()
            .to_string();
        let qualified = match &namespace {
            Some(namespace) => format!("{namespace}/{name}"),
            None => name.to_string(),
        };
        let origin = format!("{kind} {qualified} ({})", file.display());
        match kind.as_str() {
            "VirtualService" => {
                let gateways: Vec<&str> = at(&document, &["spec", "gateways"])
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .filter_map(Yaml::as_str)
                    .collect();
                let for_sidecars = gateways.is_empty() || gateways.contains(&"mesh");
                let for_gateways = gateways.iter().any(|gateway| *gateway != "mesh");
                self.virtual_services.push((
                    VirtualServiceSource {
                        namespace,
                        document: document.clone(),
                    },
                    VirtualService {
                        origin,
                        routes: Vec::new(),
                        for_sidecars,
                        for_gateways,
                    },
                ))
            }
            "DestinationRule" => {
                let host = at(&document, &["spec", "host"])
                    .as_str()
                    .unwrap_or_default();
                self.destination_rules.push(DestinationRule {
                    origin,
                    host: full_host(host, namespace.as_deref()),
                    subsets: at(&document, &["spec", "subsets"])
                        .as_sequence()
                        .into_iter()
                        .flatten()
                        .filter_map(|subset| at(subset, &["name"]).as_str().map(str::to_string))
                        .collect(),
                });
            }
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
                if let Some(labels) =
                    labels(at(&document, &["spec", "template", "metadata", "labels"]))
                {
                    self.workloads.push(Workload {
                        origin,
                        namespace,
                        labels,
                    });
                }
            }
            "Pod" => {
                if let Some(labels) = labels(at(&document, &["metadata", "labels"])) {
                    self.workloads.push(Workload {
                        origin,
                        namespace,
                        labels,
                    });
                }
            }
            _ => {}
        }
    }

    /// The VirtualServices' routes, reading matches on `version_header`.
    fn read_routes(&mut self, version_header: &str) {
        for (source, service) in &mut self.virtual_services {
            service.routes = at(&source.document, &["spec", "http"])
                .as_sequence()
                .into_iter()
                .flatten()
                .map(|route| http_route(route, version_header, source.namespace.as_deref()))
                .collect();
        }
    }
}

fn http_route(route: &Yaml, version_header: &str, namespace: Option<&str>) -> HttpRoute {
    let matches = at(route, &["match"]).as_sequence();
    let version_conditions = matches
        .into_iter()
        .flatten()
        .map(|entry| {
            let headers = at(entry, &["headers"]).as_mapping()?;
            let condition = headers.iter().find_map(|(name, condition)| {
                name.as_str()
                    .is_some_and(|name| name.eq_ignore_ascii_case(version_header))
                    .then_some(condition)
            })?;
            Some(
                match (
                    at(condition, &["exact"]).as_str(),
                    at(condition, &["prefix"]).as_str(),
                ) {
                    (Some(exact), _) => HeaderCondition::Exact(exact.to_string()),
                    (None, Some(prefix)) => HeaderCondition::Prefix(prefix.to_string()),
                    _ => HeaderCondition::Other,
                },
            )
        })
        .collect();
    HttpRoute {
        name: at(route, &["name"]).as_str().map(str::to_string),
        version_conditions,
        matches_all: matches.is_none_or(|matches| matches.is_empty()),
        destinations: at(route, &["route"])
            .as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|target| {
                let destination = &at(target, &["destination"]);
                let host = at(destination, &["host"]).as_str()?;
                Some((
                    full_host(host, namespace),
                    at(destination, &["subset"]).as_str().map(str::to_string),
                ))
            })
            .collect(),
    }
}

/// The YAML files the mesh check reads for `paths`: each named file and the YAML files of its
/// folder, each named folder recursively.
fn manifest_files(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = BTreeSet::new();
    let is_yaml = |path: &Path| {
        path.extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
    };
    let mut pending: Vec<(PathBuf, bool)> = Vec::new();
    for path in paths {
        if path.is_dir() {
            pending.push((path.clone(), true));
        } else {
            if is_yaml(path) {
                files.insert(path.clone());
            }
            if let Some(parent) = path.parent() {
                let parent = if parent.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    parent
                };
                pending.push((parent.to_path_buf(), false));
            }
        }
    }
    while let Some((dir, recursive)) = pending.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if path.is_dir() {
                if recursive {
                    pending.push((path, true));
                }
            } else if is_yaml(&path) {
                files.insert(path);
            }
        }
    }
    files.into_iter().collect()
}

/// An Istio cluster name: `outbound|port|subset|host`.
fn istio_cluster(cluster: &str) -> Option<(&str, &str)> {
    let mut parts = cluster.split('|');
    let (direction, _port, subset, host) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    (direction == "outbound" && parts.next().is_none()).then_some((subset, host))
}

/// Reads every valid WasmPlugin entry together with the manifests beside it; a version the
/// mesh does not route turns the entry invalid, with every such error.
pub fn cross_check(paths: &[PathBuf], entries: &mut [Entry]) {
    if !entries.iter().any(|entry| entry.plugin.is_some()) {
        return;
    }
    let files = manifest_files(paths);
    for entry in entries.iter_mut() {
        let (Some(plugin), Verdict::Ok(plan)) = (&entry.plugin, &entry.verdict) else {
            continue;
        };
        let mut manifests = Manifests::load(&files);
        manifests.read_routes(&plan.version_header);
        let (errors, notes) = check_plugin(plugin, plan, &manifests);
        entry.notes.extend(notes);
        if !errors.is_empty() {
            entry.verdict = Verdict::Invalid(errors);
        }
    }
}

fn config_path(route: usize, destination: usize, field: &str) -> String {
    format!(
        "{}.routes[{route}].destinations[{destination}].{field}",
        crate::inputs::PLUGIN_CONFIG_PATH
    )
}

fn check_plugin(
    plugin: &WasmPluginRef,
    plan: &Plan,
    manifests: &Manifests,
) -> (Vec<ConfigError>, Vec<String>) {
    let mut errors = Vec::new();
    let mut notes = Vec::new();
    let header = &plan.version_header;
    // A plugin selecting Istio's gateways (`istio: ingressgateway`) meets the VirtualServices
    // bound to gateways; any other, a sidecar's, those of the mesh.
    let on_gateway = plugin.selector.as_ref().is_some_and(|selector| {
        selector
            .get("istio")
            .is_some_and(|value| value.contains("gateway"))
    });
    let routing: Vec<&VirtualService> = manifests
        .virtual_services
        .iter()
        .map(|(_, service)| service)
        .filter(|service| {
            if on_gateway {
                service.for_gateways
            } else {
                service.for_sidecars
            }
        })
        .filter(|service| {
            service
                .routes
                .iter()
                .any(|route| route.version_conditions.iter().any(Option::is_some))
        })
        .collect();
    let subsets_of = |host: &str| -> Vec<&DestinationRule> {
        manifests
            .destination_rules
            .iter()
            .filter(|rule| rule.host == host)
            .collect()
    };
    if routing.is_empty() {
        notes.push(format!(
            "no VirtualService beside it routes on {header}: which version a request reaches was \
             not checked (name the VirtualService's file or folder too)"
        ));
    }
    for (route_index, route) in plan.routes.iter().enumerate() {
        for (destination_index, destination) in route.destinations.iter().enumerate() {
            let version = &destination.version;
            if !routing.is_empty() {
                let taking: Vec<(&VirtualService, &HttpRoute)> = routing
                    .iter()
                    .flat_map(|service| service.routes.iter().map(move |r| (*service, r)))
                    .filter(|(_, http)| {
                        http.version_conditions.iter().any(|condition| {
                            condition
                                .as_ref()
                                .is_some_and(|condition| condition.takes(version) != Some(false))
                        })
                    })
                    .collect();
                if taking.is_empty() {
                    let routed: BTreeSet<String> = routing
                        .iter()
                        .flat_map(|service| &service.routes)
                        .flat_map(|http| &http.version_conditions)
                        .flatten()
                        .map(HeaderCondition::describe)
                        .collect();
                    let fallback = routing
                        .iter()
                        .find_map(|service| {
                            service
                                .routes
                                .iter()
                                .find(|http| http.matches_all)
                                .map(|http| format!("{}'s {}", service.origin, http.describe()))
                        })
                        .unwrap_or_else(|| "no route at all (Envoy answers 404)".to_string());
                    errors.push(ConfigError {
                        path: config_path(route_index, destination_index, "version"),
                        message: format!(
                            "no VirtualService routes {header}: {version} (they route {}); its \
                             requests would silently take {fallback}",
                            routed.into_iter().collect::<Vec<_>>().join(", ")
                        ),
                    });
                }
                for (service, http) in taking {
                    for (host, subset) in &http.destinations {
                        let Some(subset) = subset else { continue };
                        let rules = subsets_of(host);
                        if !rules.is_empty()
                            && !rules.iter().any(|rule| rule.subsets.contains(subset))
                        {
                            errors.push(ConfigError {
                                path: config_path(route_index, destination_index, "version"),
                                message: format!(
                                    "{}'s {} routes {header}: {version} to subset {subset}, which \
                                     no DestinationRule of {host} defines ({})",
                                    service.origin,
                                    http.name.as_deref().unwrap_or("route"),
                                    rules
                                        .iter()
                                        .flat_map(|rule| &rule.subsets)
                                        .cloned()
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            });
                        }
                    }
                }
            }
            if let Some((subset, host)) = destination.cluster.as_deref().and_then(istio_cluster) {
                let rules = subsets_of(host);
                if rules.is_empty() {
                    notes.push(format!(
                        "cluster of {version}: no DestinationRule of {host} beside it, so subset \
                         {subset} was not checked"
                    ));
                } else if !rules
                    .iter()
                    .any(|rule| rule.subsets.contains(&subset.to_string()))
                {
                    errors.push(ConfigError {
                        path: config_path(route_index, destination_index, "cluster"),
                        message: format!(
                            "subset {subset} of {host} is in no DestinationRule ({} define {}): \
                             Istio has no such cluster",
                            rules
                                .iter()
                                .map(|rule| rule.origin.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                            rules
                                .iter()
                                .flat_map(|rule| &rule.subsets)
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    });
                }
            }
        }
    }
    check_selector(plugin, manifests, &mut errors, &mut notes);
    for service in &routing {
        let fallback = match service.routes.iter().find(|http| http.matches_all) {
            Some(http) => http.describe(),
            None => "no route: Envoy answers 404".to_string(),
        };
        notes.push(format!(
            "falls through: requests the filter does not split (no route of it matches, or a \
             caller the WasmPlugin does not select), or with another {header}, take {}'s {fallback}",
            service.origin
        ));
    }
    (errors, notes)
}

fn check_selector(
    plugin: &WasmPluginRef,
    manifests: &Manifests,
    errors: &mut Vec<ConfigError>,
    notes: &mut Vec<String>,
) {
    // A WasmPlugin in the root namespace applies in every namespace; its selector is checked
    // against the workloads of its own (where the gateways live), and the rest is said.
    let root = plugin.namespace.as_deref() == Some("istio-system");
    let in_scope: Vec<&Workload> = manifests
        .workloads
        .iter()
        .filter(|workload| workload.namespace == plugin.namespace)
        .collect();
    if root {
        notes.push(
            "in the root namespace: its selector picks workloads in every namespace".to_string(),
        );
    }
    let Some(selector) = &plugin.selector else {
        notes.push(format!(
            "no selector: every workload of {} splits its calls",
            if root {
                "the mesh".to_string()
            } else {
                format!(
                    "namespace {}",
                    plugin.namespace.as_deref().unwrap_or("(none)")
                )
            }
        ));
        return;
    };
    let wanted = selector
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",");
    if in_scope.is_empty() {
        notes.push(format!(
            "selector {wanted}: no workload of its namespace beside it to check it against{}",
            if root {
                " (Istio's ingress gateway, labelled istio=ingressgateway, is installed with Istio)"
            } else {
                ""
            }
        ));
        return;
    }
    let selected: Vec<&str> = in_scope
        .iter()
        .filter(|workload| {
            selector
                .iter()
                .all(|(key, value)| workload.labels.get(key) == Some(value))
        })
        .map(|workload| workload.origin.as_str())
        .collect();
    if selected.is_empty() {
        errors.push(ConfigError {
            path: "spec.selector.matchLabels".into(),
            message: format!(
                "{wanted} selects none of the workloads beside it ({}): nothing would split",
                in_scope
                    .iter()
                    .map(|workload| workload.origin.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    } else {
        notes.push(format!(
            "splits the calls of {} only; every other caller takes the default route",
            selected.join(", ")
        ));
    }
}
