//! Canary routing in a real Envoy: sticky keys (by header and by cookie, across workers and
//! reloads), overrides, rollouts in percent of the route from the proxy's clock, and weights
//! as fine as 1 in 10,000.

use traffic_split_e2e as support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::http::{Connection, Response};
use support::{exclusive, Envoy, EnvoyConfig};
use traffic_split::config::compile;
use traffic_split::state::RouteState;
use traffic_split::units::timestamp::format_rfc3339_ms;

/// The version the upstream saw.
fn version(response: &Response) -> String {
    assert_eq!(response.status, 200, "{}", response.body_text());
    response
        .header("x-upstream-saw-version")
        .unwrap_or("")
        .to_string()
}

/// A route `hello` at `/hello` with v1 and v2 at these weights and the extra route fields.
fn canary(v1: u32, v2: u32, fields: &str) -> String {
    format!(
        r#"{{ "routes": [ {{ "name": "hello", "match": {{ "prefix": "/hello" }}, {fields}
             "destinations": [
               {{ "version": "v1", "cluster": "springbootapp-v1", "weight": {v1} }},
               {{ "version": "v2", "cluster": "springbootapp-v2", "weight": {v2} }} ] }} ] }}"#
    )
}

const STICKY_BY_USER: &str = r#""sticky": { "header": "x-user-id" },"#;

/// The version the filter's own core gives a key under a config, with its rollout where the
/// clock has it now: what Envoy must agree with.
fn core_version(config: &str, key: &str) -> String {
    let plan = compile(config.as_bytes()).expect("a valid config");
    let route = &plan.routes[0];
    let mut state = RouteState::new(route);
    state.follow_rollout(route, now_ms() as u64 * 1_000_000);
    let index = state
        .sticky_destination(route, key.as_bytes())
        .expect("a version");
    route.destinations[index].version.clone()
}

