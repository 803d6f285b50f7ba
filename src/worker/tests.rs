//! The worker on the host: the timer's arithmetic, the metric-definition rule, the guard's
//! merge loop across workers sharing one store, and the guard's shared-store key.

use super::guard::guard_state_key;
use super::memory_host::{MemoryHost, UNAVAILABLE};
use super::*;
use crate::config::compile;
use crate::metrics::MetricKind;
use crate::request::scripted_host::ScriptedHost;
use crate::split::guard::memory_store::MemoryStore;
use crate::split::guard::GuardEvent;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// 2026-12-01T10:00:00Z, in ms.
const START_MS: u64 = 1_796_119_200_000;

const GUARDED: &str = r#"{ "routes": [ { "name": "hello", "match": { "prefix": "/hello" },
    "guard": { "max_error_ratio": 0.5, "min_requests": 10, "cooldown": "1m" },
    "destinations": [ { "version": "v1", "cluster": "app-v1", "weight": 50 },
                      { "version": "v2", "cluster": "app-v2", "weight": 50 } ] } ] }"#;

fn configure(json: &str, host: &MemoryHost<'_>, defined: &mut DefinedMetrics) -> Worker {
    Worker::configure(
        json.as_bytes(),
        "plugin",
        Capabilities::default(),
        host,
        defined,
    )
    .unwrap()
}

/// Sends one request to `/hello` through `worker` that ends with `code`; its version.
fn serve(worker: &Worker, code: i64) -> String {
    let mut host = ScriptedHost::with_headers(&[(":path", "/hello"), (":method", "GET")]);
    let mut stream = Stream::default();
    worker.on_request_headers(&mut stream, &mut host);
    host.response_code = Some(code);
    worker.on_end(&stream, &mut host);
    host.values("x-split-version").concat()
}

/// The tick tripped v2 (destination 1) of route 0, and made no other decision.
fn assert_v2_tripped(report: &TickReport) {
    assert!(
        matches!(
            report.guard_events.as_slice(),
            [RouteEvent {
                route: 0,
                event: GuardEvent::Tripped { destination: 1, .. }
            }]
        ),
        "{report:?}"
    );
}

#[test]
fn the_timer_waits_for_the_earliest_of_the_guard_the_rollouts_and_held_requests() {
    let host = MemoryHost::at_ms(START_MS);
    let timer = Timer::default();
    timer.set_needs(
        TickNeeds {
            guarded: false,
            rollouts: true,
        },
        START_MS,
        &host,
    );
    assert_eq!(timer.period_ms(), 1_000, "a rollout ticks every second");
    timer.set_needs(
        TickNeeds {
            guarded: true,
            rollouts: true,
        },
        START_MS,
        &host,
    );
    assert_eq!(timer.period_ms(), 250, "the guard's tick is the earlier");
    timer.hold(7, START_MS + 30, START_MS, &host);
    assert_eq!(
        timer.period_ms(),
        30,
        "a held request's release is earlier still"
    );
    assert_eq!(
        *host.periods.borrow(),
        [1_000, 0, 250, 0, 30],
        "a running timer is stopped before a new period, which Envoy applies only afresh"
    );
    assert!(timer.due(START_MS + 29).is_empty());
    assert_eq!(timer.due(START_MS + 30), [7]);
    assert!(timer.due(START_MS + 31).is_empty(), "released once");
    timer.arm(START_MS + 30, &host);
    assert_eq!(timer.period_ms(), 250);
    timer.hold(8, START_MS + 100, START_MS + 30, &host);
    timer.forget(8);
    assert!(
        timer.due(START_MS + 200).is_empty(),
        "a forgotten stream is never resumed"
    );
    timer.set_needs(TickNeeds::default(), START_MS + 200, &host);
    assert_eq!(timer.period_ms(), 0, "nothing to wait for: stopped");
    assert_eq!(host.periods.borrow().last(), Some(&0));
}

