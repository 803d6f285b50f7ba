//! A worker's host in the simulation ([`WorkerHost`]): the worker's clock, the store the
//! workers of the proxy share, and metric calls it does not keep (the run's records are the
//! engine's). Another worker's merge can be set to land in the middle of this one's: the first
//! write to the store runs it first, so that the write's compare-and-swap conflicts.

use crate::metrics::MetricKind;
use crate::request::HostError;
use crate::split::guard::memory_store::MemoryStore;
use crate::split::guard::{SharedStore, Stored};
use crate::worker::WorkerHost;
use std::cell::{Cell, RefCell};

/// proxy-wasm's `CasMismatch`, which the store's only failure is.
const CAS_MISMATCH: HostError = HostError(8);

pub(crate) struct SimHost<'a> {
    now_nanos: u64,
    store: &'a MemoryStore,
    /// The worker's VM's last metric id: ids count up per VM, across its configurations.
    last_metric_id: &'a Cell<u32>,
    interleaved: RefCell<Option<Box<dyn FnOnce() + 'a>>>,
}

impl<'a> SimHost<'a> {
    pub(crate) fn new(
        now_nanos: u64,
        store: &'a MemoryStore,
        last_metric_id: &'a Cell<u32>,
    ) -> Self {
        SimHost {
            now_nanos,
            store,
            last_metric_id,
            interleaved: RefCell::new(None),
        }
    }

    /// Runs `other` (another worker's merge) just before this host's first write to the store.
    pub(crate) fn interleave(self, other: Box<dyn FnOnce() + 'a>) -> Self {
        *self.interleaved.borrow_mut() = Some(other);
        self
    }
}

impl WorkerHost for SimHost<'_> {
    fn now_nanos(&self) -> u64 {
        self.now_nanos
    }

    fn shared_get(&self, key: &str) -> Result<Stored, HostError> {
        self.store.get(key).map_err(|_| CAS_MISMATCH)
    }

    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
        let other = self.interleaved.borrow_mut().take();
        if let Some(other) = other {
            other();
        }
        self.store.set(key, value, cas).map_err(|_| CAS_MISMATCH)
    }

    fn define_metric(&self, _kind: MetricKind, _name: &str) -> Result<u32, HostError> {
        let id = self.last_metric_id.get().saturating_add(1);
        self.last_metric_id.set(id);
        Ok(id)
    }

    fn increment_metric(&self, _id: u32, _by: u64) {}

    fn record_metric(&self, _id: u32, _value: u64) {}

    fn set_tick_period_ms(&self, _period_ms: u64) -> Result<(), HostError> {
        Ok(())
    }
}
