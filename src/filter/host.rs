//! [`StreamHost`] on Envoy: the host calls one stream makes, through the proxy-wasm SDK.
//!
//! The request-header calls are the exception. The SDK's wrappers (`proxy_wasm::hostcalls`,
//! 0.2.5) panic on any status but the expected ones, and a panic in a Wasm VM is a trap that
//! takes the VM down, so a host failure could not be handled as a value there; its header-map
//! read also copies every pair into owned `String`s and panics on a name that is not UTF-8.
//! These calls, a response header's add (a sticky cookie's `Set-Cookie`) and the local reply's
//! are therefore declared here, on the SDK's own types, with their status
//! returned to the core, which fails towards safety (`crate::request`).

use super::Active;
use crate::metrics::DestinationMetric;
use crate::request::headers::serialize_pairs;
use crate::request::{Chosen, Count, HostError, StreamHost};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{MapType, Status};
use std::ptr::null_mut;
use std::time::UNIX_EPOCH;

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

/// The benchmark's request (bench/harness.py), which the `ablate-header-read` module reads
/// in place of the host's header map: test-only, never in the shipped module.
const ABLATED_REQUEST_HEADERS: [(&str, &str); 4] = [
    (":path", "/api/items"),
    (":method", "GET"),
    (":authority", "localhost"),
    ("x-tenant", "acme-corp"),
];

/// The details Envoy logs for the filter's local reply (`%RESPONSE_CODE_DETAILS%`).
const LOCAL_REPLY_DETAILS: &str = "traffic_split_fault_abort";

fn status_result(status: Status) -> Result<(), HostError> {
    match status {
        Status::Ok => Ok(()),
        failed => Err(HostError(failed as u32)),
    }
}

/// The proxy's clock, in nanoseconds since the Unix epoch (0 if the host cannot tell).
pub(super) fn proxy_clock_nanos() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|now| now.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |since_epoch| {
            u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)
        })
}

/// Removes a request header, ignoring a failure: for a stream with no configuration, where
/// there is nothing to count it in.
pub(super) fn remove_request_header_anyway(name: &str) {
    // SAFETY: the host only reads `name`.
    let _ = unsafe {
        proxy_remove_header_map_value(MapType::HttpRequestHeaders, name.as_ptr(), name.len())
    };
}

/// The host for one callback of one stream, counting into the metrics of its configuration.
pub(super) struct EnvoyHost<'a> {
    active: &'a Active,
}

impl<'a> EnvoyHost<'a> {
    pub fn new(active: &'a Active) -> Self {
        EnvoyHost { active }
    }

    /// Test-only (`make bench-ablations`): whether the `ablate-header-writes` module leaves
    /// out this write. It keeps the cluster header's, which the benchmark's Envoy routes by:
    /// without it every request would go to one cluster, and the saving would be that of
    /// fewer upstream connections, not of the writes.
    fn ablated_write(&self, name: &str) -> bool {
        cfg!(feature = "ablate-header-writes") && name != self.active.plan.cluster_header
    }

    /// The id of a destination metric, if the destination's config defines it.
    fn id(&self, chosen: Chosen, metric: DestinationMetric) -> Option<u32> {
        self.active
            .metrics
            .get(chosen.route)?
            .get(chosen.destination)?
            .id(metric)
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

fn increment(id: u32) {
    // Fails only for an id that was never defined; every id here was defined at configure.
    let _ = hostcalls::increment_metric(id, 1);
}

impl StreamHost for EnvoyHost<'_> {
    fn request_header_pairs(&mut self) -> Result<Vec<u8>, HostError> {
        if cfg!(feature = "ablate-header-read") {
            return Ok(serialize_pairs(&ABLATED_REQUEST_HEADERS));
        }
        self.read_request_header_pairs()
    }

    fn replace_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        if self.ablated_write(name) {
            return Ok(());
        }
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
        if self.ablated_write(name) {
            return Ok(());
        }
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
        if self.ablated_write(name) {
            return Ok(());
        }
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
        if cfg!(feature = "ablate-property-reads") {
            return Ok(Some(200));
        }
        Ok(
            Self::integer_property(&["response", "code"])?
                .and_then(|code| i64::try_from(code).ok()),
        )
    }

    fn response_flags(&mut self) -> Result<Option<u64>, HostError> {
        if cfg!(feature = "ablate-property-reads") {
            return Ok(None);
        }
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
        if cfg!(feature = "ablate-clock") {
            return 0;
        }
        proxy_clock_nanos()
    }

    fn set_weight(&mut self, destination: Chosen, weight: u32) {
        if let Some(id) = self.id(destination, DestinationMetric::Weight) {
            let _ = hostcalls::record_metric(id, u64::from(weight));
        }
    }

    fn count(&mut self, what: Count) {
        let id = match what {
            Count::Destination(chosen, metric) => self.id(chosen, metric),
            Count::UnknownOverride { route } => {
                self.active.unknown_overrides.get(route).copied().flatten()
            }
            Count::Plugin(metric) => self.active.plugin_id(metric),
        };
        if let Some(id) = id.filter(|_| !cfg!(feature = "ablate-counters")) {
            increment(id);
        }
    }

    fn record_duration_us(&mut self, chosen: Chosen, microseconds: u64) {
        if cfg!(feature = "ablate-histogram") {
            return;
        }
        if let Some(id) = self.id(chosen, DestinationMetric::Duration) {
            let _ = hostcalls::record_metric(id, microseconds);
        }
    }
}
