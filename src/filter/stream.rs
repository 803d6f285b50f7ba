//! One HTTP stream: match, pick, write the owned headers, count.

use super::{Active, DestinationMetrics};
use crate::headers::HeaderPairs;
use crate::metrics::CodeClass;
use crate::plan::{RequestView, DEADLINE_HEADER, DEFAULT_CLUSTER_HEADER, DEFAULT_VERSION_HEADER};
use proxy_wasm::hostcalls::{increment_metric, record_metric};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, MapType, Status};
use std::rc::Rc;
use std::time::SystemTime;

/// The `UT` (upstream request timeout) bit of Envoy's `response.flags` attribute: Envoy's own
/// signal that the stream's deadline (or a per-try deadline) fired, as opposed to a 504 that
/// the upstream sent itself. The flags are a little-endian u64.
const UPSTREAM_REQUEST_TIMEOUT_FLAG: u64 = 0x4;

fn is_upstream_timeout(flags: Option<Vec<u8>>) -> bool {
    let Some(bytes) = flags.and_then(|flags| <[u8; 8]>::try_from(flags.as_slice()).ok()) else {
        return false;
    };
    u64::from_le_bytes(bytes) & UPSTREAM_REQUEST_TIMEOUT_FLAG != 0
}

pub(crate) struct SplitStream {
    active: Option<Rc<Active>>,
    /// The route and destination chosen for this request, as indexes into the plan.
    chosen: Option<(usize, usize)>,
    started: Option<SystemTime>,
}

impl SplitStream {
    pub fn new(active: Option<Rc<Active>>) -> Self {
        Self {
            active,
            chosen: None,
            started: None,
        }
    }

    fn chosen_metrics(&self) -> Option<&DestinationMetrics> {
        let (route, destination) = self.chosen?;
        self.active.as_ref()?.metrics.get(route)?.get(destination)
    }
}

impl Context for SplitStream {}

/// The request headers as the matcher sees them: all fetched in one host call, the first time
/// a route asks about the request, and read in place (see `crate::headers` for why).
struct HostRequest {
    serialized: Option<Vec<u8>>,
}

impl HostRequest {
    fn headers(&mut self) -> HeaderPairs<'_> {
        let bytes = self.serialized.get_or_insert_with(request_header_pairs);
        HeaderPairs::new(bytes)
    }
}

impl RequestView for HostRequest {
    fn path(&mut self) -> Option<&[u8]> {
        self.headers().get(":path")
    }

    fn method(&mut self) -> Option<&[u8]> {
        self.headers().get(":method")
    }

    fn header(&mut self, name: &str) -> Option<&[u8]> {
        self.headers().get(name)
    }
}

#[link(wasm_import_module = "env")]
extern "C" {
    // The SDK's own wrapper copies every pair into owned Strings (and panics on a name that is
    // not UTF-8); the raw call hands over the host's buffer as it is.
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> Status;
}

/// The request's headers, serialized by the host; empty if the host has none to give.
fn request_header_pairs() -> Vec<u8> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: on Ok the host has written a buffer it allocated through this module's
    // `proxy_on_memory_allocate` (the SDK's, a Vec<u8> of exactly `size` bytes), whose
    // ownership passes to us; rebuilding that Vec frees it when dropped.
    unsafe {
        match proxy_get_header_map_pairs(MapType::HttpRequestHeaders, &mut data, &mut size) {
            Status::Ok if !data.is_null() => Vec::from_raw_parts(data, size, size),
            _ => Vec::new(),
        }
    }
}

impl HttpContext for SplitStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(active) = self.active.clone() else {
            // Not configured (Envoy does not normally run a filter whose configuration failed):
            // still never let a client choose the cluster or version.
            self.remove_http_request_header(DEFAULT_VERSION_HEADER);
            self.remove_http_request_header(DEFAULT_CLUSTER_HEADER);
            return Action::Continue;
        };
        let plan = &active.plan;
        let mut request = HostRequest { serialized: None };
        let Some((route_index, route)) = plan.match_route(&mut request) else {
            self.remove_http_request_header(&plan.version_header);
            self.remove_http_request_header(&plan.cluster_header);
            let _ = increment_metric(active.unmatched, 1);
            return Action::Continue;
        };
        let Some((destination_index, destination)) = route.pick_destination() else {
            return Action::Continue;
        };
        // Replacing a request header also makes Envoy clear its route cache, so the router
        // re-resolves the route against the headers written here.
        self.set_http_request_header(&plan.version_header, Some(&destination.version));
        match &destination.cluster {
            Some(cluster) => self.set_http_request_header(&plan.cluster_header, Some(cluster)),
            None => self.remove_http_request_header(&plan.cluster_header),
        }
        if let Some(deadline) = &destination.deadline_header_value {
            self.set_http_request_header(DEADLINE_HEADER, Some(deadline));
        }
        self.chosen = Some((route_index, destination_index));
        self.started = Some(self.get_current_time());
        if let Some(metrics) = self.chosen_metrics() {
            let _ = increment_metric(metrics.requests, 1);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let Some(metrics) = self.chosen_metrics() else {
            return Action::Continue;
        };
        let status = self.get_http_response_header_bytes(":status");
        let class = status
            .as_deref()
            .and_then(|status| std::str::from_utf8(status).ok())
            .and_then(CodeClass::of_status);
        if let Some(class) = class {
            if let Some(&id) = metrics.responses.get(class.index()) {
                let _ = increment_metric(id, 1);
            }
        }
        // Envoy's own timeouts answer 504; only then is the property read worth its cost.
        if status.as_deref() == Some(b"504".as_slice())
            && is_upstream_timeout(self.get_property(vec!["response", "flags"]))
        {
            let _ = increment_metric(metrics.timeouts, 1);
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        let (Some(metrics), Some(started)) = (self.chosen_metrics(), self.started) else {
            return;
        };
        let elapsed_ms = self
            .get_current_time()
            .duration_since(started)
            .map_or(0, |elapsed| elapsed.as_millis());
        let _ = record_metric(
            metrics.duration,
            u64::try_from(elapsed_ms).unwrap_or(u64::MAX),
        );
    }
}
