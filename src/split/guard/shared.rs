//! Where the workers of a proxy share each guarded route's state: a store with Envoy's
//! compare-and-swap, and the merge that retries on it.

use super::policy::Guard;
use super::trip::{GuardEvent, RouteGuardState};
use super::window::Tally;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::split::guard::memory_store::{CasMismatch, MemoryStore};
    use crate::split::guard::test_support::{guard, tally, START};
    use std::cell::Cell;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const KEY: &str = "traffic-split/guard/p/r/a,b";

    fn window(store: &MemoryStore, destination: usize) -> Tally {
        let (bytes, _) = store.get(KEY).unwrap();
        RouteGuardState::decode(&bytes.unwrap(), 2).versions[destination].window()
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
