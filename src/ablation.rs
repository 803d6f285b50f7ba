//! Test-only: the ablation modules of the benchmark's CPU cost table (`make bench-ablations`,
//! docs/performance.md). Each `ablate-<part>` cargo feature removes one part of the request
//! path, and this file is the one place that does it, so that the request path
//! (`crate::request`) and the adapters read as they ship: a [`StreamHost`] wrapper for the
//! parts that are host calls, and a plan rewrite at configure for the route lookup. Without
//! an `ablate-*` feature every method forwards and the rewrite returns the plan as it is; the
//! compiler removes both.
//!
//! The round robin's ablation (`ablate-choice`) is gone: it could only live inside the
//! request path, and it measured 0.85 µs (interquartile range −0.59 to 3.07) in its last run.

use crate::plan::{Plan, RouteMatch, RouteTable};
use crate::request::headers::serialize_pairs;
use crate::request::{Chosen, Count, HostError, StreamHost};

/// The benchmark's request (bench/harness.py), which the `ablate-header-read` module reads
/// in place of the host's header map.
const ABLATED_REQUEST_HEADERS: [(&str, &str); 4] = [
    (":path", "/api/items"),
    (":method", "GET"),
    (":authority", "localhost"),
    ("x-tenant", "acme-corp"),
];

/// `ablate-route-lookup`: the plan keeps only its last route (the benchmark's), matching
/// every request, so that the lookup is one empty match.
pub fn rewrite_plan(plan: Plan) -> Plan {
    if !cfg!(feature = "ablate-route-lookup") {
        return plan;
    }
    let Plan {
        version_header,
        cluster_header,
        routes,
        metrics,
        log_level,
        pass_through,
    } = plan;
    let last = routes.into_routes().pop().map(|mut route| {
        route.matcher = RouteMatch::default();
        route
    });
    Plan {
        version_header,
        cluster_header,
        routes: RouteTable::new(last.into_iter().collect()),
        metrics,
        log_level,
        pass_through,
    }
}

/// The stream's host with the ablated calls removed.
pub fn host<'h, H: StreamHost>(host: &'h mut H, plan: &'h Plan) -> Ablated<'h, H> {
    Ablated {
        host,
        cluster_header: &plan.cluster_header,
    }
}

pub struct Ablated<'h, H: StreamHost> {
    host: &'h mut H,
    cluster_header: &'h str,
}

impl<H: StreamHost> Ablated<'_, H> {
    /// `ablate-header-writes` leaves out every request header write but the cluster's, which
    /// the benchmark's Envoy routes by: without it every request would go to one cluster, and
    /// the saving would be that of fewer upstream connections, not of the writes.
    fn ablated_write(&self, name: &str) -> bool {
        cfg!(feature = "ablate-header-writes") && name != self.cluster_header
    }
}

impl<H: StreamHost> StreamHost for Ablated<'_, H> {
    fn request_header_pairs(&mut self) -> Result<Vec<u8>, HostError> {
        if cfg!(feature = "ablate-header-read") {
            return Ok(serialize_pairs(&ABLATED_REQUEST_HEADERS));
        }
        self.host.request_header_pairs()
    }

    fn replace_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        if self.ablated_write(name) {
            return Ok(());
        }
        self.host.replace_request_header(name, value)
    }

    fn add_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        if self.ablated_write(name) {
            return Ok(());
        }
        self.host.add_request_header(name, value)
    }

    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError> {
        if self.ablated_write(name) {
            return Ok(());
        }
        self.host.remove_request_header(name)
    }

    fn add_response_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.host.add_response_header(name, value)
    }

    fn random_bytes(&mut self, bytes: &mut [u8]) -> Result<(), HostError> {
        self.host.random_bytes(bytes)
    }

    fn response_code(&mut self) -> Result<Option<i64>, HostError> {
        if cfg!(feature = "ablate-property-reads") {
            return Ok(Some(200));
        }
        self.host.response_code()
    }

    fn response_flags(&mut self) -> Result<Option<u64>, HostError> {
        if cfg!(feature = "ablate-property-reads") {
            return Ok(None);
        }
        self.host.response_flags()
    }

    fn now_nanos(&mut self) -> u64 {
        if cfg!(feature = "ablate-clock") {
            return 0;
        }
        self.host.now_nanos()
    }

    fn count(&mut self, what: Count) {
        if cfg!(feature = "ablate-counters") {
            return;
        }
        self.host.count(what)
    }

    fn set_weight(&mut self, destination: Chosen, weight: u32) {
        self.host.set_weight(destination, weight)
    }

    fn send_local_reply(
        &mut self,
        status: u16,
        body: &str,
        header: (&str, &str),
    ) -> Result<(), HostError> {
        self.host.send_local_reply(status, body, header)
    }

    fn record_duration_us(&mut self, chosen: Chosen, microseconds: u64) {
        if cfg!(feature = "ablate-histogram") {
            return;
        }
        self.host.record_duration_us(chosen, microseconds)
    }
}
