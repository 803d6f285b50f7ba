//! The stream's promises on hostile requests: owned headers hold exactly the destination's
//! values, every failed host call is counted once, headers the filter does not own are left
//! as they were, a fault is counted and answered as drawn.

use super::requests::{sample_plan, HostileRequest, HostileStreams};
use traffic_split::metrics::{CodeClass, DestinationMetric, PluginMetric};
use traffic_split::plan::{Destination, MetricsMode, Plan, DEADLINE_HEADER, RETRY_HEADERS};
use traffic_split::request::scripted_host::ScriptedHost;
use traffic_split::request::{Chosen, Count, Stream, Verdict};
use traffic_split::split::fault::FaultKind;
use traffic_split::state::RouteState;

/// Runs every request through a fresh stream and checks the stream's promises.
pub fn check_streams(case: &HostileStreams) {
    let plan = sample_plan(case.config);
    let mut states = RouteState::for_plan(&plan);
    for request in &case.requests {
        check_request(&plan, &mut states, request);
    }
}

/// The values a routed request's retry headers ([`RETRY_HEADERS`], in order) must have: the
/// destination's retries (never hedging), or none.
fn expected_retry_values(destination: &Destination) -> [Option<&str>; RETRY_HEADERS.len()] {
    match &destination.retries {
        Some(retries) => [
            Some(retries.max_retries.as_str()),
            Some(retries.retry_on.as_str()),
            retries.per_try_timeout_ms.as_deref(),
            retries.grpc_retry_on.as_deref(),
            retries.retriable_status_codes.as_deref(),
            retries.retriable_header_names.as_deref(),
            None,
        ],
        None => [None; RETRY_HEADERS.len()],
    }
}

fn values_of<'h>(headers: &'h [(Vec<u8>, Vec<u8>)], name: &str) -> Vec<&'h [u8]> {
    headers
        .iter()
        .filter(|(key, _)| key == name.as_bytes())
        .map(|(_, value)| value.as_slice())
        .collect()
}

