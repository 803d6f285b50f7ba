//! The guard: takes a failing version out of a route's split for a cooldown, and back.
//!
//! Each Envoy worker counts its routed requests' outcomes locally (no host call per request);
//! a root-context timer merges them into one [`RouteGuardState`] per route held in proxy-wasm
//! shared data, which every worker of the proxy reads and writes with compare-and-swap. The
//! decision (a version's `ejected_until_ms`) lives in that state, so all workers agree within
//! one timer period. Everything here is pure: the adapter only moves bytes and counts events.
//!
//! The window is sliding in [`BUCKETS`] steps: outcomes fall in buckets of `window / BUCKETS`,
//! and the ratio is taken over the last `BUCKETS` buckets.

/// How many buckets a window is cut into.
pub const BUCKETS: u64 = 8;
/// Probe answers an ejected version must give in one window, within the error ratio, to come
/// back before its cooldown ends.
pub const PROBES_TO_RETURN: u32 = 10;
/// The largest `probe_percent`, in hundredths of a percent: probes are a small share.
pub const MAX_PROBE_BASIS_POINTS: u32 = 5_000;
/// A cooldown that lasts until the config changes (`"cooldown": "until_config_change"`), and
/// the end of a latched ejection: no clock reaches it.
pub const UNTIL_CONFIG_CHANGE: u64 = u64::MAX;

/// Which outcomes count as errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorClasses {
    /// Any response with a 5xx status (Envoy's own 503 and 504 included).
    pub server_error: bool,
    /// A request cut by Envoy's deadline (the `UT` flag).
    pub timeout: bool,
    /// A stream reset: no response at all, or Envoy's reset and connection-failure flags.
    pub reset: bool,
}

impl Default for ErrorClasses {
    fn default() -> Self {
        ErrorClasses {
            server_error: true,
            timeout: true,
            reset: false,
        }
    }
}

/// A route's guard, as configured.
#[derive(Clone, Debug, PartialEq)]
pub struct Guard {
    /// Trips when errors / requests in the window is above this.
    pub max_error_ratio: f64,
    /// ... with at least this many requests in the window.
    pub min_requests: u32,
    pub window_ms: u64,
    /// How long a trip keeps a version out; [`UNTIL_CONFIG_CHANGE`]: until the config changes.
    pub cooldown_ms: u64,
    pub errors: ErrorClasses,
    /// The share of the route sent to an ejected version during its cooldown, in hundredths
    /// of a percent (0: none).
    pub probe_basis_points: u32,
    /// Per destination, set by the route: `Some(fingerprint)` when a trip of it latches (every
    /// version under a cooldown [`UNTIL_CONFIG_CHANGE`]; the ramped version of a route with a
    /// ramp, whose trip halts the rollout). The fingerprint is of what configures the version
    /// (its weight, its ramp): a config that changes it releases the latch.
    pub latches: Vec<Option<u64>>,
}

impl Guard {
    fn bucket_ms(&self) -> u64 {
        (self.window_ms / BUCKETS).max(1)
    }

    /// The fingerprint a trip of `destination` latches with, if it latches.
    fn latch(&self, destination: usize) -> Option<u64> {
        self.latches.get(destination).copied().flatten()
    }

    fn too_many_errors(&self, tally: Tally) -> bool {
        tally.requests > 0
            && f64::from(tally.errors) > self.max_error_ratio * f64::from(tally.requests)
    }
}

/// How a routed request ended, as far as the guard is concerned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub requests: u32,
    pub errors: u32,
}

impl Tally {
    pub fn add(&mut self, other: Tally) {
        self.requests = self.requests.saturating_add(other.requests);
        self.errors = self.errors.saturating_add(other.errors);
    }

    pub fn one(error: bool) -> Tally {
        Tally {
            requests: 1,
            errors: u32::from(error),
        }
    }
}

/// One version's part of the shared state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VersionState {
    /// `(bucket index, outcomes)`, oldest first, at most [`BUCKETS`].
    pub buckets: Vec<(u64, Tally)>,
    /// When an ejection ends, in ms since the epoch; 0 while the version serves;
    /// [`UNTIL_CONFIG_CHANGE`] while latched.
    pub ejected_until_ms: u64,
    /// The guard would eject it but it is the last version with weight: said once, until the
    /// errors subside.
    pub held: bool,
    /// While latched: the fingerprint of the version's configuration when it tripped
    /// ([`Guard::latches`]); 0 otherwise.
    pub latch: u64,
}

