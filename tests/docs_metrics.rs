//! What the docs say about metrics is what the filter exports. The exported names are read
//! from a real Envoy whose filters use every feature that defines a metric (a guard, faults,
//! sticky keys from a header and from a cookie, an override header, and a refused config that
//! asks for pass-through); every `traffic_split_*` name in README.md, docs/, examples/ and the
//! live view's page must be one of them, docs/metrics.md must list each of them, and no sentence
//! may say that one of them does not exist.

use traffic_split_e2e as support;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use support::{exclusive, repo_root, Envoy, EnvoyConfig};

/// Every feature with metrics of its own, on one front.
const EVERY_FEATURE: &str = r#"{
  "routes": [
    { "name": "hello", "match": { "prefix": "/hello" },
      "sticky": { "header": "x-user" },
      "override_header": "x-canary-version",
      "guard": { "max_error_ratio": 0.5 },
      "fault": { "abort": { "status": 503, "percent": 1 } },
      "destinations": [
        { "version": "v1", "cluster": "springbootapp-v1", "weight": 70,
          "fault": { "delay": { "fixed": "1ms", "percent": 1 } } },
        { "version": "v2", "cluster": "springbootapp-v2", "weight": 30 }
      ] },
    { "name": "cookie", "match": { "prefix": "/cookie" },
      "sticky": { "cookie": "session" },
      "destinations": [ { "version": "v1", "cluster": "springbootapp-v1", "weight": 1 } ] }
  ]
}"#;

/// Refused (a negative weight), and accepted in the pass-through state.
const REFUSED_PASS_THROUGH: &str = r#"{ "on_invalid_config": "pass_through",
  "routes": [ { "name": "broken", "destinations": [ { "version": "v1", "weight": -1 } ] } ] }"#;

/// Suffixes Prometheus adds to a histogram's name.
const HISTOGRAM_SERIES: [&str; 3] = ["_bucket", "_count", "_sum"];

/// `traffic_split_` names in the docs that are not metrics: the checker crate, the trap
/// module's file and the requests module's (`traffic_split_requests.wasm`; the metric is
/// `traffic_split_requests_total`), the e2e harness crate, the native module's crate and its
/// test-only panic build (`libtraffic_split_panic.so`).
const NOT_METRICS: [&str; 6] = [
    "traffic_split_check",
    "traffic_split_trap",
    "traffic_split_requests",
    "traffic_split_e2e",
    "traffic_split_native",
    "traffic_split_panic",
];

/// Phrases that say a metric is missing.
const SAYS_MISSING: [&str; 10] = [
    "exist yet",
    "does not export",
    "do not export",
    "exports no ",
    "not exported",
    "does not exist",
    "do not exist",
    "once the filter exports",
    "until the filter exports",
    "when they appear",
];

/// The metric families Envoy serves for the filter, histograms by their own name.
/// Metrics only a host that catches panics defines (the native module: in Wasm a panic is a
/// trap). The Wasm run of this file counts them as exported; the native run sees them in Envoy.
const NATIVE_ONLY: [&str; 1] = ["traffic_split_panics_total"];

fn exported_metrics() -> BTreeSet<String> {
    let mut exported = exported_by_envoy();
    exported.extend(NATIVE_ONLY.iter().map(|name| name.to_string()));
    exported
}

fn exported_by_envoy() -> BTreeSet<String> {
    let _machine = exclusive();
    let envoy = Envoy::start(
        EnvoyConfig::shipped()
            .with_plugin_config(EVERY_FEATURE)
            .with_another_front("refused", REFUSED_PASS_THROUGH),
    );
    envoy
        .admin
        .prometheus_lines()
        .iter()
        .filter_map(|line| {
            let name = line.split(['{', ' ']).next()?;
            name.starts_with("traffic_split_").then(|| {
                HISTOGRAM_SERIES
                    .iter()
                    .find_map(|suffix| name.strip_suffix(suffix))
                    .unwrap_or(name)
                    .to_string()
            })
        })
        .collect()
}

