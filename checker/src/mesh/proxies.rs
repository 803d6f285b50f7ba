//! Which Envoys a plugin runs in, as Istio and Envoy Gateway read its `selector` or
//! `targetRefs`, and which route tables each of them applies: the sidecars of the workloads a
//! selector picks (the mesh's VirtualServices), an Istio ingress gateway (the VirtualServices
//! bound to gateways), a waypoint (the routes of the Services bound to it), a Gateway API
//! Gateway (the HTTPRoutes attached to it), or the routes of one HTTPRoute (Envoy Gateway).

use super::manifests::{full_host, Manifests, Parent, RouteTable, TableKind, WAYPOINT_CLASS};
use crate::plugins::{Attachment, PluginKind, PluginRef};
use std::collections::BTreeMap;
use traffic_split::config::ConfigError;

/// Istio's root namespace, where a selector-less plugin applies to the whole mesh.
const ROOT_NAMESPACE: &str = "istio-system";

/// One kind of Envoy a plugin reaches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Proxy {
    /// The sidecars of the workloads `selector` picks (every workload without one).
    Sidecars {
        namespace: Option<String>,
        selector: Option<BTreeMap<String, String>>,
    },
    /// An Istio gateway deployment picked by its labels (`istio: ingressgateway`).
    IstioGateway { selector: BTreeMap<String, String> },
    /// A Gateway API Gateway's Envoys (Istio's, or Envoy Gateway's).
    Gateway {
        namespace: Option<String>,
        name: String,
    },
    /// A waypoint: the Gateway of class istio-waypoint, or the one a Service is bound to.
    Waypoint {
        namespace: Option<String>,
        gateway: Option<String>,
        service: Option<String>,
    },
    /// The routes of one HTTPRoute on the Gateways it is attached to (Envoy Gateway).
    Route {
        namespace: Option<String>,
        name: String,
    },
}

/// Where a plugin runs, with what was found wrong or worth saying about it.
pub struct Reach {
    pub proxies: Vec<Proxy>,
    pub errors: Vec<ConfigError>,
    pub notes: Vec<String>,
}

impl Proxy {
    pub fn describe(&self) -> String {
        let ns = |namespace: &Option<String>| namespace.clone().unwrap_or_else(|| "(none)".into());
        match self {
            Proxy::Sidecars {
                namespace,
                selector: Some(selector),
            } => {
                format!(
                    "the sidecars of {} in namespace {}",
                    selector_text(selector),
                    ns(namespace)
                )
            }
            Proxy::Sidecars {
                namespace,
                selector: None,
            } => {
                if namespace.as_deref() == Some(ROOT_NAMESPACE) {
                    "every sidecar of the mesh".into()
                } else {
                    format!("every sidecar of namespace {}", ns(namespace))
                }
            }
            Proxy::IstioGateway { selector } => {
                format!("the Istio gateway {}", selector_text(selector))
            }
            Proxy::Gateway { namespace, name } => format!("Gateway {}/{name}", ns(namespace)),
            Proxy::Waypoint {
                namespace,
                gateway: Some(gateway),
                ..
            } => {
                format!("waypoint {}/{gateway}", ns(namespace))
            }
            Proxy::Waypoint {
                namespace, service, ..
            } => format!(
                "the waypoint of Service {}/{}",
                ns(namespace),
                service.as_deref().unwrap_or("?")
            ),
            Proxy::Route { namespace, name } => format!("HTTPRoute {}/{name}", ns(namespace)),
        }
    }

