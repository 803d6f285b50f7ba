//! The metric ids of one configuration, and the rule of which metrics it defines: every row of
//! [`DestinationMetric`]'s table that the route's config can move (a metric that could only stay
//! 0 is never shown), the unknown-override counter of a route with an override header, and the
//! plugin's own metrics.
//!
//! Envoy never frees a metric id while the VM (or the process, for the native module) lives,
//! and keeps the name each time one is defined, so a config push that defined its metrics again
//! would grow Envoy's memory with every push: [`DefinedMetrics`] defines each name once, and
//! later configurations reuse its id.

use super::host::WorkerHost;
use crate::metrics::{
    DefinedWhen, DestinationMetric, MetricKind, PluginDefinedWhen, PluginLabel, PluginMetric,
    UNKNOWN_VERSION,
};
use crate::plan::{MetricsMode, Plan, Route, StickyKey};
use crate::request::{Count, HostError};
use crate::split::fault::FaultKind;
use std::collections::HashMap;

/// Every metric a host has defined, by kind and name: kept for the host's lifetime (one per
/// Wasm VM, one per process for the native module), across configurations.
#[derive(Debug, Default)]
pub struct DefinedMetrics(HashMap<(MetricKindKey, String), u32>);

/// [`MetricKind`] as a map key.
type MetricKindKey = u8;

fn kind_key(kind: MetricKind) -> MetricKindKey {
    match kind {
        MetricKind::Counter => 0,
        MetricKind::Gauge => 1,
        MetricKind::Histogram => 2,
    }
}

impl DefinedMetrics {
    /// The id of the metric `name`, defined by `host` the first time it is asked for.
    pub fn define(
        &mut self,
        host: &impl WorkerHost,
        kind: MetricKind,
        name: &str,
    ) -> Result<u32, HostError> {
        let key = (kind_key(kind), name.to_owned());
        if let Some(id) = self.0.get(&key) {
            return Ok(*id);
        }
        let id = host.define_metric(kind, name)?;
        self.0.insert(key, id);
        Ok(id)
    }

    /// How many distinct metrics have been defined.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The metric ids of one route and version, by row of [`DestinationMetric`]'s table; `None`
/// for a metric the route's config does not define.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DestinationMetrics([Option<u32>; DestinationMetric::COUNT]);

impl DestinationMetrics {
    pub fn id(&self, metric: DestinationMetric) -> Option<u32> {
        self.0.get(metric.index()).copied().flatten()
    }
}

/// The metric ids of one configuration, laid out like its plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetricIds {
    /// `destinations[route][destination]`, parallel to the plan's routes and destinations.
    destinations: Vec<Vec<DestinationMetrics>>,
    /// Per route: the counter of overrides naming no version, on routes with an override header.
    unknown_overrides: Vec<Option<u32>>,
    /// By row of [`PluginMetric`]'s table.
    plugin: [Option<u32>; PluginMetric::COUNT],
}

impl MetricIds {
    /// Defines every metric `plan` needs (the rule in this module's doc), each named with
    /// `plugin`'s label; the panic counter only on a host that `catches_panics`.
    pub fn define(
        plan: &Plan,
        plugin: &PluginLabel,
        catches_panics: bool,
        host: &impl WorkerHost,
        defined: &mut DefinedMetrics,
    ) -> Result<MetricIds, HostError> {
        let mut define = |kind: MetricKind, name: &str| defined.define(host, kind, name);
        let mut plugin_ids = [None; PluginMetric::COUNT];
        for (slot, metric) in plugin_ids.iter_mut().zip(PluginMetric::ALL) {
            let defined = match metric.defined_when() {
                PluginDefinedWhen::Always => true,
                PluginDefinedWhen::PassThrough => plan.pass_through,
                PluginDefinedWhen::CatchesPanics => catches_panics,
            };
            if defined {
                *slot = Some(define(metric.row().kind, &metric.name(plugin))?);
            }
        }
        let mut destinations = Vec::with_capacity(plan.routes.len());
        let mut unknown_overrides = Vec::with_capacity(plan.routes.len());
        for route in plan.routes.iter() {
            let mut route_metrics = Vec::with_capacity(route.destinations.len());
            for destination in &route.destinations {
                let fault_kinds = destination
                    .fault
                    .as_ref()
                    .map(|fault| fault.kinds())
                    .unwrap_or_default();
                let mut ids = [None; DestinationMetric::COUNT];
                for (slot, metric) in ids.iter_mut().zip(DestinationMetric::ALL) {
                    if is_defined(plan.metrics, route, &fault_kinds, *metric) {
                        *slot = Some(define(
                            metric.row().kind,
                            &metric.name(plugin, &route.name, &destination.version),
                        )?);
                    }
                }
                route_metrics.push(DestinationMetrics(ids));
            }
            destinations.push(route_metrics);
            let unknown = DestinationMetric::Overrides;
            unknown_overrides.push(match route.override_header {
                Some(_) => Some(define(
                    unknown.row().kind,
                    &unknown.name(plugin, &route.name, UNKNOWN_VERSION),
                )?),
                None => None,
            });
        }
        Ok(MetricIds {
            destinations,
            unknown_overrides,
            plugin: plugin_ids,
        })
    }

    /// The id a stream's [`Count`] increments, if this configuration defines it.
    pub fn resolve(&self, what: Count) -> Option<u32> {
        match what {
            Count::Destination(chosen, metric) => self
                .destinations
                .get(chosen.route)?
                .get(chosen.destination)?
                .id(metric),
            Count::UnknownOverride { route } => self.unknown_overrides.get(route).copied()?,
            Count::Plugin(metric) => self.plugin(metric),
        }
    }

    /// The id of a destination's metric, if defined.
    pub fn destination(
        &self,
        route: usize,
        destination: usize,
        metric: DestinationMetric,
    ) -> Option<u32> {
        self.destinations.get(route)?.get(destination)?.id(metric)
    }

    /// The id of a plugin metric, if this configuration defines it.
    pub fn plugin(&self, metric: PluginMetric) -> Option<u32> {
        self.plugin.get(metric.index()).copied().flatten()
    }
}

/// Whether a route's config can move `metric` of a destination that may inject `fault_kinds`.
fn is_defined(
    mode: MetricsMode,
    route: &Route,
    fault_kinds: &[FaultKind],
    metric: DestinationMetric,
) -> bool {
    match metric.defined_when() {
        DefinedWhen::Always => true,
        DefinedWhen::FullMetrics => mode == MetricsMode::Full,
        DefinedWhen::Guard => route.guard.is_some(),
        DefinedWhen::Fault(kind) => fault_kinds.contains(&kind),
        DefinedWhen::Sticky => route.sticky.is_some(),
        // Only the sources the route's key can come from: a header-keyed route never counts
        // a cookie, and the reverse.
        DefinedWhen::StickyByHeader => route
            .sticky
            .as_ref()
            .is_some_and(|sticky| matches!(sticky.key, StickyKey::Header(_))),
        DefinedWhen::StickyByCookie => route
            .sticky
            .as_ref()
            .is_some_and(|sticky| matches!(sticky.key, StickyKey::Cookie(_))),
        DefinedWhen::OverrideHeader => route.override_header.is_some(),
    }
}
