//! The shipped module exports exactly the callbacks the filter needs.
//!
//! Envoy enters a Wasm module for every callback the module exports, even one that only
//! returns Continue, and the proxy-wasm SDK exports every callback of the ABI. `make build`
//! keeps only those listed in src/filter/exports.json (wasm-metadce): this test pins the list,
//! so that a callback the filter starts to implement is added there on purpose, and one that
//! was dropped by mistake (a request or a context never freed) is seen at once.

use traffic_split_e2e as support;

use std::fs;

fn exports(path: &std::path::Path) -> Vec<String> {
    let module = fs::read(path).expect("the module");
    let mut exports = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(&module) {
        if let wasmparser::Payload::ExportSection(section) = payload.expect("a valid module") {
            for export in section {
                exports.push(export.expect("a valid export").name.to_string());
            }
        }
    }
    exports.sort();
    exports
}

/// The module for configs that need no response path: Envoy enters it twice a stream fewer.
#[test]
fn the_requests_module_exports_no_response_path() {
    if support::skip_without_module() {
        return;
    }
    let shipped = exports(&support::wasm_module());
    let requests = exports(&support::requests_module());
    let left_out: Vec<&String> = shipped.iter().filter(|e| !requests.contains(e)).collect();
    assert_eq!(left_out, ["proxy_on_log", "proxy_on_response_headers"]);
    assert!(requests.iter().all(|e| shipped.contains(e)), "{requests:?}");
}

#[test]
fn the_shipped_module_exports_only_what_the_filter_uses() {
    if support::skip_without_module() {
        return;
    }
    let exports = exports(&support::wasm_module());
    assert_eq!(
        exports,
        [
            // Runs the SDK's constructors and `proxy_wasm::main!` once, when the VM starts.
            "_initialize",
            "memory",
            "proxy_abi_version_0_2_1",
            "proxy_on_configure",
            "proxy_on_context_create",
            // Frees a stream's (or a root's) context in the SDK's dispatcher.
            "proxy_on_delete",
            // Counts the response and records the duration.
            "proxy_on_log",
            "proxy_on_memory_allocate",
            "proxy_on_request_headers",
            // Sets a sticky cookie the request lacked.
            "proxy_on_response_headers",
            // The timer of the guard (merges outcomes into shared data), the delay faults
            // (releases held requests) and the ramps (moves their weight gauges on a route
            // without requests); only a config with one of them sets a tick period.
            "proxy_on_tick",
            "proxy_on_vm_start",
        ]
    );
}