impl VersionState {
    /// Whether it is out of the split at `now_ms`: in its cooldown, or latched by a trip under
    /// the configuration it still has (`latch`: what the guard latches it with now).
    fn out_at(&self, now_ms: u64, latch: Option<u64>) -> bool {
        if self.ejected_until_ms == UNTIL_CONFIG_CHANGE {
            return latch == Some(self.latch);
        }
        self.ejected_until_ms > now_ms
    }

    /// The outcomes in the window (while out of the split: its probes).
    fn window(&self) -> Tally {
        let mut window = Tally::default();
        for (_, tally) in &self.buckets {
            window.add(*tally);
        }
        window
    }
}

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

const FORMAT_VERSION: u8 = 3;

impl RouteGuardState {
    pub fn new(destinations: usize) -> Self {
        RouteGuardState {
            versions: vec![VersionState::default(); destinations],
        }
    }

    /// Reads what [`RouteGuardState::encode`] wrote. Anything else (nothing yet, another
    /// format, a route with another number of destinations after a reconfiguration) reads as
    /// a fresh state: the guard starts counting again rather than trusting bytes it cannot
    /// account for. More buckets than [`BUCKETS`] (which no merge writes) are read, the last
    /// ones kept: they never cost the route its ejections.
    pub fn decode(bytes: &[u8], destinations: usize) -> Self {
        Self::try_decode(bytes, destinations).unwrap_or_else(|| Self::new(destinations))
    }

    fn try_decode(bytes: &[u8], destinations: usize) -> Option<Self> {
        let mut reader = Reader { bytes, at: 0 };
        if reader.u8()? != FORMAT_VERSION || usize::from(reader.u8()?) != destinations {
            return None;
        }
        let mut versions = Vec::with_capacity(destinations);
        for _ in 0..destinations {
            let ejected_until_ms = reader.u64()?;
            let latch = reader.u64()?;
            let held = reader.u8()? != 0;
            let count = reader.u8()?;
            let mut buckets = Vec::with_capacity(usize::from(count));
            for _ in 0..count {
                buckets.push((reader.u64()?, reader.tally()?));
            }
            let excess = buckets.len().saturating_sub(BUCKETS as usize);
            buckets.drain(..excess);
            versions.push(VersionState {
                buckets,
                ejected_until_ms,
                held,
                latch,
            });
        }
        (reader.at == bytes.len()).then_some(RouteGuardState { versions })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = vec![
            FORMAT_VERSION,
            u8::try_from(self.versions.len()).unwrap_or(u8::MAX),
        ];
        for version in &self.versions {
            bytes.extend_from_slice(&version.ejected_until_ms.to_le_bytes());
            bytes.extend_from_slice(&version.latch.to_le_bytes());
            bytes.push(u8::from(version.held));
            bytes.push(u8::try_from(version.buckets.len()).unwrap_or(u8::MAX));
            for (index, tally) in &version.buckets {
                bytes.extend_from_slice(&index.to_le_bytes());
                put_tally(&mut bytes, *tally);
            }
        }
        bytes
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

/// Attempts at one compare-and-swap before the worker keeps its outcomes for the next tick.
pub const CAS_ATTEMPTS: usize = 8;

/// A value and its compare-and-swap token, as [`SharedStore::get`] reads them.
pub type Stored = (Option<Vec<u8>>, Option<u32>);

/// Where the workers of a proxy keep each guarded route's [`RouteGuardState`]: proxy-wasm
/// shared data in the filter, an in-memory store in tests and the simulation.
///
/// The semantics are Envoy's (proxy-wasm-cpp-host `SharedData`): `get` gives the value and its
/// compare-and-swap token (`None`, `None` while the key was never written); `set` with
/// `Some(cas)` fails with the host's CAS mismatch when the key was written since that token was
/// read, while `set` with `None` (token 0 on the wire), or of a key not yet written, always
/// succeeds.
pub trait SharedStore {
    /// The host's failure, kept for the adapter's log.
    type Error: core::fmt::Debug;
    fn get(&self, key: &str) -> Result<Stored, Self::Error>;
    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), Self::Error>;
}

/// Merges one worker's outcomes since its last merge (`deltas`) into the route's shared state
/// at `key`, retrying the compare-and-swap up to [`CAS_ATTEMPTS`] times, and returns the state
/// written (or read, when there was nothing to add and nothing changed) with what the merge
/// decided. On `Err` nothing was written: the caller keeps its outcomes for the next tick.
///
/// `clock` gives the time in ms since the epoch; it is read at each attempt, after the read
/// of the state it merges into, so that a retry never decides on a time older than the state.
///
/// Outcomes are only ever written with a compare-and-swap. Envoy's shared data has none for a
/// key never written (any write of it succeeds), so a merge that finds no state first writes
/// an empty one, unconditionally, and then merges into it like into any other. A worker's
/// configure writes that empty state too ([`crate::state::RouteState::load_guard`]), before its
/// first merge, so that two workers' first merges cannot overwrite each other's outcomes.
pub fn merge_shared<S: SharedStore>(
    store: &S,
    key: &str,
    guard: &Guard,
    weights: &[u32],
    deltas: &[Tally],
    clock: &dyn Fn() -> u64,
) -> Result<(RouteGuardState, Vec<GuardEvent>), S::Error> {
    let idle = deltas.iter().all(|delta| *delta == Tally::default());
    let mut attempts = 0;
    let mut written_empty = false;
    loop {
        let (bytes, cas) = store.get(key)?;
        let bytes = match bytes {
            Some(bytes) => bytes,
            None if !written_empty => {
                store.set(key, &RouteGuardState::new(weights.len()).encode(), None)?;
                written_empty = true;
                continue;
            }
            // A store that keeps nothing: merge into a fresh state, as before it.
            None => Vec::new(),
        };
        let now_ms = clock();
        let mut state = RouteGuardState::decode(&bytes, weights.len());
        let before = state.clone();
        let events = state.merge(guard, weights, deltas, now_ms);
        if idle && state == before {
            return Ok((state, events));
        }
        match store.set(key, &state.encode(), cas) {
            Ok(()) => return Ok((state, events)),
            Err(error) => {
                attempts += 1;
                if attempts >= CAS_ATTEMPTS {
                    return Err(error);
                }
            }
        }
    }
}

/// An in-memory [`SharedStore`] with Envoy's compare-and-swap semantics, for tests and the
/// simulation (never in the shipped module).
#[cfg(any(test, feature = "testing"))]
pub mod memory_store {
    use super::{SharedStore, Stored};
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// The one failure Envoy's shared data gives a `set`.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct CasMismatch;

