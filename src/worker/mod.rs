//! What one Envoy worker holds and does for one configuration, written once for every host:
//! the proxy-wasm adapter (`crate::filter`), the native dynamic module and the simulator
//! (`crate::sim`) each drive a [`Worker`] over their own [`WorkerHost`], as the streams drive
//! [`crate::request::Stream`] over a [`StreamHost`].
//!
//! A worker holds the compiled [`Plan`], each route's live [`RouteState`], each guarded route's
//! key in the shared store, and the configuration's metric ids. It does:
//! - configure ([`Worker::configure`]): compile (or, for an invalid config that asks for it, the
//!   pass-through plan), define the metrics, take in the guard decisions already in the shared
//!   store, bring every rollout to the clock and set the gauges;
//! - tick ([`Worker::tick`]): merge the guards, follow the rollouts, set the gauges; the host's
//!   timer ([`Timer`]) says when;
//! - hand each stream's callbacks to [`Stream`] with the plan and the states.
//!
//! - [`host`]: the [`WorkerHost`] trait;
//! - [`metrics`]: which metrics a configuration defines, and their ids;
//! - [`guard`]: the guard's merge, its log lines and counters, the gauges;
//! - [`timer`]: the timer's period, and requests held by a delay fault;
//! - `memory_host` (tests and the simulation): a [`WorkerHost`] in memory.

pub mod guard;
pub mod host;
#[cfg(any(test, feature = "testing"))]
pub mod memory_host;
pub mod metrics;
#[cfg(test)]
mod tests;
pub mod timer;

pub use guard::RouteEvent;
pub use host::{now_ms, WorkerHost};
pub use metrics::{DefinedMetrics, DestinationMetrics, MetricIds};
pub use timer::{TickNeeds, Timer, GUARD_TICK, ROLLOUT_TICK};

use crate::config::pass_through::pass_through_plan;
use crate::config::{compile, describe_errors};
use crate::metrics::PluginLabel;
use crate::plan::{Plan, DEFAULT_CLUSTER_HEADER, DEFAULT_VERSION_HEADER};
use crate::request::{Stream, StreamHost, Verdict};
use crate::split::guard::Tally;
use crate::state::RouteState;
use guard::{guard_state_key, merge_route, publish_route, HostStore};
use std::cell::RefCell;

/// What the host can serve, besides the request path every host has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// The host calls the filter when a response starts and when a stream ends. The Wasm module
    /// without the response path (`traffic_split_requests.wasm`) has neither, and refuses the
    /// configs that need them rather than serve them half.
    pub response_path: bool,
    /// The host catches a panic of the filter's and lets the request through without it (the
    /// native module): the configuration then counts them (`traffic_split_panics_total`).
    pub catches_panics: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            response_path: true,
            catches_panics: false,
        }
    }
}

/// A refused configuration: the one log line that says why. The host keeps serving the
/// configuration it had.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused(pub String);

impl core::fmt::Display for Refused {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "configuration refused: {}", self.0)
    }
}

/// Guard outcomes that one worker's streams recorded and another worker of the same
/// configuration merges: per route, a tally per destination (none for a route without a guard).
///
/// A worker merges its own outcomes when it ticks. A host whose workers cannot tick on their own
/// (the native module: Envoy gives a dynamic module's worker thread no timer, so a worker ticks
/// only when one of its streams finds the tick due) hands each stream's outcome over here, and
/// the worker that does tick, on a timer of the host's, takes them in: a worker that goes quiet
/// after a burst of errors then holds none of them back from the guard.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HandedOutcomes {
    routes: Vec<Vec<Tally>>,
}

/// What a tick did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TickReport {
    /// The guard decisions this worker's merges made.
    pub guard_events: Vec<RouteEvent>,
    /// Guarded routes whose merge the store refused (their outcomes wait for the next tick).
    pub failed_merges: u32,
}

/// One configuration on one Envoy worker. Streams keep the worker they started under (an
/// `Rc`), so a push applies to later streams; every method takes `&self`, and the states are
/// borrowed only within one call, never across a host call that could re-enter the module.
#[derive(Debug)]
pub struct Worker {
    plan: Plan,
    /// What changes while the routes serve, parallel to `plan.routes`.
    states: RefCell<Vec<RouteState>>,
    /// Where each guarded route keeps its state in the shared store, parallel to `plan.routes`.
    guard_keys: Vec<Option<String>>,
    metrics: MetricIds,
}