/// Each key's version, sending every key once with `x-user-id`, over four connections at once.
fn versions_of_keys(envoy: &Envoy, keys: &[String]) -> BTreeMap<String, String> {
    std::thread::scope(|scope| {
        let workers: Vec<_> = keys
            .chunks(keys.len().div_ceil(4))
            .map(|chunk| {
                scope.spawn(move || {
                    let mut connection = envoy.connect();
                    chunk
                        .iter()
                        .map(|key| {
                            let response = connection
                                .request("GET", "/hello", &[("x-user-id", key)])
                                .expect("request");
                            (key.clone(), version(&response))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().expect("a request thread"))
            .collect()
    })
}

/// v2's share of the keys, in percent.
fn v2_share(versions: &BTreeMap<String, String>) -> f64 {
    let on_v2 = versions.values().filter(|version| *version == "v2").count();
    on_v2 as f64 * 100.0 / versions.len() as f64
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis() as i64
}

#[test]
fn sticky_keys_land_on_one_version_across_requests_and_workers() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let config = canary(70, 30, STICKY_BY_USER);
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(&config)
            .with_balanced_workers(2)
            .without_v2_delay(),
    );
    // Two connections open at once: Envoy's exact balance puts them on different workers,
    // each with its own Wasm VM.
    let mut connections = [envoy.connect(), envoy.connect()];
    let mut per_version = BTreeMap::new();
    for user in 0..300 {
        let key = format!("user-{user}");
        let expected = core_version(&config, &key);
        for round in 0..4 {
            let connection = &mut connections[round % 2];
            let response = connection
                .request("GET", "/hello", &[("x-user-id", &key)])
                .expect("request");
            assert_eq!(version(&response), expected, "{key}, request {round}");
        }
        *per_version.entry(expected).or_insert(0) += 4;
    }
    let workers = envoy.admin.connections_per_worker();
    assert_eq!(
        workers
            .values()
            .filter(|&&connections| connections > 0)
            .count(),
        2,
        "both workers served: {workers:?}"
    );
    let metrics = envoy.admin.metrics();
    for (version, count) in &per_version {
        let labels = [
            ("route", "hello"),
            ("version", version),
            ("source", "header"),
        ];
        assert_eq!(
            metrics.count("traffic_split_sticky_total", &labels),
            *count,
            "{version}"
        );
    }
    assert_eq!(
        per_version.len(),
        2,
        "keys on both versions: {per_version:?}"
    );
}

#[test]
fn after_a_reload_that_raises_v2_no_key_leaves_v2_and_shares_follow_the_weights() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let keys: Vec<String> = (0..10_000).map(|key| format!("account-{key}")).collect();
    let before_config = canary(80, 20, STICKY_BY_USER);
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(&before_config)
            .front_listener_from_lds()
            .without_v2_delay(),
    );
    let before = versions_of_keys(&envoy, &keys);
    // docs/config.md states the tolerance: 1.5 points at 10,000 keys (three standard
    // deviations of a binomial share at 20%; 2 points at 50%).
    let share = v2_share(&before);
    assert!(
        (share - 20.0).abs() < 1.5,
        "v2 has {share:.2}% of the keys at 20%"
    );

    let after_config = canary(50, 50, STICKY_BY_USER);
    assert!(envoy.reconfigure(&after_config));
    let after = versions_of_keys(&envoy, &keys);
    let share = v2_share(&after);
    assert!(
        (share - 50.0).abs() < 2.0,
        "v2 has {share:.2}% of the keys at 50%"
    );
    let left_v2: Vec<&String> = keys
        .iter()
        .filter(|key| before[*key] == "v2" && after[*key] != "v2")
        .collect();
    assert!(
        left_v2.is_empty(),
        "{} keys left v2: {left_v2:?}",
        left_v2.len()
    );
    let moved = keys
        .iter()
        .filter(|key| before[*key] != after[*key])
        .count();
    assert!(
        moved > 2_000,
        "raising v2 from 20% to 50% moved {moved} keys"
    );
    // Envoy's picks are the core's, key for key.
    for key in keys.iter().step_by(97) {
        assert_eq!(after[key], core_version(&after_config, key), "{key}");
    }
}

#[test]
fn the_cookie_is_set_once_and_then_honoured() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let config = canary(
        50,
        50,
        r#""sticky": { "cookie": "session", "set_cookie": { "max_age": "24h" } },"#,
    );
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(&config)
            .without_v2_delay(),
    );
    let mut first_versions = BTreeMap::new();
    for browser in 0..20 {
        let mut connection = envoy.connect();
        let first = connection.get("/hello").expect("request");
        let set_cookie = first
            .header("set-cookie")
            .unwrap_or_else(|| panic!("browser {browser} got no cookie"))
            .to_string();
        let (cookie, attributes) = set_cookie.split_once(';').expect("attributes");
        assert_eq!(attributes, " Path=/; Max-Age=86400; HttpOnly; SameSite=Lax");
        let key = cookie.strip_prefix("session=").expect("the session cookie");
        assert_eq!(key.len(), 32, "{key}");
        let first_version = version(&first);
        assert_eq!(
            first_version,
            core_version(&config, key),
            "its first request too"
        );
        for _ in 0..10 {
            let next = connection
                .request(
                    "GET",
                    "/hello",
                    &[("cookie", &format!("theme=dark; {cookie}"))],
                )
                .expect("request");
            assert_eq!(version(&next), first_version);
            assert_eq!(next.header("set-cookie"), None, "set once");
        }
        assert!(
            first_versions
                .insert(key.to_string(), first_version)
                .is_none(),
            "every key is fresh"
        );
    }
    let metrics = envoy.admin.metrics();
    let sticky = |source| {
        ["v1", "v2"]
            .iter()
            .map(|version| {
                metrics.count(
                    "traffic_split_sticky_total",
                    &[("route", "hello"), ("version", version), ("source", source)],
                )
            })
            .sum::<u64>()
    };
    assert_eq!((sticky("none"), sticky("cookie")), (20, 200));
}

