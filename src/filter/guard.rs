//! The guard's side of the root context: every [`super::timer::GUARD_TICK`], each worker merges the
//! outcomes its streams recorded into the route's state in proxy-wasm shared data
//! (compare-and-swap, retried on conflict), takes in the decisions found there, and logs and
//! counts what changed. The merge and the decisions are [`crate::split::guard`]'s; this file
//! gives it the host's shared data and clock.

use super::timer::now_ms;
use super::Active;
use crate::metrics::{DestinationMetric, PluginMetric};
use crate::plan::Route;
use crate::split::guard::{GuardEvent, SharedStore, Stored, UNTIL_CONFIG_CHANGE};
use crate::state::RouteState;
use proxy_wasm::hostcalls;
use proxy_wasm::types::Status;

/// Sets every destination's weight gauge (and, on guarded routes, its ejected gauge).
pub(super) fn publish_weights(active: &Active) {
    let Ok(states) = active.states.try_borrow() else {
        return;
    };
    for ((route, state), metrics) in active
        .plan
        .routes
        .iter()
        .zip(states.iter())
        .zip(&active.metrics)
    {
        publish_route(route, state, metrics);
    }
}

/// Sets a route's weight gauges (and, on a guarded route, its ejected gauges).
fn publish_route(route: &Route, state: &RouteState, metrics: &[super::DestinationMetrics]) {
    let ejected = state.ejected();
    for (((weight, out), latched), metrics) in state
        .effective_weights(route)
        .iter()
        .zip(ejected)
        .zip(state.latched())
        .zip(metrics)
    {
        if let Some(id) = metrics.id(DestinationMetric::Weight) {
            let _ = hostcalls::record_metric(id, u64::from(*weight));
        }
        if let Some(id) = metrics.id(DestinationMetric::GuardEjected) {
            let _ = hostcalls::record_metric(id, u64::from(*out));
        }
        if let Some(id) = metrics.id(DestinationMetric::GuardLatched) {
            let _ = hostcalls::record_metric(id, u64::from(*latched));
        }
    }
}

/// Takes in the decisions already in shared data, before a new configuration serves its first
/// request: without this, each worker's fresh state would give a version ejected before the
/// push its full weight until the worker's first merge.
pub(super) fn load_all(active: &Active, keys: &[Option<String>]) {
    let now_ms = now_ms();
    let Ok(mut states) = active.states.try_borrow_mut() else {
        return;
    };
    let routes = active.plan.routes.iter().zip(states.iter_mut());
    for ((route, state), key) in routes.zip(keys) {
        if let Some(key) = key {
            state.load_guard(route, &HostSharedData, key, now_ms);
        }
    }
}

pub(super) fn merge_all(active: &Active, keys: &[Option<String>]) {
    let Ok(mut states) = active.states.try_borrow_mut() else {
        return;
    };
    let routes = active.plan.routes.iter().zip(states.iter_mut());
    for (((route, state), key), metrics) in routes.zip(keys).zip(&active.metrics) {
        let Some(key) = key else {
            continue;
        };
        match state.merge_guard(route, &HostSharedData, key, &now_ms) {
            Ok((events, changed)) => {
                for event in events {
                    report(route, metrics, &event);
                }
                if changed {
                    publish_route(route, state, metrics);
                }
            }
            Err(status) => {
                if let Some(id) = active.plugin_id(PluginMetric::HostErrors) {
                    let _ = hostcalls::increment_metric(id, 1);
                }
                log::warn!(
                    "guard of route {}: shared data unavailable ({status:?})",
                    route.name
                );
            }
        }
    }
}

/// The proxy's shared data, through host calls.
struct HostSharedData;

impl SharedStore for HostSharedData {
    type Error = Status;

    fn get(&self, key: &str) -> Result<Stored, Status> {
        hostcalls::get_shared_data(key)
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), Status> {
        hostcalls::set_shared_data(key, Some(value), cas)
    }
}

fn report(route: &Route, metrics: &[super::DestinationMetrics], event: &GuardEvent) {
    let version = |destination: usize| {
        route
            .destinations
            .get(destination)
            .map_or("?", |d| d.version.as_str())
    };
    let increment = |destination: usize, metric: DestinationMetric| {
        if let Some(id) = metrics.get(destination).and_then(|ids| ids.id(metric)) {
            let _ = hostcalls::increment_metric(id, 1);
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
                    until_ms.saturating_sub(now_ms()),
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
