//! An in-memory [`SharedStore`] with Envoy's compare-and-swap semantics, for tests and the
//! simulation (never in the shipped module).

use super::shared::{SharedStore, Stored};
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

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const KEY: &str = "traffic-split/guard/p/r/a,b";

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
}
