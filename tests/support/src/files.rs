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

/// A file the end-to-end tests need: the variable that names it, its default path under the
/// repository, what it is and the command that makes it.
struct Required {
    variable: &'static str,
    default: &'static str,
    what: &'static str,
    make_it: &'static str,
}

/// Envoy and the modules it loads: the one place the harness names them.
const ENVOY: Required = Required {
    variable: "ENVOY_BIN",
    default: ".venv/bin/envoy",
    what: "Envoy",
    make_it: "make envoy",
};
/// The shipped module: every Envoy of the tests loads it, unless a test names another.
const MODULE: Required = Required {
    variable: "TRAFFIC_SPLIT_WASM",
    default: "build/traffic_split.wasm",
    what: "Wasm module",
    make_it: "make build",
};
/// The second shipped module, without the response path.
const REQUESTS_MODULE: Required = Required {
    variable: "TRAFFIC_SPLIT_REQUESTS_WASM",
    default: "build/traffic_split_requests.wasm",
    what: "requests module",
    make_it: "make build",
};
/// The native module (`make build`): the module under test with `TRAFFIC_SPLIT_MODULE=native`.
const NATIVE_MODULE: Required = Required {
    variable: "TRAFFIC_SPLIT_NATIVE",
    default: "build/libtraffic_split.so",
    what: "native module",
    make_it: "make build",
};
/// The test-only module that traps on a marked request.
const TRAP_MODULE: Required = Required {
    variable: "TRAFFIC_SPLIT_TRAP_WASM",
    default: "build/traffic_split_trap.wasm",
    what: "trap module",
    make_it: "make build-trap",
};

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

/// `$variable` if set, else the default under the repository.
fn path_of(file: &Required) -> PathBuf {
    std::env::var_os(file.variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(file.default))
}

/// A file a test needs: `$variable` if set, else its default under the repository.
fn required_file(file: &Required) -> PathBuf {
    let path = path_of(file);
    assert!(
        path.is_file(),
        "no {} at {}: run `{}` (or set {})",
        file.what,
        path.display(),
        file.make_it,
        file.variable
    );
    path
}

/// The Envoy binary: `$ENVOY_BIN`, else the one `make envoy` installs.
pub fn envoy_binary() -> PathBuf {
    required_file(&ENVOY)
}

/// The shipped module: `$TRAFFIC_SPLIT_WASM`, else what `make build` writes.
pub fn wasm_module() -> PathBuf {
    required_file(&MODULE)
}

/// The second shipped module, without the response path: `$TRAFFIC_SPLIT_REQUESTS_WASM`, else
/// what `make build` writes.
pub fn requests_module() -> PathBuf {
    required_file(&REQUESTS_MODULE)
}

/// The test-only module that traps on a request carrying [`TRAP_HEADER`]:
/// `$TRAFFIC_SPLIT_TRAP_WASM`, else what `make build-trap` writes.
pub fn trap_module() -> PathBuf {
    required_file(&TRAP_MODULE)
}

/// The folder of the native module, where Envoy looks for it (`ENVOY_DYNAMIC_MODULES_SEARCH_PATH`;
/// `make build-panic` writes the test-only panic build beside it). Not checked: only an Envoy
/// that loads the native module needs it.
pub fn native_module_dir() -> PathBuf {
    let module = path_of(&NATIVE_MODULE);
    module
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| repo_root().join("build"))
}

/// The module the tests' Envoys load (`TRAFFIC_SPLIT_MODULE`).
fn module_under_test() -> &'static Required {
    match crate::module::Module::under_test() {
        crate::module::Module::Wasm => &MODULE,
        crate::module::Module::Native => &NATIVE_MODULE,
    }
}

/// The header that makes [`trap_module`] trap.
pub const TRAP_HEADER: &str = "x-traffic-split-test-trap";

/// Whether this end-to-end test should return at once: true when Envoy or the module is
/// neither named by its variable nor built at its default path. The first time in a test
/// binary it says so on stderr (past the test harness's capture), in one line with the
/// command that runs the file. A test that starts Envoy begins with
/// `if support::skip_without_envoy() { return; }`.
pub fn skip_without_envoy() -> bool {
    skip_without(&[&ENVOY, module_under_test()])
}

/// Like [`skip_without_envoy`], for a test that runs Envoy with [`trap_module`].
pub fn skip_without_trap_module() -> bool {
    skip_without(&[&ENVOY, &TRAP_MODULE])
}

/// Like [`skip_without_envoy`], for a test that reads the module but runs no Envoy.
pub fn skip_without_module() -> bool {
    skip_without(&[&MODULE])
}

fn skip_without(needed: &[&Required]) -> bool {
    let missing: Vec<String> = needed
        .iter()
        .filter(|file| std::env::var_os(file.variable).is_none() && !path_of(file).is_file())
        .map(|file| format!("no {} (`{}`)", file.default, file.make_it))
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