#[test]
fn a_held_request_already_due_still_waits_a_millisecond() {
    let host = MemoryHost::at_ms(START_MS);
    let timer = Timer::default();
    timer.hold(1, START_MS - 5, START_MS, &host);
    assert_eq!(timer.period_ms(), 1, "never 0, which would stop the timer");
}

#[test]
fn a_configuration_defines_only_the_metrics_its_routes_can_move() {
    let host = MemoryHost::at_ms(START_MS);
    let mut defined = DefinedMetrics::default();
    configure(
        r#"{ "metrics": "requests", "routes": [
            { "name": "plain", "destinations": [ { "version": "v1", "weight": 1 } ] },
            { "name": "canary", "override_header": "x-canary",
              "sticky": { "header": "x-user" },
              "guard": { "max_error_ratio": 0.5 },
              "destinations": [ { "version": "v1", "weight": 1 },
                                { "version": "v2", "weight": 1,
                                  "fault": { "abort": { "percent": 1, "status": 503 } } } ] } ] }"#,
        &host,
        &mut defined,
    );
    let names: Vec<String> = host
        .defined
        .borrow()
        .iter()
        .map(|(_, n)| n.clone())
        .collect();
    let has = |name: &str| names.iter().any(|defined| defined == name);
    assert!(has(
        "traffic_split.plugin.plugin.route.plain.version.v1.requests_total"
    ));
    assert!(has(
        "traffic_split.plugin.plugin.route.plain.version.v1.weight"
    ));
    assert!(
        !has("traffic_split.plugin.plugin.route.plain.version.v1.code_class.2xx.responses_total"),
        "requests mode counts no responses"
    );
    assert!(!has(
        "traffic_split.plugin.plugin.route.plain.version.v1.guard_trips_total"
    ));
    assert!(has(
        "traffic_split.plugin.plugin.route.canary.version.v2.guard_latched"
    ));
    assert!(has(
        "traffic_split.plugin.plugin.route.canary.version.v2.fault.abort.faults_total"
    ));
    assert!(
        !has("traffic_split.plugin.plugin.route.canary.version.v1.fault.abort.faults_total"),
        "v1 injects no fault"
    );
    assert!(!has(
        "traffic_split.plugin.plugin.route.canary.version.v2.fault.delay.faults_total"
    ));
    assert!(has(
        "traffic_split.plugin.plugin.route.canary.version.v1.source.header.sticky_total"
    ));
    assert!(
        !has("traffic_split.plugin.plugin.route.canary.version.v1.source.cookie.sticky_total"),
        "a header-keyed route never counts a cookie"
    );
    assert!(has(
        "traffic_split.plugin.plugin.route.canary.version.unknown.overrides_total"
    ));
    assert!(!has(
        "traffic_split.plugin.plugin.invalid_config_requests_total"
    ));
    assert!(has("traffic_split.plugin.plugin.host_errors_total"));
    let kind_of = |name: &str| {
        host.defined
            .borrow()
            .iter()
            .find(|(_, defined)| defined == name)
            .map(|(kind, _)| *kind)
    };
    assert_eq!(
        kind_of("traffic_split.plugin.plugin.route.plain.version.v1.weight"),
        Some(MetricKind::Gauge)
    );
    // A push of the same routes defines nothing again: Envoy never frees a metric's name.
    let before = host.defined.borrow().len();
    configure(
        r#"{ "routes": [ { "name": "plain", "destinations": [ { "version": "v1", "weight": 1 } ] } ] }"#,
        &host,
        &mut defined,
    );
    let added: Vec<String> = host.defined.borrow()[before..]
        .iter()
        .map(|(_, name)| name.clone())
        .collect();
    assert!(
        added.iter().all(|name| name.contains("responses_total")
            || name.contains("timeouts_total")
            || name.contains("client_cancelled_total")
            || name.contains("duration")),
        "only what full metrics add: {added:?}"
    );
    assert_eq!(defined.len(), host.defined.borrow().len());
}

