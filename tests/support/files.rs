//! Where the files the tests need are: the repository, Envoy and the Wasm modules. A missing
//! file fails the test with the command that makes it; it never skips the test.

use std::path::{Path, PathBuf};

/// The repository: the root package's folder, also when a workspace member's tests (the
/// checker's, one level down) use this harness.
pub fn repo_root() -> PathBuf {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .ancestors()
        .find(|dir| dir.join("envoy/envoy.yaml").is_file())
        .map(Path::to_path_buf)
        .unwrap_or(manifest_dir)
}

/// A file a test needs: `$variable` if set, else `default` under the repository.
fn required_file(variable: &str, default: &str, what: &str, make_it: &str) -> PathBuf {
    let path = std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(default));
    assert!(
        path.is_file(),
        "no {what} at {}: run `{make_it}` (or set {variable})",
        path.display()
    );
    path
}

/// The Envoy binary: `$ENVOY_BIN`, else the one `make envoy` installs.
pub fn envoy_binary() -> PathBuf {
    required_file("ENVOY_BIN", ".venv/bin/envoy", "Envoy", "make envoy")
}

/// The shipped module: `$TRAFFIC_SPLIT_WASM`, else what `make build` writes.
pub fn wasm_module() -> PathBuf {
    required_file(
        "TRAFFIC_SPLIT_WASM",
        "build/traffic_split.wasm",
        "Wasm module",
        "make build",
    )
}

/// The second shipped module, without the response path: `$TRAFFIC_SPLIT_REQUESTS_WASM`, else
/// what `make build` writes.
pub fn requests_module() -> PathBuf {
    required_file(
        "TRAFFIC_SPLIT_REQUESTS_WASM",
        "build/traffic_split_requests.wasm",
        "requests module",
        "make build",
    )
}

/// The test-only module that traps on a request carrying [`TRAP_HEADER`]:
/// `$TRAFFIC_SPLIT_TRAP_WASM`, else what `make build-trap` writes.
pub fn trap_module() -> PathBuf {
    required_file(
        "TRAFFIC_SPLIT_TRAP_WASM",
        "build/traffic_split_trap.wasm",
        "trap module",
        "make build-trap",
    )
}

/// The header that makes [`trap_module`] trap.
pub const TRAP_HEADER: &str = "x-traffic-split-test-trap";
