//! [`StreamHost`] on Envoy: the host calls one stream makes, through the proxy-wasm SDK.
//!
//! The request-header calls are the exception. The SDK's wrappers (`proxy_wasm::hostcalls`,
//! 0.2.5) panic on any status but the expected ones, and a panic in a Wasm VM is a trap that
//! takes the VM down, so a host failure could not be handled as a value there; its header-map
//! read also copies every pair into owned `String`s and panics on a name that is not UTF-8.
//! These calls, a response header's add (a sticky cookie's `Set-Cookie`) and the local reply's
//! are therefore declared here, on the SDK's own types, with their status
//! returned to the core, which fails towards safety (`crate::request`).

use crate::metrics::{DestinationMetric, MetricKind};
use crate::request::headers::serialize_pairs;
use crate::request::{Chosen, Count, HostError, StreamHost};
use crate::split::guard::Stored;
use crate::worker::{MetricIds, WorkerHost};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{MapType, MetricType, Status};
use std::ptr::null_mut;
use std::time::{Duration, UNIX_EPOCH};

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> Status;
    fn proxy_replace_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> Status;
    fn proxy_add_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> Status;
    fn proxy_remove_header_map_value(
        map_type: MapType,
        key_data: *const u8,
        key_size: usize,
    ) -> Status;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> Status;
}

/// The details Envoy logs for the filter's local reply (`%RESPONSE_CODE_DETAILS%`).
const LOCAL_REPLY_DETAILS: &str = "traffic_split_fault_abort";

fn status_result(status: Status) -> Result<(), HostError> {
    match status {
        Status::Ok => Ok(()),
        failed => Err(HostError(failed as u32)),
    }
}

/// The proxy's clock, in nanoseconds since the Unix epoch (0 if the host cannot tell).
fn proxy_clock_nanos() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|now| now.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |since_epoch| {
            u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)
        })
}

/// The root's host: the clock, shared data, metrics and the tick timer, through host calls.
pub(super) struct WasmWorkerHost;

impl WorkerHost for WasmWorkerHost {
    fn now_nanos(&self) -> u64 {
        proxy_clock_nanos()
    }

    fn shared_get(&self, key: &str) -> Result<Stored, HostError> {
        hostcalls::get_shared_data(key).map_err(|status| HostError(status as u32))
    }

    fn shared_set(&self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), HostError> {
        hostcalls::set_shared_data(key, Some(value), cas).map_err(|status| HostError(status as u32))
    }

    fn define_metric(&self, kind: MetricKind, name: &str) -> Result<u32, HostError> {
        let kind = match kind {
            MetricKind::Counter => MetricType::Counter,
            MetricKind::Gauge => MetricType::Gauge,
            MetricKind::Histogram => MetricType::Histogram,
        };
        hostcalls::define_metric(kind, name).map_err(|status| HostError(status as u32))
    }

    fn increment_metric(&self, id: u32, by: u64) {
        // Fails only for an id that was never defined; every id here was defined at configure.
        let _ = hostcalls::increment_metric(id, i64::try_from(by).unwrap_or(i64::MAX));
    }

    fn record_metric(&self, id: u32, value: u64) {
        let _ = hostcalls::record_metric(id, value);
    }

    fn set_tick_period_ms(&self, period_ms: u64) -> Result<(), HostError> {
        hostcalls::set_tick_period(Duration::from_millis(period_ms))
            .map_err(|status| HostError(status as u32))
    }
}

/// The host for one callback of one stream, counting into the metrics of its configuration.
pub(super) struct EnvoyHost<'a> {
    metrics: Option<&'a MetricIds>,
}

impl<'a> EnvoyHost<'a> {
    pub fn new(metrics: &'a MetricIds) -> Self {
        EnvoyHost {
            metrics: Some(metrics),
        }
    }

    /// The host of a stream on a root without a configuration: it counts nothing.
    pub fn unconfigured() -> Self {
        EnvoyHost { metrics: None }
    }

    /// The id of a destination metric, if the destination's config defines it.
    fn id(&self, chosen: Chosen, metric: DestinationMetric) -> Option<u32> {
        self.metrics?.resolve(Count::Destination(chosen, metric))
    }