#[test]
fn an_invalid_config_is_refused_or_passed_through_as_it_asks() {
    let host = MemoryHost::at_ms(START_MS);
    let mut defined = DefinedMetrics::default();
    let refused = Worker::configure(
        br#"{ "routes": [ { "name": "a", "destinations": [ { "version": "v1", "weight": -1 } ] } ] }"#,
        "p",
        Capabilities::default(),
        &host,
        &mut defined,
    )
    .unwrap_err();
    assert!(
        refused.0.contains("routes[0].destinations[0].weight"),
        "{refused}"
    );
    let passing = Worker::configure(
        br#"{ "on_invalid_config": "pass_through",
              "routes": [ { "name": "a", "destinations": [ { "version": "v1", "weight": -1 } ] } ] }"#,
        "p",
        Capabilities::default(),
        &host,
        &mut defined,
    )
    .unwrap();
    assert!(passing.plan().pass_through);
    assert!(host
        .id_of("traffic_split.plugin.p.invalid_config_requests_total")
        .is_some());
}

#[test]
fn a_host_without_the_response_path_refuses_a_config_that_needs_it() {
    let host = MemoryHost::at_ms(START_MS);
    let refused = Worker::configure(
        GUARDED.as_bytes(),
        "p",
        Capabilities {
            response_path: false,
            catches_panics: false,
        },
        &host,
        &mut DefinedMetrics::default(),
    )
    .unwrap_err();
    assert!(
        refused.0.contains("traffic_split_requests.wasm"),
        "{refused}"
    );
}

#[test]
fn a_trip_merged_by_one_worker_takes_the_version_out_on_every_worker() {
    let store = MemoryStore::new();
    let one = MemoryHost::sharing(&store, START_MS);
    let two = MemoryHost::sharing(&store, START_MS);
    let mut defined_one = DefinedMetrics::default();
    let mut defined_two = DefinedMetrics::default();
    let first = configure(GUARDED, &one, &mut defined_one);
    let second = configure(GUARDED, &two, &mut defined_two);
    assert!(first.tick_needs().guarded);
    // The round robin alternates v1 and v2: every v2 request fails.
    for round in 0..20 {
        let code = if round % 2 == 0 { 200 } else { 503 };
        serve(&first, code);
    }
    one.set_ms(START_MS + 250);
    let report = first.tick(&one);
    assert_eq!(report.failed_merges, 0);
    assert_v2_tripped(&report);
    assert_eq!(
        one.value_of("traffic_split.plugin.plugin.route.hello.version.v2.guard_trips_total"),
        1
    );
    assert_eq!(
        one.value_of("traffic_split.plugin.plugin.route.hello.version.v2.guard_ejected"),
        1
    );
    assert_eq!(
        one.value_of("traffic_split.plugin.plugin.route.hello.version.v2.weight"),
        0
    );
    assert!(
        (0..10).all(|_| serve(&first, 200) == "v1"),
        "v2 is out here"
    );
    // The other worker takes the decision in at its own tick, and makes none itself.
    assert_eq!(serve(&second, 200), "v1");
    assert_eq!(serve(&second, 200), "v2", "not yet merged");
    two.set_ms(START_MS + 300);
    let report = second.tick(&two);
    assert!(report.guard_events.is_empty(), "{report:?}");
    assert!(
        (0..10).all(|_| serve(&second, 200) == "v1"),
        "v2 is out there too"
    );
    assert_eq!(
        two.value_of("traffic_split.plugin.plugin.route.hello.version.v2.guard_ejected"),
        1
    );
    // A push of the same guard carries the decision over from its first request.
    let pushed = configure(GUARDED, &two, &mut defined_two);
    assert!((0..10).all(|_| serve(&pushed, 200) == "v1"));
}

