//! An in-memory [`WorkerHost`] for tests and the simulation (feature `testing`, never in the
//! shipped module): a settable clock, a [`MemoryStore`] with Envoy's compare-and-swap
//! semantics (or a borrowed one, shared by several workers), and every metric and timer call
//! recorded.

use super::host::WorkerHost;
use crate::metrics::MetricKind;
use crate::request::HostError;
use crate::split::guard::memory_store::MemoryStore;
use crate::split::guard::{SharedStore, Stored};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

/// The status a refused compare-and-swap reports (proxy-wasm's `CasMismatch`).
pub const CAS_MISMATCH: HostError = HostError(8);
/// The status of a store that is down (`fail_shared`).
pub const UNAVAILABLE: HostError = HostError(10);

#[derive(Debug, Default)]
pub struct MemoryHost<'s> {
    pub clock_nanos: Cell<u64>,
    own_store: MemoryStore,
    shared: Option<&'s MemoryStore>,
    /// Every shared-store call fails.
    pub fail_shared: Cell<bool>,
    /// Defined metrics, by id (ids count up from 1 in definition order).
    pub defined: RefCell<Vec<(MetricKind, String)>>,
    /// Each counter's total and each gauge's (or histogram's) last value, by id.
    pub values: RefCell<BTreeMap<u32, u64>>,
    /// Every period the timer was set to, in order.
    pub periods: RefCell<Vec<u64>>,
}

impl<'s> MemoryHost<'s> {
    /// A host with its own store, its clock at `now_ms`.
    pub fn at_ms(now_ms: u64) -> Self {
        let host = MemoryHost::default();
        host.set_ms(now_ms);
        host
    }

    /// A host over a store other hosts share (the workers of one proxy).
    pub fn sharing(store: &'s MemoryStore, now_ms: u64) -> Self {
        let host = MemoryHost {
            shared: Some(store),
            ..MemoryHost::default()
        };
        host.set_ms(now_ms);
        host
    }

    pub fn set_ms(&self, now_ms: u64) {
        self.clock_nanos.set(now_ms.saturating_mul(1_000_000));
    }

    pub fn store(&self) -> &MemoryStore {
        self.shared.unwrap_or(&self.own_store)
    }

    /// The id of a defined metric by name.
    pub fn id_of(&self, name: &str) -> Option<u32> {
        let defined = self.defined.borrow();
        let index = defined.iter().position(|(_, defined)| defined == name)?;
        u32::try_from(index + 1).ok()
    }

    /// A metric's value by name (0 if never moved).
    pub fn value_of(&self, name: &str) -> u64 {
        self.id_of(name)
            .and_then(|id| self.values.borrow().get(&id).copied())
            .unwrap_or(0)
    }
}

impl WorkerHost for MemoryHost<'_> {
    fn now_nanos(&self) -> u64 {
        self.clock_nanos.get()
    }

    fn shared_get(&self, key: &str) -> Result<Stored, HostError> {
        if self.fail_shared.get() {
            return Err(UNAVAILABLE);
        }
        self.store().get(key).map_err(|_| CAS_MISMATCH)
    }

    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
        if self.fail_shared.get() {
            return Err(UNAVAILABLE);
        }
        self.store().set(key, value, cas).map_err(|_| CAS_MISMATCH)
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Result<u32, HostError> {
        let mut defined = self.defined.borrow_mut();
        defined.push((kind, name.to_owned()));
        u32::try_from(defined.len()).map_err(|_| HostError(1))
    }

    fn increment_metric(&self, id: u32, by: u64) {
        let mut values = self.values.borrow_mut();
        let value = values.entry(id).or_default();
        *value = value.saturating_add(by);
    }

    fn record_metric(&self, id: u32, value: u64) {
        self.values.borrow_mut().insert(id, value);
    }

    fn set_tick_period_ms(&self, period_ms: u64) -> Result<(), HostError> {
        self.periods.borrow_mut().push(period_ms);
        Ok(())
    }
}
