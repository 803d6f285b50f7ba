//! Reading the manifests beside a plugin into what the mesh check needs: the route tables
//! (Istio VirtualServices, Gateway API HTTPRoutes) with each rule's header conditions and
//! backends, the DestinationRules' subsets, Gateway API Gateways and their class, Services and
//! Namespaces with their ambient labels, and the workloads a selector may pick. Read once per
//! set of manifests, whatever the version header of the plugins checked against them.

use crate::plugins::{at, labels};
use serde_yaml::Value as Yaml;
use std::collections::BTreeMap;
use std::path::Path;

/// Istio's label binding a Service, or every Service of a namespace, to a waypoint.
pub const USE_WAYPOINT: &str = "istio.io/use-waypoint";
/// The label that puts a namespace's workloads into ambient mode (no sidecar).
pub const DATAPLANE_MODE: &str = "istio.io/dataplane-mode";
/// The GatewayClass of Istio's waypoints.
pub const WAYPOINT_CLASS: &str = "istio-waypoint";

/// A header condition of a route rule's match.
#[derive(Debug)]
pub enum HeaderCondition {
    Exact(String),
    Prefix(String),
    /// A regex (or anything else): the check cannot tell which versions it takes.
    Other,
}

impl HeaderCondition {
    /// Whether a request with header value `version` meets it; `None` when not known.
    pub fn takes(&self, version: &str) -> Option<bool> {
        match self {
            HeaderCondition::Exact(value) => Some(value == version),
            HeaderCondition::Prefix(prefix) => Some(version.starts_with(prefix.as_str())),
            HeaderCondition::Other => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            HeaderCondition::Exact(value) => value.clone(),
            HeaderCondition::Prefix(prefix) => format!("{prefix}*"),
            HeaderCondition::Other => "(regex)".into(),
        }
    }
}

/// Where a request that meets a rule goes: a host (a Service's full name, or another backend's
/// `kind/name`) and, for a VirtualService, a DestinationRule subset.
#[derive(Debug)]
pub struct Backend {
    pub host: String,
    pub subset: Option<String>,
}

/// One rule of a route table: a VirtualService's `http[]` entry or an HTTPRoute's `rules[]`.
#[derive(Debug)]
pub struct Rule {
    pub name: Option<String>,
    /// Each match entry's header conditions, by lower-case header name.
    pub matches: Vec<Vec<(String, HeaderCondition)>>,
    /// Whether it takes every request: no match, or a match on nothing but the path prefix `/`.
    pub catch_all: bool,
    pub backends: Vec<Backend>,
}

