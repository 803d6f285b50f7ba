//! What the filter does for one HTTP stream, written against a small [`StreamHost`] trait so
//! that every path, the host's failures included, is unit-tested on the host target. The
//! proxy-wasm adapter (`crate::filter`) implements the trait with host calls.
//!
//! Request headers: match a route, pick a destination, write the owned headers (version,
//! cluster, deadline), count. Stream end: count the response class and a timeout, record the
//! duration.
//!
//! Failing towards safety: a client must never choose a cluster, version or deadline the config
//! does not allow. When the host cannot give the request's headers, the filter cannot know
//! whether the client sent an owned header, so it removes or replaces every one as if it had.
//! When the host fails a write, the request is counted as a host error, not as routed, and the
//! filter removes that owned header rather than leave what the client sent.

use crate::fault::{FaultAction, FaultKind, FaultPlan};
use crate::headers::HeaderPairs;
use crate::metrics::CodeClass;
use crate::plan::{
    MetricsMode, Plan, RequestView, DEADLINE_HEADER, GRPC_RETRY_ON_HEADER, MAX_RETRIES_HEADER,
    PER_TRY_TIMEOUT_HEADER, RETRY_ON_HEADER,
};

#[cfg(any(test, feature = "fuzzing"))]
pub mod scripted_host;

/// A host call that did not succeed; the host's status code, for the log of a test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostError(pub u32);

/// What the stream counts, by route and destination index into the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// A request sent to this destination with every owned header written.
    Routed(Chosen),
    /// A request no route matched.
    Unmatched,
    /// A request under the pass-through plan of a refused config ([`Plan::pass_through`]).
    InvalidConfig,
    /// A host call that failed while handling a request.
    HostError,
    /// The class of the response to a routed request.
    Response(Chosen, CodeClass),
    /// Envoy's own deadline (or a per-try deadline) cut a routed request.
    Timeout(Chosen),
    /// A fault was injected into a routed request.
    Fault(Chosen, FaultKind),
}

/// What becomes of a request once the filter has handled its headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It goes on to its version.
    Continue,
    /// The filter answered it (an abort fault): it stops here.
    Answered,
    /// It is held this long (a delay fault), then goes on.
    Held { delay_ms: u64 },
}

/// The header that marks a fault's local reply, and its body.
pub const FAULT_HEADER: (&str, &str) = ("x-traffic-split-fault", "abort");
pub const FAULT_BODY: &str = "fault injected by traffic-split\n";

/// The route and destination a request was sent to, as indexes into the plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chosen {
    pub route: usize,
    pub destination: usize,
}

/// The host calls a stream needs.
pub trait StreamHost {
    /// Every request header, serialized as proxy-wasm serializes a header map
    /// ([`crate::headers`]), in one host call.
    fn request_header_pairs(&mut self) -> Result<Vec<u8>, HostError>;
    /// Sets a request header, replacing every value it had.
    fn replace_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    /// Adds a request header the request does not have (cheaper for Envoy than a replace).
    fn add_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;
    fn remove_request_header(&mut self, name: &str) -> Result<(), HostError>;
    /// The response's status code, if there was a response.
    fn response_code(&mut self) -> Result<Option<i64>, HostError>;
    /// Envoy's `response.flags` bit set.
    fn response_flags(&mut self) -> Result<Option<u64>, HostError>;
    /// A monotonic-enough clock for the request's duration, in nanoseconds.
    fn now_nanos(&mut self) -> u64;
    fn count(&mut self, what: Count);
    /// Answers the request with a local reply (a status, a body, one header).
    fn send_local_reply(
        &mut self,
        status: u16,
        body: &str,
        header: (&str, &str),
    ) -> Result<(), HostError>;
    /// Records a routed request's duration in the latency histogram, in microseconds.
    fn record_duration_us(&mut self, chosen: Chosen, microseconds: u64);
}

/// The `UT` (upstream request timeout) bit of Envoy's `response.flags`: Envoy's own deadline
/// fired, as opposed to a 504 the upstream sent itself.
const UPSTREAM_REQUEST_TIMEOUT_FLAG: u64 = 0x4;

/// Durations are recorded in microseconds: a sidecar-local version answers in well under a
/// millisecond, and deadlines are a few milliseconds, so whole milliseconds would read 0 for
/// the one and blur the other.
/// Envoy's `response.flags` bits for a reset stream: local reset (`LR`), upstream remote reset
/// (`UR`), upstream connection failure (`UF`) and termination (`UC`).
const RESET_FLAGS: u64 = 0x8 | 0x10 | 0x20 | 0x40;

