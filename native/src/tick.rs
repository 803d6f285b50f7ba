//! What a worker does for a configuration over time, on Envoy's main thread (each tick of the
//! timer thread) and on each worker thread (when a stream finds its tick due): merge the guard's
//! outcomes into the shared state and take in its decisions, bring ramps up to the clock, and
//! set the gauges. Interim: the core's worker module takes this over.

use crate::abi;
use crate::config::NativeConfig;
use crate::host::clock_nanos;
use crate::shared::ProcessStore;
use std::time::Duration;
use traffic_split::metrics::{DestinationMetric, PluginMetric};
use traffic_split::plan::{Plan, Route};
use traffic_split::request::{Chosen, Count};
use traffic_split::split::guard::{GuardEvent, UNTIL_CONFIG_CHANGE};
use traffic_split::state::RouteState;

/// How often a worker merges its guard outcomes into the shared state and reads the decisions.
const GUARD_TICK: Duration = Duration::from_millis(250);
/// How often a configuration with a ramp brings its ramps and weight gauges up to the clock.
const RAMP_TICK: Duration = Duration::from_secs(1);

/// How often a configuration needs a tick, if ever.
pub fn period(plan: &Plan) -> Option<Duration> {
    let guard = plan.routes.iter().any(|route| route.guard.is_some());
    let ramp = plan.routes.iter().any(|route| route.ramp.is_some());
    [guard.then_some(GUARD_TICK), ramp.then_some(RAMP_TICK)]
        .into_iter()
        .flatten()
        .min()
}

fn now_ms() -> u64 {
    clock_nanos() / 1_000_000
}

/// A worker's fresh route states: the guard's decisions already made taken in, every ramp
/// brought to the clock, and the gauges set.
pub fn fresh_states(config: &NativeConfig) -> Vec<RouteState> {
    let mut states = RouteState::for_plan(&config.plan);
    let now_nanos = clock_nanos();
    for ((route, state), key) in config
        .plan
        .routes
        .iter()
        .zip(states.iter_mut())
        .zip(&config.guard_keys)
    {
        if let Some(key) = key {
            state.load_guard(route, &ProcessStore::global(), key, now_nanos / 1_000_000);
        }
        state.follow_ramp(route, now_nanos);
    }
    for (index, (route, state)) in config.plan.routes.iter().zip(&states).enumerate() {
        publish(config, index, route, state);
    }
    states
}

/// One tick of a worker over every route.
pub fn tick(config: &NativeConfig, states: &mut [RouteState]) {
    let now_nanos = clock_nanos();
    let routes = config
        .plan
        .routes
        .iter()
        .zip(states.iter_mut())
        .zip(&config.guard_keys);
    for (index, ((route, state), key)) in routes.enumerate() {
        let mut changed = state.follow_ramp(route, now_nanos);
        if let Some(key) = key {
            match state.merge_guard(route, &ProcessStore::global(), key, &now_ms) {
                Ok((events, guard_changed)) => {
                    for event in events {
                        report(config, index, route, &event);
                    }
                    changed |= guard_changed;
                }
                Err(error) => {
                    increment(
                        config,
                        config
                            .metrics
                            .of_count(Count::Plugin(PluginMetric::HostErrors)),
                    );
                    log::warn!(
                        "guard of route {}: shared state unavailable ({error:?})",
                        route.name
                    );
                }
            }
        }
        if changed {
            publish(config, index, route, state);
        }
    }
}

fn increment(config: &NativeConfig, id: Option<usize>) {
    if let Some(id) = id {
        // SAFETY: an id defined on this config; no labels.
        unsafe {
            abi::envoy_dynamic_module_callback_http_filter_config_increment_counter(
                config.envoy as abi::ConfigEnvoyPtr,
                id,
                std::ptr::null_mut(),
                0,
                1,
            )
        };
    }
}

fn set_gauge(config: &NativeConfig, id: Option<usize>, value: u64) {
    if let Some(id) = id {
        // SAFETY: an id defined on this config; no labels.
        unsafe {
            abi::envoy_dynamic_module_callback_http_filter_config_set_gauge(
                config.envoy as abi::ConfigEnvoyPtr,
                id,
                std::ptr::null_mut(),
                0,
                value,
            )
        };
    }
}

/// Sets a route's weight gauges (and, on a guarded route, its ejected and latched gauges).
fn publish(config: &NativeConfig, index: usize, route: &Route, state: &RouteState) {
    let weights = state.effective_weights(route);
    for (destination, weight) in weights.iter().enumerate() {
        let chosen = Chosen {
            route: index,
            destination,
        };
        let id = |metric| config.metrics.destination(chosen, metric);
        set_gauge(config, id(DestinationMetric::Weight), u64::from(*weight));
        let ejected = state.ejected().get(destination).copied().unwrap_or(false);
        set_gauge(
            config,
            id(DestinationMetric::GuardEjected),
            u64::from(ejected),
        );
        let latched = state.latched().get(destination).copied().unwrap_or(false);
        set_gauge(
            config,
            id(DestinationMetric::GuardLatched),
            u64::from(latched),
        );
    }
}

fn report(config: &NativeConfig, index: usize, route: &Route, event: &GuardEvent) {
    let version = |destination: usize| {
        route
            .destinations
            .get(destination)
            .map_or("?", |d| d.version.as_str())
    };
    let count = |destination: usize, metric: DestinationMetric| {
        let chosen = Chosen {
            route: index,
            destination,
        };
        increment(config, config.metrics.destination(chosen, metric));
    };
    match *event {
        GuardEvent::Tripped {
            destination,
            window,
            until_ms,
        } => {
            count(destination, DestinationMetric::GuardTrips);
            if until_ms == UNTIL_CONFIG_CHANGE {
                let why = match &route.ramp {
                    Some(ramp) if ramp.destination == destination => "its rollout halted",
                    _ => "latched",
                };
                log::warn!(
                    "guard: route {} version {} out of the split until the config changes ({why}): {} errors in {} requests",
                    route.name, version(destination), window.errors, window.requests
                );
            } else {
                log::warn!(
                    "guard: route {} version {} out of the split for {} ms: {} errors in {} requests",
                    route.name, version(destination), until_ms.saturating_sub(now_ms()), window.errors, window.requests
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
            count(destination, DestinationMetric::GuardHeld);
            log::warn!(
                "guard: route {} version {} is failing ({} errors in {} requests) but is the last version with weight: kept in the split",
                route.name, version(destination), window.errors, window.requests
            );
        }
    }
}