    /// Every request header, in one host call.
    fn read_request_header_pairs(&mut self) -> Result<Vec<u8>, HostError> {
        let mut data: *mut u8 = null_mut();
        let mut size: usize = 0;
        // SAFETY: on Ok the host has written a buffer it allocated through this module's
        // `proxy_on_memory_allocate` (the SDK's: a `Vec<u8>` of exactly `size` bytes), whose
        // ownership passes to us; rebuilding that Vec frees it when dropped.
        let status = unsafe {
            proxy_get_header_map_pairs(MapType::HttpRequestHeaders, &mut data, &mut size)
        };
        status_result(status)?;
        if data.is_null() {
            return Ok(Vec::new());
        }
        // SAFETY: see above.
        Ok(unsafe { Vec::from_raw_parts(data, size, size) })
    }

    /// An integer attribute of Envoy's (8 little-endian bytes).
    fn integer_property(path: &[&str]) -> Result<Option<u64>, HostError> {
        match hostcalls::get_property(path.to_vec()) {
            Ok(Some(bytes)) => Ok(<[u8; 8]>::try_from(bytes.as_slice())
                .ok()
                .map(u64::from_le_bytes)),
            Ok(None) => Ok(None),
            Err(status) => Err(HostError(status as u32)),
        }
    }
}

impl StreamHost for EnvoyHost<'_> {
    fn request_header_pairs(&mut self) -> Result<Vec<u8>, HostError> {
        self.read_request_header_pairs()
    }

    fn replace_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        // SAFETY: the host only reads the two slices. Envoy also clears its route cache, so the
        // router resolves the route again against what the filter wrote (ABI 0.2.1).
        status_result(unsafe {
            proxy_replace_header_map_value(
                MapType::HttpRequestHeaders,
                name.as_ptr(),
                name.len(),
                value.as_ptr(),
                value.len(),
            )
        })
    }

    fn add_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        // SAFETY: the host only reads the two slices.
        status_result(unsafe {
            proxy_add_header_map_value(
                MapType::HttpRequestHeaders,
                name.as_ptr(),
                name.len(),
                value.as_ptr(),
                value.len(),
            )
        })
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        // SAFETY: the host only reads `name`.
        status_result(unsafe {
            proxy_remove_header_map_value(MapType::HttpRequestHeaders, name.as_ptr(), name.len())
        })
    }

    fn send_local_reply(
        &mut self,
        status: u16,
        body: &str,
        header: (&str, &str),
    ) -> Result<(), HostError> {
        let headers = serialize_pairs(&[header]);
        // SAFETY: the host only reads the slices. (The SDK's `send_http_response` panics when
        // the host refuses.) -1: no gRPC status.
        status_result(unsafe {
            proxy_send_local_response(
                u32::from(status),
                LOCAL_REPLY_DETAILS.as_ptr(),
                LOCAL_REPLY_DETAILS.len(),
                body.as_ptr(),
                body.len(),
                headers.as_ptr(),
                headers.len(),
                -1,
            )
        })
    }

    fn response_code(&mut self) -> Result<Option<i64>, HostError> {
        Ok(
            Self::integer_property(&["response", "code"])?
                .and_then(|code| i64::try_from(code).ok()),
        )
    }

    fn response_flags(&mut self) -> Result<Option<u64>, HostError> {
        Self::integer_property(&["response", "flags"])
    }

    fn add_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        // SAFETY: the host only reads the two slices.
        status_result(unsafe {
            proxy_add_header_map_value(
                MapType::HttpResponseHeaders,
                name.as_ptr(),
                name.len(),
                value.as_ptr(),
                value.len(),
            )
        })
    }

    fn random_bytes(&mut self, bytes: &mut [u8]) -> Result<(), HostError> {
        // WASI's random_get, which Envoy's Wasm host serves from its own secure source.
        getrandom::getrandom(bytes).map_err(|error| HostError(error.code().get()))
    }

    fn now_nanos(&mut self) -> u64 {
        proxy_clock_nanos()
    }

    fn set_weight(&mut self, destination: Chosen, weight: u32) {
        if let Some(id) = self.id(destination, DestinationMetric::Weight) {
            let _ = hostcalls::record_metric(id, u64::from(weight));
        }
    }

    fn count(&mut self, what: Count) {
        if let Some(id) = self.metrics.and_then(|metrics| metrics.resolve(what)) {
            // Fails only for an id that was never defined; every id here was defined at
            // configure.
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    fn record_duration_us(&mut self, chosen: Chosen, microseconds: u64) {
        if let Some(id) = self.id(chosen, DestinationMetric::Duration) {
            let _ = hostcalls::record_metric(id, microseconds);
        }
    }
}
