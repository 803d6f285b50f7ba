//! Canary routing in a real Envoy: sticky keys (by header and by cookie, across workers and
//! reloads), overrides, ramps from the proxy's clock, and weights as fine as 1 in 10,000.

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

/// The version the filter's own core gives a key under a config: what Envoy must agree with.
fn core_version(config: &str, key: &str) -> String {
    let plan = compile(config.as_bytes()).expect("a valid config");
    let route = &plan.routes[0];
    let index = RouteState::new(route)
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

#[test]
fn ramps_started_in_the_past_future_and_middle_have_the_expected_weights_and_shares() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    const MINUTE: i64 = 60_000;
    let now = now_ms();
    // v2 from 0 to 50 over an hour in 2 steps, beside v1 at 50; started at `start`.
    let route = |name: &str, start: i64| {
        format!(
            r#"{{ "name": "{name}", "match": {{ "prefix": "/{name}" }},
                  "ramp": {{ "version": "v2", "from": 0, "to": 50, "start": "{}",
                             "duration": "1h", "steps": 2 }},
                  "destinations": [
                    {{ "version": "v1", "cluster": "springbootapp-v1", "weight": 50 }},
                    {{ "version": "v2", "cluster": "springbootapp-v2" }} ] }}"#,
            format_rfc3339_ms(start)
        )
    };
    // The middle ramp is 45 minutes in: its second step (v2 at 25) lasts 15 more minutes.
    let config = format!(
        r#"{{ "routes": [ {}, {}, {} ] }}"#,
        route("past", now - 120 * MINUTE),
        route("future", now + 60 * MINUTE),
        route("middle", now - 45 * MINUTE)
    );
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(&config)
            .without_v2_delay(),
    );
    // The gauges are right before any request.
    let metrics = envoy.admin.metrics();
    let weight = |route, version| {
        metrics.get(
            "traffic_split_weight",
            &[("route", route), ("version", version)],
        )
    };
    for (route, v2) in [("past", 50.0), ("future", 0.0), ("middle", 25.0)] {
        assert_eq!(weight(route, "v2"), Some(v2), "{route}");
        assert_eq!(weight(route, "v1"), Some(50.0), "{route}");
    }
    let mut connection = envoy.connect();
    let mut shares = BTreeMap::new();
    for (route, requests) in [("past", 100), ("future", 100), ("middle", 75)] {
        for _ in 0..requests {
            let response = connection.get(&format!("/{route}")).expect("request");
            *shares.entry((route, version(&response))).or_insert(0) += 1;
        }
    }
    let expected: BTreeMap<(&str, String), i32> = [
        (("past", "v1".to_string()), 50),
        (("past", "v2".to_string()), 50),
        (("future", "v1".to_string()), 100),
        (("middle", "v1".to_string()), 50),
        (("middle", "v2".to_string()), 25),
    ]
    .into_iter()
    .collect();
    assert_eq!(shares, expected);
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
fn an_idle_routes_weight_gauge_follows_its_ramp() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    // v2 goes from 0 to 50 in one step four seconds from now; no request will come.
    let configured_at = Instant::now();
    let start = format_rfc3339_ms(now_ms() + 3_000);
    let config = format!(
        r#"{{ "routes": [ {{ "name": "hello",
              "ramp": {{ "version": "v2", "from": 0, "to": 50, "start": "{start}",
                         "duration": "1s", "steps": 1 }},
              "destinations": [ {{ "version": "v1", "weight": 50 }}, {{ "version": "v2" }} ] }} ] }}"#
    );
    let envoy = Envoy::start(EnvoyConfig::shipped().with_plugin_config(&config));
    let v2 = [("route", "hello"), ("version", "v2")];
    let before = envoy.admin.metrics().get("traffic_split_weight", &v2);
    // Unless Envoy took longer to start than the ramp took to come due, it started at 0.
    if configured_at.elapsed() < Duration::from_millis(3_500) {
        assert_eq!(before, Some(0.0));
    }
    let metrics = envoy
        .admin
        .metrics_when(|m| m.get("traffic_split_weight", &v2) == Some(50.0));
    assert_eq!(metrics.get("traffic_split_weight", &v2), Some(50.0));
    assert_eq!(metrics.outcome("hello", "v2").0, 0, "no request moved it");
}
