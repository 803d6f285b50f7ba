//! The canary at its hardest moments, in a real Envoy with the shipped module: a guard trip
//! on small weights, a fine ramp under a trickle of requests, a fault drill beside a guard, a
//! failed rollout that must stay rolled back, a config push, the client's retry headers, and
//! configs that must be refused. Each test states the behaviour docs/config.md decides.

use traffic_split_e2e as support;

use std::collections::BTreeMap;
use std::fs;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::http::{Connection, Response};
use support::{exclusive, Envoy, EnvoyConfig};
use traffic_split::units::timestamp::format_rfc3339_ms;

/// The route every test uses.
const ROUTE: &str = "hello";

/// What the front listener answered, by (status, version the upstream saw, `-` for none).
type Seen = BTreeMap<(u16, String), usize>;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis() as i64
}

/// One request on `connection`, opening another if Envoy closed it (it closes a connection
/// after some local replies).
fn request(
    envoy: &Envoy,
    connection: &mut Connection,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    match connection.request("GET", path, headers) {
        Ok(response) => response,
        Err(_) => {
            *connection = envoy.connect();
            connection
                .request("GET", path, headers)
                .expect("a request on a fresh connection")
        }
    }
}

/// Sends `count` requests to `/hello`.
fn send(envoy: &Envoy, connection: &mut Connection, count: usize) -> Seen {
    let mut seen = Seen::new();
    for _ in 0..count {
        let response = request(envoy, connection, "/hello", &[]);
        let version = response
            .header("x-upstream-saw-version")
            .unwrap_or("-")
            .to_string();
        *seen.entry((response.status, version)).or_default() += 1;
    }
    seen
}

fn count(seen: &Seen, status: u16, version: &str) -> usize {
    seen.get(&(status, version.to_string()))
        .copied()
        .unwrap_or(0)
}

/// A per-version series of the route, `NaN` when Envoy has none.
fn series(envoy: &Envoy, name: &str, version: &str) -> f64 {
    envoy
        .admin
        .metrics()
        .get(name, &[("route", ROUTE), ("version", version)])
        .unwrap_or(f64::NAN)
}

fn ejected(envoy: &Envoy, version: &str) -> bool {
    series(envoy, "traffic_split_guard_ejected", version) == 1.0
}

/// Sends batches of 20 requests until `done` holds (read between batches: the guard decides
/// at its merge, every 250 ms), at most `limit`; what was sent meanwhile.
fn send_until(
    envoy: &Envoy,
    connection: &mut Connection,
    limit: Duration,
    done: impl Fn() -> bool,
) -> Seen {
    let started = Instant::now();
    let mut seen = Seen::new();
    loop {
        if done() {
            return seen;
        }
        for (key, value) in send(envoy, connection, 20) {
            *seen.entry(key).or_default() += value;
        }
        assert!(
            started.elapsed() < limit,
            "not within {limit:?}; sent meanwhile: {seen:?}"
        );
    }
}

/// Sends requests for `span` (at least), for a behaviour that must hold over time, such as a
/// version staying out after its cooldown would have ended: there is no event to poll for.
fn send_for(envoy: &Envoy, connection: &mut Connection, span: Duration) -> Seen {
    let started = Instant::now();
    let mut seen = Seen::new();
    while started.elapsed() < span {
        for (key, value) in send(envoy, connection, 20) {
            *seen.entry(key).or_default() += value;
        }
    }
    seen
}

/// v1 and v2 at these weights, with a guard (window 2 s, at least 20 requests) and the
/// extra guard fields given.
fn guarded(v1: u32, v2: u32, guard_fields: &str) -> String {
    format!(
        r#"{{ "routes": [ {{ "name": "hello", "match": {{ "prefix": "/hello" }},
          "guard": {{ "max_error_ratio": 0.05, "min_requests": 20, "window": "2s",
                      {guard_fields} }},
          "destinations": [
            {{ "version": "v1", "cluster": "springbootapp-v1", "weight": {v1} }},
            {{ "version": "v2", "cluster": "springbootapp-v2", "weight": {v2} }} ] }} ] }}"#
    )
}

