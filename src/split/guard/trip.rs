//! The guard's state of one route and its merge: a worker's outcomes are added, then versions
//! over the error ratio go out of the split and versions whose cooldown ended come back.

use super::policy::{Guard, UNTIL_CONFIG_CHANGE};
use super::window::{Tally, VersionState, BUCKETS};

/// Probe answers an ejected version must give in one window, within the error ratio, to come
/// back before its cooldown ends.
pub const PROBES_TO_RETURN: u32 = 10;

/// What a merge changed, for the adapter to log and count.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GuardEvent {
    /// Taken out of the split until `until_ms` ([`UNTIL_CONFIG_CHANGE`]: latched), for this
    /// window.
    Tripped {
        destination: usize,
        window: Tally,
        until_ms: u64,
    },
    /// Back in the split: its cooldown ended, or (`early`) its probes succeeded, or a latched
    /// version's configuration changed.
    Returned { destination: usize, early: bool },
    /// Would have tripped, but it is the last version with weight.
    Held { destination: usize, window: Tally },
}

/// The guard's state of one route, shared by the proxy's workers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteGuardState {
    /// Parallel to the route's destinations.
    pub versions: Vec<VersionState>,
}

impl RouteGuardState {
    pub fn new(destinations: usize) -> Self {
        RouteGuardState {
            versions: vec![VersionState::default(); destinations],
        }
    }

    /// Which versions are out of the split at `now_ms`. A latched version whose configuration
    /// changed since its trip is not: the merge under the new configuration releases it.
    pub fn ejected(&self, guard: &Guard, now_ms: u64) -> Vec<bool> {
        self.versions
            .iter()
            .enumerate()
            .map(|(destination, version)| version.out_at(now_ms, guard.latch(destination)))
            .collect()
    }

    /// Which versions are latched out until the config changes.
    pub fn latched(&self, guard: &Guard) -> Vec<bool> {
        self.versions
            .iter()
            .enumerate()
            .map(|(destination, version)| {
                version.ejected_until_ms == UNTIL_CONFIG_CHANGE
                    && version.out_at(0, guard.latch(destination))
            })
            .collect()
    }

