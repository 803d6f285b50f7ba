//! `traffic-split top` health first, against a real Envoy: the deadline and the ramp come from
//! the filter's config in `/config_dump`, v2's 5xx ratio and timeouts lead its row, and at 80
//! columns the bars are gone but the health columns stay.

use traffic_split_e2e as support;
mod top_support;

use serde_json::Value as Json;
use support::{exclusive, Envoy, EnvoyConfig};
use top_support::{send_hello, top, wait_until_counted};

/// The demo's split with a 2 ms route deadline (v1 its own 10 s) and a ramp of v2 that started
/// long ago and is complete, and a guard that does not trip at these numbers.
const RAMP_AND_GUARD: &str = r#"{
  "routes": [{
    "name": "hello",
    "match": { "prefix": "/hello" },
    "timeout": "0.002s",
    "guard": { "max_error_ratio": 1, "cooldown": "2m", "probe_percent": 1 },
    "ramp": { "version": "v2", "from": 0, "to": 30, "start": "2020-01-01T00:00:00Z",
              "duration": "10m", "steps": 3 },
    "destinations": [
      { "version": "v1", "cluster": "springbootapp-v1", "weight": 70, "timeout": "10s" },
      { "version": "v2", "cluster": "springbootapp-v2" }
    ]
  }]
}"#;

const REQUESTS: u64 = 100;

fn envoy() -> Envoy {
    let envoy = Envoy::start(EnvoyConfig::shipped().with_plugin_config(RAMP_AND_GUARD));
    send_hello(&envoy, REQUESTS as usize);
    wait_until_counted(&envoy, REQUESTS);
    envoy
}

fn once(envoy: &Envoy, args: &[&str], columns: &str) -> String {
    let output = top(envoy, args)
        .arg("--once")
        .args(["--interval", "200ms"])
        .env("COLUMNS", columns)
        .output()
        .expect("run traffic-split top");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_frame_has_deadlines_ramp_and_guard_from_the_config_and_health_first_at_80_and_160() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let envoy = envoy();

    let json: Json = serde_json::from_str(&once(&envoy, &["--json"], "120")).expect("JSON");
    assert_eq!(json["config_known"], true, "{json:#}");
    let route = &json["routes"][0];
    assert_eq!(route["ramp"]["version"], "v2");
    assert_eq!(route["ramp"]["complete"], true);
    assert_eq!(route["ramp"]["weight"], 30);
    let v2 = &route["versions"][1];
    assert_eq!(v2["version"], "v2");
    assert_eq!(v2["deadline_ms"], 2);
    assert_eq!(route["versions"][0]["deadline_ms"], 10_000);
    assert_eq!(v2["guard"]["cooldown_seconds"], 120.0);
    assert_eq!(v2["guard"]["ejected"], false);
    assert_eq!(v2["since_start"]["error_ratio"], 1.0);

    let narrow = once(&envoy, &[], "80");
    assert!(
        narrow.lines().all(|line| line.chars().count() <= 80),
        "{narrow}"
    );
    assert!(
        narrow.contains("ramp v2: at 30, complete"),
        "the ramp in the route's heading:\n{narrow}"
    );
    let header = narrow
        .lines()
        .find(|line| line.starts_with("version"))
        .expect("a header");
    for column in ["5xx%", "timeouts", "p99 now", "deadline"] {
        assert!(header.contains(column), "{column} at 80 columns:\n{narrow}");
    }
    assert!(!header.contains("share"), "the bars go first:\n{narrow}");
    let v2_line = narrow
        .lines()
        .find(|line| line.starts_with("v2 "))
        .expect("v2's row");
    assert!(
        v2_line.contains("100.0%") && v2_line.contains("2.00ms"),
        "{narrow}"
    );

    let wide = once(&envoy, &[], "160");
    assert!(
        wide.lines().all(|line| line.chars().count() <= 160),
        "{wide}"
    );
    let header = wide
        .lines()
        .find(|line| line.starts_with("version"))
        .expect("a header");
    assert!(
        header.contains("guard") && header.ends_with("share total"),
        "{wide}"
    );
}
