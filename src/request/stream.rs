//! What the filter does for one HTTP stream, written against a small [`StreamHost`] trait so
//! that every path, the host's failures included, is unit-tested on the host target. The
//! proxy-wasm adapter (`crate::filter`) implements the trait with host calls.
//!
//! Request headers: match a route, follow its rollout to the proxy's clock, choose a destination
//! (an override header's version, else a sticky key's, else the round robin's), write the
//! owned headers (version, cluster, deadline, retries), count, draw a fault. Response headers: set a sticky
//! cookie the request lacked. Stream end: count the response class and a timeout, record the
//! duration.
//!
//! Failing towards safety: a client must never choose a cluster, version or deadline the config
//! does not allow. When the host cannot give the request's headers, the filter cannot know
//! whether the client sent an owned header, so it removes or replaces every one as if it had.
//! When the host fails a write, the request is counted as a host error, not as routed, and the
//! filter removes that owned header rather than leave what the client sent.

use super::host::{Chosen, Count, StreamHost};
use super::host_request::HostRequest;
use crate::metrics::{CodeClass, DestinationMetric, KeySource, PluginMetric};
use crate::plan::{MetricsMode, Plan, RequestView, Route, StickyKey};
use crate::split::fault::FaultAction;
use crate::state::RouteState;

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

/// The `UT` (upstream request timeout) bit of Envoy's `response.flags`: Envoy's own deadline
/// fired, as opposed to a 504 the upstream sent itself.
const UPSTREAM_REQUEST_TIMEOUT_FLAG: u64 = 0x4;

/// Envoy's `response.flags` bits for a reset stream: local reset (`LR`), upstream remote reset
/// (`UR`), upstream connection failure (`UF`) and termination (`UC`).
const RESET_FLAGS: u64 = 0x8 | 0x10 | 0x20 | 0x40;

/// The `DC` bit of Envoy's `response.flags`: the downstream (the client) ended the stream. What
/// follows is no outcome of the version: a client that cuts its requests short must not be
/// able to take a version out of the split, nor hide its failures behind its own impatience.
const DOWNSTREAM_CONNECTION_TERMINATION_FLAG: u64 = 0x4000;

/// Durations are recorded in microseconds: a sidecar-local version answers in well under a
/// millisecond, and deadlines are a few milliseconds, so whole milliseconds would read 0 for
/// the one and blur the other.
const NANOS_PER_MICRO: u64 = 1_000;

/// The state a stream keeps between its request headers and its end.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stream {
    /// Set only when the request was routed with every owned header written.
    pub chosen: Option<Chosen>,
    started_nanos: u64,
    /// The `Set-Cookie` value the response gets: a sticky cookie the request lacked.
    pub set_cookie: Option<String>,
    /// The filter answered it with an injected abort: the version never saw it, so its end
    /// is no outcome of the version for the guard (as Envoy's outlier detection never sees a
    /// fault filter's aborts).
    pub fault_answered: bool,
}

/// Why a request goes where it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    /// The round robin of a route that is not sticky.
    Split,
    Sticky(KeySource),
    Override,
}

/// What a route decided for a request.
struct Choice {
    destination: usize,
    reason: Reason,
    /// The request's override header named no version of the route.
    unknown_override: bool,
    set_cookie: Option<String>,
}

impl Stream {
    /// Handles the request headers: everything the filter decides for a request.
    pub fn on_request_headers(
        &mut self,
        plan: &Plan,
        states: &mut [RouteState],
        host: &mut impl StreamHost,
    ) -> Verdict {
        let mut request = HostRequest::new(host);
        let matched = plan.match_route(&mut request);
        let Some((route_index, route, state)) = matched.and_then(|(route_index, route)| {
            Some((route_index, route, states.get_mut(route_index)?))
        }) else {
            return request.pass_unrouted(plan, matched.is_some());
        };
        // One reading of the clock serves the rollout and the duration.
        let now_nanos = if route.rollout.is_some() || plan.metrics == MetricsMode::Full {
            request.host.now_nanos()
        } else {
            0
        };
        follow_rollout(route_index, route, state, now_nanos, request.host);
        let choice = choose(route, state, &mut request);
        let Some(destination) = route.destinations.get(choice.destination) else {
            // A route without destinations: validation never builds one.
            return request.pass_unrouted(plan, true);
        };
        request.write_owned_headers(plan, destination);
        // A failed read of the headers alone does not stop the request: every owned header was
        // written regardless of what the client sent.
        request.count_failures();
        if request.write_failed {
            return Verdict::Continue;
        }
        let chosen = Chosen {
            route: route_index,
            destination: choice.destination,
        };
        self.chosen = Some(chosen);
        self.started_nanos = now_nanos;
        let host = request.host;
        count_routed(host, chosen, &choice);
        self.set_cookie = choice.set_cookie;
        let verdict = match state.draw_fault(route, chosen.destination) {
            Some(action) => inject_fault(host, chosen, action),
            None => Verdict::Continue,
        };
        self.fault_answered = verdict == Verdict::Answered;
        verdict
    }