    /// Values with their tokens; tokens count up from 1 across all keys, as Envoy's do.
    #[derive(Debug, Default)]
    pub struct MemoryStore {
        entries: RefCell<HashMap<String, (Vec<u8>, u32)>>,
        next_cas: std::cell::Cell<u32>,
    }

    impl MemoryStore {
        pub fn new() -> Self {
            Self::default()
        }

        fn next_cas(&self) -> u32 {
            let cas = self.next_cas.get().wrapping_add(1).max(1);
            self.next_cas.set(cas);
            cas
        }
    }

    impl SharedStore for MemoryStore {
        type Error = CasMismatch;

        fn get(&self, key: &str) -> Result<Stored, CasMismatch> {
            Ok(match self.entries.borrow().get(key) {
                Some((value, cas)) => (Some(value.clone()), Some(*cas)),
                None => (None, None),
            })
        }

        fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), CasMismatch> {
            let next = self.next_cas();
            let mut entries = self.entries.borrow_mut();
            match entries.get_mut(key) {
                Some(entry) => {
                    if cas.is_some_and(|cas| cas != 0 && cas != entry.1) {
                        return Err(CasMismatch);
                    }
                    *entry = (value.to_vec(), next);
                }
                None => {
                    entries.insert(key.to_owned(), (value.to_vec(), next));
                }
            }
            Ok(())
        }
    }
}

/// The scale of the weights a route is split by while a version is out: parts of a million.
pub const PROBE_SCALE: u64 = 1_000_000;