/// An Envoy (one worker) whose v2 fails every request, under `config`, once the guard has
/// taken v2 out.
fn with_v2_tripped(config: EnvoyConfig) -> (Envoy, Connection) {
    let envoy = Envoy::start(config.with_v2_failure_switch());
    let mut connection = envoy.connect();
    let first = request(&envoy, &mut connection, "/hello", &[]);
    assert_eq!(
        first.status,
        200,
        "the filter does not serve this config: {}",
        envoy
            .log()
            .lines()
            .filter(|line| line.contains("configuration refused"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    envoy.set_v2_failing(true);
    send_until(&envoy, &mut connection, Duration::from_secs(10), || {
        ejected(&envoy, "v2")
    });
    (envoy, connection)
}

/// The requests a tripped v2 still gets (its probes, all failing) of `total`.
fn probes_of(v1: u32, v2: u32, probe_percent: f64, total: usize) -> usize {
    let _machine = exclusive();
    let config = guarded(
        v1,
        v2,
        &format!(r#""cooldown": "10m", "probe_percent": {probe_percent}"#),
    );
    let (envoy, mut connection) =
        with_v2_tripped(EnvoyConfig::shipped().with_plugin_config(&config));
    let seen = send(&envoy, &mut connection, total);
    assert_eq!(
        count(&seen, 503, "-") + count(&seen, 200, "v1"),
        total,
        "{seen:?}"
    );
    count(&seen, 503, "-")
}

// --- probes ------------------------------------------------------------------------------

#[test]
fn a_tripped_version_gets_probe_percent_of_the_route_on_weights_1_to_1() {
    if support::skip_without_envoy() {
        return;
    }
    // min(50% in force, 1%) = 1%: 10 of 1,000 (one worker: the round robin is exact).
    let probes = probes_of(1, 1, 1.0, 1_000);
    assert!(
        (5..=15).contains(&probes),
        "{probes} of 1000 requests went to the tripped v2; probe_percent 1 promises about 10"
    );
}

#[test]
fn a_tripped_version_never_gets_more_than_its_share_in_force_as_probes() {
    if support::skip_without_envoy() {
        return;
    }
    // min(10% in force, 20%) = 10%: 100 of 1,000.
    let probes = probes_of(9, 1, 20.0, 1_000);
    assert!(
        (90..=110).contains(&probes),
        "{probes} of 1000 requests went to the tripped 10% canary; at most its share (100)"
    );
}

// --- ramps -------------------------------------------------------------------------------

#[test]
fn a_fine_linear_ramp_gives_the_canary_its_share_under_a_trickle_of_requests() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    // v2 from 0 to 1,000,000 over an hour, beside v1 at 1,000,000, 30 minutes in: v2's weight
    // is 500,000 (a third of the route) and changes every 3.6 ms.
    let start = format_rfc3339_ms(now_ms() - 30 * 60_000);
    let config = format!(
        r#"{{ "routes": [ {{ "name": "hello", "match": {{ "prefix": "/hello" }},
          "ramp": {{ "version": "v2", "from": 0, "to": 1000000, "start": "{start}",
                     "duration": "1h" }},
          "destinations": [
            {{ "version": "v1", "cluster": "springbootapp-v1", "weight": 1000000 }},
            {{ "version": "v2", "cluster": "springbootapp-v2" }} ] }} ] }}"#
    );
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(&config)
            .without_v2_delay(),
    );
    let mut connection = envoy.connect();
    // The trickle is the workload: one request every 6 ms, so each finds a new weight.
    let interval = Duration::from_millis(6);
    let started = Instant::now();
    let mut seen = Seen::new();
    for sent in 0..300u32 {
        let due = started + interval * sent;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        for (key, value) in send(&envoy, &mut connection, 1) {
            *seen.entry(key).or_default() += value;
        }
    }
    let (v1, v2) = (count(&seen, 200, "v1"), count(&seen, 200, "v2"));
    assert_eq!(v1 + v2, 300, "{seen:?}");
    // A third is 100; the ramp moves 0.05 points in the 1.8 s of the test.
    assert!(
        (85..=115).contains(&v2),
        "v2 got {v2} of 300 requests at a third of the route's weight: {seen:?}"
    );
}

// --- faults and the guard ----------------------------------------------------------------