/// The files whose text names metrics for users.
fn documents() -> Vec<PathBuf> {
    let root = repo_root();
    let mut files = vec![
        root.join("README.md"),
        root.join("checker/src/top/page.html"),
    ];
    let mut pending = vec![root.join("docs"), root.join("examples")];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| {
                ["md", "json", "yaml", "yml", "rs"].contains(&ext.to_str().unwrap_or(""))
            }) {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn relative(path: &Path) -> String {
    path.strip_prefix(repo_root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The `traffic_split_*` words of a text.
fn metric_words(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("traffic_split_") && !word.ends_with('_'))
        .filter(|word| !NOT_METRICS.contains(word))
        .collect()
}

/// A word names an exported metric: the family, one of a histogram's series, or the name a
/// `stats_tags`-less Envoy gives it
/// (`traffic_split_plugin_traffic_split_route_hello_version_v1_requests_total`).
fn names_exported(word: &str, exported: &BTreeSet<String>) -> bool {
    let family = HISTOGRAM_SERIES
        .iter()
        .find_map(|suffix| word.strip_suffix(suffix))
        .unwrap_or(word);
    exported.contains(family)
        || ((family.starts_with("traffic_split_route_")
            || family.starts_with("traffic_split_plugin_"))
            && exported.iter().any(|name| {
                name.strip_prefix("traffic_split")
                    .is_some_and(|own| family.ends_with(own))
            }))
}

/// The Markdown sections of a text, each from its heading to the next.
fn missing_sections(text: &str) -> Vec<&str> {
    let mut starts: Vec<usize> = text
        .match_indices("\n#")
        .map(|(index, _)| index + 1)
        .collect();
    starts.push(text.len());
    starts
        .windows(2)
        .filter_map(|pair| text.get(pair[0]..pair[1]))
        .filter(|section| {
            let heading = section.lines().next().unwrap_or_default().to_lowercase();
            SAYS_MISSING.iter().any(|phrase| heading.contains(phrase))
        })
        .collect()
}

#[test]
fn the_docs_name_only_exported_metrics_and_never_call_one_missing() {
    if support::skip_without_envoy() {
        return;
    }
    let exported = exported_metrics();
    assert!(
        exported.len() >= 14,
        "the filter's Envoy exported only {exported:?}"
    );
    let mut wrong = Vec::new();
    for path in documents() {
        let text = fs::read_to_string(&path).expect("read a document");
        for word in metric_words(&text) {
            if !names_exported(word, &exported) {
                wrong.push(format!(
                    "{}: names {word}, which the filter does not export",
                    relative(&path)
                ));
            }
        }
        // A sentence (or a table row, or a paragraph's line) that calls an exported metric
        // missing, or a Markdown section whose heading does.
        let claims = text
            .split(['.', '\n', '|'])
            .chain(missing_sections(&text))
            .filter(|sentence| {
                let lower = sentence.to_lowercase();
                SAYS_MISSING.iter().any(|phrase| lower.contains(phrase))
            });
        for sentence in claims {
            for word in metric_words(sentence) {
                if names_exported(word, &exported) {
                    wrong.push(format!(
                        "{}: says {word} is missing, but the filter exports it: \"{}\"",
                        relative(&path),
                        sentence.trim()
                    ));
                }
            }
        }
    }
    let reference = fs::read_to_string(repo_root().join("docs/metrics.md")).expect("metrics.md");
    for name in &exported {
        if !reference.contains(&format!("| `{name}` |")) {
            wrong.push(format!("docs/metrics.md: no row for {name}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_check_finds_a_wrong_name_and_a_false_claim() {
    let exported: BTreeSet<String> = ["traffic_split_weight", "traffic_split_requests_total"]
        .map(String::from)
        .into();
    assert!(!names_exported("traffic_split_wieght", &exported));
    assert!(names_exported(
        "traffic_split_route_a_version_b_requests_total",
        &exported
    ));
    let claim = "configured weight unknown: the filter exports no traffic_split_weight";
    let lower = claim.to_lowercase();
    assert!(SAYS_MISSING.iter().any(|phrase| lower.contains(phrase)));
    assert_eq!(metric_words(claim), vec!["traffic_split_weight"]);
    let section = "intro\n## Metrics that do not exist yet\n\n```\ntraffic_split_weight gauge\n```\n## Next\ntraffic_split_requests_total\n";
    let sections = missing_sections(section);
    assert_eq!(sections.len(), 1);
    assert_eq!(metric_words(sections[0]), vec!["traffic_split_weight"]);
}