/// The weights the round robin uses while some versions are out. Without probes, an ejected
/// version gets 0 and the others keep their weights. With probes, the route is split on a
/// scale of its own ([`PROBE_SCALE`] parts): an ejected version gets `min(its share in force,
/// probe share)` of it (at least one part), never more than it had, and the serving versions
/// share the rest by their weights. Rounding the probe weight on the user's scale instead
/// would give a tripped version of `1 : 1` at least a third.
///
/// When no serving version has weight (the one healthy version ramped to 0 beside a tripped
/// one), the ejections are ignored: the guard never takes out the last version with weight.
pub fn effective_weights(weights: &[u32], ejected: &[bool], probe_basis_points: u32) -> Vec<u32> {
    let is_out = |index: usize| ejected.get(index).copied().unwrap_or(false);
    let serving: u64 = weights
        .iter()
        .enumerate()
        .filter(|(index, _)| !is_out(*index))
        .map(|(_, &weight)| u64::from(weight))
        .sum();
    let any_out = weights
        .iter()
        .enumerate()
        .any(|(index, &weight)| is_out(index) && weight > 0);
    if serving == 0 || !any_out {
        return weights.to_vec();
    }
    let basis_points = u64::from(probe_basis_points.min(MAX_PROBE_BASIS_POINTS));
    if basis_points == 0 {
        return weights
            .iter()
            .enumerate()
            .map(|(index, &weight)| if is_out(index) { 0 } else { weight })
            .collect();
    }
    let total: u64 = weights.iter().map(|&weight| u64::from(weight)).sum();
    let probe_parts = basis_points * (PROBE_SCALE / 10_000);
    let probes: Vec<u64> = weights
        .iter()
        .enumerate()
        .map(|(index, &weight)| {
            if !is_out(index) || weight == 0 {
                return 0;
            }
            let share_parts = (u64::from(weight) * PROBE_SCALE + total / 2) / total.max(1);
            share_parts.min(probe_parts).max(1)
        })
        .collect();
    let serving_parts = PROBE_SCALE.saturating_sub(probes.iter().sum()).max(1);
    let mut parts: Vec<u64> = weights
        .iter()
        .zip(&probes)
        .enumerate()
        .map(|(index, (&weight, &probe))| {
            if is_out(index) {
                probe
            } else {
                u64::from(weight) * serving_parts / serving
            }
        })
        .collect();
    // The serving versions' parts add up to theirs exactly: the heaviest takes the rounding.
    let given: u64 = parts
        .iter()
        .enumerate()
        .filter(|(index, _)| !is_out(*index))
        .map(|(_, &part)| part)
        .sum();
    let heaviest = weights
        .iter()
        .enumerate()
        .filter(|(index, _)| !is_out(*index))
        .max_by_key(|(index, &weight)| (weight, std::cmp::Reverse(*index)))
        .map(|(index, _)| index);
    if let Some(part) = heaviest.and_then(|index| parts.get_mut(index)) {
        *part += serving_parts.saturating_sub(given);
    }
    parts
        .into_iter()
        .map(|part| u32::try_from(part).unwrap_or(u32::MAX))
        .collect()
}