    /// Whether this proxy applies `table`'s rules to the requests the plugin marks.
    pub fn applies(&self, table: &RouteTable, manifests: &Manifests) -> bool {
        table.parents.iter().any(|parent| match (self, parent) {
            (Proxy::Sidecars { .. }, Parent::Mesh | Parent::Service { .. }) => true,
            (Proxy::IstioGateway { .. }, Parent::IstioGateway(_)) => true,
            (Proxy::IstioGateway { .. }, Parent::Gateway { namespace, name }) => manifests
                .gateway(namespace.as_deref(), name)
                .is_none_or(|gateway| gateway.class.as_deref() != Some(WAYPOINT_CLASS)),
            (
                Proxy::Gateway { namespace, name },
                Parent::Gateway {
                    namespace: n,
                    name: m,
                },
            ) => namespace == n && name == m,
            (Proxy::Gateway { namespace, name }, Parent::IstioGateway(bound)) => {
                bound == name
                    || namespace
                        .as_ref()
                        .is_some_and(|ns| *bound == format!("{ns}/{name}"))
            }
            (
                Proxy::Waypoint {
                    namespace,
                    gateway,
                    service,
                },
                Parent::Service { namespace: n, name },
            ) => {
                namespace == n
                    && match (gateway, service) {
                        (_, Some(service)) => service == name,
                        (Some(gateway), None) => manifests
                            .service(n.as_deref(), name)
                            .is_none_or(|known| manifests.waypoint_of(known) == Some(gateway)),
                        (None, None) => false,
                    }
            }
            (
                Proxy::Waypoint {
                    namespace,
                    gateway: Some(gateway),
                    ..
                },
                Parent::Gateway { namespace: n, name },
            ) => namespace == n && gateway == name,
            (
                Proxy::Waypoint {
                    namespace,
                    gateway,
                    service,
                },
                Parent::Mesh,
            ) => {
                // A waypoint applies the mesh VirtualServices of the hosts bound to it.
                table.kind == TableKind::VirtualService
                    && table.hosts.iter().any(|host| {
                        manifests.services.iter().any(|known| {
                            known.namespace == *namespace
                                && *host == full_host(&known.name, known.namespace.as_deref())
                                && match (service, gateway) {
                                    (Some(service), _) => known.name == *service,
                                    (None, Some(gateway)) => {
                                        manifests.waypoint_of(known) == Some(gateway.as_str())
                                    }
                                    (None, None) => false,
                                }
                        })
                    })
            }
            (Proxy::Route { namespace, name }, _) => {
                table.kind == TableKind::HttpRoute
                    && table.namespace == *namespace
                    && table.name == *name
            }
            _ => false,
        })
    }

    /// Whether the two may be the same Envoy (two plugins on it share its stats).
    pub fn overlaps(&self, other: &Proxy, manifests: &Manifests) -> bool {
        match (self, other) {
            (
                Proxy::Sidecars {
                    namespace: a,
                    selector: sa,
                },
                Proxy::Sidecars {
                    namespace: b,
                    selector: sb,
                },
            ) => {
                let root = |ns: &Option<String>| ns.as_deref() == Some(ROOT_NAMESPACE);
                (a == b || root(a) || root(b)) && selectors_may_meet(sa.as_ref(), sb.as_ref())
            }
            (Proxy::IstioGateway { selector: a }, Proxy::IstioGateway { selector: b }) => {
                selectors_may_meet(Some(a), Some(b))
            }
            (Proxy::Route { namespace, name }, Proxy::Gateway { .. }) => manifests
                .route_tables
                .iter()
                .filter(|table| table.kind == TableKind::HttpRoute)
                .filter(|table| table.namespace == *namespace && table.name == *name)
                .any(|table| other.applies(table, manifests)),
            (Proxy::Gateway { .. }, Proxy::Route { .. }) => other.overlaps(self, manifests),
            (
                Proxy::Waypoint {
                    namespace: a,
                    gateway: ga,
                    service: sa,
                },
                Proxy::Waypoint {
                    namespace: b,
                    gateway: gb,
                    service: sb,
                },
            ) => {
                let waypoint_of = |service: &Option<String>, namespace: &Option<String>| {
                    let service = service.as_deref()?;
                    manifests
                        .service(namespace.as_deref(), service)
                        .and_then(|known| manifests.waypoint_of(known))
                        .map(str::to_string)
                };
                let (ga, gb) = (
                    ga.clone().or_else(|| waypoint_of(sa, a)),
                    gb.clone().or_else(|| waypoint_of(sb, b)),
                );
                a == b && ((ga.is_some() && ga == gb) || (sa.is_some() && sa == sb))
            }
            _ => self == other,
        }
    }
}

fn selector_text(selector: &BTreeMap<String, String>) -> String {
    selector
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Two label selectors may pick one pod unless they want different values of one label.
fn selectors_may_meet(
    a: Option<&BTreeMap<String, String>>,
    b: Option<&BTreeMap<String, String>>,
) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a
            .iter()
            .all(|(key, value)| b.get(key).is_none_or(|other| other == value)),
        _ => true,
    }
}