    /// Handles the response headers: only a stream that owes its client a sticky cookie does
    /// anything here.
    pub fn on_response_headers(&mut self, host: &mut impl StreamHost) {
        if let Some(cookie) = self.set_cookie.take() {
            if host.add_response_header("set-cookie", &cookie).is_err() {
                host.count(Count::Plugin(PluginMetric::HostErrors));
            }
        }
    }

    /// Handles the end of the stream (after the response, at Envoy's access log): the response
    /// class, a timeout, the duration; and on a guarded route the outcome the guard counts. In
    /// [`MetricsMode::Requests`] only the guard's outcome, and nothing on a route without one.
    pub fn on_end(&self, plan: &Plan, states: &mut [RouteState], host: &mut impl StreamHost) {
        let Some(chosen) = self.chosen else {
            return;
        };
        let route = plan.routes.get(chosen.route);
        let mut state = states.get_mut(chosen.route);
        let guard = route
            .and_then(|route| route.guard.as_ref())
            .filter(|_| !self.fault_answered);
        let full = plan.metrics == MetricsMode::Full;
        if !full && guard.is_none() {
            return;
        }
        if full {
            let elapsed_nanos = host.now_nanos().saturating_sub(self.started_nanos);
            host.record_duration_us(chosen, elapsed_nanos / NANOS_PER_MICRO);
        }
        let mut record = |error: bool| {
            if let Some(state) = state.as_mut() {
                state.record_outcome(chosen.destination, error);
            }
        };
        let code = match host.response_code() {
            Ok(Some(code)) if code > 0 => code,
            // No response at all: the stream was reset, by the client (Envoy's `DC` flag: no
            // outcome of the version, counted apart) or upstream before Envoy could answer
            // (only the guard's "reset" class counts it).
            Ok(_) => {
                match host.response_flags() {
                    Ok(flags)
                        if flags.unwrap_or(0) & DOWNSTREAM_CONNECTION_TERMINATION_FLAG != 0 =>
                    {
                        if full {
                            host.count(Count::Destination(
                                chosen,
                                DestinationMetric::ClientCancelled,
                            ));
                        }
                    }
                    Ok(_) => {
                        if let Some(guard) = guard {
                            record(guard.errors.reset);
                        }
                    }
                    Err(_) => host.count(Count::Plugin(PluginMetric::HostErrors)),
                }
                return;
            }
            Err(_) => {
                host.count(Count::Plugin(PluginMetric::HostErrors));
                return;
            }
        };
        let class = CodeClass::of_code(code);
        if full {
            if let Some(class) = class {
                host.count(Count::Destination(
                    chosen,
                    DestinationMetric::response(class),
                ));
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
                    host.count(Count::Plugin(PluginMetric::HostErrors));
                    0
                }
            }
        } else {
            0
        };
        if flags & DOWNSTREAM_CONNECTION_TERMINATION_FLAG != 0 {
            // The client left while Envoy answered: the answer is its, not the version's.
            if full {
                host.count(Count::Destination(
                    chosen,
                    DestinationMetric::ClientCancelled,
                ));
            }
            return;
        }
        let timed_out = code == 504 && flags & UPSTREAM_REQUEST_TIMEOUT_FLAG != 0;
        if full && timed_out {
            host.count(Count::Destination(chosen, DestinationMetric::Timeouts));
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

/// Where a request of `route` goes: the version its override header names; else, on a sticky
/// route, its key's version (a request without a key gets the round robin's, or with
/// `set_cookie` a fresh key and that key's version, so that its first request and the next ones
/// agree); else the round robin's. The override header is removed from the request.
fn choose<H: StreamHost>(
    route: &Route,
    state: &mut RouteState,
    request: &mut HostRequest<'_, H>,
) -> Choice {
    let mut choice = Choice {
        destination: 0,
        reason: Reason::Split,
        unknown_override: false,
        set_cookie: None,
    };
    if let Some(header) = &route.override_header {
        let sent = request
            .header(header)
            .map(|version| route.destination_of_version(version));
        // Removed also when the headers could not be read: it may be there.
        request.remove_if_sent(header);
        if let Some(named) = sent {
            match named {
                Some(destination) => {
                    choice.destination = destination;
                    choice.reason = Reason::Override;
                    return choice;
                }
                None => choice.unknown_override = true,
            }
        }
    }
    let Some(sticky) = &route.sticky else {
        choice.destination = state.pick();
        return choice;
    };
    let (key, source) = match &sticky.key {
        StickyKey::Header(name) => (request.header(name), KeySource::Header),
        StickyKey::Cookie(name) => (request.cookie(name), KeySource::Cookie),
    };
    let keyed = key
        .filter(|key| !key.is_empty())
        .and_then(|key| state.sticky_destination(route, key));
    if let Some(destination) = keyed {
        choice.destination = destination;
        choice.reason = Reason::Sticky(source);
        return choice;
    }
    choice.reason = Reason::Sticky(KeySource::None);
    let fresh = sticky
        .set_cookie
        .as_ref()
        .and_then(|set_cookie| Some((set_cookie, request.fresh_key()?)));
    match fresh.and_then(|(set_cookie, key)| {
        let destination = state.sticky_destination(route, key.as_bytes())?;
        Some((destination, set_cookie.value(&key)))
    }) {
        Some((destination, cookie)) => {
            choice.destination = destination;
            choice.set_cookie = Some(cookie);
        }
        None => choice.destination = state.pick(),
    }
    choice
}

/// Brings a route's weights to where its rollout stands at `now_nanos` and, when they moved,
/// sets the gauges of the weights and shares requests are split by now. A request does it for
/// its route; the adapter's timer does it for routes without requests.
pub fn follow_rollout(
    route_index: usize,
    route: &Route,
    state: &mut RouteState,
    now_nanos: u64,
    host: &mut impl StreamHost,
) -> bool {
    if !state.follow_rollout(route, now_nanos) {
        return false;
    }
    let shares = state.shares(route);
    for (destination, (weight, share)) in state
        .effective_weights(route)
        .into_iter()
        .zip(shares)
        .enumerate()
    {
        let chosen = Chosen {
            route: route_index,
            destination,
        };
        host.set_weight(chosen, weight);
        host.set_share(chosen, share);
    }
    true
}

/// Counts a routed request: as routed, and by why it went where it went.
fn count_routed(host: &mut impl StreamHost, chosen: Chosen, choice: &Choice) {
    host.count(Count::Destination(chosen, DestinationMetric::Requests));
    match choice.reason {
        Reason::Split => {}
        Reason::Sticky(source) => host.count(Count::Destination(
            chosen,
            DestinationMetric::sticky(source),
        )),
        Reason::Override => host.count(Count::Destination(chosen, DestinationMetric::Overrides)),
    }
    if choice.unknown_override {
        host.count(Count::UnknownOverride {
            route: chosen.route,
        });
    }
}

/// Counts a drawn fault and injects it: an abort answers the request here (or, if the host
/// cannot send the reply, lets it go on), a delay holds it.
fn inject_fault(host: &mut impl StreamHost, chosen: Chosen, action: FaultAction) -> Verdict {
    host.count(Count::Destination(
        chosen,
        DestinationMetric::fault(action.kind()),
    ));
    match action {
        FaultAction::Abort { status } => {
            match host.send_local_reply(status, FAULT_BODY, FAULT_HEADER) {
                Ok(()) => Verdict::Answered,
                Err(_) => {
                    host.count(Count::Plugin(PluginMetric::HostErrors));
                    Verdict::Continue
                }
            }
        }
        FaultAction::Delay { delay_ms } => Verdict::Held { delay_ms },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::compile;
    use crate::plan::{DEADLINE_HEADER, REMOVED_TIMEOUT_HEADERS, RETRY_HEADERS};
    use crate::request::scripted_host::ScriptedHost;
    use crate::split::fault::FaultKind;
    use crate::worker::Worker;
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

    /// The stream's callbacks on a worker, as every host hands them over.
    impl Stream {
        fn request(&mut self, worker: &Worker, host: &mut ScriptedHost) -> Verdict {
            worker.on_request_headers(self, host)
        }

        fn end(&self, worker: &Worker, host: &mut ScriptedHost) {
            worker.on_end(self, host);
        }
    }

    fn plan(json: &str) -> Worker {
        Worker::for_plan(compile(json.as_bytes()).unwrap())
    }

    fn handle(json: &str, host: &mut ScriptedHost) -> Stream {
        let mut stream = Stream::default();
        stream.request(&plan(json), host);
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
        assert_eq!(
            host.counts,
            [Count::Destination(HELLO, DestinationMetric::Requests)]
        );
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
    fn an_owned_header_already_holding_the_value_is_not_written_again() {
        let mut host =
            ScriptedHost::with_headers(&[(":path", "/hello"), ("x-split-version", "v1")]);
        // A write would fail: the request is routed only if none is made.
        host.fail_writes_of = vec!["x-split-version".to_string()];
        let stream = handle(SPLIT, &mut host);
        assert_eq!(stream.chosen, Some(HELLO));
        assert_eq!(host.values("x-split-version"), ["v1"]);
        assert_eq!(host.count_of(Count::Plugin(PluginMetric::HostErrors)), 0);
    }

    #[test]
    fn an_owned_header_sent_twice_with_the_value_is_still_written_once() {
        let mut host = ScriptedHost::with_headers(&[
            (":path", "/hello"),
            ("x-split-version", "v1"),
            ("x-split-version", "v1"),
        ]);
        handle(SPLIT, &mut host);
        assert_eq!(host.values("x-split-version"), ["v1"]);
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
        let plan = Worker::for_plan(
            crate::config::pass_through::pass_through_plan(
                br#"{ "on_invalid_config": "pass_through", "version_header": "x-canary", "routes": 7 }"#,
            )
            .unwrap(),
        );
        let mut host = ScriptedHost::with_headers(&[
            (":path", "/hello"),
            ("x-canary", "v2"),
            ("x-split-cluster", "admin"),
            (DEADLINE_HEADER, "9"),
        ]);
        let mut stream = Stream::default();
        stream.request(&plan, &mut host);
        assert_eq!(stream.chosen, None);
        assert!(host.values("x-canary").is_empty());
        assert!(host.values("x-split-cluster").is_empty());
        assert_eq!(
            host.values(DEADLINE_HEADER),
            ["9"],
            "not owned without a route"
        );
        assert_eq!(
            host.counts,
            [Count::Plugin(PluginMetric::InvalidConfigRequests)]
        );
        stream.end(&plan, &mut host);
        assert_eq!(
            host.counts,
            [Count::Plugin(PluginMetric::InvalidConfigRequests)],
            "nothing at the end"
        );
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
        assert_eq!(host.counts, [Count::Plugin(PluginMetric::Unmatched)]);
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
        assert_eq!(host.count_of(Count::Plugin(PluginMetric::HostErrors)), 1);
        assert_eq!(
            host.count_of(Count::Destination(REST, DestinationMetric::Requests)),
            1
        );
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
        assert_eq!(host.count_of(Count::Plugin(PluginMetric::Unmatched)), 1);
        assert_eq!(host.count_of(Count::Plugin(PluginMetric::HostErrors)), 1);
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
        assert_eq!(host.counts, [Count::Plugin(PluginMetric::HostErrors)]);
    }

    #[test]
    fn a_failed_write_and_removal_are_both_counted() {
        let mut host = ScriptedHost::with_headers(&[(":path", "/hello")]);
        host.fail_writes_of = vec![DEADLINE_HEADER.to_string()];
        host.fail_removes = true;
        let stream = handle(SPLIT, &mut host);
        assert_eq!(stream.chosen, None);
        assert_eq!(host.count_of(Count::Plugin(PluginMetric::HostErrors)), 2);
        assert_eq!(
            host.count_of(Count::Destination(HELLO, DestinationMetric::Requests)),
            0
        );
    }

    fn end(json: &str, host: &mut ScriptedHost) {
        end_with(plan(json), host);
    }

    fn end_with(plan: Worker, host: &mut ScriptedHost) {
        let mut stream = Stream::default();
        host.clock = 1_000_000_000;
        stream.request(&plan, host);
        host.clock += 2_600_000;
        stream.end(&plan, host);
    }

    #[test]
    fn the_end_counts_the_response_class_and_records_the_duration() {
        let mut host = ScriptedHost::with_headers(&[(":path", "/hello")]);
        host.response_code = Some(200);
        end(SPLIT, &mut host);
        assert_eq!(
            host.counts,
            [
                Count::Destination(HELLO, DestinationMetric::Requests),
                Count::Destination(HELLO, DestinationMetric::response(CodeClass::Success))
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
        assert_eq!(
            host.count_of(Count::Destination(HELLO, DestinationMetric::Timeouts)),
            1
        );
        assert_eq!(
            host.count_of(Count::Destination(
                HELLO,
                DestinationMetric::response(CodeClass::ServerError)
            )),
            1
        );

        let mut host = ScriptedHost::with_headers(&[(":path", "/hello")]);
        host.response_code = Some(504);
        host.response_flags = Some(0);
        end(SPLIT, &mut host);
        assert_eq!(
            host.count_of(Count::Destination(HELLO, DestinationMetric::Timeouts)),
            0,
            "the upstream's 504"
        );
    }

    #[test]
    fn a_stream_without_response_records_only_its_duration() {
        let mut host = ScriptedHost::with_headers(&[(":path", "/hello")]);
        end(SPLIT, &mut host);
        assert_eq!(
            host.counts,
            [Count::Destination(HELLO, DestinationMetric::Requests)]
        );
        assert_eq!(host.durations.len(), 1);
    }

    #[test]
    fn a_failed_response_read_is_a_host_error() {
        let mut host = ScriptedHost::with_headers(&[(":path", "/hello")]);
        host.fail_response_code = true;
        end(SPLIT, &mut host);
        assert_eq!(host.count_of(Count::Plugin(PluginMetric::HostErrors)), 1);
    }

    #[test]
    fn requests_mode_counts_requests_and_does_nothing_at_the_end() {
        let mut requests_only = compile(SPLIT.as_bytes()).unwrap();
        requests_only.metrics = MetricsMode::Requests;
        let requests_only = Worker::for_plan(requests_only);
        let mut host = ScriptedHost::with_headers(&[(":path", "/hello")]);
        host.response_code = Some(504);
        host.response_flags = Some(UPSTREAM_REQUEST_TIMEOUT_FLAG);
        end_with(requests_only, &mut host);
        assert_eq!(
            host.counts,
            [Count::Destination(HELLO, DestinationMetric::Requests)]
        );
        assert!(host.durations.is_empty());
    }

    #[test]
    fn an_unrouted_stream_counts_nothing_at_its_end() {
        let mut host = ScriptedHost::with_headers(&[(":path", "/other")]);
        host.response_code = Some(404);
        end(PREFIX_ONLY, &mut host);
        assert_eq!(host.counts, [Count::Plugin(PluginMetric::Unmatched)]);
        assert!(host.durations.is_empty());
    }

    /// v1 70 / v2 30 at `/hello`, with the route fields given.
    fn canary(fields: &str) -> Worker {
        plan(&format!(
            r#"{{ "routes": [ {{ "name": "hello", "match": {{ "prefix": "/hello" }}, {fields}
                 "destinations": [ {{ "version": "v1", "cluster": "app-v1", "weight": 70 }},
                                   {{ "version": "v2", "cluster": "app-v2", "weight": 30 }} ] }} ] }}"#
        ))
    }

    const V1: Chosen = HELLO;
    const V2: Chosen = Chosen {
        route: 0,
        destination: 1,
    };

    /// Sends one request with these headers; the host afterwards, and the stream.
    fn send(plan: &Worker, headers: &[(&str, &str)]) -> (ScriptedHost, Stream) {
        let mut host = ScriptedHost::with_headers(headers);
        let mut stream = Stream::default();
        stream.request(plan, &mut host);
        (host, stream)
    }

    #[test]
    fn an_override_reaches_its_version_at_weight_zero_and_is_removed() {
        let plan = plan(
            r#"{ "routes": [ { "name": "hello", "override_header": "x-canary-version",
                 "destinations": [ { "version": "v1", "weight": 1 }, { "version": "v2", "weight": 0 } ] } ] }"#,
        );
        for _ in 0..3 {
            let (host, stream) = send(&plan, &[(":path", "/"), ("x-canary-version", "v2")]);
            assert_eq!(host.values("x-split-version"), ["v2"]);
            assert!(host.values("x-canary-version").is_empty(), "removed");
            assert_eq!(
                host.counts,
                [
                    Count::Destination(V2, DestinationMetric::Requests),
                    Count::Destination(V2, DestinationMetric::Overrides)
                ]
            );
            assert_eq!(stream.chosen, Some(V2));
        }
    }

    #[test]
    fn when_the_headers_cannot_be_read_the_override_header_is_removed_anyway() {
        let plan = plan(
            r#"{ "routes": [ { "name": "all", "override_header": "x-canary-version",
                 "destinations": [ { "version": "v1", "weight": 1 }, { "version": "v2", "weight": 0 } ] } ] }"#,
        );
        let mut host = ScriptedHost::with_headers(&[("x-canary-version", "v2")]);
        host.fail_read = true;
        Stream::default().request(&plan, &mut host);
        assert!(host.values("x-canary-version").is_empty());
        assert_eq!(
            host.values("x-split-version"),
            ["v1"],
            "not read, not followed"
        );
    }

    #[test]
    fn an_unknown_override_is_counted_removed_and_left_to_the_split() {
        let plan = canary(r#""override_header": "x-canary-version","#);
        let mut seen = Vec::new();
        for _ in 0..10 {
            let (host, _) = send(&plan, &[(":path", "/hello"), ("x-canary-version", "v3")]);
            assert!(host.values("x-canary-version").is_empty(), "removed");
            assert_eq!(host.count_of(Count::UnknownOverride { route: 0 }), 1);
            assert!(host.counts.iter().all(|count| !matches!(
                count,
                Count::Destination(_, DestinationMetric::Overrides)
            )));
            seen.push(host.values("x-split-version").concat());
        }
        // One stream per request, but one plan: its round robin goes on, 7 to 3.
        assert_eq!(seen.iter().filter(|v| *v == "v2").count(), 3);
        let (host, _) = send(&plan, &[(":path", "/hello")]);
        assert_eq!(
            host.counts.len(),
            1,
            "no override header, nothing counted but the request"
        );
    }

    #[test]
    fn a_sticky_header_key_always_gets_its_version_as_the_core_computes_it() {
        let plan = canary(r#""sticky": { "header": "x-user-id" },"#);
        let route = &plan.plan().routes[0];
        let mut versions = std::collections::BTreeSet::new();
        for user in 0..200 {
            let key = format!("user-{user}");
            let expected = &route.destinations[plan.states()[0]
                .sticky_destination(route, key.as_bytes())
                .unwrap()];
            for _ in 0..3 {
                let (host, _) = send(&plan, &[(":path", "/hello"), ("x-user-id", &key)]);
                assert_eq!(host.values("x-split-version"), [expected.version.as_str()]);
                let chosen = Chosen {
                    route: 0,
                    destination: (expected.version == "v2") as usize,
                };
                assert_eq!(
                    host.counts,
                    [
                        Count::Destination(chosen, DestinationMetric::Requests),
                        Count::Destination(chosen, DestinationMetric::sticky(KeySource::Header))
                    ]
                );
            }
            versions.insert(expected.version.clone());
        }
        assert_eq!(versions.len(), 2, "keys are spread over both versions");
    }

    #[test]
    fn a_sticky_cookie_key_is_read_from_any_cookie_header() {
        let plan = canary(r#""sticky": { "cookie": "session" },"#);
        let route = &plan.plan().routes[0];
        for user in 0..50 {
            let key = format!("s{user}");
            let expected = &route.destinations[plan.states()[0]
                .sticky_destination(route, key.as_bytes())
                .unwrap()]
            .version;
            let cookie = format!("theme=dark; session={key}");
            let (host, _) = send(
                &plan,
                &[(":path", "/hello"), ("cookie", "a=b"), ("cookie", &cookie)],
            );
            assert_eq!(&host.values("x-split-version").concat(), expected);
            assert!(matches!(
                host.counts[1],
                Count::Destination(_, DestinationMetric::StickyCookie)
            ));
            assert!(host.response_headers.is_empty(), "no set_cookie configured");
        }
    }

    #[test]
    fn requests_without_a_key_get_the_exact_round_robin() {
        let plan = canary(r#""sticky": { "header": "x-user-id" },"#);
        let mut seen = Vec::new();
        for _ in 0..10 {
            let (host, _) = send(&plan, &[(":path", "/hello"), ("x-user-id", "")]);
            assert!(matches!(
                host.counts[1],
                Count::Destination(_, DestinationMetric::StickyNone)
            ));
            seen.push(host.values("x-split-version").concat());
        }
        assert_eq!(
            seen,
            ["v1", "v2", "v1", "v1", "v1", "v2", "v1", "v1", "v2", "v1"]
        );
    }

    #[test]
    fn a_request_without_the_cookie_gets_one_whose_key_chose_its_version() {
        let plan =
            canary(r#""sticky": { "cookie": "session", "set_cookie": { "max_age": "24h" } },"#);
        let (mut host, mut stream) = send(&plan, &[(":path", "/hello")]);
        let key = "000102030405060708090a0b0c0d0e0f";
        let expected = format!("session={key}; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax");
        assert_eq!(stream.set_cookie.as_deref(), Some(expected.as_str()));
        let version = host.values("x-split-version").concat();
        assert!(matches!(
            host.counts[1],
            Count::Destination(_, DestinationMetric::StickyNone)
        ));
        stream.on_response_headers(&mut host);
        assert_eq!(
            host.response_headers,
            [("set-cookie".to_string(), expected)]
        );
        stream.on_response_headers(&mut host);
        assert_eq!(host.response_headers.len(), 1, "set once");
        // The browser's next requests carry the cookie, land on the same version, get none.
        for _ in 0..5 {
            let cookie = format!("session={key}");
            let (mut host, mut stream) = send(&plan, &[(":path", "/hello"), ("cookie", &cookie)]);
            assert_eq!(host.values("x-split-version").concat(), version);
            stream.on_response_headers(&mut host);
            assert!(host.response_headers.is_empty());
        }
    }

    #[test]
    fn without_randomness_a_cookieless_request_gets_the_round_robin_and_no_cookie() {
        let plan =
            canary(r#""sticky": { "cookie": "session", "set_cookie": { "max_age": "1h" } },"#);
        let mut host = ScriptedHost::with_headers(&[(":path", "/hello")]);
        host.fail_random = true;
        let mut stream = Stream::default();
        stream.request(&plan, &mut host);
        assert_eq!(host.values("x-split-version"), ["v1"]);
        assert_eq!(stream.set_cookie, None);
        assert_eq!(host.count_of(Count::Plugin(PluginMetric::HostErrors)), 1);
        assert_eq!(
            host.count_of(Count::Destination(V1, DestinationMetric::Requests)),
            1
        );
    }

    #[test]
    fn a_failed_cookie_write_is_a_host_error() {
        let plan =
            canary(r#""sticky": { "cookie": "session", "set_cookie": { "max_age": "1h" } },"#);
        let (mut host, mut stream) = send(&plan, &[(":path", "/hello")]);
        host.fail_writes_of = vec!["set-cookie".to_string()];
        stream.on_response_headers(&mut host);
        assert_eq!(host.count_of(Count::Plugin(PluginMetric::HostErrors)), 1);
    }

    #[test]
    fn an_override_beats_a_sticky_key() {
        let plan = canary(r#""sticky": { "header": "x-user-id" }, "override_header": "x-v","#);
        for user in 0..20 {
            let key = format!("user-{user}");
            let (host, _) = send(
                &plan,
                &[(":path", "/hello"), ("x-user-id", &key), ("x-v", "v2")],
            );
            assert_eq!(host.values("x-split-version"), ["v2"]);
        }
    }

    #[test]
    fn a_rollout_follows_the_clock_and_sets_the_weight_gauge_when_it_moves() {
        // v2 at 10%, 20%, 30% for 10 minutes each, from 2026-12-01T10:00:00Z.
        let plan = plan(
            r#"{ "routes": [ { "name": "hello", "sticky": { "header": "x-user-id" },
                 "rollout": { "version": "v2", "start": "2026-12-01T10:10:00Z",
                              "steps": [ { "share": 10, "hold": "10m" }, { "share": 20, "hold": "10m" },
                                         { "share": 30 } ] },
                 "destinations": [ { "version": "v1", "weight": 70 }, { "version": "v2" } ] } ] }"#,
        );
        let start_nanos = 1_796_119_200_000 * 1_000_000;
        let minute = 60 * 1_000_000_000;
        // The version a key gets at a time, and the gauges the request set.
        let request_at = |nanos: u64, key: &str| {
            let mut host = ScriptedHost::with_headers(&[(":path", "/"), ("x-user-id", key)]);
            host.clock = nanos;
            Stream::default().request(&plan, &mut host);
            let shares = host
                .shares_set
                .iter()
                .map(|(_, share)| *share)
                .collect::<Vec<_>>();
            (
                host.values("x-split-version").concat(),
                host.weights_set,
                shares,
            )
        };
        let keys: Vec<String> = (0..300).map(|k| format!("k{k}")).collect();
        let on_v2 = |nanos: u64| {
            keys.iter()
                .filter(|key| request_at(nanos, key).0 == "v2")
                .cloned()
                .collect::<Vec<String>>()
        };
        assert!(on_v2(start_nanos - minute).is_empty(), "before the start");
        let (_, gauge, shares) = request_at(start_nanos + 10 * minute, "k0");
        assert_eq!(
            gauge,
            [(V1, 9), (V2, 1)],
            "the first request of the step sets the route's gauges"
        );
        assert_eq!(shares, [900_000, 100_000]);
        let (_, gauge, _) = request_at(start_nanos + 11 * minute, "k0");
        assert!(gauge.is_empty(), "and only it");
        let mut previous: Vec<String> = Vec::new();
        for step in 1..=3 {
            let now = on_v2(start_nanos + step * 10 * minute);
            assert!(
                previous.iter().all(|key| now.contains(key)),
                "a key left v2 at step {step}"
            );
            assert!(now.len() > previous.len());
            previous = now;
        }
        assert_eq!(plan.states()[0].weights(), [7, 3]);
        let (_, gauge, _) = request_at(start_nanos - minute, "k0");
        assert_eq!(
            gauge,
            [(V1, 1), (V2, 0)],
            "a clock set back moves the weight back"
        );
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
            ("x-envoy-retriable-status-codes", "503"),
            ("x-envoy-retriable-header-names", "content-length"),
            ("x-envoy-hedge-on-per-try-timeout", "true"),
        ]);
        handle(SPLIT, &mut host);
        for header in RETRY_HEADERS {
            assert!(host.values(header).is_empty(), "{header}");
        }
    }

    #[test]
    fn a_clients_retriable_lists_and_hedging_are_replaced_or_removed() {
        let mut host = ScriptedHost::with_headers(&[
            (":path", "/hello"),
            ("x-envoy-retriable-status-codes", "418"),
            ("x-envoy-retriable-header-names", "content-length"),
            ("x-envoy-hedge-on-per-try-timeout", "true"),
        ]);
        handle(
            r#"{ "routes": [ { "name": "hello",
                 "retries": { "attempts": 2, "retry_on": "retriable-status-codes",
                              "retriable_status_codes": [503] },
                 "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#,
            &mut host,
        );
        assert_eq!(host.values("x-envoy-retriable-status-codes"), ["503"]);
        assert!(host.values("x-envoy-retriable-header-names").is_empty());
        assert!(host.values("x-envoy-hedge-on-per-try-timeout").is_empty());
    }

    const GUARDED: &str = r#"{ "metrics": "requests", "routes": [
        { "name": "hello", "guard": { "max_error_ratio": 0.5, "errors": ["5xx", "reset"] },
          "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#;

    /// The guard's tally of a request that ended with `code` and `flags`.
    fn guard_tally(
        json: &str,
        code: Option<i64>,
        flags: Option<u64>,
    ) -> crate::split::guard::Tally {
        let plan = plan(json);
        let mut host = ScriptedHost::with_headers(&[(":path", "/hello")]);
        host.response_code = code;
        host.response_flags = flags;
        let mut stream = Stream::default();
        stream.request(&plan, &mut host);
        stream.end(&plan, &mut host);
        plan.with_state_mut(0, RouteState::take_outcomes).unwrap()[0]
    }

    #[test]
    fn an_injected_abort_is_no_outcome_for_the_guard() {
        let plan = plan(
            r#"{ "routes": [
            { "name": "hello", "guard": { "max_error_ratio": 0.5 },
              "fault": { "abort": { "status": 503, "percent": 100 } },
              "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#,
        );
        let mut host = ScriptedHost::with_headers(&[(":path", "/hello")]);
        host.response_code = Some(503);
        let mut stream = Stream::default();
        assert_eq!(stream.request(&plan, &mut host), Verdict::Answered);
        stream.end(&plan, &mut host);
        let tally = plan.with_state_mut(0, RouteState::take_outcomes).unwrap()[0];
        assert_eq!(tally, crate::split::guard::Tally::default());
    }

    #[test]
    fn a_stream_the_client_ended_is_no_outcome_of_the_version() {
        use crate::split::guard::Tally;
        let dc = Some(DOWNSTREAM_CONNECTION_TERMINATION_FLAG);
        assert_eq!(
            guard_tally(GUARDED, None, dc),
            Tally::default(),
            "no response"
        );
        assert_eq!(guard_tally(GUARDED, Some(0), dc), Tally::default());
        let dc_and_reset = Some(DOWNSTREAM_CONNECTION_TERMINATION_FLAG | 0x10);
        assert_eq!(
            guard_tally(GUARDED, Some(503), dc_and_reset),
            Tally::default()
        );
        // Counted apart, with every metric.
        let plan = plan(&GUARDED.replace(r#""metrics": "requests","#, ""));
        let mut host = ScriptedHost::with_headers(&[(":path", "/hello")]);
        host.response_code = None;
        host.response_flags = dc;
        let mut stream = Stream::default();
        stream.request(&plan, &mut host);
        stream.end(&plan, &mut host);
        let cancelled = Count::Destination(HELLO, DestinationMetric::ClientCancelled);
        assert_eq!(host.count_of(cancelled), 1);
        assert_eq!(
            plan.with_state_mut(0, RouteState::take_outcomes).unwrap()[0],
            Tally::default()
        );
    }

    #[test]
    fn a_clients_timeout_headers_are_removed_on_every_routed_request() {
        let mut host = ScriptedHost::with_headers(&[
            (":path", "/other"),
            (DEADLINE_HEADER, "1"),
            ("x-envoy-upstream-rq-timeout-alt-response", "204"),
            ("x-envoy-upstream-stream-duration-ms", "1"),
            ("x-envoy-expected-rq-timeout-ms", "1"),
        ]);
        let stream = handle(SPLIT, &mut host);
        assert_eq!(stream.chosen, Some(REST), "a route without a timeout");
        for header in [DEADLINE_HEADER].into_iter().chain(REMOVED_TIMEOUT_HEADERS) {
            assert!(host.values(header).is_empty(), "{header}");
        }
    }

    #[test]
    fn the_guard_counts_outcomes_by_its_error_classes_even_in_requests_mode() {
        use crate::split::guard::Tally;
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
            crate::split::guard::Tally::default()
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
            verdicts.push(Stream::default().request(&plan, &mut host));
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
        assert_eq!(
            host.count_of(Count::Destination(
                v1,
                DestinationMetric::fault(FaultKind::Delay)
            )),
            50
        );
        assert_eq!(
            host.count_of(Count::Destination(
                v2,
                DestinationMetric::fault(FaultKind::Abort)
            )),
            20
        );
        assert_eq!(
            host.count_of(Count::Destination(v2, DestinationMetric::Requests)),
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
        stream.request(&plan, &mut host); // v1: no abort of its own
        assert_eq!(
            Stream::default().request(&plan, &mut host),
            Verdict::Continue
        );
        assert_eq!(host.count_of(Count::Plugin(PluginMetric::HostErrors)), 1);
    }
}
