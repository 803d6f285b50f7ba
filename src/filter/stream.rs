//! One HTTP stream: match, pick, write the owned headers, count.

use super::abi;
use super::{Active, DestinationMetrics};
use crate::headers::HeaderPairs;
use crate::metrics::CodeClass;
use crate::plan::{RequestView, DEADLINE_HEADER, DEFAULT_CLUSTER_HEADER, DEFAULT_VERSION_HEADER};
use std::rc::Rc;

/// Envoy's attributes, as the ABI spells a path: the parts separated by NUL.
const RESPONSE_CODE: &[u8] = b"response\0code";
const RESPONSE_FLAGS: &[u8] = b"response\0flags";

/// The `UT` (upstream request timeout) bit of Envoy's `response.flags` attribute: Envoy's own
/// signal that the stream's deadline (or a per-try deadline) fired, as opposed to a 504 that
/// the upstream sent itself.
const UPSTREAM_REQUEST_TIMEOUT_FLAG: i64 = 0x4;

const NANOS_PER_MILLI: u64 = 1_000_000;

pub(crate) struct SplitStream {
    /// The configuration of the stream's root context when the stream began; a later
    /// reconfiguration applies to later streams.
    active: Option<Rc<Active>>,
    /// The route and destination chosen for this request, as indexes into the plan.
    chosen: Option<(usize, usize)>,
    started_nanos: u64,
}

impl SplitStream {
    pub fn new(active: Option<Rc<Active>>) -> Self {
        Self {
            active,
            chosen: None,
            started_nanos: 0,
        }
    }

    fn chosen_metrics(&self) -> Option<&DestinationMetrics> {
        let (route, destination) = self.chosen?;
        self.active.as_ref()?.metrics.get(route)?.get(destination)
    }

    pub fn on_request_headers(&mut self) {
        let Some(active) = self.active.as_deref() else {
            // Not configured (Envoy does not normally run a filter whose configuration failed):
            // still never let a client choose the cluster or version.
            abi::remove_request_header(DEFAULT_VERSION_HEADER);
            abi::remove_request_header(DEFAULT_CLUSTER_HEADER);
            return;
        };
        let plan = &active.plan;
        let mut request = HostRequest { serialized: None };
        let Some((route_index, route)) = plan.match_route(&mut request) else {
            request.remove_if_sent(&plan.version_header);
            request.remove_if_sent(&plan.cluster_header);
            abi::increment_metric(active.unmatched);
            return;
        };
        let Some((destination_index, destination)) = route.pick_destination() else {
            return;
        };
        request.set(&plan.version_header, &destination.version);
        match &destination.cluster {
            Some(cluster) => request.set(&plan.cluster_header, cluster),
            None => request.remove_if_sent(&plan.cluster_header),
        }
        if let Some(deadline) = &destination.deadline_header_value {
            request.set(DEADLINE_HEADER, deadline);
        }
        self.chosen = Some((route_index, destination_index));
        self.started_nanos = abi::now_nanos();
        if let Some(metrics) = self.chosen_metrics() {
            abi::increment_metric(metrics.requests);
        }
    }

    /// Counts the response by class (and a timeout, if Envoy's deadline fired) and records the
    /// duration. Done once, when Envoy deletes the stream: by then the response code and flags
    /// are final, and one callback serves where response headers and the access log would be two.
    pub fn on_delete(self) {
        let Some(metrics) = self.chosen_metrics() else {
            return;
        };
        let elapsed_ms = abi::now_nanos().saturating_sub(self.started_nanos) / NANOS_PER_MILLI;
        abi::record_metric(metrics.duration, elapsed_ms);
        // No code when the stream ended before any response (a client reset): nothing to count.
        let Some(code) = abi::integer_property(RESPONSE_CODE) else {
            return;
        };
        if let Some(&id) =
            CodeClass::of_code(code).and_then(|class| metrics.responses.get(class.index()))
        {
            abi::increment_metric(id);
        }
        // Envoy's own timeouts answer 504; only then is the flags attribute worth its cost.
        if code == 504
            && abi::integer_property(RESPONSE_FLAGS)
                .is_some_and(|flags| flags & UPSTREAM_REQUEST_TIMEOUT_FLAG != 0)
        {
            abi::increment_metric(metrics.timeouts);
        }
    }
}

/// The request headers as the matcher sees them: all fetched in one host call, the first time
/// a route asks about the request, and read in place (see `crate::headers` for why).
struct HostRequest {
    serialized: Option<Vec<u8>>,
}

impl HostRequest {
    fn headers(&mut self) -> HeaderPairs<'_> {
        let bytes = self
            .serialized
            .get_or_insert_with(abi::request_header_pairs);
        HeaderPairs::new(bytes)
    }

    /// Whether the client sent a header, if the headers are already at hand. Fetching them
    /// only to find out would cost more than what knowing saves.
    fn sent(&self, name: &str) -> Option<bool> {
        let bytes = self.serialized.as_deref()?;
        Some(HeaderPairs::new(bytes).get(name).is_some())
    }

    /// Sets a header the filter owns: every value the client sent for it is replaced.
    fn set(&self, name: &str, value: &str) {
        if self.sent(name) == Some(false) {
            abi::add_request_header(name, value);
        } else {
            abi::replace_request_header(name, value);
        }
    }

    /// Removes a header the filter owns if the client sent it: a removal the request does not
    /// need still costs a host call and clears Envoy's route cache.
    fn remove_if_sent(&self, name: &str) {
        if self.sent(name) != Some(false) {
            abi::remove_request_header(name);
        }
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
