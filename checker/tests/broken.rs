//! Broken configs (checker/tests/broken/) are refused with every error, each with its path,
//! exactly as the filter would log them; WasmPlugin errors carry the path inside the resource.

use std::path::PathBuf;
use traffic_split_check::{Report, Verdict};

fn broken(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/broken")
        .join(file)
}

/// The errors of every invalid config in the file, as `path: message`.
fn errors(file: &str) -> Vec<String> {
    let report = Report::check(&[broken(file)]);
    assert!(!report.passed(), "{file} must not pass:\n{report}");
    report
        .entries
        .iter()
        .flat_map(|entry| match &entry.verdict {
            Verdict::Invalid(errors) => errors.iter().map(ToString::to_string).collect(),
            _ => Vec::new(),
        })
        .collect()
}

#[test]
fn misspelt_weight_is_an_unknown_field_and_the_weight_is_missing() {
    assert_eq!(
        errors("weight-typo.json"),
        [
            "routes[0].destinations[1].wieght: unknown field; expected one of version, cluster, weight, timeout, retries, fault; did you mean `weight`?",
            "routes[0].destinations[1].weight: required: an integer from 0 to 1000000",
        ]
    );
}

#[test]
fn a_header_match_on_an_owned_header_and_codes_without_their_condition_are_refused() {
    assert_eq!(
        errors("owned-header-match.json"),
        [
            "routes[0].match.headers[0].name: x-split-version is written by the filter; a client's value would pick the route",
            "routes[0].retries.retriable_status_codes: needs retriable-status-codes in retry_on",
        ]
    );
}

#[test]
fn negative_weight_is_refused() {
    assert_eq!(
        errors("negative-weight.json"),
        ["routes[0].destinations[1].weight: expected an integer from 0 to 1000000, got -5"]
    );
}

#[test]
fn a_key_written_twice_in_json_is_refused_with_its_path() {
    assert_eq!(
        errors("duplicate-key.json"),
        ["routes[0].destinations[1].weight: duplicate field"]
    );
}

#[test]
fn a_key_written_twice_in_yaml_is_refused_by_the_yaml_reader() {
    // serde_yaml refuses the whole file, naming the mapping that holds the key twice; the
    // filter's compiler never sees a pluginConfig with one of the two values dropped.
    assert_eq!(
        errors("wasm-plugin-duplicate-key.yaml"),
        [
            r#"not valid YAML: spec.pluginConfig.routes[0].destinations[1]: duplicate entry with key "weight" at line 17 column 9"#
        ]
    );
}

#[test]
fn weights_adding_up_to_zero_are_refused() {
    assert_eq!(
        errors("zero-weights.json"),
        ["routes[0].destinations: the weights add up to 0; at least one must be above 0"]
    );
}

#[test]
fn every_error_of_a_config_is_reported_not_only_the_first() {
    assert_eq!(
        errors("many-errors.json"),
        [
            r#"cluster_header: must differ from version_header (both are "x-split-version")"#,
            r#"routes[0].name: expected 1-64 characters of [A-Za-z0-9_-], got "hello world""#,
            "routes[0].match: at most one of prefix, exact, regex; got prefix, regex",
            r#"routes[0].match.prefix: expected a path starting with "/", got "hello""#,
            r#"routes[0].match.regex: invalid regex "/hello/(": found open group without closing ')'"#,
            r#"routes[0].match.methods[0]: expected an upper-case HTTP method such as "GET", got "get""#,
            r#"routes[0].destinations[0].timeout: "0.0005s" is not a whole number of milliseconds (Envoy deadlines have millisecond resolution)"#,
            r#"routes[0].destinations[1].timeout: expected a duration such as "0.002s", "1.5s", "2ms", "1m" or "1h", got "2 seconds""#,
            "routes[1].destinations: expected at least one destination",
        ]
    );
}

#[test]
fn json_that_does_not_parse_is_reported_with_its_position() {
    assert_eq!(
        errors("not-json.json"),
        ["the configuration is not valid JSON: trailing comma at line 1 column 34"]
    );
}

#[test]
fn each_wasm_plugin_of_a_file_is_checked_and_a_broken_one_fails_the_file() {
    let report = Report::check(&[broken("wasm-plugin-weights.yaml")]);
    let verdicts: Vec<(&str, bool)> = report
        .entries
        .iter()
        .map(|entry| {
            let origin = entry.origin.rsplit(": ").next().unwrap_or("");
            (origin, matches!(entry.verdict, Verdict::Ok(_)))
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("WasmPlugin istioclient/fine", true),
            ("WasmPlugin istioclient/broken", false)
        ]
    );
    assert!(!report.passed());
}

#[test]
fn wasm_plugin_errors_carry_the_path_inside_the_resource() {
    // 70.5 arrives as a double with a fraction, "30" as a string: neither is a weight. The
    // timeout is below Envoy's millisecond resolution.
    assert_eq!(
        errors("wasm-plugin-weights.yaml"),
        [
            r#"spec.pluginConfig.routes[0].timeout: "0.0001s" is not a whole number of milliseconds (Envoy deadlines have millisecond resolution)"#,
            "spec.pluginConfig.routes[0].destinations[0].weight: expected an integer from 0 to 1000000, got 70.5",
            r#"spec.pluginConfig.routes[0].destinations[1].weight: expected an integer from 0 to 1000000, got "30""#,
        ]
    );
}

#[test]
fn wasm_plugin_resource_mistakes_are_reported_with_the_config_missing() {
    assert_eq!(
        errors("wasm-plugin-resource.yaml"),
        [
            r#"apiVersion: expected extensions.istio.io/v1alpha1, got "networking.istio.io/v1alpha3""#,
            "spec.url: required: where the proxies fetch the module (oci://host/name:tag)",
            "spec.sha256: expected 64 lower-case hex digits (the manifest digest `make oci` prints)",
            "spec.pluginConfig: required: the traffic-split config (the filter refuses an empty one)",
        ]
    );
}

#[test]
fn a_yaml_file_named_on_its_own_must_hold_a_plugin_resource() {
    assert_eq!(
        errors("no-wasm-plugin.yaml"),
        ["no TrafficExtension, WasmPlugin or EnvoyExtensionPolicy in it"]
    );
}

#[test]
fn a_file_that_is_neither_json_nor_yaml_is_refused() {
    let report = Report::check(&[PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")]);
    assert!(!report.passed());
    assert_eq!(
        report.errors().len(),
        1,
        "one error for the file:\n{report}"
    );
}
