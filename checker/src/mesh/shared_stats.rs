//! Two traffic-split plugins that reach the same Envoy share its stats. Each series carries
//! its plugin (`traffic_split_requests_total{plugin="istioclient_traffic-split",route="hello",
//! version="v1"}`, the label of `traffic_split::metrics::PluginLabel`), so plugins of
//! different names count apart; two whose labels are one (a TrafficExtension and a
//! WasmPlugin of one namespace and name: Istio names both `<namespace>.<name>`) and that
//! have a route `hello` each add into one series, and no dashboard can tell them apart. Such
//! a pair is refused, naming both; another name for one of the plugins, or for the route,
//! fixes it. Where the checker cannot know the plugin's name in Envoy (an Envoy Gateway
//! policy, a manifest without a namespace), it refuses a shared route name as if the labels
//! were one.

use super::manifests::Manifests;
use super::proxies::Proxy;
use crate::plugins::{PluginKind, PluginRef};
use traffic_split::config::ConfigError;
use traffic_split::metrics::PluginLabel;
use traffic_split::plan::Plan;

/// One valid plugin config of a set of manifests, with the proxies it reaches.
pub struct Placed<'a> {
    pub index: usize,
    pub origin: &'a str,
    pub plugin: &'a PluginRef,
    pub plan: &'a Plan,
    pub proxies: Vec<Proxy>,
}

/// The `plugin` label the plugin's metrics carry, where the checker knows it: Istio names a
/// TrafficExtension's or WasmPlugin's filter `<namespace>.<name>`.
fn plugin_label(plugin: &PluginRef) -> Option<PluginLabel> {
    match plugin.kind {
        PluginKind::TrafficExtension | PluginKind::WasmPlugin => {
            let namespace = plugin.namespace.as_deref()?;
            let name = plugin.name.rsplit('/').next().unwrap_or(&plugin.name);
            Some(PluginLabel::of_plugin_name(&format!("{namespace}.{name}")))
        }
        PluginKind::EnvoyExtensionPolicy => None,
    }
}

/// An error for each later plugin of `placed` sharing a proxy, its `plugin` label (or one the
/// checker cannot know) and a route name with an earlier one, by entry index.
pub fn shared_route_names(placed: &[Placed], manifests: &Manifests) -> Vec<(usize, ConfigError)> {
    let mut found = Vec::new();
    for (later_position, later) in placed.iter().enumerate() {
        let later_label = plugin_label(later.plugin);
        for earlier in placed.iter().take(later_position) {
            let earlier_label = plugin_label(earlier.plugin);
            if let (Some(mine), Some(theirs)) = (&later_label, &earlier_label) {
                if mine != theirs {
                    continue;
                }
            }
            let series = match &later_label {
                Some(label) => format!("plugin=\"{label}\", "),
                None => String::new(),
            };
            let Some((proxy, _)) = later.proxies.iter().find_map(|mine| {
                earlier
                    .proxies
                    .iter()
                    .find(|theirs| mine.overlaps(theirs, manifests))
                    .map(|theirs| (mine, theirs))
            }) else {
                continue;
            };
            for (route_index, route) in later.plan.routes.iter().enumerate() {
                if earlier
                    .plan
                    .routes
                    .iter()
                    .any(|other| other.name == route.name)
                {
                    found.push((
                        later.index,
                        ConfigError {
                            path: format!(
                                "{}.routes[{route_index}].name",
                                later.plugin.config_path
                            ),
                            message: format!(
                                "{} also runs in {} with a route {:?}: the two would count into \
                                 the same traffic_split_* series ({series}route=\"{}\"); give \
                                 one of them another name, or the route another name",
                                earlier.origin,
                                proxy.describe(),
                                route.name,
                                route.name
                            ),
                        },
                    ));
                }
            }
        }
    }
    found
}
