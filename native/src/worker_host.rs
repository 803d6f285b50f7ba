//! [`WorkerHost`] on Envoy's ABI: what a worker needs outside a stream. Metrics are defined on
//! and counted through the configuration Envoy created (Envoy's stats are safe from any thread);
//! the shared store is the process's ([`ProcessStore`]); the clock is the system's. The tick
//! period is the module's to keep: the timer thread and each worker's streams tick.

use crate::abi::{self, ConfigEnvoyPtr, ModuleBuffer};
use crate::metric_id::{self, EnvoyMetric};
use crate::shared::ProcessStore;
use std::time::{SystemTime, UNIX_EPOCH};
use traffic_split::metrics::MetricKind;
use traffic_split::request::HostError;
use traffic_split::split::guard::{SharedStore, Stored};
use traffic_split::worker::WorkerHost;

/// A failure without a status of Envoy's (a refused definition, a compare-and-swap mismatch).
pub const FAILED: HostError = HostError(1);

/// The wall clock, in nanoseconds since the Unix epoch (0 before it).
pub fn clock_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        })
}

/// The worker host of one configuration.
pub struct NativeWorkerHost {
    pub config: ConfigEnvoyPtr,
}

impl WorkerHost for NativeWorkerHost {
    fn now_nanos(&self) -> u64 {
        clock_nanos()
    }

    fn shared_get(&self, key: &str) -> Result<Stored, HostError> {
        ProcessStore::global().get(key).map_err(|_| FAILED)
    }

    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
        ProcessStore::global()
            .set(key, value, cas)
            .map_err(|_| FAILED)
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Result<u32, HostError> {
        let define = match kind {
            MetricKind::Counter => {
                abi::envoy_dynamic_module_callback_http_filter_config_define_counter
            }
            MetricKind::Gauge => abi::envoy_dynamic_module_callback_http_filter_config_define_gauge,
            MetricKind::Histogram => {
                abi::envoy_dynamic_module_callback_http_filter_config_define_histogram
            }
        };
        let mut id = 0usize;
        // SAFETY: Envoy reads the name and writes the id, within the call; no labels.
        let result = unsafe {
            define(
                self.config,
                ModuleBuffer::of(name.as_bytes()),
                std::ptr::null_mut(),
                0,
                &mut id,
            )
        };
        if result != abi::METRICS_SUCCESS {
            return Err(HostError(result));
        }
        metric_id::encode(kind, id).ok_or(FAILED)
    }

    fn increment_metric(&self, id: u32, by: u64) {
        if let Some(EnvoyMetric {
            kind: MetricKind::Counter,
            id,
        }) = metric_id::decode(id)
        {
            // SAFETY: an id defined on this config; no labels.
            unsafe {
                abi::envoy_dynamic_module_callback_http_filter_config_increment_counter(
                    self.config,
                    id,
                    std::ptr::null_mut(),
                    0,
                    by,
                )
            };
        }
    }

    fn record_metric(&self, id: u32, value: u64) {
        let Some(metric) = metric_id::decode(id) else {
            return;
        };
        let record = match metric.kind {
            MetricKind::Gauge => abi::envoy_dynamic_module_callback_http_filter_config_set_gauge,
            MetricKind::Histogram => {
                abi::envoy_dynamic_module_callback_http_filter_config_record_histogram_value
            }
            MetricKind::Counter => return,
        };
        // SAFETY: an id defined on this config; no labels.
        unsafe { record(self.config, metric.id, std::ptr::null_mut(), 0, value) };
    }

    /// The module ticks each worker itself ([`crate::ticks`]): nothing to arm.
    fn set_tick_period_ms(&self, _period_ms: u64) -> Result<(), HostError> {
        Ok(())
    }
}
