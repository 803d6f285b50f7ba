//! What changes while a route serves, named apart from the plan: per route, where its rollout
//! stands and the weights in force, the round robin over the weights requests are split by (the
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
use crate::split::rollout::{split_weights, SHARE_SCALE};
use crate::split::round_robin::WeightedRoundRobin;
use crate::split::sticky::pick_sticky;

/// The state of one route, on one worker.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteState {
    /// The rollout version's share by the rollout's schedule, in millionths of the route, as of
    /// the last [`RouteState::follow_rollout`] (0 without a rollout, and before the first).
    scheduled_share: u32,
    /// The weights before the guard's: the configured ones, or with a rollout the split of
    /// its share in force ([`split_weights`]).
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
        let mut state = RouteState {
            scheduled_share: 0,
            split: WeightedRoundRobin::default(),
            weights: Vec::new(),
            ejected: vec![false; destinations],
            latched: vec![false; destinations],
            outcomes: vec![Tally::default(); destinations],
            faults: vec![FaultDraws::default(); destinations],
        };
        state.weights = state.weights_before_guard(route);
        state.split = WeightedRoundRobin::new(&state.weights);
        state
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

    /// The destination of a sticky key under the weights requests are split by now (a
    /// rollout's, the guard's); `None` only when every weight is 0, which validation never builds.
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

    /// The weights before the guard's, in destination order: the configured ones, or with a
    /// rollout the split of its share in force.
    pub fn weights(&self) -> &[u32] {
        &self.weights
    }

    /// The weights requests are split by now, in destination order.
    pub fn effective_weights(&self, route: &Route) -> Vec<u32> {
        effective_weights(&self.weights, &self.ejected, route.probe_basis_points())
    }

    /// Each version's share of the route requests are split by now, in millionths.
    pub fn shares(&self, route: &Route) -> Vec<u32> {
        let weights = self.effective_weights(route);
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        weights
            .iter()
            .map(|&w| {
                let share = u64::from(w) * u64::from(SHARE_SCALE) / total.max(1);
                u32::try_from(share).unwrap_or(SHARE_SCALE)
            })
            .collect()
    }

    /// Whether the guard has halted the route's rollout: its version tripped and is latched
    /// until a push changes the rollout.
    pub fn rollout_halted(&self, route: &Route) -> bool {
        route
            .rollout
            .as_ref()
            .is_some_and(|rollout| self.latched.get(rollout.destination) == Some(&true))
    }

    /// The rollout version's share before the guard's: where the schedule has it, or, halted,
    /// no more than the guard's probe share (0 without probes).
    fn rollout_share(&self, route: &Route) -> u32 {
        if self.rollout_halted(route) {
            self.scheduled_share.min(route.probe_share())
        } else {
            self.scheduled_share
        }
    }

    /// The weights before the guard's, worked out afresh.
    fn weights_before_guard(&self, route: &Route) -> Vec<u32> {
        let configured = route.configured_weights();
        match &route.rollout {
            Some(rollout) => {
                split_weights(&configured, rollout.destination, self.rollout_share(route))
            }
            None => configured,
        }
    }

    /// The weights the guard decides by, for whether another version could take the route
    /// if one went out: a rollout's stable versions with their configured weights, since a
    /// trip of the rollout version halts it and gives them the route back (at 100% too).
    fn guard_weights(&self, route: &Route) -> Vec<u32> {
        match &route.rollout {
            Some(rollout) => route
                .destinations
                .iter()
                .enumerate()
                .map(|(index, destination)| match index == rollout.destination {
                    true => self.weights.get(index).copied().unwrap_or(0),
                    false => destination.weight,
                })
                .collect(),
            None => self.weights.clone(),
        }
    }

    /// Brings the route's weights to where its rollout stands at `now_nanos` (the proxy's
    /// clock, since the Unix epoch). Whether they changed: the round robin then goes on over
    /// the new weights (the guard's, if it has a version out), each version keeping its
    /// credit, so that a step or a linear segment never restarts it.
    pub fn follow_rollout(&mut self, route: &Route, now_nanos: u64) -> bool {
        let Some(rollout) = &route.rollout else {
            return false;
        };
        let share = rollout.share_at_nanos(now_nanos);
        if share == self.scheduled_share {
            return false;
        }
        self.scheduled_share = share;
        self.reweigh(route)
    }

    /// Works the weights before the guard's out afresh and, if they changed, moves the round
    /// robin to them. Whether they changed.
    fn reweigh(&mut self, route: &Route) -> bool {
        let weights = self.weights_before_guard(route);
        if weights == self.weights {
            return false;
        }
        self.weights = weights;
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
        for (was, &is) in self.ejected.iter_mut().zip(ejected) {
            *was = is;
        }
        // A halt (or its release by a push) moves the rollout's share; `reweigh` resplits.
        let reweighed = latches_changed && self.reweigh(route);
        if changed && !reweighed {
            self.resplit(route);
        }
        changed || latches_changed
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

    /// Which destinations the guard has latched out until the config changes (a halted
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

    /// Moves the outcomes not yet merged into `into` (per destination), for another worker of
    /// the same configuration to merge ([`crate::worker::HandedOutcomes`]).
    pub fn hand_over_outcomes(&mut self, into: &mut [Tally]) {
        for (tally, into) in self.outcomes.iter_mut().zip(into) {
            into.add(std::mem::take(tally));
        }
    }

    /// Takes in outcomes another worker of the same configuration handed over: the next merge
    /// counts them as this worker's own.
    pub fn take_in_outcomes(&mut self, from: &mut [Tally]) {
        for (tally, from) in self.outcomes.iter_mut().zip(from) {
            tally.add(std::mem::take(from));
        }
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
        let weights = self.guard_weights(route);
        match merge_shared(store, key, guard, &weights, &deltas, clock) {
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

    const NANOS_PER_MS: u64 = 1_000_000;

    fn nanos(ms: i64) -> u64 {
        ms as u64 * NANOS_PER_MS
    }

    /// A plan of one route `r` with `fields` and `destinations`.
    fn plan(fields: &str, destinations: &str) -> Plan {
        crate::config::compile(
            format!(
                r#"{{ "routes": [ {{ "name": "r", {fields} "destinations": [ {destinations} ] }} ] }}"#
            )
            .as_bytes(),
        )
        .unwrap()
    }

    /// A rollout of v2 from 2026-12-01T10:00:00Z with `steps`.
    fn rollout(steps: &str) -> String {
        format!(
            r#""rollout": {{ "version": "v2", "start": "2026-12-01T10:00:00Z", "steps": [ {steps} ] }},"#
        )
    }

    const V1_V2: &str = r#"{ "version": "v1", "weight": 100 }, { "version": "v2" }"#;

    fn picks(state: &mut RouteState, count: usize, destinations: usize) -> Vec<u32> {
        let mut picks = vec![0; destinations];
        for _ in 0..count {
            picks[state.pick()] += 1;
        }
        picks
    }

    #[test]
    fn a_rollout_in_a_25_percent_hold_gets_exactly_a_quarter() {
        let plan = plan(
            &rollout(r#"{ "share": 25, "hold": "1h" }, { "share": 100 }"#),
            V1_V2,
        );
        let route = &plan.routes[0];
        let mut state = RouteState::new(route);
        assert_eq!(picks(&mut state, 10, 2), [10, 0], "not started: nothing");
        assert!(state.follow_rollout(route, nanos(START)));
        assert!(!state.follow_rollout(route, nanos(START + MINUTE)), "held");
        assert_eq!(picks(&mut state, 400, 2), [300, 100]);
        assert_eq!(state.shares(route), [750_000, 250_000]);
        assert!(state.follow_rollout(route, nanos(START + 60 * MINUTE)));
        assert_eq!(picks(&mut state, 400, 2), [0, 400], "finished: everything");
    }

    #[test]
    fn the_other_versions_split_the_rest_by_weight() {
        let plan = plan(
            &rollout(r#"{ "share": 20 }"#),
            r#"{ "version": "v1", "weight": 3 }, { "version": "v2" }, { "version": "v3", "weight": 1 }"#,
        );
        let route = &plan.routes[0];
        let mut state = RouteState::new(route);
        state.follow_rollout(route, nanos(START));
        assert_eq!(picks(&mut state, 100, 3), [60, 20, 20]);
    }

    #[test]
    fn steps_and_linear_segments_never_restart_the_round_robin() {
        // 0 to 100% over 1000 ms: the share moves on every request, one per ms.
        let plan = plan(&rollout(r#"{ "share": 100, "over": "1s" }"#), V1_V2);
        let route = &plan.routes[0];
        let mut state = RouteState::new(route);
        let (mut due, mut got) = (0u64, 0u64);
        for ms in 0..1_000 {
            state.follow_rollout(route, nanos(START + ms));
            due += u64::from(state.shares(route)[1]);
            got += u64::from(state.pick() == 1) * 1_000_000;
            assert!(
                got.abs_diff(due) <= 2_000_000,
                "at {ms} ms: {got} got, {due} due"
            );
        }
        assert!((495..=505).contains(&(got / 1_000_000)), "{got}");
        // Half way through a linear segment: half its share.
        state.follow_rollout(route, nanos(START + 500));
        assert_eq!(state.shares(route), [500_000, 500_000]);
    }

    /// Where keys `k0`.. are, under the state's split.
    fn key_versions(state: &RouteState, route: &Route) -> Vec<usize> {
        (0..2_000)
            .map(|key| {
                let key = format!("k{key}");
                state.sticky_destination(route, key.as_bytes()).unwrap()
            })
            .collect()
    }

    #[test]
    fn sticky_keys_only_move_to_the_rollout_while_it_grows_and_from_it_on_the_way_down() {
        let plan = plan(
            &rollout(
                r#"{ "share": 10, "hold": "10m" }, { "share": 35, "hold": "10m" },
                   { "share": 60, "over": "10m", "hold": "until_config_change" }, { "share": 100 }"#,
            ),
            r#"{ "version": "v1", "weight": 2 }, { "version": "v2" }, { "version": "v3", "weight": 1 }"#,
        );
        let route = &plan.routes[0];
        let mut state = RouteState::new(route);
        let mut before = key_versions(&state, route);
        assert!(before.iter().all(|&version| version != 1));
        for minute in 0..60 {
            state.follow_rollout(route, nanos(START + minute * MINUTE));
            let now = key_versions(&state, route);
            for (key, (&was, &is)) in before.iter().zip(&now).enumerate() {
                assert!(
                    was == is || is == 1,
                    "minute {minute}: k{key} moved {was} -> {is}"
                );
            }
            before = now;
        }
        let on_v2 = before.iter().filter(|&&version| version == 1).count();
        assert!(
            (1_100..=1_300).contains(&on_v2),
            "{on_v2} of 2000 keys at the 60% gate"
        );
        // A halt: keys only leave the rollout version.
        let route_halted = [false, true, false];
        state.apply_ejections(route, &route_halted, &route_halted);
        let halted = key_versions(&state, route);
        for (key, (&was, &is)) in before.iter().zip(&halted).enumerate() {
            assert!(was == is || was == 1, "halt: k{key} moved {was} -> {is}");
            assert_ne!(is, 1);
        }
    }

    #[test]
    fn a_halt_at_100_percent_gives_the_stable_versions_the_route_back() {
        let plan = plan(
            &format!(
                r#""guard": {{ "max_error_ratio": 0.1, "min_requests": 10, "cooldown": "1s" }}, {}"#,
                rollout(r#"{ "share": 100 }"#)
            ),
            r#"{ "version": "v1", "weight": 3 }, { "version": "v2" }, { "version": "v3", "weight": 1 }"#,
        );
        let route = &plan.routes[0];
        let mut state = RouteState::new(route);
        state.follow_rollout(route, nanos(START));
        assert_eq!(picks(&mut state, 8, 3), [0, 8, 0]);
        let store = crate::split::guard::memory_store::MemoryStore::new();
        let now = START as u64;
        for _ in 0..20 {
            state.record_outcome(1, true);
        }
        let (events, changed) = state.merge_guard(route, &store, "k", &|| now).unwrap();
        assert!(changed, "{events:?}");
        assert!(
            matches!(events[..], [GuardEvent::Tripped { destination: 1, .. }]),
            "tripped, not held: {events:?}"
        );
        assert!(state.rollout_halted(route));
        assert_eq!(picks(&mut state, 8, 3), [6, 0, 2]);
        // Long after its cooldown, still halted: the latch holds until the rollout changes.
        let later = now + 3_600_000;
        state.follow_rollout(route, nanos(later as i64));
        state.merge_guard(route, &store, "k", &|| later).unwrap();
        assert!(state.rollout_halted(route));
        assert_eq!(state.shares(route), [750_000, 0, 250_000]);
    }

    #[test]
    fn a_halted_rollout_keeps_its_probe_share_at_most() {
        let plan = plan(
            &format!(
                r#""guard": {{ "max_error_ratio": 0.1, "probe_percent": 1 }}, {}"#,
                rollout(r#"{ "share": 50 }"#)
            ),
            V1_V2,
        );
        let route = &plan.routes[0];
        let mut state = RouteState::new(route);
        state.follow_rollout(route, nanos(START));
        assert!(state.apply_ejections(route, &[false, true], &[false, true]));
        assert_eq!(state.shares(route), [990_000, 10_000]);
        assert_eq!(picks(&mut state, 100, 2), [99, 1]);
        // A push that changes the rollout releases the latch.
        assert!(state.apply_ejections(route, &[false, false], &[false, false]));
        assert_eq!(state.shares(route), [500_000, 500_000]);
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