const NANOS_PER_MICRO: u64 = 1_000;

/// The state a stream keeps between its request headers and its end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stream {
    /// Set only when the request was routed with every owned header written.
    pub chosen: Option<Chosen>,
    started_nanos: u64,
}

impl Stream {
    /// Handles the request headers: everything the filter decides for a request.
    pub fn on_request_headers(&mut self, plan: &Plan, host: &mut impl StreamHost) -> Verdict {
        let mut request = HostRequest::new(host);
        let matched = plan.match_route(&mut request);
        let Some((route_index, destination_index, destination)) =
            matched.and_then(|(route_index, route)| {
                let (destination_index, destination) = route.pick_destination()?;
                Some((route_index, destination_index, destination))
            })
        else {
            // Unmatched (or, never built by validation, a route without destinations).
            request.remove_if_sent(&plan.version_header);
            request.remove_if_sent(&plan.cluster_header);
            if plan.pass_through {
                request.host.count(Count::InvalidConfig);
            } else if matched.is_none() {
                request.host.count(Count::Unmatched);
            }
            request.count_failures();
            return Verdict::Continue;
        };
        request.set(&plan.version_header, &destination.version);
        match &destination.cluster {
            Some(cluster) => request.set(&plan.cluster_header, cluster),
            None => request.remove_if_sent(&plan.cluster_header),
        }
        if let Some(deadline) = &destination.deadline_header_value {
            request.set(DEADLINE_HEADER, deadline);
        }
        // Envoy's retry policy is the config's: written where it has one, a client's removed.
        match &destination.retries {
            Some(retries) => {
                request.set(MAX_RETRIES_HEADER, &retries.max_retries);
                request.set(RETRY_ON_HEADER, &retries.retry_on);
                match &retries.per_try_timeout_ms {
                    Some(per_try) => request.set(PER_TRY_TIMEOUT_HEADER, per_try),
                    None => request.remove_if_sent(PER_TRY_TIMEOUT_HEADER),
                }
                match &retries.grpc_retry_on {
                    Some(grpc) => request.set(GRPC_RETRY_ON_HEADER, grpc),
                    None => request.remove_if_sent(GRPC_RETRY_ON_HEADER),
                }
            }
            None => {
                for header in [
                    MAX_RETRIES_HEADER,
                    RETRY_ON_HEADER,
                    PER_TRY_TIMEOUT_HEADER,
                    GRPC_RETRY_ON_HEADER,
                ] {
                    request.remove_if_sent(header);
                }
            }
        }
        if request.write_failed {
            request.count_failures();
            return Verdict::Continue;
        }
        // A failed read of the headers alone does not stop the request: every owned header was
        // written regardless of what the client sent.
        request.count_failures();
        let chosen = Chosen {
            route: route_index,
            destination: destination_index,
        };
        self.chosen = Some(chosen);
        if plan.metrics == MetricsMode::Full {
            self.started_nanos = request.host.now_nanos();
        }
        request.host.count(Count::Routed(chosen));
        let Some(action) = destination.fault.as_ref().and_then(FaultPlan::draw) else {
            return Verdict::Continue;
        };
        request.host.count(Count::Fault(chosen, action.kind()));
        match action {
            FaultAction::Abort { status } => {
                match request
                    .host
                    .send_local_reply(status, FAULT_BODY, FAULT_HEADER)
                {
                    Ok(()) => Verdict::Answered,
                    Err(_) => {
                        request.host.count(Count::HostError);
                        Verdict::Continue
                    }
                }
            }
            FaultAction::Delay { delay_ms } => Verdict::Held { delay_ms },
        }
    }

