//! The checker stays fast and bounded on whatever it is pointed at: deep YAML is refused
//! before it is parsed, a named file's siblings cost a scan and not a parse when hostile, a
//! file over the size cap is not read, and a folder walk never follows a link back into
//! itself. The time bounds are generous (a loaded machine); each case took seconds to minutes
//! before the bounds.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use traffic_split_check::{Report, Verdict};

/// Far above what each case takes (milliseconds), far below what it took unbounded.
const FAST: Duration = Duration::from_secs(5);

fn folder(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ts-hostile-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("a folder");
    dir
}

const CONFIG: &str =
    r#"{"routes": [{"name": "hello", "destinations": [{"version": "v1", "weight": 1}]}]}"#;

fn timed(paths: &[&Path]) -> (Report, Duration) {
    let start = Instant::now();
    let report = Report::check(paths);
    (report, start.elapsed())
}

fn errors(report: &Report) -> String {
    report.errors().join("\n")
}

#[test]
fn deeply_nested_flow_yaml_is_refused_before_it_is_parsed() {
    let dir = folder("deep");
    let file = dir.join("deep.yaml");
    fs::write(&file, format!("a: {}", "[".repeat(100_000))).expect("write");
    let (report, took) = timed(&[&file]);
    assert!(took < FAST, "{took:?}");
    assert!(
        errors(&report).contains("nested more than 100 levels deep (line 1): not parsed"),
        "{report}"
    );
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn a_hostile_sibling_does_not_slow_the_check_of_a_small_file() {
    let dir = folder("sibling");
    let plugin = "apiVersion: extensions.istio.io/v1alpha1\nkind: TrafficExtension\nmetadata: {name: p}\nspec:\n  wasm:\n    url: oci://x/y:1\n    pluginConfig: {routes: [{name: r, destinations: [{version: v1, weight: 1}]}]}\n";
    fs::write(dir.join("plugin.yaml"), plugin).expect("write");
    fs::write(dir.join("big.yaml"), "[".repeat(200_000)).expect("write");
    let (report, took) = timed(&[&dir.join("plugin.yaml")]);
    assert!(took < FAST, "{took:?}");
    assert!(report.passed(), "{report}");
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn a_file_over_the_size_cap_is_not_read() {
    let dir = folder("size");
    let file = dir.join("many.yaml");
    // 13.6 MB of small documents cost 543 MB of memory when parsed.
    fs::write(&file, "a: 1\n---\n".repeat(1_500_000)).expect("write");
    let (report, took) = timed(&[&file]);
    assert!(took < FAST, "{took:?}");
    assert!(
        errors(&report).contains("more than the 4 MiB a manifest or config may have: not read"),
        "{report}"
    );
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn many_small_documents_under_the_cap_are_bounded_too() {
    let dir = folder("documents");
    let file = dir.join("many.yaml");
    fs::write(&file, "a: 1\n---\n".repeat(5_000)).expect("write");
    let (report, took) = timed(&[&file]);
    assert!(took < FAST, "{took:?}");
    assert!(
        errors(&report).contains("more than 1000 YAML documents"),
        "{report}"
    );
    let _ = fs::remove_dir_all(dir);
}

#[test]
fn the_manifests_are_read_once_for_many_plugins() {
    let dir = folder("plugins");
    let plugin = |index: usize| {
        format!(
            "apiVersion: extensions.istio.io/v1alpha1\nkind: TrafficExtension\nmetadata:\n  name: p{index}\n  namespace: ns{index}\nspec:\n  wasm:\n    url: oci://x/y:1\n    pluginConfig:\n      routes:\n      - name: r{index}\n        destinations:\n        - version: v1\n          weight: 1\n"
        )
    };
    let plugins: Vec<String> = (0..100).map(plugin).collect();
    fs::write(dir.join("plugins.yaml"), plugins.join("---\n")).expect("write");
    // A large, valid set of manifests beside them (3.5 MB of VirtualServices).
    let service = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: s\nspec:\n  http:\n  - route:\n    - destination:\n        host: a\n";
    fs::write(dir.join("routes.yaml"), [service; 900].join("---\n")).expect("write");
    let (report, took) = timed(&[&dir.join("plugins.yaml")]);
    assert!(took < FAST, "{took:?}");
    let checked = report
        .entries
        .iter()
        .filter(|entry| matches!(entry.verdict, Verdict::Ok(_)))
        .count();
    assert_eq!(checked, 100, "{report}");
    let _ = fs::remove_dir_all(dir);
}

#[cfg(unix)]
#[test]
fn a_folder_walk_does_not_follow_links_back_into_itself() {
    let dir = folder("links");
    fs::write(dir.join("config.json"), CONFIG).expect("write");
    std::os::unix::fs::symlink(".", dir.join("self")).expect("a link");
    std::os::unix::fs::symlink(".", dir.join("again")).expect("a link");
    let (report, took) = timed(&[&dir]);
    assert!(took < FAST, "{took:?}");
    assert!(report.passed(), "{report}");
    assert_eq!(report.entries.len(), 1, "{report}");
    let _ = fs::remove_dir_all(dir);
}