#[test]
fn a_fault_drill_never_trips_the_guard() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    // `a` takes 40% injected aborts (a drill) against a guard at 20%; `b` is healthy; `c`
    // really fails, so its trip shows that the guard merged and decided meanwhile.
    let config = r#"{ "routes": [ { "name": "hello", "match": { "prefix": "/hello" },
        "guard": { "max_error_ratio": 0.2, "min_requests": 20, "window": "2s", "cooldown": "10m" },
        "destinations": [
          { "version": "a", "cluster": "springbootapp-v1", "weight": 1,
            "fault": { "abort": { "status": 503, "percent": 40 } } },
          { "version": "b", "cluster": "springbootapp-v1", "weight": 1 },
          { "version": "c", "cluster": "springbootapp-v2", "weight": 1 } ] } ] }"#;
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(config)
            .with_v2_failure_switch(),
    );
    envoy.set_v2_failing(true);
    let mut connection = envoy.connect();
    send_until(&envoy, &mut connection, Duration::from_secs(10), || {
        ejected(&envoy, "c") || ejected(&envoy, "a")
    });
    let metrics = envoy.admin.metrics();
    let a = [("route", ROUTE), ("version", "a")];
    let drill = metrics.count(
        "traffic_split_faults_total",
        &[("route", ROUTE), ("version", "a"), ("kind", "abort")],
    );
    assert!(drill >= 8, "the drill ran: {drill} aborts");
    assert_eq!(
        metrics.count("traffic_split_guard_trips_total", &a),
        0,
        "the drill tripped the guard on a, a healthy version"
    );
    assert_eq!(metrics.count("traffic_split_guard_held_total", &a), 0);
    // a keeps its share, drill and all: of 300 requests, half to a (40% of them aborted),
    // within the round robin's bound of under 2 requests (its position carries over changes).
    let after = send(&envoy, &mut connection, 300);
    let to_a = envoy
        .admin
        .metrics()
        .count("traffic_split_requests_total", &a)
        - metrics.count("traffic_split_requests_total", &a);
    assert!((148..=152).contains(&to_a), "{to_a} of 300 to a: {after:?}");
}

// --- a failed rollout stays rolled back ----------------------------------------------------

/// v1 at 1,000,000 and v2 ramping from `from` to 1,000,000 over an hour from `start`, with a
/// guard whose cooldown is `cooldown`.
fn guarded_ramp(from: u32, start: i64, cooldown: &str) -> String {
    let start = format_rfc3339_ms(start);
    format!(
        r#"{{ "routes": [ {{ "name": "hello", "match": {{ "prefix": "/hello" }},
          "guard": {{ "max_error_ratio": 0.05, "min_requests": 20, "window": "2s",
                      "cooldown": "{cooldown}" }},
          "ramp": {{ "version": "v2", "from": {from}, "to": 1000000, "start": "{start}",
                     "duration": "1h" }},
          "destinations": [
            {{ "version": "v1", "cluster": "springbootapp-v1", "weight": 1000000 }},
            {{ "version": "v2", "cluster": "springbootapp-v2" }} ] }} ] }}"#
    )
}

/// After its trip v2 is healthy again, yet stays out for `span` (longer than any cooldown of
/// the test); then a changed config brings it back.
fn assert_latched_until_the_config_changes(
    envoy: &Envoy,
    connection: &mut Connection,
    span: Duration,
    changed_config: &str,
) {
    envoy.set_v2_failing(false);
    let meanwhile = send_for(envoy, connection, span);
    assert_eq!(
        count(&meanwhile, 200, "v2") + count(&meanwhile, 503, "-"),
        0,
        "the tripped v2 came back without a config change: {meanwhile:?}"
    );
    assert!(ejected(envoy, "v2"));
    assert_eq!(series(envoy, "traffic_split_guard_latched", "v2"), 1.0);
    assert_eq!(series(envoy, "traffic_split_weight", "v2"), 0.0);
    assert!(envoy.reconfigure_filter(changed_config));
    send_until(envoy, connection, Duration::from_secs(5), || {
        !ejected(envoy, "v2")
    });
    let back = send(envoy, connection, 200);
    assert!(count(&back, 200, "v2") > 0, "{back:?}");
    assert_eq!(series(envoy, "traffic_split_guard_latched", "v2"), 0.0);
}

