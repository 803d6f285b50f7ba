//! Checking that the mesh carries out the filter's choice: every version of a valid config
//! must be routed, by a rule matching its version header, in a route table each proxy the
//! plugin runs in applies (a VirtualService with DestinationRule subsets, or an HTTPRoute's
//! backendRefs). A version no such rule takes is an error naming the version and the
//! manifests: its requests would silently take the default route. What falls through is said.

use super::manifests::{DestinationRule, HeaderCondition, Manifests, RouteTable, Rule, TableKind};
use super::proxies::Proxy;
use crate::plugins::PluginRef;
use std::collections::BTreeSet;
use traffic_split::config::ConfigError;
use traffic_split::plan::Plan;

fn config_path(plugin: &PluginRef, route: usize, destination: usize, field: &str) -> String {
    format!(
        "{}.routes[{route}].destinations[{destination}].{field}",
        plugin.config_path
    )
}

/// An Istio cluster name: `outbound|port|subset|host`.
fn istio_cluster(cluster: &str) -> Option<(&str, &str)> {
    let mut parts = cluster.split('|');
    let (direction, _port, subset, host) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    (direction == "outbound" && parts.next().is_none()).then_some((subset, host))
}

/// The kinds of table among `tables`, as a message names them.
fn kinds(tables: &[&RouteTable]) -> &'static str {
    let has = |kind| tables.iter().any(|table| table.kind == kind);
    match (has(TableKind::VirtualService), has(TableKind::HttpRoute)) {
        (true, true) | (false, false) => "VirtualService or HTTPRoute",
        (true, false) => "VirtualService",
        (false, true) => "HTTPRoute",
    }
}

fn takes(rule: &Rule, header: &str, version: &str) -> bool {
    rule.conditions_on(header)
        .any(|condition| condition.is_some_and(|condition| condition.takes(version) != Some(false)))
}

/// Errors and notes of `plan`'s versions against the tables `proxy` applies.
pub fn check_versions(
    plugin: &PluginRef,
    plan: &Plan,
    proxy: &Proxy,
    manifests: &Manifests,
    errors: &mut Vec<ConfigError>,
    notes: &mut Vec<String>,
) {
    let header = &plan.version_header;
    let routing: Vec<&RouteTable> = manifests
        .route_tables
        .iter()
        .filter(|table| proxy.applies(table, manifests))
        .filter(|table| {
            table
                .rules
                .iter()
                .any(|rule| rule.conditions_on(header).any(|c| c.is_some()))
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
            "no VirtualService or HTTPRoute beside it routes on {header} in {}: which version a \
             request reaches was not checked (name the route's file or folder too)",
            proxy.describe()
        ));
    }
    for (route_index, route) in plan.routes.iter().enumerate() {
        for (destination_index, destination) in route.destinations.iter().enumerate() {
            let version = &destination.version;
            let path = config_path(plugin, route_index, destination_index, "version");
            if !routing.is_empty() {
                let taking: Vec<(&RouteTable, &Rule)> = routing
                    .iter()
                    .flat_map(|table| table.rules.iter().map(move |rule| (*table, rule)))
                    .filter(|(_, rule)| takes(rule, header, version))
                    .collect();
                if taking.is_empty() {
                    let routed: Vec<String> = routing
                        .iter()
                        .map(|table| {
                            let values: BTreeSet<String> = table
                                .rules
                                .iter()
                                .flat_map(|rule| rule.conditions_on(header))
                                .flatten()
                                .map(HeaderCondition::describe)
                                .collect();
                            format!(
                                "{} routes {}",
                                table.origin,
                                values.into_iter().collect::<Vec<_>>().join(", ")
                            )
                        })
                        .collect();
                    errors.push(ConfigError {
                        path: path.clone(),
                        message: format!(
                            "no {} routes {header}: {version} in {} ({}); its requests would \
                             silently take {}",
                            kinds(&routing),
                            proxy.describe(),
                            routed.join("; "),
                            fallback(&routing)
                        ),
                    });
                }
                for (table, rule) in taking {
                    for backend in &rule.backends {
                        let Some(subset) = &backend.subset else {
                            continue;
                        };
                        let rules = subsets_of(&backend.host);
                        if !rules.is_empty()
                            && !rules.iter().any(|rule| rule.subsets.contains(subset))
                        {
                            errors.push(ConfigError {
                                path: path.clone(),
                                message: format!(
                                    "{}'s {} routes {header}: {version} to subset {subset}, which \
                                     no DestinationRule of {} defines ({})",
                                    table.origin,
                                    rule.name.as_deref().unwrap_or("route"),
                                    backend.host,
                                    subset_list(&rules)
                                ),
                            });
                        }
                    }
                }
            }
            if let Some((subset, host)) = destination.cluster.as_deref().and_then(istio_cluster) {
                check_cluster(
                    plugin,
                    route_index,
                    destination_index,
                    version,
                    subset,
                    host,
                    &subsets_of(host),
                    errors,
                    notes,
                );
            }
        }
    }
    for table in &routing {
        let fallback = match table.rules.iter().find(|rule| rule.matches_all()) {
            Some(rule) => rule.describe(),
            None => "no rule for every request: Envoy answers 404".to_string(),
        };
        notes.push(format!(
            "falls through: in {}, requests the filter does not split (no route of it matches, \
             or a caller it does not reach), or with another {header}, take {}: {fallback}",
            proxy.describe(),
            table.origin
        ));
    }
}

/// Every subset the DestinationRules define, for a message.
fn subset_list(rules: &[&DestinationRule]) -> String {
    rules
        .iter()
        .flat_map(|rule| &rule.subsets)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where a request no rule routes goes: the first table's rule without a match.
fn fallback(routing: &[&RouteTable]) -> String {
    routing
        .iter()
        .find_map(|table| {
            table
                .rules
                .iter()
                .find(|rule| rule.matches_all())
                .map(|rule| format!("{}: {}", table.origin, rule.describe()))
        })
        .unwrap_or_else(|| "no route at all (Envoy answers 404)".to_string())
}

#[allow(clippy::too_many_arguments)]
fn check_cluster(
    plugin: &PluginRef,
    route_index: usize,
    destination_index: usize,
    version: &str,
    subset: &str,
    host: &str,
    rules: &[&DestinationRule],
    errors: &mut Vec<ConfigError>,
    notes: &mut Vec<String>,
) {
    if rules.is_empty() {
        notes.push(format!(
            "cluster of {version}: no DestinationRule of {host} beside it, so subset {subset} was \
             not checked"
        ));
    } else if !rules
        .iter()
        .any(|rule| rule.subsets.iter().any(|known| known == subset))
    {
        errors.push(ConfigError {
            path: config_path(plugin, route_index, destination_index, "cluster"),
            message: format!(
                "subset {subset} of {host} is in no DestinationRule ({} define {}): Istio has no \
                 such cluster",
                rules
                    .iter()
                    .map(|rule| rule.origin.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                subset_list(rules)
            ),
        });
    }
}