#[test]
fn outcomes_handed_over_by_a_quiet_worker_trip_the_guard_at_another_workers_tick() {
    let store = MemoryStore::new();
    let quiet = MemoryHost::sharing(&store, START_MS);
    let main = MemoryHost::sharing(&store, START_MS);
    let worker = configure(GUARDED, &quiet, &mut DefinedMetrics::default());
    let ticker = configure(GUARDED, &main, &mut DefinedMetrics::default());
    let empty = worker.handed_outcomes();
    let mut handed = empty.clone();
    // A burst on the worker, handed over stream by stream; it then serves nothing and never
    // ticks.
    for round in 0..20 {
        let code = if round % 2 == 0 { 200 } else { 503 };
        serve(&worker, code);
        worker.hand_over_outcomes(&mut handed);
    }
    assert_ne!(handed, empty);
    // Handed over, they are no longer the worker's: its own tick would merge nothing.
    quiet.set_ms(START_MS + 250);
    let report = worker.tick(&quiet);
    assert!(report.guard_events.is_empty(), "{report:?}");
    // The ticking worker takes them in once, and its tick trips v2.
    ticker.take_in_outcomes(&mut handed);
    assert_eq!(handed, empty);
    main.set_ms(START_MS + 250);
    let report = ticker.tick(&main);
    assert_v2_tripped(&report);
    assert_eq!(
        main.value_of("traffic_split.plugin.plugin.route.hello.version.v2.guard_trips_total"),
        1
    );
    // The quiet worker takes the decision in at its next tick.
    quiet.set_ms(START_MS + 500);
    worker.tick(&quiet);
    assert!((0..10).all(|_| serve(&worker, 200) == "v1"));
}

#[test]
fn a_route_without_a_guard_hands_nothing_over() {
    let store = MemoryStore::new();
    let host = MemoryHost::sharing(&store, START_MS);
    let mut defined = DefinedMetrics::default();
    let unguarded = configure(
        r#"{ "routes": [{ "name": "hello", "match": { "prefix": "/" },
             "destinations": [{ "version": "v1", "cluster": "c1", "weight": 1 }] }] }"#,
        &host,
        &mut defined,
    );
    let mut handed = unguarded.handed_outcomes();
    serve(&unguarded, 503);
    unguarded.hand_over_outcomes(&mut handed);
    assert_eq!(handed, unguarded.handed_outcomes());
}

#[test]
fn a_failed_merge_keeps_its_outcomes_for_the_next_tick_and_is_counted() {
    let host = MemoryHost::at_ms(START_MS);
    let worker = configure(GUARDED, &host, &mut DefinedMetrics::default());
    for round in 0..20 {
        serve(&worker, if round % 2 == 0 { 200 } else { 503 });
    }
    host.fail_shared.set(true);
    host.set_ms(START_MS + 250);
    let report = worker.tick(&host);
    assert_eq!(report.failed_merges, 1);
    assert!(report.guard_events.is_empty());
    assert_eq!(
        host.value_of("traffic_split.plugin.plugin.host_errors_total"),
        1
    );
    assert_eq!(UNAVAILABLE.0, 10);
    host.fail_shared.set(false);
    host.set_ms(START_MS + 500);
    let report = worker.tick(&host);
    assert_eq!(
        report.guard_events.len(),
        1,
        "the kept outcomes trip it now"
    );
}

