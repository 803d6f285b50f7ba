//! A sticky route exports its counter only for the sources its key can come from: a
//! header-keyed route never has `source="cookie"`, a cookie-keyed one never `source="header"`;
//! both have `source="none"` (no key: the round robin chose).

use traffic_split_e2e as support;

use support::{exclusive, Envoy, EnvoyConfig};

const HEADER_AND_COOKIE_ROUTES: &str = r#"{
  "routes": [
    { "name": "by-header", "match": { "prefix": "/hello" }, "sticky": { "header": "x-user" },
      "destinations": [ { "version": "v1", "cluster": "springbootapp-v1", "weight": 1 } ] },
    { "name": "by-cookie", "match": { "prefix": "/" }, "sticky": { "cookie": "session" },
      "destinations": [ { "version": "v1", "cluster": "springbootapp-v1", "weight": 1 } ] }
  ]
}"#;

fn sources(lines: &[String], route: &str) -> Vec<String> {
    let mut sources: Vec<String> = lines
        .iter()
        .filter(|line| line.starts_with("traffic_split_sticky_total{"))
        .filter(|line| line.contains(&format!("route=\"{route}\"")))
        .filter_map(|line| {
            let source = line.split("source=\"").nth(1)?;
            Some(source.split('"').next()?.to_string())
        })
        .collect();
    sources.sort();
    sources
}

#[test]
fn sticky_counters_exist_only_for_the_sources_a_route_can_have() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let envoy = Envoy::start(EnvoyConfig::shipped().with_plugin_config(HEADER_AND_COOKIE_ROUTES));
    let lines = envoy.admin.prometheus_lines();
    assert_eq!(sources(&lines, "by-header"), ["header", "none"]);
    assert_eq!(sources(&lines, "by-cookie"), ["cookie", "none"]);
}
