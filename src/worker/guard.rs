//! The guard's side of a worker: every [`super::timer::GUARD_TICK`], each worker merges the
//! outcomes its streams recorded into the route's state in the shared store (compare-and-swap,
//! retried on conflict), takes in the decisions found there, and logs and counts what changed.
//! The merge and the decisions are [`crate::split::guard`]'s; this file gives it the host's
//! store and clock, and sets the gauges.

use super::host::{now_ms, WorkerHost};
use super::metrics::MetricIds;
use crate::metrics::{DestinationMetric, PluginMetric};
use crate::plan::Route;
use crate::request::HostError;
use crate::split::guard::{GuardEvent, SharedStore, Stored, UNTIL_CONFIG_CHANGE};
use crate::state::RouteState;

/// The shared-store key (proxy-wasm shared data; the native module's own memory) of a guarded
/// route's [`crate::split::guard::RouteGuardState`] (`None` without a guard): by plugin, route, versions and a hash of the guard as configured
/// (every field, defaults applied). Plugins sharing a VM never read each other's state, and the
/// state carries over a config push exactly when the route's name, versions and guard are
/// unchanged: a changed guard (a shorter cooldown, a higher ratio) starts afresh and releases
/// every ejected version.
pub fn guard_state_key(plugin: &str, route: &Route) -> Option<String> {
    let guard = route.guard.as_ref()?;
    let versions: Vec<&str> = route
        .destinations
        .iter()
        .map(|destination| destination.version.as_str())
        .collect();
    // The guard's fields as bytes, not its Debug text: formatting its f64 would bring float
    // printing into the module.
    let mut fields = Vec::with_capacity(40);
    fields.extend_from_slice(&guard.max_error_ratio.to_bits().to_le_bytes());
    fields.extend_from_slice(&guard.min_requests.to_le_bytes());
    fields.extend_from_slice(&guard.window_ms.to_le_bytes());
    fields.extend_from_slice(&guard.cooldown_ms.to_le_bytes());
    fields.extend_from_slice(&guard.probe_basis_points.to_le_bytes());
    fields.extend_from_slice(&[
        u8::from(guard.errors.server_error),
        u8::from(guard.errors.timeout),
        u8::from(guard.errors.reset),
    ]);
    let guard = xxhash_rust::xxh64::xxh64(&fields, 0);
    Some(format!(
        "traffic-split/guard/{plugin}/{}/{}/{guard:016x}",
        route.name,
        versions.join(",")
    ))
}

/// The host's shared store, as [`crate::split::guard`] reads and writes it.
pub(super) struct HostStore<'h, H: WorkerHost>(pub &'h H);

impl<H: WorkerHost> SharedStore for HostStore<'_, H> {
    type Error = HostError;

    fn get(&self, key: &str) -> Result<Stored, HostError> {
        self.0.shared_get(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
        self.0.shared_set(key, value, cas)
    }
}

/// A guard decision on one route of a worker's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteEvent {
    pub route: usize,
    pub event: GuardEvent,
}

/// Sets a route's weight gauges (and, on a guarded route, its ejected and latched gauges).
pub(super) fn publish_route(
    host: &impl WorkerHost,
    metrics: &MetricIds,
    index: usize,
    route: &Route,
    state: &RouteState,
) {
    let rows = state
        .effective_weights(route)
        .into_iter()
        .zip(state.ejected())
        .zip(state.latched())
        .enumerate();
    for (destination, ((weight, out), latched)) in rows {
        let id = |metric| metrics.destination(index, destination, metric);
        if let Some(id) = id(DestinationMetric::Weight) {
            host.record_metric(id, u64::from(weight));
        }
        if let Some(id) = id(DestinationMetric::GuardEjected) {
            host.record_metric(id, u64::from(*out));
        }
        if let Some(id) = id(DestinationMetric::GuardLatched) {
            host.record_metric(id, u64::from(*latched));
        }
    }
}

/// Merges one guarded route's outcomes and takes in the shared decisions; logs, counts and
/// republishes what changed. `false` when the store failed (the outcomes wait for the next
/// tick).
pub(super) fn merge_route(
    host: &impl WorkerHost,
    metrics: &MetricIds,
    index: usize,
    route: &Route,
    state: &mut RouteState,
    key: &str,
    events: &mut Vec<RouteEvent>,
) -> bool {
    let clock = || now_ms(host);
    match state.merge_guard(route, &HostStore(host), key, &clock) {
        Ok((merged, changed)) => {
            for event in merged {
                report(host, metrics, index, route, &event);
                events.push(RouteEvent {
                    route: index,
                    event,
                });
            }
            if changed {
                publish_route(host, metrics, index, route, state);
            }
            true
        }
        Err(status) => {
            if let Some(id) = metrics.plugin(PluginMetric::HostErrors) {
                host.increment_metric(id, 1);
            }
            log::warn!(
                "guard of route {}: shared data unavailable ({status:?})",
                route.name
            );
            false
        }
    }
}

/// Logs a guard decision and counts it.
fn report(
    host: &impl WorkerHost,
    metrics: &MetricIds,
    index: usize,
    route: &Route,
    event: &GuardEvent,
) {
    let version = |destination: usize| {
        route
            .destinations
            .get(destination)
            .map_or("?", |d| d.version.as_str())
    };
    let increment = |destination: usize, metric: DestinationMetric| {
        if let Some(id) = metrics.destination(index, destination, metric) {
            host.increment_metric(id, 1);
        }
    };
    match *event {
        GuardEvent::Tripped {
            destination,
            window,
            until_ms,
        } => {
            increment(destination, DestinationMetric::GuardTrips);
            if until_ms == UNTIL_CONFIG_CHANGE {
                let why = match &route.ramp {
                    Some(ramp) if ramp.destination == destination => "its rollout halted",
                    _ => "latched",
                };
                log::warn!(
                    "guard: route {} version {} out of the split until the config changes ({why}): {} errors in {} requests",
                    route.name,
                    version(destination),
                    window.errors,
                    window.requests
                );
            } else {
                log::warn!(
                    "guard: route {} version {} out of the split for {} ms: {} errors in {} requests",
                    route.name,
                    version(destination),
                    until_ms.saturating_sub(now_ms(host)),
                    window.errors,
                    window.requests
                );
            }
        }
        GuardEvent::Returned { destination, early } => {
            log::info!(
                "guard: route {} version {} back in the split{}",
                route.name,
                version(destination),
                if early { " (its probes succeeded)" } else { "" }
            );
        }
        GuardEvent::Held {
            destination,
            window,
        } => {
            increment(destination, DestinationMetric::GuardHeld);
            log::warn!(
                "guard: route {} version {} is failing ({} errors in {} requests) but is the last version with weight: kept in the split",
                route.name,
                version(destination),
                window.errors,
                window.requests
            );
        }
    }
}
