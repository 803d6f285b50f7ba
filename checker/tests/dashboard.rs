//! The Grafana dashboard, the Prometheus scrape config and rules, and the Flagger and Argo
//! Rollouts templates of `examples/observability/`, with a real Prometheus (Debian's
//! `prometheus`) scraping a real Envoy under traffic: every query of every panel and template,
//! and every recording rule, run through Prometheus's HTTP API, gives the values the traffic
//! implies; the rules' own unit tests pass under `promtool test rules`.

use traffic_split_e2e as support;
mod top_support;

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;
use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{exclusive, repo_root, Envoy, EnvoyConfig, SHIPPED_PLUGIN};
use top_support::{poll, Traffic, ROUTE};

/// Grafana's `$__rate_interval` at a 1 s scrape interval is a few seconds; a longer window
/// smooths a busy machine's hiccups without changing any ratio.
const RATE_WINDOW: &str = "15s";

/// A Prometheus on a free port, scraping with `config`; stopped (and its data removed) on drop.
struct Prometheus {
    child: Child,
    address: SocketAddr,
    dir: PathBuf,
    agent: ureq::Agent,
}

impl Prometheus {
    fn start(config: &Yaml) -> Prometheus {
        let dir =
            std::env::temp_dir().join(format!("traffic-split-prometheus-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create Prometheus' folder");
        let config_path = dir.join("prometheus.yml");
        fs::write(&config_path, serde_yaml::to_string(config).expect("YAML"))
            .expect("write config");
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(10)))
                .http_status_as_error(false)
                .build(),
        );
        // A free port can be taken between finding and binding it: try a few.
        for _ in 0..5 {
            let address = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a free port");
            let log = fs::File::create(dir.join("prometheus.log")).expect("create the log");
            let child = Command::new("prometheus")
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address={address}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start prometheus (`make apt-tools` installs it)");
            let mut prometheus = Prometheus {
                child,
                address,
                dir: dir.clone(),
                agent: agent.clone(),
            };
            if prometheus.wait_until_ready() {
                return prometheus;
            }
            // Dropping it kills it and removes the folder: make it again.
            drop(prometheus);
            fs::create_dir_all(&dir).expect("create Prometheus' folder");
            fs::write(&config_path, serde_yaml::to_string(config).expect("YAML"))
                .expect("write config");
        }
        panic!("Prometheus did not start");
    }

    /// Polls `/-/ready`; false when Prometheus exited (its port was taken).
    fn wait_until_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            let ready = self
                .agent
                .get(format!("http://{}/-/ready", self.address))
                .call()
                .is_ok_and(|response| response.status() == 200);
            if ready {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus was not ready within 30 s:\n{}",
                fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn get(&self, path: &str, query: &[(&str, &str)]) -> Json {
        let mut request = self.agent.get(format!("http://{}{path}", self.address));
        for (name, value) in query {
            request = request.query(*name, *value);
        }
        let body = request
            .call()
            .and_then(|mut response| response.body_mut().read_to_string())
            .expect("ask Prometheus");
        let answer: Json = serde_json::from_str(&body).expect("Prometheus answers JSON");
        assert_eq!(answer["status"], "success", "{path} {query:?}: {answer}");
        answer["data"].clone()
    }

    /// An instant query's result: each series' `version` label and value.
    fn query(&self, expr: &str) -> BTreeMap<String, f64> {
        let data = self.get("/api/v1/query", &[("query", expr)]);
        data["result"]
            .as_array()
            .expect("a vector")
            .iter()
            .map(|series| {
                let version = series["metric"]["version"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                let value = series["value"][1]
                    .as_str()
                    .and_then(|value| value.parse().ok())
                    .unwrap_or(f64::NAN);
                (version, value)
            })
            .collect()
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The shipped scrape config, pointed at this Envoy's admin and scraping every second.
fn scrape_config(envoy: &Envoy) -> Yaml {
    let path = repo_root().join("examples/observability/prometheus.yml");
    let mut config: Yaml =
        serde_yaml::from_str(&fs::read_to_string(path).expect("read prometheus.yml"))
            .expect("YAML");
    config["global"]["scrape_interval"] = Yaml::from("1s");
    config["global"]["evaluation_interval"] = Yaml::from("1s");
    let targets = &mut config["scrape_configs"][0]["static_configs"][0]["targets"];
    assert_eq!(
        targets[0],
        Yaml::from("127.0.0.1:9901"),
        "the shipped config scrapes make run's Envoy"
    );
    *targets = Yaml::Sequence(vec![Yaml::from(envoy.admin.to_string())]);
    config
}

/// Every query of the dashboard: (panel title, refId, PromQL as Grafana would send it).
fn dashboard_queries(path: &Path) -> Vec<(String, String, String)> {
    let dashboard: Json =
        serde_json::from_str(&fs::read_to_string(path).expect("read the dashboard")).expect("JSON");
    let panels = dashboard["panels"].as_array().expect("panels");
    assert!(!panels.is_empty());
    panels
        .iter()
        .flat_map(|panel| {
            let title = panel["title"].as_str().expect("a title").to_string();
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            assert!(!targets.is_empty(), "panel {title} has no query");
            targets.into_iter().map(move |target| {
                let expr = target["expr"].as_str().expect("a PromQL expr");
                (
                    title.clone(),
                    target["refId"].as_str().expect("a refId").to_string(),
                    expr.replace("$__rate_interval", RATE_WINDOW)
                        .replace("$plugin", SHIPPED_PLUGIN)
                        .replace("$route", ROUTE),
                )
            })
        })
        .collect()
}

/// The traffic-split metrics a query reads, as Envoy names them (without `_bucket`).
fn metrics_of(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("traffic_split_") {
        let name: String = rest[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[start + name.len()..];
        names.push(name.trim_end_matches("_bucket").to_string());
    }
    names
}

fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
    (actual - expected).abs() <= tolerance
}

/// What the traffic implies for a panel's query, given its v1 and v2 values: 70/30 of the
/// requests, every v2 request a 5xx and a timeout (2 ms deadline, 5 ms answer), v1 none.
fn check(title: &str, ref_id: &str, v1: f64, v2: f64) -> Result<(), String> {
    let fine = match (title, ref_id) {
        ("Share of requests per version", "A") => close(v1, 0.7, 0.05) && close(v2, 0.3, 0.05),
        // The shares the filter splits by (its share gauge): exactly the configured 70/30.
        ("Share of requests per version", "B") => close(v1, 0.7, 1e-9) && close(v2, 0.3, 1e-9),
        ("Requests per second per version", "A") => v2 > 0.0 && close(v1 / (v1 + v2), 0.7, 0.05),
        ("5xx ratio per version", "A") => v1 == 0.0 && close(v2, 1.0, 0.05),
        // Every v2 request is cut: as many timeouts as v2 requests, none for v1.
        ("Timeouts per second per version", "A") => v1 == 0.0 && v2 > 0.0,
        // v2 is never faster than its 2 ms deadline; v1 answers at once.
        ("p99 latency per version", "A" | "B") => v2 > 1.0 && v1 < v2,
        // The share gauge in percent: the configured weights', no rollout or guard here.
        ("Share the filter splits by (rollout and guard)", "A") => v1 == 70.0 && v2 == 30.0,
        _ => {
            return Err(format!(
                "no expectation for panel {title:?} query {ref_id}: add one"
            ))
        }
    };
    if fine {
        Ok(())
    } else {
        Err(format!("{title} ({ref_id}): v1 {v1}, v2 {v2}"))
    }
}

#[test]
fn every_dashboard_query_gives_v1_and_v2_the_values_the_traffic_implies() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let envoy = Envoy::start(EnvoyConfig::shipped().with_plugin_config(support::ROUTE_2MS_V1_10S));
    let exported: Vec<String> = envoy
        .admin
        .prometheus_lines()
        .iter()
        .filter_map(|line| {
            line.strip_prefix("# TYPE ")?
                .split(' ')
                .next()
                .map(str::to_string)
        })
        .collect();
    let traffic = Traffic::start(envoy.front, 100);
    let prometheus = Prometheus::start(&scrape_config(&envoy));
    let queries =
        dashboard_queries(&repo_root().join("examples/observability/grafana-dashboard.json"));
    // A panel for a metric this config does not export (the guard's, on a route without a
    // guard) must still be a valid query; it has no series.
    let (present, pending): (Vec<_>, Vec<_>) = queries
        .iter()
        .partition(|(_, _, expr)| metrics_of(expr).iter().all(|name| exported.contains(name)));
    assert!(present.len() >= 5, "{present:?}");

    // Rates need two scrapes with traffic between them; then every series is there.
    let results = poll(
        "every dashboard query to give v1 and v2",
        Duration::from_secs(45),
        || {
            let results: Vec<_> = present
                .iter()
                .map(|(title, ref_id, expr)| (title, ref_id, prometheus.query(expr)))
                .collect();
            results
                .iter()
                .all(|(_, _, result)| {
                    ["v1", "v2"]
                        .iter()
                        .all(|version| result.get(*version).is_some_and(|v| v.is_finite()))
                })
                .then_some(results)
        },
    );
    assert!(traffic.sent() > 0);
    let failures: Vec<String> = results
        .iter()
        .filter_map(|(title, ref_id, result)| {
            assert_eq!(result.len(), 2, "{title} ({ref_id}): {result:?}");
            check(title, ref_id, result["v1"], result["v2"]).err()
        })
        .collect();
    assert!(failures.is_empty(), "{failures:#?}\n{}", prometheus.log());
    for (title, ref_id, expr) in pending {
        assert_eq!(
            prometheus.query(expr),
            BTreeMap::new(),
            "{title} ({ref_id})"
        );
    }

    // The dashboard's plugin variable lists the plugin, and its route variable the route.
    let plugins = prometheus.get(
        "/api/v1/label/plugin/values",
        &[("match[]", "traffic_split_requests_total")],
    );
    assert_eq!(plugins, serde_json::json!([SHIPPED_PLUGIN]));
    let routes = prometheus.get(
        "/api/v1/label/route/values",
        &[(
            "match[]",
            &format!("traffic_split_requests_total{{plugin=\"{SHIPPED_PLUGIN}\"}}"),
        )],
    );
    assert_eq!(routes, serde_json::json!([ROUTE]));
}

/// The Flagger templates' and the Argo template's queries, with their variables filled in for
/// `version` of the test's route, as (name, PromQL, success threshold if any).
fn template_queries(version: &str) -> Vec<(String, String, Option<f64>)> {
    let dir = repo_root().join("examples/observability");
    let mut queries = Vec::new();
    let flagger = fs::read_to_string(dir.join("flagger-metric-templates.yaml")).expect("read");
    for document in serde_yaml::Deserializer::from_str(&flagger) {
        let template = <Yaml as serde::Deserialize>::deserialize(document).expect("YAML");
        assert_eq!(template["kind"], Yaml::from("MetricTemplate"));
        assert_eq!(
            template["spec"]["provider"]["type"],
            Yaml::from("prometheus")
        );
        let query = template["spec"]["query"].as_str().expect("a query");
        queries.push((
            format!(
                "flagger {}",
                template["metadata"]["name"].as_str().unwrap_or("?")
            ),
            query
                .replace("{{ variables.plugin }}", SHIPPED_PLUGIN)
                .replace("{{ variables.route }}", ROUTE)
                .replace("{{ variables.version }}", version)
                .replace("{{ interval }}", RATE_WINDOW),
            None,
        ));
    }
    let argo: Yaml = serde_yaml::from_str(
        &fs::read_to_string(dir.join("argo-analysis-template.yaml")).expect("read"),
    )
    .expect("YAML");
    assert_eq!(argo["kind"], Yaml::from("AnalysisTemplate"));
    for metric in argo["spec"]["metrics"].as_sequence().expect("metrics") {
        let query = metric["provider"]["prometheus"]["query"]
            .as_str()
            .expect("a query");
        let condition = metric["successCondition"].as_str().expect("a condition");
        let threshold = condition
            .rsplit("result[0] <= ")
            .next()
            .and_then(|bound| bound.trim().parse().ok());
        assert!(threshold.is_some(), "{condition}");
        queries.push((
            format!("argo {}", metric["name"].as_str().unwrap_or("?")),
            query
                .replace("{{args.plugin}}", SHIPPED_PLUGIN)
                .replace("{{args.route}}", ROUTE)
                .replace("{{args.version}}", version)
                .replace("[1m]", &format!("[{RATE_WINDOW}]")),
            threshold,
        ));
    }
    queries
}

#[test]
fn the_rules_pass_their_promtool_tests() {
    let dir = repo_root().join("examples/observability");
    for args in [
        vec!["check", "rules", "rules.yml"],
        vec!["test", "rules", "rules-test.yml"],
    ] {
        let output = Command::new("promtool")
            .args(&args)
            .current_dir(&dir)
            .output()
            .expect("run promtool (`make apt-tools` installs it)");
        assert!(
            output.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn flagger_argo_and_the_rules_judge_v2_failing_and_v1_healthy_on_real_traffic() {
    if support::skip_without_envoy() {
        return;
    }
    let _machine = exclusive();
    let envoy = Envoy::start(EnvoyConfig::shipped().with_plugin_config(support::ROUTE_2MS_V1_10S));
    let traffic = Traffic::start(envoy.front, 100);
    let mut config = scrape_config(&envoy);
    config["rule_files"] = Yaml::Sequence(vec![Yaml::from(
        repo_root()
            .join("examples/observability/rules.yml")
            .display()
            .to_string(),
    )]);
    let prometheus = Prometheus::start(&config);

    // A template's query sums away the version: one series, no version label.
    let value = |expr: &str| prometheus.query(expr).get("").copied();
    let results = poll(
        "every template query to give v1 and v2 a value",
        Duration::from_secs(60),
        || {
            let results: Vec<(String, Option<f64>, f64, f64)> = template_queries("v1")
                .into_iter()
                .zip(template_queries("v2"))
                .map(|((name, v1_query, threshold), (_, v2_query, _))| {
                    Some((name, threshold, value(&v1_query)?, value(&v2_query)?))
                })
                .collect::<Option<_>>()?;
            results
                .iter()
                .all(|(_, _, v1, v2)| v1.is_finite() && v2.is_finite())
                .then_some(results)
        },
    );
    assert!(traffic.sent() > 0);
    for (name, threshold, v1, v2) in &results {
        if name.contains("error") {
            assert!(
                *v1 == 0.0 && close(*v2, 1.0, 0.05),
                "{name}: v1 {v1}, v2 {v2}"
            );
        } else {
            // v2 answers in 5 ms and is cut by its 2 ms deadline: never under 2 ms.
            assert!(*v2 >= 2.0 && v1 < v2, "{name}: v1 {v1}, v2 {v2}");
        }
        if let Some(threshold) = threshold {
            // The Argo conditions: v2 fails both, v1 passes the error ratio.
            assert!(*v2 > *threshold, "{name}: v2 {v2} passes {threshold}");
            if name.contains("error") {
                assert!(*v1 <= *threshold, "{name}: v1 {v1} fails {threshold}");
            }
        }
    }

    // The recording rules, and the error-budget alert pending for v2 only.
    let recorded = poll("the recording rules", Duration::from_secs(60), || {
        let errors = prometheus.query("traffic_split:error_ratio:rate1m");
        let timeouts = prometheus.query("traffic_split:timeout_ratio:rate1m");
        let pending = prometheus.query(
            "ALERTS{alertname=\"TrafficSplitVersionOverErrorBudget\",alertstate=\"pending\"}",
        );
        (errors.len() == 2 && timeouts.len() == 2 && !pending.is_empty())
            .then_some((errors, timeouts, pending))
    });
    let (errors, timeouts, pending) = recorded;
    assert!(
        errors["v1"] == 0.0 && close(errors["v2"], 1.0, 0.05),
        "{errors:?}"
    );
    assert!(
        timeouts["v1"] < 0.5 && close(timeouts["v2"], 1.0, 0.1),
        "{timeouts:?}"
    );
    assert_eq!(
        pending.keys().collect::<Vec<_>>(),
        ["v2"],
        "{}",
        prometheus.log()
    );
}
