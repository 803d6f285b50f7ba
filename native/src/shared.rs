//! The guard's shared state in the module's own memory: one map for the process, shared by the
//! workers of every configuration, with the compare-and-swap semantics of Envoy's shared data
//! (the core's [`SharedStore`]), so that the guard decides here exactly as the simulation and
//! the Wasm module do.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, OnceLock};
use traffic_split::split::guard::{SharedStore, Stored};

/// Why a `set` failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The key was written since the token was read.
    CasMismatch,
}

/// Values with their tokens; tokens count up from 1 across all keys, as Envoy's do.
#[derive(Debug, Default)]
pub struct ProcessStore {
    entries: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    values: HashMap<String, (Vec<u8>, u32)>,
    last_cas: u32,
}

impl ProcessStore {
    /// The one store of the process.
    pub fn global() -> &'static ProcessStore {
        static STORE: OnceLock<ProcessStore> = OnceLock::new();
        STORE.get_or_init(ProcessStore::default)
    }

    /// The map, also after a panic elsewhere left its lock poisoned: every write replaces a
    /// whole value, so the map is never half-written.
    fn entries(&self) -> MutexGuard<'_, Entries> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl SharedStore for &ProcessStore {
    type Error = StoreError;

    fn get(&self, key: &str) -> Result<Stored, StoreError> {
        Ok(match self.entries().values.get(key) {
            Some((value, cas)) => (Some(value.clone()), Some(*cas)),
            None => (None, None),
        })
    }

    fn set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), StoreError> {
        let mut entries = self.entries();
        let next = entries.last_cas.wrapping_add(1).max(1);
        match entries.values.get_mut(key) {
            Some(entry) => {
                if cas.is_some_and(|cas| cas != 0 && cas != entry.1) {
                    return Err(StoreError::CasMismatch);
                }
                *entry = (value.to_vec(), next);
            }
            None => {
                entries
                    .values
                    .insert(key.to_owned(), (value.to_vec(), next));
            }
        }
        entries.last_cas = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_never_written_reads_empty_and_any_write_of_it_succeeds() {
        let store = &ProcessStore::default();
        assert_eq!(store.get("k"), Ok((None, None)));
        assert_eq!(store.set("k", b"a", Some(42)), Ok(()));
        assert_eq!(store.get("k"), Ok((Some(b"a".to_vec()), Some(1))));
    }

    #[test]
    fn a_stale_token_is_refused_and_the_value_kept() {
        let store = &ProcessStore::default();
        store.set("k", b"a", None).unwrap();
        let (_, first) = store.get("k").unwrap();
        store.set("k", b"b", first).unwrap();
        assert_eq!(store.set("k", b"c", first), Err(StoreError::CasMismatch));
        assert_eq!(store.get("k").unwrap().0, Some(b"b".to_vec()));
    }

    #[test]
    fn no_token_always_writes() {
        let store = &ProcessStore::default();
        store.set("k", b"a", None).unwrap();
        store.set("k", b"b", None).unwrap();
        assert_eq!(store.get("k").unwrap().0, Some(b"b".to_vec()));
    }

    #[test]
    fn tokens_count_across_keys() {
        let store = &ProcessStore::default();
        store.set("a", b"1", None).unwrap();
        store.set("b", b"2", None).unwrap();
        assert_eq!(store.get("b").unwrap().1, Some(2));
    }
}
