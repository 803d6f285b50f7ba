//! The command line: `ok` and a line per route with exit status 0, or every error with its
//! path and exit status 1; usage errors exit 2.

use std::path::PathBuf;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    run_binary(env!("CARGO_BIN_EXE_traffic-split-check"), args)
}

/// Runs a binary of this package from the repository's root.
fn run_binary(binary: &str, args: &[&str]) -> Output {
    Command::new(binary)
        .args(args)
        .current_dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."))
        .output()
        .expect("run the binary")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn valid_traffic_extension_prints_ok_and_one_line_per_route() {
    let output = run(&["examples/istio/traffic-split.yaml"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    assert_eq!(
        stdout(&output),
        "ok: examples/istio/traffic-split.yaml: TrafficExtension istioclient/traffic-split\n\
         \x20 writes x-split-version and x-split-cluster\n\
         \x20 route hello [GET, prefix /hello, :authority prefix \"springbootapp\"]: \
         v1 weight 70 (70%), cluster springbootapp-v1, deadline 2ms | \
         v2 weight 30 (30%), cluster springbootapp-v2, deadline 2ms\n\
         \x20 note: spec.wasm.sha256 is a placeholder: put the digest `make oci` prints there\n\
         \x20 note: splits the calls of Deployment istioclient/busyclient (examples/istio/busyclient.yaml) only; every other caller takes the default route\n\
         \x20 note: falls through: in the sidecars of app=busyclient in namespace istioclient, requests the filter does not split (no route of it matches, or a caller it does not reach), or with another x-split-version, take VirtualService springistiodemo/springbootapp (examples/istio/traffic-split.yaml): route default-v1 -> springbootapp-svc.springistiodemo.svc.cluster.local subset v1\n"
    );
}

#[test]
fn invalid_config_prints_every_error_with_its_path_and_exits_1() {
    let output = run(&["checker/tests/broken/weight-typo.json"]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stdout(&output),
        "error: checker/tests/broken/weight-typo.json (2 errors)\n\
         \x20 routes[0].destinations[1].wieght: unknown field; expected one of version, cluster, weight, timeout, retries, fault; did you mean `weight`?\n\
         \x20 routes[0].destinations[1].weight: required: an integer from 0 to 1000000\n"
    );
}

#[test]
fn one_invalid_file_among_valid_ones_fails_the_run() {
    let output = run(&["examples", "checker/tests/broken/zero-weights.json"]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    assert!(
        text.contains("ok: examples/istio/traffic-split.yaml"),
        "{text}"
    );
    assert!(
        text.contains("error: checker/tests/broken/zero-weights.json"),
        "{text}"
    );
}

#[test]
fn missing_file_is_an_error() {
    let output = run(&["no/such/config.json"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(stdout(&output).starts_with("error: no/such/config.json (1 error)\n  cannot read: "));
}

#[test]
fn no_arguments_is_a_usage_error() {
    let output = run(&[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).starts_with("usage: traffic-split-check"));
}

/// `traffic-split check` runs the same command as `traffic-split-check`.
fn run_traffic_split(args: &[&str]) -> Output {
    run_binary(env!("CARGO_BIN_EXE_traffic-split"), args)
}

#[test]
fn traffic_split_check_is_the_same_checker() {
    for path in [
        "examples/istio/traffic-split.yaml",
        "checker/tests/broken/weight-typo.json",
    ] {
        let checker = run(&[path]);
        let tool = run_traffic_split(&["check", path]);
        assert_eq!(tool.status.code(), checker.status.code(), "{path}");
        assert_eq!(stdout(&tool), stdout(&checker), "{path}");
    }
    let usage = run_traffic_split(&["check"]);
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).starts_with("usage: traffic-split check"));
}

#[test]
fn traffic_split_without_a_command_is_a_usage_error() {
    let output = run_traffic_split(&[]);
    assert_eq!(output.status.code(), Some(2));
    let usage = String::from_utf8_lossy(&output.stderr);
    assert!(
        usage.contains("check FILE_OR_FOLDER") && usage.contains("top [OPTIONS]"),
        "{usage}"
    );
}

#[test]
fn a_ramp_prints_its_schedule_step_by_step() {
    let output = run(&["examples/configs/canary-ramp.json"]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let text = stdout(&output);
    let schedule: Vec<&str> = text
        .lines()
        .skip_while(|line| !line.starts_with("    ramp of v2"))
        .take(12)
        .collect();
    assert_eq!(
        schedule[0],
        "    ramp of v2: weight 0 -> 50 over 30m from 2026-12-01T10:00:00Z to 2026-12-01T10:30:00Z, in 10 equal steps:"
    );
    assert_eq!(schedule[1], "      2026-12-01T10:00:00Z  v2 weight 0 (0%)");
    assert_eq!(
        schedule[2],
        "      2026-12-01T10:03:00Z  v2 weight 5 (9.1%)"
    );
    assert_eq!(
        schedule[11],
        "      2026-12-01T10:30:00Z  v2 weight 50 (50%)"
    );
    assert!(
        text.contains("sticky by cookie session, set when missing (Path=/; Max-Age=86400; HttpOnly; SameSite=Lax); override by header x-canary-version"),
        "{text}"
    );
}