#[test]
fn a_trip_of_the_ramped_version_halts_the_rollout_until_the_config_changes() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    // 30 minutes into the ramp (v2 a third of the route); a cooldown of 1 s, which a halted
    // rollout ignores.
    let config = guarded_ramp(0, now_ms() - 30 * 60_000, "1s");
    let (envoy, mut connection) = with_v2_tripped(
        EnvoyConfig::shipped()
            .with_plugin_config(&config)
            .front_filter_from_ecds(),
    );
    // A new rollout: the ramp starts again from 100,000, now.
    let restarted = guarded_ramp(100_000, now_ms(), "1s");
    assert_latched_until_the_config_changes(
        &envoy,
        &mut connection,
        Duration::from_secs(3),
        &restarted,
    );
}

#[test]
fn a_guard_with_cooldown_until_config_change_keeps_a_tripped_version_out_until_then() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let config = guarded(70, 30, r#""cooldown": "until_config_change""#);
    let (envoy, mut connection) = with_v2_tripped(
        EnvoyConfig::shipped()
            .with_plugin_config(&config)
            .front_filter_from_ecds(),
    );
    let changed = guarded(60, 40, r#""cooldown": "until_config_change""#);
    assert_latched_until_the_config_changes(
        &envoy,
        &mut connection,
        Duration::from_secs(2),
        &changed,
    );
}

// --- config pushes -------------------------------------------------------------------------

#[test]
fn a_push_that_leaves_the_guard_unchanged_keeps_an_ejected_version_out() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let config = guarded(50, 50, r#""cooldown": "10m""#);
    let (envoy, mut connection) = with_v2_tripped(
        EnvoyConfig::shipped()
            .with_plugin_config(&config)
            .front_filter_from_ecds(),
    );
    // The same route and guard, and one more route: the guard's state carries over.
    let pushed = config.replacen(
        r#""routes": ["#,
        r#""routes": [ { "name": "other", "match": { "prefix": "/other" },
            "destinations": [ { "version": "v1", "cluster": "springbootapp-v1", "weight": 1 } ] },"#,
        1,
    );
    assert!(envoy.reconfigure_filter(&pushed));
    let right_after = send(&envoy, &mut connection, 100);
    assert_eq!(
        count(&right_after, 200, "v1"),
        100,
        "the ejected v2 got traffic right after a push: {right_after:?}"
    );
    assert!(ejected(&envoy, "v2"));
}

/// Envoy's resident memory, from `/proc`: the Envoy this test process started (the harness
/// runs one Envoy at a time under [`exclusive`]).
fn envoy_rss_kib() -> u64 {
    let me = std::process::id().to_string();
    let status = fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let stat = fs::read_to_string(entry.path().join("stat")).ok()?;
            // pid (comm) state ppid ...
            let (comm, rest) = stat.split_once(") ")?;
            let parent = rest.split_whitespace().nth(1)?;
            (comm.ends_with("(envoy") && parent == me)
                .then(|| fs::read_to_string(entry.path().join("status")).ok())
                .flatten()
        })
        .next()
        .expect("the Envoy this test started");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// 500 routes of two versions (about 8,000 metrics), v1 at `v1` of 100.
fn many_routes(v1: u32) -> String {
    let routes: Vec<String> = (0..500)
        .map(|index| {
            format!(
                r#"{{ "name": "route-{index}", "match": {{ "prefix": "/r{index}/" }},
                  "destinations": [
                    {{ "version": "v1", "cluster": "springbootapp-v1", "weight": {v1} }},
                    {{ "version": "v2", "cluster": "springbootapp-v2", "weight": {} }} ] }}"#,
                100 - v1
            )
        })
        .collect();
    format!(r#"{{ "routes": [ {} ] }}"#, routes.join(","))
}

/// Envoy's resident memory may grow by at most this over the measured pushes: the allocator's
/// and the VMs' slack, not a cost per push (docs/config.md, "Config pushes").
const RSS_GROWTH_BOUND_KIB: u64 = 4 * 1024;
const MEASURED_PUSHES: u32 = 20;

