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