#[test]
fn an_override_reaches_v2_at_weight_0_and_an_unknown_value_is_counted() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let config = canary(100, 0, r#""override_header": "x-canary-version","#);
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(&config)
            .upstreams_echo("x-canary-version"),
    );
    let mut connection = envoy.connect();
    for _ in 0..10 {
        let response = connection
            .request("GET", "/hello", &[("x-canary-version", "v2")])
            .expect("request");
        assert_eq!(version(&response), "v2");
        assert_eq!(
            response.header("x-upstream-saw-x-canary-version"),
            None,
            "removed before the upstream"
        );
    }
    for _ in 0..5 {
        let response = connection
            .request("GET", "/hello", &[("x-canary-version", "v3")])
            .expect("request");
        assert_eq!(version(&response), "v1", "the split decides");
        assert_eq!(response.header("x-upstream-saw-x-canary-version"), None);
    }
    assert_eq!(version(&connection.get("/hello").expect("request")), "v1");
    let metrics = envoy.admin.metrics();
    let overrides = |version| {
        metrics.count(
            "traffic_split_overrides_total",
            &[("route", "hello"), ("version", version)],
        )
    };
    assert_eq!(
        (overrides("v2"), overrides("unknown"), overrides("v1")),
        (10, 5, 0)
    );
    assert_eq!(metrics.outcome("hello", "v2").0, 10);
    assert_eq!(metrics.outcome("hello", "v1").0, 6);
}

/// Route `hello` at `/hello`: v1 at `v1`, a rollout of v2 from `start_ms` with `steps`, and
/// the `more` destinations after them.
fn rollout(start_ms: i64, steps: &str, v1: u32, more: &str) -> String {
    format!(
        r#"{{ "routes": [ {{ "name": "hello", "match": {{ "prefix": "/hello" }},
             "rollout": {{ "version": "v2", "start": "{}", "steps": [ {steps} ] }},
             "destinations": [
               {{ "version": "v1", "cluster": "springbootapp-v1", "weight": {v1} }},
               {{ "version": "v2", "cluster": "springbootapp-v2" }} {more} ] }} ] }}"#,
        format_rfc3339_ms(start_ms)
    )
}

const MINUTE: i64 = 60_000;

/// How many of `count` requests on one connection (one worker) each version got, under
/// `config`; and the share gauges before the first request.
fn split_of(config: &str, count: usize) -> (BTreeMap<String, usize>, BTreeMap<String, f64>) {
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(config)
            .without_v2_delay(),
    );
    let metrics = envoy.admin.metrics();
    let gauges = ["v1", "v2", "v3"]
        .into_iter()
        .filter_map(|version| {
            let labels = [("route", "hello"), ("version", version)];
            Some((
                version.to_string(),
                metrics.get("traffic_split_share", &labels)?,
            ))
        })
        .collect();
    let mut connection = envoy.connect();
    let mut split = BTreeMap::new();
    for _ in 0..count {
        let response = connection.get("/hello").expect("request");
        *split.entry(version(&response)).or_insert(0) += 1;
    }
    (split, gauges)
}

fn split(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(v, n)| (v.to_string(), *n)).collect()
}

#[test]
fn a_rollout_in_a_25_percent_hold_sends_exactly_100_of_400_requests() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let config = rollout(
        now_ms() - MINUTE,
        r#"{ "share": 25, "hold": "1h" }, { "share": 100 }"#,
        100,
        "",
    );
    let (split_seen, gauges) = split_of(&config, 400);
    assert_eq!(split_seen, split(&[("v1", 300), ("v2", 100)]));
    assert_eq!(gauges["v2"], 250_000.0, "the share gauge, in millionths");
    assert_eq!(gauges["v1"], 750_000.0);
}

#[test]
fn a_finished_rollout_sends_every_request() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let config = rollout(
        now_ms() - 120 * MINUTE,
        r#"{ "share": 25, "hold": "1h" }, { "share": 100 }"#,
        100,
        "",
    );
    assert_eq!(split_of(&config, 400).0, split(&[("v2", 400)]));
}

#[test]
fn a_rollout_not_yet_started_sends_none() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let config = rollout(now_ms() + 60 * MINUTE, r#"{ "share": 50 }"#, 100, "");
    assert_eq!(split_of(&config, 100).0, split(&[("v1", 100)]));
}

#[test]
fn three_versions_with_a_rollout_at_20_percent_and_weights_3_to_1_split_20_60_20() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let v3 = r#", { "version": "v3", "cluster": "springbootapp-v1", "weight": 1 }"#;
    let config = rollout(now_ms() - MINUTE, r#"{ "share": 20 }"#, 3, v3);
    assert_eq!(
        split_of(&config, 100).0,
        split(&[("v1", 60), ("v2", 20), ("v3", 20)])
    );
}

