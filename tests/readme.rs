//! The README's config snippet is the shipped config and does what the README says it does.

use traffic_split_e2e as support;

use support::{exclusive, repo_root, Envoy, EnvoyConfig};
use traffic_split::config::compile;

/// The first ```json block after the heading "## The config in a few lines".
fn readme_config() -> String {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).expect("README.md");
    let section = readme
        .split_once("## The config in a few lines")
        .expect("the README's config section")
        .1;
    let block = section
        .split_once("```json\n")
        .expect("a JSON block in the config section")
        .1;
    block
        .split_once("```")
        .expect("the JSON block's end")
        .0
        .to_string()
}

#[test]
fn the_readme_snippet_is_the_shipped_plugin_config() {
    let readme = compile(readme_config().as_bytes()).expect("the README's config compiles");
    let shipped = compile(EnvoyConfig::shipped().plugin_config().as_bytes())
        .expect("the shipped config compiles");
    assert_eq!(format!("{readme:?}"), format!("{shipped:?}"));
}

#[test]
fn the_readme_snippet_splits_70_30_and_its_deadline_cuts_every_v2_request() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let envoy = Envoy::start(EnvoyConfig::shipped().with_plugin_config(&readme_config()));
    let mut connection = envoy.connect();
    for _ in 0..1000 {
        let response = connection.get("/hello").expect("request");
        assert!(matches!(response.status, 200 | 504), "{}", response.status);
    }
    let metrics = envoy.admin.metrics();
    // (requests, 2xx, 5xx, timeouts): "7 v1 and 3 v2 in every 10", "2 ms ... which v2 never meets".
    assert_eq!(metrics.outcome("hello", "v2"), (300, 0, 300, 300));
    let (v1_requests, v1_ok, v1_errors, v1_timeouts) = metrics.outcome("hello", "v1");
    assert_eq!(v1_requests, 700);
    assert_eq!(v1_errors, v1_timeouts, "every v1 error is a deadline cut");
    assert!(
        v1_ok >= support::V1_WITHIN_2MS_AT_LEAST,
        "v1 answered only {v1_ok} of 700 within 2 ms"
    );
}
