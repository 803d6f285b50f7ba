//! Where the files the tests need are: the repository, Envoy and the Wasm modules, each
//! named by an environment variable (`make` sets them all) or at its default path.
//!
//! Where the variable names a file that is missing, the test fails with the command that
//! makes it: under `make e2e-test` and CI nothing is ever skipped. Where no variable is set
//! and the default is missing (a fresh clone's bare `cargo test`), the end-to-end tests return
//! at once ([`skip_without_envoy`]) and their file says so in one line: how to run them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Envoy: its variable, its default path and what makes it.
const ENVOY: Required = ("ENVOY_BIN", ".venv/bin/envoy", "make envoy");
/// The shipped module: the one place the harness names it (every Envoy of the tests loads it,
/// unless a test names another module).
const MODULE: Required = (
    "TRAFFIC_SPLIT_WASM",
    "build/traffic_split.wasm",
    "make build",
);
/// The test-only module that traps ([`trap_module`]).
const TRAP_MODULE: Required = (
    "TRAFFIC_SPLIT_TRAP_WASM",
    "build/traffic_split_trap.wasm",
    "make build-trap",
);
type Required = (&'static str, &'static str, &'static str);

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

/// `$variable` if set, else `default` under the repository.
fn path_of(variable: &str, default: &str) -> PathBuf {
    std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(default))
}

/// A file a test needs: `$variable` if set, else `default` under the repository.
fn required_file(variable: &str, default: &str, what: &str, make_it: &str) -> PathBuf {
    let path = path_of(variable, default);
    assert!(
        path.is_file(),
        "no {what} at {}: run `{make_it}` (or set {variable})",
        path.display()
    );
    path
}

/// The Envoy binary: `$ENVOY_BIN`, else the one `make envoy` installs.
pub fn envoy_binary() -> PathBuf {
    let (variable, default, make_it) = ENVOY;
    required_file(variable, default, "Envoy", make_it)
}

/// The shipped module: `$TRAFFIC_SPLIT_WASM`, else what `make build` writes.
pub fn wasm_module() -> PathBuf {
    let (variable, default, make_it) = MODULE;
    required_file(variable, default, "Wasm module", make_it)
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
    let (variable, default, make_it) = TRAP_MODULE;
    required_file(variable, default, "trap module", make_it)
}

/// The header that makes [`trap_module`] trap.
pub const TRAP_HEADER: &str = "x-traffic-split-test-trap";

/// Whether this end-to-end test should return at once: true when Envoy or the module is
/// neither named by its variable nor built at its default path. The first time in a test
/// binary it says so on stderr (past the test harness's capture), in one line with the
/// command that runs the file. A test that starts Envoy begins with
/// `if support::skip_without_envoy() { return; }`.
pub fn skip_without_envoy() -> bool {
    skip_without(&[ENVOY, MODULE])
}

/// Like [`skip_without_envoy`], for a test that runs Envoy with [`trap_module`].
pub fn skip_without_trap_module() -> bool {
    skip_without(&[ENVOY, TRAP_MODULE])
}

/// Like [`skip_without_envoy`], for a test that reads the module but runs no Envoy.
pub fn skip_without_module() -> bool {
    skip_without(&[MODULE])
}

fn skip_without(needed: &[Required]) -> bool {
    let missing: Vec<String> = needed
        .iter()
        .filter(|(variable, default, _)| {
            std::env::var_os(variable).is_none() && !path_of(variable, default).is_file()
        })
        .map(|(_, default, make_it)| format!("no {default} (`{make_it}`)"))
        .collect();
    if missing.is_empty() {
        return false;
    }
    static SAID: OnceLock<()> = OnceLock::new();
    SAID.get_or_init(|| {
        let file = test_file();
        // Straight to stderr: the test harness captures what `eprintln!` prints.
        let _ = writeln!(
            std::io::stderr(),
            "{file}: end-to-end tests skipped, {}: `make e2e-test` builds what they need and runs them",
            missing.join(", "),
        );
    });
    true
}

/// The test file this binary was built from: cargo names the binary `<file>-<hash>`, and
/// runs it with the package's folder in `CARGO_MANIFEST_DIR` (the checker's, or the root's).
fn test_file() -> String {
    let name = std::env::current_exe().ok().and_then(|path| {
        let stem = path.file_stem()?.to_str()?.to_string();
        Some(match stem.rsplit_once('-') {
            Some((name, _hash)) => name.to_string(),
            None => stem,
        })
    });
    let package = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .and_then(|dir| Some(dir.strip_prefix(repo_root()).ok()?.to_path_buf()))
        .unwrap_or_default();
    match name {
        Some(name) => package
            .join("tests")
            .join(format!("{name}.rs"))
            .display()
            .to_string(),
        None => "this test file".to_string(),
    }
}