#[test]
fn a_linear_step_half_way_gives_half_its_share() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    // 0 to 50% over 10 hours, 5 hours in: 25%, moving 0.0014 points a second.
    let config = rollout(
        now_ms() - 300 * MINUTE,
        r#"{ "share": 50, "over": "10h" }"#,
        100,
        "",
    );
    let (seen, _) = split_of(&config, 400);
    assert!((99..=101).contains(&seen["v2"]), "{seen:?}");
}

#[test]
fn a_gate_holds_past_its_time() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    // The gate came two hours ago; its step would long have ended were it a hold.
    let config = rollout(
        now_ms() - 120 * MINUTE,
        r#"{ "share": 10, "hold": "1m" }, { "share": 30, "hold": "until_config_change" },
           { "share": 100 }"#,
        100,
        "",
    );
    assert_eq!(split_of(&config, 100).0, split(&[("v1", 70), ("v2", 30)]));
}

#[test]
fn sticky_keys_only_move_to_the_rollout_version_from_10_to_60_percent() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    // 10%, 35% and 60%, two seconds each, from two seconds after the config is written.
    let config = rollout(
        now_ms() + 2_000,
        r#"{ "share": 10, "hold": "2s" }, { "share": 35, "hold": "2s" }, { "share": 60 }"#,
        100,
        "",
    )
    .replace(
        r#""rollout""#,
        r#""sticky": { "header": "x-user-id" }, "rollout""#,
    );
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(&config)
            .without_v2_delay(),
    );
    let keys: Vec<String> = (0..300).map(|k| format!("user-{k}")).collect();
    let v2_gauge = [("route", "hello"), ("version", "v2")];
    let started = Instant::now();
    let mut before = versions_of_keys(&envoy, &keys);
    let mut shares_seen = vec![v2_share(&before)];
    loop {
        // Read before the pass: a pass that began at 60% sees nothing move after it.
        let at_the_end =
            envoy.admin.metrics().get("traffic_split_share", &v2_gauge) == Some(600_000.0);
        let now = versions_of_keys(&envoy, &keys);
        for key in &keys {
            assert!(
                before[key] == now[key] || now[key] == "v2",
                "{key} moved from {} to {}",
                before[key],
                now[key]
            );
        }
        shares_seen.push(v2_share(&now));
        before = now;
        if at_the_end {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{shares_seen:?}"
        );
    }
    for key in &keys {
        assert_eq!(before[key], core_version(&config, key), "{key} at 60%");
    }
    let mut distinct = shares_seen.clone();
    distinct.dedup();
    assert!(distinct.len() >= 3, "saw steps: {shares_seen:?}");
    assert!(
        (50.0..=70.0).contains(&v2_share(&before)),
        "{shares_seen:?}"
    );
}

#[test]
fn one_request_in_ten_thousand_goes_to_v2_at_1_to_9999() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(&canary(9_999, 1, ""))
            .without_v2_delay(),
    );
    let mut connection: Connection = envoy.connect();
    let mut on_v2 = 0;
    for _ in 0..10_000 {
        if version(&connection.get("/hello").expect("request")) == "v2" {
            on_v2 += 1;
        }
    }
    assert_eq!(on_v2, 1);
    assert_eq!(envoy.admin.metrics().outcome("hello", "v1").0, 9_999);
}

#[test]
fn an_idle_routes_share_gauge_follows_its_rollout() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    // v2 goes to 50% three seconds from now; no request will come.
    let configured_at = Instant::now();
    let config = rollout(now_ms() + 3_000, r#"{ "share": 50 }"#, 50, "");
    let envoy = Envoy::start(EnvoyConfig::shipped().with_plugin_config(&config));
    let v2 = [("route", "hello"), ("version", "v2")];
    let before = envoy.admin.metrics().get("traffic_split_share", &v2);
    // Unless Envoy took longer to start than the rollout took to come due, it started at 0.
    if configured_at.elapsed() < Duration::from_millis(2_500) {
        assert_eq!(before, Some(0.0));
    }
    let metrics = envoy
        .admin
        .metrics_when(|m| m.get("traffic_split_share", &v2) == Some(500_000.0));
    assert_eq!(metrics.get("traffic_split_weight", &v2), Some(1.0));
    assert_eq!(metrics.outcome("hello", "v2").0, 0, "no request moved it");
}