#[test]
fn memory_stays_flat_over_many_config_pushes() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(&many_routes(70))
            .front_filter_from_ecds(),
    );
    // Each push differs from the one before (Envoy applies no update that changes nothing).
    let push = |round: u32| {
        let v1 = if round.is_multiple_of(2) { 60 } else { 70 };
        assert!(envoy.reconfigure_filter(&many_routes(v1)), "push {round}");
    };
    // Warm-up: the VMs' linear memory reaches the peak of compiling this config.
    const WARM_UP_PUSHES: u32 = 5;
    for round in 0..WARM_UP_PUSHES {
        push(round);
    }
    let before = envoy_rss_kib();
    let allocated_before = envoy.admin.stat("server.memory_allocated").unwrap_or(0);
    let started = Instant::now();
    for round in WARM_UP_PUSHES..WARM_UP_PUSHES + MEASURED_PUSHES {
        push(round);
    }
    let took = started.elapsed();
    let after = envoy_rss_kib();
    let allocated_after = envoy.admin.stat("server.memory_allocated").unwrap_or(0);
    eprintln!(
        "{MEASURED_PUSHES} pushes of 500 routes in {took:?}: RSS {before} -> {after} KiB; \
         allocated {allocated_before} -> {allocated_after} bytes"
    );
    assert!(
        after <= before + RSS_GROWTH_BOUND_KIB,
        "Envoy's RSS grew from {before} KiB to {after} KiB over {MEASURED_PUSHES} pushes \
         (allocated {allocated_before} -> {allocated_after} bytes)"
    );
}

// --- retries: the client's retry headers never decide -----------------------------------------

/// Every request to v2 (weight 100), whose upstream fails with 503, under these `retries`.
fn failing_v2_with_retries(retries: &str) -> String {
    format!(
        r#"{{ "routes": [ {{ "name": "hello", "match": {{ "prefix": "/hello" }},
          "retries": {retries},
          "destinations": [
            {{ "version": "v1", "cluster": "springbootapp-v1", "weight": 0 }},
            {{ "version": "v2", "cluster": "springbootapp-v2", "weight": 100 }} ] }} ] }}"#
    )
}

/// Retries Envoy made to the failing v2 for 10 requests with these client headers, on an
/// Envoy that trusts its clients' `x-envoy-*` headers (as a sidecar trusts its application).
fn retries_to_failing_v2(config: &str, headers: &[(&str, &str)]) -> u64 {
    let _machine = exclusive();
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(config)
            .with_v2_failure_switch()
            .trusting_client_headers(),
    );
    envoy.set_v2_failing(true);
    let mut connection = envoy.connect();
    for _ in 0..10 {
        let response = request(&envoy, &mut connection, "/hello", headers);
        assert_eq!(response.status, 503);
    }
    envoy.admin.metrics().count(
        "envoy_cluster_upstream_rq_retry",
        &[("envoy_cluster_name", "springbootapp-v2")],
    )
}

#[test]
fn a_clients_retriable_status_codes_are_removed() {
    if support::skip_without_envoy() {
        return;
    }
    // The route names the condition but no codes: nothing is retried for a status.
    let config =
        failing_v2_with_retries(r#"{ "attempts": 2, "retry_on": "retriable-status-codes" }"#);
    let spoofed = [("x-envoy-retriable-status-codes", "503")];
    assert_eq!(retries_to_failing_v2(&config, &spoofed), 0);
}

#[test]
fn a_clients_retriable_header_names_are_removed() {
    if support::skip_without_envoy() {
        return;
    }
    let config = failing_v2_with_retries(r#"{ "attempts": 2, "retry_on": "retriable-headers" }"#);
    // Every 503 of the failing upstream carries a content-length.
    let spoofed = [("x-envoy-retriable-header-names", "content-length")];
    assert_eq!(retries_to_failing_v2(&config, &spoofed), 0);
}

#[test]
fn the_routes_retriable_status_codes_replace_the_clients() {
    if support::skip_without_envoy() {
        return;
    }
    let config = failing_v2_with_retries(
        r#"{ "attempts": 2, "retry_on": "retriable-status-codes",
             "retriable_status_codes": [503] }"#,
    );
    let spoofed = [("x-envoy-retriable-status-codes", "418")];
    assert_eq!(retries_to_failing_v2(&config, &spoofed), 20);
}

#[test]
fn the_routes_retriable_headers_replace_the_clients() {
    if support::skip_without_envoy() {
        return;
    }
    let config = failing_v2_with_retries(
        r#"{ "attempts": 2, "retry_on": "retriable-headers",
             "retriable_headers": ["content-length"] }"#,
    );
    let spoofed = [("x-envoy-retriable-header-names", "x-never-sent")];
    assert_eq!(retries_to_failing_v2(&config, &spoofed), 20);
}