fn put_tally(bytes: &mut Vec<u8>, tally: Tally) {
    bytes.extend_from_slice(&tally.requests.to_le_bytes());
    bytes.extend_from_slice(&tally.errors.to_le_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let end = self.at.checked_add(N)?;
        let chunk: [u8; N] = self.bytes.get(self.at..end)?.try_into().ok()?;
        self.at = end;
        Some(chunk)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[byte]| byte)
    }

    fn u32(&mut self) -> Option<u32> {
        self.take::<4>().map(u32::from_le_bytes)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take::<8>().map(u64::from_le_bytes)
    }

    fn tally(&mut self) -> Option<Tally> {
        Some(Tally {
            requests: self.u32()?,
            errors: self.u32()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn guard() -> Guard {
        Guard {
            max_error_ratio: 0.05,
            min_requests: 50,
            window_ms: 2_000,
            cooldown_ms: 10_000,
            errors: ErrorClasses::default(),
            probe_basis_points: 0,
            latches: Vec::new(),
        }
    }

    fn tally(requests: u32, errors: u32) -> Tally {
        Tally { requests, errors }
    }

    const START: u64 = 1_000_000;

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
    fn state_survives_encoding_and_bad_bytes_read_as_fresh() {
        let mut state = RouteGuardState::new(3);
        state.merge(
            &guard(),
            &[1, 1, 1],
            &[tally(3, 1), tally(60, 60), tally(7, 0)],
            START,
        );
        state.merge(&guard(), &[1, 1, 1], &[tally(4, 0)], START + 700);
        let bytes = state.encode();
        assert_eq!(RouteGuardState::decode(&bytes, 3), state);
        assert_eq!(RouteGuardState::decode(&bytes, 2), RouteGuardState::new(2));
        for end in 0..bytes.len() {
            assert_eq!(
                RouteGuardState::decode(&bytes[..end], 3),
                RouteGuardState::new(3)
            );
        }
        assert_eq!(RouteGuardState::decode(b"", 3), RouteGuardState::new(3));
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(RouteGuardState::decode(&longer, 3), RouteGuardState::new(3));
    }

    #[test]
    fn effective_weights_drop_or_probe_an_ejected_version() {
        assert_eq!(effective_weights(&[70, 30], &[false, true], 0), [70, 0]);
        assert_eq!(effective_weights(&[70, 30], &[false, false], 100), [70, 30]);
        // 1% of the route, on a million parts.
        assert_eq!(
            effective_weights(&[70, 30], &[false, true], 100),
            [990_000, 10_000]
        );
        assert_eq!(
            effective_weights(&[990_000, 10_000], &[false, true], 100),
            [990_000, 10_000]
        );
        assert_eq!(effective_weights(&[0, 30], &[true, false], 100), [0, 30]);
    }

    #[test]
    fn a_probe_is_probe_percent_of_the_route_on_small_weights() {
        // Rounded up on the user's scale, 1 % of 1 : 1 was a third.
        assert_eq!(
            effective_weights(&[1, 1], &[false, true], 100),
            [990_000, 10_000]
        );
    }

    #[test]
    fn a_probe_never_gives_a_version_more_than_its_share_in_force() {
        // 20 % probes of a 10 % canary: it keeps its 10 %.
        assert_eq!(
            effective_weights(&[9, 1], &[false, true], 2_000),
            [900_000, 100_000]
        );
        // Two versions out, each capped on its own; the serving ones share the rest.
        assert_eq!(
            effective_weights(&[2, 1, 1], &[false, true, true], 100),
            [980_000, 10_000, 10_000]
        );
        // A share below one part still probes.
        assert_eq!(
            effective_weights(&[4_000_000_000, 1], &[false, true], 100),
            [999_999, 1]
        );
    }

    #[test]
    fn with_no_serving_weight_the_ejections_are_ignored() {
        // The one healthy version ramped to 0 beside a tripped one.
        assert_eq!(effective_weights(&[0, 30], &[false, true], 0), [0, 30]);
        assert_eq!(effective_weights(&[0, 30], &[false, true], 100), [0, 30]);
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

    #[test]
    fn too_many_buckets_are_read_not_refused() {
        let mut state = RouteGuardState::new(2);
        state.versions[1].ejected_until_ms = START + 60_000;
        state.versions[0].buckets = (0..BUCKETS + 2).map(|index| (index, tally(1, 0))).collect();
        let read = RouteGuardState::decode(&state.encode(), 2);
        assert_eq!(read.versions[1].ejected_until_ms, START + 60_000);
        let indices: Vec<u64> = read.versions[0]
            .buckets
            .iter()
            .map(|(index, _)| *index)
            .collect();
        assert_eq!(indices, (2..BUCKETS + 2).collect::<Vec<_>>());
    }

    mod shared {
        use super::super::memory_store::{CasMismatch, MemoryStore};
        use super::*;
        use std::cell::Cell;
        #[cfg(target_arch = "wasm32")]
        use wasm_bindgen_test::wasm_bindgen_test as test;

        const KEY: &str = "traffic-split/guard/p/r/a,b";

        fn window(store: &MemoryStore, destination: usize) -> Tally {
            let (bytes, _) = store.get(KEY).unwrap();
            RouteGuardState::decode(&bytes.unwrap(), 2).versions[destination].window()
        }

        #[test]
        fn the_memory_store_has_envoys_compare_and_swap() {
            let store = MemoryStore::new();
            assert_eq!(store.get(KEY), Ok((None, None)));
            // A key never written takes any token; token 0 (None) is unconditional.
            store.set(KEY, b"one", Some(42)).unwrap();
            let (_, first) = store.get(KEY).unwrap();
            store.set(KEY, b"two", None).unwrap();
            assert_eq!(store.set(KEY, b"three", first), Err(CasMismatch));
            let (value, second) = store.get(KEY).unwrap();
            assert_eq!(value.as_deref(), Some(&b"two"[..]));
            store.set(KEY, b"three", second).unwrap();
            assert_ne!(store.get(KEY).unwrap().1, second);
        }

        #[test]
        fn a_merge_adds_its_outcomes_to_the_shared_state() {
            let store = MemoryStore::new();
            let deltas = [tally(10, 0), tally(5, 1)];
            let (state, events) =
                merge_shared(&store, KEY, &guard(), &[1, 1], &deltas, &|| START).unwrap();
            assert!(events.is_empty());
            assert_eq!(state.versions[1].window(), tally(5, 1));
            merge_shared(&store, KEY, &guard(), &[1, 1], &deltas, &|| START + 1).unwrap();
            assert_eq!(window(&store, 0), tally(20, 0));
            assert_eq!(window(&store, 1), tally(10, 2));
        }

        #[test]
        fn first_merges_compare_and_swap_on_the_empty_state_written_at_configure() {
            // Configure wrote an empty state (`RouteState::load_guard`); another worker's
            // first merge lands between this one's read and its write: both are kept.
            let store = MemoryStore::new();
            store
                .set(KEY, &RouteGuardState::new(2).encode(), None)
                .unwrap();
            let contended = Contended {
                store: &store,
                conflicts: Cell::new(1),
            };
            let mine = [tally(4, 0), tally(0, 0)];
            merge_shared(&contended, KEY, &guard(), &[1, 1], &mine, &|| START).unwrap();
            assert_eq!(window(&store, 0), tally(4, 0));
            assert_eq!(window(&store, 1), tally(1, 1), "the other worker's merge");
        }

        #[test]
        fn a_merge_that_finds_no_state_writes_an_empty_one_then_compares_and_swaps() {
            let store = MemoryStore::new();
            let mine = [tally(4, 0), tally(2, 2)];
            merge_shared(&store, KEY, &guard(), &[1, 1], &mine, &|| START).unwrap();
            assert_eq!(window(&store, 0), tally(4, 0));
            assert_eq!(window(&store, 1), tally(2, 2));
            // Two writes: the empty state, then the merge (its token moved twice).
            assert_eq!(store.get(KEY).unwrap().1, Some(2));
        }

        #[test]
        fn an_idle_merge_that_changes_nothing_writes_nothing() {
            let store = MemoryStore::new();
            merge_shared(&store, KEY, &guard(), &[1, 1], &[tally(1, 0)], &|| START).unwrap();
            let (_, cas) = store.get(KEY).unwrap();
            merge_shared(&store, KEY, &guard(), &[1, 1], &[], &|| START + 1).unwrap();
            assert_eq!(store.get(KEY).unwrap().1, cas);
        }

        /// Another worker writes between this worker's read and its write, `conflicts` times.
        struct Contended<'a> {
            store: &'a MemoryStore,
            conflicts: Cell<usize>,
        }

        impl SharedStore for Contended<'_> {
            type Error = CasMismatch;

            fn get(&self, key: &str) -> Result<Stored, CasMismatch> {
                let read = self.store.get(key);
                if self.conflicts.get() > 0 {
                    self.conflicts.set(self.conflicts.get() - 1);
                    let other = [tally(0, 0), tally(1, 1)];
                    merge_shared(self.store, key, &guard(), &[1, 1], &other, &|| START).unwrap();
                }
                read
            }

            fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), CasMismatch> {
                self.store.set(key, value, cas)
            }
        }

        #[test]
        fn a_conflicting_write_is_retried_on_the_newer_state_and_nothing_is_lost() {
            let store = MemoryStore::new();
            merge_shared(&store, KEY, &guard(), &[1, 1], &[tally(1, 0)], &|| START).unwrap();
            let contended = Contended {
                store: &store,
                conflicts: Cell::new(3),
            };
            let mine = [tally(4, 0), tally(0, 0)];
            merge_shared(&contended, KEY, &guard(), &[1, 1], &mine, &|| START).unwrap();
            assert_eq!(window(&store, 0), tally(5, 0));
            assert_eq!(
                window(&store, 1),
                tally(3, 3),
                "the other worker's three merges"
            );
        }

        #[test]
        fn a_merge_that_keeps_conflicting_gives_up_without_writing() {
            let store = MemoryStore::new();
            merge_shared(&store, KEY, &guard(), &[1, 1], &[tally(1, 0)], &|| START).unwrap();
            let contended = Contended {
                store: &store,
                conflicts: Cell::new(CAS_ATTEMPTS),
            };
            let mine = [tally(4, 0), tally(0, 0)];
            let result = merge_shared(&contended, KEY, &guard(), &[1, 1], &mine, &|| START);
            assert_eq!(result.map(|_| ()), Err(CasMismatch));
            assert_eq!(
                window(&store, 0),
                tally(1, 0),
                "none of this worker's outcomes"
            );
            assert_eq!(window(&store, 1), tally(8, 8));
        }
    }
}