    /// Handles the end of the stream (after the response, at Envoy's access log): the response
    /// class, a timeout, the duration. Nothing in [`MetricsMode::Requests`].
    pub fn on_end(&self, plan: &Plan, host: &mut impl StreamHost) {
        let Some(chosen) = self.chosen else {
            return;
        };
        let route = plan.routes.get(chosen.route);
        let guard = route.and_then(|route| route.guard.as_ref());
        let full = plan.metrics == MetricsMode::Full;
        if !full && guard.is_none() {
            return;
        }
        if full {
            let elapsed_nanos = host.now_nanos().saturating_sub(self.started_nanos);
            host.record_duration_us(chosen, elapsed_nanos / NANOS_PER_MICRO);
        }
        let record = |error: bool| {
            if let Some(route) = route {
                route.live.record_outcome(chosen.destination, error);
            }
        };
        let code = match host.response_code() {
            Ok(Some(code)) => code,
            // No response at all: the stream was reset (by the client, or upstream before
            // Envoy could answer). Only the guard's "reset" class counts it.
            Ok(None) => {
                if let Some(guard) = guard {
                    record(guard.errors.reset);
                }
                return;
            }
            Err(_) => {
                host.count(Count::HostError);
                return;
            }
        };
        let class = CodeClass::of_code(code);
        if full {
            if let Some(class) = class {
                host.count(Count::Response(chosen, class));
            }
        }
        let server_error = class == Some(CodeClass::ServerError);
        // The flags attribute costs a host call: read it only where its answer counts. Envoy's
        // own timeouts answer 504, its resets and connection failures 503.
        let needs_flags = (code == 504 && (full || guard.is_some_and(|g| g.errors.timeout)))
            || (server_error && guard.is_some_and(|g| g.errors.reset));
        let flags = if needs_flags {
            match host.response_flags() {
                Ok(flags) => flags.unwrap_or(0),
                Err(_) => {
                    host.count(Count::HostError);
                    0
                }
            }
        } else {
            0
        };
        let timed_out = code == 504 && flags & UPSTREAM_REQUEST_TIMEOUT_FLAG != 0;
        if full && timed_out {
            host.count(Count::Timeout(chosen));
        }
        if let Some(guard) = guard {
            let classes = guard.errors;
            record(
                (classes.server_error && server_error)
                    || (classes.timeout && timed_out)
                    || (classes.reset && flags & RESET_FLAGS != 0),
            );
        }
    }
}

/// The request's headers as the matcher sees them: fetched in one host call the first time a
/// route asks about the request, then read in place.
enum Fetched {
    NotYet,
    Headers(Vec<u8>),
    /// The host could not give them: the request reads as one without headers, and whether
    /// the client sent an owned header is unknown.
    Failed,
}

struct HostRequest<'h, H: StreamHost> {
    host: &'h mut H,
    fetched: Fetched,
    /// Whether a write of an owned header failed: the request is then not counted as routed.
    write_failed: bool,
    /// Host calls that failed for this request, counted once the request is handled.
    failures: u32,
}

impl<'h, H: StreamHost> HostRequest<'h, H> {
    fn new(host: &'h mut H) -> Self {
        HostRequest {
            host,
            fetched: Fetched::NotYet,
            write_failed: false,
            failures: 0,
        }
    }

    /// Notes the outcome of a header write; whether it succeeded.
    fn note_write(&mut self, result: Result<(), HostError>) -> bool {
        let ok = result.is_ok();
        if !ok {
            self.write_failed = true;
            self.failures += 1;
        }
        ok
    }

    fn headers(&mut self) -> Option<HeaderPairs<'_>> {
        if matches!(self.fetched, Fetched::NotYet) {
            self.fetched = match self.host.request_header_pairs() {
                Ok(bytes) => Fetched::Headers(bytes),
                Err(_) => {
                    self.failures += 1;
                    Fetched::Failed
                }
            };
        }
        match &self.fetched {
            Fetched::Headers(bytes) => Some(HeaderPairs::new(bytes)),
            Fetched::NotYet | Fetched::Failed => None,
        }
    }

    /// Whether the client sent a header, if the headers are at hand. Fetching them only to
    /// find out would cost more than what knowing saves; unknown reads as "maybe".
    fn sent(&self, name: &str) -> Option<bool> {
        match &self.fetched {
            Fetched::Headers(bytes) => Some(HeaderPairs::new(bytes).get(name).is_some()),
            Fetched::NotYet | Fetched::Failed => None,
        }
    }

    /// Sets a header the filter owns: every value the client sent for it is replaced. If the
    /// host fails the write, the header is removed, so that no client value survives.
    fn set(&mut self, name: &str, value: &str) {
        let written = if self.sent(name) == Some(false) {
            self.host.add_request_header(name, value)
        } else {
            self.host.replace_request_header(name, value)
        };
        if !self.note_write(written) {
            let removed = self.host.remove_request_header(name);
            self.note_write(removed);
        }
    }

    /// Removes a header the filter owns unless the client is known not to have sent it: a
    /// removal the request does not need still costs a host call and a route-cache clear.
    fn remove_if_sent(&mut self, name: &str) {
        if self.sent(name) != Some(false) {
            let removed = self.host.remove_request_header(name);
            self.note_write(removed);
        }
    }

    fn count_failures(&mut self) {
        for _ in 0..self.failures {
            self.host.count(Count::HostError);
        }
        self.failures = 0;
    }
}