#[test]
fn a_rollouts_gauges_move_on_a_tick_without_requests() {
    let host = MemoryHost::at_ms(START_MS - 1);
    let worker = configure(
        r#"{ "routes": [ { "name": "r",
             "rollout": { "version": "v2", "start": "2026-12-01T10:00:00Z",
                          "steps": [ { "share": 25 } ] },
             "destinations": [ { "version": "v1", "weight": 50 }, { "version": "v2" } ] } ] }"#,
        &host,
        &mut DefinedMetrics::default(),
    );
    assert!(worker.tick_needs().rollouts);
    assert_eq!(
        host.value_of("traffic_split.plugin.plugin.route.r.version.v2.share"),
        0
    );
    host.set_ms(START_MS + 60_000);
    worker.tick(&host);
    assert_eq!(
        host.value_of("traffic_split.plugin.plugin.route.r.version.v2.share"),
        250_000
    );
    assert_eq!(
        host.value_of("traffic_split.plugin.plugin.route.r.version.v1.share"),
        750_000
    );
    assert_eq!(
        host.value_of("traffic_split.plugin.plugin.route.r.version.v2.weight"),
        1
    );
}

fn keys(guard: &str) -> Vec<Option<String>> {
    let plan = compile(
        format!(
            r#"{{ "routes": [ {{ "name": "r", "guard": {guard},
                 "destinations": [ {{ "version": "v1", "weight": 1 }}, {{ "version": "v2", "weight": 1 }} ] }},
               {{ "name": "plain", "destinations": [ {{ "version": "v1", "weight": 1 }} ] }} ] }}"#
        )
        .as_bytes(),
    )
    .unwrap();
    plan.routes
        .iter()
        .map(|route| guard_state_key("p", route))
        .collect()
}

#[test]
fn the_guard_state_carries_over_a_push_only_when_the_guard_is_unchanged() {
    let before = keys(r#"{ "max_error_ratio": 0.2, "cooldown": "2m" }"#);
    assert_eq!(before[1], None, "an unguarded route has no state");
    assert_eq!(
        before,
        keys(r#"{ "cooldown": "2m", "max_error_ratio": 0.2, "min_requests": 20 }"#),
        "the same guard, defaults written out"
    );
    assert_ne!(
        before,
        keys(r#"{ "max_error_ratio": 0.2, "cooldown": "1m" }"#)
    );
    assert_ne!(
        before,
        keys(r#"{ "max_error_ratio": 0.3, "cooldown": "2m" }"#)
    );
    let key = before[0].as_deref().unwrap();
    assert!(
        key.starts_with("traffic-split/guard/p/r/v1,v2/"),
        "by plugin, route and versions: {key}"
    );
}

#[test]
fn two_plugins_on_one_vm_define_metrics_of_their_own() {
    let host = MemoryHost::at_ms(START_MS);
    let mut defined = DefinedMetrics::default();
    let mut configure_plugin = |plugin: &str| {
        Worker::configure(
            GUARDED.as_bytes(),
            plugin,
            Capabilities::default(),
            &host,
            &mut defined,
        )
        .unwrap()
    };
    let first = configure_plugin("default.split-a");
    let second = configure_plugin("default.split-b");
    let requests = |worker: &Worker| {
        worker
            .metrics()
            .destination(0, 0, crate::metrics::DestinationMetric::Requests)
    };
    assert!(requests(&first).is_some());
    assert_ne!(requests(&first), requests(&second));
    assert_eq!(
        host.id_of("traffic_split.plugin.default_split-a.route.hello.version.v1.requests_total"),
        requests(&first)
    );
    assert_eq!(
        host.id_of("traffic_split.plugin.default_split-b.route.hello.version.v1.requests_total"),
        requests(&second)
    );
}

#[test]
fn only_a_host_that_catches_panics_defines_their_counter() {
    let defines_panics = |catches_panics| {
        let host = MemoryHost::at_ms(START_MS);
        Worker::configure(
            GUARDED.as_bytes(),
            "p",
            Capabilities {
                response_path: true,
                catches_panics,
            },
            &host,
            &mut DefinedMetrics::default(),
        )
        .unwrap();
        let defined = host.defined.borrow();
        defined
            .iter()
            .any(|(_, name)| name.ends_with("panics_total"))
    };
    assert!(defines_panics(true), "the native module counts them");
    assert!(!defines_panics(false), "in Wasm a panic is a trap");
}