pub fn check_request(plan: &Plan, states: &mut [RouteState], request: &HostileRequest) {
    // Every header the filter may write or remove: the plan's one list.
    let owned: Vec<&str> = plan.owned_headers().collect();
    let mut host = ScriptedHost {
        headers: request
            .headers
            .iter()
            .map(|(name, value)| (name.bytes(), value.bytes()))
            .collect(),
        fail_read: request.fail_read,
        fail_writes_of: owned
            .iter()
            .enumerate()
            .filter(|(bit, _)| u32::from(request.fail_writes) & (1u32 << bit) != 0)
            .map(|(_, name)| name.to_string())
            .collect(),
        fail_removes: request.fail_removes,
        fail_response_code: request.fail_response_code,
        fail_response_flags: request.fail_response_flags,
        fail_local_reply: request.fail_local_reply,
        response_code: request.response_code,
        response_flags: request.response_flags,
        ..ScriptedHost::default()
    };
    let sent = host.headers.clone();
    // Override headers are removed on the routes that have one.
    let overrides: Vec<&str> = plan
        .routes
        .iter()
        .filter_map(|route| route.override_header.as_deref())
        .collect();
    let mut stream = Stream::default();
    let verdict = stream.on_request_headers(plan, states, &mut host);

    assert!(host.reads <= 1, "the header map is read at most once");
    assert_eq!(
        host.count_of(Count::Plugin(PluginMetric::HostErrors)),
        host.failed_calls,
        "every failed host call is counted once"
    );
    let except = |headers: &[(Vec<u8>, Vec<u8>)], names: &[&str]| -> Vec<(Vec<u8>, Vec<u8>)> {
        headers
            .iter()
            .filter(|(name, _)| !names.iter().any(|owned| name == owned.as_bytes()))
            .cloned()
            .collect()
    };
    let all_owned: Vec<&str> = owned.iter().copied().chain(overrides).collect();
    assert_eq!(
        except(&host.headers, &all_owned),
        except(&sent, &all_owned),
        "headers the filter does not own are left as they were"
    );
    let routed: Vec<Chosen> = host
        .counts
        .iter()
        .filter_map(|count| match count {
            Count::Destination(chosen, DestinationMetric::Requests) => Some(*chosen),
            _ => None,
        })
        .collect();
    let unmatched = host.count_of(Count::Plugin(PluginMetric::Unmatched))
        + host.count_of(Count::Plugin(PluginMetric::InvalidConfigRequests));
    if plan.pass_through {
        assert_eq!(host.count_of(Count::Plugin(PluginMetric::Unmatched)), 0);
    } else {
        assert_eq!(
            host.count_of(Count::Plugin(PluginMetric::InvalidConfigRequests)),
            0
        );
    }
    let read_failed = usize::from(request.fail_read && host.reads == 1);
    // An abort whose local reply failed: counted, and the request goes on routed.
    let reply_failed = usize::from(
        request.fail_local_reply
            && host.counts.iter().any(|count| {
                matches!(count, Count::Destination(_, DestinationMetric::FaultsAbort))
            }),
    );
    let writes_failed = host.failed_calls - read_failed - reply_failed;
    match stream.chosen {
        Some(chosen) => {
            assert_eq!(
                writes_failed, 0,
                "a request with a failed write is not routed"
            );
            assert_eq!(routed, [chosen], "a routed request is counted once");
            // A fault drawn is counted; an abort is answered, unless the reply failed.
            let faults: Vec<&Count> = host
                .counts
                .iter()
                .filter(|count| {
                    matches!(
                        count,
                        Count::Destination(
                            _,
                            DestinationMetric::FaultsAbort | DestinationMetric::FaultsDelay
                        )
                    )
                })
                .collect();
            match verdict {
                Verdict::Continue => {
                    assert!(host.local_replies.is_empty());
                    assert!(
                        faults.is_empty() || request.fail_local_reply,
                        "a fault that neither answered nor held: {faults:?}"
                    );
                }
                Verdict::Answered => {
                    assert_eq!(
                        faults,
                        [&Count::Destination(
                            chosen,
                            DestinationMetric::fault(FaultKind::Abort)
                        )]
                    );
                    assert_eq!(host.local_replies.len(), 1);
                }
                Verdict::Held { .. } => {
                    assert_eq!(
                        faults,
                        [&Count::Destination(
                            chosen,
                            DestinationMetric::fault(FaultKind::Delay)
                        )]
                    );
                }
            }
            assert_eq!(unmatched, 0);
            let destination = &plan.routes[chosen.route].destinations[chosen.destination];
            assert_eq!(
                host.raw_values(&plan.version_header),
                [destination.version.as_bytes()],
                "the version header holds the destination's version, and only it"
            );
            let cluster = host.raw_values(&plan.cluster_header);
            match &destination.cluster {
                Some(expected) => assert_eq!(cluster, [expected.as_bytes()]),
                None => assert!(cluster.is_empty(), "no cluster header without a cluster"),
            }
            let deadline = host.raw_values(DEADLINE_HEADER);
            match &destination.deadline_header_value {
                Some(expected) => assert_eq!(deadline, [expected.as_bytes()]),
                // Owned only on routes with a timeout (a documented limit).
                None => assert_eq!(deadline, values_of(&sent, DEADLINE_HEADER)),
            }
            for (header, expected) in RETRY_HEADERS.iter().zip(expected_retry_values(destination)) {
                let values = host.raw_values(header);
                match expected {
                    Some(expected) => assert_eq!(values, [expected.as_bytes()], "{header}"),
                    None => assert!(values.is_empty(), "a client's {header} is removed"),
                }
            }
        }
        None => {
            assert!(
                routed.is_empty(),
                "an unrouted request is not counted as routed"
            );
            assert_eq!(
                verdict,
                Verdict::Continue,
                "only a routed request meets a fault"
            );
            assert!(unmatched <= 1);
            if writes_failed == 0 {
                assert_eq!(
                    unmatched, 1,
                    "without a host failure, unrouted means unmatched"
                );
                for name in [&plan.version_header, &plan.cluster_header] {
                    assert!(
                        host.raw_values(name).is_empty(),
                        "an unmatched request keeps no {name}"
                    );
                }
                let routing = [plan.version_header.as_str(), &plan.cluster_header];
                assert_eq!(
                    except(&host.headers, &routing),
                    except(&sent, &routing),
                    "an unmatched request keeps its deadline and retry headers"
                );
            }
        }
    }

    let counted = host.counts.len();
    let failed_before_end = host.failed_calls;
    host.clock = host.clock.saturating_add(request.elapsed_nanos);
    stream.on_end(plan, states, &mut host);
    let at_end = &host.counts[counted..];
    let end_failures = host.failed_calls - failed_before_end;
    assert_eq!(
        at_end
            .iter()
            .filter(|&&count| count == Count::Plugin(PluginMetric::HostErrors))
            .count(),
        end_failures,
        "every failed host call at the end is counted once"
    );
    let ended_with: Vec<&Count> = at_end
        .iter()
        .filter(|&&count| count != Count::Plugin(PluginMetric::HostErrors))
        .collect();
    match stream.chosen {
        Some(chosen) if plan.metrics == MetricsMode::Full => {
            assert_eq!(
                host.durations.len(),
                1,
                "a routed stream records its duration"
            );
            let class = match request.response_code {
                Some(code) if !request.fail_response_code => CodeClass::of_code(code),
                _ => None,
            };
            let responses: Vec<&Count> = at_end
                .iter()
                .filter(|count| {
                    matches!(
                        count,
                        Count::Destination(
                            _,
                            DestinationMetric::Responses2xx
                                | DestinationMetric::Responses3xx
                                | DestinationMetric::Responses4xx
                                | DestinationMetric::Responses5xx
                        )
                    )
                })
                .collect();
            match class {
                Some(class) => assert_eq!(
                    responses,
                    [&Count::Destination(
                        chosen,
                        DestinationMetric::response(class)
                    )]
                ),
                None => assert!(responses.is_empty()),
            }
            let timed_out =
                at_end.contains(&Count::Destination(chosen, DestinationMetric::Timeouts));
            let envoys_deadline = request.response_code == Some(504)
                && !request.fail_response_code
                && !request.fail_response_flags
                && request.response_flags.is_some_and(|flags| flags & 0x4 != 0);
            assert_eq!(
                timed_out, envoys_deadline,
                "a timeout is Envoy's deadline only"
            );
        }
        Some(_) => {
            // Requests mode: the guard may read the response, and counts only its failures.
            assert!(ended_with.is_empty(), "counted at the end: {ended_with:?}");
            assert!(host.durations.is_empty());
        }
        None => {
            assert!(
                at_end.is_empty(),
                "nothing is counted at the end: {at_end:?}"
            );
            assert!(host.durations.is_empty());
        }
    }
}
