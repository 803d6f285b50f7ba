//! The filter logs through the `log` crate and the SDK's logger: one line per configuration,
//! nothing on the request path.

use traffic_split_e2e as support;

use support::{exclusive, Envoy, EnvoyConfig};

fn configured_lines(log: &str) -> usize {
    log.lines()
        .filter(|line| line.contains("traffic-split: configured 1 route(s)"))
        .count()
}

fn lines_from_the_filter(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| line.contains("traffic-split:"))
        .collect()
}

#[test]
fn a_configuration_is_logged_once_per_vm_and_requests_log_nothing() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let idle = Envoy::start(EnvoyConfig::shipped().with_plugin_config(support::SPLIT_70_30));
    let idle_log = idle.stop();
    let idle_lines = lines_from_the_filter(&idle_log);
    assert!(configured_lines(&idle_log) >= 1, "{idle_log}");

    let busy = Envoy::start(EnvoyConfig::shipped().with_plugin_config(support::SPLIT_70_30));
    let mut connection = busy.connect();
    for _ in 0..200 {
        assert_eq!(connection.get("/hello").expect("request").status, 200);
        connection.get("/nowhere").expect("request");
    }
    busy.admin
        .metrics_when(|metrics| metrics.count("traffic_split_unmatched_total", &[]) >= 200);
    let busy_log = busy.stop();
    assert_eq!(
        lines_from_the_filter(&busy_log).len(),
        idle_lines.len(),
        "requests made the filter log:\n{busy_log}"
    );
}

#[test]
fn the_log_level_in_the_config_silences_the_configure_line() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let quiet = support::SPLIT_70_30.replacen('{', r#"{ "log_level": "error","#, 1);
    let envoy = Envoy::start(EnvoyConfig::shipped().with_plugin_config(&quiet));
    assert_eq!(
        envoy.connect().get("/hello").expect("request").status,
        200,
        "configured and serving"
    );
    let log = envoy.stop();
    assert_eq!(configured_lines(&log), 0, "{log}");
}