/// Where `plugin` runs, read against `manifests`.
pub fn reach(plugin: &PluginRef, manifests: &Manifests) -> Reach {
    let mut reach = Reach {
        proxies: Vec::new(),
        errors: Vec::new(),
        notes: Vec::new(),
    };
    let namespace = plugin.namespace.clone();
    match &plugin.attachment {
        Attachment::Targets(targets) => {
            for target in targets {
                let proxy = match (plugin.kind, target.kind.as_str()) {
                    (PluginKind::EnvoyExtensionPolicy, "HTTPRoute") => Proxy::Route {
                        namespace: namespace.clone(),
                        name: target.name.clone(),
                    },
                    (_, "Gateway") => {
                        let known = manifests.gateway(namespace.as_deref(), &target.name);
                        let waypoint = match known {
                            Some(gateway) => gateway.class.as_deref() == Some(WAYPOINT_CLASS),
                            None => {
                                plugin.kind != PluginKind::EnvoyExtensionPolicy
                                    && target.name.contains("waypoint")
                            }
                        };
                        if waypoint {
                            Proxy::Waypoint {
                                namespace: namespace.clone(),
                                gateway: Some(target.name.clone()),
                                service: None,
                            }
                        } else {
                            Proxy::Gateway {
                                namespace: namespace.clone(),
                                name: target.name.clone(),
                            }
                        }
                    }
                    (
                        PluginKind::TrafficExtension | PluginKind::WasmPlugin,
                        "Service" | "ServiceEntry",
                    ) => {
                        check_service_waypoint(plugin, &target.name, manifests, &mut reach);
                        Proxy::Waypoint {
                            namespace: namespace.clone(),
                            gateway: None,
                            service: Some(target.name.clone()),
                        }
                    }
                    (_, kind) => {
                        reach.notes.push(format!(
                            "targets {kind} {}: the check does not follow this kind of target",
                            target.name
                        ));
                        continue;
                    }
                };
                reach.proxies.push(proxy);
            }
        }
        Attachment::Selector(selector) => {
            // A plugin selecting Istio's gateways (`istio: ingressgateway`) runs in those
            // Envoys; any other selector picks sidecars.
            if selector
                .get("istio")
                .is_some_and(|value| value.contains("gateway"))
            {
                reach.proxies.push(Proxy::IstioGateway {
                    selector: selector.clone(),
                });
                if namespace.as_deref() == Some(ROOT_NAMESPACE) {
                    reach.notes.push(
                        "in the root namespace: its selector picks workloads in every namespace"
                            .into(),
                    );
                }
                reach.notes.push(format!(
                    "runs in the Istio gateway {}: splits the requests of every caller through it",
                    selector_text(selector)
                ));
            } else {
                check_selector(plugin, selector, manifests, &mut reach);
                reach.proxies.push(Proxy::Sidecars {
                    namespace: namespace.clone(),
                    selector: Some(selector.clone()),
                });
            }
        }
        Attachment::Namespace => {
            let proxy = Proxy::Sidecars {
                namespace: namespace.clone(),
                selector: None,
            };
            reach.notes.push(format!(
                "no selector and no targetRefs: {} splits its outbound calls (a waypoint needs targetRefs)",
                proxy.describe()
            ));
            reach.proxies.push(proxy);
        }
    }
    for proxy in &reach.proxies {
        if let Some(note) = who_splits(proxy, manifests) {
            reach.notes.push(note);
        }
    }
    reach
}

