//! What only the native module (`build/libtraffic_split.so`) has: Envoy's dynamic-module ABI,
//! whose version must be the one of the Envoy we test with, and a panic in native code, which
//! must never take Envoy down. A test-only build (`make build-panic`) panics on a request that
//! carries `x-traffic-split-test-panic`: the panic is caught in the module, logged once, and
//! the request goes on without the filter. (The Wasm module cannot catch a panic: it traps, and
//! its VM is gone; tests/filter_failure.rs shows what Envoy does then.)

use traffic_split_e2e as support;

use support::config::traffic_split_filter;
use support::module::native_typed_config;
use support::{exclusive, repo_root, Envoy, EnvoyConfig, Module};

const WHY: &str = "the ABI and the panic guard are the native module's alone";

/// Everything to v2, so that a request the filter handled is told apart from one that took
/// Envoy's default route (v1).
const ALL_TO_V2: &str = r#"{ "routes": [{ "name": "hello", "match": { "prefix": "/hello" },
    "destinations": [ { "version": "v2", "cluster": "springbootapp-v2", "weight": 1 } ] }] }"#;

const PANIC_HEADER: &str = "x-traffic-split-test-panic";

/// The ABI version the module declares (native/src/abi.rs).
fn module_abi_version() -> String {
    let source = std::fs::read_to_string(repo_root().join("native/src/abi.rs"))
        .expect("read native/src/abi.rs");
    source
        .lines()
        .find_map(|line| {
            line.strip_prefix("pub const ABI_VERSION: &str = \"")?
                .strip_suffix("\";")
                .map(str::to_string)
        })
        .expect("native/src/abi.rs declares ABI_VERSION")
}

fn native_envoy(module_name: &str) -> Envoy {
    let mut config = EnvoyConfig::shipped();
    traffic_split_filter(config.front_listener())["typed_config"] =
        native_typed_config(module_name, ALL_TO_V2);
    Envoy::start(config)
}

#[test]
fn the_modules_abi_version_is_the_one_of_the_envoy_it_runs_in() {
    if !Module::runs_with(Module::Native, WHY) || support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let log = native_envoy("traffic_split").stop();
    let version = module_abi_version();
    assert!(
        log.contains(&format!("Dynamic module ABI version {version} matched")),
        "Envoy did not match the module's ABI version {version}:\n{log}"
    );
}

#[test]
fn a_panic_in_the_module_is_caught_logged_once_and_the_request_goes_on_without_the_filter() {
    if !Module::runs_with(Module::Native, WHY) || support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let envoy = native_envoy("traffic_split_panic");
    let get = |headers: &[(&str, &str)]| {
        envoy
            .connect()
            .request("GET", "/hello", headers)
            .expect("a response")
    };
    let before = get(&[]);
    assert_eq!(before.header("x-upstream-saw-version"), Some("v2"));

    let panicked = get(&[(PANIC_HEADER, "1")]);
    assert_eq!(panicked.status, 200, "{}", panicked.body_text());
    // Without the filter: Envoy's default route, and no version written.
    assert_eq!(panicked.body_text().trim(), "Hello from springbootapp v1");
    assert_eq!(panicked.header("x-upstream-saw-version"), None);

    // Envoy and the filter serve on.
    let after = get(&[]);
    assert_eq!(after.header("x-upstream-saw-version"), Some("v2"));
    assert_eq!(
        envoy
            .admin
            .metrics()
            .count("traffic_split_panics_total", &[]),
        1,
        "the caught panic is counted"
    );
    let log = envoy.stop();
    let panics: Vec<_> = log
        .lines()
        .filter(|line| line.contains("traffic-split: panic in"))
        .collect();
    assert_eq!(panics.len(), 1, "{log}");
    assert!(
        panics[0].contains("panic in request headers (caught, 1 so far)")
            && panics[0].contains("test-only panic on a request marked"),
        "{}",
        panics[0]
    );
}

/// A weighted split of the demo's two versions.
fn split(v1: u32, v2: u32) -> String {
    format!(
        r#"{{ "routes": [{{ "name": "hello", "destinations": [
        {{ "version": "v1", "cluster": "springbootapp-v1", "weight": {v1} }},
        {{ "version": "v2", "cluster": "springbootapp-v2", "weight": {v2} }} ] }}] }}"#
    )
}

/// Envoy's heap in use (tcmalloc's `allocated`, from the admin's `/memory`), in bytes: the
/// module allocates from the same heap.
fn heap_allocated(envoy: &Envoy) -> u64 {
    let memory = support::http::get(envoy.admin.address, "/memory").expect("read /memory");
    let memory: serde_json::Value =
        serde_json::from_str(&memory.body_text()).expect("/memory is JSON");
    memory["allocated"]
        .as_str()
        .and_then(|bytes| bytes.parse().ok())
        .expect("/memory has allocated")
}

/// Each push makes Envoy create a configuration (metrics defined anew on it) and each worker
/// configure a worker of its own; Envoy destroys the old one, and the module drops its part.
#[test]
fn memory_stays_flat_over_100_config_pushes() {
    if !Module::runs_with(Module::Native, WHY) || support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(&split(70, 30))
            .front_filter_from_ecds(),
    );
    let serve = |requests: usize| {
        let mut connection = envoy.connect();
        for _ in 0..requests {
            connection.get("/hello").expect("a response");
        }
    };
    serve(100);
    let before = heap_allocated(&envoy);
    for push in 0..100 {
        assert!(
            envoy.reconfigure_filter(&split(1 + push, 30)),
            "push {push}"
        );
        serve(10);
    }
    let after = heap_allocated(&envoy);
    // A configuration's compiled plan and state are a few KB a worker: a leak of them, or of
    // Envoy's side of a configuration, would show over 100 pushes.
    assert!(
        after.saturating_sub(before) <= 256 << 10,
        "Envoy's heap grew from {before} to {after} bytes over 100 pushes"
    );
}