impl Worker {
    /// Compiles a configuration and makes it ready to serve its first request: defines its
    /// metrics, brings every rollout to the clock, takes in the guard decisions already in the
    /// shared store and sets the gauges. An invalid config is refused, or served by the
    /// pass-through plan where it asks for that (`on_invalid_config`), with its errors logged
    /// loudly either way. `plugin_name` is the host's name of the plugin: its metrics carry it
    /// (as [`PluginLabel`]) and its guards' shared-store keys are its own.
    pub fn configure(
        json: &[u8],
        plugin_name: &str,
        capabilities: Capabilities,
        host: &impl WorkerHost,
        defined: &mut DefinedMetrics,
    ) -> Result<Worker, Refused> {
        let plan = match compile(json) {
            Ok(plan) => plan,
            Err(errors) => {
                let errors = describe_errors(&errors);
                let Some(plan) = pass_through_plan(json) else {
                    return Err(Refused(errors));
                };
                // Loud, and at error level so no log_level silences it.
                log::error!("configuration INVALID, accepted as on_invalid_config: pass_through asks: no request is split, each loses the version and cluster headers and is counted in traffic_split_invalid_config_requests_total: {errors}");
                plan
            }
        };
        if !capabilities.response_path {
            if let Some(needs) = plan.response_path_use() {
                return Err(Refused(format!(
                    "{needs}; this module (traffic_split_requests.wasm) has no response path: use traffic_split.wasm"
                )));
            }
        }
        let plan = crate::ablation::rewrite_plan(plan);
        let label = PluginLabel::of_plugin_name(plugin_name);
        let metrics = MetricIds::define(&plan, &label, capabilities.catches_panics, host, defined)
            .map_err(|status| Refused(format!("defining metrics failed: {status:?}")))?;
        let worker = Worker::with_metrics(plan, plugin_name, metrics);
        worker.follow_rollouts(host.now_nanos());
        worker.load_guards(host);
        worker.publish(host);
        Ok(worker)
    }

    /// A worker for `plan` without metric ids: for tests and tools whose host counts by
    /// [`crate::request::Count`] rather than by id.
    pub fn for_plan(plan: Plan) -> Worker {
        Worker::with_metrics(plan, "", MetricIds::default())
    }

