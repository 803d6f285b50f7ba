//! When the filter's VM dies: a test-only build (`make build-trap`) traps on a request that
//! carries `x-traffic-split-test-trap`, as a panic, an out-of-memory or a bug in the module
//! would. What clients get then depends on Envoy's failure policy, and with the filter gone
//! the shipped routes must let no client header choose a cluster they do not list.

use traffic_split_e2e as support;

use std::time::{Duration, Instant};
use support::http::Response;
use support::{exclusive, trap_module, Envoy, EnvoyConfig, Module, TRAP_HEADER};

/// Why these tests run only with the Wasm module (`TRAFFIC_SPLIT_MODULE`).
const WASM_ONLY: &str =
    "a trap kills the Wasm VM; the native module catches a panic instead (tests/native_module.rs)";

/// Everything to v2, so that a request the filter handled is told apart from one that took
/// Envoy's default route (v1).
const ALL_TO_V2: &str = r#"{ "routes": [{ "name": "hello", "match": { "prefix": "/hello" },
    "destinations": [ { "version": "v2", "cluster": "springbootapp-v2", "weight": 1 } ] }] }"#;

/// A cluster Envoy has but the routes do not list.
const UNLISTED: &str = "internal-admin";

fn start_trap_module(configure: impl FnOnce(EnvoyConfig) -> EnvoyConfig) -> Envoy {
    let config = EnvoyConfig::shipped()
        .with_wasm_module(&trap_module())
        .with_plugin_config(ALL_TO_V2)
        .with_unlisted_cluster(UNLISTED);
    Envoy::start(configure(config))
}

fn get(envoy: &Envoy, headers: &[(&str, &str)]) -> Response {
    // A fresh connection each time: Envoy may close one after a local reply.
    envoy
        .connect()
        .request("GET", "/hello", headers)
        .expect("a response")
}

/// The filter is alive: the request went to v2, with the filter's headers.
fn assert_filtered(response: &Response) {
    assert_eq!(response.status, 200);
    assert_eq!(response.body_text().trim(), "Hello from springbootapp v2");
    assert_eq!(response.header("x-upstream-saw-version"), Some("v2"));
}

/// Checks that the filter is alive, then sends the request that kills its VM, and returns
/// what that request got.
fn kill_the_vm(envoy: &Envoy) -> Response {
    assert_filtered(&get(envoy, &[]));
    get(envoy, &[(TRAP_HEADER, "1")])
}

/// The trap is in Envoy's log (complete once Envoy has stopped).
fn assert_trap_logged(envoy: Envoy) {
    let log = envoy.stop();
    assert!(
        log.contains("proxy_on_request_headers failed: Uncaught RuntimeError: unreachable"),
        "no trap in the log:\n{log}"
    );
}

#[test]
fn with_fail_open_false_a_dead_vm_fails_every_request_with_503() {
    if !Module::runs_with(Module::Wasm, WASM_ONLY) || support::skip_without_trap_module() {
        return;
    }
    let _machine = exclusive();
    let envoy = start_trap_module(|config| config.with_fail_open(false));
    assert_eq!(kill_the_vm(&envoy).status, 503);
    for headers in [
        &[][..],
        &[("x-split-cluster", "springbootapp-v2")],
        &[("x-split-cluster", UNLISTED)],
    ] {
        assert_eq!(get(&envoy, headers).status, 503, "{headers:?}");
    }
    assert_trap_logged(envoy);
}

/// With the filter skipped, a request takes the shipped routes as the client sent it.
fn assert_only_listed_clusters_reachable(envoy: &Envoy) {
    // No header of the filter's: Envoy's last route, v1.
    let plain = get(envoy, &[]);
    assert_eq!(plain.status, 200);
    assert_eq!(plain.body_text().trim(), "Hello from springbootapp v1");
    assert_eq!(plain.header("x-upstream-saw-version"), None);
    // A client's own cluster header: one the routes list is honoured (the operator allows
    // both versions), any other falls through to v1. With `cluster_header` routing the
    // unlisted cluster would have been reached (and answered 503).
    let listed = get(envoy, &[("x-split-cluster", "springbootapp-v2")]);
    assert_eq!(listed.body_text().trim(), "Hello from springbootapp v2");
    let unlisted = get(envoy, &[("x-split-cluster", UNLISTED)]);
    assert_eq!(unlisted.status, 200, "the client reached {UNLISTED}");
    assert_eq!(unlisted.body_text().trim(), "Hello from springbootapp v1");
    // Nothing is counted any more: the filter does not run.
    let metrics = envoy.admin.metrics();
    assert_eq!(
        metrics.version_count("traffic_split_requests_total", "hello", "v2"),
        1
    );
}

#[test]
fn with_fail_open_true_a_dead_vm_is_skipped_and_clients_reach_only_listed_clusters() {
    if !Module::runs_with(Module::Wasm, WASM_ONLY) || support::skip_without_trap_module() {
        return;
    }
    let _machine = exclusive();
    let envoy = start_trap_module(|config| config.with_fail_open(true));
    // The older flag fails open for the very request that trapped, too.
    let trapped = kill_the_vm(&envoy);
    assert_eq!(trapped.status, 200);
    assert_eq!(trapped.body_text().trim(), "Hello from springbootapp v1");
    assert_only_listed_clusters_reachable(&envoy);
    assert_trap_logged(envoy);
}

#[test]
fn with_the_shipped_fail_open_policy_a_dead_vm_is_skipped_after_one_503() {
    if !Module::runs_with(Module::Wasm, WASM_ONLY) || support::skip_without_trap_module() {
        return;
    }
    let _machine = exclusive();
    // envoy/envoy.yaml's own `failure_policy: FAIL_OPEN`.
    let envoy = start_trap_module(|config| config);
    assert_eq!(
        kill_the_vm(&envoy).status,
        503,
        "the policy fails the request that trapped"
    );
    assert_only_listed_clusters_reachable(&envoy);
    assert_trap_logged(envoy);
}

#[test]
fn with_fail_reload_the_filter_comes_back_after_a_trap() {
    if !Module::runs_with(Module::Wasm, WASM_ONLY) || support::skip_without_trap_module() {
        return;
    }
    let _machine = exclusive();
    let envoy = start_trap_module(|config| config.with_failure_policy("FAIL_RELOAD"));
    assert_eq!(kill_the_vm(&envoy).status, 503);
    // Envoy answers 503 until it has loaded a new VM, after a backoff (1 s by default).
    let started = Instant::now();
    let mut failed_meanwhile = 0;
    loop {
        let response = get(&envoy, &[]);
        if response.status == 200 {
            assert_filtered(&response);
            break;
        }
        assert_eq!(response.status, 503);
        failed_meanwhile += 1;
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the filter did not come back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        failed_meanwhile > 0,
        "no request failed while the VM was down"
    );
    assert_eq!(
        envoy.admin.stat("wasm.traffic-split.vm_reload_success"),
        Some(1)
    );
    eprintln!(
        "FAIL_RELOAD: back after {:?}, {failed_meanwhile} requests answered 503 meanwhile",
        started.elapsed()
    );
    assert_trap_logged(envoy);
}