/// What the filter splits in a waypoint or gateway, and what it cannot see.
fn who_splits(proxy: &Proxy, manifests: &Manifests) -> Option<String> {
    match proxy {
        Proxy::Waypoint {
            namespace,
            gateway,
            service,
        } => {
            let bound: Vec<String> = match (service, gateway) {
                (Some(service), _) => vec![service.clone()],
                (None, Some(gateway)) => {
                    let mut bound: Vec<String> = manifests
                        .services
                        .iter()
                        .filter(|known| {
                            known.namespace == *namespace
                                && manifests.waypoint_of(known) == Some(gateway)
                        })
                        .map(|known| known.name.clone())
                        .collect();
                    // The Services whose routes (GAMMA HTTPRoutes) it applies.
                    for table in manifests
                        .route_tables
                        .iter()
                        .filter(|table| proxy.applies(table, manifests))
                    {
                        for parent in &table.parents {
                            if let Parent::Service { name, .. } = parent {
                                if !bound.contains(name) {
                                    bound.push(name.clone());
                                }
                            }
                        }
                    }
                    bound
                }
                (None, None) => Vec::new(),
            };
            Some(format!(
                "runs in {}: splits every call to {}, from any client (with or without a sidecar); \
                 calls that do not pass the waypoint are not split",
                proxy.describe(),
                if bound.is_empty() {
                    "the services bound to it (none beside it: give their manifests too)".to_string()
                } else {
                    format!("Service {}", bound.join(", "))
                }
            ))
        }
        Proxy::Gateway { .. } => Some(format!(
            "runs in {}: splits the requests of every route attached to it",
            proxy.describe()
        )),
        Proxy::Route { .. } => Some(format!(
            "runs on the routes of {} only: requests the Gateway sends elsewhere are not split",
            proxy.describe()
        )),
        Proxy::Sidecars { .. } | Proxy::IstioGateway { .. } => None,
    }
}

/// A Service targeted for its waypoint must be bound to one.
fn check_service_waypoint(
    plugin: &PluginRef,
    name: &str,
    manifests: &Manifests,
    reach: &mut Reach,
) {
    let Some(service) = manifests.service(plugin.namespace.as_deref(), name) else {
        reach.notes.push(format!(
            "targets Service {name}, which is not beside it: that it is bound to a waypoint was not checked"
        ));
        return;
    };
    if manifests.waypoint_of(service).is_none() {
        let namespace_known = service
            .namespace
            .as_deref()
            .is_some_and(|namespace| manifests.namespaces.contains_key(namespace));
        if namespace_known {
            reach.errors.push(ConfigError {
                path: "spec.targetRefs".into(),
                message: format!(
                    "Service {name} is bound to no waypoint (no istio.io/use-waypoint label on it \
                     or its namespace): a Service target applies only in a waypoint, so nothing \
                     would split"
                ),
            });
        } else {
            reach.notes.push(format!(
                "targets Service {name}: neither it nor its namespace beside it says \
                 istio.io/use-waypoint; without a waypoint nothing splits"
            ));
        }
    }
}

fn check_selector(
    plugin: &PluginRef,
    selector: &BTreeMap<String, String>,
    manifests: &Manifests,
    reach: &mut Reach,
) {
    // A plugin in the root namespace applies in every namespace; its selector is checked
    // against the workloads of its own, and the rest is said.
    let root = plugin.namespace.as_deref() == Some(ROOT_NAMESPACE);
    if root {
        reach
            .notes
            .push("in the root namespace: its selector picks workloads in every namespace".into());
    }
    let path = "spec.selector.matchLabels";
    let wanted = selector_text(selector);
    let in_scope: Vec<_> = manifests
        .workloads
        .iter()
        .filter(|workload| workload.namespace == plugin.namespace)
        .collect();
    if in_scope.is_empty() {
        reach.notes.push(format!(
            "selector {wanted}: no workload of its namespace beside it to check it against"
        ));
        return;
    }
    let selected: Vec<_> = in_scope
        .iter()
        .filter(|workload| {
            selector
                .iter()
                .all(|(key, value)| workload.labels.get(key) == Some(value))
        })
        .collect();
    if selected.is_empty() {
        reach.errors.push(ConfigError {
            path: path.into(),
            message: format!(
                "{wanted} selects none of the workloads beside it ({}): nothing would split",
                in_scope
                    .iter()
                    .map(|workload| workload.origin.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    } else if manifests.is_ambient(plugin.namespace.as_deref()) {
        reach.errors.push(ConfigError {
            path: path.into(),
            message: format!(
                "{wanted} selects workloads of namespace {}, which is in ambient mode \
                 (istio.io/dataplane-mode=ambient): they have no sidecar, and a waypoint ignores \
                 a selector; target the waypoint with targetRefs",
                plugin.namespace.as_deref().unwrap_or("(none)")
            ),
        });
    } else {
        reach.notes.push(format!(
            "splits the calls of {} only; every other caller takes the default route",
            selected
                .iter()
                .map(|workload| workload.origin.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
}
