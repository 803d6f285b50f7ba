//! What changes while a route serves, named apart from the plan: per route, the weights in
//! force (a ramp moves one), the round robin over the weights requests are split by (the
//! guard's while a version is out), which versions the guard has out as of this worker's last merge, the outcomes not yet
//! merged, and how far each fault's draws have gone.
//!
//! Each Envoy worker has its own Wasm VM, so its own plan and its own state: one
//! [`RouteState`] per route, parallel to the plan's routes, owned by the adapter's root context
//! beside the plan ([`RouteState::for_plan`]). The plan itself never changes.

use crate::plan::{Plan, Route};
use crate::split::fault::{FaultAction, FaultDraws};
use crate::split::guard::{
    effective_weights, merge_shared, GuardEvent, RouteGuardState, SharedStore, Tally,
};
use crate::split::round_robin::WeightedRoundRobin;
use crate::split::sticky::pick_sticky;

/// The state of one route, on one worker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteState {
    /// The weights before the guard's: the configured ones, a ramped version's where its ramp
    /// stands.
    weights: Vec<u32>,
    /// The round robin requests are split by: over `weights`, or the guard's effective
    /// weights while a version is out. One round robin through every change, so that a
    /// weight change keeps each version's credit (see [`WeightedRoundRobin::set_weights`]).
    split: WeightedRoundRobin,
    /// Which destinations the guard has taken out, as of this worker's last merge.
    ejected: Vec<bool>,
    /// Which of those are latched out until the config changes.
    latched: Vec<bool>,
    /// Outcomes per destination since this worker's last merge.
    outcomes: Vec<Tally>,
    /// Per destination: how far its faults have drawn.
    faults: Vec<FaultDraws>,
}

impl RouteState {
    /// A route's state before its first request: the configured weights, nothing ejected.
    pub fn new(route: &Route) -> Self {
        let destinations = route.destinations.len();
        let weights = route.configured_weights();
        RouteState {
            split: WeightedRoundRobin::new(&weights),
            weights,
            ejected: vec![false; destinations],
            latched: vec![false; destinations],
            outcomes: vec![Tally::default(); destinations],
            faults: vec![FaultDraws::default(); destinations],
        }
    }

    /// The state of every route of a plan, in route order.
    pub fn for_plan(plan: &Plan) -> Vec<RouteState> {
        plan.routes.iter().map(RouteState::new).collect()
    }

    /// The round robin requests are split by now: over the guard's weights while a version is
    /// out, else over the weights before it.
    pub fn split_in_force(&self) -> &WeightedRoundRobin {
        &self.split
    }

    /// The next destination by weight: the guard's effective weights while a version is out,
    /// else the weights before it.
    pub fn pick(&mut self) -> usize {
        self.split.pick()
    }

    /// The destination of a sticky key under the weights requests are split by now (a ramp's,
    /// the guard's); `None` only when every weight is 0, which validation never builds.
    pub fn sticky_destination(&self, route: &Route, key: &[u8]) -> Option<usize> {
        let seeds = route
            .destinations
            .iter()
            .map(|destination| destination.sticky_seed);
        pick_sticky(
            key,
            seeds.zip(self.split_in_force().weights().iter().copied()),
        )
    }

    /// The weights before the guard's, in destination order: the configured ones, with a
    /// ramped version's where its ramp stands.
    pub fn weights(&self) -> &[u32] {
        &self.weights
    }

    /// The weights requests are split by now, in destination order.
    pub fn effective_weights(&self, route: &Route) -> Vec<u32> {
        effective_weights(&self.weights, &self.ejected, route.probe_basis_points())
    }

    /// Brings the route's weights to where its ramp stands at `now_nanos` (the proxy's clock,
    /// since the Unix epoch). Whether they changed: the round robin then goes on over the new
    /// weights (the guard's, if it has a version out), each version keeping its credit.
    pub fn follow_ramp(&mut self, route: &Route, now_nanos: u64) -> bool {
        let Some(ramp) = &route.ramp else {
            return false;
        };
        let weight = ramp.weight_at_nanos(now_nanos);
        match self.weights.get_mut(ramp.destination) {
            Some(current) if *current != weight => *current = weight,
            _ => return false,
        }
        self.resplit(route);
        true
    }

    /// Takes in the guard's decisions (which destinations are out, which of those are
    /// latched); returns whether they changed this worker's split or its latches.
    pub fn apply_ejections(&mut self, route: &Route, ejected: &[bool], latched: &[bool]) -> bool {
        let latches_changed = self.latched.iter().zip(latched).any(|(was, is)| was != is);
        for (was, &is) in self.latched.iter_mut().zip(latched) {
            *was = is;
        }
        let changed = self.ejected.iter().zip(ejected).any(|(was, is)| was != is);
        if !changed {
            return latches_changed;
        }
        for (was, &is) in self.ejected.iter_mut().zip(ejected) {
            *was = is;
        }
        self.resplit(route);
        true
    }

    /// Takes in what the shared state says at `now_ms`.
    fn apply_shared(&mut self, route: &Route, shared: &RouteGuardState, now_ms: u64) -> bool {
        let Some(guard) = &route.guard else {
            return false;
        };
        self.apply_ejections(
            route,
            &shared.ejected(guard, now_ms),
            &shared.latched(guard),
        )
    }

    /// Moves the round robin to the weights before the guard's and its decisions, after
    /// either changed.
    fn resplit(&mut self, route: &Route) {
        let weights = self.effective_weights(route);
        self.split.set_weights(&weights);
    }

    /// Which destinations the guard has out, as of this worker's last merge.
    pub fn ejected(&self) -> &[bool] {
        &self.ejected
    }