impl<H: StreamHost> RequestView for HostRequest<'_, H> {
    fn path(&mut self) -> Option<&[u8]> {
        self.headers()?.get(":path")
    }

    fn method(&mut self) -> Option<&[u8]> {
        self.headers()?.get(":method")
    }

    fn header(&mut self, name: &str) -> Option<&[u8]> {
        self.headers()?.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::compile;
    use scripted_host::ScriptedHost;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const SPLIT: &str = r#"{ "routes": [
        { "name": "hello", "match": { "prefix": "/hello" }, "timeout": "2ms",
          "destinations": [ { "version": "v1", "cluster": "app-v1", "weight": 1 } ] },
        { "name": "rest", "destinations": [ { "version": "v9", "weight": 1 } ] } ] }"#;

    const PREFIX_ONLY: &str = r#"{ "routes": [
        { "name": "hello", "match": { "prefix": "/hello" },
          "destinations": [ { "version": "v1", "cluster": "app-v1", "weight": 1 } ] } ] }"#;

    const HELLO: Chosen = Chosen {
        route: 0,
        destination: 0,
    };
    const REST: Chosen = Chosen {
        route: 1,
        destination: 0,
    };

    fn plan(json: &str) -> Plan {
        compile(json.as_bytes()).unwrap()
    }

    fn handle(json: &str, host: &mut ScriptedHost) -> Stream {
        let mut stream = Stream::default();
        stream.on_request_headers(&plan(json), host);
        stream
    }

    #[test]
    fn a_routed_request_gets_every_owned_header_and_is_counted() {
        let mut host = ScriptedHost::with_headers(&[(":path", "/hello")]);
        let stream = handle(SPLIT, &mut host);
        assert_eq!(stream.chosen, Some(HELLO));
        assert_eq!(host.values("x-split-version"), ["v1"]);
        assert_eq!(host.values("x-split-cluster"), ["app-v1"]);
        assert_eq!(host.values(DEADLINE_HEADER), ["2"]);
        assert_eq!(host.counts, [Count::Routed(HELLO)]);
        assert_eq!(host.reads, 1, "the headers are read once");
    }

    #[test]
    fn spoofed_owned_headers_are_replaced_not_added_to() {
        let mut host = ScriptedHost::with_headers(&[
            (":path", "/hello"),
            ("x-split-version", "v2"),
            ("x-split-cluster", "admin"),
            (DEADLINE_HEADER, "600000"),
        ]);
        handle(SPLIT, &mut host);
        assert_eq!(host.values("x-split-version"), ["v1"]);
        assert_eq!(host.values("x-split-cluster"), ["app-v1"]);
        assert_eq!(host.values(DEADLINE_HEADER), ["2"]);
    }

    #[test]
    fn a_destination_without_cluster_removes_a_spoofed_cluster_header() {
        let mut host = ScriptedHost::with_headers(&[(":path", "/other"), ("x-split-cluster", "x")]);
        let stream = handle(SPLIT, &mut host);
        assert_eq!(stream.chosen, Some(REST));
        assert!(host.values("x-split-cluster").is_empty());
        assert_eq!(host.values("x-split-version"), ["v9"]);
    }

    #[test]
    fn under_a_pass_through_plan_owned_headers_go_and_the_request_is_counted() {
        let plan = crate::config::pass_through::pass_through_plan(
            br#"{ "on_invalid_config": "pass_through", "version_header": "x-canary", "routes": 7 }"#,
        )
        .unwrap();
        let mut host = ScriptedHost::with_headers(&[
            (":path", "/hello"),
            ("x-canary", "v2"),
            ("x-split-cluster", "admin"),
            (DEADLINE_HEADER, "9"),
        ]);
        let mut stream = Stream::default();
        stream.on_request_headers(&plan, &mut host);
        assert_eq!(stream.chosen, None);
        assert!(host.values("x-canary").is_empty());
        assert!(host.values("x-split-cluster").is_empty());
        assert_eq!(
            host.values(DEADLINE_HEADER),
            ["9"],
            "not owned without a route"
        );
        assert_eq!(host.counts, [Count::InvalidConfig]);
        stream.on_end(&plan, &mut host);
        assert_eq!(host.counts, [Count::InvalidConfig], "nothing at the end");
    }

    #[test]
    fn an_unmatched_request_loses_spoofed_owned_headers_and_is_counted() {
        let mut host = ScriptedHost::with_headers(&[
            (":path", "/other"),
            ("x-split-version", "v2"),
            ("x-split-cluster", "admin"),
        ]);
        let stream = handle(PREFIX_ONLY, &mut host);
        assert_eq!(stream.chosen, None);
        assert!(host.values("x-split-version").is_empty());
        assert!(host.values("x-split-cluster").is_empty());
        assert_eq!(host.counts, [Count::Unmatched]);
    }

    #[test]
    fn when_the_headers_cannot_be_read_owned_headers_are_still_written() {
        let mut host = ScriptedHost::with_headers(&[
            (":path", "/hello"),
            ("x-split-version", "v2"),
            ("x-split-cluster", "admin"),
        ]);
        host.fail_read = true;
        // The request reads as one without a path: only the catch-all route matches, and its
        // headers replace the client's, which the filter could not see.
        let stream = handle(SPLIT, &mut host);
        assert_eq!(stream.chosen, Some(REST));
        assert_eq!(host.values("x-split-version"), ["v9"]);
        assert!(host.values("x-split-cluster").is_empty());
        assert_eq!(host.count_of(Count::HostError), 1);
        assert_eq!(host.count_of(Count::Routed(REST)), 1);
    }

    #[test]
    fn when_the_headers_cannot_be_read_an_unmatched_request_loses_owned_headers() {
        let mut host = ScriptedHost::with_headers(&[
            (":path", "/hello"),
            ("x-split-version", "v2"),
            ("x-split-cluster", "admin"),
        ]);
        host.fail_read = true;
        let stream = handle(PREFIX_ONLY, &mut host);
        assert_eq!(stream.chosen, None);
        assert!(host.values("x-split-version").is_empty());
        assert!(host.values("x-split-cluster").is_empty());
        assert_eq!(host.count_of(Count::Unmatched), 1);
        assert_eq!(host.count_of(Count::HostError), 1);
    }

    #[test]
    fn a_failed_write_is_a_host_error_not_a_routed_request() {
        let mut host =
            ScriptedHost::with_headers(&[(":path", "/hello"), ("x-split-version", "v2")]);
        host.fail_writes_of = vec!["x-split-version".to_string()];
        let stream = handle(SPLIT, &mut host);
        assert_eq!(stream.chosen, None, "not counted at its end either");
        assert!(
            host.values("x-split-version").is_empty(),
            "the client's value is removed when the write fails"
        );
        assert_eq!(host.counts, [Count::HostError]);
    }

    #[test]
    fn a_failed_write_and_removal_are_both_counted() {
        let mut host = ScriptedHost::with_headers(&[(":path", "/hello")]);
        host.fail_writes_of = vec![DEADLINE_HEADER.to_string()];
        host.fail_removes = true;
        let stream = handle(SPLIT, &mut host);
        assert_eq!(stream.chosen, None);
        assert_eq!(host.count_of(Count::HostError), 2);
        assert_eq!(host.count_of(Count::Routed(HELLO)), 0);
    }

    fn end(json: &str, host: &mut ScriptedHost) {
        end_with(plan(json), host);
    }

    fn end_with(plan: Plan, host: &mut ScriptedHost) {
        let mut stream = Stream::default();
        host.clock = 1_000_000_000;
        stream.on_request_headers(&plan, host);
        host.clock += 2_600_000;
        stream.on_end(&plan, host);
    }

    #[test]
    fn the_end_counts_the_response_class_and_records_the_duration() {
        let mut host = ScriptedHost::with_headers(&[(":path", "/hello")]);
        host.response_code = Some(200);
        end(SPLIT, &mut host);
        assert_eq!(
            host.counts,
            [
                Count::Routed(HELLO),
                Count::Response(HELLO, CodeClass::Success)
            ]
        );
        assert_eq!(host.durations, [(HELLO, 2_600)]);
        assert_eq!(host.flags_reads, 0, "flags are read only on a 504");
    }

    #[test]
    fn only_envoys_own_deadline_counts_as_a_timeout() {
        let mut host = ScriptedHost::with_headers(&[(":path", "/hello")]);
        host.response_code = Some(504);
        host.response_flags = Some(UPSTREAM_REQUEST_TIMEOUT_FLAG | 0x100);
        end(SPLIT, &mut host);
        assert_eq!(host.count_of(Count::Timeout(HELLO)), 1);
        assert_eq!(
            host.count_of(Count::Response(HELLO, CodeClass::ServerError)),
            1
        );

        let mut host = ScriptedHost::with_headers(&[(":path", "/hello")]);
        host.response_code = Some(504);
        host.response_flags = Some(0);
        end(SPLIT, &mut host);
        assert_eq!(
            host.count_of(Count::Timeout(HELLO)),
            0,
            "the upstream's 504"
        );
    }

    #[test]
    fn a_stream_without_response_records_only_its_duration() {
        let mut host = ScriptedHost::with_headers(&[(":path", "/hello")]);
        end(SPLIT, &mut host);
        assert_eq!(host.counts, [Count::Routed(HELLO)]);
        assert_eq!(host.durations.len(), 1);
    }

    #[test]
    fn a_failed_response_read_is_a_host_error() {
        let mut host = ScriptedHost::with_headers(&[(":path", "/hello")]);
        host.fail_response_code = true;
        end(SPLIT, &mut host);
        assert_eq!(host.count_of(Count::HostError), 1);
    }

    #[test]
    fn requests_mode_counts_requests_and_does_nothing_at_the_end() {
        let mut requests_only = plan(SPLIT);
        requests_only.metrics = MetricsMode::Requests;
        let mut host = ScriptedHost::with_headers(&[(":path", "/hello")]);
        host.response_code = Some(504);
        host.response_flags = Some(UPSTREAM_REQUEST_TIMEOUT_FLAG);
        end_with(requests_only, &mut host);
        assert_eq!(host.counts, [Count::Routed(HELLO)]);
        assert!(host.durations.is_empty());
    }

    #[test]
    fn an_unrouted_stream_counts_nothing_at_its_end() {
        let mut host = ScriptedHost::with_headers(&[(":path", "/other")]);
        host.response_code = Some(404);
        end(PREFIX_ONLY, &mut host);
        assert_eq!(host.counts, [Count::Unmatched]);
        assert!(host.durations.is_empty());
    }

    const RETRYING: &str = r#"{ "routes": [
        { "name": "hello", "retries": { "attempts": 2, "retry_on": "5xx", "per_try_timeout": "1s" },
          "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#;

    #[test]
    fn a_routes_retries_replace_a_clients() {
        let mut host = ScriptedHost::with_headers(&[
            (":path", "/hello"),
            ("x-envoy-max-retries", "9"),
            ("x-envoy-retry-grpc-on", "cancelled"),
        ]);
        handle(RETRYING, &mut host);
        assert_eq!(host.values("x-envoy-max-retries"), ["2"]);
        assert_eq!(host.values("x-envoy-retry-on"), ["5xx"]);
        assert_eq!(
            host.values("x-envoy-upstream-rq-per-try-timeout-ms"),
            ["1000"]
        );
        assert!(host.values("x-envoy-retry-grpc-on").is_empty());
    }

    #[test]
    fn without_retries_a_clients_retry_headers_are_removed() {
        let mut host = ScriptedHost::with_headers(&[
            (":path", "/hello"),
            ("x-envoy-max-retries", "9"),
            ("x-envoy-retry-on", "5xx"),
            ("x-envoy-upstream-rq-per-try-timeout-ms", "1"),
        ]);
        handle(SPLIT, &mut host);
        for header in [
            "x-envoy-max-retries",
            "x-envoy-retry-on",
            "x-envoy-upstream-rq-per-try-timeout-ms",
        ] {
            assert!(host.values(header).is_empty(), "{header}");
        }
    }

    const GUARDED: &str = r#"{ "metrics": "requests", "routes": [
        { "name": "hello", "guard": { "max_error_ratio": 0.5, "errors": ["5xx", "reset"] },
          "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#;

    /// The guard's tally of a request that ended with `code` and `flags`.
    fn guard_tally(json: &str, code: Option<i64>, flags: Option<u64>) -> crate::guard::Tally {
        let plan = plan(json);
        let mut host = ScriptedHost::with_headers(&[(":path", "/hello")]);
        host.response_code = code;
        host.response_flags = flags;
        let mut stream = Stream::default();
        stream.on_request_headers(&plan, &mut host);
        stream.on_end(&plan, &mut host);
        plan.routes[0].live.take_outcomes()[0]
    }

    #[test]
    fn the_guard_counts_outcomes_by_its_error_classes_even_in_requests_mode() {
        use crate::guard::Tally;
        let ok = Tally {
            requests: 1,
            errors: 0,
        };
        let error = Tally {
            requests: 1,
            errors: 1,
        };
        assert_eq!(guard_tally(GUARDED, Some(200), None), ok);
        assert_eq!(guard_tally(GUARDED, Some(503), None), error);
        assert_eq!(guard_tally(GUARDED, Some(404), None), ok);
        assert_eq!(guard_tally(GUARDED, None, None), error, "a reset");
        let timeouts_only = GUARDED.replace(r#"["5xx", "reset"]"#, r#"["timeout"]"#);
        assert_eq!(guard_tally(&timeouts_only, Some(503), Some(0x10)), ok);
        assert_eq!(
            guard_tally(&timeouts_only, Some(504), Some(0)),
            ok,
            "the upstream's 504"
        );
        assert_eq!(
            guard_tally(
                &timeouts_only,
                Some(504),
                Some(UPSTREAM_REQUEST_TIMEOUT_FLAG)
            ),
            error
        );
        assert_eq!(guard_tally(&timeouts_only, None, None), ok);
        let resets_only = GUARDED.replace(r#"["5xx", "reset"]"#, r#"["reset"]"#);
        assert_eq!(
            guard_tally(&resets_only, Some(503), Some(0x20)),
            error,
            "UF"
        );
        assert_eq!(guard_tally(&resets_only, Some(503), Some(0)), ok);
    }

    #[test]
    fn a_route_without_a_guard_records_no_outcome() {
        assert_eq!(
            guard_tally(SPLIT, Some(503), None),
            crate::guard::Tally::default()
        );
    }

    const FAULTY: &str = r#"{ "routes": [
        { "name": "hello", "fault": { "abort": { "status": 503, "percent": 10 } },
          "destinations": [ { "version": "v1", "weight": 1,
                              "fault": { "delay": { "fixed": "50ms", "percent": 25 } } },
                            { "version": "v2", "weight": 1 } ] } ] }"#;

    #[test]
    fn faults_are_drawn_exactly_per_version_and_counted() {
        let plan = plan(FAULTY);
        let mut host = ScriptedHost::with_headers(&[(":path", "/hello")]);
        let mut verdicts = Vec::new();
        for _ in 0..400 {
            verdicts.push(Stream::default().on_request_headers(&plan, &mut host));
        }
        let held = verdicts
            .iter()
            .filter(|v| **v == Verdict::Held { delay_ms: 50 })
            .count();
        let answered = verdicts.iter().filter(|v| **v == Verdict::Answered).count();
        // 200 requests each: v1 holds 25% (its own fault replaces the route's), v2 aborts 10%.
        assert_eq!((held, answered), (50, 20));
        let v1 = Chosen {
            route: 0,
            destination: 0,
        };
        let v2 = Chosen {
            route: 0,
            destination: 1,
        };
        assert_eq!(host.count_of(Count::Fault(v1, FaultKind::Delay)), 50);
        assert_eq!(host.count_of(Count::Fault(v2, FaultKind::Abort)), 20);
        assert_eq!(
            host.count_of(Count::Routed(v2)),
            200,
            "an aborted request is routed"
        );
        assert_eq!(host.local_replies.len(), 20);
        assert_eq!(
            host.local_replies[0],
            (503, FAULT_BODY.to_string(), FAULT_HEADER.0.to_string())
        );
    }

    #[test]
    fn a_failed_local_reply_lets_the_request_go_on() {
        let always = FAULTY.replace(r#""percent": 10"#, r#""percent": 100"#);
        let plan = plan(&always);
        let mut host = ScriptedHost::with_headers(&[(":path", "/hello")]);
        host.fail_local_reply = true;
        let mut stream = Stream::default();
        stream.on_request_headers(&plan, &mut host); // v1: no abort of its own
        assert_eq!(
            Stream::default().on_request_headers(&plan, &mut host),
            Verdict::Continue
        );
        assert_eq!(host.count_of(Count::HostError), 1);
    }
}