    /// Adds one worker's outcomes since its last merge (`deltas`, parallel to the versions),
    /// then decides: versions whose cooldown ended (or whose probes succeeded, or, latched,
    /// whose configuration changed) come back; versions over the error ratio in the window go
    /// out, unless that would leave no version with weight (`weights`: the configured, or
    /// ramped, weights).
    ///
    /// Outcomes never go into a bucket older than the state's newest: a worker whose clock is
    /// behind another's (or stepped back) adds to the newest bucket instead, so that the
    /// buckets stay in order and the state stays readable by every worker.
    pub fn merge(
        &mut self,
        guard: &Guard,
        weights: &[u32],
        deltas: &[Tally],
        now_ms: u64,
    ) -> Vec<GuardEvent> {
        let newest = self
            .versions
            .iter()
            .filter_map(|version| version.buckets.last().map(|(index, _)| *index))
            .max()
            .unwrap_or(0);
        let bucket = (now_ms / guard.bucket_ms()).max(newest);
        let oldest = bucket.saturating_sub(BUCKETS - 1);
        let mut events = Vec::new();
        for (destination, version) in self.versions.iter_mut().enumerate() {
            let delta = deltas.get(destination).copied().unwrap_or_default();
            version.buckets.retain(|(index, _)| *index >= oldest);
            match version.buckets.last_mut() {
                Some((index, tally)) if *index == bucket => tally.add(delta),
                _ if delta != Tally::default() => version.buckets.push((bucket, delta)),
                _ => {}
            }
            if version.ejected_until_ms == 0 {
                continue;
            }
            if version.ejected_until_ms == UNTIL_CONFIG_CHANGE {
                // Latched: its probes show how it does, but only a new configuration of the
                // version (or of the guard, a state of its own) brings it back.
                if !version.out_at(now_ms, guard.latch(destination)) {
                    *version = VersionState::default();
                    events.push(GuardEvent::Returned {
                        destination,
                        early: false,
                    });
                }
                continue;
            }
            // Out of the split: its window holds only the probes sent since it went out.
            let probes = version.window();
            let early = probes.requests >= PROBES_TO_RETURN && !guard.too_many_errors(probes);
            if early || now_ms >= version.ejected_until_ms {
                // Back with a clean window: what it did before is not held against it again.
                *version = VersionState::default();
                events.push(GuardEvent::Returned { destination, early });
            }
        }
        for destination in 0..self.versions.len() {
            let Some(version) = self.versions.get(destination) else {
                continue;
            };
            if version.ejected_until_ms != 0 {
                continue;
            }
            let window = version.window();
            let failing = window.requests >= guard.min_requests && guard.too_many_errors(window);
            let others_serve = self.versions.iter().enumerate().any(|(other, state)| {
                other != destination
                    && state.ejected_until_ms == 0
                    && weights.get(other).is_some_and(|&weight| weight > 0)
            });
            let Some(version) = self.versions.get_mut(destination) else {
                continue;
            };
            if !failing {
                version.held = false;
            } else if others_serve {
                let latch = guard.latch(destination);
                let until_ms = match latch {
                    Some(_) => UNTIL_CONFIG_CHANGE,
                    None => now_ms.saturating_add(guard.cooldown_ms),
                };
                *version = VersionState {
                    ejected_until_ms: until_ms,
                    latch: latch.unwrap_or(0),
                    ..VersionState::default()
                };
                events.push(GuardEvent::Tripped {
                    destination,
                    window,
                    until_ms,
                });
            } else if !version.held {
                version.held = true;
                events.push(GuardEvent::Held {
                    destination,
                    window,
                });
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::split::guard::test_support::{guard, tally, START};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn a_failing_version_trips_once_it_has_enough_requests() {
        let mut state = RouteGuardState::new(2);
        let weights = [70, 30];
        // 30 requests, all failing: below min_requests.
        let events = state.merge(&guard(), &weights, &[tally(70, 0), tally(30, 30)], START);
        assert!(events.is_empty(), "{events:?}");
        let events = state.merge(
            &guard(),
            &weights,
            &[tally(70, 0), tally(30, 30)],
            START + 250,
        );
        assert_eq!(
            events,
            [GuardEvent::Tripped {
                destination: 1,
                window: tally(60, 60),
                until_ms: START + 250 + 10_000
            }]
        );
        assert_eq!(state.ejected(&guard(), START + 300), [false, true]);
    }

    #[test]
    fn errors_at_the_ratio_do_not_trip_and_above_it_do() {
        let mut state = RouteGuardState::new(2);
        let events = state.merge(&guard(), &[1, 1], &[tally(100, 5), tally(0, 0)], START);
        assert!(events.is_empty(), "5 of 100 is not above 0.05");
        let events = state.merge(&guard(), &[1, 1], &[tally(1, 1), tally(0, 0)], START + 10);
        assert_eq!(events.len(), 1, "6 of 101 is");
    }

    #[test]
    fn old_outcomes_leave_the_window() {
        let mut state = RouteGuardState::new(2);
        state.merge(&guard(), &[1, 1], &[tally(0, 0), tally(40, 40)], START);
        // A whole window later, those 40 errors no longer count.
        let events = state.merge(
            &guard(),
            &[1, 1],
            &[tally(0, 0), tally(40, 0)],
            START + 2_500,
        );
        assert!(events.is_empty(), "{events:?}");
        let window: u32 = state.versions[1]
            .buckets
            .iter()
            .map(|(_, t)| t.requests)
            .sum();
        assert_eq!(window, 40);
    }

    #[test]
    fn the_last_version_with_weight_is_never_ejected_and_said_once() {
        let mut state = RouteGuardState::new(2);
        let weights = [0, 100];
        let failing = [tally(0, 0), tally(100, 100)];
        let events = state.merge(&guard(), &weights, &failing, START);
        assert_eq!(
            events,
            [GuardEvent::Held {
                destination: 1,
                window: tally(100, 100)
            }]
        );
        assert!(state
            .merge(&guard(), &weights, &failing, START + 100)
            .is_empty());
        assert_eq!(state.ejected(&guard(), START + 200), [false, false]);
    }

    #[test]
    fn an_ejected_version_returns_after_its_cooldown_with_a_clean_window() {
        let mut state = RouteGuardState::new(2);
        state.merge(&guard(), &[1, 1], &[tally(0, 0), tally(60, 60)], START);
        assert_eq!(state.ejected(&guard(), START + 9_999), [false, true]);
        let events = state.merge(&guard(), &[1, 1], &[], START + 10_000);
        assert_eq!(
            events,
            [GuardEvent::Returned {
                destination: 1,
                early: false
            }]
        );
        assert_eq!(state.versions[1], VersionState::default());
        // Still failing: it trips again once it has min_requests again.
        let events = state.merge(
            &guard(),
            &[1, 1],
            &[tally(0, 0), tally(60, 60)],
            START + 10_100,
        );
        assert!(matches!(
            events.as_slice(),
            [GuardEvent::Tripped { destination: 1, .. }]
        ));
    }

    #[test]
    fn successful_probes_bring_a_version_back_early() {
        let mut state = RouteGuardState::new(2);
        let probing = Guard {
            probe_basis_points: 100,
            ..guard()
        };
        state.merge(&probing, &[1, 1], &[tally(0, 0), tally(60, 60)], START);
        let events = state.merge(&probing, &[1, 1], &[tally(0, 0), tally(5, 0)], START + 250);
        assert!(events.is_empty(), "5 probes are not enough");
        let events = state.merge(&probing, &[1, 1], &[tally(0, 0), tally(5, 0)], START + 500);
        assert_eq!(
            events,
            [GuardEvent::Returned {
                destination: 1,
                early: true
            }]
        );
        // Failing probes keep it out until the cooldown ends.
        let mut state = RouteGuardState::new(2);
        state.merge(&probing, &[1, 1], &[tally(0, 0), tally(60, 60)], START);
        let events = state.merge(
            &probing,
            &[1, 1],
            &[tally(0, 0), tally(20, 20)],
            START + 250,
        );
        assert!(events.is_empty());
        assert_eq!(state.ejected(&guard(), START + 300), [false, true]);
    }

    #[test]
    fn workers_merging_in_turn_add_up() {
        // Two workers, each merging its own half of the same failing traffic.
        let guard = Guard {
            min_requests: 20,
            ..guard()
        };
        let mut state = RouteGuardState::new(2);
        let half = [tally(35, 0), tally(15, 15)];
        assert!(state.merge(&guard, &[70, 30], &half, START).is_empty());
        let mut state = RouteGuardState::decode(&state.encode(), 2);
        let events = state.merge(&guard, &[70, 30], &half, START + 1);
        assert!(matches!(
            events.as_slice(),
            [GuardEvent::Tripped {
                destination: 1,
                window: Tally {
                    requests: 30,
                    errors: 30
                },
                ..
            }]
        ));
    }

    #[test]
    fn a_latched_trip_stays_out_past_any_cooldown_until_its_configuration_changes() {
        let latching = Guard {
            probe_basis_points: 100,
            latches: vec![None, Some(7)],
            ..guard()
        };
        let mut state = RouteGuardState::new(2);
        let events = state.merge(&latching, &[1, 1], &[tally(0, 0), tally(60, 60)], START);
        assert!(matches!(
            events.as_slice(),
            [GuardEvent::Tripped {
                destination: 1,
                until_ms: UNTIL_CONFIG_CHANGE,
                ..
            }]
        ));
        // Its probes succeed and its cooldown is long over: it stays out, latched.
        let later = START + 10 * guard().cooldown_ms;
        let events = state.merge(&latching, &[1, 1], &[tally(0, 0), tally(50, 0)], later);
        assert!(events.is_empty(), "{events:?}");
        assert_eq!(state.ejected(&latching, later), [false, true]);
        assert_eq!(state.latched(&latching), [false, true]);
        // A config that changes the version (another fingerprint) releases it, at once.
        let changed = Guard {
            latches: vec![None, Some(8)],
            ..latching.clone()
        };
        assert_eq!(state.ejected(&changed, later), [false, false]);
        let events = state.merge(&changed, &[1, 1], &[], later + 1);
        assert_eq!(
            events,
            [GuardEvent::Returned {
                destination: 1,
                early: false
            }]
        );
        assert_eq!(state.latched(&changed), [false, false]);
        // A version that does not latch trips for its cooldown, as before.
        let events = state.merge(&latching, &[1, 1], &[tally(60, 60), tally(0, 0)], later + 2);
        assert!(matches!(
            events.as_slice(),
            [GuardEvent::Tripped { destination: 0, until_ms, .. }] if *until_ms == later + 2 + 10_000
        ));
    }

    #[test]
    fn a_merge_with_an_older_clock_adds_to_the_newest_bucket() {
        let mut state = RouteGuardState::new(2);
        state.merge(
            &guard(),
            &[1, 1],
            &[tally(1, 0), tally(60, 60)],
            START + 4_000,
        );
        let until = state.versions[1].ejected_until_ms;
        state.merge(&guard(), &[1, 1], &[tally(5, 0)], START + 1_000);
        for bucket in 0..BUCKETS * 2 {
            // A worker whose clock stepped back writes again and again.
            state.merge(&guard(), &[1, 1], &[tally(1, 0)], START + bucket * 10);
        }
        let indices: Vec<u64> = state.versions[0]
            .buckets
            .iter()
            .map(|(index, _)| *index)
            .collect();
        assert_eq!(indices, [(START + 4_000) / 250], "one bucket, the newest");
        assert_eq!(state.versions[0].window(), tally(1 + 5 + 16, 0));
        let read = RouteGuardState::decode(&state.encode(), 2);
        assert_eq!(read, state);
        assert_eq!(read.versions[1].ejected_until_ms, until);
    }
}