    /// Which destinations the guard has latched out until the config changes (a failed
    /// rollout's version, or any version under `"cooldown": "until_config_change"`).
    pub fn latched(&self) -> &[bool] {
        &self.latched
    }

    /// Counts a routed request's outcome for the guard's next merge.
    pub fn record_outcome(&mut self, destination: usize, error: bool) {
        if let Some(tally) = self.outcomes.get_mut(destination) {
            tally.add(Tally::one(error));
        }
    }

    /// The outcomes since the last call, per destination.
    pub fn take_outcomes(&mut self) -> Vec<Tally> {
        self.outcomes.iter_mut().map(std::mem::take).collect()
    }

    /// The guard's tick for this route on this worker: merges the outcomes recorded since the
    /// last tick into the shared state at `key` ([`merge_shared`]) and takes in the decisions
    /// found there. Returns what the merge decided and whether this worker's split changed. On
    /// `Err` the outcomes are kept for the next tick rather than lost. `clock` gives the time in
    /// ms since the epoch; the merge reads it at each attempt.
    pub fn merge_guard<S: SharedStore>(
        &mut self,
        route: &Route,
        store: &S,
        key: &str,
        clock: &dyn Fn() -> u64,
    ) -> Result<(Vec<GuardEvent>, bool), S::Error> {
        let Some(guard) = &route.guard else {
            return Ok((Vec::new(), false));
        };
        let deltas = self.take_outcomes();
        match merge_shared(store, key, guard, self.weights(), &deltas, clock) {
            Ok((shared, events)) => {
                let changed = self.apply_shared(route, &shared, clock());
                Ok((events, changed))
            }
            Err(error) => {
                for (destination, delta) in deltas.iter().enumerate() {
                    if let Some(tally) = self.outcomes.get_mut(destination) {
                        tally.add(*delta);
                    }
                }
                Err(error)
            }
        }
    }

    /// Takes in the decisions already in the shared state at `key`, before a new configuration
    /// serves its first request: without this, a fresh state would give a version ejected
    /// before the push its full weight until this worker's first merge. Where there is no
    /// state yet, writes an empty one, so that the workers' first merges all compare-and-swap
    /// ([`merge_shared`]). Whether the split changed.
    pub fn load_guard<S: SharedStore>(
        &mut self,
        route: &Route,
        store: &S,
        key: &str,
        now_ms: u64,
    ) -> bool {
        match store.get(key) {
            Ok((Some(bytes), _)) => {
                let shared = RouteGuardState::decode(&bytes, route.destinations.len());
                self.apply_shared(route, &shared, now_ms)
            }
            Ok((None, _)) => {
                let empty = RouteGuardState::new(route.destinations.len());
                let _ = store.set(key, &empty.encode(), None);
                false
            }
            Err(_) => false,
        }
    }

    /// Whether a request sent to `destination` is aborted, delayed, or neither: its faults'
    /// next draws.
    pub fn draw_fault(&mut self, route: &Route, destination: usize) -> Option<FaultAction> {
        let fault = route.destinations.get(destination)?.fault.as_ref()?;
        fault.draw(self.faults.get_mut(destination)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const MINUTE: i64 = 60_000;
    const START: i64 = 1_796_119_200_000;

    #[test]
    fn a_ramp_moves_the_guards_split_too() {
        let plan = crate::config::compile(
            br#"{ "routes": [ { "name": "r", "guard": { "max_error_ratio": 0.5 },
                 "ramp": { "version": "v2", "from": 0, "to": 50, "start": "2026-12-01T10:00:00Z",
                           "duration": "1h", "steps": 1 },
                 "destinations": [ { "version": "v1", "weight": 50 }, { "version": "v2" },
                                   { "version": "v3", "weight": 50 } ] } ] }"#,
        )
        .unwrap();
        let route = &plan.routes[0];
        let mut state = RouteState::new(route);
        assert!(state.apply_ejections(route, &[false, false, true], &[false; 3]));
        assert_eq!(state.effective_weights(route), [50, 0, 0]);
        let after_the_ramp = (START + 61 * MINUTE) as u64 * 1_000_000;
        assert!(state.follow_ramp(route, after_the_ramp));
        assert!(!state.follow_ramp(route, after_the_ramp), "moved once");
        assert_eq!(
            state.weights(),
            [50, 50, 50],
            "the weights before the guard's"
        );
        assert_eq!(state.effective_weights(route), [50, 50, 0]);
        let mut picks = [0; 3];
        for _ in 0..100 {
            picks[state.pick()] += 1;
        }
        assert_eq!(
            picks,
            [50, 50, 0],
            "the guard's round robin has the ramp's weight"
        );
        for key in 0..500 {
            let key = format!("k{key}");
            assert_ne!(
                state.sticky_destination(route, key.as_bytes()),
                Some(2),
                "{key} on v3"
            );
        }
    }

    #[test]
    fn outcomes_are_taken_once() {
        let plan = crate::config::compile(
            br#"{ "routes": [ { "name": "r", "guard": { "max_error_ratio": 0.5 },
                 "destinations": [ { "version": "v1", "weight": 1 }, { "version": "v2", "weight": 1 } ] } ] }"#,
        )
        .unwrap();
        let mut state = RouteState::new(&plan.routes[0]);
        state.record_outcome(1, true);
        state.record_outcome(1, false);
        state.record_outcome(7, true);
        let taken = state.take_outcomes();
        assert_eq!(
            taken[1],
            Tally {
                requests: 2,
                errors: 1
            }
        );
        assert_eq!(taken[0], Tally::default());
        assert_eq!(state.take_outcomes(), [Tally::default(); 2]);
    }
}