#[test]
fn a_clients_hedge_on_per_try_timeout_is_removed() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    // v2 answers in 5 ms; each try may take 2 ms. Without hedging both tries are cut (504);
    // a client's hedge header would keep the first try going and get its 200.
    let config = r#"{ "routes": [ { "name": "hello", "match": { "prefix": "/hello" },
        "retries": { "attempts": 1, "retry_on": "5xx", "per_try_timeout": "2ms" },
        "destinations": [
          { "version": "v1", "cluster": "springbootapp-v1", "weight": 0 },
          { "version": "v2", "cluster": "springbootapp-v2", "weight": 100 } ] } ] }"#;
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(config)
            .trusting_client_headers(),
    );
    let mut connection = envoy.connect();
    let hedge = [("x-envoy-hedge-on-per-try-timeout", "true")];
    let statuses: Vec<u16> = (0..10)
        .map(|_| request(&envoy, &mut connection, "/hello", &hedge).status)
        .collect();
    assert_eq!(statuses, vec![504; 10], "the client's hedge header decided");
}

// --- configs that must be refused ---------------------------------------------------------------

/// Starts Envoy with `config`, which the filter must refuse; the refusal line.
fn refusal(config: &str) -> String {
    let _machine = exclusive();
    let failure = Envoy::try_start(EnvoyConfig::shipped().with_plugin_config(config))
        .err()
        .expect("Envoy started with a config the filter must refuse");
    failure
        .log
        .lines()
        .find(|line| line.contains("configuration refused"))
        .unwrap_or_else(|| panic!("no refusal in the log:\n{}", failure.log))
        .to_string()
}

#[test]
fn a_header_match_naming_an_owned_header_is_refused() {
    if support::skip_without_envoy() {
        return;
    }
    let route = |name: &str, header: &str| {
        format!(
            r#"{{ "name": "{name}", "match": {{ "prefix": "/{name}",
                  "headers": [ {{ "name": "{header}", "exact": "v2" }} ] }},
              "destinations": [ {{ "version": "v2", "cluster": "springbootapp-v2", "weight": 1 }} ] }}"#
        )
    };
    let config = format!(
        r#"{{ "routes": [ {}, {}, {} ] }}"#,
        route("by-version", "x-split-version"),
        route("by-cluster", "X-Split-Cluster"),
        route("by-retry", "x-envoy-retry-on"),
    );
    let line = refusal(&config);
    for path in [
        "routes[0].match.headers[0].name",
        "routes[1].match.headers[0].name",
        "routes[2].match.headers[0].name",
    ] {
        assert!(line.contains(path), "{path} not in: {line}");
    }
}

#[test]
fn a_config_whose_regexes_exceed_the_total_budget_is_refused() {
    if support::skip_without_envoy() {
        return;
    }
    // 250 routes of `.{5000}`: each within the per-regex limits, 1,250,000 regex units in all
    // against a budget of 1,000,000 (docs/config.md, "Size limits").
    let routes: Vec<String> = (0..250)
        .map(|index| {
            format!(
                r#"{{ "name": "r{index}", "match": {{ "regex": "/r{index}/.{{5000}}" }},
                  "destinations": [ {{ "version": "v1", "cluster": "springbootapp-v1", "weight": 1 }} ] }}"#
            )
        })
        .collect();
    let config = format!(r#"{{ "routes": [ {} ] }}"#, routes.join(","));
    let line = refusal(&config);
    assert!(line.contains("regex"), "{line}");
    assert!(line.contains("at most 1000000"), "{line}");
}
