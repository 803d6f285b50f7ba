//! The guard's side of the root context: every [`super::timer::GUARD_TICK`], each worker merges the
//! outcomes its streams recorded into the route's state in proxy-wasm shared data
//! (compare-and-swap, retried on conflict), takes in the decisions found there, and logs and
//! counts what changed. The merge and the decisions are [`crate::split::guard`]'s; this file
//! gives it the host's shared data and clock.

use super::timer::now_ms;
use super::Active;
use crate::plan::Route;
use crate::split::guard::{GuardEvent, SharedStore, Stored};
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
    for ((weight, out), metrics) in state
        .effective_weights(route)
        .iter()
        .zip(ejected)
        .zip(metrics)
    {
        let _ = hostcalls::record_metric(metrics.weight, u64::from(*weight));
        if let Some(guard) = &metrics.guard {
            let _ = hostcalls::record_metric(guard.ejected, u64::from(*out));
        }
    }
}

pub(super) fn merge_all(active: &Active, keys: &[Option<String>]) {
    let now_ms = now_ms();
    let Ok(mut states) = active.states.try_borrow_mut() else {
        return;
    };
    let routes = active.plan.routes.iter().zip(states.iter_mut());
    for (((route, state), key), metrics) in routes.zip(keys).zip(&active.metrics) {
        let Some(key) = key else {
            continue;
        };
        match state.merge_guard(route, &HostSharedData, key, now_ms) {
            Ok((events, changed)) => {
                for event in events {
                    report(route, metrics, &event);
                }
                if changed {
                    publish_route(route, state, metrics);
                }
            }
            Err(status) => {
                let _ = hostcalls::increment_metric(active.host_errors, 1);
                log::warn!(
                    "traffic-split: guard of route {}: shared data unavailable ({status:?})",
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
    let guard_metrics =
        |destination: usize| metrics.get(destination).and_then(|m| m.guard.as_ref());
    match *event {
        GuardEvent::Tripped {
            destination,
            window,
            until_ms,
        } => {
            if let Some(ids) = guard_metrics(destination) {
                let _ = hostcalls::increment_metric(ids.trips, 1);
            }
            log::warn!(
                "traffic-split: guard: route {} version {} out of the split for {} ms: {} errors in {} requests",
                route.name,
                version(destination),
                until_ms.saturating_sub(now_ms()),
                window.errors,
                window.requests
            );
        }
        GuardEvent::Returned { destination, early } => {
            log::info!(
                "traffic-split: guard: route {} version {} back in the split{}",
                route.name,
                version(destination),
                if early { " (its probes succeeded)" } else { "" }
            );
        }
        GuardEvent::Held {
            destination,
            window,
        } => {
            if let Some(ids) = guard_metrics(destination) {
                let _ = hostcalls::increment_metric(ids.held, 1);
            }
            log::warn!(
                "traffic-split: guard: route {} version {} is failing ({} errors in {} requests) but is the last version with weight: kept in the split",
                route.name,
                version(destination),
                window.errors,
                window.requests
            );
        }
    }
}