    fn with_metrics(plan: Plan, plugin_name: &str, metrics: MetricIds) -> Worker {
        Worker {
            states: RefCell::new(RouteState::for_plan(&plan)),
            guard_keys: plan
                .routes
                .iter()
                .map(|route| guard_state_key(plugin_name, route))
                .collect(),
            plan,
            metrics,
        }
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn metrics(&self) -> &MetricIds {
        &self.metrics
    }

    /// The shared-store key of each route's guard state (`None` for a route without a guard).
    pub fn guard_keys(&self) -> &[Option<String>] {
        &self.guard_keys
    }

    /// A copy of each route's live state, for tests and the simulator's records.
    pub fn states(&self) -> Vec<RouteState> {
        self.states
            .try_borrow()
            .map(|states| states.clone())
            .unwrap_or_default()
    }

    /// Runs `f` on one route's live state, if it exists and is not borrowed.
    pub fn with_state<R>(&self, route: usize, f: impl FnOnce(&RouteState) -> R) -> Option<R> {
        let states = self.states.try_borrow().ok()?;
        states.get(route).map(f)
    }

    /// Runs `f` on one route's live state, if it exists and is not borrowed.
    pub fn with_state_mut<R>(
        &self,
        route: usize,
        f: impl FnOnce(&mut RouteState) -> R,
    ) -> Option<R> {
        let mut states = self.states.try_borrow_mut().ok()?;
        states.get_mut(route).map(f)
    }

    /// What this configuration needs the timer for.
    pub fn tick_needs(&self) -> TickNeeds {
        TickNeeds {
            guarded: self.guard_keys.iter().any(Option::is_some),
            rollouts: self.plan.routes.iter().any(|route| route.rollout.is_some()),
        }
    }

    /// An empty [`HandedOutcomes`] shaped for this configuration's guarded routes.
    pub fn handed_outcomes(&self) -> HandedOutcomes {
        let routes = self.plan.routes.iter().zip(&self.guard_keys);
        HandedOutcomes {
            routes: routes
                .map(|(route, key)| match key {
                    Some(_) => vec![Tally::default(); route.destinations.len()],
                    None => Vec::new(),
                })
                .collect(),
        }
    }

    /// Moves the guard outcomes this worker's streams recorded since its last merge into
    /// `handed`, for another worker of the same configuration to merge.
    pub fn hand_over_outcomes(&self, handed: &mut HandedOutcomes) {
        self.with_guarded_tallies(handed, RouteState::hand_over_outcomes);
    }

    /// Takes in the guard outcomes another worker of the same configuration handed over: this
    /// worker's next tick merges them with its own.
    pub fn take_in_outcomes(&self, handed: &mut HandedOutcomes) {
        self.with_guarded_tallies(handed, RouteState::take_in_outcomes);
    }

    /// Runs `f` on each guarded route's state with its tallies in `handed`.
    fn with_guarded_tallies(
        &self,
        handed: &mut HandedOutcomes,
        f: fn(&mut RouteState, &mut [Tally]),
    ) {
        let Ok(mut states) = self.states.try_borrow_mut() else {
            return;
        };
        for (state, tallies) in states.iter_mut().zip(&mut handed.routes) {
            if !tallies.is_empty() {
                f(state, tallies);
            }
        }
    }

    /// The worker's periodic work: merges each guard into the shared store, brings the rollouts
    /// to the clock (a rollout's gauges move on a route without requests) and sets the gauges
    /// that changed.
    pub fn tick(&self, host: &impl WorkerHost) -> TickReport {
        let mut report = TickReport::default();
        let Ok(mut states) = self.states.try_borrow_mut() else {
            return report;
        };
        let routes = self.plan.routes.iter().zip(states.iter_mut());
        for (index, ((route, state), key)) in routes.zip(&self.guard_keys).enumerate() {
            let Some(key) = key else { continue };
            let merged = merge_route(
                host,
                &self.metrics,
                index,
                route,
                state,
                key,
                &mut report.guard_events,
            );
            if !merged {
                report.failed_merges += 1;
            }
        }
        let now_nanos = host.now_nanos();
        for (index, (route, state)) in self.plan.routes.iter().zip(states.iter_mut()).enumerate() {
            if state.follow_rollout(route, now_nanos) {
                publish_route(host, &self.metrics, index, route, state);
            }
        }
        report
    }

    /// Takes in the decisions already in the shared store, before this configuration serves
    /// its first request: without this, each worker's fresh state would give a version ejected
    /// before the push its full weight until the worker's first merge.
    fn load_guards(&self, host: &impl WorkerHost) {
        let now_ms = now_ms(host);
        let Ok(mut states) = self.states.try_borrow_mut() else {
            return;
        };
        let routes = self.plan.routes.iter().zip(states.iter_mut());
        for ((route, state), key) in routes.zip(&self.guard_keys) {
            if let Some(key) = key {
                state.load_guard(route, &HostStore(host), key, now_ms);
            }
        }
    }

    /// Brings every rollout to `now_nanos` (the gauges are set after).
    fn follow_rollouts(&self, now_nanos: u64) {
        if let Ok(mut states) = self.states.try_borrow_mut() {
            for (route, state) in self.plan.routes.iter().zip(states.iter_mut()) {
                state.follow_rollout(route, now_nanos);
            }
        }
    }

    /// Sets every destination's weight gauge (and, on guarded routes, its guard gauges).
    fn publish(&self, host: &impl WorkerHost) {
        let Ok(states) = self.states.try_borrow() else {
            return;
        };
        for (index, (route, state)) in self.plan.routes.iter().zip(states.iter()).enumerate() {
            publish_route(host, &self.metrics, index, route, state);
        }
    }

    /// A stream's request headers: everything the filter decides for a request.
    pub fn on_request_headers(&self, stream: &mut Stream, host: &mut impl StreamHost) -> Verdict {
        let host = &mut crate::ablation::host(host, &self.plan);
        match self.states.try_borrow_mut() {
            Ok(mut states) => stream.on_request_headers(&self.plan, &mut states, host),
            // Never (the states are borrowed only within one call); without them no route is
            // taken, and the owned headers still go.
            Err(_) => stream.on_request_headers(&self.plan, &mut [], host),
        }
    }

    /// A stream's response headers (a sticky cookie the request lacked).
    pub fn on_response_headers(&self, stream: &mut Stream, host: &mut impl StreamHost) {
        stream.on_response_headers(host);
    }

    /// A stream's end, where the response code and flags are final.
    pub fn on_end(&self, stream: &Stream, host: &mut impl StreamHost) {
        let host = &mut crate::ablation::host(host, &self.plan);
        match self.states.try_borrow_mut() {
            Ok(mut states) => stream.on_end(&self.plan, &mut states, host),
            // Never, as above; the response is still counted, only the guard misses it.
            Err(_) => stream.on_end(&self.plan, &mut [], host),
        }
    }
}

/// A request on a filter without a configuration (Envoy does not run a filter whose
/// configuration failed, but a host may): still never let a client choose the cluster or
/// version.
pub fn on_unconfigured_request(host: &mut impl StreamHost) {
    let _ = host.remove_request_header(DEFAULT_VERSION_HEADER);
    let _ = host.remove_request_header(DEFAULT_CLUSTER_HEADER);
}
