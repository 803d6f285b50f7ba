//! The checker reads a plugin (TrafficExtension, WasmPlugin, EnvoyExtensionPolicy) together
//! with the manifests beside it: a version (or an `outbound|...` cluster) the VirtualService and
//! DestinationRule, or the HTTPRoute, of the Envoy it runs in do not route is an error, a
//! selector that picks no workload given is an error, two plugins on one Envoy with the same
//! route name are an error, and who splits and what falls through is said.

use std::fs;
use std::path::{Path, PathBuf};
use traffic_split_check::{Report, Verdict};

fn examples(folder: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(folder)
}

fn istio_examples() -> PathBuf {
    examples("istio")
}

/// A copy of examples/istio in a folder of the test's own, with `edit` applied to
/// traffic-split.yaml.
fn edited_examples(name: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    edited_copy("istio", name, edit)
}

/// A copy of the YAML files of examples/`folder` (not its subfolders) in a folder of the
/// test's own, with `edit` applied to traffic-split.yaml.
fn edited_copy(folder: &str, name: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ts-mesh-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("a folder");
    for entry in fs::read_dir(examples(folder)).expect("examples").flatten() {
        if entry.path().is_dir() {
            continue;
        }
        let text = fs::read_to_string(entry.path()).expect("read");
        let text = if entry.file_name() == "traffic-split.yaml" {
            edit(&text)
        } else {
            text
        };
        fs::write(dir.join(entry.file_name()), text).expect("write");
    }
    dir
}

fn plugin_entry(report: &Report) -> &traffic_split_check::Entry {
    report
        .entries
        .iter()
        .find(|entry| {
            entry
                .origin
                .ends_with("TrafficExtension istioclient/traffic-split")
        })
        .expect("the TrafficExtension")
}

fn errors_of(report: &Report) -> Vec<String> {
    match &plugin_entry(report).verdict {
        Verdict::Invalid(errors) => errors.iter().map(ToString::to_string).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn the_shipped_manifests_agree_and_say_who_splits_and_what_falls_through() {
    let report = Report::check(&[istio_examples().join("traffic-split.yaml")]);
    assert!(report.passed(), "{report}");
    let notes = &plugin_entry(&report).notes;
    assert!(
        notes
            .iter()
            .any(|note| note.contains("splits the calls of Deployment istioclient/busyclient")),
        "{report}"
    );
    assert!(
        notes
            .iter()
            .any(|note| note.starts_with("falls through:") && note.contains("default-v1")),
        "{report}"
    );
}

#[test]
fn a_version_the_virtual_service_does_not_route_is_an_error() {
    // v2 renamed v3 in the TrafficExtension only: the VirtualService still routes v1 and v2.
    let dir = edited_examples("v3", |text| text.replace("- version: v2", "- version: v3"));
    let report = Report::check(&[dir.join("traffic-split.yaml")]);
    assert!(!report.passed(), "{report}");
    let errors = errors_of(&report);
    assert_eq!(errors.len(), 1, "{report}");
    assert!(
        errors[0].starts_with("spec.wasm.pluginConfig.routes[0].destinations[1].version: no VirtualService routes x-split-version: v3 in the sidecars of app=busyclient"),
        "{report}"
    );
    assert!(
        errors[0].contains("silently take") && errors[0].contains("default-v1"),
        "{report}"
    );
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn an_istio_cluster_name_needs_its_destination_rule_subset() {
    let dir = edited_examples("cluster", |text| {
        text.replace(
            "cluster: springbootapp-v2",
            "cluster: outbound|8080|v9|springbootapp-svc.springistiodemo.svc.cluster.local",
        )
        .replace(
            "cluster: springbootapp-v1",
            "cluster: outbound|8080|v1|springbootapp-svc.springistiodemo.svc.cluster.local",
        )
    });
    let report = Report::check(&[&dir]);
    let errors = errors_of(&report);
    assert_eq!(errors.len(), 1, "{report}");
    assert!(
        errors[0].starts_with("spec.wasm.pluginConfig.routes[0].destinations[1].cluster: subset v9 of springbootapp-svc.springistiodemo.svc.cluster.local is in no DestinationRule"),
        "{report}"
    );
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn a_selector_that_picks_no_workload_given_is_an_error() {
    let dir = edited_examples("selector", |text| {
        text.replace("app: busyclient", "app: busy-client")
    });
    let report = Report::check(&[&dir]);
    let errors = errors_of(&report);
    assert_eq!(errors.len(), 1, "{report}");
    assert!(
        errors[0].starts_with(
            "spec.selector.matchLabels: app=busy-client selects none of the workloads"
        ),
        "{report}"
    );
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn the_command_line_fails_on_an_unrouted_version() {
    let dir = edited_examples("cli", |text| text.replace("- version: v2", "- version: v3"));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_traffic-split"))
        .arg("check")
        .arg(Path::new(&dir).join("traffic-split.yaml"))
        .output()
        .expect("run traffic-split check");
    assert_eq!(output.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("no VirtualService routes x-split-version: v3"),
        "{stdout}"
    );
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn a_gateway_plugin_meets_the_gateway_routes_and_a_sidecar_plugin_the_mesh_routes() {
    let report = Report::check(&[istio_examples()]);
    assert!(report.passed(), "{report}");
    let notes = |origin: &str| -> Vec<String> {
        report
            .entries
            .iter()
            .find(|entry| entry.origin.ends_with(origin))
            .map(|entry| entry.notes.clone())
            .unwrap_or_default()
    };
    let edge = notes("TrafficExtension istio-system/traffic-split-edge");
    let sidecar = notes("TrafficExtension istioclient/traffic-split");
    let falls = |notes: &[String], service: &str| {
        notes
            .iter()
            .any(|note| note.starts_with("falls through") && note.contains(service))
    };
    assert!(
        falls(&edge, "springbootapp-edge") && !falls(&edge, "springbootapp ("),
        "{edge:?}"
    );
    assert!(
        falls(&sidecar, "springbootapp (") && !falls(&sidecar, "springbootapp-edge"),
        "{sidecar:?}"
    );
}