impl Rule {
    /// Each match entry's condition on `header` (an entry without one: `None`).
    pub fn conditions_on<'a>(
        &'a self,
        header: &'a str,
    ) -> impl Iterator<Item = Option<&'a HeaderCondition>> + 'a {
        self.matches.iter().map(move |entry| {
            entry
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(header))
                .map(|(_, condition)| condition)
        })
    }

    /// Every request the table gets and no more specific rule takes.
    pub fn matches_all(&self) -> bool {
        self.catch_all
    }

    pub fn describe(&self) -> String {
        let targets: Vec<String> = self
            .backends
            .iter()
            .map(|backend| match &backend.subset {
                Some(subset) => format!("{} subset {subset}", backend.host),
                None => backend.host.clone(),
            })
            .collect();
        match &self.name {
            Some(name) => format!("route {name} -> {}", targets.join(", ")),
            None => format!("a rule -> {}", targets.join(", ")),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableKind {
    VirtualService,
    HttpRoute,
}

impl TableKind {
    pub fn name(self) -> &'static str {
        match self {
            TableKind::VirtualService => "VirtualService",
            TableKind::HttpRoute => "HTTPRoute",
        }
    }
}

/// What a route table is bound to.
#[derive(Debug, PartialEq, Eq)]
pub enum Parent {
    /// A VirtualService for the mesh (no `gateways`, or `mesh` among them).
    Mesh,
    /// A VirtualService bound to an Istio `Gateway` (`gateways: [name]`).
    IstioGateway(String),
    /// An HTTPRoute's parentRef to a Gateway API Gateway.
    Gateway {
        namespace: Option<String>,
        name: String,
    },
    /// An HTTPRoute's parentRef to a Service (GAMMA): its waypoint, or its clients' sidecars.
    Service {
        namespace: Option<String>,
        name: String,
    },
}

#[derive(Debug)]
pub struct RouteTable {
    pub kind: TableKind,
    /// `VirtualService ns/name (file)`.
    pub origin: String,
    pub namespace: Option<String>,
    pub name: String,
    pub parents: Vec<Parent>,
    /// A VirtualService's `hosts`, in full.
    pub hosts: Vec<String>,
    pub rules: Vec<Rule>,
}

#[derive(Debug)]
pub struct DestinationRule {
    pub origin: String,
    pub host: String,
    pub subsets: Vec<String>,
}

#[derive(Debug)]
pub struct Workload {
    pub origin: String,
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
}

/// A Gateway API Gateway: an Istio gateway, a waypoint, or Envoy Gateway's.
#[derive(Debug)]
pub struct Gateway {
    pub namespace: Option<String>,
    pub name: String,
    pub class: Option<String>,
}

#[derive(Debug)]
pub struct Service {
    pub namespace: Option<String>,
    pub name: String,
    pub labels: BTreeMap<String, String>,
}

/// One set of manifests, as the mesh check reads them.
#[derive(Debug, Default)]
pub struct Manifests {
    pub route_tables: Vec<RouteTable>,
    pub destination_rules: Vec<DestinationRule>,
    pub workloads: Vec<Workload>,
    pub gateways: Vec<Gateway>,
    pub services: Vec<Service>,
    /// Namespace name to its labels.
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
}

/// A host as Istio resolves it: a short name in the resource's namespace.
pub fn full_host(host: &str, namespace: Option<&str>) -> String {
    let parts = host.split('.').count();
    match (parts, namespace) {
        (1, Some(namespace)) => format!("{host}.{namespace}.svc.cluster.local"),
        (2, _) => format!("{host}.svc.cluster.local"),
        _ => host.to_string(),
    }
}

fn strings(value: &Yaml) -> Vec<&str> {
    value
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(Yaml::as_str)
        .collect()
}

impl Manifests {
    /// Adds the documents of one file.
    pub fn add_file(&mut self, file: &Path, documents: &[Yaml]) {
        for document in documents {
            self.add(file, document);
        }
    }

    fn add(&mut self, file: &Path, document: &Yaml) {
        let namespace = at(document, &["metadata", "namespace"])
            .as_str()
            .map(str::to_string);
        let name = at(document, &["metadata", "name"]).as_str().unwrap_or("?");
        let kind = at(document, &["kind"]).as_str().unwrap_or_default();
        let api = at(document, &["apiVersion"]).as_str().unwrap_or_default();
        let qualified = match &namespace {
            Some(namespace) => format!("{namespace}/{name}"),
            None => name.to_string(),
        };
        let origin = format!("{kind} {qualified} ({})", file.display());
        let spec = at(document, &["spec"]);
        let gateway_api = api.starts_with("gateway.networking.k8s.io/");
        match kind {
            "VirtualService" => self
                .route_tables
                .push(virtual_service(origin, namespace, name, spec)),
            "HTTPRoute" if gateway_api => self
                .route_tables
                .push(http_route(origin, namespace, name, spec)),
            "DestinationRule" => {
                let host = at(spec, &["host"]).as_str().unwrap_or_default();
                self.destination_rules.push(DestinationRule {
                    origin,
                    host: full_host(host, namespace.as_deref()),
                    subsets: at(spec, &["subsets"])
                        .as_sequence()
                        .into_iter()
                        .flatten()
                        .filter_map(|subset| at(subset, &["name"]).as_str().map(str::to_string))
                        .collect(),
                });
            }
            "Gateway" if gateway_api => self.gateways.push(Gateway {
                namespace,
                name: name.to_string(),
                class: at(spec, &["gatewayClassName"]).as_str().map(str::to_string),
            }),
            "Service" if api == "v1" => self.services.push(Service {
                namespace,
                name: name.to_string(),
                labels: labels(at(document, &["metadata", "labels"])).unwrap_or_default(),
            }),
            "Namespace" if api == "v1" => {
                self.namespaces.insert(
                    name.to_string(),
                    labels(at(document, &["metadata", "labels"])).unwrap_or_default(),
                );
            }
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" | "Pod" => {
                let labels_at: &[&str] = if kind == "Pod" {
                    &["metadata", "labels"]
                } else {
                    &["spec", "template", "metadata", "labels"]
                };
                if let Some(labels) = labels(at(document, labels_at)) {
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

    /// The waypoint a Service uses: its own `istio.io/use-waypoint` label, else its
    /// namespace's; `None` when neither is beside it.
    pub fn waypoint_of<'a>(&'a self, service: &'a Service) -> Option<&'a str> {
        service
            .labels
            .get(USE_WAYPOINT)
            .map(String::as_str)
            .or_else(|| {
                let namespace = service.namespace.as_deref()?;
                self.namespaces
                    .get(namespace)?
                    .get(USE_WAYPOINT)
                    .map(String::as_str)
            })
    }

    pub fn gateway(&self, namespace: Option<&str>, name: &str) -> Option<&Gateway> {
        self.gateways
            .iter()
            .find(|gateway| gateway.name == name && gateway.namespace.as_deref() == namespace)
    }

    pub fn service(&self, namespace: Option<&str>, name: &str) -> Option<&Service> {
        self.services
            .iter()
            .find(|service| service.name == name && service.namespace.as_deref() == namespace)
    }

    /// Whether a namespace beside it is in ambient mode (its workloads have no sidecar).
    pub fn is_ambient(&self, namespace: Option<&str>) -> bool {
        namespace
            .and_then(|namespace| self.namespaces.get(namespace))
            .and_then(|labels| labels.get(DATAPLANE_MODE))
            .is_some_and(|mode| mode == "ambient")
    }
}

/// No match entries, or one that takes every request.
fn catch_all(matches: &Yaml, takes_all: impl Fn(&Yaml) -> bool) -> bool {
    match matches.as_sequence() {
        None => true,
        Some(entries) => entries.is_empty() || entries.iter().any(takes_all),
    }
}

fn virtual_service(
    origin: String,
    namespace: Option<String>,
    name: &str,
    spec: &Yaml,
) -> RouteTable {
    let gateways = strings(at(spec, &["gateways"]));
    let mut parents: Vec<Parent> = gateways
        .iter()
        .map(|gateway| match *gateway {
            "mesh" => Parent::Mesh,
            other => Parent::IstioGateway(other.to_string()),
        })
        .collect();
    if parents.is_empty() {
        parents.push(Parent::Mesh);
    }
    let rules = at(spec, &["http"])
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|route| Rule {
            name: at(route, &["name"]).as_str().map(str::to_string),
            catch_all: catch_all(at(route, &["match"]), |entry| {
                let uri = at(entry, &["uri"]);
                (uri.is_null() || at(uri, &["prefix"]).as_str() == Some("/"))
                    && ["headers", "method", "queryParams", "authority", "port"]
                        .iter()
                        .all(|key| at(entry, &[key]).is_null())
            }),
            matches: at(route, &["match"])
                .as_sequence()
                .into_iter()
                .flatten()
                .map(|entry| {
                    at(entry, &["headers"])
                        .as_mapping()
                        .into_iter()
                        .flatten()
                        .filter_map(|(header, condition)| {
                            let condition = match (
                                at(condition, &["exact"]).as_str(),
                                at(condition, &["prefix"]).as_str(),
                            ) {
                                (Some(exact), _) => HeaderCondition::Exact(exact.to_string()),
                                (None, Some(prefix)) => HeaderCondition::Prefix(prefix.to_string()),
                                _ => HeaderCondition::Other,
                            };
                            Some((header.as_str()?.to_ascii_lowercase(), condition))
                        })
                        .collect()
                })
                .collect(),
            backends: at(route, &["route"])
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(|target| {
                    let destination = at(target, &["destination"]);
                    Some(Backend {
                        host: full_host(at(destination, &["host"]).as_str()?, namespace.as_deref()),
                        subset: at(destination, &["subset"]).as_str().map(str::to_string),
                    })
                })
                .collect(),
        })
        .collect();
    let hosts = strings(at(spec, &["hosts"]))
        .into_iter()
        .map(|host| full_host(host, namespace.as_deref()))
        .collect();
    RouteTable {
        kind: TableKind::VirtualService,
        origin,
        name: name.to_string(),
        namespace,
        parents,
        hosts,
        rules,
    }
}

fn http_route(origin: String, namespace: Option<String>, name: &str, spec: &Yaml) -> RouteTable {
    let parents = at(spec, &["parentRefs"])
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|parent| {
            let name = at(parent, &["name"]).as_str()?.to_string();
            let parent_namespace = at(parent, &["namespace"])
                .as_str()
                .map(str::to_string)
                .or_else(|| namespace.clone());
            Some(match at(parent, &["kind"]).as_str().unwrap_or("Gateway") {
                "Service" => Parent::Service {
                    namespace: parent_namespace,
                    name,
                },
                _ => Parent::Gateway {
                    namespace: parent_namespace,
                    name,
                },
            })
        })
        .collect();
    let rules = at(spec, &["rules"])
        .as_sequence()
        .into_iter()
        .flatten()
        .map(|rule| Rule {
            name: at(rule, &["name"]).as_str().map(str::to_string),
            catch_all: catch_all(at(rule, &["matches"]), |entry| {
                let path = at(entry, &["path"]);
                (path.is_null()
                    || (at(path, &["value"]).as_str().unwrap_or("/") == "/"
                        && at(path, &["type"]).as_str().unwrap_or("PathPrefix") == "PathPrefix"))
                    && ["headers", "method", "queryParams"]
                        .iter()
                        .all(|key| at(entry, &[key]).is_null())
            }),
            matches: at(rule, &["matches"])
                .as_sequence()
                .into_iter()
                .flatten()
                .map(|entry| {
                    at(entry, &["headers"])
                        .as_sequence()
                        .into_iter()
                        .flatten()
                        .filter_map(|header| {
                            let value = at(header, &["value"]).as_str()?.to_string();
                            let condition = match at(header, &["type"]).as_str().unwrap_or("Exact")
                            {
                                "Exact" => HeaderCondition::Exact(value),
                                _ => HeaderCondition::Other,
                            };
                            Some((
                                at(header, &["name"]).as_str()?.to_ascii_lowercase(),
                                condition,
                            ))
                        })
                        .collect()
                })
                .collect(),
            backends: at(rule, &["backendRefs"])
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(|backend| {
                    let name = at(backend, &["name"]).as_str()?;
                    let backend_namespace = at(backend, &["namespace"])
                        .as_str()
                        .or(namespace.as_deref());
                    let host = match at(backend, &["kind"]).as_str().unwrap_or("Service") {
                        "Service" => full_host(name, backend_namespace),
                        kind => format!("{kind}/{name}"),
                    };
                    Some(Backend { host, subset: None })
                })
                .collect(),
        })
        .collect();
    RouteTable {
        kind: TableKind::HttpRoute,
        origin,
        name: name.to_string(),
        namespace,
        parents,
        hosts: Vec::new(),
        rules,
    }
}
