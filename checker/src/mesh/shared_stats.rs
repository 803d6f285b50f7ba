//! Two traffic-split plugins that reach the same Envoy share its stats: each counts a route
//! under its route name only (`traffic_split_requests_total{route="hello",version="v1"}`), so
//! two plugins with a route `hello` on one proxy add into one series and no dashboard can
//! tell them apart. Such a pair is refused, naming both; a route renamed in one of them fixes
//! it.

use super::manifests::Manifests;
use super::proxies::Proxy;
use crate::plugins::PluginRef;
use traffic_split::config::ConfigError;
use traffic_split::plan::Plan;

/// One valid plugin config of a set of manifests, with the proxies it reaches.
pub struct Placed<'a> {
    pub index: usize,
    pub origin: &'a str,
    pub plugin: &'a PluginRef,
    pub plan: &'a Plan,
    pub proxies: Vec<Proxy>,
}

/// An error for each later plugin of `placed` sharing a proxy and a route name with an
/// earlier one, by entry index.
pub fn shared_route_names(placed: &[Placed], manifests: &Manifests) -> Vec<(usize, ConfigError)> {
    let mut found = Vec::new();
    for (later_position, later) in placed.iter().enumerate() {
        for earlier in placed.iter().take(later_position) {
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
                                 the same traffic_split_* series (route=\"{}\"); give one of them \
                                 another route name",
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
